"""Batch integrity (#14) when the machinery fails: a full disk, Ctrl-C, a GDL process killed mid-fit, the
retries of --resume, a spectrum sampled far finer than the network. Real processes, a real full disk, real
GDL where the case is GDL's."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from astropy.table import Table

from conftest import CLI_FAST, FAST, MODEL, TRUTH, can_mount_tmpfs, cli_here, journal_of, simulated_batch
from ulyss_ann import UlyssAnnError, example_interpolator
from ulyss_ann.fitting.batch.driver import fit
from ulyss_ann.fitting.batch.journal import Journal
from ulyss_ann.spectra.examples import example_spectrum_path
from ulyss_ann.spectra.simulate import simulate_spectrum, write_muse_spectrum


# `first_leg`: the machinery's failures (disks, signals, killed processes, retries, schedulers), which
# NumPy 2, the newest astropy and the wheel do not change; the cost warning and what a worker's start
# does to a script (Python's own) run in both legs (docs/development.md).


@pytest.fixture(scope="module")
def spectra(tmp_path_factory):
    """The six spectra of tests/test_batch_integrity.py."""
    return simulated_batch(tmp_path_factory.mktemp("spectra"), TRUTH, lambda i: 10.0 * i)


# ------------------------------------------------------------------ a full disk
@pytest.mark.first_leg
@pytest.mark.skipif(not can_mount_tmpfs(), reason="needs unshare -rm and tmpfs (a user namespace) for a real "
                                                   "full disk")
def test_a_full_disk_stops_cleanly_keeps_the_journal_and_resume_completes(spectra, tmp_path):
    """A real full disk: a 64 KiB tmpfs in a private mount namespace, filled up by a file."""
    disk, report = tmp_path / "disk", tmp_path / "report"
    disk.mkdir()
    report.mkdir()
    fit_command = " ".join([sys.executable, "-m", "ulyss_ann.cli", "fit", *spectra, "-j", "0", "-o",
                            f"{disk}/r.ecsv", *CLI_FAST])
    script = textwrap.dedent(f"""\
        set -u
        mount -t tmpfs -o size=64k tmpfs {disk}
        fill() {{ dd if=/dev/zero of={disk}/filler bs=1k count=$1 2>/dev/null; }}
        fill 56                                     # room for the start of the journal only
        {fit_command} > {report}/1.out 2> {report}/1.err; echo $? > {report}/1.rc
        cp {disk}/r.ecsv.journal.jsonl {report}/1.journal; ls -a {disk} > {report}/1.ls
        rm {disk}/filler                            # room again: the batch completes
        {fit_command} --resume > {report}/2.out 2> {report}/2.err; echo $? > {report}/2.rc
        cp {disk}/r.ecsv {report}/2.ecsv; cp {disk}/r.ecsv.journal.jsonl {report}/2.journal
        rm {disk}/r.ecsv; fill 100                  # now the table cannot be written
        {fit_command} --resume > {report}/3.out 2> {report}/3.err; echo $? > {report}/3.rc
        ls -a {disk} > {report}/3.ls; rm {disk}/filler
        {fit_command} --resume > {report}/4.out 2> {report}/4.err; echo $? > {report}/4.rc
        cp {disk}/r.ecsv {report}/4.ecsv; cp {disk}/r.ecsv.journal.jsonl {report}/4.journal
        """)
    subprocess.run(["unshare", "-rm", "sh", "-c", script], check=True, timeout=600, stdin=subprocess.DEVNULL)

    def read(name):
        return (report / name).read_text()
    # 1: the journal could not take the next record: one line, exit 2, the rows before kept, no lock left
    assert read("1.rc").strip() == "2", read("1.err")
    err = read("1.err").strip().splitlines()
    assert len(err) == 1 and "cannot write the journal (No space left on device)" in err[0] and "--resume" in err[0]
    kept = Journal(report / "1.journal").read()
    assert 0 < len(kept.rows) < len(spectra) and set(r["status"] for r in kept.rows.values()) == {"ok"}
    assert read("1.ls").split() == [".", "..", "filler", "r.ecsv.journal.jsonl"]
    # 2: resumed with room: every spectrum once, ok
    assert read("2.rc").strip() == "0", read("2.err")
    done = Journal(report / "2.journal").read()
    assert len(done.rows) == len(spectra) and set(done.counts.values()) == {1}
    assert set(Table.read(report / "2.ecsv")["status"]) == {"ok"}
    # 3: the table could not be written: one line, exit 2, no temporary file, the journal intact
    assert read("3.rc").strip() == "2" and "cannot write the table (No space left on device)" in read("3.err")
    assert len(read("3.err").strip().splitlines()) == 1
    assert read("3.ls").split() == [".", "..", "filler", "r.ecsv.journal.jsonl"]
    # 4: with room, --resume fits nothing and writes the same table
    assert read("4.rc").strip() == "0" and open(report / "4.journal", "rb").read() == \
        open(report / "2.journal", "rb").read()
    np.testing.assert_array_equal(Table.read(report / "4.ecsv")["Teff"], Table.read(report / "2.ecsv")["Teff"])


# ------------------------------------------------------------------ Ctrl-C
# Ctrl-C must come while fits remain: 40 spectra with the paper's defaults (6 guesses, degree 20) leave
# seconds of work after the first row (six spectra with one guess could all finish before the signal
# arrived; 16 with degree 8 left 0.36 s).
SLOW = ["--engine", "native", "--quiet"]


@pytest.mark.first_leg
def test_ctrl_c_of_the_whole_process_group_prints_one_line(tmp_path):
    spectra = simulated_batch(tmp_path, (TRUTH * 7)[:40], lambda i: 3.0 * i)
    out = tmp_path / "r.ecsv"
    command = [sys.executable, "-m", "ulyss_ann.cli", "fit", *spectra, "-o", str(out), "-j", "2", *SLOW]
    # Ctrl-C as in a terminal: SIGINT handled, even where this suite was started in the background by a
    # shell without job control, which leaves SIGINT ignored in every process it starts (Python then
    # installs no KeyboardInterrupt handler)
    driver = subprocess.Popen(command, start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and len(journal_of(out).read().rows) < 1:
        time.sleep(0.05)
    os.killpg(driver.pid, signal.SIGINT)  # what a terminal does: the driver and every worker
    print(f"{len(journal_of(out).read().rows)} of {len(spectra)} fitted when Ctrl-C came")
    stdout, stderr = driver.communicate(timeout=120)
    assert driver.returncode == 130
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ulyss-ann: interrupted: the spectra finished are in"), stderr
    assert len(journal_of(out).read().rows) < len(spectra)  # interrupted: some were not fitted
    again = cli_here("fit", *spectra, "-o", out, "-j", "0", *SLOW, "--resume")
    assert again.returncode == 0, again.stderr
    state = journal_of(out).read()
    assert len(state.rows) == len(spectra) and set(state.counts.values()) == {1}


# ------------------------------------------------------------------ a spectrum sampled far finer than the network
def test_a_spectrum_sampled_far_finer_than_the_network_is_warned_about_with_the_cost(spectra, tmp_path):
    from ulyss_ann.errors import OversampledWarning

    interp = example_interpolator()
    wave, flux, sigma = simulate_spectrum(interp, [5500.0, 3.5, -1.5], velocity=0.0, fwhm=2.0, snr=100.0, rng=1)
    fine = np.arange(wave[0], wave[-1], (wave[1] - wave[0]) / 10)  # 10 times the network's pixels
    write_muse_spectrum(tmp_path / "fine.fits", fine, np.interp(fine, wave, flux), np.interp(fine, wave, sigma))
    with pytest.warns(OversampledWarning, match=r"fine: 2\d{4} pixels in .* 10 times finer than the network's "
                                                r"sampling .* costs ~10 times more"):
        table = fit([str(tmp_path / "fine.fits"), spectra[0]], MODEL, tmp_path / "r.ecsv", workers=0, **FAST)
    assert list(table["status"]) == ["ok", "ok"] and abs(table["Teff"][0] - 5500) < 60


# ------------------------------------------------------------------ failures of the machinery
def _gdl_children():
    """Pids of the gdl processes this process started (the GDL engine's subprocess sessions)."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as handle:
                name, rest = handle.read().split(") ", 1)
            if name.endswith("(gdl") and int(rest.split()[1]) == os.getpid():
                pids.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return pids


@pytest.mark.first_leg
@pytest.mark.gdl
def test_a_gdl_process_killed_mid_fit_gives_a_failed_row_that_resume_fits_again(spectra, tmp_path):
    import threading

    out = tmp_path / "r.ecsv"
    slow = dict(FAST, engine="gdl", backend="subprocess",  # 12 guesses: a fit of seconds, to be killed in
                guesses={"Teff": [4800.0, 5400.0, 6000.0], "Logg": [2.0, 3.5], "Fe/H": [-2.0, -1.0]})
    done = {}
    runner = threading.Thread(target=lambda: done.update(table=fit(spectra[:3], MODEL, out, workers=0, **slow)))
    runner.start()
    deadline = time.time() + 300
    while time.time() < deadline and len(journal_of(out).read().rows) < 1:
        time.sleep(0.05)
    time.sleep(0.5)  # into the second fit
    for pid in _gdl_children():
        os.kill(pid, signal.SIGKILL)
    runner.join(300)
    status = list(done["table"]["status"])
    assert status[0] == "ok" and status[1].startswith("failed: gdl exited (status -9: killed) during the call")
    assert status[2] == "ok"  # the next spectrum ran in a new gdl
    again = fit(spectra[:3], MODEL, out, workers=0, resume=True, **slow)
    assert list(again["status"]) == ["ok"] * 3
    assert journal_of(out).read().counts == {spectra[0]: 1, spectra[1]: 2, spectra[2]: 1}  # failed, then ok


@pytest.mark.first_leg
def test_resume_retries_a_machinery_failure_three_times_in_all(spectra, tmp_path):
    from ulyss_ann.fitting.batch.journal import failure_row
    from ulyss_ann.fitting.batch.resume import MACHINERY_TRIES

    out = tmp_path / "r.ecsv"
    table = fit(spectra[:2], MODEL, out, workers=0, **FAST)
    journal = journal_of(out)
    for _ in range(MACHINERY_TRIES):  # as a worker dying on this spectrum three times would leave it
        journal.append(failure_row(spectra[1], "sim001", "failed: the worker died fitting it, 3 times (KilledWorker)",
                                   "native", "example_interpolator.fits", table["model_sha256"][0]))
    again = fit(spectra[:2], MODEL, out, workers=0, resume=True, **FAST)
    assert again["status"][1].startswith("failed: the worker died")  # given up: not tried a fourth time
    assert journal.read().counts[spectra[1]] == 1 + MACHINERY_TRIES
    assert fit(spectra[:2], MODEL, out, workers=0, resume=True, retry_failed=True, **FAST)["status"][1] == "ok"


@pytest.mark.first_leg
def test_a_single_machinery_failure_is_fitted_again_by_resume(spectra, tmp_path):
    from ulyss_ann.fitting.batch.journal import failure_row

    out = tmp_path / "r.ecsv"
    first = fit(spectra[:2], MODEL, out, workers=0, **FAST)
    journal_of(out).append(failure_row(spectra[1], "sim001", "failed: gdl exited (status -9: killed) during the call",
                                       "native", "example_interpolator.fits", first["model_sha256"][0]))
    assert journal_of(out).read().rows[spectra[1]]["status"].startswith("failed:")  # the last record counts
    again = fit(spectra[:2], MODEL, out, workers=0, resume=True, **FAST)
    # fitted alone now, in a block of two before: the same fit, summed by BLAS in another order
    assert list(again["status"]) == ["ok", "ok"] and again["Teff"][1] == pytest.approx(first["Teff"][1], rel=1e-12)
    assert journal_of(out).read().counts == {spectra[0]: 1, spectra[1]: 3}  # ok, failed, ok again


# ------------------------------------------------------------------ Dask absent, or workers that cannot start
def test_without_dask_a_parallel_fit_is_one_line_before_any_work(tmp_path):
    def fit_without_dask(*options):
        code = ("import sys; sys.modules['distributed'] = None; from ulyss_ann.cli.main import main; "
                f"sys.exit(main(['fit', {example_spectrum_path()!r}, '-o', {str(tmp_path / 'r.ecsv')!r}, "
                f"'--engine', 'native', *{list(options)!r}]))")
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)

    result = fit_without_dask("-j", "2")
    assert result.returncode == 2 and result.stderr.splitlines() == [
        "ulyss-ann: error: fitting on several cores or a cluster needs Dask: pip install 'ulyss_ann[dask]', "
        "or fit in this process with workers=0 (-j 0)"]
    assert list(tmp_path.iterdir()) == []  # no journal, no lock: the same command with -j 0 just runs
    # one spectrum by default: too little work for a cluster, fitted in this process, without Dask
    result = fit_without_dask("--quiet")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "r.ecsv").is_file()


