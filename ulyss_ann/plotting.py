"""Figures for people: model spectra against wavelength."""

import os

import numpy as np

from .errors import UlyssAnnError

__all__ = ["plot_model_spectra", "plot_fit_results"]

_MAX_CURVES = 12
_PRETTY = {"teff": r"$T_\mathrm{eff}$", "logg": "log g", "fe/h": "[Fe/H]", "alpha/fe": r"[$\alpha$/Fe]",
           "rms": "residual rms (relative)"}


def parameter_label(name):
    """How astronomers write a parameter name: Teff -> T_eff, Fe/H -> [Fe/H]."""
    return _PRETTY.get(name.lower(), name)


def _save(fig, path, dpi):
    """Write and close a figure; a bad path or format is one clear error."""
    import matplotlib.pyplot as plt

    try:
        fig.savefig(path, dpi=dpi)
    except (OSError, ValueError) as exc:
        raise UlyssAnnError(f"{path}: cannot write the figure: {exc}") from None
    finally:
        plt.close(fig)


def plot_model_spectra(path, interp, params, flux):
    """Plot the spectra (at most 12 curves, labelled by their parameters) to ``path`` (PNG, PDF…)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    params = np.atleast_2d(params)
    flux = np.atleast_2d(flux)
    wave = interp.wavelength.wavelength
    fig, ax = plt.subplots(figsize=(11, 4.2), layout="constrained")
    for p, f in zip(params[:_MAX_CURVES], flux[:_MAX_CURVES]):
        label = ", ".join(f"{parameter_label(par.name)} = {v:g} {par.unit}".rstrip() for par, v in zip(interp.parameters, p))
        ax.plot(wave, f, lw=0.7, label=label)
    medium = "air" if interp.wavelength.air else "vacuum"
    ax.set_xlabel(f"Wavelength ({medium}) [Å]")
    ax.set_ylabel("Normalised flux")
    ax.set_xlim(wave[0], wave[-1])
    title = os.path.basename(interp.path or "interpolator")
    if interp.is_surrogate:
        title += "  (surrogate: trained on the surrogate grid)"
    if len(params) > _MAX_CURVES:
        title += f"  — first {_MAX_CURVES} of {len(params)} spectra"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right", ncol=1 + (len(params[:_MAX_CURVES]) > 6))
    _save(fig, path, dpi=120)


def plot_fit_results(path, table, interp):
    """One page: histograms of each fitted parameter and cz, and [Fe/H]-like vs Teff-like."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = np.asarray(table["status"] == "ok")
    names = ([p.name for p in interp.parameters] + ["cz", "rms"])[:5]
    units = ([p.unit for p in interp.parameters] + ["km/s", ""])[:5]
    fig, axes = plt.subplots(2, 3, figsize=(12, 7), layout="constrained")
    for ax in axes.flat[len(names):5]:
        ax.set_visible(False)
    for ax, name, unit in zip(axes.flat, names, units):
        values = np.ma.compressed(np.ma.asarray(table[name][ok]))
        if values.size and np.ptp(values) > 0:
            ax.hist(values, bins=min(30, max(5, values.size // 3)), color="C0", alpha=0.8)
        elif values.size:
            ax.axvline(values[0], color="C0")
        ax.set_xlabel(f"{parameter_label(name)} [{unit}]" if unit else parameter_label(name))
        ax.set_ylabel("spectra")
    scatter = axes.flat[-1]
    if len(interp.parameters) >= 3:
        x, y = interp.parameters[0].name, interp.parameters[2].name
        scatter.errorbar(np.ma.filled(table[x][ok], np.nan), np.ma.filled(table[y][ok], np.nan),
                         xerr=np.ma.filled(table["e_" + x][ok], np.nan),
                         yerr=np.ma.filled(table["e_" + y][ok], np.nan), fmt=".", ms=3, alpha=0.7)
        scatter.set_xlabel(f"{parameter_label(x)} [{interp.parameters[0].unit}]")
        scatter.set_ylabel(f"{parameter_label(y)} [{interp.parameters[2].unit}]")
    title = f"{int(ok.sum())} of {len(table)} spectra fitted with {os.path.basename(interp.path)}"
    if interp.is_surrogate:
        title += " (surrogate)"
    fig.suptitle(title, fontsize=11)
    _save(fig, path, dpi=110)
