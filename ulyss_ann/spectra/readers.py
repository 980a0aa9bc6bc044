r"""Readers for the observed spectra users have, into one :class:`Spectrum`.

Formats (chosen from the file's content, not its name):

* **MUSE / PampelMuse** — 1-D flux in the primary HDU with a linear WCS, the 1-σ
  error in an extension ``SIGMA`` (also ``ERROR``, ``ERR``, ``STAT`` as variance,
  ``IVAR`` as inverse variance); RA/Dec from ``RA``/``DEC`` (or ``HIERARCH STAR RA``).
* **plain 1-D FITS** with a linear or logarithmic WCS, with or without ``CTYPE1``
  (MILES): see :class:`~ulyss_ann.model.wavelength.WavelengthGrid`.
* **SDSS / LAMOST binary tables** — columns for flux (``FLUX``), its uncertainty
  (``IVAR``/``INVVAR``/``INVERSE_VARIANCE`` or ``ERROR``/``ERR``/``SIGMA``), wavelength
  (``WAVELENGTH``/``WAVE``/``LAMBDA`` in Å, or ``LOGLAM`` = log10 Å) and masks
  (``AND_MASK``/``ANDMASK``/``MASK``: non-zero is bad), either one row of arrays or one
  row per pixel; ``COADD`` is preferred when present. SDSS and LAMOST wavelengths
  are in vacuum (``VACUUM`` header keyword or, when no keyword says, the surveys' convention:
  both publish vacuum wavelengths).
* **LAMOST images** — a 2-D primary array whose rows are flux, inverse variance,
  wavelength (vacuum), and-mask, or-mask.
* **text** — columns wavelength [Å], flux[, error], separated by spaces or commas, with an
  optional header line naming them (:mod:`~ulyss_ann.spectra.text_spectra`).

Each may be compressed (:mod:`~ulyss_ann.spectra.compression`): gzip or bzip2 as a whole
(``.fits.gz``, ``.fits.bz2``, ``.txt.gz``; recognised from the content, as the format is), or
fpack's tile compression (``.fits.fz``, the image in HDU 1, its ``SIGMA`` compressed too).

The medium of the wavelengths is read from ``AIRORVAC``, ``VACUUM`` or ``CTYPE1``
(:mod:`~ulyss_ann.spectra.spectrum_medium`; ``Spectrum.medium`` and ``medium_source`` say which
and why). Vacuum wavelengths are converted to air with the IAU standard formula of Morton
(2000, ApJS 130, 403, Eq. 8, from Edlén 1966, as adopted by SDSS and VALD):

.. math::

    \lambda_\mathrm{air} = \lambda_\mathrm{vac} / n, \quad
    n = 1 + 8.34254\times10^{-5} + \frac{2.406147\times10^{-2}}{130 - s^2}
          + \frac{1.5998\times10^{-4}}{38.9 - s^2}, \quad s = 10^4/\lambda_\mathrm{vac}\ [\mu\mathrm{m}^{-1}].

Bad values are masked, never passed on: NaN or infinite flux, missing, zero,
negative or non-finite errors, pixels flagged by the file's mask. Their number is
kept in ``Spectrum.n_bad``.

Sizes are checked before any data is read (:mod:`ulyss_ann.model.limits`): a FITS file
whose headers declare more data than the file holds is truncated, one declaring more
pixels than the memory budget (``ULYSS_ANN_MAX_PIXELS``) is refused, and so is a text
file too long for that budget.
"""

import io
import os
import warnings
from dataclasses import replace

import numpy as np
from astropy.io import fits

from ulyss_ann.errors import UlyssAnnError, first_line
from ulyss_ann.model.limits import (FILE_VALUES_PER_PIXEL, MAX_PIXELS_VARIABLE, TEXT_BYTES_PER_PIXEL,
                                    declared_data, max_pixels, pixel_budget_problem, truncation)
from ulyss_ann.model.wavelength import WavelengthGrid
from ulyss_ann.spectra.compression import DECOMPRESSION_ERRORS, open_decompressed, stream_compression
from ulyss_ann.model.medium import AIR, VACUUM
from ulyss_ann.spectra.spectrum import Spectrum, vacuum_to_air
from ulyss_ann.spectra.spectrum_medium import ASSUMED, SURVEY_CONVENTION, file_medium
from ulyss_ann.spectra.text_spectra import COMMENTS, TEXT_FORMAT, spectrum_columns, text_layout

