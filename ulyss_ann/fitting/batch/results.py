"""A batch's results from its journal, a block of rows at a time: the table written, the run summarised.

A survey's table is never all in memory: the journal is indexed on disk
(:class:`~ulyss_ann.fitting.batch.journal_index.JournalIndex`: where each spectrum's row starts), and the rows
are read back from it :data:`BLOCK_ROWS` at a time, in the run's order, made into a block of the table
(:func:`~ulyss_ann.fitting.table.rows_to_table`), written (:func:`~ulyss_ann.fitting.table.write_table_blocks`:
ECSV a block at a time) and summarised (:class:`BatchSummary`: the counts, and the few columns of the
``ok`` rows that the summary's medians and the command line's checks need, written to a temporary file), then
let go: the driver's memory is the same whatever the run's size. Only when the caller wants the table itself
(:func:`ulyss_ann.fit` does by default) are the blocks kept and joined.
"""

import collections
import os
import tempfile
import weakref
from dataclasses import dataclass, field

import numpy as np

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.fitting.batch.journal_index import JournalIndex
from ulyss_ann.fitting.quality import ERRORS_ESTIMATED
from ulyss_ann.fitting.table import rows_to_table, write_table_blocks

__all__ = ["BatchSummary", "SpilledColumns", "batch_results", "exact_median", "ranked_value", "not_fitted",
           "BLOCK_ROWS"]

#: Rows read back, made into a table and written at a time: ~20 MB of rows, whatever the run's size.
BLOCK_ROWS = 2_000


@dataclass
class BatchSummary:
    """What a batch gave, without its table: every row's status, counted, and the ``ok`` rows' values of the
    network's parameters, ``cz``, ``sigma``, ``lmin`` and ``lmax`` (float64, kept in a temporary file: read
    back when asked for, :attr:`values` or :meth:`chunks`; the medians are exact, worked out a chunk at a time).

    Attributes
    ----------
    spectra : int
        Rows in the table (one per spectrum of the run).
    statuses : collections.Counter
        Rows by ``status`` (``ok``, ``error: …``, ``failed: …``).
    values : dict
        Column name -> float64 array over the ``ok`` rows, in the table's order (masked values as NaN).
    units : dict
        Column name -> unit (text) of the columns in ``values``.
    estimated : int
        ``ok`` rows fitted without σ (flag ``errors-estimated``).
    """

    spectra: int = 0
    statuses: collections.Counter = field(default_factory=collections.Counter)
    units: dict = field(default_factory=dict)
    estimated: int = 0
    _columns: "SpilledColumns" = field(default=None, repr=False)  # the values, on disk

    @property
    def values(self):
        """Column name -> float64 array over the ``ok`` rows (see the class's text), read back whole."""
        return {} if self._columns is None else {name: self._columns.column(name) for name in self._columns.names}

    def chunks(self, name):
        """Column ``name`` of :attr:`values`, a block of rows at a time (float64 arrays): a survey's, in
        little memory."""
        self._known(name, "chunks")
        return self._columns.chunks(name)

    @property
    def fitted(self):
        """Rows with status ``ok``."""
        return self.statuses.get("ok", 0)

    def not_fitted(self):
        """(errors, failed): rows with the spectrum's own problem, and those the machinery failed."""
        return not_fitted(self.statuses)

    def add(self, block, names):
        """Count a block of the table (:func:`~ulyss_ann.fitting.table.rows_to_table`), keep its ``ok`` rows'
        ``names`` columns."""
        status = np.asarray(block["status"], str)
        self.spectra += len(block)
        self.statuses.update(collections.Counter(status.tolist()))
        ok = status == "ok"
        flags = np.ma.filled(np.ma.asarray(block["flag"][ok], dtype=str), "").tolist()  # not masked item by item
        self.estimated += sum(ERRORS_ESTIMATED in flag.split(",") for flag in flags)
        if self._columns is None:
            self._columns = SpilledColumns(names)
        self._columns.add({name: np.ma.filled(np.ma.asarray(block[name][ok], dtype=float), np.nan)
                           for name in self._columns.names})
        for name in names:
            self.units.setdefault(name, str(block[name].unit or ""))

    def median(self, name):
        """The median of column ``name`` (one of :attr:`values`) over the ``ok`` rows where it has a value (NaN
        where none has), np.median's value (a zero's sign aside); another name is refused in one line."""
        self._known(name, "median")
        return exact_median(lambda: self._columns.chunks(name))

    def _known(self, name, asked):
        kept = [] if self._columns is None else self._columns.names
        if name not in kept:
            raise UlyssAnnError(f"{asked}({name!r}): the summary keeps {', '.join(kept) or 'no column'}; the other "
                                "columns are in the table written")

    def lines(self, parameters, seconds, fitted_now):
        """The summary a batch prints at its end: counts, medians of the ``ok`` rows, the commonest failures.

        ``parameters``: the network's parameter names; ``seconds``, ``fitted_now``: the run's time and the
        spectra sent to the engine in it."""
        lines = [f"{self._counts()} (the machinery) — {fitted_now} sent to the engine in {seconds:.1f} s"]
        if self.estimated:
            lines.append(f"{self.estimated} without σ: fitted unweighted, errors estimated from the residuals "
                         f"(flag {ERRORS_ESTIMATED})")
        if self.fitted:
            lines.append(f"median: {self._medians(parameters)}")
        for status in sorted(status for status in self.statuses if status != "ok")[:5]:
            lines.append(f"  {self.statuses[status]} x {status}")
        return lines

    def __repr__(self):
        """One line, as the batch's summary begins: the counts, and the medians of the ``ok`` rows."""
        parameters = [name for name in self.units if name not in _KINEMATICS]
        medians = f"; median: {self._medians(parameters)}" if self.fitted else ""
        return f"<BatchSummary {self._counts()}{medians}>"

    def _counts(self):
        errors, failed = self.not_fitted()
        spectra = "1 spectrum" if self.spectra == 1 else f"{self.spectra} spectra"
        return f"{spectra}: {self.fitted} fitted, {errors} error, {failed} failed"

    def _medians(self, parameters):
        medians = ", ".join(f"{name} {self.median(name):.4g} {self.units.get(name, '')}".rstrip()
                            for name in parameters)
        return f"{medians}, cz {self.median('cz'):.1f} km/s"


