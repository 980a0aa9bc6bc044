"""Batch integrity (#14): verifiable journal records, run identity, one run per output, options refused
up front, honest exit statuses, names and metadata. Native engine (fast). What happens when the machinery
fails (a full disk, Ctrl-C, GDL killed): tests/test_batch_failures.py."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from conftest import CLI_FAST, FAST, LOGG_FIXED, MODEL, TRUTH, cli, cli_here, journal_of, simulated_batch
from ulyss_ann import UlyssAnnError, example_interpolator
from ulyss_ann.fitting.batch.driver import fit
from ulyss_ann.fitting.batch.run import OutputLock
from ulyss_ann.spectra.simulate import simulate_spectrum, write_muse_spectrum


# `first_leg`: the journal, lock and resume machinery, which NumPy 2, the newest astropy and the wheel do
# not change; the options, messages, names and formats run in both legs (docs/development.md).


@pytest.fixture(scope="module")
def spectra(tmp_path_factory):
    """Six MUSE-like spectra simulated from the example network (S/N 100)."""
    return simulated_batch(tmp_path_factory.mktemp("spectra"), TRUTH, lambda i: 10.0 * i)


# ------------------------------------------------------------------ journal records
@pytest.mark.first_leg
def test_a_torn_last_record_is_refitted_on_resume_and_each_spectrum_ends_once(spectra, tmp_path):
    out = tmp_path / "r.ecsv"
    assert cli_here("fit", *spectra, "-j", "0", "-o", out, *CLI_FAST).returncode == 0
    path = journal_of(out).path
    data = open(path, "rb").read()
    torn = data[:-57]  # a crash in the middle of writing the last record
    open(path, "wb").write(torn)
    out.unlink()
    state = journal_of(out).read()
    assert len(state.rows) == len(spectra) - 1 and state.damaged == [len(data.splitlines())] and state.torn_bytes
    again = cli_here("fit", *spectra, "-j", "0", "-o", out, *CLI_FAST, "--resume")
    assert again.returncode == 0, again.stderr
    assert "1 damaged record ignored" in again.stderr and "cut short" in again.stderr
    state = journal_of(out).read()
    assert not state.damaged  # the torn tail was cut off before the next record
    assert len(state.rows) == len(spectra) and set(state.counts.values()) == {1}
    table = Table.read(out)
    assert sorted(table["id"]) == [f"sim{i:03d}" for i in range(len(spectra))] and set(table["status"]) == {"ok"}


@pytest.mark.first_leg
def test_a_damaged_row_record_does_not_let_new_spectra_in(spectra, tmp_path):
    """Only a damaged record that could hold inputs makes --resume accept spectra the run does not list."""
    out = tmp_path / "r.ecsv"
    fit(spectra[:2], MODEL, out, workers=0, **FAST)
    path = journal_of(out).path
    lines = open(path, "rb").read().splitlines(keepends=True)
    lines[-1] = lines[-1].replace(b'"Teff":5', b'"Teff":6', 1)
    open(path, "wb").write(b"".join(lines))
    with pytest.raises(UlyssAnnError, match="not in this run"):
        fit(spectra[:3], MODEL, out, workers=0, resume=True, **FAST)
    lines = open(path, "rb").read().splitlines(keepends=True)
    inputs = next(i for i, line in enumerate(lines) if b'"kind":"inputs"' in line)
    lines[inputs] = lines[inputs].replace(b"sim000", b"sim00X")  # now the run's list itself is damaged
    open(path, "wb").write(b"".join(lines))
    table = fit(spectra[:3], MODEL, out, workers=0, resume=True, **FAST)
    assert list(table["status"]) == ["ok"] * 3


@pytest.mark.first_leg
def test_a_corrupt_record_is_detected_by_its_checksum_and_its_spectrum_refitted(spectra, tmp_path):
    out = tmp_path / "r.ecsv"
    first = fit(spectra[:3], MODEL, out, workers=0, **FAST)
    path = journal_of(out).path
    lines = open(path, "rb").read().splitlines(keepends=True)
    # flip one digit of sim001's Teff: the line still parses as JSON, only the checksum tells
    index = next(i for i, line in enumerate(lines) if b'"id":"sim001"' in line)
    lines[index] = lines[index].replace(b'"Teff":5', b'"Teff":6', 1)
    open(path, "wb").write(b"".join(lines))
    state = journal_of(out).read()
    assert state.damaged == [index + 1] and not state.torn_bytes and len(state.rows) == 2
    again = fit(spectra[:3], MODEL, out, workers=0, resume=True, **FAST)
    np.testing.assert_allclose(again["Teff"], first["Teff"], rtol=1e-12)  # the right value, fitted again
    assert journal_of(out).read().counts == {spectra[0]: 1, spectra[1]: 1, spectra[2]: 1}


# ------------------------------------------------------------------ run identity
@pytest.fixture(scope="module")
def two_fitted(spectra, tmp_path_factory):
    """A finished run of two spectra from the command line: its table and journal, made once for the
    cases below, which each copy them."""
    out = tmp_path_factory.mktemp("fitted") / "r.ecsv"
    assert cli_here("fit", *spectra[:2], "-j", "0", "-o", out, *CLI_FAST).returncode == 0
    return spectra, [out, Path(journal_of(out).path)]


@pytest.mark.first_leg
@pytest.mark.parametrize("change, listed", [
    (["--mdegree", "10"], "mdegree: 8 in the journal, 10 now"),
    (["--fix", "Logg=3.2"], 'fixed: null in the journal, {"Logg": {"value": 3.2}} now'),
    (["--losvd", "analytic"], 'losvd: "sampled" in the journal, "analytic" now'),
    (["--range", "5000,7000"], "wave_range: null in the journal, [5000.0, 7000.0] now"),
    (["--mask", "6000,6100"], "masks: [] in the journal, [[6000.0, 6100.0]] now"),
    (["--lsf", "LSF"], "lsf_sha256: null in the journal"),
    (["--model", "OTHER"], "model_sha256: "),
])
def test_resume_with_another_configuration_is_refused_with_the_differences(two_fitted, tmp_path, change, listed):
    spectra, fitted = two_fitted
    out = tmp_path / "r.ecsv"
    for path in fitted:  # the finished run, in this test's own folder (a refusal must leave it as it is)
        shutil.copy2(path, tmp_path / path.name)
    (tmp_path / "lsf.txt").write_text("0 30 0 0 4800\n0 30 0 0 7300\n")
    other = tmp_path / "other.fits"
    with fits.open(MODEL) as hdul:  # the same network in another file: another SHA-256
        hdul[0].header["HISTORY"] = "a copy"
        hdul.writeto(other)
    change = [str(tmp_path / "lsf.txt") if c == "LSF" else str(other) if c == "OTHER" else c for c in change]
    before = open(journal_of(out).path, "rb").read()
    base = CLI_FAST if "--fix" not in change else CLI_FAST[:4] + CLI_FAST[6:]  # Logg fixed: not guessed
    refused = cli_here("fit", *spectra[:2], "-j", "0", "-o", out, *base, *change, "--resume")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "--resume with another configuration" in refused.stderr and listed in refused.stderr
    errors = [line for line in refused.stderr.splitlines() if line.startswith("ulyss-ann: error:")]
    assert len(errors) == 1  # (--lsf with the sampled LOSVD also warns, on a line of its own)
    assert open(journal_of(out).path, "rb").read() == before  # nothing written
    assert not (tmp_path / "r.ecsv.lock").exists()


def test_the_table_metadata_is_the_run_record(spectra, tmp_path):
    logg = tmp_path / "logg.ecsv"
    Table({"id": ["sim000", "sim001"], "logg": [2.8, 3.6]}).write(logg)
    table = fit(spectra[:2], MODEL, tmp_path / "r.ecsv", workers=0, fixed={"Logg": f"{logg}:logg"},
                guesses={"Teff": [5400.0]}, mdegree=8, progress=False, engine="native")
    meta = Table.read(tmp_path / "r.ecsv").meta
    assert meta["engine"] == "native" and meta["mdegree"] == 8 and meta["losvd"] == "sampled"
    assert meta["fixed"]["Logg"]["column"] == "logg" and meta["fixed"]["Logg"]["table"] == str(logg)
    assert meta["fixed"]["Logg"]["sha256"] == __import__("hashlib").sha256(logg.read_bytes()).hexdigest()
    assert meta["guesses"] == {"Teff": [5400.0]} and meta["model_sha256"] == table["model_sha256"][0]
    assert meta["version"] == __import__("ulyss_ann").__version__
    assert list(table["Logg"]) == [2.8, 3.6]


@pytest.mark.first_leg
def test_resume_with_new_spectra_needs_add_spectra_and_with_fewer_is_refused(spectra, tmp_path):
    out = tmp_path / "r.ecsv"
    fit(spectra[:2], MODEL, out, workers=0, **FAST)
    with pytest.raises(UlyssAnnError, match=r"1 spectrum not in this run .*--add-spectra"):
        fit(spectra[:3], MODEL, out, workers=0, resume=True, **FAST)
    with pytest.raises(UlyssAnnError, match=r"1 spectrum of this run not given now"):
        fit(spectra[:1], MODEL, out, workers=0, resume=True, **FAST)
    table = fit(spectra[:3], MODEL, out, workers=0, resume=True, add_spectra=True, **FAST)
    assert list(table["id"]) == ["sim000", "sim001", "sim002"] and set(table["status"]) == {"ok"}
    assert journal_of(out).read().inputs == spectra[:3]


# ------------------------------------------------------------------ one run per output
@pytest.mark.first_leg
def test_a_second_run_on_the_same_output_is_refused_and_a_dead_runs_lock_taken_over(spectra, tmp_path):
    out = tmp_path / "r.ecsv"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from ulyss_ann.fitting.batch.run import OutputLock
        lock = OutputLock({str(out)!r}).acquire()
        print("locked", flush=True)
        time.sleep(600)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        for overwrite in (False, True):  # --overwrite does not get past it either
            with pytest.raises(UlyssAnnError, match=rf"another batch is writing it \(PID {holder.pid} on "):
                fit(spectra[:1], MODEL, out, workers=0, overwrite=overwrite, **FAST)
        assert not out.exists() and not os.path.exists(journal_of(out).path)
        refused = cli_here("fit", spectra[0], "-j", "0", "-o", out, *CLI_FAST)
        assert refused.returncode == 2 and f"PID {holder.pid}" in refused.stderr
    finally:
        holder.kill()  # like kill -9: the process is gone, its lock file stays
        holder.wait()
    assert "PID" in (tmp_path / "r.ecsv.lock").read_text()
    table = fit(spectra[:1], MODEL, out, workers=0, **FAST)  # the dead run's lock is taken over
    assert list(table["status"]) == ["ok"] and not (tmp_path / "r.ecsv.lock").exists()


@pytest.mark.first_leg
def test_the_lock_is_exclusive_within_one_process_too(tmp_path):
    with OutputLock(tmp_path / "r.ecsv"):
        with pytest.raises(UlyssAnnError, match="another batch"):
            OutputLock(tmp_path / "r.ecsv").acquire()
    with OutputLock(tmp_path / "r.ecsv"):
        pass


# ------------------------------------------------------------------ options, inputs, exits
BAD_OPTIONS = [
    (["--fix", "Logg=abc"], "fixed value of Logg: 'abc' is not a number"),
    (["--mdegree", "-3"], "mdegree (--mdegree) -3"),
    (["--guess", "Tef=5000"], "unknown parameter 'Tef'"),
    (["--guess", "Teff=12000"], "guess Teff = 12000 K outside the limits [3500, 8000]"),
    (["--fix", "Logg=9"], "fixed value Logg = 9 dex outside the limits [0, 6]"),
    (["--fix", "Logg=nan"], "fixed value Logg = nan dex outside the limits"),
    (["--range", "8000,9000"], "wave_range (--range) 8000-9000 Å: the network example_interpolator.fits covers"),
    (["--range", "7000,5000"], "--range '7000,5000': expected LMIN,LMAX with LMIN < LMAX"),
    (["--engine", "gdl", "--losvd", "analytic"], "losvd (--losvd) analytic: the native engine's"),
    (["--engine", "native", "--backend", "pygdl"], "backend (--backend) pygdl"),
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "workers (-j) and scheduler (--scheduler)"),
    (["--workers", "-1"], "workers (-j) -1"),
    (["--guess", "Logg=3", "--fix", "Logg=2"], "Logg: both guessed and fixed"),
    (["--retry-failed"], "retry_failed (--retry-failed) acts on a resumed batch"),
    (["--add-spectra"], "add_spectra (--add-spectra) acts on a resumed batch"),
    (["--resume", "--overwrite"], "resume (--resume) and overwrite (--overwrite)"),
    (["--mask", "6000"], "--mask '6000': expected LO,HI"),
    (["--fix", "Logg=NOTABLE:logg"], "no such table"),
    (["--plot", "r.txt"], "--plot r.txt: not a figure format matplotlib writes"),
]


@pytest.mark.parametrize("options, message", BAD_OPTIONS, ids=[" ".join(o) for o, _ in BAD_OPTIONS])
def test_every_bad_option_is_refused_up_front_in_one_line(spectra, tmp_path, options, message):
    engine = [] if "--engine" in options else ["--engine", "native"]
    result = cli_here("fit", spectra[0], "-o", tmp_path / "r.ecsv", "--quiet", *engine, *options)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ulyss-ann: error: ") and message in lines[0], lines
    assert sorted(os.listdir(tmp_path)) == []  # no table, no journal, no lock: no worker ever started


def without_ulyss(tmp_path):
    """The environment of a user's machine where ULySS is in none of the places searched."""
    env = dict(os.environ, ULYSS_DIR=str(tmp_path / "no-ulyss"), XDG_DATA_HOME=str(tmp_path / "data"))
    if os.path.isfile("/usr/local/share/ulyss/pgm/ulyss.pro"):
        pytest.skip("ULySS is installed in /usr/local/share/ulyss, the last place searched")
    return env


