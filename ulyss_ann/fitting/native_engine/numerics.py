"""ULySS's spectral numerics in NumPy/SciPy: the pieces the native engine is built from.

Each follows the ULySS 1.3.2 routine named in its docstring (``uly_spect_extract``,
``uly_spect_logrebin`` and ``xrebin``, ``uly_slit`` and the relative LSF's convolution), plus pPXF's
analytic-Fourier LOSVD (Cappellari 2017) as the accurate alternative below a pixel. ULySS's sampled
LOSVD of ``uly_fit_lin`` and IDL's ``CONVOL(/EDGE_TRUNCATE)`` are in
:mod:`~ulyss_ann.fitting.native_engine.sampled_losvd`. How they make up a fit:
:mod:`ulyss_ann.fitting.native_engine.engine`.
"""

import functools
from types import SimpleNamespace

import numpy as np
from scipy.linalg import lapack, solve_banded

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.fitting.native_engine.sampled_losvd import convolve_edge
from ulyss_ann.model.wavelength import C_KMS

__all__ = ["LogSpectrum", "NaturalSpline", "xrebin", "natural_spline", "log_rebin", "extract", "extract_linear",
           "fourier_losvd", "slit_kernel", "lsf_convolve", "guess_odometer"]


# ----------------------------------------------------------------------------- rebinning
def xrebin(edges_in, y, edges_out):
    """ULySS's ``xrebin(/SPLINF)``: integrate, natural cubic spline at new edges, difference.

    ``y`` (n,) or (n, m) is per input bin; ``edges_in`` has n + 1 values, ``edges_out``
    k + 1; the result (k,) or (k, m) is per output bin (flux integrated over the bin).
    """
    return _integrated_rebin(NaturalSpline(edges_in, edges_out), y)


def natural_spline(x, y, at):
    """``scipy.interpolate.CubicSpline(x, y, bc_type="natural", axis=0)(at)``, bit for bit, without importing
    scipy.interpolate: it brings scipy.optimize, 0.36 s of every process's first fit (a notebook's, each
    Dask worker's). :class:`NaturalSpline` does the work; it keeps what depends on ``x`` and ``at`` alone.

    ``x`` (n,) increasing, n ≥ 2; ``y`` (n,) or (n, m); ``at`` (k,). Returns (k,) or (k, m).
    """
    return NaturalSpline(x, at)(y)


