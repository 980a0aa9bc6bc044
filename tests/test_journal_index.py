"""The journal indexed on disk (JournalIndex) holds the facts of the journal read whole (JournalState): the run's
order, each spectrum's last row, its failures, its fingerprint and id — on every history a journal can have."""

import os
import zlib

import numpy as np
import pytest

from ulyss_ann.fitting.batch import scratch
from ulyss_ann.fitting.batch.journal import Journal
from ulyss_ann.fitting.batch.journal_index import JournalIndex, default_id, key_digest

STATUSES = ["ok", "ok", "error: no overlap", "failed: the worker died (KilledWorker)", "failed: lost"]


def facts_of_state(state):
    return [(key, state.ids.get(key), state.offsets.get(key, -1), state.rows[key]["status"] if key in state.rows
             else None, state.failures.get(key, 0), tuple(state.stats[key]) if state.stats.get(key) else None)
            for key in state.inputs]


def facts_of_index(index, keys):
    facts = list(index.facts())
    assert [fact[0] for fact in facts] == [key_digest(key) for key in keys]  # the run's order
    assert len(index) == len(keys)
    return [(key, default_id(key) if dflt else ident, offset, index.statuses[status] if status >= 0 else None,
             failures, stat if stat[0] >= 0 else None)
            for key, (_, offset, status, failures, stat, dflt, ident) in zip(keys, facts)]


def fact(index, key):
    """The facts of ``key`` as a dict (offset, status, failures, stats, id)."""
    got = next(f for f in index.facts() if f[0] == key_digest(key))
    return dict(offset=got[1], status=index.statuses[got[2]] if got[2] >= 0 else None, failures=got[3],
                stats=got[4], id=default_id(key) if got[5] else got[6])


def same_facts(journal):
    state, index = journal.read(), JournalIndex.read(journal)
    assert index.run == state.run
    assert (index.damaged, index.torn_bytes, index.damaged_inputs, index.legacy) == \
        (state.damaged, state.torn_bytes, state.damaged_inputs, state.legacy)
    assert facts_of_index(index, state.inputs) == facts_of_state(state)
    assert index.fitted == len(state.rows)
    offsets = [int(offset) for block in index.row_offsets(block=3) for offset in block]
    with JournalIndex.read(journal, ids=False) as lean:  # the table's: the same rows, in the same order
        assert [int(offset) for block in lean.row_offsets() for offset in block] == offsets
    assert journal.rows_at(offsets) == [state.rows[k] for k in state.inputs if k in state.rows]
    return state, index


def row(key, ident, status="ok", teff=5000.0):
    return {"id": ident, "file": key, "Teff": teff, "status": status, "flag": ""}


def damage(journal, number):
    """Spoil the checksum of line ``number`` (1-based)."""
    lines = open(journal.path, "rb").read().splitlines(keepends=True)
    lines[number - 1] = lines[number - 1].replace(b'{"crc32":"', b'{"crc32":"f', 1).replace(b'","record"', b'"record"')
    open(journal.path, "wb").write(b"".join(lines))


def test_a_run_fitted_retried_and_grown(tmp_path):
    journal = Journal(tmp_path / "r.ecsv.journal.jsonl")
    keys = [f"/data/night{i % 3}/star{i}.fits" for i in range(12)]
    journal.start({"model": "m"}, [(k, f"star{i}") for i, k in enumerate(keys[:8])],
                  {k: [100 + i, 10**18 + i] for i, k in enumerate(keys[:8])})
    journal.append_many([row(k, f"star{i}") for i, k in enumerate(keys[:5])])
    journal.append(row(keys[5], "star5", STATUSES[3]))
    journal.append(row(keys[5], "star5", STATUSES[4]))
    journal.append(row(keys[2], "star2", STATUSES[2]))         # a spectrum's last row counts
    journal.add_inputs([(k, f"night{i % 3}/star{i}") for i, k in enumerate(keys[8:], start=8)])  # ids with folders
    journal.append(row(keys[9], "night0/star9"))
    journal.append(row(keys[5], "star5"))
    _, index = same_facts(journal)
    assert fact(index, keys[2])["status"] == STATUSES[2] and fact(index, keys[5])["failures"] == 2
    assert fact(index, keys[6])["offset"] == -1 and fact(index, keys[9])["stats"][0] == -1
    assert fact(index, keys[9])["id"] == "night0/star9"


