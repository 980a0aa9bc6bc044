"""The journal of a batch: every finished spectrum on disk at once, each record verifiable.

A batch appends one record per finished spectrum (fitted or failed) to ``<output>.journal.jsonl``,
a block's records in one write, and forces it to disk (``fsync``) before going on, so a crash of
anything — a worker, GDL, the driver itself (``kill -9``), the machine — loses no finished work;
``--resume`` continues from it and the table is rebuilt from it, each spectrum once.

**Format.** One record per line, each line a JSON object that carries the CRC-32 of
its own record::

    {"crc32":"1c291ca3","record":{"kind":"row","row":{"id":"star1","Teff":5425.6,...}}}

The checksum is of the exact bytes between ``"record":`` and the final ``}``, so a
record is verified without re-encoding it. A line that does not end in a newline, does
not parse, or whose checksum does not match is *damaged*: it is reported in one line
and ignored, and its spectrum (which then has no valid record) is fitted again. A
damaged last line — the trace of a crash or a full disk in the middle of a write — is
cut off before the next append, so that a new record never joins it. JSON lines with
checksums rather than SQLite: the file is plain text that ``grep`` and ``jq`` read, it
is safe on the network file systems of clusters (where SQLite's locking is not), and
a write that fails loses at most the record being written.

A record whose checksum holds but whose values are not of the shape written here (a
row that is not an object, ``keys`` that are not a list of names, a ``status`` that is
not text: :mod:`~ulyss_ann.fitting.batch.journal_lines`) is damaged too: only this package's own records are
believed.

Records, in order: one ``run`` (the run's configuration: :mod:`ulyss_ann.fitting.batch.run`),
``inputs`` (the spectra of the run and their ids, in blocks; more when ``--add-spectra``
adds some),
then ``row`` records. A spectrum's last valid row is its result: a failure of the
machinery (``failed: …``) retried on ``--resume`` is superseded by the new row.

**Fingerprints.** An ``inputs`` record also carries, in ``stats``, the size and
modification time (ns) of each spectrum file when the run met it (``null`` for an
in-memory spectrum, a file that could not be read, and in journals written before
fingerprints: unknown, never a difference). A ``fingerprints`` record (``keys``,
``stats``) gives a spectrum file a new fingerprint: ``--resume`` writes one for a file
that changed since it was fitted, which sets aside the rows written before it — the
spectrum is fitted again (:mod:`~ulyss_ann.fitting.batch.resume`). Fingerprints are not part
of the run's identity: a journal with or without them is the same run.
"""

import itertools
import os
import stat
from dataclasses import dataclass, field

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.fitting.batch.journal_lines import (decode_checked_line, decode_line, encode_record, finite_row,
                                                   is_legacy_line)
from ulyss_ann.fitting.safe_files import open_own, write_beside
from ulyss_ann.fitting.table import as_number

__all__ = ["Journal", "JournalHealth", "JournalState", "MemoryJournal", "JournalError", "failure_row"]

_INPUTS_PER_RECORD = 1000


class JournalError(UlyssAnnError):
    """The journal cannot be written (a full disk, a lost file system): the batch stops."""


def failure_row(key, spectrum, status, engine, model, sha):
    """A row for a spectrum that could not be fitted; ``status`` says why.

    ``key`` is the spectrum's key in the journal (its file, or ``memory:<id>``);
    ``spectrum`` — its id, or the Spectrum when it could be read, which adds its
    position and S/N.
    """
    if spectrum is not None and not isinstance(spectrum, str):
        meta = spectrum.meta
        row = dict(id=meta["id"], ra=as_number(meta.get("ra"), "deg"), dec=as_number(meta.get("dec"), "deg"),
                   snr=as_number(meta.get("snr")), n_bad=spectrum.n_bad)
    else:
        row = dict(id=spectrum if spectrum else os.path.splitext(os.path.basename(key))[0].replace("memory:", ""))
    row.update(file=key, engine=engine, model=model, model_sha256=sha, status=status, flag="")
    return row


@dataclass
class JournalHealth:
    """What reading a journal met besides its records: damaged lines, a torn last one, lines of an older format."""

    damaged: list = field(default_factory=list)    # line numbers
    torn_bytes: int = 0                            # length of a last line cut short
    damaged_inputs: bool = False                   # a damaged line that is not a row (an inputs record?)
    legacy: bool = False                           # lines without checksums (ulyss_ann before 0.2)
    end: int = 0                                   # bytes read: where the next line starts (a torn one included)

    def note_damaged(self, number, line):
        """Line ``number`` (its bytes ``line``) holds no valid record."""
        if is_legacy_line(line):
            self.legacy = True
            return
        self.damaged.append(number)
        if b'"kind":"row"' not in line:  # perhaps an inputs record: the run's spectra are not all known
            self.damaged_inputs = True
        if not line.endswith(b"\n"):  # only the last line can lack its end
            self.torn_bytes = len(line)

    def report(self, path):
        """One line about damaged records, or None."""
        if not self.damaged:
            return None
        where = ", ".join(str(n) for n in self.damaged[:5]) + (" …" if len(self.damaged) > 5 else "")
        torn = ", the last one cut short by a crash or a full disk" if self.torn_bytes else ""
        plural = "s" if len(self.damaged) > 1 else ""
        return (f"{path}: {len(self.damaged)} damaged record{plural} ignored (line{plural} {where}{torn}); "
                "the spectra left without a valid row are fitted again")


