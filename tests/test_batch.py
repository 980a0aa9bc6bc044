"""The batch driver with real GDL and the real ULySS: results, bad input, resume, crashes."""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from astropy.table import Table

from conftest import SHARED, reference_file, simulated_batch
from ulyss_ann import UlyssAnnError, example_interpolator
from ulyss_ann.fitting.batch.driver import fit
from ulyss_ann.fitting.batch.journal import Journal
from ulyss_ann.spectra.examples import example_interpolator_path
from ulyss_ann.spectra.simulate import write_muse_spectrum

pytestmark = pytest.mark.gdl

MODEL = example_interpolator_path()
FAST = dict(guesses={"Teff": [5400.0], "Logg": [3.0], "Fe/H": [-1.5]}, mdegree=8, progress=False)
TRUTH = [(5200.0, 2.8, -1.8), (5600.0, 3.6, -1.2), (5900.0, 4.0, -2.0), (5000.0, 2.2, -1.5),
         (5400.0, 3.2, -1.0), (5700.0, 3.9, -1.7), (5100.0, 2.5, -2.2), (5500.0, 3.4, -1.4)]


@pytest.fixture(scope="module")
def spectra(tmp_path_factory):
    """Eight MUSE-like spectra simulated from the example network (S/N 100), truth in the header."""
    return simulated_batch(tmp_path_factory.mktemp("spectra"), TRUTH, lambda i: 10.0 * (i - 4), truth_cards=True)


def test_serial_fit_recovers_the_truth(spectra, tmp_path):
    table = fit(spectra[:4], MODEL, tmp_path / "r.ecsv", workers=0, **FAST)
    assert list(table["status"]) == ["ok"] * 4
    assert list(table["id"]) == ["sim000", "sim001", "sim002", "sim003"]
    pulls = []
    for row, (teff, logg, feh) in zip(table, TRUTH):
        pulls += [(row["Teff"] - teff) / row["e_Teff"], (row["Fe/H"] - feh) / row["e_Fe/H"]]
        assert abs(row["Teff"] - teff) < 60 and abs(row["Fe/H"] - feh) < 0.1
    assert np.max(np.abs(pulls)) < 5  # quoted errors are of the size of the actual errors
    assert str(table["Teff"].unit) == "K" and str(table["cz"].unit) == "km / s"
    # inside the GSL grid the example network was trained on: no extrapolation flag
    assert np.all(table["node_distance"] < 1) and not any("far-from-nodes" in f for f in table["flag"])
    back = Table.read(tmp_path / "r.ecsv")  # ECSV keeps units and values
    assert str(back["Fe/H"].unit) == "dex" and back["engine"][0].startswith("gdl-")
    np.testing.assert_allclose(back["Teff"], table["Teff"])
    assert back.meta["model_sha256"] == back["model_sha256"][0]


@pytest.mark.first_leg  # machinery, the same Dask in both legs (the wheel leg's CLI tests still run workers)
def test_two_workers_give_the_serial_answers(spectra, tmp_path):
    serial = fit(spectra[:4], MODEL, tmp_path / "a.ecsv", workers=0, **FAST)
    parallel = fit(spectra[:4], MODEL, tmp_path / "b.ecsv", workers=2, **FAST)
    for name in ("Teff", "Logg", "Fe/H", "cz", "e_Teff"):
        np.testing.assert_allclose(parallel[name], serial[name], rtol=1e-9)