class NaturalSpline:
    """The natural cubic spline through knots ``x`` (n,), evaluated at ``at`` (k,), for any values on the knots.

    SciPy's own steps in its order: the slopes from the tridiagonal system (LAPACK's ``gtsv``, as
    ``solve_banded`` calls it: here its two halves, ``gttrf`` once for the knots and ``gttrs`` for each
    ``y``, the same operations), the Hermite coefficients, each point's interval (the last one closed) and
    the power sum of its cubic, extrapolated beyond the ends. A survey's spectra share their pixel edges:
    :func:`log_rebin` keeps one per grid, so the factorisation, the intervals and the powers of each point's
    offset are computed once. tests/test_native_fitter.py checks the result against SciPy, bit for bit.
    """

    def __init__(self, x, at):
        x, at = (np.asarray(v, dtype=np.float64) for v in (x, at))
        n = len(x)
        self.x, self.dx = x, np.diff(x)
        dx = self.dx
        diagonal = np.empty(n)
        diagonal[1:-1] = 2 * (dx[:-1] + dx[1:])
        diagonal[0], diagonal[-1] = 2 * dx[0], 2 * dx[-1]     # second derivative 0 at both ends
        upper, lower = np.r_[dx[0], dx[:-1]], np.r_[dx[1:], dx[-1]]
        if n < 3:  # two knots: SciPy's solve_banded (LAPACK's gtsv), which SciPy's gttrf refuses
            self.factors, self.plain = (lower, diagonal, upper), False
        else:
            *self.factors, info = lapack.dgttrf(lower, diagonal, upper)
            if info > 0:
                raise np.linalg.LinAlgError("singular matrix")
            # a spline's system is diagonally dominant: LU without row interchanges, solved by a compiled loop
            self.plain = bool(np.array_equal(self.factors[4], np.arange(1, n + 1)))
        self.interval = np.clip(np.searchsorted(x, at, side="right") - 1, 0, n - 2)
        self.h = at - x[self.interval]
        self.h2 = self.h * self.h
        self.h3 = self.h2 * self.h

    def __call__(self, y):
        y = np.asarray(y, dtype=np.float64)
        from ulyss_ann.fitting.native_engine.kernels import announce_compilation, spline  # numba: loaded here

        if self.plain and spline is not None:  # plain: three knots or more, no row interchange
            announce_compilation((spline,))  # a fit's first compiled kernel: said before it compiles
            lower, diagonal, upper = self.factors[:3]
            columns = np.ascontiguousarray(y.reshape(len(self.x), -1))
            out = spline(self.dx, columns, lower, diagonal, upper, self.interval, self.h, self.h2, self.h3)
            return out.reshape((len(self.interval),) + y.shape[1:])
        return self.numpy(y)

    def numpy(self, y):
        """The NumPy twin of the compiled :func:`~ulyss_ann.fitting.native_engine.kernels.spline`: SciPy's
        steps as SciPy writes them, the slopes by LAPACK's ``gttrs``."""
        n, interval = len(self.x), self.interval
        dxr = self.dx.reshape((n - 1,) + (1,) * (y.ndim - 1))
        slope = np.diff(y, axis=0) / dxr
        rhs = np.empty_like(y)
        rhs[1:-1] = 3 * (dxr[1:] * slope[:-1] + dxr[:-1] * slope[1:])
        rhs[0], rhs[-1] = 3 * (y[1] - y[0]), 3 * (y[-1] - y[-2])
        if n < 3:
            lower, diagonal, upper = self.factors
            bands = np.array([np.r_[0.0, upper], diagonal, np.r_[lower, 0.0]])
            s = solve_banded((1, 1), bands, rhs.reshape(n, -1), check_finite=False).reshape(y.shape)
        else:
            s = lapack.dgttrs(*self.factors, rhs.reshape(n, -1), overwrite_b=True)[0].reshape(y.shape)
        t = (s[:-1] + s[1:] - 2 * slope) / dxr
        cubic, square = t / dxr, (slope - s[:-1]) / dxr - t
        shape = (len(interval),) + (1,) * (y.ndim - 1)
        h, h2, h3 = (v.reshape(shape) for v in (self.h, self.h2, self.h3))
        pick = functools.partial(np.take, indices=interval, axis=0)  # y[:-1][interval], in a fifth of the time
        return ((pick(y) + pick(s) * h) + pick(square) * h2) + pick(cubic) * h3


class LogSpectrum:
    """A spectrum on a ln-λ grid, as ULySS holds it (``sampling = 1``)."""

    def __init__(self, data, err, good, start, step, dof_factor=1.0):
        self.data, self.err, self.good = data, err, good
        self.start, self.step, self.dof_factor = float(start), float(step), float(dof_factor)

    @property
    def npix(self):
        return self.data.shape[0]

    @property
    def wavelength(self):
        return np.exp(self.start + self.step * np.arange(self.npix))


def _borders(sampling, start, step, npix, wave):
    """Pixel edges (Å) and their logarithm for a sampling (0 linear, 1 ln-λ, 2 explicit)."""
    if sampling == 0:
        borders = start + (np.arange(npix + 1) - 0.5) * step
        return borders, np.log(borders)
    if sampling == 1:
        log_borders = start + (np.arange(npix + 1) - 0.5) * step
        return np.exp(log_borders), log_borders
    borders = np.empty(npix + 1)
    borders[1:npix] = 0.5 * (wave[1:] + wave[:-1])
    borders[0] = 2 * wave[0] - borders[1]
    borders[npix] = 2 * wave[-1] - borders[npix - 1]
    return borders, np.log(borders)


