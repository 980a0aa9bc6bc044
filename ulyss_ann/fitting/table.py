"""The results table of a batch: one row per spectrum, columns with units, written atomically.

**Columns** (ECSV, units in the column metadata): ``id``, ``file``, ``ra``, ``dec``
[deg], one column per network parameter and its error ``e_<name>`` (units of the
interpolator), ``cz``/``e_cz`` and ``sigma``/``e_sigma`` [km/s] (``cz`` is relative to
the wavelength scale of the file, as ULySS reports it), ``chi2`` (reduced; 0 when the
spectrum has no errors, as ULySS does), ``rms`` (residual rms relative to the mean
model), ``misfit`` (that rms over the noise expected: ~1 for a fit as good as the data,
:attr:`~ulyss_ann.fitting.result.FitResult.misfit`), ``snr``, ``node_distance`` (the
distance to the nearest training node in the grid's own local node spacing: > 1 is a
hole or beyond the grid's edge), ``n_guess``, ``n_converged`` (guesses ending within
0.1 % of the best rms), ``n_pix`` (fitted), ``n_masked``, ``n_bad`` (bad values found by
the reader), ``lmin``/``lmax`` [Å], ``coverage`` (the fraction of the network's
range that the fitted, unmasked pixels cover: ``low-coverage`` below 0.7, an error row
below 0.05), ``time`` [s], ``status``, ``flag`` (quality, see
:attr:`~ulyss_ann.fitting.result.FitResult.flags`), ``errors`` (which errors the ``e_``
columns carry: ``formal``, MPFIT's as ULySS; ``mc``, Monte-Carlo; ``total``), ``engine``, ``model``,
``model_sha256`` and ``model_medium`` (the model's wavelength medium as fitted, and why:
``vacuum→air (the authors' trial 7)``), ``medium`` (the spectrum's, likewise: ``air (header CTYPE1=AWAV)``,
``vacuum→air (header VACUUM=True)``, ``air (assumed)``). A spectrum without σ is fitted unweighted, its errors estimated from the
residuals: ``chi2`` is 0 and ``flag`` says ``errors-estimated``.

**Status**: ``ok``; ``error: <why>`` when the spectrum (or its options) cannot be
fitted — unreadable, no overlap, no signal, a fixed value missing — which stays so on
``--resume`` unless ``--retry-failed``; ``failed: <why>`` when the machinery failed
(a worker or GDL died or hung): ``--resume`` fits it again (three tries in all).

The table's metadata is the run's record (:mod:`ulyss_ann.fitting.batch.run`): model and its
SHA-256, engine, options, package version.
"""

import functools
import io
import itertools
import os
import warnings

import numpy as np
from astropy.table import Column, MaskedColumn, Table

from ulyss_ann.errors import UlyssAnnError, first_line
from ulyss_ann.fitting.safe_files import write_beside

__all__ = ["rows_to_table", "write_table", "write_table_blocks", "table_format", "as_number", "COLUMN_UNITS",
           "STRING_COLUMNS"]

#: astropy's name of ECSV, the results table's own format (units, metadata, masked values kept).
ECSV = "ascii.ecsv"

#: Units of the columns that are not network parameters.
COLUMN_UNITS = {"ra": "deg", "dec": "deg", "cz": "km/s", "e_cz": "km/s", "sigma": "km/s", "e_sigma": "km/s",
                "lmin": "Angstrom", "lmax": "Angstrom", "time": "s"}

#: The text columns; every other column is a number (the journal believes no row that says otherwise).
STRING_COLUMNS = frozenset({"id", "file", "status", "flag", "errors", "engine", "model", "model_sha256", "model_medium",
                            "medium"})
