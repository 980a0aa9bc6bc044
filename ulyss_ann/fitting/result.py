r"""The result of fitting one spectrum, the same object from both engines.

A :class:`FitResult` is to ulyss_ann what ``pp`` is to pPXF: the solution, its errors
and the fit itself, ready to look at::

    >>> result = ulyss_ann.fit_spectrum("star.fits", model="gsl_ann_trial7.fits")   # doctest: +SKIP
    >>> result.params["Teff"], result.errors["Teff"], result.units["Teff"]       # doctest: +SKIP
    (5425.6, 5.2, 'K')
    >>> fig = result.plot()                                                     # doctest: +SKIP
"""

import os
import re
from dataclasses import dataclass, field

import numpy as np

from ulyss_ann.fitting.der_snr import der_noise
from ulyss_ann.figures import value_with_error
from ulyss_ann.fitting.quality import ERRORS_ESTIMATED, quality_flags
from ulyss_ann.fitting.resampling import errors_note
from ulyss_ann.fitting.result_build import result_fields, result_row
from ulyss_ann.fitting.result_fits import write_fit_fits
from ulyss_ann.model.wavelength import C_KMS

__all__ = ["FitResult", "file_stem"]

#: Characters that never go into the name of a file we write: control characters (a newline
#: in a file name breaks every line-based tool and listing) and the path separator.
_NOT_IN_FILE_NAMES = re.compile(r"[\x00-\x1f\x7f" + re.escape(os.sep) + "]")


def file_stem(spectrum_id):
    """A spectrum id as the stem of the files written for it: an id is data, never a path of its own,
    and keeps no control character (each becomes ``_``; the id itself, in the table, is unchanged)."""
    return _NOT_IN_FILE_NAMES.sub("_", str(spectrum_id)) or "spectrum"


