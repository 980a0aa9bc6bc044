"""The registry of spectrum readers: each a :class:`SpectrumReader` that says whether a file is its
kind (:meth:`~SpectrumReader.identify`, from its first bytes or headers) and reads it
(:meth:`~SpectrumReader.read`), with a priority, as specutils' ``data_loader`` does.

:func:`~ulyss_ann.spectra.readers.read_spectrum` asks the registered readers in order of
priority (highest first) and takes the first that claims the file, or the one ``format=``
names. The built-in readers register themselves in their modules (``read_*.py``, imported by
:mod:`~ulyss_ann.spectra.readers`); a reader of one's own is one class and one
:func:`register_reader` call (docs/development.md, "How to add a spectrum reader"). An installed
package registers its readers through the entry-point group ``ulyss_ann.readers``
(``name = "package.module:ReaderClass"``), read on the first lookup (never at import), so that a
reader of one's own is seen by every process, Dask workers included, not only the one that
registered it; one that does not load is said in one line and left out.

What a reader is handed is a :class:`SpectrumFile`: the path, its whole-file compression,
its first bytes decompressed, and, for a FITS file, the headers of its HDUs (read once,
without their data), so that identifying a file costs no read of its data.
"""

import os
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ulyss_ann.errors import UlyssAnnError, first_line
from ulyss_ann.model.medium import AIR, VACUUM
from ulyss_ann.model.limits import declared_data, pixel_budget_problem
from ulyss_ann.registry import Registry
from ulyss_ann.spectra.compression import DECOMPRESSION_ERRORS, compression_of
from ulyss_ann.spectra.spectrum import ASSUMED, Spectrum

__all__ = ["SpectrumReadError", "SpectrumReader", "SpectrumFile", "HeaderUnit", "register_reader",
           "unregister_reader", "registered_readers", "reader_named", "reader_reachable", "refresh_entry_points",
           "FITS_SIGNATURE", "ENTRY_POINT_GROUP"]

#: How every FITS file starts: its primary header's first card.
FITS_SIGNATURE = b"SIMPLE  ="

#: The entry-point group through which installed packages register spectrum readers.
ENTRY_POINT_GROUP = "ulyss_ann.readers"

#: The bytes of a file read (decompressed) for :attr:`SpectrumFile.head`.
HEAD_BYTES = 8192

#: What a damaged FITS header raises while it is read (astropy's warnings are made errors).
FITS_HEADER_ERRORS = (ValueError, TypeError, IndexError, KeyError, Warning) + DECOMPRESSION_ERRORS


class SpectrumReadError(UlyssAnnError):
    """A spectrum file is missing, unreadable or in no format this package knows."""


@dataclass(frozen=True)
class HeaderUnit:
    """One HDU of a FITS file as its header declares it: ``kind`` ``image`` (a primary or image
    extension holding data), ``compressed-image`` (fpack's tile compression), ``table`` (a binary
    table) or ``empty``; ``shape`` in FITS order (NAXIS1 first); ``header``: astropy's Header, or for a
    plain file a :class:`~ulyss_ann.model.scanned_header.ScannedHeader`, which reads as one (``get``,
    ``[]``, ``in``, its other methods); ``header.copy()`` is an astropy Header either way."""

    index: int
    name: str
    kind: str
    shape: tuple
    header: object


def _header_unit(hdu):
    """The :class:`HeaderUnit` of one HDU's :class:`~ulyss_ann.model.limits.DeclaredData` (its shape already
    the image's ``ZNAXISn`` for a tile-compressed one)."""
    if hdu.header.get("ZIMAGE") is True:
        kind = "compressed-image"
    elif hdu.binary_table:
        kind = "table"
    else:
        kind = "image" if hdu.shape and min(hdu.shape) > 0 else "empty"
    return HeaderUnit(hdu.index, hdu.name.upper(), kind, hdu.shape, hdu.header)


class SpectrumFile:
    """A spectrum file as the readers see it: ``path``, ``compression`` (gzip, bzip2 or None),
    :attr:`head` (its first bytes, decompressed), :attr:`is_fits`, :attr:`hdus` (FITS headers)."""

    def __init__(self, path):
        self.path = os.fspath(path)
        with open(self.path, "rb") as handle:  # one open for the compression and, of a plain file, the head
            start = handle.read(HEAD_BYTES)
        self.compression = compression_of(start)
        if self.compression is None:
            self.head = start  # the content itself: what the cached property would read again

    @cached_property
    def head(self):
        """Up to :data:`HEAD_BYTES` first bytes of the content (decompressed): those before any damage
        of the stream (the reader then meets it, and says so); a stream damaged from its start is refused."""
        head = b""
        try:
            with self.compression.opener(self.path, "rb") as handle:  # set apart from a plain file's by __init__
                while len(head) < HEAD_BYTES:
                    chunk = handle.read(min(512, HEAD_BYTES - len(head)))
                    if not chunk:
                        break
                    head += chunk
                return head
        except DECOMPRESSION_ERRORS as exc:
            if head:
                return head
            raise SpectrumReadError(f"{self.path}: a corrupt {self.compression.name} file ({first_line(exc, 80)}); "
                                    "copy or download it again") from None

    @property
    def is_fits(self):
        """True when the (decompressed) content starts as FITS does."""
        return self.head.startswith(FITS_SIGNATURE)

    @cached_property
    def declared(self):
        """What every HDU's header declares (:func:`~ulyss_ann.model.limits.declared_data`: the headers, shapes
        and sizes, no data read), read once for the readers' :attr:`hdus` and the size checks before a read."""
        try:
            return tuple(declared_data(self.path))
        except FITS_HEADER_ERRORS as exc:
            raise SpectrumReadError(f"{self.path}: truncated or corrupt FITS file ({first_line(exc, 80)})") from None

    @cached_property
    def hdus(self):
        """The :class:`HeaderUnit` of every HDU (no data read); () for a file that is not FITS."""
        return tuple(_header_unit(hdu) for hdu in self.declared) if self.is_fits else ()

    def units(self, *kinds):
        """The HDUs of those kinds, in order."""
        return [unit for unit in self.hdus if unit.kind in kinds]


