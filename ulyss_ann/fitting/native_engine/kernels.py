r"""Compiled kernels of the native engine: the LOSVD with its derivatives, the Jacobian's products, the inverse.

Measured on the 2-core CI machine (``scripts/bench_native`` prints the profile): after the
batched rewrite, a NumPy element-wise operation costs ~0.7 ns per element even in cache,
and ULySS's sampled LOSVD is ~10 taps × 5 arrays × 2 passes per pixel — 170 µs a row
(one spectrum × one guess) per optimiser round, most of a fit. A loop compiled by
numba does it in one pass at ~28 µs; torch's grouped ``conv1d`` on the CPU took ~99 µs
(it does not vectorise float64 depthwise convolution), so numba it is. The second
kernel forms the Jacobian row by row and accumulates Jᵀr and JᵀJ without storing J; its sums over
pixels are compiled with ``fastmath`` (reassociated into SIMD lanes: 771 → 204 µs for 16 rows of
3700 pixels, equal to the NumPy twin to ~3e-15 relative).

The third inverts the polynomial's normal matrices through their Cholesky factor (:func:`spd_inverse`:
~5 µs a 21 × 21 matrix against ~12 µs in NumPy's batched calls).

Each kernel has a NumPy twin (:func:`losvd_numpy`, :func:`products_numpy`, :func:`spd_inverse_numpy`;
:func:`losvd_values` is :func:`losvd`'s t·w alone, the spline's twin is ``NaturalSpline.numpy``), used
where numba is not installed and by the tests, which check that both give the same numbers.
Kernels are compiled on first use and cached on disk (numba's ``cache=True``); the first fit of an
installation says so first (:func:`announce_compilation`: 5–20 s of compiling are not silent).
"""

import multiprocessing
import sys

import numpy as np

from ulyss_ann.fitting.native_engine import notice
from ulyss_ann.fitting.native_engine.sampled_losvd import convolve_edge, losvd_kernel

try:
    import numba
except ImportError:  # pragma: no cover - numba is a dependency; NumPy's twins work without it
    numba = None

__all__ = ["losvd", "losvd_values", "products", "spline", "spd_inverse", "running_sums", "row_sums", "losvd_numpy",
           "products_numpy", "spd_inverse_numpy", "weighted", "SPD_LOOP_MAX", "COMPILED", "compilation_notice",
           "announce_compilation"]

#: Whether the compiled kernels are in use (numba importable).
COMPILED = numba is not None


def _losvd(f, df, vel, sigma, voff, weights):
    """The sampled LOSVD of each row of f (L, n) and ∂f/∂p (L, C − 1, n), weighted (two arrays as the network
    gives them: joined, they cost a copy of the largest array of a round).

    Returns (t (L, n), t·w (L, n), ∂(t·w)/∂θ (L, 2 + C − 1, n) in θ's order: v, σ, p…).
    """
    rows, n = f.shape
    width = df.shape[1] + 1
    t = np.empty((rows, n))
    tw = np.empty((rows, n))
    dt = np.empty((rows, width + 1, n))
    for r in range(rows):
        dx, kern, dk_dv, dk_ds = _losvd_kernel(vel[r], sigma[r], voff, n)
        padded = np.empty(n + 2 * dx)
        acc = np.zeros((width + 2, n))
        for c in range(width):  # one input at a time: its padded copy and its sum stay in the L1 cache
            if c == 0:
                padded[dx:dx + n] = f[r]
            else:
                padded[dx:dx + n] = df[r, c - 1]
            first, last = padded[dx], padded[dx + n - 1]
            for i in range(dx):  # the edges repeated (EDGE_TRUNCATE)
                padded[i] = first
                padded[dx + n + i] = last
            for k in range(2 * dx + 1):
                coefficient = kern[k]
                if coefficient == 0.0:  # beyond 5σ: for finite inputs (a network's output is) it would add ±0
                    # to a sum that began at +0, which changes no bit; 0·inf would have made a NaN
                    continue
                for i in range(n):
                    acc[c, i] += coefficient * padded[i + k]
            if c == 0:  # ∂t/∂v, ∂t/∂σ: the kernel's derivatives on f
                for k in range(2 * dx + 1):
                    cv, cs = dk_dv[k], dk_ds[k]
                    if cv == 0.0 and cs == 0.0:
                        continue
                    for i in range(n):
                        acc[width, i] += cv * padded[i + k]
                        acc[width + 1, i] += cs * padded[i + k]
        # one output at a time, each loop vectorised (one loop over the pixels writing all five measured
        # 7 us a row of 2069 pixels, a quarter of the LOSVD's time, against ~2)
        w = weights[r]
        for i in range(n):
            t[r, i] = acc[0, i]
        for i in range(n):
            tw[r, i] = acc[0, i] * w[i]
        for i in range(n):
            dt[r, 0, i] = acc[width, i] * w[i]
        for i in range(n):
            dt[r, 1, i] = acc[width + 1, i] * w[i]
        for c in range(1, width):
            for i in range(n):
                dt[r, 1 + c, i] = acc[c, i] * w[i]
    return t, tw, dt


