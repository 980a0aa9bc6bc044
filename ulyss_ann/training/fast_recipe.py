"""The fast recipe: variable projection + Levenberg–Marquardt on the hidden weights.

The network is the paper's, ``y(x) = [1, h(x)] · W_out`` with logistic hidden layers
``h`` and a linear output layer. For fixed hidden weights θ the output layer is a
*linear* least-squares problem, so it is solved exactly at every step and only θ is
iterated (variable projection, Golub & Pereyra 1973; Kaufman 1975):

    cost(θ) = ‖(I − Q Qᵀ) T‖²_F ,     W_out(θ) = H⁺ Y ,

where ``H = [1, h(X; θ)]`` (n × (m+1)) is the matrix of last-hidden-layer outputs over
the n training nodes, ``Q`` an orthonormal basis of its columns, and ``T = Y V_r`` the
targets ``Y`` (n × npix, normalised flux) compressed onto their ``r`` leading right
singular vectors ``V_r`` (the spectra of a grid live in a low-dimensional space: the
surrogate grid is exactly of rank 65; MILES needs more). The discarded part of Y adds
a constant ``‖Y − Y V_r V_rᵀ‖²`` to the cost, reported in the MSE, so

    MSE = (cost(θ) + ‖Y − T V_rᵀ‖²) / (n · npix)

is the same MSE as Keras's loss on these nodes.

The LM step uses Kaufman's Jacobian of the projected residual,
``J_k = −(I − QQᵀ) (∂H/∂θ_k) A`` with ``A = H⁺ T``, and solves
``(JᵀJ + λ I) δ = −Jᵀ r`` (identity damping: Marquardt's diag(JᵀJ) scaling was
measured slower here). JᵀJ (2,240² for the trial-7 architecture) is never formed from
J, which would have n·r·2240 ≈ 4·10⁸ entries: a weight of the last hidden layer moves
one hidden unit, so its Jacobian column is a rank-one n × r matrix ``u aᵀ`` and the
Gram matrix of that block is ``[U⊥ᵀ U⊥] ∘ [A Aᵀ]`` (U⊥ = the projected unit
sensitivities); the first layer's 128 weights are handled as explicit columns. One
iteration costs one n × 2112² Gram product (≈ 0.5 s on this 2-core machine).

Reliability: time to target varies with the initial weights, so several starts run a
short phase each (Glorot-normal weights as in Keras, different seeds) and the best one
is continued. Supports one or two logistic hidden layers (the paper's trials 7 and 8);
deeper presets use the Adam recipe.
"""

import time

import numpy as np
import scipy.linalg

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.model.network import ACTIVATIONS, augment, forward
from ulyss_ann.training.outlier_stars import outlier_stars, validation_score

__all__ = ["VarProNetwork", "fit_varpro", "predict"]

_logistic = ACTIVATIONS["logistic"][0]


def predict(weights, x):
    """Output of the network ``[W1, …, W_out]`` (bias in row 0; logistic hidden layers, linear out)."""
    return forward(x, weights, ["logistic"] * (len(weights) - 1) + ["linear"])


