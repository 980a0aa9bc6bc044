"""A journal read into a scratch database: what resuming a survey and writing its table need, in a memory
that does not grow with the survey.

:meth:`Journal.read <ulyss_ann.fitting.batch.journal.Journal.read>` keeps every row whole in dicts keyed by
file (~10 KB a spectrum). A survey's driver needs far less — for each spectrum of the run, in the run's order,
where its last valid row starts in the file, that row's status, the machinery failures recorded since its file
last changed, the file's fingerprint and the id the run gave it — but for 10⁶ spectra even that, held in
arrays, is ~150 MB while it is worked out. :class:`JournalIndex` keeps it on disk instead, in a private
SQLite database (:mod:`~ulyss_ann.fitting.batch.scratch`: deleted when closed, its page cache and sorter
bounded), and hands it out a chunk of spectra at a time: the driver's memory is the same at 10⁴ spectra and
at 10⁶ (scripts/bench_survey --driver-rows measures it). The journal
itself stays JSON lines (:mod:`~ulyss_ann.fitting.batch.journal`: plain text, safe on a cluster's network file
system); the database is a scratch copy of its facts, made again at each resume, ~200 bytes a spectrum on the
temporary folder's disk (``TMPDIR``; ``SQLITE_TMPDIR`` for SQLite alone).

A spectrum is known by the 128-bit BLAKE2b digest of its key rather than the key's text (two of a run's n files
share a digest with odds of n²/2¹²⁹, those of two git objects' SHA-256).

It is read in one pass (:meth:`Journal.records <ulyss_ann.fitting.batch.journal.Journal.records>`): each
record's events — a key listed by an ``inputs`` record, a row, a new fingerprint — go into three tables, then
are resolved at once, by SQL (:mod:`~ulyss_ann.fitting.batch.journal_resolve`), to the facts
:class:`~ulyss_ann.fitting.batch.journal.JournalState` holds: the run's order (each key where it first appears,
a row's key too when its inputs record is damaged), each spectrum's last valid row, the rows set aside by a
fingerprint that changed (and the failures with them), the id of the last inputs record that lists the key
(else of its first row). tests/test_journal_index.py compares the two on journals with each of these
histories. A batch keeps its index open while it fits, then takes in only the rows appended
(:meth:`JournalIndex.update`) to write the table: the journal is read once.
"""

import hashlib
import json

import numpy as np

from ulyss_ann.fitting.batch import scratch
from ulyss_ann.fitting.batch.journal import JournalHealth
from ulyss_ann.fitting.batch.journal_resolve import resolve
from ulyss_ann.fitting.batch.scratch import insert_chunks, scratch_database
from ulyss_ann.spectra.compression import spectrum_name

__all__ = ["JournalIndex", "GivenFacts", "key_digest", "default_id"]

_MEMORY = "memory:"


def key_digest(key):
    """The 128-bit digest (16 bytes) that stands for journal key ``key`` (a text; any code point)."""
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def default_id(key):
    """The id a batch gives the spectrum of journal key ``key`` where no other spectrum's name collides."""
    return key[len(_MEMORY):] if key.startswith(_MEMORY) else spectrum_name(key)