__all__ = ["Spectrum", "SpectrumReadError", "read_spectrum", "vacuum_to_air"]


class SpectrumReadError(UlyssAnnError):
    """A spectrum file is missing, unreadable or in no format this package knows."""


def _finish(path, flux, error, wavelength, good, grid, meta, fmt, medium=(AIR, ASSUMED)):
    """The Spectrum of a file: its arrays checked and masked as every spectrum's are; ``medium``:
    (medium, source) of its wavelengths (vacuum ones are converted to air)."""
    problem = pixel_budget_problem(np.size(flux))  # tables and text: known only once read
    if problem:
        raise SpectrumReadError(f"{path}: a {problem}")
    try:
        return Spectrum.from_arrays(wavelength, flux, error, good=good, grid=grid, meta=meta,
                                    vacuum=medium[0] == VACUUM, medium_source=medium[1],
                                    source=os.path.abspath(path), fmt=fmt)
    except UlyssAnnError as exc:
        raise SpectrumReadError(f"{path}: {exc}") from None


def _position(header):
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


def _unit_factor(header):
    unit = str(header.get("CUNIT1", "")).strip().lower()
    return {"": 1.0, "angstrom": 1.0, "a": 1.0, "aa": 1.0, "nm": 10.0, "um": 1e4, "m": 1e10}.get(unit)


def _error_extension(hdul, flux_hdu):
    """(error array, how it is stored) from a companion extension of ``flux_hdu``, or (None, None).

    (A tile-compressed SIGMA is a CompImageHDU, an ImageHDU only from astropy 7 on.)"""
    for hdu in hdul[1:]:
        name = hdu.name.upper()
        if hdu is flux_hdu or hdu.data is None or not isinstance(hdu, (fits.ImageHDU, fits.CompImageHDU)):
            continue
        if name in ("SIGMA", "ERROR", "ERR", "NOISE"):
            return np.asarray(hdu.data, float), "sigma"
        if name in ("STAT", "VAR", "VARIANCE"):
            return np.sqrt(np.asarray(hdu.data, float)), "variance"
        if name in ("IVAR", "INVVAR"):
            with np.errstate(divide="ignore"):
                return 1.0 / np.sqrt(np.asarray(hdu.data, float)), "ivar"
    return None, None


def _spectrum_hdu(hdul):
    """The HDU holding the spectrum's image: the primary's, else (a tile-compressed file, whose images
    are extensions: fpack leaves the primary empty) the first compressed image; None for neither."""
    if hdul[0].data is not None and np.asarray(hdul[0].data).size > 0:
        return hdul[0]
    return next((hdu for hdu in hdul[1:] if isinstance(hdu, fits.CompImageHDU) and hdu.data is not None), None)


def _read_image(path, hdul, hdu):
    header = hdu.header
    data = np.asarray(hdu.data, dtype=float)
    if data.ndim == 2 and data.shape[0] in (3, 4, 5) and np.all(np.diff(data[2]) > 0):
        return _read_lamost_image(path, data, header)
    if data.ndim != 1:
        data = np.squeeze(data)
        if data.ndim != 1:
            raise SpectrumReadError(f"{path}: primary HDU is a {data.ndim}-D image; expected a 1-D spectrum "
                                    "(or a LAMOST-style 5-row array, or a binary table)")
    factor = _unit_factor(header)
    if factor is None:
        raise SpectrumReadError(f"{path}: CUNIT1 = '{header['CUNIT1']}' is not a wavelength unit")
    try:
        grid = WavelengthGrid.from_header(header, npix=data.size)
    except KeyError as exc:
        raise SpectrumReadError(f"{path}: missing keyword {exc.args[0]} (the wavelength WCS)") from None
    except ValueError as exc:
        raise SpectrumReadError(f"{path}: {exc}") from None
    if grid.log and float(header["CRVAL1"]) >= 9:  # a FITS-standard -LOG axis: astropy gave Å already
        factor = 1.0
    wavelength = grid.wavelength * factor
    medium = file_medium([header])  # AIRORVAC or VACUUM before CTYPE1; MUSE and PampelMuse write AWAV
    grid = replace(grid, air=medium[0] == AIR)
    if factor != 1.0:
        grid = None if grid.log else WavelengthGrid(grid.npix, grid.crval * factor, grid.cdelt * factor,
                                                    grid.crpix, False, grid.air)
    error, _ = _error_extension(hdul, hdu)
    if error is not None and error.shape != data.shape:
        raise SpectrumReadError(f"{path}: error extension has {error.size} pixels, flux {data.size}")
    fmt = "muse" if "SIGMA" in [h.name for h in hdul] else "fits-1d"
    return _finish(path, data, error, wavelength, None, grid, _position(header), fmt, medium=medium)


