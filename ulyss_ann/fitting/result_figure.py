"""Figures of fits and models: one fit with its residuals, a batch's results, model spectra.

Each function returns a ``matplotlib.figure.Figure`` (never touching pyplot or the
backend, see :mod:`ulyss_ann.figures`); ``figure=`` draws into one the caller owns.
"""

import os

import numpy as np

from ulyss_ann.figures import new_figure, parameter_label

__all__ = ["plot_fit", "plot_fit_results", "plot_model_spectra", "plot_lsf"]

_MAX_CURVES = 12
#: The legend entry of the pixels a fit left out: bad values, masked bands, what ULySS rejected.
MASKED_LABEL = "masked (not fitted)"


def _runs(mask):
    """(start, stop) index pairs of the True runs of a boolean array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(int), [0]])))
    return edges.reshape(-1, 2)


def plot_fit(result, figure=None):
    """The fit of one spectrum: data and best fit above, residuals below, masked pixels shaded (in the legend).

    ``result`` is a :class:`~ulyss_ann.fitting.result.FitResult`.
    """
    fig = new_figure(figure, figsize=(11, 5.5))
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1.3])
    wave, fitted = result.wavelength, result.mask
    top.plot(wave, result.flux, color="k", lw=0.6, label="data")
    top.plot(wave, result.bestfit, color="C3", lw=0.8, label="best fit")
    residual = np.where(fitted, result.residual, np.nan)
    bottom.plot(wave, residual, color="C0", lw=0.5)
    bottom.axhline(0.0, color="0.4", lw=0.6)
    if result.error is not None:
        bottom.fill_between(wave, -result.error, result.error, color="0.85", lw=0, label="±1σ error")
        bottom.legend(fontsize=8, loc="lower right")
    for n, (start, stop) in enumerate(_runs(~fitted)):  # one legend entry for all the masked bands
        for ax in (top, bottom):
            ax.axvspan(wave[start], wave[min(stop, wave.size - 1)], color="C1", alpha=0.15, lw=0,
                       label=MASKED_LABEL if n == 0 and ax is top else None)
    top.set_ylabel("Flux")
    bottom.set_ylabel("Data − fit")
    bottom.set_xlabel("Wavelength (air) [Å]")
    top.set_xlim(wave[0], wave[-1])
    if np.any(fitted):
        spread = np.nanpercentile(np.abs(residual), 99.5)
        bottom.set_ylim(-2.2 * spread, 2.2 * spread)
    top.set_title(result.summary(parameter_label), fontsize=9)
    top.legend(fontsize=8, loc="lower right")
    return fig


def plot_fit_results(table, interp, figure=None):
    """A batch on one page: histograms of each fitted parameter and cz, and [Fe/H]-like vs Teff-like."""
    ok = np.asarray(table["status"] == "ok")
    names = ([p.name for p in interp.parameters] + ["cz", "rms"])[:5]
    units = ([p.unit for p in interp.parameters] + ["km/s", ""])[:5]
    fig = new_figure(figure, figsize=(12, 7))
    axes = fig.subplots(2, 3)
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
    title = f"{int(ok.sum())} of {len(table)} spectra fitted with {os.path.basename(interp.path or 'the model')}"
    if interp.is_surrogate:
        title += " (surrogate)"
    fig.suptitle(title, fontsize=11)
    return fig


def plot_model_spectra(interp, params, flux, figure=None):
    """Model spectra against wavelength (at most 12 curves, labelled by their parameters)."""
    params = np.atleast_2d(params)
    flux = np.atleast_2d(flux)
    wave = interp.wavelength.wavelength
    fig = new_figure(figure, figsize=(11, 4.2))
    ax = fig.subplots()
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
    return fig


def plot_lsf(measurements=(), combined=None, smoothed=None, nominal=None, figure=None):
    """The relative LSF against wavelength: shift ``cz`` above, width ``sigma`` below [km/s].

    ``measurements``: :class:`~ulyss_ann.fitting.lsf.measure.LSFMeasurement` of single
    stars (small grey points); ``combined``: their combination (black, with errors);
    ``smoothed``: a smoothed LSF (red line); ``nominal``: the relative LSF the instrument's
    stated resolution implies (:func:`~ulyss_ann.spectra.line_spread.gaussian_lsf`, dashed), to
    compare with. Any table with ``wave``, ``cz``, ``sigma`` (and ``e_cz``, ``e_sigma``)
    will do.
    """
    fig = new_figure(figure, figsize=(9, 6))
    top, bottom = fig.subplots(2, 1, sharex=True)
    several = len(measurements) > 1
    for n, measurement in enumerate(measurements if several else ()):  # one star: it is the combination
        table = measurement.table
        for axis, name in ((top, "cz"), (bottom, "sigma")):
            axis.plot(table["wave"], table[name], ".", color="0.6", ms=4,
                      label="single stars" if n == 0 and name == "cz" else None)
    for table, style, label in ((combined, dict(fmt="o", color="k", ms=4, capsize=2), "measured"),
                                (smoothed, dict(fmt="-", color="C3", lw=1.5), "smoothed")):
        if table is None:
            continue
        for axis, name in ((top, "cz"), (bottom, "sigma")):
            error = table["e_" + name] if "e_" + name in table.colnames and style["fmt"] == "o" else None
            axis.errorbar(table["wave"], table[name], yerr=error, label=label if name == "cz" else None, **style)
    if nominal is not None:
        top.plot(nominal["wave"], nominal["cz"], "--", color="C0", label="nominal")
        bottom.plot(nominal["wave"], nominal["sigma"], "--", color="C0")
    reference = combined if combined is not None else smoothed
    outside = False
    if reference is not None:  # axes for the LSF, not for a telluric chunk hundreds of km/s off
        drawn = [m.table for m in measurements if several] + [t for t in (combined, smoothed, nominal) if t is not None]
        for axis, name in ((top, "cz"), (bottom, "sigma")):
            low, high, far = _lsf_range(reference, drawn, name)
            outside |= far
            margin = 0.08 * (high - low) + 1.0  # no point, error bar or line on an axis
            axis.set_ylim(low - margin, high + margin)
    top.axhline(0.0, color="0.7", lw=0.6)
    top.set_ylabel("shift cz [km/s]")
    bottom.set_ylabel("σ [km/s]")
    bottom.set_xlabel("wavelength [Å]")
    if outside:
        top.text(0.01, 0.02, "chunks far off the LSF (telluric bands) are outside the axes", transform=top.transAxes,
                 fontsize=7, color="0.4")
    if top.get_legend_handles_labels()[0]:
        top.legend(fontsize=8, ncols=4)
    fig.suptitle("relative line-spread function (observation vs model)", fontsize=10)
    return fig


def _lsf_range(reference, tables, name):
    """(low, high, any far): the range of column ``name`` of every table drawn, error bars included,
    over the values near the LSF (within 8 robust σ + 1 km/s of ``reference``'s median); ``far``: some
    value drawn is left outside (a telluric chunk)."""
    values = np.asarray(reference[name], float)
    values = values[np.isfinite(values)]
    median = np.median(values)
    reach = 8 * (1.4826 * np.median(np.abs(values - median)) + 1.0)
    lows, highs, far = [], [], False
    for table in tables:
        value = np.asarray(table[name], float)
        error = np.asarray(table["e_" + name], float) if "e_" + name in table.colnames else np.zeros_like(value)
        error = np.where(np.isfinite(error), error, 0.0)
        near = np.isfinite(value) & (np.abs(value - median) <= reach)
        far |= bool((np.isfinite(value) & ~near).any())
        lows.append(value[near] - error[near])
        highs.append(value[near] + error[near])
    lows, highs = np.concatenate(lows), np.concatenate(highs)
    if not lows.size:
        return median - reach, median + reach, far
    return float(lows.min()), float(highs.max()), far
