r"""Many spectra on one ln-λ grid, evaluated together: the native engine's model, residuals and Jacobian.

A survey's spectra share a wavelength grid (every spaxel of a MUSE cube, every fibre of
a LAMOST plate after rebinning), so the native engine fits them in blocks: one
:class:`SpectralBlock` holds S spectra (their data and weights on the common ln-λ grid)
and evaluates, for L *rows* at once — a row is one spectrum × one starting point of
the fit — the model of the paper's Eq. 8,

.. math:: F_\ell = P_\ell \cdot (G(v_\ell, \sigma_\ell) \otimes f(p_\ell)),

the weighted residual :math:`r_\ell = (d_{s(\ell)} - F_\ell)/e_{s(\ell)}` on every pixel
(0 on the bad and masked ones, whose weight is 0) and its Jacobian with respect to the
free parameters θ = (v, σ, free p). Each step is a handful of large array operations over
all rows — the network's forward pass and Jacobian, the LOSVD as a sum over the kernel's
taps, the polynomial's normal equations through precomputed Legendre products — so
that NumPy's cost per call is paid once per round for the whole block, not once per
spectrum and guess. The conventions (ULySS's sampled LOSVD, the variable projection of the
multiplicative polynomial, float32 best fit) are those of
:mod:`ulyss_ann.fitting.native_engine.engine`, where they are explained; a block of one spectrum
is exactly the engine's fit of it.

Units: v, σ and ``voff`` in pixels of the ln-λ grid; θ[2:] in the network's units (K, dex).
"""

import functools

import numpy as np
from numpy.polynomial import legendre

from ulyss_ann.fitting.native_engine.kernels import (announce_compilation, losvd, losvd_values, products, spd_inverse,
                                                     weighted)
from ulyss_ann.fitting.native_engine.numerics import fourier_losvd
from ulyss_ann.model.network import ACTIVATIONS, augment

__all__ = ["SpectralBlock", "legendre_products", "legendre_bases", "fourier_losvd_rows"]


@functools.lru_cache(maxsize=4)
def legendre_products(degree):
    """Coefficients a_klm of P_k P_l = Σ_m a_klm P_m, as a (2·degree + 1, (degree + 1)²) array."""
    out = np.zeros((2 * degree + 1, (degree + 1) ** 2))
    unit = np.eye(degree + 1)
    for k in range(degree + 1):
        for m in range(k, degree + 1):
            # legmul orders its factors by length, so P_m P_k is P_k P_m bit for bit: half the products
            # (legmul's Python loop is most of an interactive session's first fit)
            product = legendre.legmul(unit[k], unit[m])
            out[:product.size, k * (degree + 1) + m] = out[:product.size, m * (degree + 1) + k] = product
    return out


@functools.lru_cache(maxsize=8)
def legendre_bases(n, mdegree):
    """The Legendre polynomials of degree ≤ ``mdegree`` on n pixels (n, K), their transpose, and those of
    degree ≤ 2·mdegree (P_k P_l = Σ_m a_klm P_m, m ≤ k + l: BᵀB = Lᵀ diag(tw²) L from 2K − 1 weighted sums),
    made once per grid: every block of a survey shares them (~1 ms a block). Read-only: blocks share them."""
    x = 2.0 * np.arange(n) / n - 1.0
    single = np.ascontiguousarray(legendre.legvander(x, mdegree))
    bases = (single, np.ascontiguousarray(single.T), np.ascontiguousarray(legendre.legvander(x, 2 * mdegree)))
    for array in bases:
        array.flags.writeable = False
    return bases


def fourier_losvd_rows(stack, vel, sigma, voff):
    """pPXF's analytic-Fourier LOSVD (:func:`~ulyss_ann.fitting.native_engine.numerics.fourier_losvd`)
    of each row of ``stack``.

    ``stack`` (L, C, n): f and ∂f/∂p…; returns (L, C + 2, n): the C convolved inputs,
    then ∂t/∂v and ∂t/∂σ (:func:`~ulyss_ann.fitting.native_engine.kernels.weighted`'s layout).
    """
    rows, width, n = stack.shape
    out = np.empty((rows, width + 2, n))
    for r in range(rows):
        conv, d_v, d_s = fourier_losvd(stack[r].T, vel[r], sigma[r], voff)
        out[r, :width], out[r, width], out[r, width + 1] = conv.T, d_v[:, 0], d_s[:, 0]
    return out


