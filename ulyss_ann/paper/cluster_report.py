"""The NGC 6397 analysis of the paper (§5–6): Table 4, Figs. 4–7, per-star parameters, the trend.

Input: a results table of ``ulyss-ann fit`` (one row per spectrum). Optionally the
truth table of a simulated sample (``ulyss-ann simulate ngc6397``) or any reference
table with ``id``, ``Teff`` and ``Fe/H`` (the paper compares with Baratella et al. 2022).

* **Table 4**: ID, RA, Dec, Teff ± error, log g (fixed), [Fe/H] ± error, QF — the
  quality flag: 0 fitted and unflagged, 1 fitted with a flag (a bound, the σ floor, one
  guess converged, errors estimated without σ…), 2 not fitted. ECSV with units and a Markdown excerpt.
* **Per star**: visits of one star (the MUSE id carries the star number before ``jd``)
  combined by inverse-variance weighted mean, with the scatter between visits (the
  standard deviation, when there are two or more) — the table a user cites.
* **Fig. 5**: distributions of Teff, log g, [Fe/H] and cz. **Fig. 6**: Teff and [Fe/H]
  against the reference, with the mean difference (reference − this work) and its
  standard deviation in each panel, as the paper's 31 ± 57 K and 0.01 ± 0.12 dex.
  **Fig. 7**: [Fe/H] against Teff for log g < 4.2, mean and standard deviation in
  250 K bins. **Fig. 4**: one fit with its residuals and zooms on Hβ, Mg b and Hα
  (from the ``--save-fits`` files of ``ulyss-ann fit``).
* **Turn-off and subgiant branch**: [Fe/H] of the stars with Teff > 6100 K (TO) and
  with 5250 K < Teff < 5750 K (sGB), log g < 4.2, mean ± standard deviation, and
  their difference (the paper: −2.35 ± 0.19 and −2.12 ± 0.09, 0.23 dex).

Each figure is drawn by a function that returns a ``matplotlib.figure.Figure`` without
touching pyplot or the backend (:func:`plot_fit_zooms` Fig. 4, :func:`plot_distributions`
Fig. 5, :func:`plot_comparison` Fig. 6, :func:`plot_feh_trend` Fig. 7); :func:`make_report`
writes them with :func:`ulyss_ann.figures.save_figure`.
"""

import os
import re

import numpy as np
from astropy.table import Table

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.figures import new_figure, save_figure

__all__ = ["star_number", "combine_visits", "feh_bins", "to_sgb", "table4", "make_report", "plot_distributions",
           "plot_comparison", "plot_feh_trend", "plot_fit_zooms", "read_saved_fit", "save_fit_figure"]

TO_TEFF, SGB_TEFF = 6100.0, (5250.0, 5750.0)
LINES = (("Hβ", 4861.3, 60), ("Mg b", 5175.0, 80), ("Hα", 6562.8, 60))


def star_number(spectrum_id):
    """The star of a MUSE/PampelMuse spectrum id (``ngc6397id000010554jd2456865p5826f000`` → 10554)."""
    match = re.search(r"id0*(\d+)jd", str(spectrum_id))
    return int(match.group(1)) if match else None


def _ok(table):
    return np.asarray(table["status"] == "ok") & np.isfinite(np.asarray(table["Teff"], float))


