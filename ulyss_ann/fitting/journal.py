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

Records, in order: one ``run`` (the run's configuration: :mod:`ulyss_ann.fitting.run`),
``inputs`` (the spectra of the run and their ids, in blocks; more when ``--add-spectra``
adds some),
then ``row`` records. A spectrum's last valid row is its result: a failure of the
machinery (``failed: …``) retried on ``--resume`` is superseded by the new row.
"""

import json
import os
import zlib
from dataclasses import dataclass, field

import numpy as np

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.fitting.table import as_number

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

    def read(self):
        """A :class:`JournalState` of the file (empty when there is none)."""
        state = JournalState()
        if not os.path.exists(self.path):
            return state
        with open(self.path, "rb") as handle:  # line by line: a survey's journal is never all in memory
            for number, line in enumerate(handle, start=1):
                self._read_line(state, number, line)
        return state

    @staticmethod
    def _read_line(state, number, line):
        record = _decode(line)
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
            state.inputs += record["keys"]
            state.ids.update(zip(record["keys"], record["ids"]))
        elif kind == "row":
            row = record["row"]
            state.rows[row["file"]] = row
            if row["file"] not in state.ids:  # its inputs record damaged: the row still counts
                state.inputs.append(row["file"])
                state.ids[row["file"]] = row.get("id")
            state.counts[row["file"]] = state.counts.get(row["file"], 0) + 1
            if str(row.get("status", "")).startswith("failed:"):
                state.failures[row["file"]] = state.failures.get(row["file"], 0) + 1

    def repair(self, state):
        """Cut a torn last line off the file, so that the next record starts on a line of its own."""
        if state.torn_bytes:
            size = os.path.getsize(self.path)
            with open(self.path, "rb+") as handle:
                handle.truncate(size - state.torn_bytes)
                os.fsync(handle.fileno())

    def start(self, run, inputs):
        """Begin a new journal: the run's record and its inputs, (key, id) pairs."""
        self._write([{"kind": "run", "config": run}] + self._input_records(inputs), mode="wb")

    def add_inputs(self, inputs):
        """Record spectra added to the run (``--add-spectra``), (key, id) pairs."""
        self._write(self._input_records(inputs))

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
    def _input_records(inputs):
        blocks = [inputs[i:i + _INPUTS_PER_RECORD] for i in range(0, len(inputs), _INPUTS_PER_RECORD)]
        return [{"kind": "inputs", "keys": [k for k, _ in block], "ids": [i for _, i in block]} for block in blocks]

    def _write(self, records, mode="ab"):
        try:
            with open(self.path, mode) as handle:
                handle.write(b"".join(_encode(r) for r in records))
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise JournalError(f"{self.path}: cannot write the journal ({exc.strerror or exc}); the batch stops "
                               "here, every spectrum recorded before is safe: make room and rerun with --resume") \
                from None


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

    def read(self):
        return self._state

    def start(self, run, inputs):
        self._state.run, self._state.inputs, self._state.ids = run, [k for k, _ in inputs], dict(inputs)

    def append(self, row):
        self._state.rows[row["file"]] = row

    def append_many(self, rows):
        for row in rows:
            self.append(row)
