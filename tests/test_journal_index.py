"""The journal read as columns (JournalIndex) holds the facts of the journal read whole (JournalState): the run's
order, each spectrum's last row, its failures, its fingerprint and id — on every history a journal can have."""

import os

import numpy as np
import pytest

from ulyss_ann.fitting.batch.journal import Journal
from ulyss_ann.fitting.batch.journal_index import JournalIndex, _lookup, key_digests

STATUSES = ["ok", "ok", "error: no overlap", "failed: the worker died (KilledWorker)", "failed: lost"]


def facts_of_state(state):
    return [(key, state.ids.get(key), state.offsets.get(key, -1), state.rows[key]["status"] if key in state.rows
             else None, state.failures.get(key, 0), tuple(state.stats[key]) if state.stats.get(key) else None)
            for key in state.inputs]


def facts_of_index(index, keys):
    positions = index.positions(keys).tolist()
    assert sorted(positions) == list(range(len(keys))) and len(index) == len(keys)
    assert index.run_order.tolist() == positions  # the run's order
    return [(key, index.recorded_id(p, key), int(index.offsets[p]),
             index.statuses[index.status[p]] if index.status[p] >= 0 else None, int(index.failures[p]),
             tuple(int(v) for v in index.stats[p]) if index.stats[p, 0] >= 0 else None)
            for p, key in zip(positions, keys)]


def same_facts(journal):
    state, index = journal.read(), JournalIndex.read(journal)
    assert index.run == state.run
    assert (index.damaged, index.torn_bytes, index.damaged_inputs, index.legacy) == \
        (state.damaged, state.torn_bytes, state.damaged_inputs, state.legacy)
    assert facts_of_index(index, state.inputs) == facts_of_state(state)
    assert index.fitted == len(state.rows)
    assert journal.rows_at(index.row_offsets().tolist()) == [state.rows[k] for k in state.inputs if k in state.rows]
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
    at = dict(zip(keys, index.positions(keys).tolist()))
    assert index.statuses[index.status[at[keys[2]]]] == STATUSES[2] and index.failures[at[keys[5]]] == 2
    assert index.offsets[at[keys[6]]] == -1 and index.stats[at[keys[9]], 0] == -1
    assert index.recorded_id(at[keys[9]], keys[9]) == "night0/star9"


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
    at = index.positions(keys).tolist()
    assert keys[0] not in state.rows and index.offsets[at[0]] == -1 and index.failures[at[0]] == 0  # set aside
    assert index.failures[at[1]] == 1 and index.failures[at[3]] == 0 and tuple(index.stats[at[4]]) == (7, 9)


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
    assert index.recorded_id(index.positions([second[0]])[0], second[0]) == "b0"


def test_an_empty_journal_and_one_of_the_run_alone(tmp_path):
    journal = Journal(tmp_path / "r.ecsv.journal.jsonl")
    index = JournalIndex.read(journal)
    assert index.run is None and len(index) == 0 and index.positions(["/x.fits"]).tolist() == [-1]
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
    for _ in range(60):
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
    lines = sum(1 for _ in open(journal.path, "rb"))
    for number in rng.choice(np.arange(2, lines + 1), 3, replace=False):
        damage(journal, int(number))
    same_facts(journal)


def test_digests_tell_keys_apart_and_find_them():
    keys = [f"/d/s{i}.fits" for i in range(1000)] + ["memory:s1", "/d/\u00e9\udcff.fits"]  # a file name not UTF-8
    digests = key_digests(keys)
    assert digests.shape == (1002, 2) and len({tuple(d) for d in digests.tolist()}) == 1002
    # two keys whose digests share their first 64 bits are told apart by the other 64
    sorted_keys = np.array([[1, 5], [1, 9], [2, 0], [3, 3]], np.uint64)
    queries = np.array([[1, 9], [1, 5], [1, 7], [2, 0], [0, 0], [4, 1], [3, 3]], np.uint64)
    assert _lookup(sorted_keys, queries).tolist() == [1, 0, -1, 2, -1, -1, 3]


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
    assert len(index) == 2500 and index.stats[:, 0].tolist() == [1] * 2500


def test_fingerprints_beyond_64_bits_are_damaged_for_both_readers(tmp_path):
    journal = Journal(tmp_path / "r.ecsv.journal.jsonl")
    journal.start({"model": "m"}, [("/d/a.fits", "a"), ("/d/b.fits", "b")], {"/d/a.fits": [10, -5]})
    journal.add_fingerprints({"/d/b.fits": [2**64, 1]})   # not what os.stat gives: believed by neither
    journal.add_fingerprints({"/d/b.fits": [-1, 5]})
    state, index = same_facts(journal)
    assert state.damaged == [3, 4] and state.stats["/d/b.fits"] is None and state.stats["/d/a.fits"] == [10, -5]
