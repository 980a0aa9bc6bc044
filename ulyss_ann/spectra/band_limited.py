r"""Exact shifts and Gaussian broadening of a sampled spectrum, for the simulators.

A network's spectrum is known only at its pixels. Linear interpolation between them
smooths: a shift by a fraction f of a pixel is a two-point kernel of variance
f(1 − f) px², up to 0.25 px² (≈ +9 km/s of σ at 5000 Å for σ = 30 km/s), which a
simulated spectrum then carries beyond the LSF it states; a Gaussian sampled at whole
pixels (``gaussian_filter1d``, a sparse LSF matrix) is not a Gaussian either when σ is
half a pixel. :func:`observe` does neither: it reads the samples as a band-limited
signal (its discrete Fourier series, the edges padded as the fitter's analytic LOSVD
pads them), multiplies each output point's series by the exact transform of its
Gaussian, :math:`e^{-\omega^2\sigma_j^2/2}`, and evaluates it at the point's Doppler-shifted
position:

.. math:: D(\lambda_j) = \frac{1}{N}\sum_k F_k\, e^{-\omega_k^2\sigma_j^2/2}\, e^{i\omega_k x_j},
   \qquad x_j = \frac{\lambda_j/(1 + v/c) - \lambda_0}{\delta\lambda}.

This is what the fitter assumes of the model (pPXF's analytic LOSVD, ``losvd="analytic"``,
is the same transform on the fitted grid), so that σ measured is σ injected. With v = 0,
σ = 0 and the output on the input's pixels it gives the samples back (to rounding).
On an output grid linear in λ (MUSE's, the network's) the sums are one chirp-z transform
per σ² node (a few ms for a 2000-pixel spectrum); elsewhere a direct sum (tens of ms).
"""

import math

import numpy as np
from scipy.signal import czt

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.model.wavelength import C_KMS

__all__ = ["observe"]

#: output points evaluated together (memory: BLOCK × N/2 complex numbers)
BLOCK = 256


def observe(wave_out, wave, flux, velocity=0.0, sigma=0.0):
    """``flux`` (on the uniform grid ``wave``) broadened by a Gaussian, Doppler-shifted, at ``wave_out``.

    Parameters
    ----------
    wave_out : array
        Observed wavelengths [Å] at which to sample the result.
    wave : array
        The input's wavelengths [Å], uniformly spaced (a network's linear grid).
    flux : array
        The input spectrum, one value per pixel of ``wave``.
    velocity : float
        Radial velocity [km/s]: the result at λ is the broadened spectrum at λ / (1 + v/c).
    sigma : float, array or callable
        The Gaussian's σ [Å] in the observer's frame, at each of ``wave_out`` (a callable
        of the wavelength, an array of the same length, or a constant); 0: no broadening.
    """
    wave_out = np.asarray(wave_out, float)
    wave = np.asarray(wave, float)
    flux = np.asarray(flux, float)
    if wave.ndim != 1 or flux.shape != wave.shape or wave.size < 4:
        raise UlyssAnnError(f"observe: a spectrum of {flux.shape} values on {wave.shape} wavelengths")
    step = (wave[-1] - wave[0]) / (wave.size - 1)
    if not step > 0 or np.max(np.abs(np.diff(wave) - step)) > 1e-6 * step:
        raise UlyssAnnError("observe: the input's wavelengths must be uniformly spaced and increasing")
    sigma = sigma(wave_out) if callable(sigma) else sigma
    sigma = np.broadcast_to(np.asarray(sigma, float), wave_out.shape)
    if np.any(sigma < 0) or not np.all(np.isfinite(sigma)):
        raise UlyssAnnError("observe: σ must be finite and >= 0")
    stretch = 1.0 + velocity / C_KMS
    # rest-frame pixel coordinates of the output points, and each one's σ there (a line's
    # width in the observer's frame is (1 + v/c) times its rest-frame width)
    x = (wave_out / stretch - wave[0]) / step
    sigma_px = sigma / stretch / step
    coefficients, omega, pad = _fourier_series(flux, reach=np.max(np.abs(x - np.clip(x, 0, wave.size - 1)))
                                               + 5 * float(np.max(sigma_px, initial=0.0)))
    nfft = 2 * (omega.size - 1)
    # σ varies along the output (MUSE's LSF): the result is evaluated for a few σ² (Chebyshev
    # nodes over the range needed) and interpolated in σ² at each point — a smooth function,
    # so that the interpolation error stays below 1e-9 of the flux; one node when σ is constant
    variance = sigma_px ** 2
    nodes = _chebyshev_nodes(variance.min(), variance.max(), omega[-1])
    at_nodes = [_evaluate(coefficients * np.exp(-0.5 * omega ** 2 * node), omega, x + pad) for node in nodes]
    return _interpolate(nodes, at_nodes, variance) / nfft


