"""Anything a user may call a spectrum, as a :class:`~ulyss_ann.spectra.spectrum.Spectrum`.

:func:`as_spectrum` takes

* a path (``str`` or path-like): read by :func:`~ulyss_ann.spectra.readers.read_spectrum`;
* a :class:`~ulyss_ann.spectra.spectrum.Spectrum`: as it is;
* an astropy ``HDUList`` (``fits.open``'s, or one built in memory, :func:`~ulyss_ann.example_spectrum`'s):
  read by the readers as its file would be, its content as it is now (changes made in memory
  included); its ``id`` from the file it came from, else ``default_id`` or ``spectrum``;
* a specutils spectrum (``specutils.Spectrum`` of specutils ≥ 2, ``Spectrum1D`` of
  1.x; optional dependency): its spectral axis in any spectral unit (converted to Å),
  its flux, its uncertainty (standard deviation, variance or inverse variance) and
  its mask (True = bad, as specutils and astropy's NDData have it);
* a tuple ``(wavelength, flux[, error])`` of arrays [Å] or astropy Quantities (any
  spectral unit for the wavelength; the error in the flux's unit). One spectrum: a flux
  (or error) of one row or one column, ``(1, n)`` or ``(n, 1)``, is taken flattened; one
  of several rows (``(5, n)``) is refused (:class:`NotASpectrumError`), naming the shape
  and the way to fit many (:func:`ulyss_ann.fit` with a list). Masked arrays
  (``numpy.ma``, astropy's ``Masked``) keep their mask: a masked flux or error is a bad
  pixel; masked wavelengths are refused (every pixel needs one). Complex arrays are
  refused (their imaginary part would be dropped unsaid).

Wavelengths are taken to be in air, ULySS's convention (every model of this package
is in air): convert vacuum wavelengths first (:func:`~ulyss_ann.model.medium.vacuum_to_air`).
"""

import os
import sys
import tempfile

import numpy as np

from ulyss_ann.errors import UlyssAnnError, first_line
from ulyss_ann.spectra.compression import spectrum_name
from ulyss_ann.spectra.readers import read_spectrum
from ulyss_ann.spectra.specutils_spectra import angstrom, increasing, specutils_arrays
from ulyss_ann.spectra.spectrum import Spectrum, check_real, several_spectra

__all__ = ["as_spectrum", "is_path", "is_number", "is_array_tuple", "NotASpectrumError"]


class NotASpectrumError(UlyssAnnError):
    """What was given is no kind of spectrum (an int, a 2-D collection): a mistake in the call.

    A batch refuses the whole call for it, whereas a spectrum whose values cannot be
    fitted (arrays of different lengths, all NaN) only gets its ``error:`` row.
    """


def is_path(item):
    """True for a file name (str or path-like), the one input that is not already in memory."""
    return isinstance(item, (str, os.PathLike))