class SpectrumReader:
    """A kind of spectrum file: subclass it, set the class attributes, implement :meth:`identify`
    and :meth:`read`, and :func:`register_reader` an instance.

    Attributes
    ----------
    name : str
        What ``--format`` / ``format=`` calls it, and the spectrum's ``meta['format']``.
    description : str
        One line: what the files look like (the CLI's help and the docs list it).
    priority : int
        Asked in order of priority, highest first: a more specific layout above a general one
        (an APOGEE file, whose table HDUs would otherwise make it an SDSS table, above the tables).
    identifies : bool
        False for a reader taken only when ``format=`` names it (e.g. ``specutils``).
    """

    name = None
    description = ""
    priority = 0
    identifies = True

    def identify(self, source):
        """True when the :class:`SpectrumFile` ``source`` is this reader's kind; cheap (headers, first bytes)."""
        raise NotImplementedError

    def read(self, source):
        """The :class:`~ulyss_ann.spectra.spectrum.Spectrum` of ``source``; SpectrumReadError naming the file."""
        raise NotImplementedError

    def with_option(self, option):
        """The reader for ``NAME:OPTION`` (``specutils:tabular-fits``); a reader without options refuses."""
        raise UlyssAnnError(f"--format {self.name}:{option}: the {self.name} reader takes no ':OPTION'")

    def spectrum(self, source, wavelength, flux, error=None, good=None, grid=None, meta=None, medium=(AIR, ASSUMED)):
        """The Spectrum of the arrays read from ``source`` (a SpectrumFile or path), checked and masked as every
        spectrum is; ``medium``: (``air`` or ``vacuum``, where that came from; vacuum is converted to air)."""
        path = getattr(source, "path", source)
        problem = pixel_budget_problem(np.size(flux))  # tables and text: known only once read
        if problem:
            raise SpectrumReadError(f"{path}: a {problem}")
        try:
            return Spectrum.from_arrays(wavelength, flux, error, good=good, grid=grid, meta=meta,
                                        vacuum=medium[0] == VACUUM, medium_source=medium[1],
                                        source=os.path.abspath(path), fmt=self.name)
        except UlyssAnnError as exc:
            raise SpectrumReadError(f"{path}: {exc}") from None


def _checked_reader(reader, name):
    """``reader`` (a SpectrumReader, or its class from an entry point: made an instance), refused in one line when
    it is none or its name is not a word (or, registered as ``name``, another name)."""
    if isinstance(reader, type) and issubclass(reader, SpectrumReader):
        reader = reader()
    if not isinstance(reader, SpectrumReader):
        raise TypeError(f"{reader!r} is not a SpectrumReader (ulyss_ann.spectra.reader_registry)")
    if not reader.name or ":" in reader.name or reader.name != reader.name.strip():
        raise ValueError(f"a reader's name must be a non-empty word without ':', not {reader.name!r}")
    if name is not None and reader.name.lower() != name.lower():  # names are one whatever their case
        raise ValueError(f"it names the reader {reader.name!r}: the entry point's name must be the reader's")
    return reader


# name -> reader; the installed packages' readers are loaded when the group is read: identification
# asks the readers in order of priority, which needs each one's. Names are one whatever their case
# (--format lower-cases what it is given: a reader named "Toy" is forced by --format toy or Toy).
_READERS = Registry("spectrum reader", ENTRY_POINT_GROUP, check=_checked_reader, load_entry_points=True,
                    fold_case=True, home="ulyss_ann")


def register_reader(reader):
    """Add ``reader`` (a :class:`SpectrumReader`) to the registry; a name taken is refused."""
    return _READERS.register(reader)


def unregister_reader(name):
    """Remove the reader ``name`` from the registry (a name not there: nothing)."""
    _READERS.unregister(name)


def refresh_entry_points():
    """Read the entry points of the installed packages again (a package installed in a running session)."""
    _READERS.refresh_entry_points()


def reader_reachable(name):
    """Whether a fresh process (a Dask worker) finds the reader ``name`` (or ``NAME:OPTION``) too: the package's,
    or an installed package's entry point; False for one registered in this session alone."""
    return _READERS.reachable(str(name).partition(":")[0].strip())


def registered_readers():
    """The registered readers, highest priority first (equal priorities: in the order registered)."""
    return sorted((_READERS.get(name) for name in _READERS), key=lambda reader: -reader.priority)


def reader_named(name):
    """The reader ``NAME`` or ``NAME:OPTION``; an unknown name: one line listing the registered ones."""
    base, sep, option = str(name).partition(":")
    base = base.strip().lower()
    if base not in _READERS:
        raise UlyssAnnError(f"--format {name}: no such spectrum reader; the readers are "
                            f"{', '.join(r.name for r in registered_readers())}")
    reader = _READERS.get(base)
    return reader.with_option(option.strip()) if sep else reader
