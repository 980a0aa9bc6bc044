"""The observed spectrum as both engines fit it: flux, error, air wavelengths, good pixels.

Every way in — a file (:func:`~ulyss_ann.spectra.readers.read_spectrum`), arrays or
Quantities, a specutils spectrum (:func:`~ulyss_ann.spectra.inputs.as_spectrum`) — ends in
:meth:`Spectrum.from_arrays`, so bad values are masked the same way for all: NaN or
infinite flux, missing, zero, negative or non-finite errors, values beyond
:data:`VALUE_LIMIT`, and the caller's mask. What no fit can use is refused there, for
both engines alike: complex values, a flux out of range as a whole, a flux negative
overall.
"""

from dataclasses import dataclass, field

import numpy as np

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.model.medium import AIR, VACUUM
from ulyss_ann.model.medium import vacuum_to_air
from ulyss_ann.model.wavelength import WavelengthGrid
from ulyss_ann.spectra.compression import spectrum_name

__all__ = ["Spectrum", "regular_grid", "VALUE_LIMIT", "check_real", "several_spectra", "median"]

#: The largest |flux| or error a fit can hold: beyond it the squares and sums of squares of
#: the fit overflow (a spectrum x 1e200 ends in NaN natively), and ULySS, which keeps
#: spectra in single precision (max 3.4e38), has no solution from ~1e40 on. Pixels beyond
#: it are bad values; a spectrum whose typical |flux| is beyond it is refused.
VALUE_LIMIT = 1e30

#: Why a spectrum whose file says nothing of its medium is on air (:mod:`~ulyss_ann.spectra.spectrum_medium`).
ASSUMED = "assumed: no AIRORVAC, VACUUM or CTYPE1, air as ULySS reads it"


def check_real(values, what):
    """UlyssAnnError when ``values`` are complex: NumPy would drop their imaginary part unsaid."""
    if np.iscomplexobj(values) or np.iscomplexobj(getattr(values, "value", None)):
        raise UlyssAnnError(f"{what}: complex values; a spectrum is real numbers (give the part that is the "
                            "spectrum, e.g. .real or np.abs)")


def several_spectra(values, what):
    """Why ``values`` (a flux, its error) is not one spectrum, or None.

    One spectrum is a fit: an array of one row or one column, ``(1, n)`` or ``(n, 1)``, is
    that spectrum (taken flattened), but an array with more than one axis longer than 1
    holds several, which no single fit can take.
    """
    shape = np.shape(values)
    if sum(length > 1 for length in shape) <= 1:
        return None
    return (f"{what} of shape {shape}: several spectra, and a fit takes one; give one spectrum's 1-D {what} (a "
            f"row {what}[i] or a column {what}[:, i]), or fit many with ulyss_ann.fit and a list of "
            "(wavelength, flux[, error]) tuples, one per spectrum")


def median(values):
    """``float(np.median(values))`` of a 1-D array, bit for bit, in a third of its time for float64 (NumPy's steps:
    the middle one or two by partition, their mean; NaN where a value is NaN): each spectrum read takes one."""
    size = values.size
    if size == 0 or values.dtype != np.float64:
        return float(np.median(values))  # NumPy's warning and NaN; another type's own arithmetic
    half = size // 2
    middle = [half - 1, half] if size % 2 == 0 else [half]
    part = np.partition(values, middle + [-1])
    if np.isnan(part[-1]):
        return float(part[-1])  # that NaN, as NumPy gives it (its sign too)
    # np.mean's sum starts at +0 (a -0 median is +0), then the one or two values in order
    return float((0.0 + part[half - 1] + part[half]) / 2) if size % 2 == 0 else float(0.0 + part[half])


