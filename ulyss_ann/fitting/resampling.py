"""Errors beyond MPFIT's curvature: the methods of ``--errors`` (a registry), and the refits they need.

(For error_model.py: this module must not import it — an import cycle, refused by
tests/test_layers.py; :mod:`~ulyss_ann.fitting.core` imports it, which registers ``total``
wherever a fit or ``make_config`` runs. ``fitted.dof_factor`` is a FitResult field now.)

``formal`` is ULySS's (MPFIT's ``sqrt(diag((JᵀJ)⁻¹))``, scaled as uly_fit scales it). The
others perturb the *fitted* spectrum — the log-rebinned flux on the fitted ln-λ grid, as
ULySS's ``NSIMUL`` loop perturbs ``SignalLog`` — fit each copy again from the best solution,
and take the errors from the scatter of the refitted parameters:

* ``mc`` (:class:`MonteCarlo`): ULySS's Monte-Carlo errors (``ulyss, …, NSIMUL=n``):
  Gaussian noise of the spectrum's own σ added to the data.
* ``total``: the interpolator's systematic part included, calibrated on data
  (:mod:`~ulyss_ann.fitting.error_model`).

An :class:`ErrorMethod` says how to perturb (:meth:`ErrorMethod.perturbed`) and how to
turn the refits into errors (:meth:`ErrorMethod.errors`); the engines do the refits, all
through :meth:`FitEngine.resample <ulyss_ann.fitting.core.FitEngine.resample>` →
:meth:`~ulyss_ann.fitting.core.FitEngine.refit` (the native engine fits the n copies of a
spectrum in one lock-step block; the GDL engine fits ``mc`` by ULySS's own ``NSIMUL``
loop, the methods with :attr:`ErrorMethod.ulyss_nsimul` False by ULySS fits of the
perturbed copies). Every copy is refitted from the best solution (a single guess: the best
values). cz and σ start where each path puts them: the native engine's block at the best cz and
σ; ULySS's ``NSIMUL`` (GDL, ``mc``) at cz 0 and σ = max(σ, 1 px) (ULySS always starts cz at 0);
the generic refits (:meth:`FitEngine.refit <ulyss_ann.fitting.core.FitEngine.refit>`: GDL's
``total``, ``mc`` without errors) at ULySS's defaults, 0 and 1 px.
"""

import zlib

import numpy as np

from ulyss_ann.model.wavelength import WavelengthGrid
from ulyss_ann.spectra.spectrum import Spectrum

__all__ = ["ErrorMethod", "ERROR_METHODS", "register_error_method", "error_method", "MonteCarlo", "Formal",
           "DEFAULT_NSIMUL", "MIN_NSIMUL", "nsimul", "simulation_rng", "correlated_noise", "result_copy",
           "samples_of", "refit_samples", "fixed_values", "robust_std", "errors_note"]

#: Refits per spectrum when ``nsimul`` is not given: the robust width of 50 draws is good
#: to ~15 % (σ_IQR/σ ≈ 1.65/√n).
DEFAULT_NSIMUL = 50
#: Fewer refits give no usable width (an interquartile range of 4 numbers).
MIN_NSIMUL = 5

#: name -> ErrorMethod subclass: the choices of ``--errors`` / ``errors=``.
ERROR_METHODS = {}


def register_error_method(cls):
    """Class decorator: make ``cls`` a choice of ``--errors`` under ``cls.name``."""
    ERROR_METHODS[cls.name] = cls
    return cls


def error_method(name):
    """The registered :class:`ErrorMethod` called ``name`` (KeyError otherwise)."""
    return ERROR_METHODS[name]


class ErrorMethod:
    """How the errors of a fit are estimated.

    Subclasses set :attr:`name` and, when they need refits (:attr:`refits` True),
    implement :meth:`perturbed`; :meth:`errors` turns the refitted values into errors
    (by default their robust scatter).
    """

    #: the name of ``--errors``
    name = "formal"
    #: whether refits of perturbed copies are needed (``formal`` needs none)
    refits = False
    #: the perturbation is ULySS's own Monte-Carlo (``ulyss, …, NSIMUL=n``), which the GDL
    #: engine then leaves to ULySS instead of fitting :meth:`perturbed` copies
    ulyss_nsimul = False

    def perturbed(self, fitted, rng, n):
        """``n`` perturbed copies of the fitted spectrum: an array (n, npix) of fluxes.

        ``fitted`` is the :class:`~ulyss_ann.fitting.result.FitResult` of the best fit
        (``flux``, ``error``, ``bestfit``, ``mask`` on its ln-λ grid ``ln_start``/``ln_step``,
        ``dof_factor``); ``rng`` a :class:`numpy.random.Generator`.
        """
        raise NotImplementedError

    def errors(self, fitted, samples):
        """Errors from the refits: ``samples`` is a mapping name -> array of n refitted values
        (the parameters, ``cz`` and ``sigma``); returns name -> 1-σ error."""
        return {name: robust_std(values) for name, values in samples.items()}


def robust_std(values, clip=4.0):
    """The standard deviation of ``values`` without their outliers: that of the values within ``clip``
    robust σ (IQR / 1.349) of the median, so that a refit that ran to a grid limit does not decide the
    error alone, while the error of the many others keeps the plain standard deviation's precision
    (the IQR's own is 1.7 times worse: with 30 refits, ±21 % instead of ±13 %, which widens pulls)."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if values.size < 2:
        return np.nan
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    spread = (q3 - q1) / 1.349
    kept = values[np.abs(values - median) <= clip * spread] if spread > 0 else values
    return float(np.std(kept, ddof=1)) if kept.size >= 2 else float(spread)


@register_error_method
class Formal(ErrorMethod):
    """MPFIT's errors, as ULySS reports them (the default)."""

    name = "formal"