def test_fingerprints_that_change_set_the_rows_before_them_aside(tmp_path):
    journal = Journal(tmp_path / "r.ecsv.journal.jsonl")
    keys = [f"/d/s{i}.fits" for i in range(6)]
    journal.start({"model": "m"}, [(k, f"s{i}") for i, k in enumerate(keys)],
                  {k: [10, 20] for k in keys[:4]})                 # s4, s5 without fingerprints
    journal.append_many([row(k, f"s{i}", STATUSES[3]) for i, k in enumerate(keys)])
    journal.append_many([row(k, f"s{i}") for i, k in enumerate(keys[:3])])
    journal.add_fingerprints({keys[0]: [11, 20], keys[1]: [10, 20], keys[4]: [7, 8], "/d/other.fits": [1, 2]})
    journal.append(row(keys[3], "s3", STATUSES[4]))
    journal.add_fingerprints({keys[3]: [10, 21], keys[4]: [7, 9]})
    journal.append(row(keys[4], "s4"))
    state, index = same_facts(journal)
    assert keys[0] not in state.rows and fact(index, keys[0])["offset"] == -1  # set aside
    assert fact(index, keys[0])["failures"] == 0
    assert fact(index, keys[1])["failures"] == 1 and fact(index, keys[3])["failures"] == 0
    assert fact(index, keys[4])["stats"] == (7, 9)


def test_rows_whose_inputs_record_is_damaged_still_count(tmp_path):
    journal = Journal(tmp_path / "r.ecsv.journal.jsonl")
    first, second = [f"/d/a{i}.fits" for i in range(3)], [f"memory:b{i}" for i in range(3)]
    journal.start({"model": "m"}, [(k, f"a{i}") for i, k in enumerate(first)])
    journal.add_inputs([(k, f"b{i}") for i, k in enumerate(second)])
    journal.append_many([row(second[1], "b1"), row(first[0], "a0"), row(second[0], "other id"),
                         row(second[1], "b1", STATUSES[3])])
    journal.add_inputs([(second[0], "b0")])                        # listed again after its row: the list's id
    damage(journal, 3)                                             # the second inputs record
    with open(journal.path, "ab") as handle:
        handle.write(b'{"crc32":"12')                              # a torn last line
    state, index = same_facts(journal)
    assert state.damaged_inputs and index.torn_bytes > 0 and state.inputs[3:] == [second[1], second[0]]
    assert fact(index, second[0])["id"] == "b0"
    journal.repair(index)                                          # as a resume does, then a row appended
    journal.append(row(first[1], "a1"))
    index.update(journal)
    with JournalIndex.read(journal) as fresh:
        assert list(index.facts()) == list(fresh.facts()) and fact(index, first[1])["offset"] >= 0
    index.close()


def test_an_empty_journal_and_one_of_the_run_alone(tmp_path):
    journal = Journal(tmp_path / "r.ecsv.journal.jsonl")
    index = JournalIndex.read(journal)
    assert index.run is None and len(index) == 0
    index.match(["/x.fits"])
    assert [facts.in_run.tolist() for facts in index.given()] == [[False]] and index.new_inputs() == [0]
    journal.start({"model": "m"}, [])
    state, index = same_facts(journal)
    assert index.run == {"model": "m"} and index.fitted == 0