def _check_flux_values(flux, error, good):
    """UlyssAnnError for a flux no fit can use as a whole: out of range, or negative overall.

    ``good``: the pixels that may be fitted. Both engines would otherwise answer
    wrongly: a flux x 1e300 overflows the fit ("internal error"), and a negative flux is
    fitted "ok" natively (the polynomial turns negative) while ULySS, whose model weight
    cannot be negative, finds no solution ("all the cmp have a null weight").
    """
    finite = np.isfinite(flux)
    for values, what in ((flux[finite], "|flux|"), (None if error is None else error[np.isfinite(error)], "error")):
        if values is not None and values.size and _median_may_pass(np.abs(values) > VALUE_LIMIT):
            typical = float(np.median(np.abs(values)))
            if typical > VALUE_LIMIT:
                raise UlyssAnnError(f"the flux values are out of range (median {what} {typical:.3g}, beyond "
                                    f"{VALUE_LIMIT:g}: the fit would overflow); rescale the flux and error "
                                    "(e.g. divide both by the median flux)")
    if good.any() and _median_may_pass(flux[good] < 0):
        median = float(np.median(flux[good]))
        if median < 0:
            raise UlyssAnnError(f"the flux is negative overall (median {median:.3g} over {int(good.sum())} good "
                                "pixels): not a spectrum ULySS can fit (its model takes a positive weight)")


def _median_may_pass(beyond):
    """False when the median of values cannot be beyond a bound: fewer than half of them are (``beyond``, a
    boolean per value). The sorted middle value (or both middle ones, whose mean lies between them) is then
    within it. A count instead of a sort: 3 medians were a third of reading a spectrum."""
    return 2 * np.count_nonzero(beyond) >= beyond.size


def regular_grid(wavelength, rtol=1e-7):
    """The linear or ln-λ :class:`WavelengthGrid` of ``wavelength`` [Å], or None if irregular.

    Arrays made from a WCS (``crval + cdelt * i``) are recognised, so that a spectrum
    given as arrays is resampled exactly as the same spectrum read from its file.
    """
    wavelength = np.asarray(wavelength, float)
    n = wavelength.size
    if n < 3:
        return None
    for log, axis in ((False, wavelength), (True, np.log(wavelength))):
        step = (axis[-1] - axis[0]) / (n - 1)
        if step > 0 and np.max(np.abs(np.diff(axis) - step)) <= rtol * step:
            return WavelengthGrid(n, float(axis[0]), float(step), 1.0, log, True)
    return None


