r"""The spectral interpolator: a trained network as ULySS's perceptron file describes it.

An :class:`Interpolator` maps atmospheric parameters :math:`p` (Teff in K, log g and
[Fe/H] in dex for the GSL networks) to a normalised spectrum :math:`f(p)` sampled on
its :class:`~ulyss_ann.model.wavelength.WavelengthGrid`:

.. math::

    x_i = \frac{p_i - \mu_i}{s_i} \quad(\texttt{linscale}), \qquad
    f(p) = \mathrm{net}(x),

with the per-parameter mean :math:`\mu_i` (``I_PR_Bn``) and standard deviation
:math:`s_i` (``I_PR_Sn``) of the training grid, and :math:`\mathrm{net}` the dense
perceptron of :mod:`ulyss_ann.model.network`.  The Jacobian
:math:`\partial f_j / \partial p_i` is analytic (forward-mode through the layers, with
:math:`\partial x_i / \partial p_i = 1/s_i`); a fitter such as ULySS's Levenberg-Marquardt
otherwise takes finite differences with the steps ``I_P_STn``.

Parameters are plain numbers in the units of the file (:attr:`Parameter.unit`), or
astropy Quantities in any unit convertible to them (``5000 * u.K``, ``2 * u.dex``,
``-1.5 * u.dex``; see :meth:`Interpolator.as_array`).

A network knows nothing of where it was trained: outside the parameter bounds
``[I_P_LBn, I_P_HBn]`` it extrapolates silently.  :meth:`Interpolator.evaluate`
therefore warns (:class:`~ulyss_ann.errors.OutOfBoundsWarning`) there, or raises with
``strict=True``.
"""

import os
import warnings
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
from scipy.special import expit

from ulyss_ann.errors import OutOfBoundsError, OutOfBoundsWarning
from ulyss_ann.model.bundled import interpolator_file
from ulyss_ann.model.network import ACTIVATIONS, forward, forward_with_jacobian
from ulyss_ann.model.parameter import Parameter
from ulyss_ann.model.parameter_values import ParameterValues
from ulyss_ann.model.perceptron_file import FORMAT_VERSION, as_cards, read_perceptron, write_perceptron
from ulyss_ann.model.medium import axis_in_medium, conversion_note, medium_from_header, model_medium
from ulyss_ann.model.wavelength import WavelengthGrid

__all__ = ["Parameter", "Interpolator"]


