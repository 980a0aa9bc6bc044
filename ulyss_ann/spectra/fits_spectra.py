"""What the FITS readers share: the file opened once its declared sizes are checked, the
object's position and resolution from its header, the wavelength unit, the error extension.

Sizes are checked before any data is read (:mod:`ulyss_ann.model.limits`): a FITS file
whose headers declare more data than the file holds is truncated, one declaring more
pixels than the memory budget (``ULYSS_ANN_MAX_PIXELS``) is refused.
"""

import warnings
from contextlib import contextmanager

import numpy as np
from astropy.io import fits

from ulyss_ann.errors import first_line
from ulyss_ann.model.limits import (FILE_VALUES_PER_PIXEL, MAX_PIXELS_VARIABLE, max_pixels,
                                    pixel_budget_problem, truncation)
from ulyss_ann.spectra.reader_registry import FITS_HEADER_ERRORS, SpectrumReadError

__all__ = ["opened_fits", "plain_images", "PlainImage", "check_declared_sizes", "header_meta", "unit_factor",
           "error_extension", "image_hdu", "spectrum_image_unit"]


def check_declared_sizes(source):
    """Refuse, from the headers alone, the FITS :class:`~ulyss_ann.spectra.reader_registry.SpectrumFile`
    ``source`` when it is truncated or too large for the memory budget.

    The first image's longest axis is its pixel count (1-D, or a LAMOST-style 5-row
    array); all the HDUs together may declare :data:`FILE_VALUES_PER_PIXEL` values per
    budgeted pixel. Checked before astropy reads (and allocates) anything. A file
    ``compressed`` as a whole has no length to check the headers against: cut short, it
    fails as its data are read.
    """
    path, hdus = source.path, source.declared  # the headers identify read, read once
    problem = None if source.compression is not None else truncation(path, hdus)
    if problem:
        raise SpectrumReadError(f"{path}: {problem}")
    image = next((hdu for hdu in hdus if hdu.image and hdu.shape), None)  # a tile-compressed one: HDU 1
    if image is not None:
        problem = pixel_budget_problem(max(image.shape))
        if problem:
            raise SpectrumReadError(f"{path}: a {problem}")
    values, limit = sum(hdu.values for hdu in hdus), max_pixels()
    if values > FILE_VALUES_PER_PIXEL * limit:
        raise SpectrumReadError(f"{path}: its HDUs declare {values} values, over the memory budget for a spectrum "
                                f"file ({FILE_VALUES_PER_PIXEL} values per pixel x {limit} pixels); raise "
                                f"{MAX_PIXELS_VARIABLE} if the machine has the memory")


class PlainImage:
    """An image HDU of a plain FITS file read without astropy's HDU objects (:func:`plain_images`): ``index``,
    ``name``, ``header`` (the declared one: a :class:`~ulyss_ann.model.scanned_header.ScannedHeader`, which
    reads as astropy's Header, or astropy's), ``data`` (NumPy, big-endian as in the file, astropy's values)."""

    def __init__(self, declared, data):
        self.index, self.name, self.header, self.data = declared.index, declared.name, declared.header, data


#: BITPIX -> the NumPy type of the file's values (big-endian, as astropy leaves them).
_BITPIX = {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}
#: Keywords that make astropy change the stored values (scaling, blanks): such files go through astropy.
_SCALING = ("BSCALE", "BZERO", "BLANK")


def plain_images(source):
    """Every HDU of ``source`` as :class:`PlainImage`, read with NumPy from the positions its headers declare
    (sizes checked), or None where astropy must read it: a compressed file, a table or tile-compressed
    image, scaled or blank-flagged values, an unusual BITPIX. The values are astropy's, bit for bit."""
    hdus = source.declared
    if source.compression is not None or not all(map(_plain, hdus)):
        return None
    check_declared_sizes(source)
    images = []
    with open(source.path, "rb") as handle:
        for hdu in hdus:
            data = None
            if hdu.shape and min(hdu.shape) > 0:
                handle.seek(hdu.end - hdu.nbytes)
                bitpix = _keywords(hdu)["BITPIX"]
                count = hdu.nbytes // abs(bitpix // 8)
                data = np.fromfile(handle, dtype=_BITPIX[bitpix], count=count).reshape(hdu.shape[::-1])
            images.append(PlainImage(hdu, data))
    return images


def _keywords(hdu):
    """The HDU's structural keywords: the plain-FITS scan's (no astropy card parsed), else its astropy Header."""
    return hdu.header if hdu.structural is None else hdu.structural


