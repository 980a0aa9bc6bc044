"""The figure of a χ² map or profile (:class:`~ulyss_ann.fitting.chimap.map.ChiMap`), with matplotlib's object API.

A map is drawn as ``uly_chimap_plot`` draws it — shades of χ² over the two parameters,
contour lines, the least-χ² node marked — but in Δχ² (noise-scaled, see
:mod:`~ulyss_ann.fitting.chimap.map`), whose levels mean something: 2.30, 6.18 and 11.8 enclose
68.3, 95.4 and 99.73 % for two parameters. The free fit is marked with its error bars
(formal, scaled as Δχ² is), so that a valley much wider than they are is seen at once.
"""

import numpy as np

from ulyss_ann.figures import new_figure, parameter_label, value_with_error

__all__ = ["plot_chimap", "TWO_PARAMETER_LEVELS"]

#: Δχ² enclosing 68.3, 95.4, 99.73 % of two jointly estimated parameters (1, 2, 3 σ).
TWO_PARAMETER_LEVELS = (2.30, 6.18, 11.8)


def _label(chimap, name):
    unit = chimap.units.get(name, "")
    return f"{parameter_label(name)} [{unit}]" if unit else parameter_label(name)


def _title(chimap):
    best = chimap.best
    shown = ", ".join(f"{parameter_label(n)} {value_with_error(best.params[n], best.errors[n], best.units[n])}"
                      for n in chimap.names)
    return (f"{best.spectrum_id} with {best.model} ({best.engine})\nfree fit {shown}; reduced χ² "
            f"{best.chi2:.3g}, Δχ² divided by {chimap.noise_scale:.3g}")


def plot_chimap(chimap, figure=None):
    """Δχ² over the map's two parameters (filled, log-spaced shades; 1-2-3σ contours), or along a profile's one."""
    fig = new_figure(figure, figsize=(7.5, 6) if chimap.y is not None else (7.5, 4.5))
    ax = fig.subplots()
    best = chimap.best
    error = chimap.scaled_errors  # on Δχ²'s scale: where the valley is a parabola, they end at Δχ² = 1
    said = "error" if best.error is None else f"formal error × √{chimap.noise_scale:.3g}"
    x_best, x_err = best.params[chimap.x_name], error[chimap.x_name]
    if chimap.y is None:
        ax.plot(chimap.x, chimap.dchi2, "o-", color="C0", ms=3, label="Δχ², others optimised")
        ax.axvspan(x_best - x_err, x_best + x_err, color="C3", alpha=0.25, lw=0, label=f"free fit ± {said}")
        ax.axvline(x_best, color="C3", lw=0.8)
        ax.axhline(1.0, color="0.5", lw=0.6, ls="--", label="Δχ² = 1")
        ax.set_yscale("symlog", linthresh=1.0)
        ax.set_ylim(bottom=float(np.nanmin(np.append(chimap.dchi2, 0.0))))  # no empty negative decades
        ax.set_xlabel(_label(chimap, chimap.x_name))
        ax.set_ylabel("Δχ² (noise-scaled)")
        ax.legend(fontsize=8)
    else:
        # shades in log(1 + Δχ²): a valley's floor and its walls, hundreds higher, both visible
        shade = np.log10(1.0 + np.clip(chimap.dchi2, 0.0, None))
        image = ax.contourf(chimap.x, chimap.y, shade, levels=20, cmap="viridis_r")
        fig.colorbar(image, ax=ax, label="log₁₀(1 + Δχ²)")
        lines = ax.contour(chimap.x, chimap.y, chimap.dchi2, levels=TWO_PARAMETER_LEVELS, colors="w",
                           linewidths=0.8)
        ax.clabel(lines, fmt={level: f"{level:g}" for level in TWO_PARAMETER_LEVELS}, fontsize=7)
        y_best, y_err = best.params[chimap.y_name], error[chimap.y_name]
        ax.errorbar([x_best], [y_best], xerr=[x_err], yerr=[y_err], fmt="+", color="C3", ms=12, mew=1.5,
                    label=f"free fit ± {said}")
        node = chimap.best_node
        ax.plot([node[chimap.x_name]], [node[chimap.y_name]], "D", mfc="none", mec="w", ms=7,
                label="least-χ² node")
        ax.set_xlabel(_label(chimap, chimap.x_name))
        ax.set_ylabel(_label(chimap, chimap.y_name))
        ax.legend(fontsize=8, loc="best")
    ax.set_title(_title(chimap), fontsize=8)
    return fig
