"""What both engines share: the configuration of a fit, its preparation, and the engine interface.

A fit of one spectrum goes the same way in both engines:

1. :class:`~ulyss_ann.fitting.preparation.FitPreparation` decides what is fitted — the wavelength range (the
   requested one, 1.5 pixels inside the network's), the good pixels (the reader's,
   minus the telluric bands, Na D and the user's masks), the guesses and the fixed
   parameters — and makes the checks (overlap, guesses inside the training bounds,
   enough good pixels holding a signal: :meth:`FitPreparation.check_signal`), all in
   one place;
2. the engine (:class:`FitEngine` subclass: :class:`~ulyss_ann.fitting.gdl_engine.engine.GDLEngine`
   or :class:`~ulyss_ann.fitting.native_engine.engine.NativeEngine`) solves the model of the
   paper's Eq. 8 and returns a :class:`Solution`;
3. the base class turns it into a :class:`~ulyss_ann.fitting.result.FitResult`, and
   writes the best fit when ``save_fits`` asks.

Neither engine imports the other: both import this module.
"""

import time
from dataclasses import dataclass, field, replace

import numpy as np

from ulyss_ann.errors import MachineryError, UlyssAnnError, first_line
from ulyss_ann.fitting.preparation import FitPreparation
from ulyss_ann.fitting import error_model  # noqa: F401 - registers --errors total beside resampling's
from ulyss_ann.fitting.engine_traits import EngineTraits
from ulyss_ann.fitting.resampling import (MIN_NSIMUL, Formal, error_method, fixed_values, nsimul, result_copy, samples_of,
                                          simulation_rng)
from ulyss_ann.fitting.result import FitResult
from ulyss_ann.fitting.valley import check_flat_valleys
from ulyss_ann.model.checksum import file_sha256
from ulyss_ann.model.interpolator import Interpolator
from ulyss_ann.model.medium import on_spectra_axis

__all__ = ["FitConfig", "Solution", "FitEngine"]

