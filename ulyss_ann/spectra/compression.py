"""Compressed spectrum files: the one table of compressions read, and the name a file's spectrum takes.

Surveys hand out spectra compressed: LAMOST and SDSS as ``.fits.gz``, archives as
``.fits.bz2``, and fpack's tile compression as ``.fits.fz``. A whole-file compression
(gzip, bzip2) is recognised from the file's first bytes, as every format of
:mod:`~ulyss_ann.spectra.readers` is (a file renamed reads the same), and read through its
decompressor. A tile-compressed file is a FITS file whose images are stored as binary
tables (the primary HDU stays empty, the image is HDU 1): astropy reads it as it is.

A file's spectrum is named after the file without its suffixes, the compression's and
then its own extension: ``star.fits.gz``, ``star.fit.bz2``, ``star.fits.fz``, ``star.fits``
and ``star.txt`` are all ``star``, so that a ``--fix`` table, a row and a saved fit name it
the same however the file was stored.
"""

import bz2
import gzip
import os
import zlib
from dataclasses import dataclass

__all__ = ["Compression", "COMPRESSIONS", "DECOMPRESSION_ERRORS", "stream_compression", "compression_of",
           "open_decompressed", "spectrum_name"]


@dataclass(frozen=True)
class Compression:
    """A compression a spectrum file may carry: its ``suffix``; for a whole-file compression the
    ``magic`` bytes it starts with and the ``opener`` that reads it (None for a tile compression,
    which astropy reads inside the FITS file)."""

    name: str
    suffix: str
    magic: bytes = None
    opener: object = None


COMPRESSIONS = (
    Compression("gzip", ".gz", b"\x1f\x8b", gzip.open),
    Compression("bzip2", ".bz2", b"BZh", bz2.open),
    Compression("fpack tile compression", ".fz"),
)

_SUFFIXES = tuple(compression.suffix for compression in COMPRESSIONS)

#: What a damaged compressed stream raises while it is read (gzip: BadGzipFile, an OSError, or
#: EOFError when cut short, zlib.error; bzip2: OSError, EOFError).
DECOMPRESSION_ERRORS = (OSError, EOFError, zlib.error)


def stream_compression(path):
    """The whole-file :class:`Compression` of ``path``, from its first bytes, or None."""
    with open(path, "rb") as handle:
        return compression_of(handle.read(4))


def compression_of(head):
    """The whole-file :class:`Compression` of a file whose first bytes are ``head``, or None."""
    return next((c for c in COMPRESSIONS if c.magic is not None and head.startswith(c.magic)), None)


def open_decompressed(path):
    """``path`` opened for reading bytes, through its decompressor when it is compressed."""
    compression = stream_compression(path)
    return compression.opener(path, "rb") if compression is not None else open(path, "rb")


def spectrum_name(path):
    """The id of the spectrum in file ``path``: its name without the compression's suffix, then without
    its extension (``night1/star.fits.gz`` -> ``star``)."""
    name = os.path.basename(os.fspath(path))
    lower = name.lower()
    if lower.endswith(_SUFFIXES):  # one test for the names of a survey, which are seldom compressed
        for suffix in _SUFFIXES:
            if lower.endswith(suffix) and len(name) > len(suffix):
                name = name[:-len(suffix)]
                break
    return os.path.splitext(name)[0]
