"""The native engine's optimiser: MPFIT's bounded Levenberg–Marquardt, for many starting points at once.

ULySS fits every combination of guesses with MPFIT; :func:`levenberg_marquardt` runs them
in lock-step, so that one batched model evaluation (``problem.evaluate_many``, see
:mod:`ulyss_ann.fitting.native_engine`) serves all guesses in each round. The conventions are
MPFIT's: Marquardt scaling of the damping, parameters pegged at a bound when the gradient
pushes outwards (:func:`unpegged`), steps clipped to the box, and zero errors for pegged
and fixed parameters.
"""

import numpy as np

__all__ = ["levenberg_marquardt", "unpegged"]


def unpegged(theta, grad, lower, upper, free):
    """The free parameters not pegged at a bound (on it, with ½∇χ² = ``grad`` pushing outwards),
    as MPFIT decides; works on one θ or a stack of them."""
    return free & ~(((theta <= lower) & (grad > 0)) | ((theta >= upper) & (grad < 0)))


def levenberg_marquardt(problem, thetas, lower, upper, free, max_iter=200, ftol=1e-7, xtol=1e-10):
    """Bounded Levenberg–Marquardt for G starting points in lock-step (one batched evaluation per round).

    Per guess, as MPFIT: Marquardt scaling of the damping, parameters pegged at a bound
    when the gradient pushes outwards, steps clipped to the box; a step is kept only
    if it lowers χ² (λ ÷ 10), else λ × 10. A guess stops when χ² falls by less than
    ``ftol`` relatively (MPFIT: 1e-5), its step is below ``xtol``, or λ exceeds 1e8.
    Returns one dict per guess (θ, cost, best fit, errors).
    """
    thetas = np.clip(np.asarray(thetas, float), lower, upper)
    resid, bestfit, jac = problem.evaluate_many(thetas)
    cost = np.einsum("gi,gi->g", resid, resid)
    lam = np.full(len(thetas), 1e-3)
    live = np.ones(len(thetas), bool)
    eye = np.eye(thetas.shape[1])
    for _ in range(max_iter):
        if not live.any():
            break
        idx = np.flatnonzero(live)
        j, r, th = jac[idx], resid[idx], thetas[idx]
        grad = np.einsum("gij,gi->gj", j, r)                       # ½ ∇χ²
        active = unpegged(th, grad, lower, upper, free)
        jtj = j.transpose(0, 2, 1) @ j
        scale = np.maximum(np.diagonal(jtj, axis1=1, axis2=2), 1e-30)
        mask = active[:, :, None] & active[:, None, :]
        system = np.where(mask, jtj + lam[idx, None, None] * scale[:, :, None] * eye, eye)
        delta = np.linalg.solve(system, np.where(active, -grad, 0.0)[:, :, None])[:, :, 0]
        trial = np.clip(th + delta, lower, upper)
        r_t, b_t, j_t = problem.evaluate_many(trial)
        c_t = np.einsum("gi,gi->g", r_t, r_t)
        better = c_t < cost[idx]
        for k, g in enumerate(idx):
            if better[k]:
                step, reduction = trial[k] - thetas[g], (cost[g] - c_t[k]) / cost[g]
                thetas[g], resid[g], bestfit[g], jac[g], cost[g] = trial[k], r_t[k], b_t[k], j_t[k], c_t[k]
                lam[g] = max(lam[g] / 10, 1e-12)
                if reduction < ftol or np.all(np.abs(step) <= xtol * (np.abs(thetas[g]) + xtol)):
                    live[g] = False
            else:
                lam[g] *= 10
                if lam[g] > 1e8:
                    live[g] = False  # no step lowers χ²: converged
            if not np.any(unpegged(thetas[g], jac[g].T @ resid[g], lower, upper, free)):
                live[g] = False
    results = []
    for g in range(len(thetas)):
        active = unpegged(thetas[g], jac[g].T @ resid[g], lower, upper, free)
        error = np.zeros(thetas.shape[1])  # MPFIT gives pegged and fixed parameters 0
        if np.any(active):
            ja = jac[g][:, active]
            try:
                error[active] = np.sqrt(np.diag(np.linalg.inv(ja.T @ ja)))
            except np.linalg.LinAlgError:
                error[active] = np.nan
        results.append({"theta": thetas[g], "cost": cost[g], "bestfit": bestfit[g], "error": error})
    return results