def test_bad_inputs_become_rows_and_the_batch_goes_on(spectra, tmp_path):
    corrupt = tmp_path / "corrupt.fits"
    corrupt.write_bytes(open(spectra[0], "rb").read()[:4000])
    far = tmp_path / "far.fits"
    write_muse_spectrum(far, 8000.0 + 1.25 * np.arange(400), np.ones(400), np.full(400, 0.01))
    holes = tmp_path / "holes.fits"
    from astropy.io import fits
    with fits.open(spectra[1]) as hdul:
        hdul[0].data[100:110] = np.nan
        hdul["SIGMA"].data[200:205] = 0.0
        hdul.writeto(holes)
    logg = tmp_path / "logg.ecsv"
    Table({"id": ["sim002", "holes", "corrupt", "far"], "logg": [9.5, 3.6, 3.0, 3.0]}).write(logg)
    files = [spectra[2], str(corrupt), str(far), str(holes), str(tmp_path / "missing.fits"), spectra[3]]
    table = fit(files, MODEL, tmp_path / "r.ecsv", workers=0, fixed={"Logg": f"{logg}:logg"},
                **dict(FAST, guesses={"Teff": [5400.0], "Fe/H": [-1.5]}))
    status = dict(zip(table["id"], table["status"]))
    assert f"fixed value (from {logg}:logg) for 'sim002': Logg = 9.5 dex outside the limits [0, 6]" \
        in status["sim002"]   # one row, not the batch
    assert "truncated or corrupt" in status["corrupt"]
    assert "no overlap" in status["far"]
    assert "no such file" in status["missing"]
    assert "no fixed value of Logg for 'sim003'" in status["sim003"]
    assert status["holes"] == "ok"
    assert set(table["engine"]) == {"gdl-subprocess"}  # failed rows name the engine the others ran with
    row = table[list(table["id"]).index("holes")]
    assert row["n_bad"] == 15 and row["Logg"] == 3.6 and row["e_Logg"] == 0


@pytest.mark.first_leg  # machinery: killed, resumed, repaired (docs/development.md)
def test_resume_fits_only_what_is_missing(spectra, tmp_path):
    out = tmp_path / "r.ecsv"
    first = fit(spectra[:2], MODEL, out, workers=0, **FAST)
    with pytest.raises(UlyssAnnError, match="--resume"):
        fit(spectra[:3], MODEL, out, workers=0, **FAST)
    second = fit(spectra[:3], MODEL, out, workers=0, resume=True, add_spectra=True, **FAST)
    assert len(second) == 3 and list(second["time"][:2]) == list(first["time"])  # not refitted
    state = Journal(str(out) + ".journal.jsonl").read()
    assert len(state.rows) == 3 and set(state.counts.values()) == {1}


def _dask_workers():
    """Pids of this process's Dask worker processes (spawned by the nannies, which live here)."""
    def parent(pid):
        with open(f"/proc/{pid}/stat") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[1])

    def spawned(pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                return b"spawn_main" in handle.read()
        except OSError:
            return False

    pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and spawned(int(p))]
    return [p for p in pids if parent(p) == os.getpid()]


@pytest.mark.first_leg  # machinery: killed, resumed, repaired (docs/development.md)
def test_a_killed_worker_is_replaced_and_nothing_is_lost(spectra, tmp_path):
    out = tmp_path / "r.ecsv"
    journal = str(out) + ".journal.jsonl"
    done, killed = {}, []
    runner = threading.Thread(target=lambda: done.update(table=fit(spectra, MODEL, out, workers=2, **FAST)))
    runner.start()
    deadline = time.time() + 120
    while time.time() < deadline and len(Journal(journal).read().rows) < 2:
        time.sleep(0.05)
    workers = _dask_workers()
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)  # mid-batch: the nanny restarts it, its task is rescheduled
    killed.append(workers[0])
    runner.join(300)
    table = done["table"]
    assert sorted(table["id"]) == [f"sim{i:03d}" for i in range(8)]
    assert list(table["status"]) == ["ok"] * 8
    state = Journal(journal).read()
    assert len(state.rows) == 8 and set(state.counts.values()) == {1} and not state.damaged
    assert killed[0] not in _dask_workers()