class VarProNetwork:
    """Hidden weights θ of a 1- or 2-hidden-layer logistic network and their VarPro algebra.

    Parameters
    ----------
    x : ndarray (n, npar)
        Standardised inputs of the training nodes.
    targets : ndarray (n, r)
        Compressed targets ``T = Y V_r``.
    hidden : tuple of int
        Widths of the hidden layers (1 or 2 of them).
    """

    def __init__(self, x, targets, hidden, ridge=0.0):
        if len(hidden) not in (1, 2):
            raise UlyssAnnError(f"the fast recipe trains 1 or 2 hidden layers, not {len(hidden)} "
                                f"({hidden}); use --recipe paper for deeper networks")
        self.xe = augment(x)
        self.plain_targets = targets
        self.set_star_weights(None)
        self.hidden = tuple(hidden)
        inputs = (x.shape[1],) + self.hidden[:-1]
        self.shapes = [(i + 1, o) for i, o in zip(inputs, self.hidden)]
        self.sizes = [a * b for a, b in self.shapes]
        self._buffers = {}
        self.ridge = float(ridge)

    def set_star_weights(self, weights):
        """Weight each node's (star's) squared residual by ``weights`` (n,; None: all 1).

        The cost becomes ``Σ_i w_i ‖t_i − h_i A‖²``: rows of H and T scaled by √w_i, so a
        star of weight 0 neither pulls the hidden layers nor the output layer.
        """
        self.root_weights = None if weights is None else np.sqrt(np.asarray(weights, float))
        self.targets = self._weighted(self.plain_targets)

    def _weighted(self, rows):
        return rows if self.root_weights is None else rows * self.root_weights[:, None]

    def star_residuals(self, theta):
        """Each node's ‖t_i − h_i A‖² (whatever its weight) for the output layer A of the weighted fit."""
        layers, _, _, a, _, _ = self.project(theta)
        return np.sum((self.plain_targets - layers[-1] @ a) ** 2, axis=1)

    def glorot(self, seed):
        """Glorot-normal weights and zero biases (Keras's defaults), flattened."""
        rng = np.random.default_rng(seed)
        parts = []
        for rows, cols in self.shapes:
            w = np.zeros((rows, cols))
            fan_in, fan_out = rows - 1, cols
            std = np.sqrt(2.0 / (fan_in + fan_out))
            w[1:] = np.clip(rng.normal(0, std, (fan_in, fan_out)), -2 * std, 2 * std)  # truncated normal
            parts.append(w.ravel())
        return np.concatenate(parts)

    def unpack(self, theta):
        out, start = [], 0
        for shape, size in zip(self.shapes, self.sizes):
            out.append(theta[start:start + size].reshape(shape))
            start += size
        return out

    def hidden_outputs(self, theta):
        """Activations of each hidden layer, with a leading column of ones (bias input)."""
        layers = [self.xe]
        for w in self.unpack(theta):
            layers.append(augment(_logistic(layers[-1] @ w)))
        return layers

    def ridge_qr(self, h):
        """QR factors of ``[H; √μ I]`` (of ``H`` alone without a ridge)."""
        stacked = np.vstack([h, np.sqrt(self.ridge) * np.eye(h.shape[1])]) if self.ridge else h
        return np.linalg.qr(stacked)

    def project(self, theta):
        """Layers, Q (its node rows and its ridge rows), A = H⁺T and the projected residual.

        With a ridge μ the output layer solves ``min ‖T − HA‖² + μ‖A‖²``, i.e. the least
        squares problem of the stacked ``[H; √μ I]`` and ``[T; 0]``: Q is the orthonormal
        basis of the stacked matrix, split into its n node rows and its ridge rows.
        """
        layers = self.hidden_outputs(theta)
        h = self._weighted(layers[-1])
        q, r = self.ridge_qr(h)
        q_top, q_bot = q[:len(h)], q[len(h):]
        qt = q_top.T @ self.targets
        a = scipy.linalg.solve_triangular(r, qt, check_finite=False)
        return layers, q_top, q_bot, a, self.targets - q_top @ qt, -(q_bot @ qt)

    def cost(self, theta):
        """(ridge-penalised cost, data part ‖T − HA‖²)."""
        _, _, _, _, res, res_bot = self.project(theta)
        data = float(np.sum(res ** 2))
        return data + float(np.sum(res_bot ** 2)), data

    def normal_equations(self, theta):
        """((cost, data part), JᵀJ, g) at θ, with g = −Jᵀr the steepest-descent direction of ½cost."""
        layers, q, q_bot, a, res, res_bot = self.project(theta)
        data = float(np.sum(res ** 2))
        cost = (data + float(np.sum(res_bot ** 2)), data)
        prev, last = layers[-2], layers[-1][:, 1:]
        s_last = self._weighted(last * (1 - last))                  # σ' of the last hidden layer (× √w)
        a1 = a[1:]                                                  # (m, r): rows of A for hidden units
        n, m = last.shape
        ni, r = prev.shape[1], a.shape[1]
        # last hidden layer: column (i, j) of J is -(I-QQᵀ) u_ij a_jᵀ with u_ij = σ'_j · prev_i
        u = np.multiply(prev[:, :, None], s_last[:, None, :], out=self._buffer("u", (n, ni, m))).reshape(n, -1)
        qu = q.T @ u
        u -= np.matmul(q, qu, out=self._buffer("qqu", u.shape))
        bot = q_bot @ qu                                            # the ridge rows of (I-QQᵀ)[u; 0]
        gram_last = (u.T @ u + bot.T @ bot).reshape(ni, m, ni, m) * (a1 @ a1.T)[None, :, None, :]
        gram_last = gram_last.reshape(u.shape[1], u.shape[1])
        g_last = (prev.T @ (s_last * (res @ a1.T))).ravel()
        if len(layers) == 2:
            return cost, gram_last, g_last
        # first hidden layer (of two): column (p, k) of J is -(I-QQᵀ) diag(v_pk) M_k,
        # v_pk = σ'_k(h1) xe_p and M_k = (σ'_last ∘ W2[1+k]) A1 (n × r)
        w2 = self.unpack(theta)[1]
        h1, xe = layers[1][:, 1:], layers[0]
        npar1, k1 = xe.shape[1], h1.shape[1]
        mk = np.matmul(np.multiply(s_last[None], w2[1:][:, None, :], out=self._buffer("sw", (k1, n, m))), a1,
                       out=self._buffer("mk", (k1, n, r)))
        v = ((h1 * (1 - h1))[:, None, :] * xe[:, :, None]).transpose(1, 2, 0)   # (npar1, k1, n)
        cols = np.multiply(v[:, :, :, None], mk[None], out=self._buffer("cols", (npar1, k1, n, r)))
        cols = cols.reshape(npar1 * k1, n, r)
        g_first = cols.reshape(npar1 * k1, n * r) @ res.ravel()       # <G, R> (before projecting)
        qc = np.matmul(q.T[None], cols)
        cols -= np.matmul(q[None], qc, out=self._buffer("qqc", cols.shape))   # (I - QQᵀ) on the node axis
        flat = cols.reshape(npar1 * k1, n * r)
        bot = np.matmul(q_bot[None], qc).reshape(npar1 * k1, -1)
        gram_first = flat @ flat.T + bot @ bot.T
        # cross terms <G⊥_first, G⊥_last> = <G⊥_first, G_last> (the projector is idempotent):
        # Σ_s (cols_pk A1ᵀ)[s, j] σ'_j[s] prev_i[s], batched over the first-layer columns
        z = np.matmul(cols, a1.T, out=self._buffer("z", (npar1 * k1, n, m)))
        z *= s_last[None]
        cross = np.matmul(prev.T[None], z).reshape(npar1 * k1, -1)     # (npar1·k1, i·m)
        gram = np.block([[gram_first, cross], [cross.T, gram_last]])
        return cost, gram, np.concatenate([g_first, g_last])

    def _buffer(self, name, shape):
        """A work array kept between iterations: re-allocating ~200 MB each step costs page faults."""
        buf = self._buffers.get(name)
        if buf is None or buf.shape != shape:
            buf = self._buffers[name] = np.empty(shape)
        return buf

    def output_layer(self, theta, y):
        """The exact least-squares output layer (bias in row 0) for full targets ``y``.

        Solved through the same QR factorisation as the cost, not ``lstsq``'s SVD with its
        default cut-off: trained hidden units are nearly collinear (condition numbers of
        1e8 and more), and truncating them loses the precision the iterations gained.
        """
        h = self._weighted(self.hidden_outputs(theta)[-1])
        q, r = self.ridge_qr(h)
        return scipy.linalg.solve_triangular(r, q[:len(h)].T @ self._weighted(y), check_finite=False)


