"""The memory budget: how much one spectrum and one interpolator file may hold, checked before reading.

A file states in its headers how much data it holds; a hostile or damaged one can state
anything (a 4 KB file declaring 10⁹ pixels, an interpolator declaring 1.3·10¹⁰ weights),
and one real spectrum of 10⁷ pixels took a native fit past 22 GB. So sizes are checked
from the headers (and the file's length) before any array is read or allocated, against
two budgets, each overridable by an environment variable:

``ULYSS_ANN_MAX_PIXELS`` (default :data:`DEFAULT_MAX_PIXELS` = 1 000 000)
    Pixels of one spectrum, and of one block of spectra the native engine fits together
    on the CPU. A native fit costs about 2.6 kB per fitted pixel with the paper's six
    guesses and MDEGREE 20 (1.5 kB with one guess; about 0.2 kB more per guess) on top of
    ~0.3 GB for the process; measured with trial 7 (last hidden layer of 64 units) by
    ``/usr/bin/time -f %M ulyss-ann fit s.fits -m gsl_ann_trial7.fits -j 0 --engine native``:
    peak RSS 313 MiB at 10⁴ pixels, 532 MiB at 10⁵, 1035 MiB at 3·10⁵ (a 6.6-minute fit),
    2705 MiB at 10⁶ (the run's high-water mark after 10 CPU-minutes); the spectra were trial 7's
    model interpolated onto N pixels over 4742–7405 Å (2.6 kB = 503 MiB / 2·10⁵ pixels;
    GPU blocks, in device memory, are not limited here). So the default keeps one fit
    near 3 GB: an echelle spectrum (2–4·10⁵ pixels) is fitted, a MUSE or MILES spectrum
    (3 681, 4 300 pixels) has 270 times the room.
    A spectrum file may in addition declare at most :data:`FILE_VALUES_PER_PIXEL` values
    per budgeted pixel in all its HDUs (room for SDSS's per-exposure tables), and a text
    spectrum may be at most :data:`TEXT_BYTES_PER_PIXEL` bytes per budgeted pixel long.
``ULYSS_ANN_MAX_MODEL_VALUES`` (default :data:`DEFAULT_MAX_MODEL_VALUES` = 50 000 000)
    Values in all the arrays of an interpolator file (weights, and the NODES table
    counted as 8-byte values): 400 MB as float64, about 1 GB while reading. The authors'
    trial 7 holds 1.4·10⁵ values, the bundled MILES network (five networks averaged) 1.4·10⁶.

A file declaring more than it holds is truncated or corrupt, and refused as such. What
is over a budget is refused in one line naming the variable to raise (or, for a
spectrum, to rebin it): in a batch, that spectrum's ``error: …`` row.
"""

import math
import os
import warnings
from dataclasses import dataclass, field

from astropy.io import fits

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.model.fits_scan import declared_sizes, scan_fits
from ulyss_ann.model.scanned_header import scanned_header

__all__ = ["MAX_PIXELS_VARIABLE", "MAX_MODEL_VALUES_VARIABLE", "DEFAULT_MAX_PIXELS", "DEFAULT_MAX_MODEL_VALUES",
           "FILE_VALUES_PER_PIXEL", "TEXT_BYTES_PER_PIXEL", "FIT_BYTES_PER_PIXEL", "DeclaredData",
           "max_pixels", "max_model_values", "declared_data", "truncation", "pixel_budget_problem"]

MAX_PIXELS_VARIABLE = "ULYSS_ANN_MAX_PIXELS"
MAX_MODEL_VALUES_VARIABLE = "ULYSS_ANN_MAX_MODEL_VALUES"
#: Pixels of one spectrum (and of one CPU block of the native engine), unless the variable says otherwise.
DEFAULT_MAX_PIXELS = 1_000_000
#: Values in an interpolator file's arrays, unless the variable says otherwise.
DEFAULT_MAX_MODEL_VALUES = 50_000_000
#: Values a spectrum file may declare per budgeted pixel, over all its HDUs.
FILE_VALUES_PER_PIXEL = 16
#: Bytes a text spectrum may hold per budgeted pixel (a line of three full-precision numbers is ~75).
TEXT_BYTES_PER_PIXEL = 128
#: Measured peak memory of a native fit per fitted pixel, paper's defaults (see the module's text).
FIT_BYTES_PER_PIXEL = 2600


def _budget(variable, default):
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 1 and value == int(value)):
        raise UlyssAnnError(f"{variable} = {text!r}: expected a positive whole number (default {default})")
    return int(value)


def max_pixels():
    """The pixel budget of one spectrum: ``ULYSS_ANN_MAX_PIXELS``, or :data:`DEFAULT_MAX_PIXELS`."""
    return _budget(MAX_PIXELS_VARIABLE, DEFAULT_MAX_PIXELS)