@dataclass(eq=False, repr=False)
class Interpolator:
    """A neural-network spectral interpolator (ULySS perceptron format 0.0.3).

    Parameters
    ----------
    parameters : sequence of Parameter
        The inputs, in network order.
    weights : sequence of ndarray
        One ``(n_in + 1, n_out)`` float64 array per layer, in the order the layers
        are applied (hidden layer 1 first, output layer last); row 0 is the bias.
    activations : sequence of str
        Activation of each layer: ``logistic``, ``tanh``, ``relu`` or ``linear``.
    wavelength : WavelengthGrid
        Sampling of the output pixels.
    meta : sequence of (keyword, value, comment)
        Extra FITS cards of the primary header (provenance), kept on writing.
    nodes : ndarray (n, npar), optional
        The training nodes (HDU ``NODES``), to tell interpolation from extrapolation.
    path : str, optional
        The file it was read from, for messages.
    medium, medium_source, medium_conversion : str, optional
        ``'air'`` or ``'vacuum'`` (default: the grid's CTYPE1), why, and what :meth:`in_medium` did (e.g.
        ``vacuum→air (the authors' trial 7)``); ``wavelength.air`` is what the header says (:mod:`.medium`).

    Examples
    --------
    >>> flux = Interpolator.read("gsl_ann_trial7.fits").evaluate([5000.0, 2.0, -1.5])  # doctest: +SKIP
    """

    parameters: tuple
    weights: tuple
    activations: tuple
    wavelength: WavelengthGrid
    meta: tuple = ()
    nodes: np.ndarray = field(default=None, compare=False)
    path: str = field(default=None, compare=False)
    medium: str = field(default=None, compare=False)
    medium_source: str = field(default=None, compare=False)
    medium_conversion: str = field(default=None, compare=False)

    def __post_init__(self):
        self.parameters = tuple(self.parameters)
        self.weights = tuple(np.asarray(w, dtype=np.float64) for w in self.weights)
        self.activations = tuple(str(a).lower() for a in self.activations)
        self.meta = as_cards(self.meta)
        if self.medium is None:
            self.medium, self.medium_source = medium_from_header({"CTYPE1": self.wavelength.ctype})
        self._check()
        self._mean = np.array([p.mean for p in self.parameters])
        self._scale = np.array([p.scale for p in self.parameters])
        self._low = np.array([p.low for p in self.parameters])
        self._high = np.array([p.high for p in self.parameters])
        self._dx_dp = np.diag(1.0 / self._scale)
        if self.nodes is not None:
            self.nodes = np.asarray(self.nodes, dtype=float).reshape(-1, self.npar)

    def _check(self):
        if len(self.weights) != len(self.activations) or not self.weights:
            raise ValueError("need one activation per layer and at least one layer")
        lowered = [p.name.lower() for p in self.parameters]
        if len(set(lowered)) != len(lowered):  # names are matched case-insensitively (parameter_index)
            raise ValueError(f"parameters {', '.join(p.name for p in self.parameters)}: each needs its own name")
        width = len(self.parameters)
        for k, (w, a) in enumerate(zip(self.weights, self.activations), start=1):
            if w.ndim != 2 or w.shape[0] != width + 1:
                raise ValueError(f"layer {k}: weights of shape {w.shape}, expected ({width + 1}, n)")
            if a not in ACTIVATIONS:
                raise ValueError(f"layer {k}: unknown activation '{a}'")
            width = w.shape[1]
        if width != self.wavelength.npix:
            raise ValueError(f"output layer has {width} pixels, the wavelength grid {self.wavelength.npix}")

    # ------------------------------------------------------------------ I/O
    @classmethod
    def read(cls, path, medium=None):
        """Read a ULySS perceptron interpolator FITS file (format 0.0.3), or a bundled one by name.

        ``path``: a file, or ``'example'`` / ``'miles'`` (:mod:`~ulyss_ann.model.bundled`;
        an existing file of that name wins). ``medium``: ``'air'`` or ``'vacuum'``, overriding
        what the file says (:func:`~ulyss_ann.model.medium.model_medium`; the file is not changed). Raises
        :class:`~ulyss_ann.errors.InterpolatorFileError` naming the file and the HDU/keyword
        when the file is missing, not FITS, truncated or malformed.
        """
        path = interpolator_file(path)
        fields = read_perceptron(path)
        fields["medium"], fields["medium_source"] = model_medium(path, fields["medium"], fields["medium_source"],
                                                                 medium)
        return cls(path=str(path), **fields)

    def in_medium(self, medium):
        """This network on ``medium``'s axis ('air'/'vacuum': :func:`~ulyss_ann.model.medium.axis_in_medium`)."""
        return replace(self, wavelength=axis_in_medium(self.wavelength, self.medium, medium), medium=medium,
                       medium_conversion=conversion_note(self.medium, self.medium_source, medium))

    def write(self, path, overwrite=False):
        """Write the interpolator; :meth:`read` gives back identical arrays and keywords."""
        write_perceptron(self, path, overwrite=overwrite)

    def __eq__(self, other):
        if not isinstance(other, Interpolator):
            return NotImplemented
        return (self.parameters == other.parameters and self.activations == other.activations
                and self.wavelength == other.wavelength and self.meta == other.meta
                and len(self.weights) == len(other.weights)
                and (self.nodes is None) == (other.nodes is None)
                and (self.nodes is None or np.array_equal(self.nodes, other.nodes))
                and all(a.shape == b.shape and np.array_equal(a, b)
                        for a, b in zip(self.weights, other.weights)))

    # ------------------------------------------------------------------ description
    def __repr__(self):
        name = os.path.basename(self.path) if self.path else "(in memory)"
        inputs = ", ".join(f"{p.name} [{p.unit}]" if p.unit else p.name for p in self.parameters)
        wave = self.wavelength.wavelength
        sampling = " log" if self.wavelength.log else ""
        return (f"<Interpolator {name}: {inputs} -> {self.npix} px {wave[0]:.1f}-{wave[-1]:.1f} Å{sampling}, "
                f"architecture {self.architecture}{', surrogate' if self.is_surrogate else ''}>")

    @property
    def names(self):
        """Parameter names, in network order."""
        return tuple(p.name for p in self.parameters)

    npar = property(lambda self: len(self.parameters), doc="Number of parameters.")
    npix = property(lambda self: self.wavelength.npix, doc="Number of output pixels.")

    @property
    def architecture(self):
        """Layer widths, e.g. ``[3, 32, 64, 2099]`` as in the paper's Table 2."""
        return [self.npar] + [w.shape[1] for w in self.weights]

    @property
    def n_weights(self):
        """Number of trainable numbers (weights and biases)."""
        return int(sum(w.size for w in self.weights))

    @property
    def format_version(self):
        return FORMAT_VERSION

    @cached_property
    def is_surrogate(self):
        """True if the file says its weights were trained on the surrogate grid (keyword SURROGAT): only a
        network trained here on it says so (``train --export``), not one exported with its scaling only
        (:attr:`scaling_from_surrogate`)."""
        return self._flag("SURROGAT")

    @cached_property
    def scaling_from_surrogate(self):
        """True if only the input scaling and wavelengths come from the surrogate grid (``export``, SCALSURR)."""
        return self._flag("SCALSURR")

    @cached_property
    def training_record(self):
        """The training cards of HDU 0 (RECIPE, PRESET, SEED, STEP, TRAINMSE, VALMSE, HOLDMSE, NEXCLUDE)
        present, as a dict."""
        keys = ("RECIPE", "PRESET", "SEED", "STEP", "TRAINMSE", "VALMSE", "HOLDMSE", "NEXCLUDE")
        return {key: value for key, value, _ in self.meta if key in keys}

    def _flag(self, keyword):
        return any(key == keyword and bool(value) for key, value, _ in self.meta)

    @cached_property
    def mesh_steps(self):
        """Typical node spacing of each parameter, in its unit (None without nodes).

        A parameter on a lattice — at most √n distinct values among the n nodes, as on
        the GSL/Göttingen grid — has the median spacing of its values (100 K, 0.5, 0.5
        dex there). A parameter with continuous values (MILES: 657 distinct Teff among
        771 stars) has :math:`\\sqrt{12}\\,s/n^{1/N}`, the spacing of n values spread evenly
        over its spread s (standard deviation), N parameters: the median gap between
        distinct values (4 K for MILES) would say nothing about the grid.
        """
        return None if self.nodes is None else np.array([step for _, step in self._node_axes])

    @cached_property
    def _node_axes(self):
        """Per parameter: (distinct values, step) for a lattice, (None, step) for continuous values."""
        n = len(self.nodes)
        axes = []
        for column in self.nodes.T:
            values = np.unique(column)
            if 1 < values.size <= np.sqrt(n):
                axes.append((values, float(np.median(np.diff(values)))))
            else:
                spread = np.sqrt(12.0) * np.std(column) / n ** (1.0 / self.npar)
                axes.append((None, float(spread) if spread > 0 else 1.0))
        return axes

    def _node_coordinates(self, p):
        """Parameters in node-spacing units: a lattice parameter by its index among the grid's
        values (piecewise linear, extended with the end steps), a continuous one divided by
        its :attr:`mesh_steps`. A lattice with uneven steps (GSL: 100 K below 7000 K, 200 K
        above; 1 dex between [Fe/H] −3 and −2, 0.5 above) becomes a unit lattice."""
        out = np.empty_like(p)
        for i, (values, step) in enumerate(self._node_axes):
            x = p[:, i]
            if values is None:
                out[:, i] = x / step
                continue
            index = np.interp(x, values, np.arange(values.size, dtype=float))
            index = np.where(x < values[0], (x - values[0]) / (values[1] - values[0]), index)
            out[:, i] = np.where(x > values[-1], values.size - 1 + (x - values[-1]) / (values[-1] - values[-2]), index)
        return out

    @cached_property
    def _node_tree(self):
        """KD-tree of the nodes in node-spacing units, and each node's local spacing (see node_distance)."""
        from scipy.spatial import cKDTree

        coords = self._node_coordinates(self.nodes)
        tree = cKDTree(coords)
        k = min(2 * self.npar, len(coords) - 1)
        if k < 1:
            return tree, np.ones(len(coords))
        dist, _ = tree.query(coords, k + 1)
        spacing = dist[:, -1]
        positive = spacing[spacing > 0]
        return tree, np.maximum(spacing, positive.min() if positive.size else 1.0)

    def node_distance(self, params):
        """Distance to the nearest training node in the grid's own local node spacing (None without nodes).

        With :math:`u(p)` the parameters in node-spacing units (a lattice parameter by
        its index among the grid's values, a continuous one in :attr:`mesh_steps`),

        .. math::

            d(p) = \\frac{\\min_k |u(p) - u(n_k)|}{\\operatorname{median}_{j \\in J(p)} r_{2N}(n_j)},

        :math:`r_{2N}(n_j)` the distance of node :math:`n_j` to its 2N-th nearest node
        (N parameters: in a unit lattice the 2N face neighbours, 1) and :math:`J(p)` the
        N + 1 nodes nearest to p. d is the distance to the nearest node in units of how
        far apart the nodes are *there*, so that it means the same on a regular grid and
        on an irregular one such as MILES. d > 1: p is farther from every node than the
        nodes around it are from their neighbours — a hole or beyond the edge of the
        grid, where the network extrapolates. Measured (``FitResult.flags``,
        ``far-from-nodes``): on the 2908-node GSL grid of the bundled example, random
        points inside grid cells give d ≤ 0.86 (a cell centre 0.87 = √3/2 in the
        interior), 2 steps beyond the edge 1.41; on the MILES interpolator the fits of the
        573 MILES stars inside its bounds land at median d 0.43, 99th percentile 1.07
        (8 above 1, among them fits far off the catalogue, e.g. log g 2.35 dex), where the
        former per-parameter median spacing flagged all 573.
        """
        if self.nodes is None:
            return None
        p = np.atleast_2d(self.as_array(params)).astype(float)
        tree, spacing = self._node_tree
        m = min(self.npar + 1, len(self.nodes))
        dist, index = tree.query(self._node_coordinates(p), m)
        dist, index = dist.reshape(len(p), -1), index.reshape(len(p), -1)
        d = dist[:, 0] / np.median(spacing[index], axis=1)
        return d if np.ndim(params) == 2 else float(d[0])

    # ------------------------------------------------------------------ parameters
    def parameter_index(self, name):
        """Index of parameter ``name`` (case-insensitive), or a ParameterError listing the names."""
        return self._values.index(name)

    def as_array(self, params):
        """Parameters as a float64 array of shape (npar,) or (n, npar), in the units of the file.

        ``params`` is an array-like in network order, or a mapping from parameter name
        (case-insensitive) to a value or a sequence of values; values may be astropy
        Quantities, converted to each parameter's unit
        (:meth:`~ulyss_ann.model.parameter_values.ParameterValues.as_array`).
        """
        return self._values.as_array(params)

    @cached_property
    def _values(self):
        return ParameterValues(self.parameters)

    def check_bounds(self, params, strict=False):
        """Warn (or raise if ``strict``) when parameters lie outside the trained bounds."""
        p = np.atleast_2d(params)
        outside = (p < self._low) | (p > self._high)
        if not outside.any():
            return
        lines = []
        for i in np.flatnonzero(outside.any(axis=0)):
            par = self.parameters[i]
            values = p[outside[:, i], i]
            lines.append(f"{par.name} = {values[0]:g}{' …' if values.size > 1 else ''} "
                         f"({values.size} value{'s' if values.size > 1 else ''}) outside "
                         f"[{par.low:g}, {par.high:g}] {par.unit}".rstrip())
        message = ("; ".join(lines) + ": the network extrapolates there"
                   + ("" if strict else " (strict=True, or --strict, makes this an error)"))
        if strict:
            raise OutOfBoundsError(message)
        warnings.warn(message, OutOfBoundsWarning, stacklevel=3)

    def _standardise(self, params, strict):
        p = self.as_array(params)
        self.check_bounds(p, strict)
        return p, (p - self._mean) / self._scale

    # ------------------------------------------------------------------ numerics
    def evaluate(self, params, strict=False, out=None):
        """Spectrum (or spectra) for the given parameters.

        Parameters
        ----------
        params : array-like, shape (npar,) or (n, npar), or mapping name -> value(s)
            Physical parameters in the units of :attr:`parameters`, or astropy
            Quantities in any unit that converts to them (see :meth:`as_array`).
        strict : bool
            Raise :class:`~ulyss_ann.errors.OutOfBoundsError` instead of warning when
            parameters lie outside the trained bounds.
        out : ndarray, shape (n, npix), optional
            Array to write batched results into (saves allocating one per call).

        Returns
        -------
        flux : ndarray, shape (npix,) or (n, npix)
            Normalised flux in float64, on :attr:`wavelength`.
        """
        p, x = self._standardise(params, strict)
        if p.ndim == 1:
            return self._evaluate_one(x)
        return forward(x, self.weights, self.activations, out=out)

    def _evaluate_one(self, x):
        # Single spectrum: 1-D products, no batch bookkeeping (latency matters in fits);
        # on a few dozen units scipy's expit (one call) beats the blocked in-place logistic.
        h = x
        for w, name in zip(self.weights, self.activations):
            h = (expit if name == "logistic" else ACTIVATIONS[name][0])(w[0] + h @ w[1:])
        return h

    def evaluate_with_jacobian(self, params, strict=False):
        """Spectra and their analytic Jacobian.

        Returns
        -------
        flux : ndarray, shape (npix,) or (n, npix)
        jac : ndarray, shape (npix, npar) or (n, npix, npar)
            :math:`\\partial f_j / \\partial p_i` in flux per parameter unit (the file's
            unit, also when ``params`` are Quantities in other units).
        """
        p, x = self._standardise(params, strict)
        flux, jac = forward_with_jacobian(np.atleast_2d(x), self._dx_dp, self.weights,
                                          self.activations)
        return (flux[0], jac[0]) if p.ndim == 1 else (flux, jac)

    def jacobian(self, params, strict=False):
        """Analytic Jacobian :math:`\\partial f / \\partial p`, shape (npix, npar) or (n, npix, npar)."""
        return self.evaluate_with_jacobian(params, strict)[1]