@dataclass
class FitConfig:
    """How to fit: model, guesses, fixed parameters, polynomial, range, masks, engine.

    Attributes
    ----------
    model : str
        Interpolator file.
    guesses : dict, optional
        Parameter name -> sequence of starting values. Default: the paper's
        (Teff 5000/5500/6000 K, [Fe/H] -1/-1.5) where the names match, the
        training-grid mean otherwise.
    mdegree : int
        Degree of the multiplicative Legendre polynomial (paper: 20).
    wave_range : (float, float), optional
        Fitted range [Å] (default: the network's range).
    telluric : TelluricMask, str, bool or None
        The telluric bands masked (:mod:`~ulyss_ann.fitting.masks`): a set's name
        (``muse``, ``none``), a file of bands, True (the default set, ``muse``), False
        (none); None: the default set, except in simulated spectra. Resolved by
        ``make_config`` to a :class:`~ulyss_ann.fitting.masks.TelluricMask`.
    mask_nad : bool
        Also mask 5885-5900 Å as written (interstellar Na D, and a star's own near rest).
    mask_ism : bool
        Also mask the interstellar lines (Na D, DIBs 5780 and 6284 Å) at rest ± 50 km/s.
    masks : sequence of (lo, hi)
        More ranges to mask [Å].
    engine : str
        ``gdl`` (ULySS in GDL), ``native`` (NumPy/SciPy), or another registered engine
        (:mod:`~ulyss_ann.fitting.engines`).
    backend : str
        GDL engine: session backend, ``auto``, ``pygdl`` or ``subprocess``.
    timeout : float
        GDL engine: seconds one call may take before the session restarts.
    recycle_after : int
        GDL engine: restart a subprocess GDL after this many fits (GDL's built-ins leak).
    losvd : str
        Native engine: ``sampled`` (ULySS's pixel-sampled Gaussian, the default, for
        agreement) or ``analytic`` (pPXF's Fourier form, exact below a pixel).
    lsf : str, optional
        A relative LSF file (ULySS's text format, :mod:`ulyss_ann.spectra.line_spread`) injected
        into the model before the fit, as ULySS's ``LSF=`` does.
    device : str
        Native engine: where a block of spectra is evaluated. ``auto`` (default): a GPU
        through torch when there is one, else ``cpu`` (NumPy and numba); ``cuda`` or
        ``cuda:N``: that GPU; ``torch-cpu``: the GPU's code on the CPU (to check it).
        The same answers, to rounding (:mod:`~ulyss_ann.fitting.native_engine.torch_block`).
    search : str
        Native engine: which guesses are fitted. ``auto`` (default): ``adaptive``, the two of lowest
        starting χ² first and every guess where they do not settle it
        (:mod:`~ulyss_ann.fitting.native_engine.start_search`); ``all``: every guess to its end, as
        ULySS (the GDL engine's only search).
    save_fits : str, optional
        Folder where each spectrum's best fit is written: ``<id>_fit.fits`` (data, best
        fit, residual, mask on the fitted ln-λ grid) and, by the GDL engine, ``<id>.res``
        (ULySS's solut text, for its own tools).
    model_sha256 : str, optional
        The model's SHA-256 when the caller has it already (the batch driver): not
        computed again per worker.
    model_medium, medium : str, optional
        ``air`` or ``vacuum``: the model's, or every spectrum's, wavelength medium, whatever the
        files say (:mod:`~ulyss_ann.model.medium`, :mod:`~ulyss_ann.spectra.spectrum_medium`).
    errors : str
        How the errors are estimated (:mod:`~ulyss_ann.fitting.resampling`): ``formal``
        (MPFIT's, as ULySS: the default), ``mc`` (ULySS's Monte-Carlo, ``NSIMUL``) or
        ``total``.
    nsimul : int, optional
        Refits of perturbed copies per spectrum for ``mc``/``total`` (default
        :data:`~ulyss_ann.fitting.resampling.DEFAULT_NSIMUL`, at least 5).
    seed : int, optional
        Seed of every perturbation drawn in Python (native ``mc``/``total``, GDL ``total``; each
        spectrum's own stream, from the seed and its id, so that a batch's order changes nothing).
        None: fresh entropy. Only GDL's ``mc`` of a spectrum with errors ignores it: ULySS's NSIMUL
        draws from GDL's generator.
    format : str, optional
        The reader of every spectrum file, by name (``muse``, ``apogee``, ``specutils:LOADER``…:
        :mod:`~ulyss_ann.spectra.readers`); None (default): each file's own, from its content.
    flat_check : bool
        With ``mc``/``total`` errors, also profile χ² along each free parameter for the flag
        ``flat-valley:<name>`` (:mod:`~ulyss_ann.fitting.valley`; natively ~1 s a spectrum, in GDL
        13-25 uly_fit a parameter). False skips it (``flat_valleys`` None). ``formal`` never runs it.
    """

    model: str
    guesses: dict = None
    mdegree: int = 20
    wave_range: tuple = None
    telluric: object = None
    mask_nad: bool = False
    mask_ism: bool = False
    masks: tuple = ()
    backend: str = "auto"
    timeout: float = 600.0
    recycle_after: int = 100
    save_fits: str = None
    engine: str = "gdl"
    losvd: str = "sampled"
    lsf: str = None
    device: str = "auto"
    search: str = "auto"
    model_sha256: str = None
    model_medium: str = None  # 'air'/'vacuum' overriding the model file's (ulyss_ann.model.medium)
    medium: str = None  # 'air'/'vacuum' overriding every spectrum file's (ulyss_ann.spectra.spectrum_medium)
    format: str = None  # the spectrum reader forced (ulyss_ann.spectra.readers); None: each file's own
    errors: str = "formal"
    nsimul: int = None
    seed: int = None
    flat_check: bool = True

    def engine_key(self):
        """What an engine is built from (guesses, masks and range may change between fits).

        The model's SHA-256 is part of it: a file rewritten under the same name is a new model.
        """
        return (self.engine, self.losvd, self.model, self.model_sha256, self.backend, self.mdegree,
                self.save_fits, self.recycle_after, self.lsf, self.timeout, self.device, self.model_medium)


