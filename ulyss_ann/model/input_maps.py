r"""What a model does to the parameters before its layers: the perceptron format's ``I_PREPRO``.

A model of this package is a map :math:`x = m(p)` of the physical parameters followed by dense layers
(:mod:`~ulyss_ann.model.network`). Two maps are known, by their ``I_PREPRO`` name (:data:`INPUT_MAPS`):

``linscale`` — the networks' (the authors' files, everything trained here)
    :math:`x_i = (p_i - \mu_i)/s_i`, with the mean ``I_PR_Bn`` and standard deviation ``I_PR_Sn`` of
    the training grid; :math:`\partial x/\partial p = \mathrm{diag}(1/s)`.

``tgm`` — ULySS's TGM polynomial interpolator (Prugniel, Vauglin & Koleva 2011, A&A 531, A165)
    as a model with no hidden layer: :math:`x` is the 69 terms of three polynomials in
    :math:`\tau = (\log_{10} T_\mathrm{eff} - 3.7617)/0.2`, :math:`\gamma = \log g - 4.44` and
    :math:`\phi = \mathrm{[Fe/H]}` — one for each temperature regime (warm, hot, cold), each term
    multiplied by the regime's weight :math:`w_r(T_\mathrm{eff})` — and the linear output layer holds
    their coefficients, pixel by pixel (:func:`tgm_terms`). The regimes blend linearly in
    :math:`\log T_\mathrm{eff}` as ULySS's ``uly_tgm_eval`` does: cold below 4000 K, cold → warm over
    4000–4550 K, warm over 4550–7000 K, warm → hot over 7000–9000 K, hot above. The 23 terms of a
    regime are those of ULySS's TGM version 2 (the MILES interpolator): 1, τ, φ, γ, τ², τ τ₂, τ₂²,
    τφ, τγ, τ₂γ, τ₂φ, γ², φ², τ τ₂², τγ², γ³, φ³, τφ², γφ, γ²φ, γφ² with τ₂ = τ² − 1, and the
    remainders of :math:`e^{\tau}` and :math:`e^{2\tau}` after their degree-5 Taylor terms; the cold
    regime's τ is shifted by +0.5 (its :math:`\log T_\mathrm{eff}` by +0.1). The parameters must be
    Teff [K], log g [dex], [Fe/H] [dex], in that order. The coefficients are fitted by
    :mod:`ulyss_ann.training.tgm_baseline`; neither GDL's perceptron reader nor the GPU path knows this
    map (:attr:`InputMap.perceptron`).
"""

import math

import numpy as np

from ulyss_ann.errors import UlyssAnnError

__all__ = ["InputMap", "LinScale", "TGMTerms", "INPUT_MAPS", "input_map", "tgm_terms", "TGM_REGIMES",
           "TGM_BLENDS", "TERMS_PER_REGIME"]


class InputMap:
    """One ``I_PREPRO`` bound to an interpolator's parameters: the parameters → the first layer's inputs,
    and the Jacobian of that map. ``InputMap(parameters)`` after :meth:`problem` has said nothing."""

    #: The ``I_PREPRO`` value.
    name = None
    #: True where ULySS's perceptron evaluator (GDL) and the GPU path apply it too.
    perceptron = False

    def __init__(self, parameters):
        self.parameters = tuple(parameters)

    @classmethod
    def width(cls, npar):
        """Inputs of the first layer for ``npar`` parameters."""
        raise NotImplementedError

    @classmethod
    def problem(cls, parameters):
        """None, or why these parameters cannot go through this map (one phrase)."""
        return None

    def apply(self, p):
        """x (width,) or (n, width) of physical parameters p (npar,) or (n, npar)."""
        raise NotImplementedError

    def apply_with_jacobian(self, p, free=None):
        """x (n, width) and ∂x/∂p (n, F, width) of p (n, npar), over the ``free`` parameters (bool mask;
        None: all)."""
        raise NotImplementedError


class LinScale(InputMap):
    """``x = (p − mean) / scale``: the perceptron format's only map (format 0.0.3)."""

    name = "linscale"
    perceptron = True

    def __init__(self, parameters):
        super().__init__(parameters)
        self.mean = np.array([q.mean for q in self.parameters])
        self.scale = np.array([q.scale for q in self.parameters])
        self.dx_dp = np.diag(1.0 / self.scale)

    @classmethod
    def width(cls, npar):
        return npar

    def apply(self, p):
        return (p - self.mean) / self.scale

    def apply_with_jacobian(self, p, free=None):
        dx_dp = self.dx_dp if free is None else self.dx_dp[np.asarray(free, bool)]
        return self.apply(p), np.broadcast_to(dx_dp, (len(p),) + dx_dp.shape)