def log_rebin(data, err, good, sampling, start, step, wave=None, velscale=None, waverange=None, dof_in=1.0):
    """``uly_spect_logrebin``: data (n,) or (n, m), err (n,) or None, good (n,) bool → LogSpectrum.

    Returns the LogSpectrum and the velocity scale used [km/s].
    """
    npix = data.shape[0]
    if sampling == 1 and (velscale is None or abs(1 - velscale / C_KMS / step) * npix < 0.001):
        spec = LogSpectrum(data, err, good, start, step, dof_in)
        if waverange is not None:
            spec = extract(spec, waverange)
        return spec, C_KMS * step
    explicit = None if sampling != 2 else np.ascontiguousarray(wave, dtype=np.float64).tobytes()
    grid = _rebin_grid(sampling, float(start), float(step), npix, explicit,
                       None if velscale is None else float(velscale),
                       None if waverange is None else tuple(map(float, waverange)))
    nout, flat, dof_factor, velscale = grid.nout, grid.flat, grid.dof_factor, grid.velscale
    flat_b = flat.reshape((-1,) + (1,) * (data.ndim - 1))
    # data, variance and mask through one spline (3 right-hand sides): its set-up was most of the cost
    width = int(np.prod(data.shape[1:], dtype=int))
    stacked = [data.reshape(npix, width), good.astype(np.float64)[:, None]]
    if err is not None:
        stacked.append((err ** 2)[:, None])
    rebinned = _integrated_rebin(grid.spline, np.concatenate(stacked, axis=1))
    out = rebinned[:, :width].reshape((nout,) + data.shape[1:]) / flat_b
    out_err = None
    if err is not None:
        var = rebinned[:, width + 1]
        good_err = err[good] if np.any(good) else err
        minerr = np.min(good_err) ** 2 * npix / nout
        var[var <= minerr] = minerr
        out_err = np.sqrt(var) / flat
        if dof_factor > 1:
            out_err /= np.sqrt(dof_factor)
        elif dof_in > 1:
            d = 1.0 / dof_in if dof_factor * dof_in < 1 else dof_factor
            out_err /= np.sqrt(d)
    mask = rebinned[:, width] / flat
    out_good = np.abs(mask - 1) < 0.1
    if not np.any(out_good):
        raise UlyssAnnError("no good pixel left after log-rebinning")
    spec = LogSpectrum(out, out_err, out_good, grid.log_start, grid.log_scale, max(1.0, dof_in * dof_factor))
    return spec, velscale


@functools.lru_cache(maxsize=8)
def _rebin_grid(sampling, start, step, npix, wave_bytes, velscale, waverange):
    """What :func:`log_rebin` computes from the input grid alone (``wave_bytes``: the explicit wavelengths of
    sampling 2, float64), once per grid: a survey's spectra share theirs. Every value is a float64 or a
    Python float (the key's); ``flat`` is read-only and the spline is shared: neither is ever modified."""
    wave = None if wave_bytes is None else np.frombuffer(wave_bytes)
    borders, _ = _borders(sampling, start, step, npix, wave)
    if velscale is None:
        if sampling == 2:
            velscale = np.log(wave[-1] / wave[0]) / npix * C_KMS
        else:
            edges = np.log(start + np.array([-0.5, npix - 0.5]) * step)
            velscale = (edges[1] - edges[0]) / npix * C_KMS
    log_scale = velscale / C_KMS
    if sampling == 2:
        log_range = np.log([wave[0], wave[-1]])
    else:
        log_range = start + np.array([-0.5, npix - 0.5]) * step
        if sampling == 0:
            log_range = np.log(log_range)
    log_range = log_range + np.array([0.5, -0.5]) * log_scale
    if waverange is not None:
        nshift = np.ceil(max(0.0, (log_range[0] - np.log(waverange[0])) / log_scale - 1e-7))
        log_range[0] = np.log(waverange[0]) + log_scale * nshift
        log_range[1] = min(np.log(waverange[1]), log_range[1])
        if log_range[1] < log_range[0]:
            raise UlyssAnnError(f"wavelength range {waverange[0]:.1f}-{waverange[1]:.1f} Å is not valid here")
    nout = int(round((log_range[1] - log_range[0]) / log_scale + 1))
    log_start = log_range[0]
    if sampling < 2:
        lr = np.exp(log_range) if sampling == 0 else log_range
        nin = int(round((lr[1] - lr[0]) / step + 1))
    else:
        nin = npix
    new_borders = np.exp(log_start + (np.arange(nout + 1) - 0.5) * log_scale)
    spline = NaturalSpline(borders, new_borders)
    if sampling == 0:
        flat = np.exp(log_start + np.arange(nout) * log_scale) * log_scale / step
    elif sampling == 1:
        flat = np.full(nout, log_scale / step)
    else:
        flat = _integrated_rebin(spline, np.ones(npix))
    flat.flags.writeable = False
    return SimpleNamespace(nout=nout, flat=flat, dof_factor=nout / nin, velscale=velscale, log_start=log_start,
                           log_scale=log_scale, spline=spline)