def test_a_script_written_naively_runs_its_body_once_with_two_workers(tmp_path):
    """The README's quick start pasted into a script, without `if __name__ == "__main__":`: Dask's workers
    (spawned by their nannies) used to run the script again — each tried to start a cluster of its own and the
    batch died in ~250 lines of tracebacks; with the guard, what came before it ran once per worker too."""
    pytest.importorskip("distributed")
    for name in ("a.fits", "b.fits"):
        shutil.copy(example_spectrum_path(), tmp_path / name)
    (tmp_path / "naive.py").write_text(textwrap.dedent("""\
        import ulyss_ann
        print("the script's body ran", flush=True)
        table = ulyss_ann.fit(["a.fits", "b.fits"], "example", "r.ecsv", workers=2, progress=False,
                              engine="native", mdegree=8, guesses={"Teff": [5400], "Logg": [3], "Fe/H": [-1.5]})
        print(table["status"].tolist())
        """))
    result = subprocess.run([sys.executable, "naive.py"], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stdout.splitlines() == ["the script's body ran", "['ok', 'ok']"], result.stdout


@pytest.mark.first_leg
def test_a_cluster_that_cannot_be_used_with_output_none_says_nothing_was_written():
    """Not "run again with resume=True": without an output there is no journal to resume."""
    pytest.importorskip("distributed")
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}), pytest.raises(UlyssAnnError) as raised:
        fit([example_spectrum_path()], MODEL, None, scheduler="tcp://127.0.0.1:9", **FAST)
    message = str(raised.value)
    assert message.startswith("cannot use the Dask scheduler tcp://127.0.0.1:9 (") and \
        message.endswith("nothing was written (output=None keeps the results in memory only: there is nothing "
                         "to resume)") and "resume=True" not in message, message


