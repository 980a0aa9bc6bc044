r"""The spectral interpolator: a trained network as ULySS's perceptron file describes it.

An :class:`Interpolator` maps atmospheric parameters :math:`p` (Teff in K, log g and
[Fe/H] in dex for the GSL networks) to a normalised spectrum :math:`f(p)` sampled on
its :class:`~ulyss_ann.model.wavelength.WavelengthGrid`:

.. math::

    x_i = \frac{p_i - \mu_i}{s_i} \quad(\texttt{linscale}), \qquad
    f(p) = \mathrm{net}(x),

with the per-parameter mean :math:`\mu_i` (``I_PR_Bn``) and standard deviation
:math:`s_i` (``I_PR_Sn``) of the training grid, and :math:`\mathrm{net}` the dense
perceptron of :mod:`ulyss_ann.model.network` (ULySS's TGM polynomial is another input map and one
linear layer: :mod:`~ulyss_ann.model.input_maps`).  The Jacobian :math:`\partial f_j / \partial p_i` is
analytic (forward-mode through the layers, with :math:`\partial x_i / \partial p_i = 1/s_i`); a fitter
such as ULySS's Levenberg-Marquardt otherwise takes finite differences with the steps ``I_P_STn``.

Parameters are plain numbers in the units of the file (:attr:`~ulyss_ann.model.parameter.Parameter.unit`), or
astropy Quantities in any unit convertible to them (``5000 * u.K``, ``2 * u.dex``, ``-1.5 * u.dex``;
see :meth:`Interpolator.as_array`).

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
from ulyss_ann.model.input_maps import input_map
from ulyss_ann.model.network import ACTIVATIONS, check_layers, forward, forward_with_jacobian
from ulyss_ann.model.nodes import NodeMesh
from ulyss_ann.model.parameter_values import ParameterValues
from ulyss_ann.model.perceptron_file import FORMAT_VERSION, as_cards, read_perceptron, write_perceptron
from ulyss_ann.model.medium import axis_in_medium, conversion_note, medium_from_header, model_medium
from ulyss_ann.model.wavelength import WavelengthGrid

__all__ = ["Interpolator"]


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
        ``vacuum→air (the authors' trial 7)``); ``wavelength.air`` is what the header says
        (:mod:`~ulyss_ann.model.medium`).
    input_map : str
        What is done to the parameters before the first layer, by its ``I_PREPRO`` name
        (:mod:`~ulyss_ann.model.input_maps`): ``linscale`` (networks), ``tgm`` (ULySS's TGM polynomial).

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
    input_map: str = "linscale"

    def __post_init__(self):
        self.parameters = tuple(self.parameters)
        self.weights = tuple(np.asarray(w, dtype=np.float64) for w in self.weights)
        self.activations = tuple(str(a).lower() for a in self.activations)
        self.meta = as_cards(self.meta)
        if self.medium is None:
            self.medium, self.medium_source = medium_from_header({"CTYPE1": self.wavelength.ctype})
        kind = input_map(self.input_map)
        problem = kind.problem(self.parameters)
        if problem:
            raise ValueError(problem)
        check_layers(self.parameters, self.weights, self.activations, self.wavelength.npix,
                     kind.width(len(self.parameters)))
        self.inputs = kind(self.parameters)   # the InputMap: x and ∂x/∂p of the first layer
        if self.nodes is not None:
            self.nodes = np.asarray(self.nodes, dtype=float).reshape(-1, self.npar)

    # ------------------------------------------------------------------ I/O
    @classmethod
    def read(cls, path, medium=None):
        """Read a ULySS perceptron interpolator FITS file (format 0.0.3), or a bundled one by name.

        Parameters
        ----------
        path : path-like or str
            A file, or ``'example'`` / ``'miles'`` (:mod:`~ulyss_ann.model.bundled`; an existing file of that
            name wins).
        medium : {'air', 'vacuum'}, optional
            The medium of the file's wavelengths, overriding what the file says
            (:func:`~ulyss_ann.model.medium.model_medium`; the file is not changed).

        Returns
        -------
        Interpolator

        Raises
        ------
        InterpolatorFileError
            Naming the file and the HDU/keyword when the file is missing, not FITS, truncated or malformed.
        """
        path = interpolator_file(path)
        fields = read_perceptron(path)
        fields["medium"], fields["medium_source"] = model_medium(path, fields["medium"], fields["medium_source"],
                                                                 medium)
        return cls(path=str(path), **fields)

    def in_medium(self, medium):
        """This network on the wavelength axis of another medium.

        Parameters
        ----------
        medium : {'air', 'vacuum'}
            The medium wanted (:func:`~ulyss_ann.model.medium.axis_in_medium`).

        Returns
        -------
        Interpolator
            The same weights on the converted axis, with ``medium_conversion`` saying what was done.
        """
        return replace(self, wavelength=axis_in_medium(self.wavelength, self.medium, medium), medium=medium,
                       medium_conversion=conversion_note(self.medium, self.medium_source, medium))

    def write(self, path, overwrite=False):
        """Write the interpolator; :meth:`read` gives back identical arrays and keywords.

        Parameters
        ----------
        path : path-like
            The FITS file to write.
        overwrite : bool
            Replace an existing file (else an existing ``path`` is an error).
        """
        write_perceptron(self, path, overwrite=overwrite)

    def __eq__(self, other):
        if not isinstance(other, Interpolator):
            return NotImplemented
        return (self.parameters == other.parameters and self.activations == other.activations
                and self.input_map == other.input_map
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
                f"architecture {self.architecture}{', surrogate' if self.is_surrogate else ''}"
                f"{'' if self.inputs.perceptron else f', input map {self.input_map}'}>")

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
    def _mesh(self):
        return None if self.nodes is None else NodeMesh(self.nodes)

    @property
    def mesh_steps(self):
        """Typical node spacing of each parameter, in its unit (None without nodes): the median step of a
        lattice parameter, the even spacing of a continuous one (:attr:`~ulyss_ann.model.nodes.NodeMesh.axes`)."""
        return None if self.nodes is None else self._mesh.steps

    def node_distance(self, params):
        """Distance to the nearest training node in the grid's own local node spacing (None without nodes).

        d > 1: ``params`` is farther from every node than the nodes around it are from their neighbours: a hole
        or beyond the grid's edge (the definition of d: :meth:`~ulyss_ann.model.nodes.NodeMesh.distance`).

        Parameters
        ----------
        params : array-like, shape (npar,) or (n, npar), or mapping
            As for :meth:`as_array`.

        Returns
        -------
        float or ndarray of shape (n,) or None
            d, dimensionless; None when the file holds no nodes.
        """
        if self.nodes is None:
            return None
        d = self._mesh.distance(np.atleast_2d(self.as_array(params)).astype(float))
        return d if np.ndim(params) == 2 else float(d[0])

    # ------------------------------------------------------------------ parameters
    def parameter_index(self, name):
        """Index of a parameter in network order.

        Parameters
        ----------
        name : str
            The parameter's name, case-insensitive (``'teff'``).

        Returns
        -------
        int

        Raises
        ------
        ParameterError
            Listing the names, when ``name`` is none of them.
        """
        return self._values.index(name)

    def as_array(self, params):
        """Parameters as a float64 array of shape (npar,) or (n, npar), in the units of the file.

        ``params`` is an array-like in network order, or a mapping from parameter name
        (case-insensitive) to a value or a sequence of values; values may be astropy
        Quantities, converted to each parameter's unit
        (:meth:`~ulyss_ann.model.parameter_values.ParameterValues.as_array`).

        Parameters
        ----------
        params : array-like or mapping

        Returns
        -------
        ndarray, shape (npar,) or (n, npar)
        """
        return self._values.as_array(params)

    @cached_property
    def _values(self):
        return ParameterValues(self.parameters)

    def check_bounds(self, params, strict=False):
        """Warn (or raise if ``strict``) when parameters lie outside the trained bounds.

        Parameters
        ----------
        params : ndarray, shape (npar,) or (n, npar), in the units of the file
        strict : bool
            Raise :class:`~ulyss_ann.errors.OutOfBoundsError` instead of warning
            (:class:`~ulyss_ann.errors.OutOfBoundsWarning`).
        """
        message = self._values.bounds_problem(params, strict)
        if message and strict:
            raise OutOfBoundsError(message)
        if message:
            warnings.warn(message, OutOfBoundsWarning, stacklevel=3)

    def _standardise(self, params, strict):
        p = self.as_array(params)
        self.check_bounds(p, strict)
        return p, self.inputs.apply(p)

    # ------------------------------------------------------------------ numerics
    def evaluate(self, params, strict=False, out=None):
        """Spectrum (or spectra) for the given parameters.

        Parameters
        ----------
        params : array-like, shape (npar,) or (n, npar), or mapping name -> value(s)
            Physical parameters in the units of ``parameters``, or astropy
            Quantities in any unit that converts to them (see :meth:`as_array`).
        strict : bool
            Raise :class:`~ulyss_ann.errors.OutOfBoundsError` instead of warning when
            parameters lie outside the trained bounds.
        out : ndarray, shape (n, npix), optional
            Array to write batched results into (saves allocating one per call).

        Returns
        -------
        flux : ndarray, shape (npix,) or (n, npix)
            Normalised flux in float64, on ``wavelength`` (Å).
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

        Parameters
        ----------
        params, strict
            As for :meth:`evaluate`.

        Returns
        -------
        flux : ndarray, shape (npix,) or (n, npix)
        jac : ndarray, shape (npix, npar) or (n, npix, npar)
            :math:`\\partial f_j / \\partial p_i` in flux per parameter unit (the file's
            unit, also when ``params`` are Quantities in other units).
        """
        p = self.as_array(params)
        self.check_bounds(p, strict)
        x, dx_dp = self.inputs.apply_with_jacobian(np.atleast_2d(p))
        flux, jac = forward_with_jacobian(x, dx_dp, self.weights, self.activations)
        return (flux[0], jac[0]) if p.ndim == 1 else (flux, jac)

    def jacobian(self, params, strict=False):
        """Analytic Jacobian :math:`\\partial f / \\partial p` (:meth:`evaluate_with_jacobian`'s second value).

        Parameters
        ----------
        params, strict
            As for :meth:`evaluate`.

        Returns
        -------
        jac : ndarray, shape (npix, npar) or (n, npix, npar)
        """
        return self.evaluate_with_jacobian(params, strict)[1]