@dataclass
class Spectrum:
    """An observed spectrum ready for fitting.

    Make one with :meth:`from_arrays` (or a reader, or :func:`~ulyss_ann.spectra.inputs.as_spectrum`),
    which checks and masks the arrays. The constructor, like :func:`dataclasses.replace`, takes
    its arrays as they are, unchecked: a spectrum made so (a negative flux, say) reaches the
    engines as it is, and each answers it in its own way. Each argument is also the attribute
    of that name.

    Parameters
    ----------
    flux, error : ndarray (npix,)
        Flux and 1-σ error (``error`` None when there is none); float64, in the
        spectrum's own units (the fit's multiplicative polynomial absorbs them).
    wavelength : ndarray (npix,)
        Pixel centres [Å], in air (converted when the file's are in vacuum).
    good : ndarray of bool (npix,)
        Pixels that may be fitted.
    grid : WavelengthGrid or None
        The regular (linear or log) sampling, when it has one and no vacuum-to-air
        conversion made it irregular.
    meta : dict
        ``id``, ``file``, ``ra``, ``dec`` [deg] when known, ``snr`` (median
        flux/error of good pixels), ``simulated`` (header says so), ``format``, and the
        resolution when the file gives it: ``lsf_fwhm`` [Å] (``FWHM`` keyword, as in
        MILES) or ``lsf_sigma_pix`` (SDSS ``WDISP``, Gaussian σ in pixels).
    medium, medium_source : str
        The medium of the file's wavelengths (``'air'`` or ``'vacuum'``, before the conversion
        to air) and where that came from (``header CTYPE1=WAVE``, the survey's convention,
        assumed, an override: :mod:`~ulyss_ann.spectra.spectrum_medium`).

    See Also
    --------
    ulyss_ann.read_spectrum : a spectrum from a file.

    Examples
    --------
    >>> spec = Spectrum.from_arrays(wave, flux, error, meta={"id": "star1"})   # doctest: +SKIP
    """

    flux: np.ndarray
    error: np.ndarray
    wavelength: np.ndarray
    good: np.ndarray
    grid: WavelengthGrid = None
    meta: dict = field(default_factory=dict)
    medium: str = AIR
    medium_source: str = ASSUMED

    @property
    def n_bad(self):
        """Pixels masked on the way in (bad values or the caller's mask)."""
        return int(np.count_nonzero(~self.good))

    @classmethod
    def from_arrays(cls, wavelength, flux, error=None, good=None, grid=None, meta=None, vacuum=False,
                    source=None, fmt="arrays", medium_source=None):
        """A Spectrum from plain arrays: wavelength [Å], flux, 1-σ error, good-pixel mask.

        Parameters
        ----------
        wavelength, flux : array-like (npix,)
            Wavelengths must increase; at least 10 pixels. One spectrum: a ``(1, npix)`` or
            ``(npix, 1)`` array is taken flattened, one of several rows is refused.
        error : array-like (npix,), optional
            1-σ errors, in the flux's units; pixels whose error is missing, zero, negative, not
            finite or beyond ``VALUE_LIMIT`` (1e30) are masked (as are those whose ``|flux|`` is beyond it).
        good : array-like of bool (npix,), optional
            False for pixels not to fit.
        grid : WavelengthGrid, optional
            The regular sampling, when known (else recognised from ``wavelength``).
        meta : dict, optional
            ``id`` (default: the file name without extension and compression suffix, else ``spectrum``),
            ``ra``, ``dec``...
        vacuum : bool
            The wavelengths are in vacuum: converted to air (the fit's convention).
        medium_source : str, optional
            Where the medium came from (a reader's header keyword; default: ``vacuum=True``
            given, or assumed air).
        source : str, optional
            The file the arrays come from (``meta['file']``).
        fmt : str
            The format the arrays were read from, ``meta['format']`` (a reader's name; ``arrays``
            recognises a regular ``grid`` from ``wavelength``).

        Returns
        -------
        Spectrum
            On air wavelengths; a masked pixel holds flux 0 and an error 1000 times the largest
            good one; ``meta['snr']`` is set when there are errors.

        Raises
        ------
        UlyssAnnError
            One line naming what no fit can use: complex values, several spectra, arrays of
            different lengths or under 10 pixels, no good pixel, a flux out of range or negative
            overall, wavelengths that do not increase.
        """
        for values, what in ((wavelength, "wavelength"), (flux, "flux"), (error, "error")):
            check_real(values, what)
            problem = several_spectra(values, what)
            if problem:
                raise UlyssAnnError(problem)
        flux = np.asarray(flux, dtype=float).ravel()
        wavelength = np.asarray(wavelength, dtype=float).ravel()
        if flux.size < 10 or wavelength.size != flux.size:
            raise UlyssAnnError(f"{flux.size} flux values for {wavelength.size} wavelengths; "
                                "expected matching arrays of at least 10 pixels")
        good = np.ones(flux.size, bool) if good is None else np.asarray(good, bool).ravel().copy()
        if good.size != flux.size:
            raise UlyssAnnError(f"{good.size} mask values for {flux.size} pixels")
        with np.errstate(invalid="ignore"):
            good &= np.isfinite(flux) & (np.abs(flux) <= VALUE_LIMIT)
        if error is not None:
            error = np.asarray(error, dtype=float).ravel()
            if error.size != flux.size:
                raise UlyssAnnError(f"{error.size} error values for {flux.size} pixels")
            with np.errstate(invalid="ignore"):
                good &= np.isfinite(error) & (error > 0) & (error <= VALUE_LIMIT)
        _check_flux_values(flux, error, good)
        if error is not None:
            if not good.any():
                raise UlyssAnnError("no pixel has a finite flux and a positive error")
            error = np.where(good, error, np.nanmax(np.where(good, error, np.nan)) * 1e3)
        flux = np.where(good, flux, 0.0)
        if vacuum:
            wavelength = vacuum_to_air(wavelength)
            grid = None  # the conversion makes any regular grid irregular
        if np.any(np.diff(wavelength) <= 0) or not np.all(np.isfinite(wavelength)):
            raise UlyssAnnError("wavelengths do not increase monotonically")
        if grid is None and fmt == "arrays":
            grid = regular_grid(wavelength)
        meta = dict(meta or {}, format=fmt)
        if source is not None:
            meta["file"] = source
            meta.setdefault("id", spectrum_name(source))
        meta.setdefault("id", "spectrum")
        if error is not None and good.any():
            meta["snr"] = median(flux[good] / error[good])
        if medium_source is None:
            medium_source = "given: vacuum=True" if vacuum else ASSUMED
        return cls(flux, error, wavelength, good, grid, meta, VACUUM if vacuum else AIR, medium_source)