@dataclass
class JournalState(JournalHealth):
    """What a journal holds: the run's record, its inputs, each spectrum's last row, what is damaged; in dicts
    keyed by file, rows whole (a survey's driver indexes it on disk instead:
    :mod:`~ulyss_ann.fitting.batch.journal_index`)."""

    run: dict = None
    inputs: list = field(default_factory=list)    # journal keys, in the run's order
    ids: dict = field(default_factory=dict)       # key -> the id the run gave it
    rows: dict = field(default_factory=dict)
    failures: dict = field(default_factory=dict)   # key -> machinery failures recorded
    counts: dict = field(default_factory=dict)     # key -> row records (a spectrum fitted twice shows here)
    stats: dict = field(default_factory=dict)      # key -> [size, mtime_ns] of the file as last fitted, or None
    offsets: dict = field(default_factory=dict)    # key -> where its row's line starts (Journal.rows_at)

    def note_stats(self, keys, stats):
        """The fingerprints of a ``fingerprints`` record: a file whose known fingerprint
        changes loses the rows written before (they were of its old content)."""
        for key, new in zip(keys, stats):
            old = self.stats.get(key)
            if old is not None and new is not None and list(old) != list(new):
                self.rows.pop(key, None)
                self.offsets.pop(key, None)
                self.failures.pop(key, None)
                self.counts.pop(key, None)
            self.stats[key] = new

    def apply(self, offset, record):
        """Take in one valid record, whose line starts at ``offset``."""
        kind = record.get("kind")
        if kind == "run" and self.run is None:
            self.run = record["config"]
        elif kind == "inputs":
            new = [key for key in record["keys"] if key not in self.ids]
            self.inputs += list(dict.fromkeys(new))
            self.ids.update(zip(record["keys"], record["ids"]))
            self.stats.update(zip(record["keys"], record.get("stats") or [None] * len(record["keys"])))
        elif kind == "fingerprints":
            self.note_stats(record["keys"], record["stats"])
        elif kind == "row":
            row = record["row"]
            key, status = row["file"], row["status"]
            if key not in self.ids:  # its inputs record damaged: the row still counts
                self.inputs.append(key)
                self.ids[key] = row.get("id")
            self.rows[key] = row
            self.offsets[key] = offset
            self.counts[key] = self.counts.get(key, 0) + 1
            if status.startswith("failed:"):
                self.failures[key] = self.failures.get(key, 0) + 1