_INTEGERS = {"n_guess", "n_converged", "n_pix", "n_masked", "n_bad"}
_DESCRIPTIONS = {
    "status": "ok; error: <why> (the spectrum); failed: <why> (the machinery, retried on resume)",
    "flag": "quality: bound:<param>, sigma-floor, one-guess-converged, far-from-nodes, poor-fit, errors-estimated "
            "(no sigma given: unweighted fit, errors from the residuals), low-coverage, errors-fallback (the "
            "errors asked for could not be had: MPFIT's kept), flat-valley:<param> (chi2 within 4 of the minimum "
            "beyond 3 errors: checked with errors mc or total only)",
    "lmin": "start of the fitted range: the one asked for, cut to what the network and the spectrum cover",
    "lmax": "end of the fitted range: the one asked for, cut to what the network and the spectrum cover",
    "rms": "residual rms relative to the mean model",
    "errors": "which errors the e_ columns carry: formal (MPFIT's, as ULySS), mc (Monte-Carlo refits), total",
    "chi2": "reduced chi2 (0 when the spectrum has no errors)",
    "n_guess": "guess combinations fitted (the native engine's adaptive search fits 2 where they settle it)",
    "n_converged": "of the guesses fitted (n_guess), those ending within 0.1 % of the best rms",
    "node_distance": "distance to the nearest training node, in units of the grid's local node spacing "
                     "(> 1: a hole or beyond the grid's edge)",
    "coverage": "fraction of the network's wavelength range covered by the fitted, unmasked pixels "
                "(low-coverage below 0.7; below 0.05 an error row)",
    "misfit": "residual rms over the noise expected (~1: as good as the data; poor-fit above 5)",
}


def as_number(value, unit=None):
    """A float for a table column: a number, or a Quantity or Angle in ``unit``; NaN otherwise.

    Position and S/N come from the spectrum's metadata, which a user's object may carry in
    any form: none may stop a batch when its row is written.
    """
    try:
        if unit is not None and hasattr(value, "to_value"):
            return float(value.to_value(unit))
        return float(getattr(value, "value", value))
    except Exception:  # noqa: BLE001 - anything that is not a number is missing
        return np.nan


def rows_to_table(rows, parameters):
    """An astropy Table with units from journal rows (missing values masked).

    ``parameters``: the network's (name, unit) pairs, in order.
    """
    names = ["id", "file", "ra", "dec"]
    for name, _ in parameters:
        names += [name, "e_" + name]
    names += ["cz", "e_cz", "sigma", "e_sigma", "chi2", "rms", "misfit", "snr", "node_distance", "n_guess",
              "n_converged", "n_pix", "n_masked", "n_bad", "lmin", "lmax", "coverage", "time", "status", "flag",
              "errors", "engine", "model", "model_sha256", "model_medium", "medium"]
    columns = {}
    for name in names:
        raw = [row.get(name) for row in rows]
        if name in STRING_COLUMNS:
            columns[name] = [str(v) if v is not None else "" for v in raw]
            continue
        if name in _INTEGERS:
            values = np.array([v if v is not None else 0 for v in raw], np.int64)
            missing = np.array([v is None for v in raw], bool)
        else:
            values = np.array([np.nan if v is None else v for v in raw], float)
            missing = ~np.isfinite(values)
        # masked only where a value is missing: astropy writes a masked column to ECSV
        # item by item, ~0.6 ms a row (measured on 2000 rows: 1.3 s masked, 0.12 s not)
        columns[name] = np.ma.masked_array(values, mask=missing) if missing.any() else values
    table = Table(columns, names=names)
    units = dict(COLUMN_UNITS)
    for name, unit in parameters:
        units[name] = units["e_" + name] = unit or None
    for name, unit in units.items():
        if unit:
            table[name].unit = unit
    for name, text in _DESCRIPTIONS.items():
        table[name].description = text
    return table


