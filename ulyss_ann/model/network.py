r"""The numerical core: forward pass of a dense perceptron and its Jacobian.

A network of :math:`L` dense layers maps standardised parameters
:math:`x \in \mathbb{R}^{n_0}` to a spectrum :math:`y \in \mathbb{R}^{n_L}`
(Kumar, Prugniel & Singh, Eqs. 1-2):

.. math::

    h^{(0)} = x, \qquad
    z^{(k)} = W^{(k)}_0 + h^{(k-1)} W^{(k)}_{1:}, \qquad
    h^{(k)} = \sigma_k\!\left(z^{(k)}\right), \qquad y = h^{(L)},

where :math:`W^{(k)}` is the :math:`(n_{k-1}+1) \times n_k` array stored in the ULySS
perceptron file: its row 0 is the bias, rows 1.. the weights.  Appending a
constant 1 in front of :math:`h^{(k-1)}` (the paper's :math:`h_0 \equiv 1`) makes each
layer a single matrix product, :math:`z^{(k)} = [1, h^{(k-1)}]\,W^{(k)}`, which is how
this module computes it: one BLAS call per layer, batched over spectra.

The Jacobian follows by forward-mode differentiation, with :math:`J^{(0)} = \partial x/\partial p`
given by the caller (the input scaling) and

.. math::

    J^{(k)} = \frac{\partial h^{(k)}}{\partial p}
            = \sigma_k'\!\left(z^{(k)}\right) \odot \left(J^{(k-1)} W^{(k)}_{1:}\right),

carried as an :math:`n_{par} \times n_k` array per spectrum.  For the usual shape
(3 parameters, a few tens of hidden units, thousands of pixels) the cost is about
:math:`n_{par}` times one forward pass through the output layer.

Everything is float64.  Activations are those the perceptron format names
(``logistic``, ``linear``) plus ``tanh`` and ``relu``.
"""

import numpy as np

__all__ = ["ACTIVATIONS", "forward", "forward_with_jacobian", "augment", "check_layers"]


def _logistic(z):
    """sigma(z) = 1 / (1 + exp(-z)), in place on a new array: about 2.5x faster than
    scipy's expit on blocks of hidden units. exp's argument is capped at 700 so that it
    never overflows; below z = -700 the result is then 1e-304 instead of smaller."""
    h = np.negative(z)
    np.minimum(h, 700.0, out=h)
    np.exp(h, out=h)
    h += 1.0
    return np.reciprocal(h, out=h)


def _logistic_derivative(z, h):
    # sigma'(z) = sigma(z) (1 - sigma(z)), reusing the activation already computed.
    return h * (1.0 - h)


def _tanh_derivative(z, h):
    return 1.0 - h * h


def _relu_derivative(z, h):
    return (z > 0).astype(z.dtype)


def _linear_derivative(z, h):
    return np.ones_like(z)


#: name -> (activation sigma(z), derivative sigma'(z) given z and sigma(z)).
ACTIVATIONS = {
    "logistic": (_logistic, _logistic_derivative),
    "tanh": (np.tanh, _tanh_derivative),
    "relu": (lambda z: np.maximum(z, 0.0), _relu_derivative),
    "linear": (lambda z: z, _linear_derivative),
}


def augment(h):
    """Prepend the constant bias input 1 to each row: ``[1, h]`` (n x (m+1))."""
    out = np.empty((h.shape[0], h.shape[1] + 1))
    out[:, 0] = 1.0
    out[:, 1:] = h
    return out


def forward(x, weights, activations, out=None, chunk=512):
    """Forward pass of the network for a batch of standardised inputs.

    Parameters
    ----------
    x : ndarray, shape (n, n_0)
        Standardised inputs, one row per spectrum.
    weights : sequence of ndarray, shape (n_{k-1}+1, n_k)
        Layer arrays in the order they are applied, bias in row 0.
    activations : sequence of str
        Activation name of each layer (keys of :data:`ACTIVATIONS`).
    out : ndarray, shape (n, n_L), optional
        Where to write the result (reuse it across calls to save the page faults
        of a fresh allocation, which cost about as much as the arithmetic).
    chunk : int
        Spectra per block: the hidden activations of a block stay in cache and the
        output layer is one matrix product written straight into ``out``.

    Returns
    -------
    y : ndarray, shape (n, n_L)
    """
    n = x.shape[0]
    if out is None:
        out = np.empty((n, weights[-1].shape[1]))
    activate_output = ACTIVATIONS[activations[-1]][0]
    for start in range(0, n, chunk):
        h = x[start:start + chunk]
        for w, name in zip(weights[:-1], activations[:-1]):
            h = ACTIVATIONS[name][0](augment(h) @ w)
        block = out[start:start + chunk]
        np.matmul(augment(h), weights[-1], out=block)
        if activations[-1] != "linear":
            block[...] = activate_output(block)
    return out


def forward_with_jacobian(x, dx_dp, weights, activations):
    """Forward pass and Jacobian of the outputs with respect to the parameters.

    Parameters
    ----------
    x : ndarray, shape (n, n_0)
        Standardised inputs.
    dx_dp : ndarray, shape (n_par, n_0) or (n, n_par, n_0)
        Derivative of the standardised inputs with respect to the physical
        parameters (for ``linscale``, ``diag(1 / scale)``; per spectrum for a map that is not linear,
        :mod:`~ulyss_ann.model.input_maps`).
    weights, activations
        As in :func:`forward`.

    Returns
    -------
    y : ndarray, shape (n, n_L)
    jac : ndarray, shape (n, n_L, n_par)
        :math:`\\partial y_j / \\partial p_i` for each spectrum, laid out as
        ``scipy.optimize.least_squares`` expects a Jacobian (pixels x parameters).
    """
    h = x
    # J[s] = d h / d p for spectrum s, shape (n, n_par, width): parameters first so
    # that each layer is one batched matrix product J @ W[1:].
    jac = np.broadcast_to(dx_dp, (x.shape[0],) + dx_dp.shape[-2:])
    for w, name in zip(weights, activations):
        activate, derivative = ACTIVATIONS[name]
        z = augment(h) @ w
        h = activate(z)
        jac = jac @ w[1:]
        if name != "linear":  # sigma' = 1: skip a pass over the largest array
            jac *= derivative(z, h)[:, None, :]
    return h, np.ascontiguousarray(jac.transpose(0, 2, 1))


def check_layers(parameters, weights, activations, npix, width=None):
    """Raise ValueError unless the layers chain from the parameters (``width`` inputs after their map;
    default: one per parameter) to ``npix`` pixels, each with a known activation, and the parameters have
    distinct names (they are matched case-insensitively)."""
    if len(weights) != len(activations) or not weights:
        raise ValueError("need one activation per layer and at least one layer")
    lowered = [p.name.lower() for p in parameters]
    if len(set(lowered)) != len(lowered):
        raise ValueError(f"parameters {', '.join(p.name for p in parameters)}: each needs its own name")
    width = len(parameters) if width is None else width
    for k, (w, a) in enumerate(zip(weights, activations), start=1):
        if w.ndim != 2 or w.shape[0] != width + 1:
            raise ValueError(f"layer {k}: weights of shape {w.shape}, expected ({width + 1}, n)")
        if a not in ACTIVATIONS:
            raise ValueError(f"layer {k}: unknown activation '{a}'")
        width = w.shape[1]
    if width != npix:
        raise ValueError(f"output layer has {width} pixels, the wavelength grid {npix}")