def _read_lamost_image(path, data, header):
    flux, ivar, wave = data[0], data[1], data[2]
    good = data[3] == 0 if data.shape[0] > 3 else None
    with np.errstate(divide="ignore"):
        error = np.where(ivar > 0, 1.0 / np.sqrt(np.where(ivar > 0, ivar, 1.0)), np.nan)
    medium = file_medium([header], (VACUUM, SURVEY_CONVENTION))  # LAMOST publishes vacuum wavelengths
    return _finish(path, flux, error, wave, good, None, _position(header), "lamost-image", medium=medium)


def _column(table, *names):
    lowered = {n.lower(): n for n in table.columns.names}
    for name in names:
        if name in lowered:
            return np.asarray(table[lowered[name]], dtype=float).ravel()
    return None


def _read_table(path, hdul):
    tables = [h for h in hdul if isinstance(h, fits.BinTableHDU)]
    tables.sort(key=lambda h: h.name != "COADD")
    hdu = tables[0]
    data = hdu.data
    flux = _column(data, "flux")
    if flux is None:
        raise SpectrumReadError(f"{path}: table HDU '{hdu.name}' has no FLUX column "
                                f"(columns: {', '.join(data.columns.names)})")
    loglam = _column(data, "loglam")
    wave = 10 ** loglam if loglam is not None else _column(data, "wavelength", "wave", "lambda")
    if wave is None:
        raise SpectrumReadError(f"{path}: table HDU '{hdu.name}' has no wavelength column "
                                "(expected LOGLAM, WAVELENGTH, WAVE or LAMBDA)")
    ivar = _column(data, "ivar", "invvar", "inverse_variance")
    if ivar is not None:
        with np.errstate(divide="ignore"):
            error = np.where(ivar > 0, 1.0 / np.sqrt(np.where(ivar > 0, ivar, 1.0)), np.nan)
    else:
        error = _column(data, "error", "err", "sigma", "flux_err")
    wdisp = _column(data, "wdisp")
    mask = _column(data, "and_mask", "andmask", "mask")
    good = None if mask is None else mask == 0
    header = hdul[0].header
    medium = file_medium([header, hdu.header], (VACUUM, SURVEY_CONVENTION))  # SDSS and LAMOST publish vacuum
    meta = _position(header) or _position(hdu.header)
    if wdisp is not None and np.any(wdisp > 0):  # SDSS: Gaussian sigma of the LSF, in pixels
        meta["lsf_sigma_pix"] = float(np.median(wdisp[wdisp > 0]))
    return _finish(path, flux, error, wave, good, None, meta, "table", medium=medium)


def _read_text(path, compressed):
    """A text spectrum (:mod:`~ulyss_ann.spectra.text_spectra`): its layout sniffed from its first lines,
    its numbers parsed by ``np.loadtxt`` (the file's size was checked against the budget)."""
    text = _decompressed_text(path).decode("utf-8", errors="replace") if compressed else None
    try:
        with (io.StringIO(text) if compressed else open(path, encoding="utf-8", errors="replace")) as lines:
            layout = text_layout(lines)
        if layout is None:
            raise SpectrumReadError(f"{path}: no line of numbers, only comments; {TEXT_FORMAT}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = np.loadtxt(io.StringIO(text) if compressed else path, delimiter=layout.delimiter,
                               comments=COMMENTS, skiprows=layout.skiprows, ndmin=2)
        if table.size == 0:
            raise SpectrumReadError(f"{path}: a header line and no line of numbers; {TEXT_FORMAT}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise SpectrumReadError(f"{path}: neither FITS nor a table of numbers ({first_line(exc, 80)}); "
                                f"{TEXT_FORMAT}, or a MUSE/SDSS/LAMOST FITS file") from None
    try:
        wavelength, flux, error = spectrum_columns(table, layout)
    except ValueError as exc:
        raise SpectrumReadError(f"{path}: {exc}; {TEXT_FORMAT}") from None
    return _finish(path, flux, error, wavelength, None, None, {}, "text")


