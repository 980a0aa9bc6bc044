"""A spectrum's answer from the fits of its guesses: the native engine's choice of the best, as ULySS's."""

import numpy as np

from ulyss_ann.fitting.core import Solution
from ulyss_ann.model.wavelength import C_KMS

__all__ = ["best_solution", "pixel_sums"]


def pixel_sums(values):
    """Σ over the pixels of each row of ``values`` (R, m), C-ordered, as this module has always summed them.

    One row: NumPy's pairwise sum. Several: one pixel after another, in order (the last column of
    ``np.cumsum``): the order in which NumPy reduced the F-ordered arrays that ``bestfit[rows][:, good]``
    gave, 25 ns a pixel through its strided loop against 2-3 ns here, then ~1 ns in a compiled loop
    (:func:`~ulyss_ann.fitting.native_engine.kernels.row_sums`). The reported χ² and rms keep every bit.
    """
    if len(values) == 1:
        return np.sum(values, axis=1)
    from ulyss_ann.fitting.native_engine.kernels import row_sums  # numba: loaded once a block was fitted

    if row_sums is None or values.dtype != np.float64 or values.shape[1] == 0:
        return np.cumsum(values, axis=1)[:, -1]
    return row_sums(np.ascontiguousarray(values))


def best_solution(prepared, spec, fits, guesses, free, mdegree, limits):
    """One spectrum's Solution from its guesses' fits: the lowest χ² of those the search ran, ties to the first.

    ``guesses``: the rows of ``fits`` (:class:`~ulyss_ann.fitting.native_engine.lockstep.LockstepFits`) that are
    this spectrum's, in the guesses' order; ``free`` (2 + n_par,): the fitted θ; ``limits`` (n_par, 2): the
    network's bounds. χ², its parameter count and the errors' scaling are uly_fit's (the engine's module text).
    """
    ran = np.flatnonzero(fits.ran[guesses])
    rows = guesses[ran]
    flags, step = prepared.fixed_flags, spec.step
    velscale = C_KMS * step
    good = np.flatnonzero(spec.good)
    data = spec.data[good]
    have_noise = spec.err is not None
    noise = spec.err[good] if have_noise else np.ones(good.size)
    npar_count = int(free.sum()) + mdegree + 2
    bestfits = np.take(fits.bestfit[rows], good, axis=1)
    residual = data - bestfits
    rms = np.sqrt(pixel_sums(residual * residual) / good.size) / (pixel_sums(bestfits) / good.size)
    # χ² from the float32 best fit, as uly_fit computes it
    scaled = residual / noise
    chisq = pixel_sums(scaled * scaled) / (good.size - npar_count)
    crit = chisq if have_noise else rms
    # ties to the first, as ULySS; guesses that reached the same minimum differ in χ²
    # only by the stopping tolerance, so "the same" is within 1e-6
    best = int(np.flatnonzero(crit <= crit.min() * (1 + 1e-6))[0])
    theta, error = fits.theta[rows[best]], fits.error[rows[best]] * np.sqrt(spec.dof_factor)
    chi2 = chisq[best]
    if not have_noise:
        error = error * np.sqrt(chi2)
        chi2 = 0.0
    values = theta[2:]
    status = np.where(flags != 0, 1, np.where(values <= limits[:, 0], 2,
                                              np.where(values >= limits[:, 1], 3, 0)))
    mask = np.zeros(spec.npix, bool)
    mask[good] = True
    return Solution(n_guess=len(rows), best_guess=int(ran[best]), n_converged=int(np.sum(rms <= rms[best] * 1.001)),
                    chi2=chi2, rms=rms[best], n_pix=good.size,
                    cz=C_KMS * (np.exp(step * theta[0]) - 1), e_cz=error[0] * velscale,
                    sigma=C_KMS * (np.exp(step * theta[1]) - 1), e_sigma=error[1] * velscale,
                    values=values, errors=error[2:], status=status, ln_start=spec.start, ln_step=step,
                    flux=spec.data, bestfit=fits.bestfit[rows[best]], mask=mask, error=spec.err,
                    dof_factor=spec.dof_factor)
