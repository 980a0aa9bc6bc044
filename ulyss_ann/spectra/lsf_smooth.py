"""A measured LSF made ready to inject: smoothed in wavelength (``uly_lsf_smooth``), floored, as records.

:func:`smooth_lsf` replaces the chunks' cz and σ by a polynomial in λ or a running
median; :func:`lsf_records` turns an LSF table into the records
:func:`~ulyss_ann.spectra.line_spread.write_lsf` writes, with σ kept above a floor that ULySS's
kernel can render (:data:`SIGMA_FLOOR`).
"""

import numpy as np
from astropy.table import Table

from ulyss_ann.errors import UlyssAnnError

__all__ = ["smooth_lsf", "lsf_records", "sigma_floor_for", "SIGMA_FLOOR"]

#: The least σ [km/s] written to an LSF file: 5 % of a 60 km/s pixel (MUSE, SDSS, LAMOST), which
#: broadens nothing measurable, while ULySS's kernel flattens narrower shifted Gaussians into a
#: box (:func:`lsf_records`). Finer-sampled data may go lower, coarser must go higher
#: (:func:`sigma_floor_for`).
SIGMA_FLOOR = 3.0


def sigma_floor_for(measurements):
    """The σ floor [km/s] for the LSF of these measurements: 5 % of their coarsest pixel, at least :data:`SIGMA_FLOOR`."""
    velscales = [m.fit.velscale for m in measurements if getattr(m, "fit", None) is not None]
    return max([SIGMA_FLOOR] + [0.05 * v for v in velscales])


def smooth_lsf(table, method="polynomial", degree=3, window=3, sigma_floor=SIGMA_FLOOR):
    """The LSF smoothed in wavelength, as ``uly_lsf_smooth``: a polynomial, or a running median.

    ``method="polynomial"``: each of cz, sigma, h3, h4 replaced by its least-squares
    polynomial of ``degree`` in λ (``uly_lsf_smooth``'s VDEG/SDEG, 3 by default),
    weighted by 1/e² where the table has errors (ULySS's is unweighted), chunks far off the
    curve left out (:func:`_clipped_polynomial`); ``"median"``: the running median
    over ``window`` chunks (odd; shortened at the ends: a median, so that one wild chunk
    does not move its neighbours). Errors are kept; sigma is kept above ``sigma_floor``.
    """
    smoothed = table.copy()
    wave = np.asarray(table["wave"], float)
    if method not in ("polynomial", "median"):
        raise UlyssAnnError(f"smoothing {method!r}: polynomial (uly_lsf_smooth's) or median (a running median)")
    if method == "polynomial" and not (0 <= int(degree) < len(wave)):
        raise UlyssAnnError(f"smoothing degree {degree}: give 0 to {len(wave) - 1} for {len(wave)} chunks")
    if method == "median" and not (int(window) >= 1 and int(window) % 2 == 1):
        raise UlyssAnnError(f"smoothing window {window}: an odd number of chunks >= 1")
    x = (wave - wave.mean()) / max(np.ptp(wave), 1.0)  # well-conditioned powers
    for name in ("cz", "sigma", "h3", "h4"):
        values = np.asarray(table[name], float)
        if method == "polynomial":
            smoothed[name] = _clipped_polynomial(x, values, _weights(table, name), int(degree))
        else:
            half = int(window) // 2
            smoothed[name] = [np.median(values[max(0, i - half):i + half + 1]) for i in range(len(values))]
    # A curve through widths measured at zero dips below it: an LSF has sigma > 0 (ULySS's
    # injection divides by it), and see lsf_records for why not much smaller than the floor.
    smoothed["sigma"] = np.maximum(np.asarray(smoothed["sigma"], float), sigma_floor)
    return smoothed


def _weights(table, name):
    """1/e for a weighted fit; a chunk without an error (σ pegged at its floor) gets the median error."""
    if "e_" + name not in table.colnames:
        return None
    errors = np.asarray(table["e_" + name], float)
    good = np.isfinite(errors) & (errors > 0)
    if not good.any():
        return None
    return 1.0 / np.where(good, errors, np.median(errors[good]))


def _clipped_polynomial(x, values, weights, degree, kappa=4.0, rounds=5):
    """A weighted polynomial fit that leaves out the chunks far off it.

    A chunk in a telluric band or on a bad column can be hundreds of km/s off and would bend
    the curve. The first fit takes the chunks within 2 ``kappa`` robust deviations of their
    median (the MUSE star: σ 139 and cz +585 km/s among 0-34 and ±7 are not); then, in turn,
    a chunk is left out when it lies more than ``kappa`` robust deviations of the residuals
    off the curve *and* more than ``kappa`` of its own errors: a cubic does not follow a
    real LSF to within its smallest errors, and dropping those chunks would leave the curve
    free to run away at the ends.
    """
    finite = np.isfinite(values)
    median = np.median(values[finite])
    spread = 1.4826 * np.median(np.abs(values[finite] - median))
    keep = finite & (np.abs(values - median) <= 2 * kappa * max(spread, 1e-9))
    if keep.sum() <= degree:
        keep = finite
    for _ in range(rounds):
        coefficients = np.polyfit(x[keep], values[keep], degree, w=None if weights is None else weights[keep])
        residual = values - np.polyval(coefficients, x)
        scale = 1.4826 * np.median(np.abs(residual[keep] - np.median(residual[keep])))
        off = np.abs(residual) > kappa * max(scale, 1e-9)
        if weights is not None:
            off &= np.abs(residual) * weights > kappa
        new = finite & ~off
        if new.sum() <= degree or np.array_equal(new, keep):
            break
        keep = new
    return np.polyval(coefficients, x)


def lsf_records(table, sigma_floor=SIGMA_FLOOR):
    """An LSF table as records for :func:`~ulyss_ann.spectra.line_spread.write_lsf` (centres rounded to whole Å).

    σ below ``sigma_floor`` [km/s] is written as ``sigma_floor``: ULySS's kernel
    (``uly_slit``, which ``LSF=`` and ``fit --lsf`` use) turns a Gaussian much narrower
    than a pixel, shifted by a fraction of one, into a flat box a few pixels wide — a
    broadening of ~1 px, not none. Keep the floor at 5 % of a pixel or more
    (:func:`sigma_floor_for`).
    """
    records = Table()
    records["wave"] = np.round(np.asarray(table["wave"], float))
    for name in ("cz", "sigma", "h3", "h4", "e_cz", "e_sigma"):
        if name in table.colnames:
            records[name] = np.asarray(table[name], float)
    records["sigma"] = np.maximum(records["sigma"], sigma_floor)
    if np.any(np.diff(records["wave"]) <= 0):
        raise UlyssAnnError("LSF chunks closer than 1 Å: give a larger --step")
    return records