@pytest.mark.first_leg  # machinery: killed, resumed, repaired (docs/development.md)
def test_driver_killed_then_resumed_fits_each_spectrum_once(spectra, tmp_path):
    out = tmp_path / "r.ecsv"
    command = [sys.executable, "-m", "ulyss_ann.cli", "fit", *spectra, "--model", MODEL, "-o", str(out),
               "--workers", "1", "--guess", "Teff=5400", "--guess", "Logg=3", "--guess", "Fe/H=-1.5",
               "--mdegree", "8", "--quiet"]
    driver = subprocess.Popen(command, start_new_session=True, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = str(out) + ".journal.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and len(Journal(journal).read().rows) < 2:
        time.sleep(0.05)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver, its cluster and GDL: all at once
    driver.wait()
    before = len(Journal(journal).read().rows)
    assert 2 <= before < 8 and not out.exists()
    again = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=300,
                           stdin=subprocess.DEVNULL)
    assert again.returncode == 0, again.stderr
    table = Table.read(out)
    assert sorted(table["id"]) == [f"sim{i:03d}" for i in range(8)] and set(table["status"]) == {"ok"}
    state = Journal(journal).read()
    assert len(state.rows) == 8 and set(state.counts.values()) == {1}  # each fitted exactly once


@pytest.mark.pygdl
def test_backends_agree(spectra, tmp_path):
    a = fit(spectra[:1], MODEL, tmp_path / "a.ecsv", workers=1, backend="pygdl", **FAST)
    b = fit(spectra[:1], MODEL, tmp_path / "b.ecsv", workers=0, backend="subprocess", **FAST)
    assert a["engine"][0] == "gdl-pygdl" and b["engine"][0] == "gdl-subprocess"
    for name in ("Teff", "Logg", "Fe/H", "cz"):
        np.testing.assert_allclose(a[name], b[name], rtol=1e-10)


def test_cli_fits_the_real_muse_star(tmp_path):
    """Done-when: a sane metal-poor solution for the MUSE star through GDL + ULySS."""
    model = reference_file("gsl_ann_trial7.fits")
    star = SHARED / "data" / "muse" / "ngc6397id000010554jd2456865p5826f000.fits"
    result = subprocess.run([sys.executable, "-m", "ulyss_ann.cli", "fit", str(star), "--model", str(model),
                             "-o", str(tmp_path / "r.ecsv"), "--plot", str(tmp_path / "r.png")],
                            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    row = Table.read(tmp_path / "r.ecsv")[0]
    assert row["status"] == "ok" and row["n_guess"] == 6
    assert 5300 < row["Teff"] < 5600 and -2.2 < row["Fe/H"] < -1.6
    assert "1 spectrum: 1 fitted, 0 error, 0 failed (the machinery)" in result.stdout
    assert (tmp_path / "r.png").stat().st_size > 10000
    from PIL import Image

    # One spectrum: its fit and residuals (11 x 5.5 in), not the batch's histograms (12 x 7 in).
    assert Image.open(tmp_path / "r.png").size == (1210, 605)


def test_save_fits_writes_best_fit_and_ulyss_res(spectra, tmp_path):
    from astropy.io import fits

    table = fit(spectra[:1], MODEL, tmp_path / "r.ecsv", workers=0, save_fits=str(tmp_path / "fits"), **FAST)
    assert table["status"][0] == "ok"
    with fits.open(tmp_path / "fits" / "sim000_fit.fits") as hdul:
        data, best, resid, mask = (hdul[i].data for i in range(4))
        assert hdul[0].header["CTYPE1"] == "AWAV-LOG"
        np.testing.assert_allclose(resid, data - best)
        assert mask.sum() == table["n_pix"][0]
        # the residual rms of the table is the one of this best fit
        good = mask == 1
        assert np.sqrt(np.mean(resid[good] ** 2)) / np.mean(best[good]) == pytest.approx(table["rms"][0], rel=1e-6)
    from ulyss_ann.paper.selfinversion import read_res

    res = (tmp_path / "fits" / "sim000.res").read_text().splitlines()
    assert res[0].startswith("!BEGIN   ULYSS solut file") and any("SOL_VERS" in line for line in res)
    solution = read_res(tmp_path / "fits" / "sim000.res")  # ULySS's own format, read back
    assert solution["Teff"][0] == pytest.approx(table["Teff"][0], rel=1e-6)
    assert solution["Fe/H"][0] == pytest.approx(table["Fe/H"][0], abs=1e-6)


@pytest.mark.first_leg  # machinery: a Dask scheduler of ones own (docs/development.md)
def test_existing_scheduler(spectra, tmp_path):
    from dask.distributed import LocalCluster

    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None)
    try:
        table = fit(spectra[:2], MODEL, tmp_path / "r.ecsv", scheduler=cluster.scheduler_address, **FAST)
    finally:
        cluster.close(timeout=30)
    assert list(table["status"]) == ["ok", "ok"]