def _integrated_rebin(spline, y):
    """:func:`xrebin` through a :class:`NaturalSpline` already set up for its edges."""
    y = np.asarray(y, dtype=np.float64)
    from ulyss_ann.fitting.native_engine.kernels import announce_compilation, running_sums, spline as compiled

    if running_sums is not None:
        announce_compilation((compiled,))  # the spline, a fit's first long compile: said before this one's short one
        columns = np.ascontiguousarray(y.reshape(len(y), int(np.prod(y.shape[1:]))))  # 1-D: one column
        integral = running_sums(columns).reshape((len(y) + 1,) + y.shape[1:])
    else:
        integral = np.concatenate([np.zeros((1,) + y.shape[1:]), np.cumsum(y, axis=0)])
    return np.diff(spline(integral), axis=0)


def extract(spec, waverange):
    """``uly_spect_extract`` of a ln-λ spectrum to ``waverange`` (Å)."""
    wr = np.log(waverange)
    first = max(0, int(np.floor((wr[0] - spec.start) / spec.step + 0.01)))
    last = min(spec.npix - 1, int(np.ceil((wr[1] - spec.start) / spec.step - 0.01)))
    cut = slice(first, last + 1)
    return LogSpectrum(spec.data[cut], None if spec.err is None else spec.err[cut], spec.good[cut],
                       spec.start + first * spec.step, spec.step, spec.dof_factor)


def extract_linear(flux, err, good, sampling, start, step, wave, waverange):
    """``uly_spect_extract`` of the input (linear, ln-λ or explicit sampling) to ``waverange``."""
    if sampling == 2:
        keep = (wave >= waverange[0]) & (wave <= waverange[1])
        if not np.any(keep):
            raise UlyssAnnError("no data left in the fitted range")
        return flux[keep], None if err is None else err[keep], good[keep], start, wave[keep]
    wr = np.log(waverange) if sampling == 1 else np.asarray(waverange, dtype=float)
    first = max(0, int(np.floor((wr[0] - start) / step + 0.01)))
    last = min(flux.size - 1, int(np.ceil((wr[1] - start) / step - 0.01)))
    cut = slice(first, last + 1)
    return flux[cut], None if err is None else err[cut], good[cut], start + first * step, None


# ----------------------------------------------------------------------------- LOSVD
def fourier_losvd(f, vel, sigma, voff):
    """The analytic-Fourier LOSVD of pPXF (Cappellari 2017), applied in Fourier space.

    ``f`` (n,) or (n, m) is edge-padded (as ``/EDGE_TRUNCATE``), transformed, multiplied
    by the exact transform of a Gaussian of centre ``μ = voff + v`` and width σ (pixels),
    ``G(ω) = exp(−iωμ − ω²σ²/2)``, and transformed back: no sampling of the kernel, so
    it stays exact for σ well below a pixel. Returns the convolved array and its
    derivatives with respect to v and σ (multiplications by −iω and −ω²σ).
    """
    n = f.shape[0]
    pad = int(np.ceil(abs(voff) + abs(vel) + 5 * sigma)) + 8
    nfft = int(2 ** np.ceil(np.log2(n + 4 * pad)))
    # one period: edge values on both sides (EDGE_TRUNCATE), then a cosine blend from the
    # last value back to the first, so the periodic signal has no jump to ring from
    idx = np.clip(np.arange(-pad, n + pad), 0, n - 1)
    blend = 0.5 * (1 - np.cos(np.pi * (np.arange(1, nfft - n - 2 * pad + 1)) / (nfft - n - 2 * pad + 1)))
    blend = blend.reshape((-1,) + (1,) * (f.ndim - 1))
    periodic = np.concatenate([f[idx], f[-1] + (f[0] - f[-1]) * blend])
    spectrum = np.fft.rfft(periodic, axis=0)
    omega = 2 * np.pi * np.fft.rfftfreq(nfft)
    g = np.exp(-1j * omega * (voff + vel) - 0.5 * (omega * sigma) ** 2)
    shape = (-1,) + (1,) * (f.ndim - 1)
    out = [np.fft.irfft(spectrum * factor.reshape(shape), nfft, axis=0)[pad:pad + n]
           for factor in (g, -1j * omega * g, -(omega ** 2) * sigma * g)]
    return out