def _lm_steps(net, theta, lam, deadline, max_iter, on_step):
    """Levenberg–Marquardt iterations until ``deadline`` or ``max_iter``.

    Damping update of Nielsen (1999): after a step with gain ratio ρ (actual over
    predicted decrease) λ ← λ·max(1/3, 1 − (2ρ − 1)³); after a rejected step λ ← λ·ν,
    ν ← 2ν. Returns (θ, (cost, data cost), λ); ``on_step(θ, data cost)`` after each
    accepted step, which returns True when it changed the stars' weights.
    """
    cost, gram, grad = net.normal_equations(theta)
    diag, nu = np.arange(len(theta)), 2.0
    for _ in range(max_iter):
        accepted = False
        while not accepted and lam < 1e12 and time.perf_counter() < deadline:
            system = gram.copy()
            system[diag, diag] += lam
            try:
                step = scipy.linalg.cho_solve(scipy.linalg.cho_factor(system, check_finite=False), grad,
                                              check_finite=False)
            except np.linalg.LinAlgError:
                lam, nu = lam * nu, nu * 2
                continue
            trial = theta + step
            trial_cost = net.cost(trial)
            rho = (cost[0] - trial_cost[0]) / max(step @ grad + lam * (step @ step), 1e-300)
            if rho > 0:
                theta, accepted = trial, True
                lam, nu = lam * max(1 / 3, 1 - (2 * rho - 1) ** 3), 2.0
            else:
                lam, nu = lam * nu, nu * 2
        if not accepted:
            break  # out of time, or converged: no step lowers the cost
        cost, gram, grad = net.normal_equations(theta)
        if on_step(theta, cost[1]):  # the cost itself changed (other stars excluded): start afresh
            cost, gram, grad = net.normal_equations(theta)
    return theta, cost, lam