def table_format(path):
    """The astropy format of a results table named ``path``, its writer checked here: or a one-line UlyssAnnError.

    Astropy's I/O registry tells the format from the name (ECSV for ``.ecsv``); a writer
    that needs a package not installed here (``.parquet`` needs pyarrow) fails only when it
    runs, so a one-row table of the results' columns is written with it, to a temporary
    folder: a batch learns now, not after its fits, that its table cannot be written.
    """
    path = os.fspath(path)
    fmt = _identified_format(path)
    if fmt == ECSV:
        return fmt  # astropy's own text format: nothing to install
    import tempfile

    try:
        with tempfile.TemporaryDirectory(prefix="ulyss_ann_table_") as folder:
            _write(rows_to_table([{}], [("Teff", "K")]), os.path.join(folder, os.path.basename(path)), fmt)
    except ImportError as exc:
        needed = f"install {exc.name}" if exc.name else "install the package it names"
        raise UlyssAnnError(f"output (-o) {path}: astropy's {fmt} writer cannot run here ({first_line(exc)}): "
                            f"{needed}, or end the name in .ecsv (units and metadata kept) or .fits") from None
    except Exception as exc:  # noqa: BLE001 - whatever stops the writer stops it at the end of the batch too
        raise UlyssAnnError(f"output (-o) {path}: astropy's {fmt} writer cannot write the results table "
                            f"({type(exc).__name__}: {first_line(exc)}); end the name in .ecsv (units and "
                            "metadata kept) or .fits") from None
    return fmt


def _identified_format(path):
    """The astropy format the name ``path`` implies (ECSV for ``.ecsv``), or a one-line UlyssAnnError."""
    if path.endswith(".ecsv"):
        return ECSV
    from astropy.io.registry import identify_format

    formats = identify_format("write", Table, path, None, [], {})
    if len(formats) != 1:
        raise UlyssAnnError(f"{path}: astropy cannot tell one table format from this name; end it in .ecsv (with "
                            "units and metadata, the default), .fits or .csv")
    return formats[0]


def _write(table, path, fmt):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 'dex' is no FITS unit; ECSV keeps it as a string
        if fmt == ECSV and hasattr(path, "write") and all(map(_plain_column, table.itercols())):
            _write_ecsv(table, path)  # a block of write_table_blocks
        else:
            table.write(path, format=fmt)


def _plain_column(column):
    """A 1-D Column of float64, integers, booleans or text: the values :class:`_EcsvData` writes as astropy (a
    Time, a SkyCoord, a Quantity… is astropy's to write)."""
    if type(column) not in (Column, MaskedColumn):
        return False
    kind = column.dtype.kind
    return column.ndim == 1 and (kind in "biuU" or (kind == "f" and column.dtype.itemsize == 8))


def _write_ecsv(table, output):
    """``table.write(output, format="ascii.ecsv")`` of a table of :func:`_plain_column` columns, the same bytes,
    its values turned into text in one pass per column (:class:`_EcsvData`): astropy's ``ascii.write`` steps,
    with its ECSV writer."""
    from astropy.io import ascii  # noqa: A004 - astropy's name

    table = table.__class__(table, copy=False)  # ascii.write's shallow copy: the writer may set info attributes
    writer = ascii.get_writer(_ecsv_writer())  # positional: the keyword is Writer before astropy 6, then writer_cls
    lines = writer.write(table)
    # the writer's parts refer to each other: a cycle that would keep the block's columns (their text too)
    # until the collector's next full pass, which in a resume comes every few dozen blocks (+92 MB at 10⁵ rows)
    writer.data.cols = writer.header.cols = []
    output.write(os.linesep.join(lines))
    output.write(os.linesep)


