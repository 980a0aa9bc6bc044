"""The text spectrum: columns wavelength [Å], flux[, error], separated by spaces or commas, with an
optional header line naming them (its layout: :mod:`~ulyss_ann.spectra.text_spectra`); plain or
compressed as a whole (``.txt.gz``).

The reader of last resort: any file that is not FITS is taken for text, and one that is no
table of numbers is refused as "neither FITS nor a table of numbers". A text file too long for the
pixel budget is refused before it is parsed (``np.loadtxt`` holds it all).
"""

import io
import os
import warnings

import numpy as np

from ulyss_ann.errors import first_line
from ulyss_ann.model.limits import MAX_PIXELS_VARIABLE, TEXT_BYTES_PER_PIXEL, max_pixels
from ulyss_ann.spectra.compression import DECOMPRESSION_ERRORS, open_decompressed
from ulyss_ann.spectra.reader_registry import SpectrumReader, SpectrumReadError, register_reader
from ulyss_ann.spectra.text_spectra import COMMENTS, TEXT_FORMAT, spectrum_columns, text_layout

__all__ = ["TextReader"]


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


class TextReader(SpectrumReader):
    """Every file that is not FITS."""

    name = "text"
    description = "columns wavelength [Angstrom], flux[, error], spaces or commas, an optional header line"
    priority = 10

    def identify(self, source):
        return not source.is_fits

    def read(self, source):
        path, compressed = source.path, source.compression is not None
        if not compressed:
            _check_text_size(path)
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
        return self.spectrum(source, wavelength, flux, error)


register_reader(TextReader())
