"""Bundled example data, PHOENIX names, ULySS discovery and the test entry point."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import PROJECT, reference_file
from ulyss_ann import Interpolator, example_interpolator, example_spectrum
from ulyss_ann.spectra.phoenix import parse_phoenix_name, read_node_list
from ulyss_ann.gdl.ulyss_location import find_ulyss


def test_example_interpolator_is_labelled_surrogate():
    interp = example_interpolator()
    assert interp.is_surrogate
    assert interp.architecture == [3, 16, 32, 2099]
    assert any(key == "TRAINMSE" for key, _, _ in interp.meta)


def test_example_interpolator_reaches_its_stated_mse_on_the_surrogate_grid():
    """Provenance check: the quoted TRAINMSE is what it does on trial 8 at the GSL nodes."""
    trial8 = Interpolator.read(reference_file("gsl_ann_trial8.fits"))
    nodes = read_node_list(reference_file("gsl_nodes.txt"))
    params = np.array([[n["teff"], n["logg"], n["feh"]] for n in nodes])
    interp = example_interpolator()
    mse = np.mean((interp.evaluate(params) - trial8.evaluate(params)) ** 2)
    stated = dict((k, v) for k, v, _ in interp.meta)["TRAINMSE"]
    assert mse == pytest.approx(stated, rel=1e-6)
    # Its input scaling is the grid's, as the paper's preprocessing prescribes.
    np.testing.assert_allclose([p.mean for p in interp.parameters], params.mean(0), rtol=1e-12)
    np.testing.assert_allclose([p.scale for p in interp.parameters], params.std(0), rtol=1e-12)


def test_example_spectrum_is_muse_like_and_carries_its_truth():
    with example_spectrum() as hdul:
        flux, sigma, header = hdul[0].data, hdul["SIGMA"].data, hdul[0].header
    assert header["SIMULATD"] and header["CTYPE1"] == "AWAV"
    assert flux.shape == sigma.shape and np.all(sigma > 0)
    # The noise is what the header says: S/N per pixel ~ SIM_SNR.
    assert np.median(flux / sigma) == pytest.approx(header["SIM_SNR"], rel=0.1)
    truth = [header["SIM_TEFF"], header["SIM_LOGG"], header["SIM_FEH"]]
    assert example_interpolator().evaluate(truth).shape == (2099,)


@pytest.mark.parametrize("name, expected", [
    ("lte03500-0.50-0.0.Alpha=+0.40.PHOENIX-ACES-AGSS-COND-2011-HiRes.txt", (3500, 0.5, 0.0, 0.4)),
    ("lte05800-4.50+0.5.PHOENIX-ACES-AGSS-COND-2011-HiRes.fits", (5800, 4.5, 0.5, 0.0)),
    ("lte12000-6.00-3.0.Alpha=-0.20.PHOENIX-ACES-AGSS-COND-2011-HiRes.fits", (12000, 6.0, -3.0, -0.2)),
])
def test_phoenix_names(name, expected):
    p = parse_phoenix_name(name)
    assert (p["teff"], p["logg"], p["feh"], p["alpha"]) == expected
    assert str(p["feh"]) != "-0.0"


def test_phoenix_name_errors_name_the_line(tmp_path):
    with pytest.raises(ValueError, match="not a PHOENIX file name"):
        parse_phoenix_name("sun.fits")
    (tmp_path / "nodes.txt").write_text("0,lte03500-0.50-0.0.Alpha=+0.40.x\n1,garbage\n")
    with pytest.raises(ValueError, match="nodes.txt, line 2"):
        read_node_list(tmp_path / "nodes.txt")


def test_find_ulyss_order(tmp_path, monkeypatch):
    fake = tmp_path / "my_ulyss"
    (fake / "pgm").mkdir(parents=True)
    (fake / "pgm" / "ulyss.pro").write_text("; stand-in\n")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("ULYSS_DIR", str(fake))
    assert find_ulyss() == fake.resolve()
    monkeypatch.setenv("ULYSS_DIR", str(tmp_path / "nowhere"))
    if Path("/usr/local/share/ulyss/pgm/ulyss.pro").exists():
        pytest.skip("a ULySS is installed in /usr/local/share/ulyss on this machine")
    assert find_ulyss() is None
    (tmp_path / "xdg" / "ulyss").mkdir(parents=True)
    (fake / "pgm").rename(tmp_path / "xdg" / "ulyss" / "pgm")
    assert find_ulyss() == (tmp_path / "xdg" / "ulyss").resolve()


def test_ulyss_location_reports_what_to_do(tmp_path):
    env = dict(os.environ, ULYSS_DIR=str(tmp_path / "none"), XDG_DATA_HOME=str(tmp_path))
    result = subprocess.run([sys.executable, "-m", "ulyss_ann.gdl.ulyss_location"], env=env,
                            capture_output=True, text=True, timeout=60)
    if Path("/usr/local/share/ulyss/pgm/ulyss.pro").exists():
        pytest.skip("a ULySS is installed in /usr/local/share/ulyss on this machine")
    assert result.returncode == 1
    assert "ULySS not found" in result.stdout and "export ULYSS_DIR" in result.stdout


def test_tests_use_the_shared_ulyss_when_unset():
    shared = PROJECT.parent / "shared" / "ulyss"
    if not shared.is_dir():
        pytest.skip(f"{shared} absent: GDL tests will skip on this machine")
    assert find_ulyss() is not None


@pytest.mark.skipif(bool(os.environ.get("ULYSS_ANN_TEST_WHEEL")),
                    reason="the first leg runs it (a nested scripts/test would set up the venv this leg runs in)")
def test_scripts_test_fails_when_no_test_runs():
    """pytest's exit 5 (nothing collected) must fail ./scripts/test, hence CI. (The first leg only: in the
    wheel leg, tests skipped at import leave pytest nothing to say 5 about.)"""
    env = dict(os.environ, ULYSS_ANN_WHEEL_LEG="0",  # not a second wheel leg beside the one running now
               ULYSS_ANN_TEST_WORKERS="0")  # nor workers that would each collect the suite to run nothing
    # every test file ignored: pytest collects nothing and says 5, without importing the suite first
    result = subprocess.run([str(PROJECT / "scripts" / "test"), "--ignore-glob", "tests/test_*.py", "-q"],
                            capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL, env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "collected no tests" in result.stderr
    assert "[setup] venv up to date" in result.stdout  # set-up is idempotent: nothing reinstalled
    ci = (PROJECT / ".ci" / "run").read_text()
    assert "exec ./scripts/test" in ci