@pytest.mark.parametrize("options, message", [
    (["--losvd", "analytic"], "losvd (--losvd) analytic: the native engine's"),
    (["--guess", "Teff=12000"], "guess Teff = 12000 K outside the limits [3500, 8000]"),
    (["--guess", "Logg=3", "--fix", "Logg=2"], "Logg: both guessed and fixed"),
    ([], "ULySS not found"),
])
def test_without_ulyss_a_bad_option_is_named_before_the_missing_ulyss(spectra, tmp_path, options, message):
    # A user who typed an impossible combination hears about it first, on any machine; a good
    # command then names what is missing, with the fix.
    result = cli("fit", spectra[0], "-o", tmp_path / "r.ecsv", "--quiet", "--engine", "gdl", *options,
                 env=without_ulyss(tmp_path), timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "r.ecsv").exists()


def test_folders_unreadable_files_and_missing_files_are_named_as_such(spectra, tmp_path):
    unreadable = tmp_path / "locked.fits"
    shutil.copy(spectra[0], unreadable)
    unreadable.chmod(0)
    files = [str(tmp_path), str(unreadable), str(tmp_path / "missing.fits"), spectra[1]]
    table = fit(files, MODEL, tmp_path / "r.ecsv", workers=0, **FAST)
    status = dict(zip(table["id"], table["status"]))
    assert status[tmp_path.name] == f"error: {tmp_path}: a folder, not a spectrum file (give the files in it, " \
                                    f"e.g. {tmp_path}/*.fits)"
    if os.geteuid() != 0:  # root reads any file
        assert status["locked"] == f"error: {unreadable}: cannot be read (permission denied)"
    assert status["missing"] == f"error: {tmp_path / 'missing.fits'}: no such file" and status["sim001"] == "ok"
    assert set(table["engine"]) == {"native"}


