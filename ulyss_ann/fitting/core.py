"""What both engines share: the configuration of a fit, its preparation, and the engine interface.

A fit of one spectrum goes the same way in both engines:

1. :class:`~ulyss_ann.fitting.preparation.FitPreparation` decides what is fitted — the wavelength range (the
   requested one, 1.5 pixels inside the network's), the good pixels (the reader's,
   minus the telluric bands, Na D and the user's masks), the guesses and the fixed
   parameters — and makes the checks (overlap, guesses inside the training bounds,
   enough good pixels holding a signal: :meth:`FitPreparation.check_signal`), all in
   one place;
2. the engine (:class:`FitEngine` subclass: :class:`~ulyss_ann.fitting.gdl_engine.GDLEngine`
   or :class:`~ulyss_ann.fitting.native_engine.NativeEngine`) solves the model of the
   paper's Eq. 8 and returns a :class:`Solution`;
3. the base class turns it into a :class:`~ulyss_ann.fitting.result.FitResult`, and
   writes the best fit when ``save_fits`` asks.

Neither engine imports the other: both import this module.
"""

import time
from dataclasses import dataclass, field

import numpy as np

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.fitting.preparation import (MIN_DOF, MIN_OVERLAP, NA_D_BAND, OVERSAMPLED, PAPER_GUESSES,
                                           TELLURIC_BANDS, FitPreparation, PreparedFit)
from ulyss_ann.fitting.result import FitResult
from ulyss_ann.model.checksum import file_sha256  # noqa: F401 - the model's identity; also in __all__
from ulyss_ann.model.interpolator import Interpolator
from ulyss_ann.model.medium import on_spectra_axis

__all__ = ["FitConfig", "FitPreparation", "PreparedFit", "Solution", "FitEngine", "TELLURIC_BANDS", "NA_D_BAND",
           "PAPER_GUESSES", "file_sha256", "MIN_OVERLAP", "MIN_DOF", "OVERSAMPLED"]

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
        ``gdl`` (ULySS in GDL) or ``native`` (NumPy/SciPy).
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
        A relative LSF file (ULySS's text format, :mod:`ulyss_ann.spectra.lsf`) injected
        into the model before the fit, as ULySS's ``LSF=`` does.
    device : str
        Native engine: where a block of spectra is evaluated. ``auto`` (default): a GPU
        through torch when there is one, else ``cpu`` (NumPy and numba); ``cuda`` or
        ``cuda:N``: that GPU; ``torch-cpu``: the GPU's code on the CPU (to check it).
        The same answers, to rounding (:mod:`~ulyss_ann.fitting.torch_block`).
    save_fits : str, optional
        Folder where each spectrum's best fit is written: ``<id>_fit.fits`` (data, best
        fit, residual, mask on the fitted ln-λ grid) and, by the GDL engine, ``<id>.res``
        (ULySS's solut text, for its own tools).
    model_sha256 : str, optional
        The model's SHA-256 when the caller has it already (the batch driver): not
        computed again per worker.
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
    model_sha256: str = None
    model_medium: str = None  # 'air'/'vacuum' overriding the model file's (ulyss_ann.model.medium)

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


class FitEngine:
    """The interface of an engine: ``fit(spectrum, fixed) -> FitResult``, ``close()``.

    A subclass sets :attr:`name` and implements :meth:`solve`; everything before
    (preparation, checks) and after (the result, the saved best fit) is done here,
    the same for every engine.

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
        """The preparation of the current configuration (guesses, masks and range may change between fits)."""
        return FitPreparation(self.config, self.interp)

    def solve(self, prepared):
        """Fit one :class:`PreparedFit`; return a :class:`Solution`."""
        raise NotImplementedError

    def fit(self, spectrum, fixed=None):
        """Fit one :class:`~ulyss_ann.spectra.spectrum.Spectrum`; return its FitResult.

        Raises UlyssAnnError (no overlap, guesses or fixed values outside the bounds,
        the engine's own errors), which the batch driver turns into the row's status.
        """
        result = self.fit_many([spectrum], [fixed])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def solve_many(self, prepared_fits):
        """Fit several :class:`PreparedFit`; a Solution or the UlyssAnnError of each, in order.

        One at a time here; an engine that can fit many together (the native one) overrides it.
        """
        outcomes = []
        for prepared in prepared_fits:
            try:
                outcomes.append(self.solve(prepared))
            except UlyssAnnError as exc:
                outcomes.append(exc)
        return outcomes

    def fit_many(self, spectra, fixed=None):
        """Fit several spectra; a list with the FitResult, or the UlyssAnnError saying why not, of each.

        ``fixed``: one mapping of fixed values per spectrum (or None). The native engine fits
        the spectra that share a grid together (:meth:`solve_many`); every answer is the one
        the spectrum gets from :meth:`fit` alone. ``time`` in each result is the block's
        time shared among its spectra.
        """
        started = time.perf_counter()
        fixed = list(fixed) if fixed is not None else [None] * len(spectra)
        outcomes, prepared = [], []
        for spectrum, values in zip(spectra, fixed):
            try:
                prepared.append(self.preparation.prepare(spectrum, values))
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
                                             model=self.config.model, model_sha256=self.sha256, seconds=seconds)
            if self.config.save_fits:
                result.write_fits(self.config.save_fits)
            results.append(result)
        return results

    def close(self):
        """Free what the engine holds (a GDL session)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
