r"""Several stars' relative LSFs combined into one, chunk by chunk, and the instrument's FWHM it implies.

The chunks of each star come from :func:`~ulyss_ann.fitting.lsf.measure.measure_lsf_many` (matched
by their index on the common range), from either engine: :func:`combine_lsf` averages σ² weighted
by the chunks' velocity errors and keeps the scatter between stars; :func:`instrument_fwhm` turns
a relative LSF back into the instrument's resolution for a model of known FWHM; :func:`with_lsf_units`
puts the units on an LSF table (a star's, or the combination).
"""

import numpy as np
from astropy.table import Table

from ulyss_ann.model.wavelength import C_KMS

__all__ = ["combine_lsf", "instrument_fwhm", "with_lsf_units", "FWHM_PER_SIGMA"]

#: A Gaussian's FWHM per σ, 2√(2 ln 2).
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


def combine_lsf(measurements):
    r"""One LSF from several stars: per chunk, the weighted mean of σ² and of cz, their errors, the scatter.

    σ is averaged as its square, the quantity that adds (the observed lines' variance is
    the model's plus σ²), and every chunk weighs by its *velocity* error, the information
    its lines carry, which hardly depends on the σ it came out with. A chunk's own σ error
    does: it grows as 1/σ towards 0 (a line broadened a little is hardly changed) and is
    0 at the fitting floor, so that weighting by it gave the chunks that happened to come
    out wide the most weight and needed a stand-in for the pegged ones; at low S/N half of
    a star's chunks fall to the floor, and a few come out at 100-300 km/s with small errors.
    (Simulated NGC 6397 samples, trial 8, S/N 20-200: the RMS of the combined chunks
    against the injected σ fell in every one of 8 samples, e.g. 11.7 → 7.6 km/s for 20
    spectra; docs/lsf.md.) Per chunk, with :math:`v_i = \sigma_i^2` and
    :math:`e_{v,i} = r\, e_{cz,i}`:
    :math:`\bar v = \sum w_i v_i / \sum w_i`, :math:`w_i = 1/e_{v,i}^2`, error
    :math:`e_v = \max(1/\sqrt{\sum w_i},\ s_v/\sqrt{n})` (s_v: the standard deviation
    of σ² between the n stars; single stars' formal errors are optimistic, and the
    scatter, when larger, is the honest error); :math:`\sigma = \sqrt{\bar v}`,
    :math:`e_\sigma = \min(e_v / 2\sigma,\ \sqrt{e_v})` (one star: its chunk's own e_σ).
    r is e(σ²)/e_cz = 2σ e_σ/e_cz, the median over the chunk's stars whose σ has an error
    (over all chunks where none has): for Gaussian lines of dispersion S it is √(8/3)·S,
    nearly one number for a sample (≈ 115 km/s on the simulated NGC 6397 stars, 10-90 %
    within 0.8-1.6 of it); it sets the errors only, not the mean. A pegged chunk is no
    special case (σ² ≈ 0 with the error its cz error gives), nor is a mostly masked one (a
    telluric band: its cz error is large already). ``cz`` is the weighted mean of cz with
    :math:`w_i = 1/e_{cz,i}^2` and the same error rule; ``scatter_sigma`` is the standard
    deviation of σ between stars. Chunks are matched by their index on the common range
    (:func:`~ulyss_ann.fitting.lsf.measure.measure_lsf_many`); both engines' measurements combine here.
    """
    tables = [m.table for m in measurements]
    overall = _variance_per_velocity_error(*_columns_of(tables, ("sigma", "e_sigma", "e_cz")))
    out = {name: [] for name in ("chunk", "wmin", "wmax", "wave", "cz", "e_cz", "sigma", "e_sigma", "h3", "h4",
                                 "scatter_cz", "scatter_sigma", "n_stars")}
    for chunk in sorted({int(k) for t in tables for k in t["chunk"]}):
        rows = [row for t in tables for row in t if int(row["chunk"]) == chunk]
        for name in ("chunk", "wmin", "wmax", "wave"):
            out[name].append(rows[0][name])
        cz, e_cz, sigma, e_sigma = (np.array([float(r[name]) for r in rows])
                                    for name in ("cz", "e_cz", "sigma", "e_sigma"))
        for name, value in zip(("cz", "e_cz"), _weighted_mean(cz, e_cz)):
            out[name].append(value)
        ratio = _variance_per_velocity_error(sigma, e_sigma, e_cz, default=overall)
        # pegged or not, mostly masked or not: one rule (a masked chunk's cz error is large already)
        variance, e_variance = _weighted_mean(sigma ** 2, ratio * e_cz)
        width = float(np.sqrt(max(variance, 0.0)))
        out["sigma"].append(width)
        # σ's error from σ²'s: e_v/2σ (for one star its chunk's own e_σ), at most √e_v (σ near 0)
        out["e_sigma"].append(float(np.sqrt(e_variance)) if 2.0 * width <= np.sqrt(e_variance)
                              else e_variance / (2.0 * width))
        out["scatter_cz"].append(_scatter(cz))
        out["scatter_sigma"].append(_scatter(sigma))
        out["h3"].append(float(np.mean([r["h3"] for r in rows])))
        out["h4"].append(float(np.mean([r["h4"] for r in rows])))
        out["n_stars"].append(len(rows))
    return with_lsf_units(Table(out))


def _columns_of(tables, names):
    return (np.concatenate([np.asarray(t[name], float) for t in tables]) for name in names)


def _scatter(values):
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _weighted_mean(values, errors):
    """Inverse-variance mean and its error max(formal, scatter/√n); no usable error at all: the plain mean."""
    usable = np.isfinite(errors) & (errors > 0)
    if not usable.any():
        return float(np.mean(values)), _scatter(values) / np.sqrt(len(values))
    weights = np.where(usable, 1.0 / np.where(usable, errors, 1.0) ** 2, 0.0)
    mean = float(np.sum(weights * values) / weights.sum())
    return mean, max(float(1.0 / np.sqrt(weights.sum())), _scatter(values) / np.sqrt(len(values)))


def _variance_per_velocity_error(sigma, e_sigma, e_cz, default=1.0):
    """The median of e(σ²)/e_cz = 2σ e_σ/e_cz over the chunks that have both errors (``default`` when none has)."""
    both = np.isfinite(e_cz) & np.isfinite(e_sigma) & (e_cz > 0) & (e_sigma > 0)
    return float(np.median(2.0 * sigma[both] * e_sigma[both] / e_cz[both])) if both.any() else default


def instrument_fwhm(table, model_fwhm):
    """The instrument's FWHM [Å] a relative LSF implies for a model of ``model_fwhm`` Å (Gaussians add in variance)."""
    wave = np.asarray(table["wave"], float)
    relative = FWHM_PER_SIGMA * np.asarray(table["sigma"], float) * wave / C_KMS
    return np.sqrt(relative ** 2 + model_fwhm ** 2)


def with_lsf_units(table):
    """Units on an LSF table."""
    for name in ("wmin", "wmax", "wave"):
        if name in table.colnames:
            table[name].unit = "Angstrom"
    for name in ("cz", "e_cz", "sigma", "e_sigma", "scatter_cz", "scatter_sigma"):
        if name in table.colnames:
            table[name].unit = "km/s"
    return table