def test_same_file_names_in_two_folders_get_distinct_ids_and_a_bare_name_in_a_fix_table_is_ambiguous(
        spectra, tmp_path):
    files = []
    for night, source in (("night1", spectra[0]), ("night2", spectra[1])):
        (tmp_path / night).mkdir()
        files.append(str(tmp_path / night / "spec.fits"))
        shutil.copy(source, files[-1])
    files.append(spectra[2])
    bare = tmp_path / "bare.ecsv"
    Table({"id": ["spec", "sim002", "sim002"], "logg": [3.0, 4.0, 3.9]}).write(bare)
    table = fit(files, MODEL, tmp_path / "a.ecsv", workers=0, fixed={"Logg": f"{bare}:logg"}, **LOGG_FIXED)
    assert list(table["id"]) == ["night1/spec", "night2/spec", "sim002"]
    assert table["status"][0] == (f"error: 'spec' in {bare}:logg is ambiguous: several inputs have that file name; "
                                  "give this one its id 'night1/spec' in the table")
    assert table["status"][2] == f"error: 'sim002' is 2 times in {bare}:logg with different values (4, 3.9): keep one"
    named = tmp_path / "named.ecsv"
    Table({"id": ["night1/spec", "night2/spec", "sim002"], "logg": [2.8, 3.6, 4.0]}).write(named)
    table = fit(files, MODEL, tmp_path / "b.ecsv", workers=0, fixed={"Logg": f"{named}:logg"},
                save_fits=str(tmp_path / "fits"), **LOGG_FIXED)
    assert list(table["status"]) == ["ok"] * 3 and list(table["Logg"]) == [2.8, 3.6, 4.0]
    assert abs(table["Teff"][0] - TRUTH[0][0]) < 60 and abs(table["Teff"][1] - TRUTH[1][0]) < 60
    assert sorted(os.listdir(tmp_path / "fits")) == ["night1_spec_fit.fits", "night2_spec_fit.fits",
                                                      "sim002_fit.fits"]