@dataclass(repr=False, eq=False)
class FitResult:
    r"""The fit of one spectrum by :math:`F(\lambda) = P_n(\lambda)\,[G(v, \sigma) \otimes f(p)](\lambda)`.

    The model is the paper's Eq. 8: the network's spectrum :math:`f(p)` at the
    atmospheric parameters :math:`p`, convolved with a Gaussian line-of-sight velocity
    distribution :math:`G` of mean :math:`cz` and dispersion :math:`\sigma`, times a
    multiplicative Legendre polynomial :math:`P_n` of degree ``mdegree``. Both engines
    fit it on the spectrum log-rebinned to a constant velocity step, by
    Levenberg–Marquardt from every combination of guesses; the lowest
    :math:`\chi^2` wins.

    Attributes
    ----------
    params, errors : dict
        Parameter name (as the interpolator names it: ``Teff``, ``Logg``, ``Fe/H``) ->
        best value and its 1-σ error, by :attr:`error_method` (``formal``: MPFIT's; estimated
        from the residuals when the spectrum has no errors: :attr:`errors_estimated`). Units
        in :attr:`units`.
    error_method : str
        Which errors :attr:`errors`, ``e_cz`` and ``e_sigma`` carry: ``formal`` (MPFIT's, as
        ULySS), ``mc`` (the scatter of refits of noisy copies, ULySS's NSIMUL) or ``total``
        (:mod:`~ulyss_ann.fitting.resampling`).
    formal_errors : dict
        MPFIT's errors, kept when another method replaced them: parameter name, ``cz`` and
        ``sigma`` -> 1-σ error.
    errors_fallback : str
        Why the errors asked for (``--errors mc``…) could not be had and MPFIT's were kept
        ('' when they were: the flag ``errors-fallback``).
    n_refits : int
        The refits the errors come from (``mc``/``total``: those that converged; 0 for ``formal``).
    flat_valleys : tuple of str or None
        Free parameters with a flat χ² valley (flag ``flat-valley:<name>``, :mod:`~ulyss_ann.fitting.valley`),
        checked with ``mc``/``total`` errors only; None unchecked (``formal``: profiles cost 13-25 fits each).
    dof_factor : float
        Fitted pixels per independent pixel (ULySS's, ≥ 1): how correlated the
        log-rebinned noise is (used by the Monte-Carlo noise).
    units : dict
        Parameter name -> unit string of the interpolator (``K``, ``dex``).
    status : dict
        Parameter name -> ``free``, ``fixed``, ``low`` or ``high`` (ended on a limit
        of the training grid).
    cz, e_cz, sigma, e_sigma : float
        Velocity and dispersion of the LOSVD [km/s], ``cz`` relative to the wavelength
        scale of the spectrum, as ULySS reports it.
    chi2 : float
        Reduced χ² (0 when the spectrum has no errors, as ULySS).
    rms : float
        Residual rms over the fitted pixels, relative to the mean best fit.
    errors_estimated : bool
        The spectrum came without σ (see the property).
    flags : tuple of str
        Quality, empty when nothing is wrong: ``bound:<name>``, ``sigma-floor``,
        ``one-guess-converged``, ``far-from-nodes``, ``poor-fit``, ``errors-estimated``,
        ``low-coverage``, ``errors-fallback``, ``flat-valley:<name>`` (see :attr:`flags`).
    wavelength : ndarray
        Pixel centres [Å] of the fitted spectrum (log-rebinned, cut to the fitted range):
        ``exp(ln_start + i * ln_step)``.
    ln_start, ln_step : float
        That grid in ln(λ/Å), as ULySS keeps it.
    flux, error, bestfit : ndarray
        The log-rebinned spectrum, its 1-σ error (None if it has none) and the best fit.
    mask : ndarray of bool
        True for the pixels that were fitted.
    n_guess, best_guess, n_converged, n_pix, n_masked : int
        Guess combinations, the winner's index, guesses within 0.1 % of its rms,
        fitted pixels, pixels masked before the fit (bad values and masked bands).
    lmin, lmax : float
        Fitted range [Å]: the requested one (``wave_range``) cut to what the network (less
        1.5 of its pixels) and the spectrum cover; :attr:`range_note` says when that cut it.
    requested_range : tuple or None
        The ``wave_range`` asked for [Å], None when none was.
    coverage : float
        Fraction of the network's wavelength range that the fitted, unmasked pixels cover.
    node_distance : float or None
        Distance of the solution to the nearest training node, in units of the grid's own
        local node spacing (:meth:`~ulyss_ann.model.interpolator.Interpolator.node_distance`;
        > 1: a hole or beyond the grid's edge). None when the interpolator has no nodes.
    engine, model, model_sha256, model_medium : str
        Which engine fitted, with which interpolator file, on which medium and why (e.g.
        ``vacuum→air (the authors' trial 7)``: :mod:`ulyss_ann.model.medium`).
    medium : str
        The spectrum's wavelength medium as fitted (always air) and why, e.g. ``vacuum→air (header
        CTYPE1=WAVE)`` or ``air (assumed)`` (:mod:`ulyss_ann.spectra.spectrum_medium`).
    surrogate : bool
        The interpolator was trained on the SURROGATE grid (the bundled example is):
        said in :func:`repr` and on the figure.
    time : float
        Seconds the fit took.
    spectrum_id : str
        The spectrum's id (its file name without extension, or as given).
    meta : dict
        The spectrum's ``file``, ``ra``, ``dec`` [deg], ``snr`` and ``n_bad``.
    """

    params: dict
    errors: dict
    units: dict
    status: dict
    cz: float
    e_cz: float
    sigma: float
    e_sigma: float
    chi2: float
    rms: float
    wavelength: np.ndarray
    flux: np.ndarray
    bestfit: np.ndarray
    mask: np.ndarray
    error: np.ndarray = None
    ln_start: float = np.nan
    ln_step: float = np.nan
    n_guess: int = 1
    best_guess: int = 0
    n_converged: int = 1
    n_pix: int = 0
    n_masked: int = 0
    lmin: float = np.nan
    lmax: float = np.nan
    requested_range: tuple = None
    node_distance: float = None
    coverage: float = np.nan
    engine: str = ""
    model: str = ""
    model_sha256: str = ""
    model_medium: str = ""
    medium: str = ""
    surrogate: bool = False
    time: float = 0.0
    spectrum_id: str = ""
    meta: dict = field(default_factory=dict)
    error_method: str = "formal"
    formal_errors: dict = None
    dof_factor: float = 1.0
    errors_fallback: str = ""
    n_refits: int = 0
    flat_valleys: tuple = None

    def __post_init__(self):
        if self.formal_errors is None:  # MPFIT's, whatever replaces them later
            self.formal_errors = dict(self.errors, cz=self.e_cz, sigma=self.e_sigma)

    def replace_errors(self, method, errors):
        """Carry the errors of another method instead of MPFIT's, which stay in :attr:`formal_errors`.

        Parameters
        ----------
        method : str
            The method's name, as :attr:`error_method` says it (``mc``, ``total``).
        errors : mapping of str to float
            1-σ error of each parameter (same units as :attr:`params`), of ``cz`` and of ``sigma``
            [km/s]. A fixed parameter keeps MPFIT's 0, whatever this says.
        """
        # a fixed parameter is no measurement: it keeps MPFIT's 0 (``total`` would add its floor)
        self.errors = {name: self.formal_errors[name] if self.status.get(name) == "fixed" else float(errors[name])
                       for name in self.params}
        self.e_cz, self.e_sigma = float(errors["cz"]), float(errors["sigma"])
        self.error_method = method

    @property
    def formal_e_sigma(self):
        """MPFIT's error on σ (0 where σ is pegged at its floor), whatever :attr:`error_method` is."""
        return self.formal_errors["sigma"]

    # ------------------------------------------------------------------ making one
    @classmethod
    def from_solution(cls, solution, prepared, interp, engine, model, model_sha256, seconds):
        """Build the result of an engine's fit (:func:`~ulyss_ann.fitting.result_build.result_fields`).

        Parameters
        ----------
        solution : ulyss_ann.fitting.core.Solution
            What the engine found: the best guess's numbers and the fit on its ln-λ grid.
        prepared : ulyss_ann.fitting.preparation.PreparedFit
            The spectrum as it was made ready for the engine (its pixels kept, the fitted range).
        interp : Interpolator
            The network that was fitted: parameter names, units, nodes and medium.
        engine : str
            The engine's name, as :attr:`engine` says it.
        model, model_sha256 : str
            The interpolator's file (its base name is kept; a path-like will do) and its SHA-256.
        seconds : float
            How long the fit took [s].

        Returns
        -------
        FitResult
            The result, with plain Python numbers and numpy arrays, alike for both engines.
        """
        return cls(**result_fields(solution, prepared, interp, engine, model, model_sha256, seconds))

    @property
    def misfit(self):
        """Residual rms over the noise expected on the fitted pixels: ~1 for a fit as good as the data.

        The expected noise is the larger of what the errors say (then the ratio is
        :math:`\\sqrt{\\chi^2}`, χ² being reduced) and what the flux's pixel-to-pixel scatter
        says (:func:`~ulyss_ann.fitting.der_snr.der_noise`); without errors (χ² = 0, as ULySS reports it: MILES) the
        latter alone. Taking the larger keeps a good fit of a very high S/N spectrum, where
        the network's own imperfection dominates the residual, from looking poor: the MUSE
        star at S/N 380 has χ² = 31 (√χ² = 5.6) but a misfit of 2.0. NaN when neither
        estimate exists.
        """
        mean = np.mean(self.bestfit[self.mask]) if np.any(self.mask) else np.nan
        ratio = self.rms * mean / der_noise(self.flux, self.mask) if mean > 0 else np.nan
        if self.error is not None and self.chi2 > 0:
            ratio = np.fmin(ratio, np.sqrt(self.chi2))
        return float(ratio)

    @property
    def errors_estimated(self):
        """True when the spectrum came without σ (arrays without an error, a file without an error column).

        It was then fitted unweighted, as ULySS does: every pixel counts alike, χ² is reported
        as 0, and the errors are MPFIT's scaled by the residuals (by √χ², so that χ²/dof = 1),
        which assumes the model fits to the noise; both engines alike. The fit itself differs
        from a weighted one, not only its errors: the MUSE star gives log g 3.41 unweighted
        instead of 3.71 with its SIGMA.
        """
        return self.error is None

    @property
    def range_note(self):
        """One line when the fitted range is narrower than the ``wave_range`` asked for, else ''."""
        if self.requested_range is None:
            return ""
        lo, hi = self.requested_range
        if self.lmin <= lo and self.lmax >= hi:
            return ""
        return (f"fitted {self.lmin:.0f}-{self.lmax:.0f} Å of the {lo:g}-{hi:g} Å asked for (the part that the "
                "network and the spectrum both cover)")

    @property
    def flags(self):
        """Quality flags (a tuple of str), derived from the numbers, so alike for both engines:
        ``bound:<name>``, ``sigma-floor``, ``one-guess-converged``, ``far-from-nodes``, ``poor-fit``,
        ``errors-estimated``, ``low-coverage``, ``errors-fallback``, ``flat-valley:<name>``
        (:func:`~ulyss_ann.fitting.quality.quality_flags` says when)."""
        return quality_flags(self)

    # ------------------------------------------------------------------ looking at it
    @property
    def residual(self):
        """Data minus best fit, on :attr:`wavelength`."""
        return self.flux - self.bestfit

    @property
    def velscale(self):
        """Velocity step of the fitted grid [km/s]."""
        return C_KMS * self.ln_step

    def summary(self, label=str):
        """Two lines for people: the parameters and which errors they carry (:func:`errors_note`), then the
        kinematics, the fit's quality and provenance (the figure's title too); a third when the range asked
        for was cut (:attr:`range_note`). Values and errors go to the same decimal place (``value_with_error``).

        Parameters
        ----------
        label : callable, optional
            Renders a parameter name (the figures pass one that writes [Fe/H], T_eff); ``str`` by default.

        Returns
        -------
        str
            Those two or three lines, joined by newlines; parameters in their units, cz and σ in km/s.
        """
        values = ", ".join(f"{label(n)} = "
                           + value_with_error(v, self.errors[n], self.units[n], fixed=self.status.get(n) == "fixed")
                           for n, v in self.params.items())
        flags = [f for f in self.flags if f != ERRORS_ESTIMATED]  # said in words below
        flags = f", flags {','.join(flags)}" if flags else ""
        quality = ("errors estimated from the residuals (no σ given)" if self.errors_estimated
                   else f"χ² = {self.chi2:.4g}")
        model = self.model + (" (SURROGATE)" if self.surrogate else "")
        note = f"\n{self.range_note}" if self.range_note else ""
        return (f"{self.spectrum_id}: {values} (errors: {errors_note(self)})\n"
                f"cz = {value_with_error(self.cz, self.e_cz, 'km/s')}, "
                f"σ = {value_with_error(self.sigma, self.e_sigma, 'km/s')}, {quality}, "
                f"rms = {self.rms:.3g}, {self.n_pix} px{flags} ({self.engine}, {model}){note}")

    def __repr__(self):
        return "<FitResult " + self.summary().replace("\n", "; ") + ">"

    def row(self):
        """The result as one row of the batch table (:mod:`ulyss_ann.fitting.table`).

        Returns
        -------
        dict
            Column name -> value: ``id``, ``file``, ``ra``/``dec`` [deg], each parameter and its
            ``e_`` error (in :attr:`units`), ``cz``, ``sigma`` and their errors [km/s], ``chi2``,
            ``rms``, ``misfit``, the counts, ``lmin``/``lmax`` [Å], ``time`` [s], ``status`` (``ok``),
            ``flag``, ``errors``, the provenance, and ``node_distance`` when the network has nodes.
        """
        return result_row(self)

    def to_table(self):
        """The result as a table, with units, the same columns as the batch table.

        Returns
        -------
        astropy.table.Table
            One row: :meth:`row` with its units.
        """
        from ulyss_ann.fitting.table import rows_to_table

        return rows_to_table([self.row()], list(self.units.items()))

    def plot(self, figure=None):
        """A figure of the fit (data, best fit, masked pixels) and its residuals, against λ [Å].

        Parameters
        ----------
        figure : matplotlib.figure.Figure, optional
            Draw into this figure (else a new one). The backend is never changed.

        Returns
        -------
        matplotlib.figure.Figure
            The figure drawn.
        """
        from ulyss_ann.fitting.result_figure import plot_fit

        return plot_fit(self, figure=figure)

    def write_fits(self, folder):
        """Write ``<folder>/<id>_fit.fits``: data, best fit, residual and mask on the fitted ln-λ grid.

        The primary HDU holds the flux, the extensions ``BESTFIT``, ``RESIDUAL`` and ``MASK``
        (1: fitted), all with ULySS's ln-λ axis and the same axis as FITS WCS (λ in Å, air). Written
        whole or not at all (a full disk leaves no partial file), never through a symbolic link.

        Parameters
        ----------
        folder : str or path-like
            The folder (made if missing); the file name is the spectrum id, made safe (:func:`file_stem`).

        Returns
        -------
        str
            The path written.

        Raises
        ------
        ulyss_ann.errors.MachineryError
            When the file cannot be written (a full disk, no permission, a symbolic link in the way):
            one line naming it (:func:`~ulyss_ann.fitting.result_fits.save_failure`).
        """
        return write_fit_fits(self, os.path.join(folder, f"{file_stem(self.spectrum_id)}_fit.fits"))