class _Events:
    """One pass's events into the database's tables ``listed``, ``rows``, ``changed`` (see the module's text);
    each with its sequence number, in the file's order. An id is NULL with ``dflt`` 1 where it is the default
    one (:func:`default_id`: a survey's ids are), else JSON text."""

    def __init__(self, db, ids=True):
        self.db, self.ids, self.count = db, ids, 0
        self.statuses = {}  # text -> code
        self.listed, self.rows, self.changed = [], [], []
        db.execute("CREATE TABLE listed(seq INTEGER PRIMARY KEY, key BLOB, size INTEGER, mtime INTEGER, "
                   "dflt INTEGER, id TEXT)")
        db.execute("CREATE TABLE rows(seq INTEGER PRIMARY KEY, key BLOB, offset INTEGER, status INTEGER, "
                   "dflt INTEGER, id TEXT)")
        db.execute("CREATE TABLE changed(seq INTEGER PRIMARY KEY, key BLOB, size INTEGER, mtime INTEGER)")

    def take(self, offset, record):
        kind = record.get("kind")
        if kind == "inputs":
            stats = record.get("stats") or [None] * len(record["keys"])
            for key, ident, stat in zip(record["keys"], record["ids"], stats):
                self.listed.append((self._next(), key_digest(key), *(stat or (-1, 0)), *self._id(key, ident)))
        elif kind == "fingerprints":
            for key, stat in zip(record["keys"], record["stats"]):
                self.changed.append((self._next(), key_digest(key), *(stat or (-1, 0))))
        elif kind == "row":
            row = record["row"]
            code = self.statuses.setdefault(row["status"], len(self.statuses))
            key = row["file"]
            self.rows.append((self._next(), key_digest(key), offset, code, *self._id(key, row.get("id"))))
        if len(self.listed) + len(self.rows) + len(self.changed) >= scratch.CHUNK:
            self.flush()

    def flush(self):
        for table, events, places in (("listed", self.listed, 6), ("rows", self.rows, 6),
                                      ("changed", self.changed, 4)):
            if events:
                self.db.executemany(f"INSERT INTO {table} VALUES ({','.join('?' * places)})", events)
                events.clear()

    def _id(self, key, ident):
        if not self.ids or ident == default_id(key):
            return 1, None
        return 0, json.dumps(ident)  # as the journal has it (a number, a text with a lone surrogate…), given back so

    def _next(self):
        self.count += 1
        return self.count


#: The facts of an input (table ``facts``), each with its value where the run does not have it (None: no default).
_FACTS = {"in_run": None, "offset": -1, "status": -1, "failures": 0, "size": -1, "mtime": 0, "dflt": 1, "id": None}


class GivenFacts:
    """What the run knows of a chunk of inputs of a batch (:data:`~ulyss_ann.fitting.batch.scratch.CHUNK`), in
    the batch's order (:meth:`JournalIndex.given`): NumPy arrays, one value an input.

    Attributes
    ----------
    n : int64
        The input's place among the batch's inputs.
    in_run : bool
        Whether the run has it (False: new to the run; then the others hold their "none").
    offset : int64
        Where its last valid row starts in the journal; -1: none.
    status : int32
        That row's status, an index into :attr:`JournalIndex.statuses`; -1: none.
    failures : int32
        Rows ``failed: …`` since its file's fingerprint last changed.
    stats : int64 (n, 2)
        Its file's known fingerprint, [size, mtime_ns]; size -1: none known.
    ids : dict
        Input place -> the id the run gave it, where not the default one (:func:`default_id`).
    """

    def __init__(self, rows):
        """``rows``: (n, in_run, offset, status, failures, size, mtime, dflt, id) tuples, or a range of places
        new to the run."""
        if isinstance(rows, range):  # inputs new to the run
            self.n = np.arange(rows.start, rows.stop, dtype=np.int64)
            self.in_run, self.offset = np.zeros(len(rows), bool), np.full(len(rows), -1, np.int64)
            self.status, self.failures = np.full(len(rows), -1, np.int32), np.zeros(len(rows), np.int32)
            self.stats, self.ids = np.tile(np.array([-1, 0], np.int64), (len(rows), 1)), {}
            return
        columns = list(zip(*rows)) if rows else [()] * 9
        self.n = np.array(columns[0], np.int64)
        self.in_run = np.array(columns[1], bool)
        self.offset = np.array(columns[2], np.int64)
        self.status = np.array(columns[3], np.int32)
        self.failures = np.array(columns[4], np.int32)
        self.stats = np.array([columns[5], columns[6]], np.int64).T.reshape(-1, 2)
        self.ids = {n: json.loads(ident) for n, dflt, ident in zip(columns[0], columns[7], columns[8]) if not dflt}

    def recorded_id(self, k, key):
        """The id the run gave the k-th input of this chunk, whose key is ``key``."""
        n = int(self.n[k])
        return self.ids[n] if n in self.ids else default_id(key)