def test_exit_status_says_whether_all_some_or_none_were_fitted(spectra, tmp_path):
    empty = tmp_path / "empty.fits"
    empty.write_bytes(b"")
    assert cli_here("fit", spectra[0], "-j", "0", "-o", tmp_path / "a.ecsv", *CLI_FAST).returncode == 0
    assert cli_here("fit", spectra[0], empty, "-j", "0", "-o", tmp_path / "b.ecsv", *CLI_FAST).returncode == 1
    none = cli_here("fit", empty, tmp_path / "missing.fits", "-j", "0", "-o", tmp_path / "c.ecsv", *CLI_FAST)
    assert none.returncode == 3 and set(Table.read(tmp_path / "c.ecsv")["status"]) != {"ok"}
    assert Table.read(tmp_path / "c.ecsv")["status"][0] == f"error: {empty}: an empty file (0 bytes): nothing was " \
                                                          "written to it"
    assert "exit status:" in cli_here("fit", "--help").stdout


@pytest.mark.first_leg
def test_retry_failed_fits_error_rows_again_on_resume(spectra, tmp_path):
    late = tmp_path / "late.fits"
    out = tmp_path / "r.ecsv"
    table = fit([spectra[0], str(late)], MODEL, out, workers=0, **FAST)
    assert table["status"][1] == f"error: {late}: no such file"
    shutil.copy(spectra[1], late)  # the file arrives
    again = fit([spectra[0], str(late)], MODEL, out, workers=0, resume=True, **FAST)
    assert again["status"][1].startswith("error:")  # an error row stays without --retry-failed
    again = fit([spectra[0], str(late)], MODEL, out, workers=0, resume=True, retry_failed=True, **FAST)
    assert list(again["status"]) == ["ok", "ok"] and again["time"][0] == table["time"][0]  # only the error refitted


