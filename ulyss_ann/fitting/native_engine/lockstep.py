r"""The native engine's optimiser: MPFIT's bounded Levenberg–Marquardt, for many fits in lock-step.

ULySS fits every combination of guesses of a spectrum with MPFIT (Markwardt 2009, after
Moré's MINPACK). :func:`levenberg_marquardt` runs R such fits — the guesses of many
spectra — together: each round makes one step for every fit still running, from one
batched evaluation of the model and its Jacobian (:class:`~ulyss_ann.fitting.native_engine.block.SpectralBlock`),
so the cost of a round is a few large array operations whatever R is.

Per fit, as MPFIT:

* the step solves :math:`(J^TJ + \lambda\,\mathrm{diag}(J^TJ))\,\delta = -J^Tr` over the
  free parameters that are not *pegged* (on a bound with the gradient pushing outwards,
  :func:`unpegged`), and is clipped to the box;
* it is kept when it lowers χ² = Σr² (λ ÷ 10), else refused (λ × 10);
* the fit stops on MPFIT's tests (MINPACK's ``info`` 1 and 2): the actual relative
  reduction of χ², :math:`1 - \chi^2_{new}/\chi^2`, and the reduction the linear model
  predicted, :math:`(\|J\delta\|^2 + 2\lambda\,\delta^T\mathrm{diag}(J^TJ)\,\delta)/\chi^2`,
  both at most ``ftol`` with their ratio at most 2; or a step below ``xtol`` relative to
  the parameters; or λ above 1e8 (no step lowers χ²); or nothing left free.

``ftol`` is 1e-7 (:data:`FTOL` says why not uly_fit's 1e-5). A guess that comes within
:data:`SAME` standard errors of an earlier guess of its spectrum stops there (about 10 %
fewer rounds on simulated MUSE spectra, answers unchanged). Errors are MPFIT's,
:math:`\sqrt{\mathrm{diag}((J^TJ)^{-1})}` over the unpegged free parameters at the last
point, 0 for pegged and fixed ones.
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["levenberg_marquardt", "unpegged", "mpfit_errors", "LockstepFits", "FTOL", "XTOL", "MAX_ROUNDS", "SAME",
           "BLOCK_SPECTRA"]

#: Relative χ² reduction below which a fit has converged (MPFIT's test). uly_fit gives
#: MPFIT 1e-5, but two optimisers stopped that early stop at different points of a flat
#: χ²: on the MUSE star and 50 simulated spectra (scripts/compare_engines) 1e-5 put log g
#: 0.011 from ULySS's (tolerance 0.005), 1e-6 0.0042, 1e-7 0.0026 — for 28.0, 29.5 and
#: 31.3 fit-rounds per spectrum: 1e-7 costs 12 % more rounds than 1e-5 and agrees best.
FTOL = 1e-7
#: MPFIT's XTOL as uly_fit sets it.
XTOL = 1e-10
#: Two guesses of one spectrum closer than this many standard errors in every parameter are
#: at the same point of χ²: the later stops and takes the earlier's answer (0: never).
SAME = 0.05
#: Rounds after which a fit is stopped where it is (MPFIT's MAXITER is 200).
MAX_ROUNDS = 200
#: Spectra of one grid fitted in lock-step on the CPU (× their guesses: the rows of a block),
#: and so the spectra of a native batch task. Larger blocks pay NumPy's per-call cost fewer
#: times but leave the CPU cache (a GPU takes :data:`~ulyss_ann.fitting.native_engine.torch_block.GPU_BLOCK_SPECTRA`).
BLOCK_SPECTRA = 32


def unpegged(theta, grad, lower, upper):
    """The parameters not pegged at a bound (on it, with ½∇χ² = ``grad`` pushing outwards),
    as MPFIT decides; works on one θ or a stack of them."""
    return ~(((theta <= lower) & (grad > 0)) | ((theta >= upper) & (grad < 0)))


@dataclass
class LockstepFits:
    """R fits' outcome: θ (R, P), χ² = Σr² (R,), float32 best fits (R, n), errors (R, P), rounds (R,), and
    which rows were fitted (R,: the start search's, :mod:`~ulyss_ann.fitting.native_engine.start_search`).

    The best fits are whatever ``evaluate`` returned: a torch tensor on the GPU path, which the
    engine brings back (:meth:`~ulyss_ann.fitting.native_engine.torch_block.TorchSpectralBlock.host`)."""

    theta: np.ndarray
    cost: np.ndarray
    bestfit: np.ndarray
    error: np.ndarray
    rounds: np.ndarray
    ran: np.ndarray = None


def levenberg_marquardt(evaluate, thetas, owners, lower, upper, free, ftol=FTOL, xtol=XTOL, max_rounds=MAX_ROUNDS,
                        same=SAME, held=None, release=None):
    """Bounded Levenberg–Marquardt for R starting points in lock-step (see the module's text).

    Parameters
    ----------
    evaluate : callable
        ``evaluate(theta (L, P), owners (L,)) -> (χ² (L,), Jᵀr (L, F), JᵀJ (L, F, F), bestfit (L, n))``,
        J the Jacobian of the residuals r with respect to the F free parameters
        (:meth:`~ulyss_ann.fitting.native_engine.block.SpectralBlock.evaluate`).
    thetas : ndarray (R, P)
        Starting points.
    owners : ndarray (R,)
        The spectrum of each fit (handed back to ``evaluate``).
    lower, upper : ndarray (P,)
        The box.
    free : ndarray of bool (P,)
        The fitted parameters (the others stay at their start).
    same : float
        Guesses of one spectrum that come within ``same`` standard errors of an earlier
        one stop there and take its answer (:data:`SAME`; 0 runs every guess to its end).
    held, release : ndarray of bool (R,), callable, optional
        Fits that wait, and what starts them (the start search's,
        :mod:`~ulyss_ann.fitting.native_engine.start_search`): before each round
        ``release(theta, cost, grad, jtj, steps, answer, live, held)`` (``steps``: the steps of each fit's path,
        refused ones not counted; ``answer``: the fit whose point is its answer) returns the rows to start from their starting
        points now, as if the fit began there (those that ran already start again); those never started are
        not fitted (``ran`` False, χ² infinite). A fit that stopped on meeting an earlier one counts the
        steps that one made after their meeting as its own.

    Returns
    -------
    LockstepFits
    """
    cols = np.flatnonzero(free)
    lo, hi = lower[cols], upper[cols]
    theta = np.clip(np.asarray(thetas, float), lower, upper)
    owners = np.asarray(owners)
    fits = len(theta)
    starts = theta.copy()
    waiting = np.zeros(fits, bool) if held is None else np.array(held, bool)
    live = ~waiting
    if waiting.any():
        cost, grad, jtj, bestfit = _start(evaluate, theta, owners, np.flatnonzero(live))
    else:
        cost, grad, jtj, bestfit = evaluate(theta, owners)
    lam = np.full(fits, 1e-3)
    rounds = np.zeros(fits, int)
    steps = np.zeros(fits, int)
    eye = np.eye(cols.size)
    merged = np.full(fits, -1)
    joined = np.zeros(fits, int)
    pairs = _pairs(owners) if same > 0 and fits > 1 else None
    while True:
        if release is not None and waiting.any():
            path, answer = _paths(steps, merged, joined)
            freed = np.flatnonzero(release(theta, cost, grad, jtj, path, answer, live, waiting))
            if freed.size:  # (re)started from their starting points, as search "all" runs them
                theta[freed], lam[freed], rounds[freed], steps[freed], merged[freed] = starts[freed], 1e-3, 0, 0, -1
                cost[freed], grad[freed], jtj[freed], bestfit[freed] = evaluate(theta[freed], owners[freed])
                waiting[freed], live[freed] = False, True
        idx = np.flatnonzero(live)
        if not idx.size:
            break
        g, a, th = grad[idx], jtj[idx], theta[idx][:, cols]
        active = unpegged(th, g, lo, hi)
        scale = np.maximum(np.diagonal(a, axis1=1, axis2=2), 1e-30)
        mask = active[:, :, None] & active[:, None, :]
        system = np.where(mask, a + lam[idx, None, None] * scale[:, :, None] * eye, eye)
        delta = np.linalg.solve(system, np.where(active, -g, 0.0)[:, :, None])[:, :, 0]
        step = np.clip(th + delta, lo, hi) - th
        trial = theta[idx].copy()
        trial[:, cols] += step
        c_t, g_t, a_t, b_t = evaluate(trial, owners[idx])
        rounds[idx] += 1
        # MPFIT's convergence tests, on the step as taken (clipped)
        predicted = (np.einsum("lf,lfg,lg->l", step, a, step)
                     + 2 * lam[idx] * np.einsum("lf,lf,lf->l", step, scale, step)) / cost[idx]
        actual = np.where(c_t < 100 * cost[idx], 1 - c_t / cost[idx], -1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(predicted > 0, actual / predicted, 0.0)
        small = (np.abs(actual) <= ftol) & (predicted <= ftol) & (ratio <= 2)
        tiny = np.all(np.abs(step) <= xtol * (np.abs(th) + xtol), axis=1)
        better = c_t < cost[idx]
        kept = idx[better]
        steps[kept] += 1
        theta[kept], cost[kept], grad[kept], jtj[kept], bestfit[kept] = \
            trial[better], c_t[better], g_t[better], a_t[better], b_t[better]
        lam[idx] = np.where(better, np.maximum(lam[idx] / 10, 1e-12), lam[idx] * 10)
        stuck = lam[idx] > 1e8                                           # no step lowers χ²: converged
        live[idx[small | tiny | stuck | (rounds[idx] >= max_rounds)]] = False
        still = np.flatnonzero(live)  # nothing left to move: every free parameter pegged
        live[still[~unpegged(theta[still][:, cols], grad[still], lo, hi).any(axis=1)]] = False
        if pairs is not None:
            _merge(theta[:, cols], jtj, live, merged, pairs, same, ~waiting, steps, joined)
    later = np.flatnonzero(merged >= 0)  # later guesses take the answer of the one they joined
    origin = _paths(steps, merged, joined)[1][later]
    theta[later], cost[later], grad[later], jtj[later], bestfit[later] = \
        theta[origin], cost[origin], grad[origin], jtj[origin], bestfit[origin]
    ran = ~waiting
    error = np.zeros(theta.shape)
    error[ran] = mpfit_errors(theta[ran], grad[ran], jtj[ran], cols, lo, hi)
    return LockstepFits(theta, cost, bestfit, error, rounds, ran)


def _start(evaluate, theta, owners, rows):
    """``evaluate``'s arrays for every fit, filled at ``rows`` (the others: χ² infinite until they start)."""
    cost, grad, jtj, bestfit = evaluate(theta[rows], owners[rows])
    fits = len(theta)
    out = (np.full(fits, np.inf), np.zeros((fits,) + grad.shape[1:]), np.zeros((fits,) + jtj.shape[1:]),
           np.zeros((fits,) + tuple(bestfit.shape[1:])) if isinstance(bestfit, np.ndarray)
           else bestfit.new_zeros((fits,) + tuple(bestfit.shape[1:])))  # a torch tensor: on its device
    for array, part in zip(out, (cost, grad, jtj, bestfit)):
        array[rows] = part
    return out


def _pairs(owners):
    """Every (earlier, later) pair of fits of the same spectrum, as two index arrays: spectrum by spectrum,
    each one's in the order of its earlier then its later fit. The spectra with the same number of fits at once
    (a block's spectra have the same guesses: one group), then put in that order."""
    order = np.argsort(owners, kind="stable")
    _, begin, count = np.unique(owners[order], return_index=True, return_counts=True)
    first, second, owner = [], [], []
    for size in np.unique(count):
        rows = order[begin[count == size][:, None] + np.arange(size)]  # (spectra, size), each row ascending
        a, b = np.triu_indices(size, 1)
        first.append(rows[:, a].ravel())
        second.append(rows[:, b].ravel())
        owner.append(np.repeat(owners[rows[:, 0]], a.size))
    first, second, owner = (np.concatenate(v) for v in (first, second, owner))
    keep = np.lexsort((second, first, owner))
    return first[keep], second[keep]


def _paths(steps, merged, joined):
    """(steps of each fit's path, the fit whose point is its answer): a fit that stopped on meeting an earlier
    one (``merged``) takes the rest of that one's path, the steps it made after their meeting (``joined``: its
    count then), and its answer."""
    path, answer = steps.copy(), np.arange(len(steps))
    for fit in np.flatnonzero(merged >= 0):  # in order: the one met is earlier, its path known
        path[fit] += path[merged[fit]] - joined[fit]
        answer[fit] = answer[merged[fit]]
    return path, answer


def _merge(theta, jtj, live, merged, pairs, same, started, steps, joined):
    """Stop a running fit that has come within ``same`` standard errors of an earlier guess of its spectrum.

    Two fits at the same point of the same χ² surface go on to the same minimum: the later
    one stops and, at the end, takes the earlier one's answer (ULySS would find the two
    equal and keep the first). The standard errors are those of the earlier fit's JᵀJ. Only fits
    ``started`` (not held) are compared; ``joined`` keeps the earlier one's ``steps`` at the meeting.
    """
    earlier, later = pairs
    candidates = live[later] & started[earlier] & (merged[earlier] < 0) & (merged[later] < 0)
    if not candidates.any():
        return
    earlier, later = earlier[candidates], later[candidates]
    with np.errstate(invalid="ignore", divide="ignore"):
        try:
            variance = np.diagonal(np.linalg.inv(jtj[earlier]), axis1=1, axis2=2)
        except np.linalg.LinAlgError:
            return
        close = np.all(np.abs(theta[later] - theta[earlier]) <= same * np.sqrt(variance), axis=1)
    for a, b in zip(earlier[close], later[close]):
        if merged[b] < 0 and merged[a] < 0:
            merged[b], joined[b] = a, steps[a]
            live[b] = False


def mpfit_errors(theta, grad, jtj, cols, lo, hi):
    """MPFIT's errors: √diag((JᵀJ)⁻¹) over the unpegged free parameters, 0 for the others."""
    active = unpegged(theta[:, cols], grad, lo, hi)
    eye = np.eye(cols.size)
    mask = active[:, :, None] & active[:, None, :]
    error = np.zeros(theta.shape)
    with np.errstate(invalid="ignore"):
        try:
            variance = np.diagonal(np.linalg.inv(np.where(mask, jtj, eye)), axis1=1, axis2=2)
        except np.linalg.LinAlgError:  # a singular matrix somewhere: one at a time
            variance = np.full(active.shape, np.nan)
            for k in range(len(theta)):
                try:
                    variance[k] = np.diagonal(np.linalg.inv(np.where(mask[k], jtj[k], eye)))
                except np.linalg.LinAlgError:
                    pass
        error[:, cols] = np.where(active, np.sqrt(variance), 0.0)
    return error