class JournalIndex(JournalHealth):
    """A journal's facts about each spectrum of its run, in a scratch database (see the module's text).

    :meth:`read` makes it; :meth:`match` tells it the batch's inputs, whose facts :meth:`given` then hands out
    in the batch's order; :meth:`row_offsets` lists where each row starts, in the run's order. An index is
    closed (:meth:`close`, or ``with``) when done with: its database goes with it. One made without a journal
    (``JournalIndex(run=…)``: a new run) knows no spectrum.

    Attributes
    ----------
    run : dict or None
        The run's record.
    statuses : list of str
        The rows' statuses, by code (:attr:`GivenFacts.status`).
    """

    def __init__(self, run=None):
        super().__init__()
        self.run, self.statuses, self._db, self._given, self._matched = run, [], None, 0, False
        self._events, self._end = None, 0

    @classmethod
    def read(cls, journal, ids=True):
        """The index of ``journal`` (a :class:`~ulyss_ann.fitting.batch.journal.Journal`), in one pass;
        ``ids`` False: without the ids, which the table does not need."""
        index = cls()
        index._db = scratch_database()
        try:
            index._events = _Events(index._db, ids)
            index._take(journal, index, 0, ids)
        except BaseException:
            index.close()
            raise
        return index

    @property
    def updatable(self):
        """Whether :meth:`update` can take in what was appended to the journal read (an index of nothing
        cannot)."""
        return self._db is not None

    def update(self, journal, ids=None):
        """Take in the records appended to ``journal`` since it was read (a run's rows), and resolve again: the
        facts :meth:`read` would give now, without reading the journal's first part again (``ids`` False:
        without the ids, as the table needs them; None: as read). The inputs are to be matched again
        (:meth:`match`). Of the journal's health, the tail is brought up to date (:attr:`end`,
        :attr:`torn_bytes`); the damaged lines listed stay those of the first read."""
        for table in ("facts", "given"):  # resolve() makes "spectra" again
            self._db.execute(f"DROP TABLE IF EXISTS {table}")
        self._matched = False
        health = JournalHealth()
        self._take(journal, health, self._end, self._events.ids if ids is None else ids)
        self.end, self.torn_bytes = health.end, health.torn_bytes
        self.damaged_inputs = self.damaged_inputs or health.damaged_inputs

    def _take(self, journal, health, start, ids):
        """Read ``journal``'s records from byte ``start`` (its lines' health into ``health``), and resolve
        (with the ids or not)."""
        self._db.execute("BEGIN")
        for offset, record in journal.records(health, start):
            if record.get("kind") == "run":
                self.run = record["config"] if self.run is None else self.run
            else:
                self._events.take(offset, record)
        self._events.flush()
        self.statuses = list(self._events.statuses)
        resolve(self._db, self.statuses, ids)
        self._db.execute("COMMIT")
        self._end = health.end - health.torn_bytes  # a torn last line is cut before anything is appended

    __eq__, __hash__ = object.__eq__, object.__hash__  # not the dataclass's: an index is equal to itself only

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Let the database go (its file with it)."""
        if self._db is not None:
            self._db.close()
            self._db = None

    def __repr__(self):
        return f"<JournalIndex: {len(self)} spectra, {self.fitted} with a row, {len(self.damaged)} damaged lines>"

    def __len__(self):
        """Spectra in the run."""
        return self._count("SELECT COUNT(*) FROM spectra")

    @property
    def fitted(self):
        """Spectra with a row (``ok`` or not)."""
        return self._count("SELECT COUNT(*) FROM spectra WHERE offset >= 0")

    def match(self, inputs):
        """Note the batch's inputs (a :class:`~ulyss_ann.fitting.batch.sources.BatchInputs`, or their keys in
        order, distinct), for :meth:`given`, :meth:`not_given` and :meth:`new_inputs`."""
        keys = inputs.keys() if hasattr(inputs, "keys") else inputs
        if self._db is None:  # no journal: every input is new to the run
            self._given = len(inputs) if hasattr(inputs, "__len__") else sum(1 for _ in keys)
            return
        db = self._db
        for table in ("given", "facts"):
            db.execute(f"DROP TABLE IF EXISTS {table}")
        db.execute("CREATE TABLE given(n INTEGER PRIMARY KEY, key BLOB)")
        db.execute(f"CREATE TABLE facts(n INTEGER PRIMARY KEY, {', '.join(_FACTS)})")
        db.execute("BEGIN")
        insert_chunks(db, "INSERT INTO given VALUES (?, ?)", enumerate(key_digest(key) for key in keys))
        db.execute("CREATE INDEX given_key ON given(key)")
        # each input's facts, found in the keys' order (the pages of both tables read in turn, not at random),
        # kept in the inputs' order: read in turn too, by each pass over them
        db.execute(f"INSERT INTO facts SELECT given.n, spectra.key IS NOT NULL, "
                   f"{', '.join(f'COALESCE({name}, {none})' for name, none in _FACTS.items() if none is not None)}, id "
                   "FROM given INDEXED BY given_key LEFT JOIN spectra ON spectra.key = given.key ORDER BY given.n")
        db.execute("COMMIT")
        self._given, self._matched = self._count("SELECT COUNT(*) FROM given"), True

    def given(self):
        """The facts of the inputs matched (:meth:`match`), a chunk at a time in their order: each a
        :class:`GivenFacts`."""
        if self._db is None:
            for start in range(0, self._given, scratch.CHUNK):
                yield GivenFacts(range(start, min(start + scratch.CHUNK, self._given)))
            return
        cursor = self._db.execute(f"SELECT n, {', '.join(_FACTS)} FROM facts ORDER BY n")
        while rows := cursor.fetchmany(scratch.CHUNK):
            yield GivenFacts(rows)

    def not_given(self):
        """(how many of the run's spectra are not among the inputs matched, the digest of the first in the
        run's order or None)."""
        missing = len(self) - self._count("SELECT COUNT(*) FROM facts WHERE in_run")  # the inputs are distinct
        if not missing:
            return 0, None
        first = self._db.execute("SELECT key FROM spectra WHERE key NOT IN (SELECT key FROM given) "
                                 "ORDER BY first LIMIT 1").fetchone()
        return missing, first[0]

    def new_inputs(self):
        """The places of the inputs matched that the run does not have, in order (a list)."""
        if self._db is None:
            return list(range(self._given))
        return [n for (n,) in self._db.execute("SELECT n FROM facts WHERE NOT in_run ORDER BY n")]

    def row_offsets(self, block=None):
        """Where each spectrum's row starts, for the spectra that have one, in the run's order: int64 arrays of
        ``block`` offsets at most."""
        if self._db is None:
            return
        cursor = self._db.execute("SELECT offset FROM spectra WHERE offset >= 0 ORDER BY first")
        while rows := cursor.fetchmany(block or scratch.CHUNK):
            yield np.fromiter((offset for (offset,) in rows), np.int64, count=len(rows))

    def note_stats(self, keys, stats):
        """New fingerprints (``stats``: [size, mtime_ns] pairs) of the spectra of journal ``keys``: one that
        differs from a known one sets aside the spectrum's rows (as a ``fingerprints`` record does when read)."""
        db = self._db
        db.execute("BEGIN")
        tables = [("spectra", "key = ?1")] + [("facts", "n = (SELECT n FROM given WHERE key = ?1)")] * self._matched
        for table, where in tables:
            set_aside = "size >= 0 AND ?2 >= 0 AND (size != ?2 OR mtime != ?3)"
            insert_chunks(db, f"UPDATE {table} SET offset = CASE WHEN {set_aside} THEN -1 ELSE offset END, "
                          f"status = CASE WHEN {set_aside} THEN -1 ELSE status END, "
                          f"failures = CASE WHEN {set_aside} THEN 0 ELSE failures END, "
                          f"size = ?2, mtime = ?3 WHERE {where}",
                          ((key_digest(key), int(size), int(mtime)) for key, (size, mtime) in zip(keys, stats)))
        db.execute("COMMIT")

    def key_of(self, journal, digest):
        """The text of the key whose digest is ``digest``, found again in ``journal`` (for a message: one pass)."""
        for _, record in journal.records(JournalHealth()):
            for key in [record["row"]["file"]] if record.get("kind") == "row" else record.get("keys", []):
                if key_digest(key) == digest:
                    return key
        return None

    def facts(self):
        """Each spectrum's facts in the run's order, as (digest, offset, status code, failures, (size, mtime),
        whether its id is the default one, its id where not): for tests and reports."""
        if self._db is None:
            return
        yield from ((key, offset, status, failures, (size, mtime), bool(dflt), None if dflt else json.loads(ident))
                    for key, offset, status, failures, size, mtime, dflt, ident in self._db.execute(
                        "SELECT key, offset, status, failures, size, mtime, dflt, id FROM spectra ORDER BY first"))

    def _count(self, query):
        return self._db.execute(query).fetchone()[0] if self._db is not None else 0