def _chebyshev_nodes(lo, hi, omega_max, tolerance=1e-9):
    """Nodes in σ² [px²] that interpolate e^{−ω²σ²/2} (ω ≤ ``omega_max``) over [lo, hi] to ``tolerance``."""
    half = 0.5 * (hi - lo)
    if half <= 1e-12:
        return np.array([0.5 * (lo + hi)])
    rate = 0.5 * omega_max ** 2 * half        # the n-th derivative's scale times the half-width
    n = 2
    while rate ** n / (2.0 ** (n - 1) * math.factorial(n)) > tolerance:
        n += 1
    return 0.5 * (lo + hi) + half * np.cos(np.pi * (np.arange(n) + 0.5) / n)


def _interpolate(nodes, values, at):
    """Lagrange interpolation in σ² through the nodes (few, Chebyshev-spaced: well conditioned)."""
    if len(nodes) == 1:
        return values[0]
    out = np.zeros_like(at)
    for i, node in enumerate(nodes):
        basis = np.ones_like(at)
        for j, other in enumerate(nodes):
            if j != i:
                basis *= (at - other) / (node - other)
        out += basis * values[i]
    return out


def _evaluate(coefficients, omega, x):
    """Re Σ_k c_k e^{iω_k x_j}: by a chirp-z transform when the x_j are evenly spaced (an output
    grid linear in λ, as MUSE's), else by the direct sum, a block of points at a time."""
    if x.size > 1:
        spacing = (x[-1] - x[0]) / (x.size - 1)
        if np.max(np.abs(np.diff(x) - spacing)) < 1e-9 * max(1.0, abs(spacing)):
            ratio = np.exp(1j * omega[1] * spacing)   # ω_k = k·ω_1: a geometric sequence in j
            return czt(coefficients * np.exp(1j * omega * x[0]), x.size, w=ratio, a=1.0).real
    out = np.empty(x.size)
    for start in range(0, x.size, BLOCK):
        part = slice(start, start + BLOCK)
        out[part] = (np.exp(1j * np.outer(x[part], omega)) @ coefficients).real
    return out


def _fourier_series(flux, reach):
    """Real-signal series of ``flux`` edge-padded by ``reach`` (+ 8) px and closed by a cosine blend.

    Returns the weights of each frequency (the rfft doubled but for the mean and the
    Nyquist term, so that the real part of Σ c_k e^{iω_k x} is the interpolant), the
    frequencies [rad/px] and the padding (the first sample's coordinate).
    """
    n = flux.size
    pad = int(np.ceil(reach)) + 8
    nfft = int(2 ** np.ceil(np.log2(n + 4 * pad)))
    # edge values on both sides (the fitter's EDGE_TRUNCATE), then a cosine blend from the last
    # value back to the first, so that the periodic signal has no jump to ring from
    idx = np.clip(np.arange(-pad, n + pad), 0, n - 1)
    gap = nfft - n - 2 * pad
    blend = 0.5 * (1 - np.cos(np.pi * np.arange(1, gap + 1) / (gap + 1)))
    periodic = np.concatenate([flux[idx], flux[-1] + (flux[0] - flux[-1]) * blend])
    spectrum = np.fft.rfft(periodic)
    weights = np.full(spectrum.size, 2.0)
    weights[0] = weights[-1] = 1.0          # the mean, and the Nyquist term as cos(πx) (real)
    return spectrum * weights, 2 * np.pi * np.fft.rfftfreq(nfft), pad