@register_error_method
class MonteCarlo(ErrorMethod):
    """ULySS's Monte-Carlo errors (``NSIMUL``): the fitted spectrum plus Gaussian noise of its
    own σ, correlated over ``dof_factor`` pixels as ULySS documents (:func:`correlated_noise`);
    the error is the robust scatter of the refits."""

    name = "mc"
    refits = True
    ulyss_nsimul = True

    def perturbed(self, fitted, rng, n):
        """``fitted.flux + σ · noise``, ``n`` times. Without an error spectrum (fitted
        unweighted, as ULySS) σ is the residual rms over the fitted pixels, the noise that
        the formal errors then assume."""
        flux = np.asarray(fitted.flux, float)
        if fitted.error is not None:
            sigma = np.where(np.isfinite(fitted.error), fitted.error, 0.0)
        else:
            sigma = np.full(flux.size, np.std((flux - fitted.bestfit)[fitted.mask]))
        return flux + sigma * correlated_noise(rng, n, flux.size, fitted.dof_factor)


def correlated_noise(rng, n, npix, dof_factor):
    """``n`` noise vectors of ``npix`` pixels for a spectrum of ``dof_factor`` pixels per independent one.

    As ULySS's ``NSIMUL`` documents it: Gaussian noise drawn on ``ceil(npix/dof_factor)``
    independent points, interpolated linearly onto the ``npix`` pixels (IDL ``interpol``),
    rescaled. The scale is ``√dof_factor`` per pixel (rms over the vector) times the errors,
    because the log-rebinning divided the errors by ``√dof_factor`` (so that χ² counts
    independent pixels) while the pixels' own noise is that of the input pixels. ULySS
    1.3.2 divides instead by ``√(mean(noise²)·dof_factor)`` and then overwrites the vector
    with white noise (``ulyss.pro``, the ``NSIMUL`` loop: noticed, not copied); for
    ``dof_factor`` 1 — MUSE, MILES: as many log pixels as linear ones — all agree: white
    noise of the errors' size.
    """
    dof = max(1.0, float(dof_factor))
    independent = int(np.ceil(npix / dof))
    noise = rng.standard_normal((n, independent))
    if independent == npix:
        return noise
    positions = np.linspace(0.0, independent - 1.0, npix)
    noise = np.stack([np.interp(positions, np.arange(independent), row) for row in noise])
    return noise / np.sqrt(np.mean(noise ** 2, axis=1, keepdims=True)) * np.sqrt(dof)


def nsimul(config):
    """The refits per spectrum of ``config`` (:data:`DEFAULT_NSIMUL` when not given)."""
    return DEFAULT_NSIMUL if config.nsimul is None else int(config.nsimul)


def simulation_rng(config, fitted):
    """The random stream of one spectrum's perturbations: from ``config.seed`` and the spectrum's
    id when a seed is given (the same draws whatever the batch's order or workers), else fresh."""
    if config.seed is None:
        return np.random.default_rng()
    return np.random.default_rng([int(config.seed), zlib.crc32(str(fitted.spectrum_id).encode())])


def result_copy(fitted, flux):
    """A :class:`~ulyss_ann.spectra.spectrum.Spectrum` of ``flux`` on ``fitted``'s ln-λ grid, with its
    errors and fitted pixels: a perturbed copy, to be fitted as a spectrum of its own."""
    npix = len(flux)
    grid = WavelengthGrid(npix, fitted.ln_start, fitted.ln_step, 1.0, log=True, air=True)
    error = None if fitted.error is None else np.asarray(fitted.error, float)
    return Spectrum(np.asarray(flux, float), error, np.asarray(fitted.wavelength, float),
                    np.asarray(fitted.mask, bool).copy(), grid=grid, meta={"id": fitted.spectrum_id})


def fixed_values(prepared, fitted):
    """The fixed parameters of a prepared fit at their values: name -> value."""
    return {name: fitted.params[name] for name, flag in zip(fitted.params, prepared.fixed_flags) if flag}


def refit_samples(names, values, cz, sigma):
    """The refits as :meth:`ErrorMethod.errors` takes them: name -> array of the n refitted values, for the
    network's parameters ``names`` (``values``: n rows, one column each), ``cz`` and ``sigma`` [km/s]."""
    values = np.asarray(values, float).reshape(-1, len(names))
    samples = {name: values[:, k] for k, name in enumerate(names)}
    samples.update(cz=np.asarray(cz, float), sigma=np.asarray(sigma, float))
    return samples


def samples_of(refits, names):
    """:func:`refit_samples` of FitResults ``refits``."""
    return refit_samples(names, [[r.params[name] for name in names] for r in refits], [r.cz for r in refits],
                         [r.sigma for r in refits])


def errors_note(result):
    """Which errors a FitResult carries, for people: ``formal``, ``mc (50 refits)``, ``total (50 refits)``, or
    ``formal (mc refits failed …)`` when those asked for could not be had (its ``errors_fallback``)."""
    if result.errors_fallback:
        return f"{result.error_method} ({result.errors_fallback})"
    return result.error_method + (f" ({result.n_refits} refits)" if result.n_refits else "")
