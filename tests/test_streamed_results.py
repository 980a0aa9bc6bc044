"""A survey's table is never all in memory: the journal indexed on disk, its rows a block at a time, ECSV written
in blocks that make the same bytes, and a summary instead of the table where the caller asks for none."""

import os
import tracemalloc
from dataclasses import replace

import numpy as np
import pytest
from astropy.table import Table

import ulyss_ann
from conftest import FAST, MODEL, TRUTH, cli_here, journal_of, simulated_batch
from ulyss_ann import UlyssAnnError
from ulyss_ann.fitting.batch import driver, results, scratch
from ulyss_ann.fitting.batch.journal import Journal, failure_row
from ulyss_ann.fitting.batch.journal_index import JournalIndex, key_digest
from ulyss_ann.fitting.batch.results import BatchSummary
from ulyss_ann.fitting.table import rows_to_table, write_table, write_table_blocks

PARAMETERS = [("Teff", "K"), ("Logg", "dex"), ("Fe/H", "dex")]


@pytest.fixture(scope="module")
def spectra(tmp_path_factory):
    return simulated_batch(tmp_path_factory.mktemp("stream"), TRUTH, lambda i: 15.0 * i - 40.0)


def rows(count, seed=2):
    """Rows as the engines write them, with missing values, quotes and spaces where a table gets them."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        out.append(dict(id=f"star {i}", file=f"/data/night 1/s{i}.fits", ra=rng.uniform(0, 360),
                        dec=None if i % 7 == 3 else rng.uniform(-90, 90), Teff=rng.uniform(4000, 6500),
                        e_Teff=rng.uniform(5, 50), Logg=rng.uniform(1, 5), n_guess=None if i == 57 else 6,
                        chi2=float("nan") if i == 61 else rng.uniform(0.5, 2), status="ok" if i % 11 else
                        'error: "no overlap" with the model', flag="" if i % 3 else "bound:Teff,poor-fit"))
    return out


@pytest.mark.parametrize("name", ["r.ecsv", "r.fits"])
def test_a_table_written_in_blocks_is_the_table_written_whole(tmp_path, name):
    # the masked values of the later blocks (row 57's n_guess, row 61's chi2) are none of the first block's
    given = rows(80)
    meta = {"model": "trial 7", "masks": [[5800.0, 5900.0]]}
    write_table(rows_to_table(given, PARAMETERS), tmp_path / f"whole_{name}", meta=meta)
    write_table_blocks((rows_to_table(given[k:k + 25], PARAMETERS) for k in range(0, 80, 25)),
                       tmp_path / f"blocks_{name}", meta=meta)
    whole, blocks = (tmp_path / f"{kind}_{name}" for kind in ("whole", "blocks"))
    if name.endswith(".ecsv"):
        assert blocks.read_bytes() == whole.read_bytes()
    back, want = Table.read(blocks), Table.read(whole)
    assert back.colnames == want.colnames and len(back) == 80 and dict(back.meta) == dict(want.meta) != {}
    for column in want.colnames:
        assert back[column].tolist() == want[column].tolist(), column


def test_the_ecsv_table_is_astropys_byte_for_byte(tmp_path):
    # write_table turns the values into text a column at a time, not astropy's way (item by item): the bytes
    # must be those of astropy's own ECSV writer, for every kind of value a table holds
    from astropy.table import MaskedColumn

    table = rows_to_table(rows(80), PARAMETERS)
    table["edge"] = np.resize([-0.0, 1e-5, 1e16, np.inf, -np.inf, 123456789012345.6, 5433.159333279457, 1e300], 80)
    table["count"] = np.resize(np.array([0, -2, 2 ** 62], np.int64), 80)
    table["good"] = np.arange(80) % 3 == 0
    table["text"] = np.resize(["é", "", "a,b", "x'y"], 80)
    table["none"] = MaskedColumn(np.ones(80), mask=np.ones(80, bool))
    meta = {"model": "trial 7", "masks": [[5800.0, 5900.0]]}
    write_table(table, tmp_path / "ours.ecsv", meta=meta)
    table.meta.update(meta)
    table.write(tmp_path / "astropy.ecsv", format="ascii.ecsv")
    assert (tmp_path / "ours.ecsv").read_bytes() == (tmp_path / "astropy.ecsv").read_bytes()
    # a float32's shortest text is not its float64's (0.1 against 0.10000000149011612), a 2-D column is JSON, a
    # Time has no dtype: astropy writes those tables
    from astropy.time import Time

    for name, column in (("single", np.resize(np.float32([0.1, 1 / 3, 5433.16]), 80)),
                         ("pair", np.arange(160.0).reshape(80, 2)), ("when", Time(59000.0 + np.arange(80), format="mjd"))):
        other = Table(table)
        other[name] = column
        write_table(other, tmp_path / f"ours_{name}.ecsv")
        other.write(tmp_path / f"astropy_{name}.ecsv", format="ascii.ecsv")
        assert (tmp_path / f"ours_{name}.ecsv").read_bytes() == (tmp_path / f"astropy_{name}.ecsv").read_bytes()


def test_a_written_block_leaves_no_column_to_the_garbage_collector(tmp_path):
    # a resume writes its table a block at a time; a block kept alive by a reference cycle waits for the
    # collector's next full pass, and a 10⁵-row resume's memory grew by 92 MB with them
    import gc

    from astropy.table import Column

    block = rows_to_table(rows(50), PARAMETERS)
    write_table_blocks([block], tmp_path / "warm.ecsv")
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        write_table_blocks([rows_to_table(rows(50), PARAMETERS)], tmp_path / "r.ecsv")
        gc.collect()
        left = [thing for thing in gc.garbage if isinstance(thing, Column)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert left == []


def test_the_journal_index_gives_back_each_spectrums_last_row(tmp_path):
    journal = Journal(tmp_path / "r.ecsv.journal.jsonl")
    given = rows(30)
    journal.start({"model": "m"}, [(row["file"], row["id"]) for row in given])
    journal.append_many(given[:20])
    journal.append(failure_row(given[4]["file"], "star 4", "failed: the worker died", "native", "m", "0" * 64))
    with open(journal.path, "ab") as handle:   # a record whose checksum fails, then a torn last line
        handle.write(b'{"crc32":"00000000","record":{"kind":"row","row":{"file":"x","status":"ok"}}}\n')
    journal.append_many(given[20:])
    with open(journal.path, "ab") as handle:
        handle.write(b'{"crc32":"1234')
    full, lean = journal.read(), JournalIndex.read(journal)
    assert lean.damaged == full.damaged != [] and lean.torn_bytes == full.torn_bytes > 0
    facts = list(lean.facts())  # in the run's order
    assert [fact[0] for fact in facts] == [key_digest(key) for key in full.inputs]
    assert [fact[3] for fact in facts] == [full.failures.get(key, 0) for key in full.inputs]
    assert [lean.statuses[fact[2]] for fact in facts] == [full.rows[key]["status"] for key in full.inputs]
    back = journal.rows_at([offset for block in lean.row_offsets(block=7) for offset in block])
    assert back == [full.rows[key] for key in full.inputs]
    assert back[4]["status"].startswith("failed:")  # the last record of a spectrum counts


def test_a_batch_written_in_blocks_is_the_batch_written_at_once(spectra, tmp_path, monkeypatch):
    once = ulyss_ann.fit(spectra, MODEL, tmp_path / "once.ecsv", workers=0, **FAST)
    written = (tmp_path / "once.ecsv").read_bytes()
    monkeypatch.setattr(results, "BLOCK_ROWS", 4)   # six spectra: two blocks, read back from the journal
    again = ulyss_ann.fit(spectra, MODEL, tmp_path / "once.ecsv", workers=0, resume=True, **FAST)
    assert (tmp_path / "once.ecsv").read_bytes() == written
    summary = ulyss_ann.fit(spectra, MODEL, tmp_path / "once.ecsv", workers=0, resume=True, return_table=False,
                            **FAST)
    for column in once.colnames:
        assert again[column].tolist() == once[column].tolist(), column
    assert isinstance(summary, BatchSummary) and summary.spectra == 6 and summary.fitted == 6
    np.testing.assert_array_equal(summary.values["Teff"], once["Teff"])
    np.testing.assert_array_equal(summary.values["lmin"], once["lmin"])
    assert summary.median("Teff") == pytest.approx(float(np.median(once["Teff"])))
    # its repr reads as the summary the command prints begins (a notebook shows it so)
    assert repr(summary) == (f"<BatchSummary 6 spectra: 6 fitted, 0 error, 0 failed; median: Teff "
                             f"{summary.median('Teff'):.4g} K, Logg {summary.median('Logg'):.4g} dex, Fe/H "
                             f"{summary.median('Fe/H'):.4g} dex, cz {summary.median('cz'):.1f} km/s>")
    np.testing.assert_array_equal(summary.values["sigma"], once["sigma"])
    with pytest.raises(UlyssAnnError, match=r"median\('teff'\): the summary keeps Teff, Logg, Fe/H, cz, sigma"):
        summary.median("teff")   # a typo is said, not a NaN
    assert journal_of(tmp_path / "once.ecsv").read().counts == {path: 1 for path in spectra}  # nothing refitted


def test_the_command_line_counts_from_the_summary(spectra, tmp_path):
    out = tmp_path / "r.ecsv"
    done = cli_here("fit", *spectra[:2], "-o", out, "-j", "0", "--engine", "native", "--mdegree", "8",
                    "--guess", "Teff=5400", "--guess", "Logg=3", "--guess", "Fe/H=-1.5")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-2].startswith("median: Teff ") and "2 spectra: 2 fitted" in done.stdout
    journal_of(out).append(failure_row(spectra[1], "sim001", "error: a test's own", "native",
                                       "example_interpolator.fits", Table.read(out)["model_sha256"][0]))
    done = cli_here("fit", *spectra[:2], "-o", out, "-j", "0", "--engine", "native", "--mdegree", "8",
                    "--guess", "Teff=5400", "--guess", "Logg=3", "--guess", "Fe/H=-1.5", "--resume")
    assert done.returncode == 1 and "1 x error: a test's own" in done.stdout  # some fitted, some not
    assert list(Table.read(out)["status"]) == ["ok", "error: a test's own"]


def test_no_table_and_no_output_is_refused():
    with pytest.raises(UlyssAnnError, match="return_table=False with output=None"):
        ulyss_ann.fit([], MODEL, output=None, return_table=False, **FAST)
    with pytest.raises(UlyssAnnError, match=r"return_table 'no': give True \(the table\) or False"):
        ulyss_ann.fit([], MODEL, output=None, return_table="no", **FAST)


def peaks_until_tasks_known(monkeypatch):
    """tracemalloc's peak in each batch from the spectra given to the tasks known (inputs, journal index,
    fingerprints, tasks), appended to the list returned, a batch at a time; with chunks of 500 spectra, so that
    what grows with a survey shows at a test's size. (The journal's index is on disk, in SQLite, whose own
    memory tracemalloc does not see: its page caches and sorter are bounded, whatever the size:
    scripts/bench_survey --driver-rows measures the whole process at 10⁶ spectra.)"""
    peaks = []
    batch_inputs, tasks_to_fit = driver.batch_inputs, driver.tasks_to_fit
    monkeypatch.setattr(scratch, "CHUNK", 500)

    def inputs_of(*args):
        tracemalloc.reset_peak()
        return batch_inputs(*args)

    def tasks_of(*args):
        tasks = tasks_to_fit(*args)
        peaks.append(tracemalloc.get_traced_memory()[1])
        return tasks

    monkeypatch.setattr(driver, "batch_inputs", inputs_of)
    monkeypatch.setattr(driver, "tasks_to_fit", tasks_of)
    return peaks


def test_a_resume_holds_tens_of_bytes_a_spectrum(spectra, tmp_path, monkeypatch):
    """A survey's resume with nothing left to fit: the journal indexed on disk, the spectra given made as they
    are needed and compared a chunk at a time. Its peak from the spectra given to the tasks known does not grow
    with the run (~150 bytes a spectrum with the index in arrays, ~0.9 KB with the run's keys, ids,
    fingerprints and statuses in dicts, ~10 KB as whole rows); nor does the table's own reading of the journal.
    (The table's blocks of rows leave cyclic garbage that the collector frees when it likes: not measured here;
    a block is a fixed number of rows.)"""
    ulyss_ann.fit(spectra[:1], MODEL, tmp_path / "one.ecsv", workers=0, **FAST)
    template = journal_of(tmp_path / "one.ecsv").read()
    row = next(iter(template.rows.values()))
    peaks, reads = peaks_until_tasks_known(monkeypatch), []
    batch_results = driver.batch_results

    def table_from(*args, **kwargs):  # and the table's own reading of the journal
        tracemalloc.reset_peak()
        with JournalIndex.read(journal, ids=False) as index:
            sum(len(block) for block in index.row_offsets())
        reads.append(tracemalloc.get_traced_memory()[1])
        return batch_results(*args, **kwargs)

    monkeypatch.setattr(driver, "batch_results", table_from)
    for count in (2000, 8000):
        names = [f"{tmp_path}/survey{count}/star{i:06d}.fits" for i in range(count)]  # their rows are all there
        journal = journal_of(tmp_path / f"r{count}.ecsv")
        journal.start(template.run, [(name, f"star{i:06d}") for i, name in enumerate(names)],
                      {name: [1000 + i, 10**18 + i] for i, name in enumerate(names)})
        journal.append_many([{**row, "file": name, "id": f"star{i:06d}"} for i, name in enumerate(names)])
        tracemalloc.start()
        try:
            summary = ulyss_ann.fit(names, MODEL, tmp_path / f"r{count}.ecsv", workers=0, resume=True,
                                    return_table=False, **FAST)
        finally:
            tracemalloc.stop()
        assert summary.fitted == count and len(Table.read(tmp_path / f"r{count}.ecsv")) == count
    assert (peaks[1] - peaks[0]) / 6000 < 30, peaks   # was ~150 with the index in arrays, ~900 in dicts
    assert (reads[1] - reads[0]) / 6000 < 30, reads


def test_retry_failed_is_taken_for_its_truth(spectra, tmp_path):
    table = ulyss_ann.fit(spectra[:1], MODEL, tmp_path / "r.ecsv", workers=0, retry_failed=None, **FAST)
    assert list(table["status"]) == ["ok"]


def test_a_new_survey_holds_tens_of_bytes_a_spectrum_until_it_fits(spectra, tmp_path, monkeypatch):
    """A new run's inputs are journalled a record at a time and its tasks made as they are fitted: from the
    spectra given to the tasks known, its peak grows by far less per spectrum than a task's objects."""
    peaks, sent = peaks_until_tasks_known(monkeypatch), {}
    monkeypatch.setattr(driver, "run_serial", lambda tasks, *args: sent.update({count: (len(tasks), tasks[-1])}))
    for count in (2000, 8000):
        folder = tmp_path / f"survey{count}"
        folder.mkdir()
        names = [str(folder / f"star{i:06d}.fits") for i in range(count)]
        for name in names:
            os.link(spectra[0], name)   # real files, fingerprinted; not fitted here
        tracemalloc.start()
        try:
            ulyss_ann.fit(names, MODEL, tmp_path / f"r{count}.ecsv", workers=0, **FAST)
        finally:
            tracemalloc.stop()
        assert sent[count][0] == count and sent[count][1][0].key == names[-1]
        assert len(journal_of(tmp_path / f"r{count}.ecsv").read().inputs) == count
    assert (peaks[1] - peaks[0]) / 6000 < 30, peaks   # the list of tasks to fit: 8 bytes a spectrum