@functools.lru_cache(maxsize=1)
def _ecsv_writer():
    """astropy's ECSV writer (``ascii.ecsv.Ecsv``) with :class:`_EcsvData`; made on first use (astropy.io.ascii
    is not loaded by ``import ulyss_ann``). Not registered as a format: it names none of its own."""
    from astropy.io.ascii import ecsv

    class _EcsvData(ecsv.EcsvData):
        """astropy's ECSV data lines. astropy turns each value into text as ``str(col[idx])``, a Python call
        through the column's ``__getitem__`` per value (a masked column's most of all): ~80 µs a row of a
        results table, half of what a resume spends on a row. Here ``str`` of each value of the column's
        ``tolist()``: the Python float, int, str or bool of the NumPy scalar ``col[idx]`` returns for a 1-D
        column of :func:`_plain_column`, whose ``str`` is the same text (NumPy's shortest repr of a float64 is
        Python's: the same on 2·10⁶ random bit patterns, NumPy 1.26 and 2.5; a float32's is not, and such a
        table is astropy's to write); a masked value is "" as astropy writes it. tests/test_streamed_results.py
        checks the bytes against astropy's writer."""

        def str_vals(self):
            for col in self.cols:
                masked = hasattr(col, "mask")
                col.str_vals = [str(value) for value in (col.data.data if masked else col.data).tolist()]
                if masked:
                    for idx in col.mask.nonzero()[0]:
                        col.str_vals[idx] = ""
            return [col.str_vals for col in self.cols]

    return type("UlyssAnnEcsv", (ecsv.Ecsv,), {"data_class": _EcsvData, "__doc__": ecsv.Ecsv.__doc__})


def write_table(table, path, meta=None):
    """Write the results as ECSV (or any astropy format the name implies), atomically.

    The table goes to a temporary file in a private folder beside ``path``, renamed over
    it when complete (:func:`~ulyss_ann.fitting.safe_files.write_beside`): a crash or a
    full disk never leaves half a table under the final name, the temporary is removed
    when the write fails (UlyssAnnError, one line), and a symbolic link at ``path`` is
    refused, never written through.
    """
    write_table_blocks([table], path, meta)


def write_table_blocks(blocks, path, meta=None):
    """:func:`write_table` for a table given in blocks of rows, held one block at a time.

    ``blocks``: :func:`rows_to_table` tables of the same columns, in the table's order. ECSV (the
    default) is written a block at a time: the first with astropy's writer (the header, then its
    rows), each next one's rows after them — the bytes of the whole table written at once
    (tests/test_streamed_results.py checks it), in the memory of one block: a survey's table of 10⁶ rows
    is never all in memory. Another format is written whole, the blocks stacked (astropy's writers
    take one table).
    """
    path = os.fspath(path)
    fmt = _identified_format(path)  # its writer was tried before the fits (table_format)
    blocks = iter(blocks)
    first = next(blocks, None)
    if first is None:
        raise ValueError("write_table_blocks: no block to write (a table of no rows is one block of none)")
    blocks = itertools.chain([first], blocks)

    def write(temporary):
        if fmt != ECSV:
            from astropy.table import vstack

            parts = list(blocks)
            whole = parts[0] if len(parts) == 1 else vstack(parts, join_type="exact", metadata_conflicts="silent")
            whole.meta.update(meta or {})
            return _write(whole, temporary, fmt)
        with open(temporary, "w", encoding="utf-8", newline="") as handle:
            for number, block in enumerate(blocks):
                block.meta.update(meta or {})
                text = io.StringIO()
                _write(block, text, fmt)
                lines = text.getvalue().splitlines(keepends=True)
                if number:  # its header and column names are the first block's
                    start = next(i for i, line in enumerate(lines) if not line.startswith("#")) + 1
                    lines = lines[start:]
                handle.writelines(lines)

    try:
        write_beside(path, write)
    except UlyssAnnError:
        raise
    except Exception as exc:
        if not isinstance(exc, OSError):
            raise UlyssAnnError(f"{path}: cannot write the table ({type(exc).__name__}: {exc}); every row is in "
                                "the journal: run again with --resume and another --output name") from None
        raise UlyssAnnError(f"{path}: cannot write the table ({exc.strerror or exc}); every row is in the "
                            f"journal: make room and run again with --resume (nothing is fitted again)") from None