@pytest.mark.parametrize("seed", range(12))
def test_random_histories(tmp_path, seed):
    """Runs grown, fitted, retried, refingerprinted and damaged at random: the same facts either way."""
    rng = np.random.default_rng(seed)
    journal = Journal(tmp_path / "r.ecsv.journal.jsonl")
    pool = [f"/survey/n{i % 4}/s{i}.fits" if i % 5 else f"memory:spectrum{i:04d}" for i in range(40)]
    listed = []

    def ids(keys):
        return [(k, k.rsplit("/", 1)[-1].split(".")[0].replace("memory:", "") if rng.random() < 0.8 else f"x{k[-7:]}")
                for k in keys]

    def stats(keys):
        return {k: [int(rng.integers(3)), int(rng.integers(2))] if rng.random() < 0.8 else None for k in keys}

    start = list(rng.choice(pool, 10, replace=False))
    journal.start({"model": "m", "seed": seed}, ids(start), stats(start))
    listed += start
    early = None
    for step in range(60):
        if step == 30:  # an index of the journal so far, brought up to date below
            early = JournalIndex.read(journal)
        action = rng.random()
        if action < 0.1:
            new = [k for k in pool if k not in listed][:int(rng.integers(1, 4))]
            journal.add_inputs(ids(new), stats(new))
            listed += new
        elif action < 0.2 and listed:
            journal.add_fingerprints(stats(rng.choice(listed + pool[-3:], int(rng.integers(1, 4)), replace=False)))
        else:
            keys = rng.choice(listed + pool[-2:], int(rng.integers(1, 4)))   # now and then one never listed
            journal.append_many([row(str(k), str(k)[-8:], STATUSES[int(rng.integers(len(STATUSES)))],
                                     float(rng.normal(5000, 100))) for k in keys])
    early.update(journal)  # what a read of the whole journal gives, from the rows appended since
    with JournalIndex.read(journal) as fresh:
        assert list(early.facts()) == list(fresh.facts()) and early.statuses == fresh.statuses
        assert [b.tolist() for b in early.row_offsets()] == [b.tolist() for b in fresh.row_offsets()]
        assert (early.end, early.torn_bytes) == (fresh.end, fresh.torn_bytes)
        early.update(journal, ids=False)  # again, nothing new: the table's way (its rows, without ids)
        assert [b.tolist() for b in early.row_offsets()] == [b.tolist() for b in fresh.row_offsets()]
    early.close()
    lines = sum(1 for _ in open(journal.path, "rb"))
    for number in rng.choice(np.arange(2, lines + 1), 3, replace=False):
        damage(journal, int(number))
    same_facts(journal)


def test_digests_tell_keys_apart():
    keys = [f"/d/s{i}.fits" for i in range(1000)] + ["memory:s1", "/d/\u00e9\udcff.fits"]  # a file name not UTF-8
    assert len({key_digest(key) for key in keys}) == 1002 and all(len(key_digest(key)) == 16 for key in keys)


def test_a_run_stopped_while_journalling_its_inputs_leaves_no_journal(tmp_path):
    """A survey's inputs take minutes to fingerprint and journal: stopped there (Ctrl-C, the batch system's
    SIGTERM), the run leaves no journal, so that running it again starts it again (not a resume of a part)."""
    journal = Journal(tmp_path / "r.ecsv.journal.jsonl")
    keys = [f"/d/s{i}.fits" for i in range(2500)]
    seen = []

    def fingerprint(key):
        seen.append(key)
        if len(seen) == 1500:
            raise KeyboardInterrupt
        return [1, 2]

    with pytest.raises(KeyboardInterrupt):
        journal.start({"model": "m"}, ((k, k[3:-5]) for k in keys), fingerprint)
    assert not os.path.exists(journal.path) and os.listdir(tmp_path) == []  # nor its temporary folder
    journal.start({"model": "m"}, ((k, k[3:-5]) for k in keys), lambda key: [1, 2])
    _, index = same_facts(journal)
    assert len(index) == 2500 and [fact[4] for fact in index.facts()] == [(1, 2)] * 2500


def test_fingerprints_beyond_64_bits_are_damaged_for_both_readers(tmp_path):
    journal = Journal(tmp_path / "r.ecsv.journal.jsonl")
    journal.start({"model": "m"}, [("/d/a.fits", "a"), ("/d/b.fits", "b")], {"/d/a.fits": [10, -5]})
    journal.add_fingerprints({"/d/b.fits": [2**64, 1]})   # not what os.stat gives: believed by neither
    journal.add_fingerprints({"/d/b.fits": [-1, 5]})
    state, index = same_facts(journal)
    assert state.damaged == [3, 4] and state.stats["/d/b.fits"] is None and state.stats["/d/a.fits"] == [10, -5]