def _losvd_values(f, vel, sigma, voff, weights):
    """:func:`_losvd`'s t·w (L, n) alone, of ``f`` (L, n): the start search's χ² needs no derivative (a third
    of the taps' work); the same sums in the same order, so the same bits. Its padding and taps are
    :func:`_losvd`'s loops written out again: as shared compiled helpers (inlined or not) the LOSVD
    measured 380-540 µs for 16 rows against a steady 385 µs written out."""
    rows, n = f.shape
    tw = np.empty((rows, n))
    for r in range(rows):
        dx, kern, _, _ = _losvd_kernel(vel[r], sigma[r], voff, n)
        padded = np.empty(n + 2 * dx)
        acc = np.zeros(n)
        padded[dx:dx + n] = f[r]
        first, last = padded[dx], padded[dx + n - 1]
        for i in range(dx):
            padded[i] = first
            padded[dx + n + i] = last
        for k in range(2 * dx + 1):
            coefficient = kern[k]
            if coefficient == 0.0:  # as _losvd
                continue
            for i in range(n):
                acc[i] += coefficient * padded[i + k]
        for i in range(n):
            tw[r, i] = acc[i] * weights[r, i]
    return tw


def _products(tw, back, dt, poly, resid):
    """Jᵀr (L, F) and JᵀJ (L, F, F) of J = tw·back − dt·poly, one row's J at a time."""
    rows, free, n = dt.shape
    grad = np.zeros((rows, free))
    jtj = np.zeros((rows, free, free))
    jac = np.empty((free, n))
    for r in range(rows):
        for f in range(free):
            for i in range(n):
                jac[f, i] = tw[r, i] * back[r, f, i] - dt[r, f, i] * poly[r, i]
        for f in range(free):
            total = 0.0
            for i in range(n):
                total += jac[f, i] * resid[r, i]
            grad[r, f] = total
            for g in range(f + 1):
                total = 0.0
                for i in range(n):
                    total += jac[f, i] * jac[g, i]
                jtj[r, f, g] = total
                jtj[r, g, f] = total
    return grad, jtj


def _spd_inverse(normal):
    """The inverse of each of a stack (L, K, K) of symmetric positive-definite matrices through its Cholesky
    factor (A = R Rᵀ, A⁻¹ = (R⁻¹)ᵀ R⁻¹), and the first that is not positive definite (-1: none). Returns
    (inverses, that index). NumPy's batched Cholesky then LU inverse spend ~12 µs on a 21 × 21 matrix in
    calls and copies; this loop ~5 µs (measured on 16 of the native engine's normal matrices). Only the
    lower triangle is read (the matrices are symmetric by construction, bit for bit)."""
    rows, k, _ = normal.shape
    out = np.empty_like(normal)
    low = np.zeros((k, k))
    inv_low = np.zeros((k, k))
    for s in range(rows):
        for j in range(k):  # R, column by column
            d = normal[s, j, j]
            for p in range(j):
                d -= low[j, p] * low[j, p]
            if d <= 0.0:  # NumPy's test; a NaN goes through, as NaN, as it does in NumPy's
                return out, s
            d = np.sqrt(d)
            low[j, j] = d
            for i in range(j + 1, k):
                v = normal[s, i, j]
                for p in range(j):
                    v -= low[i, p] * low[j, p]
                low[i, j] = v / d
        for j in range(k):  # R⁻¹ (lower triangular), by forward substitution
            inv_low[j, j] = 1.0 / low[j, j]
            for i in range(j + 1, k):
                v = 0.0
                for p in range(j, i):
                    v -= low[i, p] * inv_low[p, j]
                inv_low[i, j] = v / low[i, i]
        for i in range(k):  # (R⁻¹)ᵀ R⁻¹, symmetric
            for j in range(i + 1):
                v = 0.0
                for p in range(i, k):
                    v += inv_low[p, i] * inv_low[p, j]
                out[s, i, j] = v
                out[s, j, i] = v
    return out, -1


def spd_inverse_numpy(normal):
    """NumPy twin of :func:`spd_inverse`: Cholesky (LinAlgError where a matrix is not positive definite), then
    one LU inverse."""
    np.linalg.cholesky(normal)
    return np.linalg.inv(normal)