@pytest.mark.first_leg
def test_an_unreachable_scheduler_is_one_line_and_resume_then_fits(tmp_path):
    out = tmp_path / "r.ecsv"
    env = dict(os.environ, DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="2s")  # Dask's own 30 s, shortened
    command = [sys.executable, "-m", "ulyss_ann.cli", "fit", example_spectrum_path(), "-o", str(out),
               "--scheduler", "tcp://127.0.0.1:9", *CLI_FAST]  # port 9 (discard): nothing listens
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ulyss-ann: error: cannot use the Dask scheduler "
                                                   "tcp://127.0.0.1:9 (") and "--resume" in lines[0], lines
    again = cli_here("fit", example_spectrum_path(), "-o", out, "-j", "0", *CLI_FAST, "--resume")
    assert again.returncode == 0, again.stderr
    assert Table.read(out)["status"].tolist() == ["ok"]


@pytest.mark.parametrize("spec", ["a script's", "none at all (IPython's namespace module)"])
def test_the_main_module_is_put_back_as_it_was_after_a_worker_starts(monkeypatch, spec):
    import types

    from ulyss_ann.fitting.batch.worker_processes import main_module_not_rerun

    main = types.ModuleType("__main__")
    if spec.startswith("none"):
        del main.__spec__
    else:
        main.__spec__ = original = object()
    monkeypatch.setitem(sys.modules, "__main__", main)
    with main_module_not_rerun():
        with main_module_not_rerun():   # nannies start their workers concurrently
            assert main.__spec__.name == "__main__"   # what multiprocessing never runs again
        assert main.__spec__.name == "__main__"
    if spec.startswith("none"):
        assert "__spec__" not in vars(main)
    else:
        assert main.__spec__ is original
    monkeypatch.setitem(sys.modules, "__main__", None)   # no main module: nothing to hide, nothing raised
    with main_module_not_rerun():
        pass