@dataclass
class Solution:
    """What an engine found: the numbers of the best guess and the fit on its ln-λ grid."""

    n_guess: int
    best_guess: int
    n_converged: int
    chi2: float
    rms: float
    n_pix: int
    cz: float
    e_cz: float
    sigma: float
    e_sigma: float
    values: np.ndarray
    errors: np.ndarray
    status: np.ndarray          # per parameter: 0 free, 1 fixed, 2 at the low limit, 3 at the high limit
    ln_start: float
    ln_step: float
    flux: np.ndarray
    bestfit: np.ndarray
    mask: np.ndarray
    error: np.ndarray = field(default=None)
    dof_factor: float = 1.0     # fitted pixels per independent pixel (ULySS's, ≥ 1)


class FitEngine(EngineTraits):
    """The interface of an engine: ``fit(spectrum, fixed) -> FitResult``, ``close()``.

    A subclass sets :attr:`name` and implements :meth:`solve`; everything before
    (preparation, checks) and after (the result, the saved best fit) is done here,
    the same for every engine. What it declares to the rest of the package (options,
    label, block size, needs) are :class:`~ulyss_ann.fitting.engine_traits.EngineTraits`'
    classmethods; it is registered in :mod:`~ulyss_ann.fitting.engines`.

    Parameters
    ----------
    config : FitConfig
    interp : Interpolator, optional
        The model, when the caller has read it already (else read from ``config.model``).
    """

    name = None

    def __init__(self, config, interp=None):
        self.config = config
        self.interp = interp if interp is not None else Interpolator.read(config.model)
        self.interp = on_spectra_axis(self.interp, config.model_medium)  # like with like: the model's axis in air
        self.sha256 = config.model_sha256 or file_sha256(config.model)

    @property
    def preparation(self):
        """The preparation of the engine's configuration (:meth:`fit_many` makes its own of the one it is given)."""
        return FitPreparation(self.config, self.interp)

    def solve(self, prepared):
        """Fit one :class:`~ulyss_ann.fitting.preparation.PreparedFit`; return a :class:`Solution`."""
        raise NotImplementedError

    def fit(self, spectrum, fixed=None, config=None):
        """Fit one :class:`~ulyss_ann.spectra.spectrum.Spectrum`; return its FitResult.

        ``config``: as in :meth:`fit_many`.

        Raises UlyssAnnError (no overlap, guesses or fixed values outside the bounds,
        the engine's own errors), which the batch driver turns into the row's status.
        """
        result = self.fit_many([spectrum], [fixed], config=config)[0]
        if isinstance(result, Exception):
            raise result
        return result

    def solve_many(self, prepared_fits):
        """Fit several :class:`~ulyss_ann.fitting.preparation.PreparedFit`; a Solution or the UlyssAnnError
        of each, in order.

        One at a time here; an engine that can fit many together (the native one) overrides it.
        """
        outcomes = []
        for prepared in prepared_fits:
            try:
                outcomes.append(self.solve(prepared))
            except UlyssAnnError as exc:
                outcomes.append(exc)
        return outcomes

    def fit_many(self, spectra, fixed=None, config=None):
        """Fit several spectra; a list with the FitResult, or the UlyssAnnError saying why not, of each.

        ``fixed``: one mapping of fixed values per spectrum (or None). ``config``: the FitConfig of
        these fits (default :attr:`config`); it must share the engine's :meth:`FitConfig.engine_key`,
        the rest (guesses, masks, range, errors…) may differ. It travels with the fits (each
        :class:`~ulyss_ann.fitting.preparation.PreparedFit` carries it): the engine's own is never swapped,
        so that threads sharing an engine (:func:`~ulyss_ann.fitting.engines.engine_for`, one per process)
        each fit with their own, refits and χ² profiles included. The native engine fits
        the spectra that share a grid together (:meth:`solve_many`); every answer is the one
        the spectrum gets from :meth:`fit` alone. ``time`` in each result is the block's
        time shared among its spectra.
        """
        started = time.perf_counter()
        config = config if config is not None else self.config
        preparation = FitPreparation(config, self.interp)
        fixed = list(fixed) if fixed is not None else [None] * len(spectra)
        outcomes, prepared = [], []
        for spectrum, values in zip(spectra, fixed):
            try:
                prepared.append(preparation.prepare(spectrum, values))
                outcomes.append(len(prepared) - 1)
            except UlyssAnnError as exc:
                outcomes.append(exc)
        solutions = self.solve_many(prepared)
        seconds = (time.perf_counter() - started) / max(1, len(spectra))
        results = []
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                results.append(outcome)
                continue
            solution = solutions[outcome]
            if isinstance(solution, Exception):
                results.append(solution)
                continue
            result = FitResult.from_solution(solution, prepared[outcome], self.interp, engine=self.name,
                                             model=config.model, model_sha256=self.sha256, seconds=seconds)
            result = self._resampled_errors(prepared[outcome], result, config)
            if isinstance(result, Exception):
                results.append(result)
                continue
            if config.save_fits:
                result.write_fits(config.save_fits)
            results.append(result)
        if config.flat_check and error_method(config.errors).refits:  # they pay for refits: profiles too
            results = check_flat_valleys(self, spectra, fixed, results, config)
        return results

    # ------------------------------------------------------------------ errors beyond MPFIT's
    def _resampled_errors(self, prepared, result, config):
        """Replace MPFIT's errors by the configured method's (``--errors``), when it refits.

        The refits go through :meth:`resample` (one place, for every method and engine). Should
        they fail, the result keeps MPFIT's errors and says so (``error_method`` ``formal``,
        the table's ``errors`` column, the flag ``errors-fallback``): a finished fit is never
        lost for its errors' sake; a failure of the machinery (GDL died) is the row's ``failed:``.
        """
        method = error_method(config.errors)()
        if not method.refits:
            return result
        started = time.perf_counter()
        try:
            samples = self.resample(prepared, result, method, nsimul(config), simulation_rng(config, result))
        except MachineryError as exc:  # GDL died: the row is failed: and fitted again on --resume
            return exc
        except UlyssAnnError as exc:
            result.errors_fallback = f"{method.name} refits failed ({first_line(exc, 120)})"
            return result
        done = min(len(values) for values in samples.values())
        if done < MIN_NSIMUL:
            result.errors_fallback = f"{method.name}: {done} of {nsimul(config)} refits converged"
            return result
        result.replace_errors(method.name, method.errors(result, samples))
        result.n_refits = done
        result.time += time.perf_counter() - started
        return result

    def resample(self, prepared, result, method, n, rng):
        """``n`` refits of copies of ``result``'s fitted spectrum perturbed by ``method``: name -> values.

        Here the perturbed copies (:meth:`ErrorMethod.perturbed`) are refitted by :meth:`refit`;
        the GDL engine lets ULySS make and fit ULySS's own Monte-Carlo copies (``NSIMUL``).
        """
        return self.refit(prepared, result, method.perturbed(result, rng, n))

    def refit(self, prepared, result, fluxes):
        """Fit each row of ``fluxes`` (n, npix: copies of the fitted spectrum on its ln-λ grid) from the
        best solution; name -> array of n refitted values (the parameters, ``cz``, ``sigma``).

        The generic way: each copy is a spectrum of its own (ln-λ sampled, the fit's errors and
        mask), fitted with one guess, the best values, and the same fixed parameters, under a
        configuration of their own derived from the one ``prepared`` was made with (the engine's is
        left alone). The native engine overrides it with one lock-step block of all the copies.
        """
        spectra = [result_copy(result, flux) for flux in fluxes]
        guesses = {name: [value] for name, value in result.params.items()}
        fixed = fixed_values(prepared, result)
        # the copies are the fitted pixels already: in air, cut and masked, written nowhere
        config = replace(prepared.config or self.config, guesses=guesses, errors=Formal.name, save_fits=None,
                         wave_range=None, telluric=False, mask_nad=False, mask_ism=False, masks=(), medium="air")
        refits = self.fit_many(spectra, [fixed] * len(spectra), config=config)
        return samples_of([r for r in refits if not isinstance(r, Exception)], list(result.params))

    def close(self):
        """Free what the engine holds (a GDL session)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
