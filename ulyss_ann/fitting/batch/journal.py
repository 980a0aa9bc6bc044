"""The journal of a batch: every finished spectrum on disk at once, each record verifiable.

A batch appends one record per finished spectrum (fitted or failed) to
``<output>.journal.jsonl``, a block's records in one write, and forces it to disk
(``fsync``) before going on, so a
crash of anything — a worker, GDL, the driver itself (``kill -9``), the machine —
loses no finished work; ``--resume`` continues from it and the table is rebuilt from
it, each spectrum once.

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
not text: :func:`_shape_problem`) is damaged too: only this package's own records are
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

import json
import os
import stat
import sys
import zlib
from dataclasses import dataclass, field

import numpy as np

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.fitting.safe_files import open_own
from ulyss_ann.fitting.table import STRING_COLUMNS, as_number

__all__ = ["Journal", "JournalState", "MemoryJournal", "JournalError", "failure_row"]

_PREFIX = b'{"crc32":"'
_MIDDLE = b'","record":'
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


def _encode(record):
    """One journal line (bytes) for a record: the record's JSON and its CRC-32."""
    body = json.dumps(record, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                      default=_plain).encode("utf-8")
    return _PREFIX + f"{zlib.crc32(body):08x}".encode() + _MIDDLE + body + b"}\n"


def _plain(value):
    """What json cannot write itself: NumPy numbers as Python ones (non-finite as null), the rest as text.

    A journal write must not fail on a value of an unexpected type (metadata copied from
    a user's spectrum): that would stop the batch. Text keeps it readable.
    """
    if isinstance(value, np.generic):
        value = value.item()
        return value if not isinstance(value, float) or np.isfinite(value) else None
    return str(value)


def _decode(line):
    """The record of one line, or None when the line is damaged."""
    head = len(_PREFIX) + 8 + len(_MIDDLE)
    if not (line.startswith(_PREFIX) and line[len(_PREFIX) + 8:head] == _MIDDLE and line.endswith(b"}\n")):
        return None
    body = line[head:-2]
    try:
        if int(line[len(_PREFIX):len(_PREFIX) + 8], 16) != zlib.crc32(body):
            return None
        return json.loads(body)
    except ValueError:
        return None


def _finite(row):
    """NaN and inf as null (JSON has no NaN); read back as missing values."""
    return {k: (None if isinstance(v, (float, np.floating)) and not np.isfinite(v) else v) for k, v in row.items()}


@dataclass
class JournalState:
    """What a journal holds: the run's record, its inputs, each spectrum's last row, what is damaged."""

    run: dict = None
    inputs: list = field(default_factory=list)    # journal keys, in the run's order
    ids: dict = field(default_factory=dict)       # key -> the id the run gave it
    rows: dict = field(default_factory=dict)
    failures: dict = field(default_factory=dict)   # key -> machinery failures recorded
    counts: dict = field(default_factory=dict)     # key -> row records (a spectrum fitted twice shows here)
    damaged: list = field(default_factory=list)    # line numbers
    torn_bytes: int = 0                            # length of a last line cut short
    damaged_inputs: bool = False                   # a damaged line that is not a row (an inputs record?)
    legacy: bool = False                           # lines without checksums (ulyss_ann before 0.2)
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

    def report(self, path):
        """One line about damaged records, or None."""
        if not self.damaged:
            return None
        where = ", ".join(str(n) for n in self.damaged[:5]) + (" …" if len(self.damaged) > 5 else "")
        torn = ", the last one cut short by a crash or a full disk" if self.torn_bytes else ""
        plural = "s" if len(self.damaged) > 1 else ""
        return (f"{path}: {len(self.damaged)} damaged record{plural} ignored (line{plural} {where}{torn}); "
                "the spectra left without a valid row are fitted again")


