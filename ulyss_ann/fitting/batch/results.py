"""A batch's results from its journal, a block of rows at a time: the table written, the run summarised.

A survey's table is never all in memory: the journal is read as columns
(:class:`~ulyss_ann.fitting.batch.journal_index.JournalIndex`: where each spectrum's row starts), and the rows
are read back from it :data:`BLOCK_ROWS` at a time, in the run's order, made into a block of the table
(:func:`~ulyss_ann.fitting.table.rows_to_table`), written (:func:`~ulyss_ann.fitting.table.write_table_blocks`:
ECSV a block at a time) and summarised (:class:`BatchSummary`: the counts, and the few columns of the
``ok`` rows that the summary's medians and the command line's checks need), then let go. Only when the
caller wants the table itself (:func:`ulyss_ann.fit` does by default) are the blocks kept and joined.
"""

import collections
from dataclasses import dataclass, field

import numpy as np

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.fitting.batch.journal_index import JournalIndex
from ulyss_ann.fitting.quality import ERRORS_ESTIMATED
from ulyss_ann.fitting.table import rows_to_table, write_table_blocks

__all__ = ["BatchSummary", "batch_results", "not_fitted", "BLOCK_ROWS"]

#: Rows read back, made into a table and written at a time: ~20 MB of rows, whatever the run's size.
BLOCK_ROWS = 2_000


@dataclass
class BatchSummary:
    """What a batch gave, without its table: every row's status, counted, and the ``ok`` rows' values of the
    network's parameters, ``cz``, ``sigma``, ``lmin`` and ``lmax`` (float64 arrays: 8 bytes a row and column).

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
    _parts: dict = field(default_factory=dict, repr=False)  # name -> the blocks' arrays, joined when asked

    @property
    def values(self):
        """Column name -> float64 array over the ``ok`` rows (see the class's text)."""
        joined = {name: np.concatenate(parts) if len(parts) > 1 else parts[0] for name, parts in self._parts.items()}
        self._parts = {name: [array] for name, array in joined.items()}  # joined once, not a block at a time
        return joined

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
        for name in names:
            column = np.ma.filled(np.ma.asarray(block[name][ok], dtype=float), np.nan)
            self._parts.setdefault(name, []).append(column)
            self.units.setdefault(name, str(block[name].unit or ""))

    def median(self, name):
        """The median of column ``name`` (one of :attr:`values`) over the ``ok`` rows where it has a value (NaN
        where none has); another name is refused in one line."""
        if name not in self._parts:
            raise UlyssAnnError(f"median({name!r}): the summary keeps {', '.join(self._parts)}; the other columns "
                                "are in the table written")
        values = self.values[name]
        values = values[np.isfinite(values)]
        return float(np.median(values)) if values.size else float("nan")

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


def batch_results(journal, parameters, output=None, keep_table=True):
    """The batch's table, written to ``output`` when given, and its :class:`BatchSummary`, from ``journal``.

    ``parameters``: the network's (name, unit) pairs. Returns (table or None, summary): the table (its
    metadata the run's record) only with ``keep_table``.
    """
    if journal.path is not None:  # where each row starts, in the run's order: 8 bytes a spectrum
        index = JournalIndex.read(journal, ids=False)
        run, where, part_rows = index.run, index.row_offsets(), journal.rows_at
        del index
    else:  # in memory: the rows themselves
        state = journal.read()
        run, where, part_rows = state.run, [state.rows[key] for key in state.inputs if key in state.rows], list
    names = [name for name, _ in parameters] + list(_KINEMATICS)
    summary, kept = BatchSummary(units={name: unit or "" for name, unit in parameters}), []

    def blocks():
        for start in range(0, max(len(where), 1), BLOCK_ROWS):
            block = rows_to_table(part_rows(where[start:start + BLOCK_ROWS]), parameters)
            summary.add(block, names)
            if keep_table:
                kept.append(block)
            yield block

    if output is not None:
        write_table_blocks(blocks(), output, meta=run)
    else:
        collections.deque(blocks(), maxlen=0)
    table = None
    if keep_table:
        from astropy.table import vstack

        table = kept[0] if len(kept) == 1 else vstack(kept, join_type="exact", metadata_conflicts="silent")
        table.meta.update(run or {})
    return table, summary