#: The columns a summary keeps besides the network's parameters.
_KINEMATICS = ("cz", "sigma", "lmin", "lmax")


def not_fitted(statuses):
    """(errors, failed) of ``statuses`` (status -> rows): the rows with the spectrum's own problem, and those the
    machinery failed (retried on --resume); the summary's words, which the batch's progress bar uses too."""
    errors = sum(n for status, n in statuses.items() if status.startswith("error:"))
    failed = sum(n for status, n in statuses.items() if status.startswith("failed:"))
    return errors, failed


def batch_results(journal, parameters, output=None, keep_table=True, index=None):
    """The batch's table, written to ``output`` when given, and its :class:`BatchSummary`, from ``journal``.

    ``parameters``: the network's (name, unit) pairs; ``index``: the journal's
    :class:`~ulyss_ann.fitting.batch.journal_index.JournalIndex` as the batch opened it, brought up to date
    here (else the journal is read whole). Returns (table or None, summary): the table (its metadata the run's
    record) only with ``keep_table``.
    """
    own = None  # an index read here, closed here
    if journal.path is not None:  # where each row starts, in the run's order, from the index on disk
        if index is not None and index.updatable:
            index.update(journal, ids=False)  # this run's rows: the journal's first part is not read again
        else:
            index = own = JournalIndex.read(journal, ids=False)
        run, offsets, part_rows = index.run, index.row_offsets(BLOCK_ROWS), journal.rows_at
    else:  # in memory: the rows themselves
        state = journal.read()
        rows = [state.rows[key] for key in state.inputs if key in state.rows]
        run, offsets, part_rows = state.run, (rows[i:i + BLOCK_ROWS] for i in range(0, len(rows), BLOCK_ROWS)), list
    names = [name for name, _ in parameters] + list(_KINEMATICS)
    summary, kept = BatchSummary(units={name: unit or "" for name, unit in parameters}), []

    def made(where):
        block = rows_to_table(part_rows(where), parameters)
        summary.add(block, names)
        if keep_table:
            kept.append(block)
        return block

    def blocks():
        for where in offsets:
            yield made(where)
        if not summary.spectra:  # an empty run: one empty block, for its columns
            yield made([])

    try:
        if output is not None:
            write_table_blocks(blocks(), output, meta=run)
        else:
            collections.deque(blocks(), maxlen=0)
    finally:
        if own is not None:
            own.close()
    table = None
    if keep_table:
        from astropy.table import vstack

        table = kept[0] if len(kept) == 1 else vstack(kept, join_type="exact", metadata_conflicts="silent")
        table.meta.update(run or {})
    return table, summary