class Journal:
    """The append-only, checksummed journal of a batch on disk (see the module's text)."""

    def __init__(self, path):
        self.path = str(path)

    def read(self, rows=True):
        """A :class:`JournalState` of the file (empty when there is none; a link at its name refused).

        ``rows`` False: each spectrum's row is kept as its status alone (``{"status": …}``, one object
        for every ``ok``), and :meth:`rows_at` reads the rows themselves back from ``offsets``, a block
        at a time: what resuming and writing the table of a survey need, at under 1 KB a spectrum with
        its key, id and fingerprint (scripts/bench_survey --driver-rows) rather than the ~10 KB of a row.
        """
        state = JournalState()
        if not os.path.lexists(self.path):
            return state
        statuses = {} if not rows else None
        # line by line: a survey's journal is never all in memory
        with open(self._open(os.O_RDONLY), "rb") as handle:
            offset = 0
            for number, line in enumerate(handle, start=1):
                self._read_line(state, number, line, offset, statuses)
                offset += len(line)
        return state

    def rows_at(self, offsets):
        """The rows whose lines start at ``offsets`` (from :attr:`JournalState.offsets`), in that order."""
        with open(self._open(os.O_RDONLY), "rb") as handle:
            out = []
            for offset in offsets:
                handle.seek(offset)
                out.append(_decode(handle.readline())["row"])  # verified when the state was read
            return out

    def _open(self, flags):
        """A descriptor on the journal itself, never on what a link at its name points to; nor on a
        FIFO or device put there (reading it would hang, writing it would go elsewhere)."""
        descriptor = open_own(self.path, flags | os.O_NONBLOCK)
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            os.close(descriptor)
            raise UlyssAnnError(f"{self.path}: not a regular file; remove it or give another --output")
        os.set_blocking(descriptor, True)
        return descriptor

    @staticmethod
    def _read_line(state, number, line, offset, statuses):
        record = _decode(line)
        if record is not None and _shape_problem(record):  # a checksum holds, yet not our record: damaged
            record = None
        if record is None:
            if _is_legacy(line):
                state.legacy = True
                return
            state.damaged.append(number)
            if b'"kind":"row"' not in line:  # perhaps an inputs record: the run's spectra are not all known
                state.damaged_inputs = True
            if not line.endswith(b"\n"):  # only the last line can lack its end
                state.torn_bytes = len(line)
            return
        kind = record.get("kind")
        if kind == "run" and state.run is None:
            state.run = record["config"]
        elif kind == "inputs":
            if statuses is not None:
                record["keys"] = [sys.intern(key) for key in record["keys"]]
            new = [key for key in record["keys"] if key not in state.ids]
            state.inputs += list(dict.fromkeys(new))
            state.ids.update(zip(record["keys"], record["ids"]))
            stats = record.get("stats") or [None] * len(record["keys"])
            if statuses is not None:  # tuples: 16 bytes a spectrum less than lists
                stats = [tuple(stat) if stat else stat for stat in stats]
            state.stats.update(zip(record["keys"], stats))
        elif kind == "fingerprints":
            state.note_stats(record["keys"], record["stats"])
        elif kind == "row":
            row = record["row"]
            key, status = row["file"], row["status"]
            if statuses is not None:
                key = sys.intern(key)  # the same text as its inputs record's key: held once
            if key not in state.ids:  # its inputs record damaged: the row still counts
                state.inputs.append(key)
                state.ids[key] = row.get("id")
            if statuses is not None:  # its status alone, one shared object for each (the row is at its offset)
                row = statuses.get(status) or statuses.setdefault(status, {"status": status})
            state.rows[key] = row
            state.offsets[key] = offset
            state.counts[key] = state.counts.get(key, 0) + 1
            if status.startswith("failed:"):
                state.failures[key] = state.failures.get(key, 0) + 1

    def repair(self, state):
        """Cut a torn last line off the file, so that the next record starts on a line of its own."""
        if state.torn_bytes:
            size = os.path.getsize(self.path)
            with open(self._open(os.O_RDWR), "rb+") as handle:
                handle.truncate(size - state.torn_bytes)
                os.fsync(handle.fileno())

    def start(self, run, inputs, stats=None):
        """Begin a new journal: the run's record and its inputs, (key, id) pairs; ``stats``:
        key -> the fingerprint of its file ([size, mtime_ns]; see the module's text)."""
        self._write([{"kind": "run", "config": run}] + self._input_records(inputs, stats), create=True)

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
        self._write([{"kind": "row", "row": _finite(row)} for row in rows])

    @staticmethod
    def _input_records(inputs, stats=None):
        stats = stats or {}
        blocks = [inputs[i:i + _INPUTS_PER_RECORD] for i in range(0, len(inputs), _INPUTS_PER_RECORD)]
        return [{"kind": "inputs", "keys": [k for k, _ in block], "ids": [i for _, i in block],
                 "stats": [stats.get(k) for k, _ in block]} for block in blocks]

    def _write(self, records, create=False):
        """Append ``records`` (``create``: the journal begins with them), on disk before returning.

        Opened without following a link at the journal's name (see :mod:`~ulyss_ann.fitting.safe_files`):
        a link is refused in one line, as is a dangling one (whose target would be created).
        """
        flags = os.O_WRONLY | (os.O_CREAT | os.O_TRUNC if create else os.O_APPEND)
        try:
            with open(self._open(flags), "wb") as handle:
                handle.write(b"".join(_encode(r) for r in records))
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise JournalError(f"{self.path}: cannot write the journal ({exc.strerror or exc}); the batch stops "
                               "here, every spectrum recorded before is safe: make room and rerun with --resume") \
                from None


