"""Scratch databases: what a survey's driver works out about 10⁶ spectra, on disk rather than in memory.

The batch's journal (:mod:`~ulyss_ann.fitting.batch.journal`) is the record; what the driver must find in it
and in the spectra given — each spectrum's last row, the inputs new to the run, the same file given twice — is
worked out in a private SQLite database on the temporary folder's disk (:func:`scratch_database`: SQLite's
own temporary database, deleted when closed; ``TMPDIR``, or ``SQLITE_TMPDIR`` for SQLite alone), whose page
cache and sorter are bounded (:data:`CACHE_KIB`), and handed to Python :data:`CHUNK` rows at a time
(:func:`insert_chunks` going in): the driver's memory is the same at 10⁴ spectra and at 10⁶.
"""

import sqlite3

from ulyss_ann.errors import UlyssAnnError

__all__ = ["scratch_database", "insert_chunks", "CHUNK", "CACHE_KIB", "MIN_SQLITE"]

#: Spectra inserted, fetched or compared at a time (a few MB of Python objects at most).
CHUNK = 10_000
#: SQLite's page cache of a scratch database, KiB (its sorter spills to the temporary folder beyond it).
CACHE_KIB = 8_192
#: The oldest SQLite whose SQL the batch writes (upsert: 3.24; row values: 3.15; no UPDATE … FROM, 3.33).
MIN_SQLITE = (3, 24, 0)


def scratch_database():
    """A private SQLite database on the temporary folder's disk, deleted when closed, that holds no more than
    :data:`CACHE_KIB` of its pages in memory; nothing in it needs to survive a crash (no rollback journal)."""
    if sqlite3.sqlite_version_info < MIN_SQLITE:
        raise UlyssAnnError(f"this Python's SQLite is {sqlite3.sqlite_version}; ulyss_ann's batches need "
                            f"{'.'.join(map(str, MIN_SQLITE))} or newer: use a Python built with a newer SQLite "
                            "(e.g. conda's or pyenv's)")
    db = sqlite3.connect("", isolation_level=None)  # "": a temporary on-disk database (SQLite's own)
    for pragma in (f"cache_size=-{CACHE_KIB}", "temp_store=FILE", "journal_mode=OFF", "synchronous=OFF"):
        db.execute(f"PRAGMA {pragma}")
    return db


def insert_chunks(db, statement, values):
    """``statement`` (an INSERT or UPDATE) executed for each of ``values`` (any iterable), :data:`CHUNK` at a
    time."""
    it = iter(values)
    while True:
        chunk = [value for _, value in zip(range(CHUNK), it)]
        if not chunk:
            return
        db.executemany(statement, chunk)
