"""A journal read as columns: what resuming a survey and writing its table need, ~60 bytes a spectrum.

:meth:`Journal.read <ulyss_ann.fitting.batch.journal.Journal.read>` keeps every row whole in dicts keyed by
file (~10 KB a spectrum). A survey's driver needs far less: for each spectrum of the run, in the run's order,
where its last valid row starts in the file, that row's status, the machinery failures recorded since its file
last changed, the file's fingerprint and the id the run gave it. :class:`JournalIndex` holds those as NumPy
columns, and knows each spectrum by the 128-bit BLAKE2b digest of its key instead of the key's text (two of a
run's n files share a digest with odds of n²/2¹²⁹, those of two git objects' SHA-256), so that no Python object
is held per spectrum (scripts/bench_survey --driver-rows measures it).

It is read in one pass (:meth:`Journal.records <ulyss_ann.fitting.batch.journal.Journal.records>`): each
record's events — a key listed by an ``inputs`` record, a row, a new fingerprint — go into flat arrays, then
are resolved at once, by sorting, to the facts :class:`~ulyss_ann.fitting.batch.journal.JournalState` holds:
the run's order (each key where it first appears, a row's key too when its inputs record is damaged), each
spectrum's last valid row, the rows set aside by a fingerprint that changed (and the failures with them), the
id of the last inputs record that lists the key (else of its first row). tests/test_journal_index.py
compares the two on journals with each of these histories.
"""

import array
import hashlib

import numpy as np

from ulyss_ann.fitting.batch.journal import JournalHealth
from ulyss_ann.spectra.compression import spectrum_name

__all__ = ["JournalIndex", "key_digests", "first_of_each", "take"]

_MEMORY = "memory:"


def _digest(key):
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _pairs(raw):
    """Concatenated 16-byte digests as an (n, 2) uint64 array (on ``raw`` itself: no copy)."""
    return np.frombuffer(raw, "<u8").reshape(-1, 2)


def key_digests(keys, count=-1):
    """The 128-bit digest of each of ``keys`` (journal keys: texts, any iterable; ``count``: how many, when
    known), an (n, 2) uint64 array: 16 bytes a key, no object held for one."""
    return np.fromiter((_digest(key) for key in keys), "S16", count=count).view("<u8").reshape(-1, 2)


def default_id(key):
    """The id a batch gives the spectrum of journal key ``key`` where no other spectrum's name collides."""
    return key[len(_MEMORY):] if key.startswith(_MEMORY) else spectrum_name(key)