def test_a_dask_batch_of_more_blocks_than_its_window_fits_each_spectrum_once(spectra, tmp_path, monkeypatch):
    """The cluster gets a window of blocks, the next sent as one comes back: with blocks of two spectra and a
    window of two blocks, eighteen spectra (nine blocks) each get their row, the serial fit's."""
    from ulyss_ann.fitting.batch import runners
    from ulyss_ann.fitting.engines import engine_class

    copies = []
    for k in range(3):
        for path in spectra:
            spectrum = ulyss_ann.read_spectrum(path)
            meta = {name: value for name, value in spectrum.meta.items() if name != "file"}  # in memory
            copies.append(replace(spectrum, meta={**meta, "id": f"{meta['id']}-{k}"}))
    monkeypatch.setattr(runners, "BLOCKS_PER_WORKER", 1)
    monkeypatch.setattr(engine_class("native"), "block_size", classmethod(lambda cls, config: 2))
    serial = ulyss_ann.fit(copies, MODEL, output=None, workers=0, **FAST)  # the same blocks (a block's bits)
    windowed = ulyss_ann.fit(copies, MODEL, tmp_path / "w.ecsv", workers=1, **FAST)
    assert len(copies) == 18 and list(windowed["id"]) == list(serial["id"])
    assert list(windowed["Teff"]) == list(serial["Teff"]) and set(windowed["status"]) == {"ok"}