def combine_visits(table):
    """Per-star weighted means (1/σ²) of Teff and [Fe/H], their errors and the scatter between visits."""
    ok = _ok(table)
    stars = np.array([-1 if n is None else n for n in map(star_number, table["id"])])
    rows = []
    for star in np.unique(stars[ok]):
        sel = ok & (stars == star)
        row = {"star": int(star), "n_visits": int(sel.sum()),
               "ra": float(np.mean(np.asarray(table["ra"], float)[sel])) if "ra" in table.colnames else np.nan,
               "dec": float(np.mean(np.asarray(table["dec"], float)[sel])) if "dec" in table.colnames else np.nan}
        for name in ("Teff", "Logg", "Fe/H"):
            value = np.asarray(table[name], float)[sel]
            error = np.asarray(table["e_" + name], float)[sel]
            weight = np.where(error > 0, 1 / np.where(error > 0, error, 1) ** 2, 0)
            if weight.sum() > 0:
                row[name] = float(np.sum(weight * value) / weight.sum())
                row["e_" + name] = float(1 / np.sqrt(weight.sum()))
            else:   # fixed parameter: no error, every visit has the same value
                row[name], row["e_" + name] = float(np.mean(value)), 0.0
            row["scatter_" + name] = float(np.std(value, ddof=1)) if sel.sum() > 1 else np.nan
        rows.append(row)
    out = Table(rows=rows)
    units = {"Teff": "K", "Logg": "dex", "Fe/H": "dex", "ra": "deg", "dec": "deg"}
    for name in out.colnames:
        base = name.split("_", 1)[-1] if name.startswith(("e_", "scatter_")) else name
        if base in units:
            out[name].unit = units[base]
    return out


def feh_bins(teff, feh, logg, width=250.0, logg_max=4.2):
    """Mean and standard deviation of [Fe/H] in Teff bins of ``width`` (log g < logg_max).

    Bins are aligned on multiples of ``width``; returns a Table (centre, n, mean, std)
    with the bins that hold at least one star.
    """
    teff, feh, logg = (np.asarray(a, float) for a in (teff, feh, logg))
    sel = np.isfinite(teff) & np.isfinite(feh) & (logg < logg_max)
    index = np.floor(teff[sel] / width).astype(int)
    rows = []
    for k in np.unique(index):
        values = feh[sel][index == k]
        rows.append(((k + 0.5) * width, values.size, values.mean(), values.std(ddof=1) if values.size > 1 else np.nan))
    table = Table(rows=rows, names=("Teff", "n", "Fe/H", "std_Fe/H"))
    table["Teff"].unit = "K"
    table["Fe/H"].unit = table["std_Fe/H"].unit = "dex"
    return table


def to_sgb(teff, feh, logg):
    """([Fe/H] TO mean, std, n), (sGB mean, std, n) and the difference sGB − TO."""
    teff, feh, logg = (np.asarray(a, float) for a in (teff, feh, logg))
    base = np.isfinite(feh) & (logg < 4.2)
    groups = []
    for sel in (base & (teff > TO_TEFF), base & (teff > SGB_TEFF[0]) & (teff < SGB_TEFF[1])):
        values = feh[sel]
        groups.append((values.mean() if values.size else np.nan, values.std(ddof=1) if values.size > 1 else np.nan,
                       int(values.size)))
    return groups[0], groups[1], groups[1][0] - groups[0][0]


def table4(results):
    """Table 4 of the paper from a results table (one row per spectrum)."""
    flagged = np.zeros(len(results), bool)
    if "flag" in results.colnames:   # an empty flag reads back from ECSV as masked
        column = results["flag"]
        mask = np.ma.getmaskarray(column)
        flagged = np.array([not m and str(f).strip() != "" for f, m in zip(np.asarray(column), mask)])
    ok = _ok(results)
    qf = np.where(~ok, 2, np.where(flagged, 1, 0))
    out = Table()
    out["ID"] = results["id"]
    out["RA"] = results["ra"] if "ra" in results.colnames else np.full(len(results), np.nan)
    out["Dec"] = results["dec"] if "dec" in results.colnames else np.full(len(results), np.nan)
    for name in ("Teff", "e_Teff", "Logg", "Fe/H", "e_Fe/H"):
        out[name] = results[name]
    out["QF"] = qf
    out.meta["comment"] = ["QF: 0 fitted, 1 fitted with a quality flag, 2 not fitted; log g as fitted or fixed"]
    return out