#: Above this size (MDEGREE 64) the normal matrices go to LAPACK, whose blocked algorithm the scalar loop does not
#: have: measured faster here up to K = 81 (6 matrices 0.99 against 1.58 ms), slower at 81 in a loaded hour.
SPD_LOOP_MAX = 65


def spd_inverse(normal):
    """The inverses of a stack (L, K, K) of symmetric positive-definite matrices (the polynomial's normal
    matrices BᵀB), float64; LinAlgError where one is not positive definite (a singular polynomial: the engine's
    signal)."""
    if _spd_inverse_compiled is None or normal.shape[-1] > SPD_LOOP_MAX:
        return spd_inverse_numpy(normal)
    inverse, bad = _spd_inverse_compiled(np.ascontiguousarray(normal, dtype=np.float64))
    if bad >= 0:
        raise np.linalg.LinAlgError(f"matrix {bad} is not positive definite")
    return inverse


def _spline(dx, y, multipliers, diagonal, upper, interval, h, h2, h3):
    """:class:`~ulyss_ann.fitting.native_engine.numerics.NaturalSpline` at its points for the columns of
    ``y`` (n, m), operation for operation as its NumPy twin (SciPy's order; LAPACK's ``gtts2`` for the
    slopes, the LU factors without row interchanges of a diagonally dominant system), in one pass per step
    instead of a dozen temporaries (measured 240 -> 60 us for 3700 knots, 3 columns)."""
    n, m = y.shape
    slope = np.empty((n - 1, m))
    s = np.empty((n, m))
    for i in range(n - 1):
        for j in range(m):
            slope[i, j] = (y[i + 1, j] - y[i, j]) / dx[i]
    for j in range(m):
        s[0, j] = 3 * (y[1, j] - y[0, j])
        s[n - 1, j] = 3 * (y[n - 1, j] - y[n - 2, j])
    for i in range(1, n - 1):
        for j in range(m):
            s[i, j] = 3 * (dx[i] * slope[i - 1, j] + dx[i - 1] * slope[i, j])
    for i in range(n - 1):  # forward elimination
        for j in range(m):
            s[i + 1, j] = s[i + 1, j] - multipliers[i] * s[i, j]
    for j in range(m):  # back substitution
        s[n - 1, j] = s[n - 1, j] / diagonal[n - 1]
        s[n - 2, j] = (s[n - 2, j] - upper[n - 2] * s[n - 1, j]) / diagonal[n - 2]
    for i in range(n - 3, -1, -1):
        for j in range(m):
            s[i, j] = (s[i, j] - upper[i] * s[i + 1, j]) / diagonal[i]
    out = np.empty((interval.size, m))
    for k in range(interval.size):
        i = interval[k]
        for j in range(m):
            t = (s[i, j] + s[i + 1, j] - 2 * slope[i, j]) / dx[i]
            cubic, square = t / dx[i], (slope[i, j] - s[i, j]) / dx[i] - t
            out[k, j] = ((y[i, j] + s[i, j] * h[k]) + square * h2[k]) + cubic * h3[k]
    return out


def _running_sums(y):
    """The running sums of the columns of ``y`` (n, m) after a row of zeros, (n + 1, m): the integral
    :func:`~ulyss_ann.fitting.native_engine.numerics.log_rebin` splines, ``np.cumsum``'s additions in its order
    (its first row is y's own: a -0 stays -0), without its strided pass and a concatenation (25 -> ~6 µs)."""
    n, m = y.shape
    out = np.empty((n + 1, m))
    for j in range(m):
        out[0, j] = 0.0
        if n > 0:
            out[1, j] = y[0, j]
    for i in range(1, n):
        for j in range(m):
            out[i + 1, j] = out[i, j] + y[i, j]
    return out


def _row_sums(values):
    """The sum of each row of ``values`` (R, m > 0), one value after another: ``np.cumsum(values, axis=1)[:, -1]``
    bit for bit, without the R × m partial sums (13 -> ~4 µs for the two rows of a MUSE spectrum's fits)."""
    rows, m = values.shape
    out = np.empty(rows)
    for r in range(rows):
        total = values[r, 0]
        for i in range(1, m):
            total += values[r, i]
        out[r] = total
    return out


def weighted(conv, weights):
    """(t, t·w, ∂(t·w)/∂θ in θ's order v, σ, p…) of a convolved stack (L, C + 2, n): the C convolved
    inputs (f, ∂f/∂p…), then ∂t/∂v and ∂t/∂σ."""
    width = conv.shape[1] - 2
    columns = [width, width + 1] + list(range(1, width))
    return conv[:, 0], conv[:, 0] * weights, conv[:, columns] * weights[:, None]