def test_missing_ulyss_stops_gdl_and_auto_falls_back_to_native(spectra, tmp_path):
    env = dict(os.environ, ULYSS_DIR=str(tmp_path / "nowhere"), XDG_DATA_HOME=str(tmp_path))
    if os.path.exists("/usr/local/share/ulyss/pgm/ulyss.pro"):
        pytest.skip("a ULySS is installed in /usr/local/share/ulyss on this machine")
    command = [sys.executable, "-m", "ulyss_ann.cli", "fit", spectra[0], "--workers", "0"]
    result = subprocess.run(command + ["--engine", "gdl", "-o", str(tmp_path / "r.ecsv")], capture_output=True,
                            text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "ULySS not found" in result.stderr and "ULYSS_DIR" in result.stderr
    assert not (tmp_path / "r.ecsv").exists()
    auto = subprocess.run(command + ["-o", str(tmp_path / "a.ecsv")], capture_output=True, text=True, env=env,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert auto.returncode == 0, auto.stderr
    table = Table.read(tmp_path / "a.ecsv")
    assert list(table["engine"]) == ["native"] and list(table["status"]) == ["ok"]
    assert abs(table["Teff"][0] - TRUTH[0][0]) < 60


def test_quality_flags():
    from ulyss_ann.fitting.preparation import PreparedFit
    from ulyss_ann.fitting.core import Solution
    from ulyss_ann.fitting.result import FitResult
    from ulyss_ann.spectra.spectrum import Spectrum

    interp = example_interpolator()
    spectrum = Spectrum(np.ones(20), None, np.arange(20.0), np.ones(20, bool), meta={"id": "x", "file": "/x"})
    prepared = PreparedFit(spectrum, 4800.0, 7300.0, np.ones(20, bool), np.array([8000.0, 0.2, -2.9]),
                           np.array([1, 1, 1]), np.array([0, 1, 0]), 0, 0.0, 1.0, None)
    solution = Solution(n_guess=6, best_guess=0, n_converged=1, chi2=1.0, rms=0.01, n_pix=100, cz=1.0, e_cz=0.1,
                        sigma=18.8, e_sigma=0.0, values=np.array([8000.0, 0.2, -2.9]),
                        errors=np.array([5.0, 0.0, 0.01]), status=np.array([3, 1, 0]), ln_start=8.5, ln_step=1e-4,
                        flux=np.ones(20), bestfit=np.ones(20), mask=np.ones(20, bool))
    result = FitResult.from_solution(solution, prepared, interp, "gdl-subprocess", "m.fits", "abc", 0.5)
    assert list(result.flags) == ["bound:Teff", "sigma-floor", "one-guess-converged", "far-from-nodes",
                                  "errors-estimated"]  # the Solution has no error array
    assert result.status == {"Teff": "high", "Logg": "fixed", "Fe/H": "free"}
    row = result.row()
    assert row["flag"].split(",") == list(result.flags)
    assert row["node_distance"] > 1