class Journal:
    """The append-only, checksummed journal of a batch on disk (see the module's text)."""

    def __init__(self, path):
        self.path = str(path)

    def read(self):
        """A :class:`JournalState` of the file (empty when there is none; a link at its name refused)."""
        state = JournalState()
        for offset, record in self.records(state):
            state.apply(offset, record)
        return state

    def records(self, health, start=0):
        """Each valid record of the file, in order, as (where its line starts, the record), line by line, from
        byte ``start`` (0, or where a read ended: :attr:`JournalHealth.end` less its ``torn_bytes``, once
        :meth:`repair` has cut them); the lines that hold none are noted in ``health`` (:class:`JournalHealth`;
        line numbers counted from ``start``). A link at its name is refused."""
        if not os.path.lexists(self.path):
            return
        with open(self._open(os.O_RDONLY), "rb") as handle:
            handle.seek(start)
            offset = start
            for number, line in enumerate(handle, start=1):
                record = decode_line(line)
                if record is None:
                    health.note_damaged(number, line)
                else:
                    yield offset, record
                offset += len(line)
            health.end = offset

    def rows_at(self, offsets):
        """The rows whose lines start at ``offsets`` (:attr:`JournalState.offsets`, or a block of
        :meth:`JournalIndex.row_offsets <ulyss_ann.fitting.batch.journal_index.JournalIndex.row_offsets>`), in
        that order."""
        with open(self._open(os.O_RDONLY), "rb") as handle:
            out = []
            for offset in offsets:
                handle.seek(offset)
                out.append(decode_checked_line(handle.readline())["row"])  # verified when the state was read
            return out

    def _open(self, flags, path=None):
        """A descriptor on the journal itself (or ``path``), never on what a link at its name points to; nor on
        a FIFO or device put there (reading it would hang, writing it would go elsewhere)."""
        descriptor = open_own(path or self.path, flags | os.O_NONBLOCK)
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            os.close(descriptor)
            raise UlyssAnnError(f"{self.path}: not a regular file; remove it or give another --output")
        os.set_blocking(descriptor, True)
        return descriptor

    def repair(self, state):
        """Cut a torn last line off the file, so that the next record starts on a line of its own."""
        if state.torn_bytes:
            size = os.path.getsize(self.path)
            with open(self._open(os.O_RDWR), "rb+") as handle:
                handle.truncate(size - state.torn_bytes)
                os.fsync(handle.fileno())

    def start(self, run, inputs, stats=None):
        """Begin a new journal: the run's record and its inputs, (key, id) pairs (any iterable); ``stats``:
        the fingerprint of each key's file ([size, mtime_ns]; see the module's text), a mapping or a function."""
        self._write(itertools.chain([{"kind": "run", "config": run}], self._input_records(inputs, stats)), create=True)

    def add_inputs(self, inputs, stats=None):
        """Record spectra added to the run (``--add-spectra``), (key, id) pairs, and their fingerprints."""
        self._write(self._input_records(inputs, stats))

    def add_fingerprints(self, stats):
        """Record new fingerprints (key -> [size, mtime_ns]): the rows written before them are set aside."""
        keys = list(stats)
        self._write([{"kind": "fingerprints", "keys": keys[i:i + _INPUTS_PER_RECORD],
                      "stats": [stats[k] for k in keys[i:i + _INPUTS_PER_RECORD]]}
                     for i in range(0, len(keys), _INPUTS_PER_RECORD)])

    def append(self, row):
        """Record one finished spectrum, on disk before returning (JournalError when that fails)."""
        self.append_many([row])

    def append_many(self, rows):
        """Record finished spectra (a block's) in one write, on disk before returning.

        One ``fsync`` per block rather than per spectrum: at thousands of spectra a second
        the journal would otherwise cost more than the fits. Each record still carries its
        own checksum, so a crash in the middle of the write loses only the records after
        the tear, which ``--resume`` fits again.
        """
        self._write([b"".join(encode_record({"kind": "row", "row": finite_row(row)}) for row in rows)])  # one write

    @staticmethod
    def _input_records(inputs, stats=None):
        """The inputs records of (key, id) pairs, made a block at a time (a survey's are never all in memory)."""
        stat = stats if callable(stats) else (stats or {}).get
        inputs = iter(inputs)
        while block := list(itertools.islice(inputs, _INPUTS_PER_RECORD)):
            yield {"kind": "inputs", "keys": [k for k, _ in block], "ids": [i for _, i in block],
                   "stats": [stat(k) for k, _ in block]}

    def _write(self, records, create=False):
        """Append ``records``, on disk before returning; ``create``: the journal begins with them, written
        beside and renamed into place whole (:func:`~ulyss_ann.fitting.safe_files.write_beside`), so that a
        run stopped while its inputs are journalled (a survey's take minutes) leaves no journal behind.

        Opened without following a link at the journal's name (see :mod:`~ulyss_ann.fitting.safe_files`):
        a link is refused in one line, as is a dangling one (whose target would be created).
        """
        try:
            if create:
                write_beside(self.path, lambda temporary: self._put(temporary, records, os.O_CREAT | os.O_EXCL),
                             sync=False)
            else:
                self._put(self.path, records, os.O_APPEND)
        except OSError as exc:
            raise JournalError(f"{self.path}: cannot write the journal ({exc.strerror or exc}); the batch stops "
                               "here, every spectrum recorded before is safe: make room and rerun with --resume") \
                from None

    def _put(self, path, records, flags):
        """Write ``records`` (or lines already encoded) to ``path`` and force them to disk."""
        with open(self._open(os.O_WRONLY | flags, path), "wb") as handle:
            handle.writelines(r if isinstance(r, bytes) else encode_record(r) for r in records)
            handle.flush()
            os.fsync(handle.fileno())


class MemoryJournal:
    """The journal of a batch kept in memory (``output=None``): same interface, nothing on disk."""

    path = None

    def __init__(self):
        self._state = JournalState()

    def read(self):
        return self._state

    def start(self, run, inputs, stats=None):
        inputs = list(inputs)
        self._state.run, self._state.inputs, self._state.ids = run, [k for k, _ in inputs], dict(inputs)

    def append(self, row):
        self._state.rows[row["file"]] = row

    def append_many(self, rows):
        for row in rows:
            self.append(row)