# ------------------------------------------------------------------ names, formats, metadata
def test_non_ascii_names_and_apostrophes_with_save_fits_natively(tmp_path):
    """Without GDL too (tests/test_gdl_batch_cases.py has both engines where GDL is installed)."""
    name = "étoile's star"
    interp = example_interpolator()
    wave, flux, sigma = simulate_spectrum(interp, [5400.0, 3.2, -1.5], velocity=5.0, fwhm=2.0, snr=100.0, rng=3)
    write_muse_spectrum(tmp_path / f"{name}.fits", wave, flux, sigma)
    folder = tmp_path / "sav d'été"
    table = fit([str(tmp_path / f"{name}.fits")], MODEL, tmp_path / "r.ecsv", workers=0, save_fits=str(folder),
                **FAST)
    assert list(table["status"]) == ["ok"] and table["id"][0] == name
    with fits.open(folder / f"{name}_fit.fits") as hdul:
        assert int(hdul["MASK"].data.sum()) == table["n_pix"][0]
        assert hdul[0].header["OBJECT"] == "\\xe9toile's star"  # FITS headers are ASCII


def test_the_output_format_follows_the_name_and_an_unknown_one_is_refused_up_front(spectra, tmp_path):
    table = fit(spectra[:1], MODEL, tmp_path / "r.fits", workers=0, **FAST)
    back = Table.read(tmp_path / "r.fits")
    assert back["Teff"][0] == table["Teff"][0] and str(back["Teff"].unit) == "K"
    assert sorted(os.listdir(tmp_path)) == ["r.fits", "r.fits.journal.jsonl"]  # no temporary file left
    with pytest.raises(UlyssAnnError, match=r"r\.xyz: astropy cannot tell one table format from this name"):
        fit(spectra[:1], MODEL, tmp_path / "r.xyz", workers=0, **FAST)
    assert not (tmp_path / "r.xyz.journal.jsonl").exists()