def test_the_inputs_facts_come_in_their_order_a_chunk_at_a_time(tmp_path, monkeypatch):
    """match, given, not_given and new_inputs: each input of a batch (in its own order, not the run's) with
    what the run knows of it, in chunks; the run's spectra not given, the inputs new to the run."""
    monkeypatch.setattr(scratch, "CHUNK", 3)
    journal = Journal(tmp_path / "r.ecsv.journal.jsonl")
    keys = [f"/d/n{i % 2}/s{i}.fits" for i in range(8)]
    journal.start({"model": "m"}, [(k, f"s{i}" if i != 3 else "n1/s3") for i, k in enumerate(keys)],
                  {k: [10 + i, 20] for i, k in enumerate(keys)})
    journal.append_many([row(k, f"s{i}", STATUSES[3] if i == 2 else "ok") for i, k in enumerate(keys[:5])])
    state, index = same_facts(journal)
    given = [keys[6], "/d/new.fits", keys[2], keys[0], keys[3], keys[7], "/d/other.fits", keys[4], keys[1]]
    index.match(given)
    chunks = list(index.given())
    assert [len(chunk.n) for chunk in chunks] == [3, 3, 3]
    got = [(int(c.n[k]), bool(c.in_run[k]), int(c.offset[k]), int(c.failures[k]), tuple(c.stats[k].tolist()),
            c.recorded_id(k, given[int(c.n[k])])) for c in chunks for k in range(len(c.n))]
    assert got == [(n, key in state.ids, state.offsets.get(key, -1), state.failures.get(key, 0),
                    tuple(state.stats[key]) if key in state.ids else (-1, 0),
                    state.ids[key] if key in state.ids else default_id(key)) for n, key in enumerate(given)]
    assert [index.statuses[s] for c in chunks for s in c.status if s >= 0] == \
        [state.rows[key]["status"] for key in given if key in state.rows]
    assert index.new_inputs() == [1, 6]
    count, first = index.not_given()   # s5: the first of the run's order that is not given
    assert count == 1 and index.key_of(journal, first) == keys[5]
    index.close()


def test_new_fingerprints_set_rows_aside_as_a_fingerprints_record_does(tmp_path):
    journal = Journal(tmp_path / "r.ecsv.journal.jsonl")
    keys = [f"/d/s{i}.fits" for i in range(4)]
    journal.start({"model": "m"}, [(k, f"s{i}") for i, k in enumerate(keys)], {k: [10, 20] for k in keys[:3]})
    journal.append_many([row(k, f"s{i}", STATUSES[3]) for i, k in enumerate(keys)])
    state, index = same_facts(journal)
    changes = {keys[0]: [11, 20], keys[1]: [10, 20], keys[3]: [5, 6]}  # changed, the same, first known
    state.note_stats(list(changes), list(changes.values()))
    index.note_stats(list(changes), list(changes.values()))
    assert facts_of_index(index, state.inputs) == facts_of_state(state)
    assert fact(index, keys[0])["offset"] == -1 and fact(index, keys[3])["failures"] == 1
    index.close()



def test_ids_come_back_as_the_journal_has_them(tmp_path):
    """An id that is a number, or a text no UTF-8 encodes (a hand-edited journal), is given back as read."""
    journal = Journal(tmp_path / "r.ecsv.journal.jsonl")
    journal.start({"model": "m"}, [("/d/b.fits", "b")])
    body = b'{"kind":"inputs","keys":["/d/a.fits"],"ids":["a\\udcff"]}'  # a JSON escape: no writer makes it
    with open(journal.path, "ab") as handle:
        handle.write(b'{"crc32":"%08x","record":%s}\n' % (zlib.crc32(body), body))
    journal.append_many([row("/d/a.fits", "a"), row("/d/c.fits", 7), row("/d/e.fits", 2**70)])  # c, e: never listed
    state, index = same_facts(journal)
    assert [fact(index, key)["id"] for key in ("/d/a.fits", "/d/c.fits", "/d/e.fits")] == ["a\udcff", 7, 2**70]
    index.close()
