"""The layout of a text spectrum: its delimiter, its optional header line, which column is which.

A text spectrum is columns wavelength [Å], flux[, error], separated by white space (tabs
included) or by commas (a CSV file), with ``#``, ``!`` or ``;`` comments. ``;`` stays a
comment, never a delimiter: IDL (ULySS's language) writes its comments so, and a
``;``-separated file is mostly a decimal-comma one, which no number parser here would read
right anyway.

The first non-comment line may be a header of column names (any line with a field that is
not a number): skipped, and when it names the wavelength (``wave*``, ``lambda*``) and the
flux (``flux*``) those columns are taken, with the error (``err*``, ``sigma*``, ``noise*``,
``*_err``; ``ivar``/``var`` as inverse variance or variance) when named too. Otherwise the
columns are taken in the order wavelength, flux[, error]. The delimiter is sniffed from that
first line (a comma: CSV), and the columns are then parsed by :func:`numpy.loadtxt` as before,
so that the memory a text spectrum takes stays bounded by the file's size (``_check_text_size``).
"""

from dataclasses import dataclass

import numpy as np

#: The comment markers of a text spectrum (``numpy.loadtxt`` cuts a line at the first of them).
COMMENTS = ("#", "!", ";")

#: What a text spectrum must look like: said by every refusal of one.
TEXT_FORMAT = ("expected text columns wavelength, flux[, error], separated by spaces or commas, "
               "with an optional header line and # comments")

#: Header names of an error column, and how its values become the 1-σ error.
_ERROR_NAMES = {"ivar": "ivar", "invvar": "ivar", "inverse_variance": "ivar", "var": "variance",
                "variance": "variance"}


@dataclass(frozen=True)
class TextLayout:
    """How to parse a text spectrum: ``skiprows`` lines (comments and header) before the numbers."""

    delimiter: str | None  # None: white space
    skiprows: int
    names: tuple = ()  # the header's column names, lower case; () without a header


def _strip_comment(line):
    cut = min((i for i in (line.find(mark) for mark in COMMENTS) if i >= 0), default=len(line))
    return line[:cut].strip()


def _is_number(field):
    try:
        float(field)
    except ValueError:
        return False
    return True


def text_layout(lines):
    """The :class:`TextLayout` read from the first lines of a text spectrum, None if it has no data line."""
    for index, line in enumerate(lines):
        content = _strip_comment(line)
        if not content:
            continue
        delimiter = "," if "," in content else None
        fields = [field.strip().strip("\"'").lower() for field in content.split(delimiter)]
        if all(_is_number(field) for field in fields):
            return TextLayout(delimiter, index)
        return TextLayout(delimiter, index + 1, tuple(fields))
    return None


def _error_kind(name):
    if name in _ERROR_NAMES:
        return _ERROR_NAMES[name]
    if name.startswith(("err", "sigma", "noise")) or name.endswith(("_err", "_error")):
        return "sigma"
    return None


def _named_columns(names):
    """(wavelength, flux, error or None, error kind) column indices from the header, or None."""
    wave = flux = error = kind = None
    for i, name in enumerate(names):
        if error is None and _error_kind(name):
            error, kind = i, _error_kind(name)
        elif wave is None and name.startswith(("wave", "lambda")):
            wave = i
        elif flux is None and name.startswith("flux"):
            flux = i
    return None if wave is None or flux is None else (wave, flux, error, kind)


def spectrum_columns(table, layout):
    """(wavelength, flux, 1-σ error or None) of the parsed ``table``; ValueError saying what is wrong.

    The header's names choose the columns when they name the wavelength and the flux and
    are as many as the columns (a name with a space in it, ``wavelength (A)``, would shift
    them); otherwise the columns are wavelength, flux[, error] in that order.
    """
    named = _named_columns(layout.names) if len(layout.names) == table.shape[1] else None
    if named is None:
        if table.shape[1] not in (2, 3):
            raise ValueError(f"{table.shape[1]} text columns")
        return table[:, 0], table[:, 1], (table[:, 2] if table.shape[1] == 3 else None)
    wave, flux, error, kind = named
    values = None if error is None else table[:, error]
    with np.errstate(divide="ignore", invalid="ignore"):  # a bad pixel's NaN: masked by the Spectrum
        if kind == "variance":
            values = np.sqrt(values)
        elif kind == "ivar":
            values = np.where(values > 0, 1.0 / np.sqrt(np.where(values > 0, values, 1.0)), np.nan)
    return table[:, wave], table[:, flux], values