@pytest.mark.parametrize("case", ["normal", "integers", "sorted", "spikes", "equal", "one", "two", "none"])
def test_the_summary_median_is_numpys(case):
    """The exact median, a chunk at a time with 64 values at most sorted at once: np.median's float, whatever
    the values' order, repeats, NaNs and count."""
    rng = np.random.default_rng(7)
    values = {"normal": rng.normal(5000, 300, 20_001), "integers": rng.integers(0, 9, 10_000).astype(float),
              "sorted": np.sort(rng.normal(size=5000)), "equal": np.full(3000, 2.5), "one": np.array([4.0]),
              "two": np.array([1.0, 2.0]), "none": np.array([np.nan, np.inf]),
              "spikes": np.where(np.arange(9000) % 7 == 0, 1e300, rng.normal(size=9000))}[case]
    values = np.where(rng.random(len(values)) < 0.05, np.nan, values) if len(values) > 2 else values
    chunks = lambda: (values[i:i + 997] for i in range(0, len(values), 997))  # noqa: E731
    finite = values[np.isfinite(values)]
    expected = float(np.median(finite)) if finite.size else float("nan")
    np.testing.assert_array_equal(results.exact_median(chunks, at_once=64, pivots=16), expected)
    for rank in (0, len(finite) // 3, len(finite) - 1) if finite.size else ():
        assert results.ranked_value(chunks, rank, at_once=64, pivots=16) == np.sort(finite)[rank]


def test_the_summary_keeps_its_values_on_disk_and_gives_them_back(tmp_path):
    summary = BatchSummary(units={"Teff": "K"})
    blocks = [rows_to_table([{"id": f"s{i}", "file": f"/d/s{i}.fits", "Teff": 5000.0 + i, "status": status,
                              "flag": ""} for i, status in enumerate(statuses)], [("Teff", "K")])
              for statuses in (["ok", "error: x", "ok"], [], ["ok"] * 4)]
    for block in blocks:
        summary.add(block, ["Teff", "cz"])
    assert summary.values["Teff"].tolist() == [5000.0, 5002.0, 5000.0, 5001.0, 5002.0, 5003.0]
    assert [chunk.tolist() for chunk in summary.chunks("Teff")] == [[5000.0, 5002.0], [5000.0, 5001.0, 5002.0, 5003.0]]
    assert summary.median("Teff") == 5001.5 and summary.spectra == 7 and summary.fitted == 6
    with pytest.raises(UlyssAnnError, match=r"chunks\('lmin'\): the summary keeps Teff, cz"):
        summary.chunks("lmin")


def test_a_summary_pickles_with_its_values():
    import pickle

    summary = BatchSummary(units={"Teff": "K"})
    summary.add(rows_to_table([{"id": "s", "file": "/d/s.fits", "Teff": 5100.0, "status": "ok", "flag": ""}],
                              [("Teff", "K")]), ["Teff"])
    again = pickle.loads(pickle.dumps(summary))
    assert again.values["Teff"].tolist() == [5100.0] and again.median("Teff") == 5100.0 and again.fitted == 1