def _plain(hdu):
    """An image NumPy reads as astropy does: not a table nor tile-compressed, its values stored as they are
    (no scaling, no blank) in a BITPIX of :data:`_BITPIX`, no random groups."""
    keys = _keywords(hdu)
    return (hdu.image and not hdu.binary_table and keys.get("ZIMAGE") is not True and keys.get("BITPIX") in _BITPIX
            and not any(key in keys for key in _SCALING) and keys.get("PCOUNT", 0) == 0 and keys.get("GCOUNT", 1) == 1)


@contextmanager
def opened_fits(source):
    """The HDUs of the :class:`~ulyss_ann.spectra.reader_registry.SpectrumFile` ``source``, every HDU's data
    read (a truncation shows up here), its sizes checked first: :func:`plain_images` where it can, else
    astropy's HDUList; what goes wrong inside, a damaged file, is one line "truncated or corrupt" (astropy
    decompresses gzip and bzip2 itself)."""
    path = source.path
    try:
        with warnings.catch_warnings():  # both paths: astropy's warnings (a card not FITS) are errors
            warnings.simplefilter("error")
            images = plain_images(source)  # its sizes checked
            if images is not None:
                yield images
                return
            check_declared_sizes(source)
            with fits.open(path, memmap=False) as hdul:
                for hdu in hdul:
                    hdu.data  # noqa: B018 - force reading: truncation shows up here
                yield hdul
    except SpectrumReadError:
        raise
    except FITS_HEADER_ERRORS as exc:
        raise SpectrumReadError(f"{path}: truncated or corrupt FITS file ({first_line(exc, 80)})") from None


def header_meta(header):
    """What a header says of the object: ``ra``, ``dec`` [deg], ``simulated``, ``lsf_fwhm`` [Å], ``object``."""
    meta = {}
    for ra_key, dec_key in (("RA", "DEC"), ("HIERARCH STAR RA", "HIERARCH STAR DEC"), ("PLUG_RA", "PLUG_DEC")):
        if ra_key in header and dec_key in header:
            try:
                meta["ra"], meta["dec"] = float(header[ra_key]), float(header[dec_key])
                break
            except (TypeError, ValueError):
                continue
    if header.get("SIMULATD"):
        meta["simulated"] = True
    for key in ("FWHM", "SIM_FWHM", "LSF_FWHM"):  # MILES writes FWHM; our simulations SIM_FWHM
        if isinstance(header.get(key), (int, float)) and not isinstance(header.get(key), bool):
            meta["lsf_fwhm"] = float(header[key])
            break
    for key in ("OBJNAME", "OBJECT", "DESIG"):
        if key in header:
            meta["object"] = str(header[key])
            break
    return meta


def unit_factor(header):
    """Å per unit of the header's ``CUNIT1`` (none: Å), None for a unit that is no wavelength."""
    unit = str(header.get("CUNIT1", "")).strip().lower()
    return {"": 1.0, "angstrom": 1.0, "a": 1.0, "aa": 1.0, "nm": 10.0, "um": 1e4, "m": 1e10}.get(unit)


def error_extension(hdul, flux_hdu):
    """(error array, how it is stored) from a companion extension of ``flux_hdu``, or (None, None).

    (A tile-compressed SIGMA is a CompImageHDU, an ImageHDU only from astropy 7 on.)"""
    for hdu in hdul[1:]:
        name = hdu.name.upper()
        if hdu is flux_hdu or hdu.data is None or not isinstance(hdu, (fits.ImageHDU, fits.CompImageHDU, PlainImage)):
            continue
        if name in ("SIGMA", "ERROR", "ERR", "NOISE"):
            return np.asarray(hdu.data, float), "sigma"
        if name in ("STAT", "VAR", "VARIANCE"):
            return np.sqrt(np.asarray(hdu.data, float)), "variance"
        if name in ("IVAR", "INVVAR"):
            with np.errstate(divide="ignore"):
                return 1.0 / np.sqrt(np.asarray(hdu.data, float)), "ivar"
    return None, None


def image_hdu(hdul):
    """The HDU holding the spectrum's image: the primary's, else (a tile-compressed file, whose images
    are extensions: fpack leaves the primary empty) the first compressed image; None for neither."""
    if hdul[0].data is not None and np.asarray(hdul[0].data).size > 0:
        return hdul[0]
    return next((hdu for hdu in hdul[1:] if isinstance(hdu, fits.CompImageHDU) and hdu.data is not None), None)


def spectrum_image_unit(source):
    """The :class:`~ulyss_ann.spectra.reader_registry.HeaderUnit` of the image :func:`image_hdu` will
    take, from the headers alone (the primary's, else the first tile-compressed one), or None."""
    primary = source.hdus[0] if source.hdus else None
    if primary is not None and primary.kind == "image":
        return primary
    return next(iter(source.units("compressed-image")), None)