def max_model_values():
    """The value budget of an interpolator file: ``ULYSS_ANN_MAX_MODEL_VALUES``, or the default."""
    return _budget(MAX_MODEL_VALUES_VARIABLE, DEFAULT_MAX_MODEL_VALUES)


def pixel_budget_problem(npix, what="spectrum"):
    """Why ``npix`` pixels are over the pixel budget (one line), or None when they fit."""
    limit = max_pixels()
    if npix <= limit:
        return None
    return (f"{what} of {npix} pixels, over the memory budget of {limit} pixels per spectrum (a native fit "
            f"needs ~{FIT_BYTES_PER_PIXEL * npix / 1e9:.2g} GB); rebin it to fewer pixels (the network's "
            f"step is enough), or raise {MAX_PIXELS_VARIABLE} if the machine has the memory")


@dataclass(frozen=True)
class DeclaredData:
    """What one HDU's header says its data hold, read without the data."""

    index: int
    name: str
    image: bool
    shape: tuple  # NAXISn, FITS order (NAXIS1 first)
    nbytes: int  # |BITPIX|/8 x GCOUNT x (PCOUNT + product of NAXISn), the FITS standard's formula
    end: int  # where the HDU's padded data end in the file, in bytes
    binary_table: bool = False  # a binary table (BINTABLE), e.g. an SDSS/LAMOST spectrum or an fpack tile store
    #: The HDU's header: astropy's Header, or for a plain file a ScannedHeader, which reads as one.
    header: object = field(default=None, compare=False, repr=False)
    #: The structural keywords as the plain-FITS scan parsed them (with BSCALE, BZERO, BLANK where present),
    #: None where astropy read the headers: the readers' checks of a plain file need no astropy card parsed.
    structural: dict = field(default=None, compare=False, repr=False)

    @property
    def values(self):
        """Values once read: an image's pixels; a table's bytes counted as 8-byte values."""
        if self.image:
            return math.prod(self.shape) if self.shape else 0
        return -(-self.nbytes // 8)


def declared_data(path):
    """The :class:`DeclaredData` of every HDU of a FITS file, from its headers alone.

    No data is read. A plain file's headers are split by :func:`~ulyss_ann.model.fits_scan.scan_fits`
    (a fifth of astropy's time), any other file's by astropy (``lazy_load_hdus``, positions from
    each HDU's ``fileinfo``); the two give the same numbers. A tile-compressed image (fpack,
    ``ZIMAGE = T``) is read as the table that stores it (its bytes in the file) and declares its
    image's pixels (``ZNAXISn``).
    Raises OSError, ValueError or a Warning (astropy's truncation warning, as an error)
    for a file whose headers cannot be read: callers say "truncated or corrupt".
    """
    scanned = scan_fits(path)
    if scanned is not None:
        return [_scanned(hdu) for hdu in scanned]
    hdus = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # our own handle: astropy leaves its file open when a header fails to parse inside fits.open
        with open(path, "rb") as handle, fits.open(handle, memmap=False, lazy_load_hdus=True,
                                                    disable_image_compression=True) as hdul:
            for index, hdu in enumerate(hdul):
                info = hdu.fileinfo()  # the HDU's own: HDUList.fileinfo also stringifies the header (0.4 ms)
                image = isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU))
                hdus.append(_declared(index, hdu.name, hdu.header.get, image, isinstance(hdu, fits.BinTableHDU),
                                      info["datLoc"], hdu.header))
    return hdus


def _scanned(hdu):
    """The :class:`DeclaredData` of a :class:`~ulyss_ann.model.fits_scan.ScannedHDU` (astropy's names: the
    primary is PRIMARY unless EXTNAME says otherwise, an unnamed extension '')."""
    name = hdu.keywords.get("EXTNAME", "PRIMARY" if hdu.index == 0 else "")
    return _declared(hdu.index, name, hdu.keywords.get, hdu.kind in ("primary", "IMAGE"), hdu.kind == "BINTABLE",
                     hdu.data_start, scanned_header(hdu.text), hdu.keywords)


def _declared(index, name, get, image, binary_table, data_start, header, structural=None):
    """One HDU's :class:`DeclaredData` from its structural keywords (:func:`~ulyss_ann.model.fits_scan.declared_sizes`);
    a tile-compressed one declares its image's shape and is an image."""
    shape, nbytes, packed = declared_sizes(get)
    if packed is not None:
        shape, image = packed, True
    return DeclaredData(index, name, image, shape, nbytes, data_start + nbytes, binary_table, header, structural)


def truncation(path, hdus):
    """Why the file is shorter than its headers declare (one line), or None."""
    size = os.path.getsize(path)
    for hdu in hdus:
        if hdu.end > size:
            return (f"truncated or corrupt: HDU {hdu.index} ({hdu.name}) declares {hdu.nbytes} bytes of data "
                    f"ending at byte {hdu.end}, the file has {size}; copy or download it again")
    return None