#: The TGM regimes, in the order of their blocks of terms: name, and the shift of log10 Teff applied
#: before its terms (ULySS's cold polynomial is centred on cooler stars).
TGM_REGIMES = (("warm", 0.0), ("hot", 0.0), ("cold", 0.1))
#: Where the regimes blend [K], linearly in log Teff: cold → warm, warm → hot. Each regime's weight is
#: > 0 from there on (warm 4000-9000 K, hot above 7000 K, cold below 4550 K).
TGM_BLENDS = ((4000.0, 4550.0), (7000.0, 9000.0))

#: Exponents of (τ, τ₂, γ, φ) in the 21 polynomial terms of a TGM regime (version 2's order).
_EXPONENTS = np.array([(0, 0, 0, 0), (1, 0, 0, 0), (0, 0, 0, 1), (0, 0, 1, 0), (2, 0, 0, 0), (1, 1, 0, 0),
                       (0, 2, 0, 0), (1, 0, 0, 1), (1, 0, 1, 0), (0, 1, 1, 0), (0, 1, 0, 1), (0, 0, 2, 0),
                       (0, 0, 0, 2), (1, 2, 0, 0), (1, 0, 2, 0), (0, 0, 3, 0), (0, 0, 0, 3), (1, 0, 0, 2),
                       (0, 0, 1, 1), (0, 0, 2, 1), (0, 0, 1, 2)])
TERMS_PER_REGIME = len(_EXPONENTS) + 2


def _exp_remainder(u, order=5):
    """e^u − Σ_{k≤order} u^k/k! and its derivative e^u − Σ_{k<order} u^k/k!."""
    series = [u ** k / math.factorial(k) for k in range(order + 1)]
    value = np.exp(u) - sum(series)
    return value, value + series[order]


def _regime_terms(tau, gamma, phi, jacobian):
    """The 23 terms of one regime (n, 23) and, with ``jacobian``, their derivatives by τ, γ, φ (3, n, 23)."""
    tau2 = tau * tau - 1.0
    base = np.stack([tau, tau2, gamma, phi])                          # (4, n)
    e = _EXPONENTS.T[:, None, :]                                       # (4, 1, 21)
    factors = base[:, :, None] ** e                                    # (4, n, 21)
    terms = np.prod(factors, axis=0)
    r1, d1 = _exp_remainder(tau)
    r2, d2 = _exp_remainder(2.0 * tau)
    terms = np.concatenate([terms, np.stack([r1, r2], axis=1)], axis=1)
    if not jacobian:
        return terms, None
    d_base = np.zeros((3, 4, len(tau)))                               # ∂(τ, τ₂, γ, φ)/∂(τ, γ, φ)
    d_base[0, 0], d_base[0, 1], d_base[1, 2], d_base[2, 3] = 1.0, 2.0 * tau, 1.0, 1.0
    # ∂/∂base_i of Π base^e = e_i base_i^(e_i − 1) Π_{j≠i} base_j^e_j
    d_factor = np.where(e > 0, e * base[:, :, None] ** np.maximum(e - 1, 0), 0.0)
    d_terms_base = np.stack([d_factor[i] * np.prod(np.delete(factors, i, axis=0), axis=0) for i in range(4)])
    d_terms = np.einsum("kin,int->knt", d_base, d_terms_base)          # (3, n, 21)
    d_extra = np.zeros((3, len(tau), 2))
    d_extra[0, :, 0], d_extra[0, :, 1] = d1, 2.0 * d2
    return terms, np.concatenate([d_terms, d_extra], axis=2)


def _regime_weights(teff):
    """The weight of each regime (warm, hot, cold) (n, 3) and its derivative by Teff (n, 3), as ULySS blends
    them: linear in log Teff over 4000-4550 K (cold → warm) and 7000-9000 K (warm → hot)."""
    log_t = np.log10(teff)
    dlog = 1.0 / (teff * math.log(10.0))
    ramps, d_ramps = [], []
    for lo, hi in TGM_BLENDS:
        span = math.log10(hi) - math.log10(lo)
        ramps.append(np.clip((log_t - math.log10(lo)) / span, 0.0, 1.0))
        d_ramps.append(np.where((teff > lo) & (teff < hi), dlog / span, 0.0))
    (q1, q2), (d1, d2) = ramps, d_ramps
    return np.stack([q1 - q2, q2, 1.0 - q1], axis=1), np.stack([d1 - d2, d2, -d1], axis=1)