class SpectralBlock:
    """S spectra on one ln-λ grid and the model on it, evaluated for many (spectrum, θ) rows at once.

    Parameters
    ----------
    network : object
        With ``hidden`` (the weight matrices before the output layer), ``activations`` and
        ``inputs(p, free=…)``: the first layer's inputs at parameters p and their Jacobian over the free
        ones (the interpolator's input map, :mod:`~ulyss_ann.model.input_maps`).
    layer : ndarray (n_hidden + 1, n_model)
        The output layer (bias + weights) on the grid, starting ``voff`` pixels before the data.
    data, weights : ndarray (S, n)
        The log-rebinned fluxes and their weights: 1/error on good pixels (1 without
        errors), 0 on bad and masked ones.
    mdegree : int
        Degree of the multiplicative Legendre polynomial.
    voff : float
        Offset of the model's first pixel from the data's [px].
    losvd : str
        ``sampled`` (ULySS's) or ``analytic`` (pPXF's).
    free : ndarray of bool (2 + n_par,)
        Which of θ = (v, σ, p…) are fitted; the Jacobian has a column for each of them.
    """

    #: Rows evaluated together (:meth:`chunks`, for :meth:`evaluate` and :meth:`chi2`): few enough that a
    #: chunk's temporaries (~25 × n doubles a row with the Jacobian) stay near the core, enough that NumPy's
    #: calls are paid for several. Measured on the 2-core CI machine, CPU a spectrum with 16 rows → 6: eight
    #: copies of the MUSE star in one block (3680 px, 48 rows a round) 21.2 → 12.5 ms, 64 simulated MUSE-like
    #: spectra (2069 px) 2.85 → 2.55 ms, 32 MILES stars with trial 7 (4300 px) 17.8 → 17.0 ms. (One
    #: spectrum's six guesses are one chunk either way.)
    chunk = 6
    #: … but each chunk streams the output layer once: where its part over the fitted pixels is larger than
    #: :attr:`wide_layer_bytes` (4 MiB: the bundled MILES network's over more than ~1630 pixels, 11 MB over a
    #: MILES star's 4300; trial 7's would need ~8000) 16 rows share each pass (89 ms a MILES star, 103 with 6).
    wide_chunk, wide_layer_bytes = 16, 4 * 2 ** 20

    def __init__(self, network, layer, data, weights, mdegree, voff, losvd, free):
        n = np.shape(data)[1]
        self.layers = list(network.hidden) + [np.ascontiguousarray(layer[:, :n])]  # the model beyond the data is unused
        if self.layers[-1].nbytes > self.wide_layer_bytes:
            self.chunk = self.wide_chunk
        self.activations, self.inputs = list(network.activations), network.inputs
        self.voff, self.losvd, self.n = float(voff), losvd, n
        self.free = np.asarray(free, bool)
        self.weights = np.asarray(weights, float)
        self.scaled_data = np.asarray(data, float) * self.weights
        self.legendre, self.legendre_t, self.legendre_double = legendre_bases(n, mdegree)
        self.pair_coefficients = legendre_products(mdegree)
        if not self.free[:2].all():
            raise ValueError("the native engine always fits v and σ")
        announce_compilation()  # the first fit of an installation: 5-20 s of numba, said first

    def _hidden(self, p, free=None):
        """The last hidden layer's values h (L, H) and ∂h/∂p_free (L, F', H) at parameters p (L, n_par): every
        layer before the output one. ``free`` (n_par,): the parameters of the Jacobian (default: the block's).
        Done for every row of a call at once: its arrays are small, its time NumPy's calls (measured 13 µs a row
        in chunks of 6, a tenth of a row's evaluation)."""
        h, jac = self.inputs(p, free=self.free[2:] if free is None else free)
        return self._layers(h, jac, self.layers[:-1], self.activations[:-1])

    def _network(self, hidden):
        """f (L, n) and ∂f/∂p_free (L, F', n) from the last hidden layer's (:meth:`_hidden`): the output layer."""
        return self._layers(*hidden, self.layers[-1:], self.activations[-1:])

    @staticmethod
    def _layers(h, jac, layers, activations):
        for w, name in zip(layers, activations):
            activate, derivative = ACTIVATIONS[name]
            z = augment(h) @ w
            h = activate(z)
            rows, free, width = jac.shape
            if free == 0:  # every parameter held (the LSF's fit in chunks): no Jacobian to carry
                jac = np.zeros((rows, 0, w.shape[1]))
                continue
            jac = (jac.reshape(rows * free, width) @ w[1:]).reshape(rows, free, -1)
            if name != "linear":  # σ' = 1: skip a pass over the largest array
                jac *= derivative(z, h)[:, None, :]
        return h, jac

    def chunks(self, thetas):
        """The rows of ``thetas`` in chunks of :attr:`chunk`, sorted by the width of their LOSVD kernel (index
        arrays). :meth:`evaluate` and :meth:`chi2` take the same: a row's numbers may depend, in the last bit,
        on the rows beside it in a matrix product (an edge of BLAS's tiles; measured with NumPy 2.5's OpenBLAS)."""
        order = np.argsort(np.abs(thetas[:, 0]) + 5 * thetas[:, 1], kind="stable")
        return [order[first:first + self.chunk] for first in range(0, len(thetas), self.chunk)]

    def evaluate(self, thetas, owners):
        """χ² = Σr² (L,), gradient Jᵀr (L, F), JᵀJ (L, F, F) and float32 best fits (L, n) of L rows.

        ``thetas`` (L, 2 + n_par); ``owners`` (L,) the spectrum of each row (0…S−1); J is
        ∂r/∂θ over the F free parameters. Rows go through in :meth:`chunks`.
        """
        rows = len(thetas)
        free = int(self.free.sum())
        cost, grad = np.empty(rows), np.empty((rows, free))
        jtj, bestfit = np.empty((rows, free, free)), np.empty((rows, self.n))
        h, dh = self._hidden(thetas[:, 2:])
        for part in self.chunks(thetas):
            cost[part], grad[part], jtj[part], bestfit[part] = self._evaluate(thetas[part], owners[part],
                                                                              hidden=(h[part], dh[part]))
        return cost, grad, jtj, bestfit

    def chi2(self, thetas, owners):
        """χ² = Σr² (L,) of L rows, without the Jacobian: a fifth of :meth:`evaluate`'s work (the start
        search's ranking of the guesses, :mod:`~ulyss_ann.fitting.native_engine.start_search`); evaluate's χ²
        of the same rows, bit for bit (the same :meth:`chunks`)."""
        out = np.empty(len(thetas))
        h, dh = self._hidden(thetas[:, 2:], free=np.zeros(thetas.shape[1] - 2, bool))
        for part in self.chunks(thetas):
            f = self._network((h[part], dh[part]))[0]
            model, y = self._projected(f, None, thetas[part], owners[part], derivatives=False)[1:3]
            out[part] = np.einsum("ln,ln->l", y - model, y - model)
        return out

    def _projected(self, f, df, thetas, owners, derivatives=True):
        """The LOSVD of f (L, n) and ∂f/∂p (L, F', n) (None without ``derivatives``) and the polynomial's
        projection: (t, model·w, data·w, t·w, ∂(t·w)/∂θ, P(λ), (BᵀB)⁻¹); without ``derivatives`` (χ² alone, the
        sampled LOSVD compiled) t and ∂(t·w)/∂θ are None."""
        weights, y = self.weights[owners], self.scaled_data[owners]
        if self.losvd == "sampled" and not derivatives and losvd_values is not None:
            t_full, dt = None, None
            tw = losvd_values(f, thetas[:, 0], thetas[:, 1], self.voff, weights)
        elif self.losvd == "sampled":                                        # t, t/e, ∂(t/e)/∂θ_free
            t_full, tw, dt = losvd(f, np.zeros(f.shape[:1] + (0,) + f.shape[1:]) if df is None else df,
                                   thetas[:, 0], thetas[:, 1], self.voff, weights)
        else:
            stack = f[:, None] if df is None else np.concatenate([f[:, None], df], axis=1)
            t_full, tw, dt = weighted(fourier_losvd_rows(stack, thetas[:, 0], thetas[:, 1], self.voff), weights)
        size = self.legendre.shape[1]
        normal = ((tw * tw) @ self.legendre_double) @ self.pair_coefficients
        inverse = spd_inverse(normal.reshape(len(thetas), size, size))      # (BᵀB)⁻¹, LinAlgError if singular
        coef = (inverse @ ((tw * y) @ self.legendre)[:, :, None])[:, :, 0]  # (L, K)
        poly = coef @ self.legendre_t                                      # (L, n)
        return t_full, tw * poly, y, tw, dt, poly, inverse

    def residuals(self, thetas, owners):
        """Weighted residuals r (L, n) and their Jacobian ∂r/∂θ_free (L, F, n), stored (for checks and plots)."""
        return self._evaluate(thetas, owners, jacobian=True)

    def _evaluate(self, thetas, owners, jacobian=False, hidden=None):
        rows = len(thetas)
        f, df = self._network(self._hidden(thetas[:, 2:]) if hidden is None else hidden)  # (L, n), (L, F', n)
        t_full, model, y, tw, dt, poly, inverse = self._projected(f, df, thetas, owners)
        size = self.legendre.shape[1]
        bestfit = (t_full * poly).astype(np.float32).astype(np.float64)    # ULySS keeps it in float32
        # LM works on the double-precision residual: the float32 rounding of the best fit
        # would add noise of ~1e-7 to χ², below which no step could be seen to improve it
        r = y - model
        # Golub–Pereyra: ∂r/∂θ = −[P⊥ ∂B c + (B⁺)ᵀ ∂Bᵀ r], ∂B = diag(∂t/e) L, B⁺ = (BᵀB)⁻¹Bᵀ,
        # both projections in one solve: −[∂B c − B (BᵀB)⁻¹ (Bᵀ ∂B c − ∂Bᵀ r)], and
        # Bᵀ ∂B c − ∂Bᵀ r = Lᵀ [∂t/e ∘ (2 B c − y)]
        free = dt.shape[1]
        rhs = ((dt * (2 * model - y)[:, None]).reshape(rows * free, -1) @ self.legendre).reshape(rows, free, size)
        correction = rhs @ inverse                                          # (L, F, K): (BᵀB)⁻¹ is symmetric
        back = (correction.reshape(rows * free, size) @ self.legendre_t).reshape(rows, free, -1)
        if jacobian:
            return r, tw[:, None] * back - dt * poly[:, None]
        grad, jtj = products(tw, back, dt, poly, r)                        # J = tw·back − dt·poly
        return np.einsum("ln,ln->l", r, r), grad, jtj, bestfit