def test_metadata_of_any_type_never_stops_the_journal(spectra, tmp_path):
    import astropy.units as u
    from astropy.coordinates import Angle

    from ulyss_ann.spectra.readers import read_spectrum

    base = read_spectrum(spectra[0])
    odd = type(base)(base.flux, base.error, base.wavelength, base.good, base.grid,
                     {"id": "odd", "ra": Angle("12h30m00s"), "dec": -53.7 * u.deg, "snr": np.float32("nan")})
    table = fit([odd, spectra[1]], MODEL, tmp_path / "r.ecsv", workers=0, **FAST)
    assert list(table["status"]) == ["ok", "ok"]
    assert table["ra"][0] == pytest.approx(187.5) and table["dec"][0] == pytest.approx(-53.7)
    assert table["snr"].mask[0] and not journal_of(tmp_path / "r.ecsv").read().damaged


@pytest.mark.first_leg
def test_resume_accepts_the_same_fix_table_under_another_path(spectra, tmp_path):
    logg = tmp_path / "a" / "logg.ecsv"
    logg.parent.mkdir()
    Table({"id": ["sim000", "sim001"], "logg": [2.8, 3.6]}).write(logg)
    out = tmp_path / "r.ecsv"
    fit(spectra[:1], MODEL, out, workers=0, fixed={"Logg": f"{logg}:logg"}, **LOGG_FIXED)
    os.symlink(tmp_path / "a", tmp_path / "b")  # the same file reached by another path, as a cluster mounts it
    again = fit(spectra[:2], MODEL, out, workers=0, fixed={"Logg": f"{tmp_path / 'b' / 'logg.ecsv'}:logg"},
                resume=True, add_spectra=True, **LOGG_FIXED)
    assert list(again["Logg"]) == [2.8, 3.6]
    Table({"id": ["sim000", "sim001"], "logg": [2.8, 3.7]}).write(logg, overwrite=True)  # another table
    with pytest.raises(UlyssAnnError, match="fixed: "):
        fit(spectra[:2], MODEL, out, workers=0, fixed={"Logg": f"{logg}:logg"}, resume=True, **LOGG_FIXED)


@pytest.mark.first_leg
def test_ids_are_the_runs_when_a_same_named_file_is_added(spectra, tmp_path):
    for night, source in (("night1", spectra[0]), ("night2", spectra[1])):
        (tmp_path / night).mkdir()
        shutil.copy(source, tmp_path / night / "spec.fits")
    out = tmp_path / "r.ecsv"
    first = fit([str(tmp_path / "night1" / "spec.fits")], MODEL, out, workers=0, save_fits=str(tmp_path / "f"),
                **FAST)
    assert list(first["id"]) == ["spec"]
    files = [str(tmp_path / "night1" / "spec.fits"), str(tmp_path / "night2" / "spec.fits")]
    again = fit(files, MODEL, out, workers=0, resume=True, add_spectra=True, save_fits=str(tmp_path / "f"), **FAST)
    assert list(again["id"]) == ["spec", "night2/spec"]  # the fitted one keeps its id, its files their names
    assert sorted(os.listdir(tmp_path / "f")) == ["night2_spec_fit.fits", "spec_fit.fits"]
    assert again["time"][0] == first["time"][0]