def losvd_numpy(f, df, vel, sigma, voff, weights):
    """NumPy twin of the compiled LOSVD: each row by ULySS's kernel and ``CONVOL(/EDGE_TRUNCATE)``
    (:func:`~ulyss_ann.fitting.native_engine.sampled_losvd.losvd_kernel`,
    :func:`~ulyss_ann.fitting.native_engine.sampled_losvd.convolve_edge`)."""
    stack = np.concatenate([f[:, None], df], axis=1)
    rows, width, n = stack.shape
    conv = np.empty((rows, width + 2, n))
    for r in range(rows):
        _, kern, dk_dv, dk_ds = losvd_kernel(vel[r], sigma[r], voff, n)
        conv[r, :width] = convolve_edge(stack[r].T, kern).T
        conv[r, width] = convolve_edge(stack[r, 0], dk_dv)
        conv[r, width + 1] = convolve_edge(stack[r, 0], dk_ds)
    return weighted(conv, weights)


def products_numpy(tw, back, dt, poly, resid):
    """NumPy twin of the compiled Jacobian products."""
    jac = tw[:, None] * back - dt * poly[:, None]
    return np.matmul(jac, resid[:, :, None])[:, :, 0], np.matmul(jac, jac.transpose(0, 2, 1))


def _compiled(function, fastmath=False):
    """``function`` compiled by numba, cached on disk where numba finds a writable folder: ``NUMBA_CACHE_DIR``
    when set, else beside this file (a source checkout, a venv of one's own), else the user's cache
    (``~/.cache/numba``: a package installed read-only); with none, compiled in each process
    (:func:`compilation_notice`)."""
    try:
        return numba.njit(cache=True, fastmath=fastmath)(function)
    except RuntimeError:  # "cannot cache function …: no locator available": no folder numba may write
        return numba.njit(fastmath=fastmath)(function)


if numba is not None:
    _losvd_kernel = _compiled(losvd_kernel)  # the same function, compiled
    losvd = _compiled(_losvd)
    # fastmath: the sums over pixels vectorised (reassociated): 3.8x faster, equal to the twin to ~3e-15
    products = _compiled(_products, fastmath=True)
    spline = _compiled(_spline)
    losvd_values = _compiled(_losvd_values)
    _spd_inverse_compiled = _compiled(_spd_inverse)
    running_sums, row_sums = _compiled(_running_sums), _compiled(_row_sums)
else:  # pragma: no cover
    losvd, products, spline = losvd_numpy, products_numpy, None
    losvd_values = _spd_inverse_compiled = running_sums = row_sums = None

_cached = set()     # the kernels this process found in numba's cache: not looked up again


def compilation_notice(kernels=None):
    """The line that says the kernels are about to be compiled (the first fit after an install, or after an
    upgrade of numba or of this package), or None when numba's cache has them.

    ``kernels``: those about to be used (default: all of this module's); a process that uses only some (the
    log-rebinning's spline on the GPU path) is told only of theirs. Compiling takes 5–20 s of a core, which
    a fit that says nothing would spend in silence. Judged from numba's cache index, as numba itself reads
    it (a private interface: where it changes, no notice rather than a wrong one).
    """
    if numba is None:
        return None
    folder = None
    # running_sums and row_sums compile in well under a second, and row_sums only where a spectrum has several
    # fitted guesses: a notice waiting on it would never clear where fits have one guess. Not counted.
    every = (losvd, products, spline, losvd_values, _spd_inverse_compiled)
    for kernel in every if kernels is None else kernels:
        if kernel in _cached:
            continue
        cache = getattr(kernel, "_cache", None)
        try:
            index = getattr(cache, "_cache_file", None)
            if index is None:  # no cache: numba found no folder it may write
                return ("ulyss-ann: compiling the native engine's kernels (5-20 s); no folder numba may write was "
                        "found, so every process compiles them again: set NUMBA_CACHE_DIR to a writable folder")
            folder = cache._cache_path
            cached = bool(index._load_index())
        except Exception:  # numba's internals changed: say nothing
            return None
        if not cached:
            return (f"ulyss-ann: compiling the native engine's kernels, once for this installation (5-20 s); "
                    f"they are cached in {folder}")
        _cached.add(kernel)
    return None


def announce_compilation(kernels=None):
    """Print :func:`compilation_notice` of ``kernels`` (default: all) to stderr, once per process; not in a
    worker process (a Dask worker's would reach the terminal once per worker: the batch driver says it
    once for them)."""
    if not notice.pending() or multiprocessing.parent_process() is not None:
        return
    line = compilation_notice(kernels)
    if line:
        notice.said()
        print(line, file=sys.stderr, flush=True)