def tgm_terms(params, jacobian=False):
    """The TGM model's inputs: 3 × 23 blended polynomial terms of (Teff [K], log g, [Fe/H]).

    Parameters
    ----------
    params : ndarray (n, 3)
        Teff [K], log g [dex], [Fe/H] [dex].
    jacobian : bool
        Also return the derivatives by the three parameters.

    Returns
    -------
    x : ndarray (n, 69)
        Warm, hot and cold terms, each block multiplied by its regime's weight (zero where it has none).
    dx : ndarray (n, 3, 69), only if ``jacobian``
        ∂x/∂(Teff, log g, [Fe/H]), per K and per dex.
    """
    p = np.atleast_2d(np.asarray(params, float))
    teff, gamma, phi = p[:, 0], p[:, 1] - 4.44, p[:, 2]
    if np.any(teff <= 0):   # a fit's bounds keep Teff inside the grid; a user's evaluate may not
        raise UlyssAnnError(f"Teff = {teff[teff <= 0][0]:g} K: the TGM terms need Teff > 0 K")
    weights, d_weights = _regime_weights(teff)
    dtau_dteff = 1.0 / (0.2 * teff * math.log(10.0))
    x = np.empty((len(p), 3 * TERMS_PER_REGIME))
    dx = np.empty((len(p), 3, 3 * TERMS_PER_REGIME)) if jacobian else None
    for r, (_, shift) in enumerate(TGM_REGIMES):
        block = slice(r * TERMS_PER_REGIME, (r + 1) * TERMS_PER_REGIME)
        terms, d_terms = _regime_terms((np.log10(teff) - 3.7617 + shift) / 0.2, gamma, phi, jacobian)
        w = weights[:, r:r + 1]
        x[:, block] = w * terms
        if jacobian:
            dx[:, 0, block] = w * d_terms[0] * dtau_dteff[:, None] + d_weights[:, r:r + 1] * terms
            dx[:, 1, block] = w * d_terms[1]
            dx[:, 2, block] = w * d_terms[2]
    return (x, dx) if jacobian else x


class TGMTerms(InputMap):
    """ULySS's TGM polynomial terms (the module's text): a TGM interpolator is this map and one linear layer."""

    name = "tgm"
    UNITS = ("K", "dex", "dex")

    @classmethod
    def width(cls, npar):
        return 3 * TERMS_PER_REGIME

    #: What each parameter's lower-case name contains, in order (Teff, logg / log g, Fe/H / [Fe/H] / FeH).
    NAMES = ("teff", "log", "fe")

    @classmethod
    def order_problem(cls, names, units):
        """None, or why (names, units) are not Teff [K], log g [dex], [Fe/H] [dex] in that order."""
        names, units = tuple(names), tuple(units)
        if units != cls.UNITS or len(names) != 3 or not all(k in n.lower() for k, n in zip(cls.NAMES, names)):
            return ("the TGM terms need Teff [K], log g [dex], [Fe/H] [dex] in that order, not "
                    + ", ".join(f"{n} [{u}]" for n, u in zip(names, units)))
        return None

    @classmethod
    def problem(cls, parameters):
        return cls.order_problem([p.name for p in parameters], [p.unit for p in parameters])

    def apply(self, p):
        x = tgm_terms(p)
        return x[0] if np.ndim(p) == 1 else x

    def apply_with_jacobian(self, p, free=None):
        x, dx = tgm_terms(p, jacobian=True)
        return x, (dx if free is None else dx[:, np.asarray(free, bool)])


#: ``I_PREPRO`` name -> its map (a class: ``INPUT_MAPS[name](parameters)``).
INPUT_MAPS = {m.name: m for m in (LinScale, TGMTerms)}


def input_map(name):
    """The map class of an ``I_PREPRO`` name; ValueError naming the known ones."""
    try:
        return INPUT_MAPS[name]
    except KeyError:
        raise ValueError(f"I_PREPRO = '{name}' is not a known input map (known: {', '.join(INPUT_MAPS)})") from None
