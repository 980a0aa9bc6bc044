"""ULySS's sampled LOSVD kernel and IDL's ``CONVOL(/EDGE_TRUNCATE)``: the pieces the compiled kernels
(:mod:`~ulyss_ann.fitting.native_engine.kernels`) and the rest of the native numerics
(:mod:`~ulyss_ann.fitting.native_engine.numerics`) share; a module of their own so that the kernels
need nothing else of the numerics, whose spline loads the kernels (no import cycle).
"""

import numpy as np

__all__ = ["losvd_kernel", "convolve_edge"]


def losvd_kernel(vel, sigma, voff, npix):
    """ULySS's sampled LOSVD and its derivatives with respect to v and σ (pixels).

    Returns (dx, K, dK/dv, dK/dσ): ``K[k]`` multiplies ``f[i + k − dx]``.
    """
    dx = int(np.ceil(abs(voff) + abs(vel) + 5 * sigma))
    dx = int(min(dx, (npix - 1) / 2))
    x = dx - np.arange(2 * dx + 1, dtype=np.float64)
    sig = sigma if sigma > 0.1 else 0.1
    w = (x - (voff + vel)) / sig
    inside = np.abs(w) <= 5
    g = np.where(inside, np.exp(-0.5 * w * w), 0.0)
    total = g.sum()
    kern = g / total
    dg_dv = g * w / sig
    dg_ds = g * w * w / sig if sigma > 0.1 else np.zeros_like(g)
    dk_dv = (dg_dv - kern * dg_dv.sum()) / total
    dk_ds = (dg_ds - kern * dg_ds.sum()) / total
    return dx, kern, dk_dv, dk_ds


def convolve_edge(f, kern):
    """IDL ``CONVOL(f, K, /EDGE_TRUNCATE)`` along axis 0 for an odd kernel K of 2·dx + 1 taps:
    ``out[i] = Σ_k f[clip(i + k − dx)] K[k]``. SciPy's ``correlate1d`` with mode
    ``nearest`` is exactly this (a test checks it against the sum)."""
    from scipy.ndimage import correlate1d  # here: only an LSF's convolution needs scipy.ndimage

    return correlate1d(f, kern, axis=0, mode="nearest")
