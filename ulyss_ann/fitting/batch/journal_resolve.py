"""The SQL that turns a journal's events into each spectrum's facts, in a scratch database.

:class:`~ulyss_ann.fitting.batch.journal_index.JournalIndex` puts each record's events in three tables —
``listed`` (a key listed by an ``inputs`` record: its fingerprint and id), ``rows`` (a row: where its line starts,
its status code, its id) and ``changed`` (a key's new fingerprint) — each event with its sequence number in the
file. :func:`resolve` makes of them the table ``spectra``, one row a spectrum of the run: the facts
:class:`~ulyss_ann.fitting.batch.journal.JournalState` holds (the run's order, the last valid row, failures
since the file's fingerprint last changed, the last fingerprint, the id). The events are kept, so that a
journal grown since can be resolved again (:meth:`JournalIndex.update
<ulyss_ann.fitting.batch.journal_index.JournalIndex.update>`).

An id is NULL with ``dflt`` 1 where it is the default one; otherwise it is JSON text.
"""

__all__ = ["resolve"]

#: The first resolving steps (see the module's text): the events' indexes, and the run's spectra.
_RESOLVE = (
    "CREATE INDEX IF NOT EXISTS listed_key ON listed(key, seq)",
    "CREATE INDEX IF NOT EXISTS rows_key ON rows(key, seq)",
    # the run's spectra: each key where it first appears, listed or as a row (its inputs record damaged)
    "CREATE TABLE spectra(key BLOB PRIMARY KEY, first INTEGER, size INTEGER DEFAULT -1, mtime INTEGER DEFAULT 0, "
    "cut INTEGER DEFAULT 0, offset INTEGER DEFAULT -1, status INTEGER DEFAULT -1, failures INTEGER DEFAULT 0, "
    "dflt INTEGER DEFAULT 1, id TEXT) WITHOUT ROWID",
    "INSERT INTO spectra(key, first) SELECT key, MIN(seq) FROM listed GROUP BY key",
    "INSERT INTO spectra(key, first) SELECT key, MIN(seq) FROM rows WHERE true GROUP BY key "
    "ON CONFLICT(key) DO UPDATE SET first = MIN(first, excluded.first)",
)

#: Each step below fills columns of ``spectra`` from a query's rows (key first, one row a key) through a temporary
#: table (``part``: its columns, then the columns set), as SQLite before 3.33 can (no UPDATE … FROM). Where a query
#: takes a column beside MAX()/MIN(), SQLite takes it from that row (a "bare column"), kept as it is, not in a
#: subquery that SQLite could flatten.

#: The fingerprint and id of the last inputs record that lists the key; of a key never listed, the id of its first
#: row. (Not for the table alone: it needs neither.)
_STATS_AND_IDS = (
    (("last", "size", "mtime", "dflt", "id"), ("size", "mtime", "dflt", "id"),
     "SELECT key, MAX(seq), size, mtime, dflt, id FROM listed GROUP BY key"),
    (("first_row", "dflt", "id"), ("dflt", "id"),
     "SELECT key, MIN(seq), dflt, id FROM rows WHERE key NOT IN (SELECT key FROM listed) GROUP BY key"),
)

#: With ``fingerprints`` records: each key's cut (its rows written before the last record that changed its known
#: fingerprint are set aside: one whose fingerprint before it, listed or changed, is known and differs) and its
#: last fingerprint, listed or changed.
_FINGERPRINTS = (
    "CREATE TEMP TABLE fingerprints AS SELECT seq, key, size, mtime, change FROM ("
    "SELECT seq, key, size, mtime, 0 AS change FROM listed WHERE key IN (SELECT key FROM changed) "
    "UNION ALL SELECT seq, key, size, mtime, 1 FROM changed WHERE key IN (SELECT key FROM spectra))",
    "CREATE INDEX temp.fingerprints_key ON fingerprints(key, seq)",
)
_CHANGES = (
    (("cut",), ("cut",),
     "SELECT key, MAX(seq) FROM (SELECT key, seq, size, mtime, change, "
     "(SELECT size FROM fingerprints AS b WHERE b.key = f.key AND b.seq < f.seq ORDER BY seq DESC LIMIT 1) AS psize, "
     "(SELECT mtime FROM fingerprints AS b WHERE b.key = f.key AND b.seq < f.seq ORDER BY seq DESC LIMIT 1) "
     "AS pmtime FROM fingerprints AS f) "
     "WHERE change AND psize >= 0 AND size >= 0 AND (psize != size OR pmtime != mtime) GROUP BY key"),
    (("last", "size", "mtime"), ("size", "mtime"), "SELECT key, MAX(seq), size, mtime FROM fingerprints GROUP BY key"),
)

#: Each spectrum's last row written after its cut, and the failures among them (``{after_cut}``: the join and
#: the condition that keep the rows after each key's cut; none where no fingerprint changed).
_ROWS = (("last", "offset", "status", "failures"), ("offset", "status", "failures"),
         "SELECT rows.key, MAX(rows.seq), rows.offset, rows.status, SUM(rows.status IN ({failed})) "
         "FROM rows {after_cut} GROUP BY rows.key")
_AFTER_CUT = "JOIN spectra ON spectra.key = rows.key WHERE rows.seq > spectra.cut"


def _set_from(db, part, columns, query):
    """Set ``columns`` of table ``spectra`` from ``query``'s rows (key, then ``part``, the columns named), through
    a temporary table: see above."""
    db.execute("DROP TABLE IF EXISTS temp.part")
    db.execute(f"CREATE TEMP TABLE part(key BLOB PRIMARY KEY, {', '.join(part)}) WITHOUT ROWID")
    db.execute(f"INSERT INTO part {query}")
    db.execute(f"UPDATE spectra SET ({', '.join(columns)}) = (SELECT {', '.join(columns)} FROM part "
               "WHERE part.key = spectra.key) WHERE key IN (SELECT key FROM part)")


def resolve(db, statuses, ids=True):
    """Turn the events of ``db`` into its table ``spectra`` (see the module's text); ``statuses``: the texts of
    the status codes; without ``ids``, nor the fingerprints where none changed (a table needs neither)."""
    for table in ("spectra", "temp.part", "temp.fingerprints"):
        db.execute(f"DROP TABLE IF EXISTS {table}")
    changes = db.execute("SELECT 1 FROM changed LIMIT 1").fetchone() is not None
    for step in _RESOLVE:
        db.execute(step)
    for step in _STATS_AND_IDS if ids or changes else ():
        _set_from(db, *step)
    if changes:
        for step in _FINGERPRINTS:
            db.execute(step)
        for step in _CHANGES:
            _set_from(db, *step)
    failed = ",".join(str(code) for code, text in enumerate(statuses) if text.startswith("failed:"))
    part, columns, query = _ROWS
    _set_from(db, part, columns, query.format(failed=failed, after_cut=_AFTER_CUT if changes else ""))
    db.execute("CREATE INDEX spectra_first ON spectra(first)")