# ----------------------------------------------------------------------------- relative LSF
def slit_kernel(cz, sigma, h3, h4, velscale):
    """ULySS's ``uly_slit``: a Gauss–Hermite LOSVD sampled on a log-λ grid of ``velscale`` km/s.

    The centre and width in pixels are ``ln(1 + cz/c)·c/velscale`` and
    ``ln(1 + σ/c)·c/velscale``; the kernel spans ``±ceil(|shift| + 5σ)`` pixels and is
    written from +N down to −N, so that IDL's ``CONVOL`` (a correlation) applies it
    as a convolution. Normalised to unit sum.
    """
    shift = np.log1p(cz / C_KMS) / velscale * C_KMS
    width = np.log1p(sigma / C_KMS) / velscale * C_KMS
    n = int(np.ceil(abs(shift) + 5.0 * width))
    x = n - np.arange(2 * n + 1, dtype=np.float64)
    y = (x - shift) / width
    y[np.abs(y) > 30] = 30.0                       # uly_slit's underflow guard
    kern = np.exp(-0.5 * y * y) / width / np.sqrt(2 * np.pi)
    kern *= 1.0 + h3 * (2 * y ** 3 - 3 * y) / np.sqrt(3.0) + h4 * (4 * y ** 4 - 12 * y ** 2 + 3) / np.sqrt(24.0)
    return kern / kern.sum()


def lsf_convolve(data, lsf, start, step):
    r"""Inject a relative LSF into log-sampled data, as ULySS's ``uly_spect_lsfconvol``.

    ``data`` (npix,) or (npix, m) on the grid ln λ = start + step·i. For each LSF
    record k (centre λ_k, and cz, σ, h3, h4 in km/s) the whole array is convolved with
    that record's kernel (:func:`slit_kernel`, ``CONVOL(/EDGE_TRUNCATE)``); pixel i then
    takes the linear interpolation in pixel index between the two records around it,

    .. math:: d_i = c_k[i] + \frac{i - p_k}{p_{k+1} - p_k}\,(c_{k+1}[i] - c_k[i]),
              \qquad p_k = (\ln\lambda_k - \mathrm{start})/\mathrm{step},

    and the first (last) record's convolution below (above) them. Records outside the
    data's range are dropped, as ULySS does. Returns a new array.

    ``lsf`` has fields (or columns) ``wave`` [Å], ``cz``, ``sigma`` [km/s], ``h3``, ``h4``.
    """
    data = np.asarray(data, dtype=np.float64)
    npix = data.shape[0]
    velscale = C_KMS * step
    wave_ends = np.exp(start + step * np.array([0, npix - 1]))
    inside = (lsf["wave"] >= wave_ends[0]) & (lsf["wave"] <= wave_ends[1])
    if not np.any(inside):
        raise UlyssAnnError(f"no LSF record lies within the spectrum ({wave_ends[0]:.1f}-{wave_ends[1]:.1f} Å)")
    records = np.flatnonzero(inside)
    records = np.arange(records.min(), records.max() + 1)   # ULySS keeps the span between the first and last
    centres = (np.log(np.asarray(lsf["wave"], float)[records]) - start) / step
    conv = [convolve_edge(data, slit_kernel(lsf["cz"][k], lsf["sigma"][k], lsf["h3"][k], lsf["h4"][k], velscale))
            for k in records]
    px = np.arange(npix, dtype=np.float64)
    out = np.empty_like(data)
    below, above = px < centres.min(), px >= centres.max()
    out[below] = conv[0][below]
    out[above] = conv[-1][above]
    for k in range(len(records) - 1):
        seg = (px >= centres[k]) & (px < centres[k + 1])
        frac = ((px[seg] - centres[k]) / (centres[k + 1] - centres[k])).reshape((-1,) + (1,) * (data.ndim - 1))
        out[seg] = conv[k][seg] + frac * (conv[k + 1][seg] - conv[k][seg])
    return out


def guess_odometer(guesses, counts):
    """Every combination of guesses, first parameter fastest (ULySS's node order); read-only, kept for the
    last 16 sets of guesses (a survey's own, when they are the same for every star)."""
    guesses = np.ascontiguousarray(guesses, dtype=np.float64)
    return _odometer(guesses.tobytes(), tuple(np.asarray(counts, int).tolist()))  # bytes: -0.0 is not 0.0


@functools.lru_cache(maxsize=16)
def _odometer(guesses, counts):
    # each node's index into each parameter's guesses, first parameter fastest, then one gather: a third of
    # meshgrid's calls (a fixed log g from photometry differs from star to star: the cache seldom hits)
    index = np.indices(counts[::-1]).reshape(len(counts), -1)[::-1].T
    nodes = np.frombuffer(guesses)[index + np.cumsum((0,) + counts[:-1])]
    nodes.flags.writeable = False
    return nodes