def _sorted_keys(digests):
    """The order that sorts ``digests`` ((n, 2) uint64), and whether each sorted one differs from the one before."""
    order = np.lexsort((digests[:, 1], digests[:, 0]))
    ordered = digests[order]
    new = np.ones(len(order), bool)
    new[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    return order, ordered, new


def first_of_each(digests):
    """The index of the first of each distinct key among ``digests`` ((n, 2) uint64), in order; None when
    they are all distinct."""
    order, _, new = _sorted_keys(digests)  # a stable sort: each key's first comes first
    return None if new.all() else np.sort(order[new])


def _lookup(keys, queries):
    """The index in ``keys`` (distinct digests, sorted) of each of ``queries``, -1 where absent."""
    out = np.full(len(queries), -1, np.int64)
    if not len(keys) or not len(queries):
        return out
    left = np.searchsorted(keys[:, 0], queries[:, 0], "left")
    span = np.searchsorted(keys[:, 0], queries[:, 0], "right") - left
    one = np.flatnonzero(span == 1)
    hit = one[keys[left[one], 1] == queries[one, 1]]
    out[hit] = left[hit]
    for j in np.flatnonzero(span > 1):  # two keys whose first 64 bits agree (~n²/2⁶⁵): their other half decides
        k = left[j] + np.searchsorted(keys[left[j]:left[j] + span[j], 1], queries[j, 1])
        if k < left[j] + span[j] and keys[k, 1] == queries[j, 1]:
            out[j] = k
    return out


def take(values, index, fill):
    """``values[index]``, ``fill`` where ``index`` is -1 (``values`` may be empty)."""
    out = np.full(index.shape + values.shape[1:], fill, values.dtype)
    out[index >= 0] = values[index[index >= 0]]
    return out


def _last(where, count):
    """For each of ``count`` keys, the last event (index) of ``where`` (the key of each event, -1: none)
    naming it, or -1."""
    out = np.full(count + 1, -1, np.int64)
    np.maximum.at(out, where, np.arange(len(where)))  # where -1 lands in the spare last place
    return out[:count]


class _Events:
    """One pass's events, in flat arrays (see the module's text): keys listed, rows, new fingerprints."""

    def __init__(self, ids=True):
        self.ids = ids  # whether ids are noted (the table does not need them)
        self.count = 0  # every event's sequence number, in the file's order
        self.listed, self.rows, self.changed = bytearray(), bytearray(), bytearray()
        self.listed_seq, self.row_seq, self.changed_seq = array.array("q"), array.array("q"), array.array("q")
        self.listed_stat, self.changed_stat = array.array("q"), array.array("q")  # size, mtime_ns pairs; size -1: none
        self.listed_default, self.row_default = array.array("b"), array.array("b")  # the id is default_id(key)
        self.listed_ids, self.row_ids = {}, {}  # event -> its id, where not the default
        self.row_offset, self.row_status = array.array("q"), array.array("i")
        self.statuses = {}  # text -> code

    def take(self, offset, record):
        kind = record.get("kind")
        if kind == "inputs":
            stats = record.get("stats") or [None] * len(record["keys"])
            for key, ident, stat in zip(record["keys"], record["ids"], stats):
                self._listed(key, ident, stat)
        elif kind == "fingerprints":
            for key, stat in zip(record["keys"], record["stats"]):
                self.changed += _digest(key)
                self.changed_seq.append(self._next())
                self.changed_stat.extend(stat or (-1, 0))
        elif kind == "row":
            row = record["row"]
            key, ident = row["file"], row.get("id")
            self.rows += _digest(key)
            self.row_seq.append(self._next())
            self.row_offset.append(offset)
            self.row_status.append(self.statuses.setdefault(row["status"], len(self.statuses)))
            self._note_id(self.row_default, self.row_ids, key, ident)

    def _listed(self, key, ident, stat):
        self.listed += _digest(key)
        self.listed_seq.append(self._next())
        self.listed_stat.extend(stat or (-1, 0))
        self._note_id(self.listed_default, self.listed_ids, key, ident)

    def _note_id(self, defaults, exceptions, key, ident):
        if not self.ids:
            return
        default = ident == default_id(key)
        if not default:
            exceptions[len(defaults)] = ident
        defaults.append(default)

    def _next(self):
        self.count += 1
        return self.count


class JournalIndex(JournalHealth):
    """A journal's facts as columns over the run's spectra (see the module's text).

    A spectrum's *position* (:meth:`positions`) indexes the columns; :attr:`run_order` lists the positions in
    the run's order.

    Attributes (NumPy arrays, one value a spectrum of the run)
    ----------------------------------------------------------
    offsets : int64
        Where the spectrum's last valid row starts in the file (:meth:`Journal.rows_at
        <ulyss_ann.fitting.batch.journal.Journal.rows_at>`); -1: no row.
    status : int32
        That row's status, as an index into ``statuses`` (texts); -1: no row.
    failures : int32
        Rows ``failed: …`` since the file's fingerprint last changed.
    stats : int64 (n, 2)
        The file's fingerprint, [size, mtime_ns]; size -1: none known.
    run_order : int64
        The positions in the run's order.
    given : int64 or None
        After :meth:`match`: the position of each input of this batch, -1 for one not in the run.
    """

    def __init__(self, run=None):
        super().__init__()
        self.run = run
        self.statuses = []
        self.given = None
        self._keys = np.zeros((0, 2), np.uint64)  # the digests, sorted: a spectrum's position is its index here
        self.run_order = np.zeros(0, np.int64)
        self.offsets = np.zeros(0, np.int64)
        self.status = np.zeros(0, np.int32)
        self.failures = np.zeros(0, np.int32)
        self.stats = np.zeros((0, 2), np.int64)
        self._default_id = np.zeros(0, bool)
        self._ids = {}  # position -> id, where not default_id(key)

    @classmethod
    def read(cls, journal, ids=True):
        """The index of ``journal`` (a :class:`~ulyss_ann.fitting.batch.journal.Journal`), in one pass;
        ``ids`` False: without the ids (:meth:`recorded_id`), which the table does not need."""
        index, events = cls(), _Events(ids)
        for offset, record in journal.records(index):
            if record.get("kind") == "run":
                index.run = record["config"] if index.run is None else index.run
            else:
                events.take(offset, record)
        index._resolve(events)
        return index

    __eq__, __hash__ = object.__eq__, object.__hash__  # not the dataclass's: an index is equal to itself only

    def __repr__(self):
        return f"<JournalIndex: {len(self)} spectra, {self.fitted} with a row, {len(self.damaged)} damaged lines>"

    def __len__(self):
        """Spectra in the run."""
        return len(self.offsets)

    @property
    def fitted(self):
        """Spectra with a row (``ok`` or not)."""
        return int(np.count_nonzero(self.offsets >= 0))

    def positions(self, keys):
        """The position of each of ``keys`` (journal keys, any iterable), -1 for one not in the run."""
        return _lookup(self._keys, key_digests(keys))

    def match(self, inputs):
        """Note the position of each of ``inputs`` (a :class:`~ulyss_ann.fitting.batch.sources.BatchInputs`)
        as :attr:`given`, and return it."""
        self.given = self.positions(inputs.keys())
        return self.given

    def recorded_id(self, position, key):
        """The id the run gave the spectrum at ``position``, whose key is ``key``."""
        return default_id(key) if self._default_id[position] else self._ids[position]

    def row_offsets(self):
        """Where each spectrum's row starts, for the spectra that have one, in the run's order."""
        offsets = self.offsets[self.run_order]
        return offsets[offsets >= 0]

    def note_stats(self, positions, stats):
        """New fingerprints (``stats``: [size, mtime_ns] pairs) of the spectra at ``positions``: one that differs
        from a known one sets aside the spectrum's rows (as a ``fingerprints`` record does when read)."""
        positions, stats = np.asarray(positions, np.int64), np.asarray(stats, np.int64).reshape(-1, 2)
        old = self.stats[positions]
        changed = positions[(old[:, 0] >= 0) & (stats[:, 0] >= 0) & (old != stats).any(axis=1)]
        self.offsets[changed], self.status[changed], self.failures[changed] = -1, -1, 0
        self.stats[positions] = stats

    def key_of(self, journal, position):
        """The text of the key at ``position``, found again in ``journal`` (for a message: one pass)."""
        wanted = self._keys[position].tobytes()
        for _, record in journal.records(JournalHealth()):
            for key in [record["row"]["file"]] if record.get("kind") == "row" else record.get("keys", []):
                if _digest(key) == wanted:
                    return key
        return None

    def _resolve(self, events):
        """Turn one pass's events into the columns (see the module's text); each event array let go once used:
        the columns (~60 bytes a spectrum) and the events (~80) are the most held at once."""
        listed, listed_seq = _pairs(events.listed), np.frombuffer(events.listed_seq, np.int64)
        # the keys listed: sorted, each once; the key of each listed event
        order, ordered, new = _sorted_keys(listed)
        keys = ordered[new]
        on_list = np.empty(len(order), np.int64)
        on_list[order] = np.cumsum(new) - 1
        del order, ordered, new, listed
        events.listed = None
        rows = _pairs(events.rows)
        on_row = _lookup(keys, rows)
        if (on_row < 0).any():  # rows whose inputs record is damaged: their keys join the run too
            keys, on_list = _with_keys(keys, on_list, rows[on_row < 0])
            on_row = _lookup(keys, rows)
        del rows
        events.rows = None
        count, row_seq = len(keys), np.frombuffer(events.row_seq, np.int64)
        # the run's order: each key where it first appears, listed or as a row
        first_seq = np.full(count, np.iinfo(np.int64).max)
        np.minimum.at(first_seq, on_list, listed_seq)
        np.minimum.at(first_seq, on_row, row_seq)
        self.run_order = np.argsort(first_seq, kind="stable")
        del first_seq
        last_listed = _last(on_list, count)
        # fingerprints: the last known, and the rows set aside where a known one changed
        listed_stat = np.frombuffer(events.listed_stat, np.int64).reshape(-1, 2)
        stat = take(listed_stat, last_listed, -1)
        stat[last_listed < 0, 1] = 0
        cut = np.zeros(count, np.int64)
        if len(events.changed):
            stat, cut = self._changes(events, keys, on_list, listed_seq, listed_stat, stat, cut)
        del listed_stat, listed_seq
        events.listed_seq = events.listed_stat = None
        # each spectrum's last row written after its cut, and the failures among them
        valid = row_seq > cut[on_row]
        del cut
        last = _last(np.where(valid, on_row, -1), count)
        codes = np.frombuffer(events.row_status, np.int32)
        self.offsets = take(np.frombuffer(events.row_offset, np.int64), last, -1)
        self.status = take(codes, last, -1)
        self.statuses = list(events.statuses)
        failed = np.isin(codes, [code for code, text in enumerate(self.statuses) if text.startswith("failed:")])
        self.failures = np.bincount(on_row[valid & failed], minlength=count).astype(np.int32)
        self._keys, self.stats = keys, stat
        if events.ids:  # the last inputs record's, else the first row's
            first_row = np.full(count, len(row_seq), np.int64)
            np.minimum.at(first_row, on_row, np.arange(len(row_seq)))
            first_row[first_row == len(row_seq)] = -1
            from_list = last_listed >= 0
            self._default_id = np.where(from_list, take(np.frombuffer(events.listed_default, np.int8), last_listed, 0),
                                        take(np.frombuffer(events.row_default, np.int8), first_row, 0)).astype(bool)
            self._ids = {int(k): events.listed_ids[last_listed[k]] if from_list[k] else events.row_ids[first_row[k]]
                         for k in np.flatnonzero(~self._default_id)}

    @staticmethod
    def _changes(events, keys, on_list, listed_seq, listed_stat, stat, cut):
        """The fingerprints after the ``fingerprints`` records, and each key's cut: its rows written before the
        last record that changed its known fingerprint are set aside."""
        on_change = _lookup(keys, _pairs(events.changed))
        known = on_change >= 0  # a fingerprint of a key neither listed nor with a row: nothing to set aside
        change_seq = np.frombuffer(events.changed_seq, np.int64)[known]
        change_stat = np.frombuffer(events.changed_stat, np.int64).reshape(-1, 2)[known]
        where = np.concatenate([on_list, on_change[known]])
        seq = np.concatenate([listed_seq, change_seq])
        values = np.concatenate([listed_stat, change_stat])
        is_change = np.concatenate([np.zeros(len(on_list), bool), np.ones(len(change_seq), bool)])
        order = np.lexsort((seq, where))
        where, seq, values, is_change = where[order], seq[order], values[order], is_change[order]
        same = np.zeros(len(order), bool)
        same[1:] = where[1:] == where[:-1]
        before = np.roll(values, 1, axis=0)
        sets_aside = is_change & same & (before[:, 0] >= 0) & (values[:, 0] >= 0) & (before != values).any(axis=1)
        np.maximum.at(cut, where[sets_aside], seq[sets_aside])
        last = _last(where, len(keys))
        stat = stat.copy()
        stat[last >= 0] = values[last[last >= 0]]
        return stat, cut


def _with_keys(keys, on_list, more):
    """``keys`` (sorted, distinct) joined by the distinct ones of ``more``, sorted again, and ``on_list``
    (indices into ``keys``) made indices into the new keys."""
    _, ordered, new = _sorted_keys(more)
    order, joined, _ = _sorted_keys(np.concatenate([keys, ordered[new]]))
    moved = np.empty(len(order), np.int64)
    moved[order] = np.arange(len(order))
    return joined, moved[on_list]