def _markdown(table, n=15):
    head = "| " + " | ".join(table.colnames) + " |\n|" + "---|" * len(table.colnames) + "\n"
    lines = []
    for row in table[:n]:
        cells = []
        for name in table.colnames:
            value = row[name]
            if isinstance(value, (float, np.floating)):
                cells.append("—" if not np.isfinite(value) else
                             (f"{value:.5f}" if name in ("RA", "Dec") else
                              f"{value:.0f}" if "Teff" in name else f"{value:.3f}"))
            else:
                cells.append(str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"


def _isochrone_stars(results):
    """Teff, [Fe/H], log g of the fitted rows (Fig. 7 and its bins)."""
    ok = _ok(results)
    return tuple(np.asarray(results[n], float)[ok] for n in ("Teff", "Fe/H", "Logg"))


def plot_distributions(results, label, figure=None):
    """Fig. 5: distributions of Teff, log g, [Fe/H] and cz of the fitted spectra (a Figure)."""
    ok = _ok(results)
    fig = new_figure(figure, figsize=(9, 6.5))
    axes = fig.subplots(2, 2)
    for ax, (name, unit) in zip(axes.flat, (("Teff", "K"), ("Logg", "dex"), ("Fe/H", "dex"), ("cz", "km/s"))):
        values = np.asarray(results[name], float)[ok]
        ax.hist(values[np.isfinite(values)], bins=30, color="0.4")
        ax.set_xlabel(f"{'log g' if name == 'Logg' else '[Fe/H]' if name == 'Fe/H' else name} ({unit})")
        ax.set_ylabel("spectra")
    fig.suptitle(f"NGC 6397: parameters of {int(ok.sum())} spectra ({label})", fontsize=10)
    return fig


def match(results, reference):
    """Indices (ours, theirs) of the fitted rows of ``results`` whose ``id`` is in ``reference``."""
    ref = {str(i): k for k, i in enumerate(reference["id"])}
    ok = _ok(results)
    idx = [(k, ref[str(i)]) for k, i in enumerate(results["id"]) if ok[k] and str(i) in ref]
    if not idx:
        raise UlyssAnnError("no spectrum id of the results is in the reference table")
    return np.array([k for k, _ in idx]), np.array([j for _, j in idx])


def differences(results, reference, names=("Teff", "Fe/H")):
    """{name: (mean, std, n)} of reference − results over the matched spectra (Fig. 6's numbers)."""
    ours, theirs = match(results, reference)
    out = {}
    for name in names:
        diff = np.asarray(reference[name], float)[theirs] - np.asarray(results[name], float)[ours]
        out[name] = (float(np.mean(diff)), float(np.std(diff, ddof=1)), int(diff.size))
    return out


def plot_comparison(results, reference, label, ref_label, figure=None):
    """Fig. 6: Teff and [Fe/H] against a reference table matched on ``id``, with the mean
    difference and its standard deviation in each panel (the numbers: :func:`differences`)."""
    ours, theirs = match(results, reference)
    stats = differences(results, reference)
    fig = new_figure(figure, figsize=(10, 4.6))
    axes = fig.subplots(1, 2)
    for ax, (name, unit, fmt) in zip(axes, (("Teff", "K", ".0f"), ("Fe/H", "dex", ".3f"))):
        x = np.asarray(reference[name], float)[theirs]
        y = np.asarray(results[name], float)[ours]
        ax.scatter(x, y, s=5, alpha=0.5, color="C0")
        lims = [min(x.min(), y.min()), max(x.max(), y.max())]
        ax.plot(lims, lims, color="k", lw=1)
        what = "T$_{eff}$" if name == "Teff" else "[Fe/H]"
        ax.set_xlabel(f"{what} {ref_label} ({unit})")
        ax.set_ylabel(f"{what} this work ({unit})")
        ax.text(0.04, 0.93, f"<{ref_label} − this work> = {stats[name][0]:{fmt}} ± {stats[name][1]:{fmt}} {unit}"
                f"\n{len(x)} spectra", transform=ax.transAxes, va="top", fontsize=9)
    fig.suptitle(f"NGC 6397: this work ({label}) against {ref_label}", fontsize=10)
    return fig


def plot_feh_trend(results, label, truth=None, figure=None):
    """Fig. 7: [Fe/H] against Teff (log g < 4.2) with the mean ± std in 250 K bins (:func:`feh_bins`);
    ``truth``: a function Teff -> [Fe/H] drawn as the injected trend."""
    teff, feh, logg = _isochrone_stars(results)
    bins = feh_bins(teff, feh, logg)
    fig = new_figure(figure, figsize=(8, 4.8))
    ax = fig.subplots()
    sel = logg < 4.2
    ax.scatter(teff[sel], feh[sel], s=4, color="0.7", label="spectra (log g < 4.2)")
    ax.errorbar(bins["Teff"], bins["Fe/H"], yerr=bins["std_Fe/H"], fmt="o-", color="C3", capsize=3,
                label="mean ± std in 250 K bins")
    if truth is not None:
        grid = np.linspace(4500, 6500, 200)
        ax.plot(grid, truth(grid), color="C0", lw=1.5, ls="--", label="injected trend (simulation)")
    ax.set_xlabel("T$_{eff}$ (K)")
    ax.set_ylabel("[Fe/H] (dex)")
    ax.set_ylim(np.nanpercentile(feh[sel], 1) - 0.1, np.nanpercentile(feh[sel], 99) + 0.1)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title(f"NGC 6397: [Fe/H] along the isochrone ({label})", fontsize=10)
    return fig


def read_saved_fit(fit_file):
    """(wavelength, flux, best fit, mask) of a ``<id>_fit.fits`` of ``ulyss-ann fit --save-fits``."""
    from astropy.io import fits

    try:
        with fits.open(fit_file) as hdul:
            data, best, mask = hdul[0].data, hdul["BESTFIT"].data, hdul["MASK"].data.astype(bool)
            head = hdul[0].header
            wave = np.exp(head["CRVAL1"] + head["CDELT1"] * np.arange(data.size))
    except (OSError, KeyError) as exc:
        raise UlyssAnnError(f"{fit_file}: not a fit file of ulyss-ann fit --save-fits ({exc})") from None
    return wave, data, best, mask


def plot_fit_zooms(wave, flux, bestfit, mask, title, figure=None):
    """Fig. 4: one fit (spectrum, best fit), its residuals, and zooms on Hβ, Mg b and Hα.

    ``mask``: True on the fitted pixels (the residuals elsewhere are not drawn). The
    arrays are those of :func:`read_saved_fit`.
    """
    wave, data, best = (np.asarray(a, float) for a in (wave, flux, bestfit))
    mask = np.asarray(mask, bool)
    resid = np.where(mask, data - best, np.nan)
    rms = np.sqrt(np.nanmean(resid ** 2)) / np.mean(best[mask])
    fig = new_figure(figure, figsize=(12, 7.5))
    grid = fig.add_gridspec(3, 3, height_ratios=(2.2, 1, 1.6))
    top = fig.add_subplot(grid[0, :])
    top.plot(wave, data, color="k", lw=0.5, label="observed")
    top.plot(wave, best, color="C3", lw=0.6, label="best fit (network × polynomial, LOSVD)")
    top.set_ylabel("flux")
    top.legend(fontsize=8, loc="upper right")
    top.set_title(f"{title} — residual rms {rms:.4f}", fontsize=10)
    res = fig.add_subplot(grid[1, :], sharex=top)
    res.plot(wave, resid, color="C0", lw=0.5)
    res.axhline(0, color="k", lw=0.5)
    res.set_ylabel("residual")
    res.set_xlabel("wavelength in air (Å)")
    for k, (name, centre, half) in enumerate(LINES):
        ax = fig.add_subplot(grid[2, k])
        sel = (wave > centre - half) & (wave < centre + half)
        ax.plot(wave[sel], data[sel], color="k", lw=0.7)
        ax.plot(wave[sel], best[sel], color="C3", lw=0.8)
        ax.plot(wave[sel], resid[sel] + np.nanmin(data[sel]) * 0.9, color="C0", lw=0.6)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("wavelength (Å)")
    return fig


def save_fit_figure(fit_file, path, title):
    """Fig. 4 of a ``--save-fits`` file written to ``path`` (PNG, PDF, SVG…); returns ``path``."""
    return save_figure(plot_fit_zooms(*read_saved_fit(fit_file), title), path)


def _stats(results, reference):
    """{name: (mean difference, std)} of reference − results (what make_report returns for Fig. 6)."""
    return {name: value[:2] for name, value in differences(results, reference).items()}


def make_report(results_file, outdir, truth_file=None, reference_file=None, reference_label="reference",
                fit_files=(), label=None):
    """Write the whole analysis to ``outdir``; return a dict of the numbers (for summaries)."""
    try:
        results = Table.read(results_file)
    except (OSError, ValueError) as exc:
        raise UlyssAnnError(f"{results_file}: not a results table of ulyss-ann fit ({exc})") from None
    missing = [c for c in ("id", "status", "Teff", "e_Teff", "Logg", "Fe/H", "e_Fe/H") if c not in results.colnames]
    if missing:
        raise UlyssAnnError(f"{results_file}: columns {', '.join(missing)} missing (a table of ulyss-ann fit?)")
    os.makedirs(outdir, exist_ok=True)
    engine = str(results["engine"][0]) if "engine" in results.colnames else "?"
    label = label or f"{results.meta.get('model', 'model')}, engine {engine}"
    numbers = {"n_spectra": len(results), "n_ok": int(_ok(results).sum()), "label": label}
    t4 = table4(results)
    t4.write(os.path.join(outdir, "table4.ecsv"), overwrite=True)
    with open(os.path.join(outdir, "table4.md"), "w") as handle:
        handle.write(f"Table 4 excerpt ({len(t4)} spectra in table4.ecsv)\n\n" + _markdown(t4))
    stars = combine_visits(results)
    stars.write(os.path.join(outdir, "stars.ecsv"), overwrite=True)
    numbers["n_stars"] = len(stars)
    numbers["n_repeated"] = int(np.sum(stars["n_visits"] > 1)) if len(stars) else 0
    multi = stars[stars["n_visits"] > 1] if len(stars) else stars
    numbers["visit_scatter"] = {n: float(np.nanmedian(multi["scatter_" + n])) if len(multi) else np.nan
                                for n in ("Teff", "Fe/H")}
    ok = _ok(results)
    feh = np.asarray(results["Fe/H"], float)[ok]
    numbers["mean_feh"] = (float(np.mean(feh)), float(np.std(feh, ddof=1)))
    save_figure(plot_distributions(results, label), os.path.join(outdir, "fig5_distributions.png"))
    if truth_file:
        truth = Table.read(truth_file)
        numbers["truth"] = _stats(results, truth)
        save_figure(plot_comparison(results, truth, label, "truth"), os.path.join(outdir, "fig6_truth.png"))
        _, sel = match(results, truth)
        numbers["truth_to_sgb"] = to_sgb(*(np.asarray(truth[n], float)[sel] for n in ("Teff", "Fe/H", "Logg")))
    if reference_file:
        reference = Table.read(reference_file)
        numbers["reference"] = _stats(results, reference)
        save_figure(plot_comparison(results, reference, label, reference_label),
                    os.path.join(outdir, "fig6_comparison.png"))
    from ulyss_ann.paper.ngc6397 import injected_feh

    save_figure(plot_feh_trend(results, label, truth=injected_feh if truth_file else None),
                os.path.join(outdir, "fig7_feh_trend.png"))
    feh_bins(*_isochrone_stars(results)).write(os.path.join(outdir, "fig7_bins.ecsv"), overwrite=True)
    numbers["to_sgb"] = to_sgb(*(np.asarray(results[n], float)[ok] for n in ("Teff", "Fe/H", "Logg")))
    for fit_file in fit_files:
        name = os.path.basename(fit_file).replace("_fit.fits", "")
        save_fit_figure(fit_file, os.path.join(outdir, f"fig4_{name}.png"), f"{name} ({label})")
    return numbers