class _Reached(Exception):
    """The target MSE was reached (carries θ)."""


def fit_varpro(x, y, hidden, seed=0, time_limit=60.0, target_mse=None, starts=1, start_fraction=0.15,
               rank=None, ridge=1e-12, max_iter=100000, on_step=None, validation=None, patience=20,
               clip_stars=None, trim=0.0, reclip=True, report=None):
    """Train the hidden weights by VarPro + LM; return the weights of every layer (bias row 0).

    Parameters
    ----------
    x : ndarray (n, npar)
        Standardised inputs of the training nodes.
    y : ndarray (n, npix)
        Their spectra.
    hidden : tuple of int
        Hidden layer widths (1 or 2 layers).
    time_limit : float
        Seconds for the whole run (starts included).
    target_mse : float or None
        Stop as soon as the training MSE is at or below it.
    starts : int
        Independent starts, each run for ``start_fraction × time_limit`` before the best
        is continued.
    rank : int or None
        Number of singular vectors of ``y`` kept; by default enough that the
        discarded part adds < 1e-10 to the MSE, capped at 400.
    ridge : float
        μ of the output layer's ridge penalty ``μ‖W_out‖²``, per node and pixel of the
        MSE (so μ = 1e-12 weighs like an MSE of 1e-12 per unit weight²). Without it
        the hidden units drift into near-collinearity (condition numbers ~1e12) and the
        output weights grow to ~1e9, which no float32 Keras and no GDL evaluation would
        reproduce; the authors' output weights are below 6.
    on_step : callable(seconds, train_mse, weights, validation_mse) or None
        Called after every accepted step of the final run, with the weights of every
        layer as returned (``validation_mse`` is NaN without ``validation``).
    validation : (x_val, y_val) or None
        Nodes kept out of the fit for early stopping: the weights with the lowest MSE
        on them are returned, and the run stops after ``patience`` accepted steps
        without improvement. LM drives the training MSE down relentlessly; on a noisy
        grid (MILES) the held-out error is lowest after a few steps and then grows
        by orders of magnitude (measured: 0.0018 at step 9, 0.15 at step 140).

    clip_stars : float or None
        Robust training: the training stars whose MSE stands ``clip_stars`` robust standard
        deviations above the rest (:func:`~ulyss_ann.training.outlier_stars.outlier_stars`)
        get weight 0 in the fit, decided on the start and again after every step (a star
        may come back); the training MSE is then that of the stars fitted.
    trim : float
        Early stopping scores the validation stars by their mean MSE without the worst
        ``trim`` fraction (:func:`~ulyss_ann.training.outlier_stars.validation_score`); 0: the mean.
    report : dict or None
        Holds ``excluded``: indices (into ``x``) of the stars excluded, at each step when
        ``on_step`` is called, and at the end those of the weights returned.

    Returns
    -------
    weights : list of ndarray
        ``[W1, (W2,) W_out]`` with biases in row 0, ready for a Keras model or a perceptron file.
    """
    began = time.perf_counter()
    n, npix = y.shape
    _, sv, vt = np.linalg.svd(y, full_matrices=False)
    tail = np.append(np.cumsum((sv ** 2)[::-1])[::-1], 0.0)     # tail[k] = Σ_{i≥k} s_i²
    if rank is None:
        rank = int(min(400, np.argmax(tail <= 1e-10 * n * npix)))
    rank = max(1, min(int(rank), len(sv)))
    discarded, scale = float(tail[rank]), n * npix
    # the ridge acts on A = W_out V_r, whose norm is ‖W_out‖ on the kept subspace
    net = VarProNetwork(x, y @ vt[:rank].T, hidden, ridge=ridge * scale)
    # each star's part of ‖Y − T V_rᵀ‖²: V_r has orthonormal rows
    star_discarded = np.maximum(np.sum(y ** 2, axis=1) - np.sum(net.plain_targets ** 2, axis=1), 0.0)
    clipped = {"mask": np.zeros(n, bool)}

    def mse(data):
        if not clipped["mask"].any():
            return (data + discarded) / scale
        kept = ~clipped["mask"]
        return (data + float(star_discarded[kept].sum())) / (kept.sum() * npix)

    def exclude(t, rounds):
        """Re-decide the excluded stars at θ = t (until stable, at most ``rounds`` times); True if changed."""
        changed = False
        for _ in range(rounds):
            mask = outlier_stars((net.star_residuals(t) + star_discarded) / npix, x, clip_stars)
            if np.array_equal(mask, clipped["mask"]):
                break
            clipped["mask"], changed = mask, True
            net.set_star_weights(None if not mask.any() else (~mask).astype(float))
        return changed

    theta, lam = net.glorot(seed), 1e-2
    if clip_stars:
        exclude(theta, 10)
    cost = net.cost(theta)
    if starts > 1:  # several short runs from different initial weights; continue the best
        best = None
        for start in range(starts):
            deadline = min(time.perf_counter() + start_fraction * time_limit, began + time_limit)
            result = _lm_steps(net, net.glorot(seed + 1000 * start), lam, deadline, max_iter, lambda t, c: None)
            best = result if best is None or result[1][0] < best[1][0] else best
        theta, cost, lam = best

    best = {"val": np.inf, "theta": theta, "since": 0, "mask": clipped["mask"]}

    def step(t, data):
        changed = bool(clip_stars) and reclip and exclude(t, 1)
        if changed:
            data = net.cost(t)[1]
        weights = list(net.unpack(t)) + [net.output_layer(t, y)] if (on_step or validation) else None
        val = float("nan")
        if validation is not None:
            val = validation_score(np.mean((predict(weights, validation[0]) - validation[1]) ** 2, axis=1), trim)
            if val < best["val"]:
                best.update(val=val, theta=t, since=0, mask=clipped["mask"])
            else:
                best["since"] += 1
        if report is not None:
            report["excluded"] = np.flatnonzero(clipped["mask"])
        if on_step is not None:
            on_step(time.perf_counter() - began, mse(data), weights, val)
        if target_mse is not None and mse(data) <= target_mse:
            raise _Reached(t)
        if validation is not None and best["since"] >= patience:
            raise _Reached(best["theta"])
        return changed

    try:
        step(theta, cost[1])
        theta = _lm_steps(net, theta, lam, began + time_limit, max_iter, step)[0]
    except _Reached as reached:
        theta = reached.args[0]
    if validation is not None:
        theta = best["theta"]
        net.set_star_weights(None if not best["mask"].any() else (~best["mask"]).astype(float))
        clipped["mask"] = best["mask"]
    if report is not None:
        report["excluded"] = np.flatnonzero(clipped["mask"])
    return list(net.unpack(theta)) + [net.output_layer(theta, y)]