class SpilledColumns:
    """Float64 columns written a block at a time to an unnamed temporary file (gone when closed or collected),
    read back a column at a time: a summary's values, whatever the run's size."""

    def __init__(self, names):
        self.names, self._blocks, self._file = list(names), [], tempfile.TemporaryFile()
        weakref.finalize(self, self._file.close)  # closed when collected, as a file should be (no warning)

    def __getstate__(self):  # a summary pickled or copied takes its values along
        return {"names": self.names, "columns": {name: self.column(name) for name in self.names}}

    def __setstate__(self, state):
        self.__init__(state["names"])
        self.add(state["columns"])

    def add(self, columns):
        """A block of rows: ``columns``, name -> float64 array (one length), for each of :attr:`names`."""
        length = len(columns[self.names[0]]) if self.names else 0
        if not length:
            return
        self._file.seek(0, os.SEEK_END)
        self._blocks.append((self._file.tell(), length))
        for name in self.names:
            self._file.write(np.ascontiguousarray(columns[name], np.float64).tobytes())

    def chunks(self, name):
        """Column ``name``, a block at a time (float64 arrays)."""
        k = self.names.index(name)
        for offset, length in self._blocks:
            self._file.seek(offset + 8 * length * k)
            yield np.frombuffer(self._file.read(8 * length), np.float64)

    def column(self, name):
        """Column ``name``, whole."""
        parts = list(self.chunks(name))
        return np.concatenate(parts) if parts else np.zeros(0)


def exact_median(chunks, at_once=1 << 16, pivots=1024):
    """np.median of the finite values of ``chunks()`` (a callable that gives float arrays), the same value,
    in passes over them that hold :data:`at_once` values at most besides a chunk: see :func:`ranked_value`."""
    count = sum(int(np.count_nonzero(np.isfinite(chunk))) for chunk in chunks())
    if not count:
        return float("nan")
    low = ranked_value(chunks, (count - 1) // 2, at_once, pivots)
    if count % 2:
        return float(low)
    return float(np.mean(np.array([low, ranked_value(chunks, count // 2, at_once, pivots)])))  # as np.median


def ranked_value(chunks, rank, at_once=1 << 16, pivots=1024):
    """The finite value of rank ``rank`` (0: the smallest) among those of ``chunks()``.

    Each round narrows an open interval (lo, hi) that holds it: a pass counts the values inside (their few
    are then sorted, when no more than ``at_once``), a second draws ~``pivots`` pivots among them (every k-th
    met, and evenly spaced between their least and greatest: robust to any order), a third counts them
    between and at the pivots; the value is a pivot, or the interval between two becomes the next."""
    lo, hi, below = -np.inf, np.inf, 0  # NaN is inside no interval; ±inf neither (finite values only)

    def inside():
        for chunk in chunks():
            chunk = np.asarray(chunk, np.float64)
            yield chunk[(chunk > lo) & (chunk < hi)]

    while True:
        count, least, most = 0, np.inf, -np.inf
        for values in inside():
            if len(values):
                count, least, most = count + len(values), min(least, values.min()), max(most, values.max())
        if least == most:
            return least
        if count <= at_once:
            values = np.sort(np.concatenate(list(inside()) + [np.zeros(0)]))
            return values[rank - below]
        step, seen, sample = max(count // pivots, 1), 0, [np.linspace(least, most, pivots)]
        for values in inside():
            sample.append(values[(-seen) % step::step])
            seen += len(values)
        edges = np.unique(np.concatenate(sample))
        counts = np.zeros(2 * len(edges) + 1, np.int64)  # below the first, at it, between it and the next, …
        for values in inside():
            bins = np.searchsorted(edges, values, "left") + np.searchsorted(edges, values, "right")
            counts += np.bincount(bins, minlength=len(counts))
        cumulative = np.cumsum(counts)
        b = int(np.searchsorted(cumulative, rank - below, "right"))
        below += int(cumulative[b - 1]) if b else 0
        if b % 2:
            return edges[b // 2]
        lo, hi = (edges[b // 2 - 1] if b else lo), (edges[b // 2] if b // 2 < len(edges) else hi)