def _names(value, length=None):
    """True for a list of texts (of ``length`` items when given)."""
    return isinstance(value, list) and all(isinstance(v, str) for v in value) and length in (None, len(value))


def _fingerprints(value, length):
    """True for a list of ``length`` fingerprints, each null or [size, mtime_ns] (integers)."""
    return isinstance(value, list) and len(value) == length and all(
        v is None or isinstance(v, list) and len(v) == 2 and all(type(n) is int for n in v) for v in value)


def _row_problem(row):
    """Why a journal row is not one this package writes (see :func:`_shape_problem`), or None."""
    if not isinstance(row, dict):
        return "a row that is not an object"
    if not isinstance(row.get("file"), str) or not row["file"]:
        return "a row without its file"
    if not isinstance(row.get("status"), str):
        return "a row whose status is not text"
    for name, value in row.items():
        scalar = value is None or isinstance(value, (bool, int, float, str))
        if not scalar or (name not in STRING_COLUMNS and isinstance(value, str)):
            return f"a row whose {name} is not a {'text' if name in STRING_COLUMNS else 'number'}"
    return None


def _shape_problem(record):
    """Why a decoded record (its checksum valid) is not of the shape this module writes, or None.

    A record of any other shape is damaged, as one whose checksum fails: a hand-edited or
    tampered journal must not stop a batch with a traceback, nor put a list into a table.
    """
    if not isinstance(record, dict):
        return "not an object"
    kind = record.get("kind")
    if kind == "run":
        return None if isinstance(record.get("config"), dict) else "a run record without its configuration"
    if kind == "inputs":
        keys = record.get("keys")
        if not _names(keys) or not (_names(record.get("ids"), len(keys)) and all(keys)):
            return "an inputs record whose keys and ids are not two lists of names"
        if record.get("stats") is not None and not _fingerprints(record["stats"], len(keys)):
            return "an inputs record whose fingerprints are not [size, mtime_ns] pairs"
        return None
    if kind == "fingerprints":
        keys = record.get("keys")
        ok = _names(keys) and _fingerprints(record.get("stats"), len(keys))
        return None if ok else "a fingerprints record that is not keys and [size, mtime_ns] pairs"
    if kind == "row":
        return _row_problem(record.get("row"))
    return "a record of no kind this package writes"


def _is_legacy(line):
    """A plain JSON row of the journals written before records carried checksums."""
    try:
        return isinstance(json.loads(line), dict) and "file" in json.loads(line)
    except ValueError:
        return False


class MemoryJournal:
    """The journal of a batch kept in memory (``output=None``): same interface, nothing on disk."""

    path = None

    def __init__(self):
        self._state = JournalState()

    def read(self, rows=True):
        return self._state

    def start(self, run, inputs, stats=None):
        self._state.run, self._state.inputs, self._state.ids = run, [k for k, _ in inputs], dict(inputs)

    def append(self, row):
        self._state.rows[row["file"]] = row

    def append_many(self, rows):
        for row in rows:
            self.append(row)