def is_number(text):
    """True for text that reads as a number (a value, where a name or a file may stand instead)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def is_array_tuple(item):
    """True for ``(wavelength, flux[, error])``: a tuple of two or three arrays (error may be None),
    the wavelengths 1-D.

    A flux or error of any shape makes it one: one of several rows is then refused with its
    shape (:func:`as_spectrum`), rather than taken for a list of spectra. A tuple of
    ``(wavelength, flux)`` tuples is that list (its first item is 2-D).
    """
    if not isinstance(item, tuple) or len(item) not in (2, 3):
        return False

    def is_array(x, k):
        if x is None:
            return k == 2
        if isinstance(x, (str, os.PathLike, Spectrum)) or hasattr(x, "spectral_axis"):
            return False
        return np.ndim(x) == 1 if k == 0 else np.ndim(x) >= 1

    return all(is_array(x, k) for k, x in enumerate(item))


def _unmasked(values, what):
    """``(values, bad)``: the data of a masked array (NumPy's or astropy's ``Masked``) and its mask
    (True = bad, None when there is none); other values as they are."""
    check_real(values, what)
    if isinstance(values, np.ma.MaskedArray):
        return np.ma.getdata(values), np.ma.getmaskarray(values)
    if hasattr(values, "unmasked") and hasattr(values, "mask"):  # astropy.utils.masked.Masked (Quantity too)
        return values.unmasked, np.asarray(values.mask, bool)
    return values, None


def _value_in(values, unit, what):
    """A Quantity's value in ``unit`` (the flux's), or a plain array as it is."""
    if getattr(values, "unit", None) is None:
        return np.asarray(values, float)
    if unit is None:
        return np.asarray(values.value, float)
    import astropy.units as u

    try:
        return np.asarray(values.to_value(unit), float)
    except u.UnitConversionError:
        raise UlyssAnnError(f"{what}: unit {values.unit} differs from the flux's {unit}") from None


def _from_specutils(spec, meta):
    if np.ndim(spec.flux) != 1:
        raise NotASpectrumError(f"a specutils spectrum of shape {np.shape(spec.flux)}: give one 1-D spectrum at a "
                                "time (iterate over the collection)")
    wavelength, values, error, good, own = specutils_arrays(spec)
    return Spectrum.from_arrays(wavelength, values, error, good=good, meta={**own, **meta}, fmt="arrays")


def _good_pixels(npix, *masks):
    """False where any of the masks (True = bad, or None) says bad; None when none is given."""
    masks = [np.broadcast_to(m, (npix,)) if np.ndim(m) == 0 else np.ravel(m) for m in masks if m is not None]
    if not masks:
        return None
    if any(m.size != npix for m in masks):
        raise UlyssAnnError(f"a mask of {max(m.size for m in masks)} values for {npix} pixels")
    return ~np.logical_or.reduce(masks)


def as_spectrum(item, default_id=None, format=None):  # noqa: A002 - read_spectrum's name for it
    """``item`` as a Spectrum (see the module's text for what it may be).

    ``default_id``: the id of an in-memory spectrum that carries none (a batch numbers
    them so that their rows stay apart). ``format``: the reader of a file, by name
    (:func:`~ulyss_ann.spectra.readers.read_spectrum`; None: chosen from its content).
    """
    meta = {"id": default_id} if default_id is not None else {}
    if isinstance(item, Spectrum):
        return item
    if is_path(item):
        return read_spectrum(os.fspath(item), format=format)
    if hasattr(item, "spectral_axis") and hasattr(item, "flux"):
        return _from_specutils(item, meta)
    fits = sys.modules.get("astropy.io.fits")  # an HDUList exists only once astropy.io.fits is imported
    if fits is not None and isinstance(item, fits.HDUList):
        return _from_hdulist(item, default_id, format)
    if is_array_tuple(item):
        for values, what in zip(item[1:], ("flux", "error")):
            problem = several_spectra(values, what)
            if problem:
                raise NotASpectrumError(problem)  # many spectra in one call: a mistake in the call
        wavelength, masked = _unmasked(item[0], "wavelength")
        if masked is not None and masked.any():
            raise UlyssAnnError(f"wavelength: {int(masked.sum())} masked values; every pixel needs its wavelength "
                                "(mask the flux instead)")
        wavelength = angstrom(wavelength, "wavelength")
        flux, bad = _unmasked(item[1], "flux")
        unit = getattr(flux, "unit", None)
        error, bad_error = _unmasked(item[2], "error") if len(item) == 3 and item[2] is not None else (None, None)
        # flattened: a (1, n) row reversed whole would not reverse its pixels
        error = np.ravel(_value_in(error, unit, "error")) if error is not None else None
        good = _good_pixels(np.size(flux), bad, bad_error)
        wavelength, flux, error, good = increasing(wavelength, np.ravel(_value_in(flux, None, "flux")), error, good)
        return Spectrum.from_arrays(wavelength, flux, error, good=good, meta=meta)
    raise NotASpectrumError(f"cannot fit a {type(item).__name__}: give a file name, a ulyss_ann.Spectrum, an "
                            "astropy HDUList, a specutils spectrum, or (wavelength, flux[, error]) arrays")


def _from_hdulist(hdul, default_id, format):  # noqa: A002
    """An HDUList read by the readers: written to a private temporary file (its content as it is now, not the
    file it was opened from, which the caller may have changed since) and read as that file would be; its
    id the file's name, else ``default_id``. What goes wrong names the HDUList (or its file), never the
    temporary one."""
    origin = hdul.filename()
    label = f"the HDUList of {origin}" if origin else "the HDUList"
    if len(hdul) == 0:
        raise UlyssAnnError(f"{label} is empty: no spectrum in it")
    with tempfile.TemporaryDirectory(prefix="ulyss_ann-") as folder:
        path = os.path.join(folder, "hdulist.fits")
        try:
            hdul.writeto(path)  # astropy's verification as for any file it writes: a damaged card is refused
        except Exception as exc:  # noqa: BLE001 - astropy's verification and I/O errors: one line
            raise UlyssAnnError(f"{label}: astropy cannot write it as FITS ({type(exc).__name__}: "
                                f"{first_line(exc, 120)})") from None
        try:
            spectrum = read_spectrum(path, format=format)
        except UlyssAnnError as exc:
            raise type(exc)(str(exc).replace(path, label)) from None
    spectrum.meta.pop("file", None)  # the temporary file is gone
    spectrum.meta["id"] = spectrum_name(origin) if origin else (default_id or "spectrum")
    if origin:
        spectrum.meta["file"] = os.path.abspath(origin)
    return spectrum