def _check_text_size(path):
    """Refuse, before parsing, a text spectrum too long for the pixel budget (``np.loadtxt`` holds it all)."""
    size, limit = os.path.getsize(path), max_pixels()
    if size > TEXT_BYTES_PER_PIXEL * limit:
        raise SpectrumReadError(f"{path}: a text file of {size} bytes, over the memory budget for a text spectrum "
                                f"({TEXT_BYTES_PER_PIXEL} bytes per pixel x {limit} pixels); rebin it to fewer "
                                f"pixels, or raise {MAX_PIXELS_VARIABLE} if the machine has the memory")


def _decompressed_text(path):
    """The bytes of a compressed text spectrum, refused once over the text budget (its compressed
    size says nothing of its length) or when the stream is damaged."""
    limit = TEXT_BYTES_PER_PIXEL * max_pixels()
    try:
        with open_decompressed(path) as handle:
            data = handle.read(limit + 1)
    except DECOMPRESSION_ERRORS as exc:
        raise SpectrumReadError(f"{path}: a corrupt compressed file ({first_line(exc, 80)}); copy or download it "
                                "again") from None
    if len(data) > limit:
        raise SpectrumReadError(f"{path}: a compressed text file of more than {limit} bytes, over the memory budget "
                                f"for a text spectrum ({TEXT_BYTES_PER_PIXEL} bytes per pixel x {max_pixels()} "
                                f"pixels); rebin it to fewer pixels, or raise {MAX_PIXELS_VARIABLE} if the machine "
                                "has the memory")
    if not data:
        raise SpectrumReadError(f"{path}: an empty file once decompressed: nothing was written to it")
    return data


def _check_declared_sizes(path, compressed):
    """Refuse, from the headers alone, a FITS file that is truncated or too large for the memory budget.

    The first image's longest axis is its pixel count (1-D, or a LAMOST-style 5-row
    array); all the HDUs together may declare :data:`FILE_VALUES_PER_PIXEL` values per
    budgeted pixel. Checked before astropy reads (and allocates) anything. A file
    ``compressed`` as a whole has no length to check the headers against: cut short, it
    fails as its data are read.
    """
    try:
        hdus = declared_data(path)
    except (ValueError, TypeError, IndexError, KeyError, Warning) + DECOMPRESSION_ERRORS as exc:
        raise SpectrumReadError(f"{path}: truncated or corrupt FITS file ({first_line(exc, 80)})") from None
    problem = None if compressed else truncation(path, hdus)
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


def has_fits_signature(path):
    """True when the file starts with a FITS primary header's ``SIMPLE  =`` card (else: text)."""
    with open(path, "rb") as handle:
        return handle.read(9) == b"SIMPLE  ="


def _fits_content(path, compression):
    """True when the (decompressed) content starts as FITS does; a damaged compressed stream is refused."""
    if compression is None:
        return has_fits_signature(path)
    try:
        with open_decompressed(path) as handle:
            return handle.read(9) == b"SIMPLE  ="
    except DECOMPRESSION_ERRORS as exc:
        raise SpectrumReadError(f"{path}: a corrupt {compression.name} file ({first_line(exc, 80)}); copy or "
                                "download it again") from None


def read_spectrum(path):
    """Read an observed spectrum in any of the formats of this module.

    Raises
    ------
    SpectrumReadError
        One line naming the file and what is wrong (missing, corrupt, truncated,
        unknown layout, no usable pixel).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise SpectrumReadError(f"{path}: no such file")
    if os.path.getsize(path) == 0:
        raise SpectrumReadError(f"{path}: an empty file (0 bytes): nothing was written to it")
    compression = stream_compression(path)
    if not _fits_content(path, compression):
        if compression is None:
            _check_text_size(path)
        return _read_text(path, compression is not None)
    _check_declared_sizes(path, compression is not None)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with fits.open(path, memmap=False) as hdul:  # astropy decompresses gzip and bzip2 itself
                for hdu in hdul:
                    hdu.data  # noqa: B018 - force reading: truncation shows up here
                image = _spectrum_hdu(hdul)
                if image is not None:
                    return _read_image(path, hdul, image)
                if any(isinstance(h, fits.BinTableHDU) for h in hdul):
                    return _read_table(path, hdul)
                raise SpectrumReadError(f"{path}: no spectrum found (an empty primary HDU and no table)")
    except SpectrumReadError:
        raise
    except (ValueError, TypeError, IndexError, KeyError, Warning) + DECOMPRESSION_ERRORS as exc:
        raise SpectrumReadError(f"{path}: truncated or corrupt FITS file ({first_line(exc, 80)})") from None
