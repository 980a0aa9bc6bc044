"""Batch cases of issue #14 around GDL, with real GDL and the real ULySS (no stubs).

* ``-j 0`` with the in-process bridge (python3-gdl) gives the subprocess bridge's answers,
  also where ``GDL`` was imported before ulyss_ann set its path (a notebook).
* Spectrum files and --save-fits folders with non-ASCII characters and apostrophes: both
  engines write ``<id>_fit.fits`` (and GDL ULySS's ``<id>.res``) under those names.
* A spectrum ULySS finds no solution for: the status carries ULySS's own reason.
* A ``gdl`` process killed or hung is a MachineryError, and the next spectrum is fitted.

python3-gdl can be imported once per process and reads its path at import, so its cases
run in child processes.
"""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from ulyss_ann import example_interpolator
from ulyss_ann.errors import MachineryError, UlyssAnnError
from ulyss_ann.fitting.batch.driver import fit
from ulyss_ann.fitting.gdl_engine.engine import GDLEngine
from ulyss_ann.fitting.fit_options import make_config
from ulyss_ann.spectra.examples import example_interpolator_path
from ulyss_ann.spectra.readers import read_spectrum
from ulyss_ann.spectra.simulate import simulate_spectrum, write_muse_spectrum
from ulyss_ann.spectra.spectrum import Spectrum

pytestmark = pytest.mark.gdl

MODEL = example_interpolator_path()
GUESS = {"Teff": [5400.0], "Logg": [3.0], "Fe/H": [-1.5]}
FAST = dict(guesses=GUESS, mdegree=8, progress=False)
ODD_NAME = "étoile's star"            # non-ASCII and one apostrophe
ODD_FOLDER = "fits d'été 'n' ; é"     # quote pairs: what GDL's file-name expansion used to strip


def _spectrum(path, teff, logg, feh, velocity=0.0, seed=0):
    wave, flux, sigma = simulate_spectrum(example_interpolator(), [teff, logg, feh], velocity=velocity, fwhm=2.0,
                                          snr=100.0, rng=seed)
    write_muse_spectrum(path, wave, flux, sigma)
    return str(path)


@pytest.fixture(scope="module")
def spectra(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spectra")
    return [_spectrum(folder / "sim000.fits", 5200.0, 2.8, -1.8, -20.0, 0),
            _spectrum(folder / "sim001.fits", 5600.0, 3.6, -1.2, 10.0, 1)]


def _run_child(code, tmp_path):
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


# ---------------------------------------------------------------- -j 0 with python3-gdl

@pytest.mark.pygdl
@pytest.mark.parametrize("imported_first", [False, True], ids=["driver", "GDL-imported-first"])
def test_serial_pygdl_batch_agrees_with_the_subprocess_bridge(spectra, tmp_path, imported_first):
    """The fault: every -j 0 pygdl row was "Procedure ULYSS_ANN_SET_ROOT not found"."""
    code = ("import GDL\n" if imported_first else "") + (
        "from ulyss_ann.fitting.batch.driver import fit\n"
        f"t = fit({spectra!r}, {str(MODEL)!r}, 'a.ecsv', engine='gdl', backend='pygdl', workers=0, "
        f"guesses={GUESS!r}, mdegree=8, progress=False)\n")
    _run_child(code, tmp_path)
    a = Table.read(tmp_path / "a.ecsv")
    b = fit(spectra, MODEL, tmp_path / "b.ecsv", engine="gdl", backend="subprocess", workers=0, **FAST)
    assert list(a["status"]) == ["ok", "ok"], list(a["status"])
    assert set(a["engine"]) == {"gdl-pygdl"} and set(b["engine"]) == {"gdl-subprocess"}
    for name in ("Teff", "Logg", "Fe/H", "cz"):  # the agreement of test_batch.py::test_backends_agree
        np.testing.assert_allclose(a[name], b[name], rtol=1e-10)


# ---------------------------------------------------------------- odd names with --save-fits

def _check_saved(folder, stem, table, res=True):
    with fits.open(folder / f"{stem}_fit.fits") as hdul:
        assert hdul[0].data.size == hdul["BESTFIT"].data.size > 1000
        assert int(hdul["MASK"].data.sum()) == table["n_pix"][0]
    if res:  # ULySS's own text output, the best solution of this spectrum
        text = (folder / f"{stem}.res").read_text(encoding="utf-8", errors="replace")
        assert "cz" in text and len(text.splitlines()) > 3


@pytest.mark.parametrize("engine,backend", [("native", "auto"), ("gdl", "subprocess")])
def test_odd_file_and_folder_names_with_save_fits(tmp_path, engine, backend):
    star = _spectrum(tmp_path / f"{ODD_NAME}.fits", 5400.0, 3.2, -1.5, 5.0, 3)
    saved = tmp_path / ODD_FOLDER
    table = fit([star], MODEL, tmp_path / "r.ecsv", engine=engine, backend=backend, workers=0,
                save_fits=str(saved), **FAST)
    assert table["status"][0] == "ok", table["status"][0]
    assert table["id"][0] == ODD_NAME
    _check_saved(saved, ODD_NAME, table, res=engine == "gdl")


@pytest.mark.pygdl
def test_odd_file_and_folder_names_with_save_fits_in_process(tmp_path):
    """With python3-gdl an I/O error in GDL aborts Python: this ran into a lost table."""
    star = _spectrum(tmp_path / f"{ODD_NAME}.fits", 5400.0, 3.2, -1.5, 5.0, 3)
    saved = tmp_path / ODD_FOLDER
    _run_child("from ulyss_ann.fitting.batch.driver import fit\n"
               f"fit([{star!r}], {str(MODEL)!r}, 'r.ecsv', engine='gdl', backend='pygdl', workers=0, "
               f"save_fits={str(saved)!r}, guesses={GUESS!r}, mdegree=8, progress=False)\n", tmp_path)
    table = Table.read(tmp_path / "r.ecsv")
    assert table["status"][0] == "ok", table["status"][0]
    _check_saved(saved, ODD_NAME, table)


# ---------------------------------------------------------------- ULySS's reason in the status

def test_ulyss_failure_carries_ulyss_message(spectra, tmp_path):
    """A negative spectrum: ULySS finds every component weight null and says so (only when not /QUIET).

    The readers refuse such a spectrum before any engine (Spectrum.from_arrays); a Spectrum
    made by hand reaches ULySS, whose own reason must then reach the row."""
    table = fit([_negative(spectra[0]), spectra[0]], MODEL, tmp_path / "r.ecsv", engine="gdl",
                backend="subprocess", workers=0, **FAST)
    status = dict(zip(table["id"], table["status"]))
    assert status["sim000"] == "ok"
    assert status["negative"].startswith("error: GDL: ULYSS_ANN_FIT: ULySS returned no solution: ")
    assert "null weight" in status["negative"] and "see its messages above" not in status["negative"]
    assert "\n" not in status["negative"]


@pytest.mark.pygdl
def test_ulyss_failure_message_is_captured_in_process(spectra, tmp_path):
    result = _run_child("import dataclasses, json, ulyss_ann\n"
                        f"good = ulyss_ann.read_spectrum({spectra[0]!r})\n"
                        "bad = dataclasses.replace(good, flux=-good.flux)  # by hand: the readers refuse it\n"
                        "try:\n"
                        f"    ulyss_ann.fit_spectrum(bad, {str(MODEL)!r}, engine='gdl', backend='pygdl',"
                        f" guesses={GUESS!r}, mdegree=8)\n"
                        "    print(json.dumps('no error'))\n"
                        "except ulyss_ann.UlyssAnnError as exc:\n"
                        "    print(json.dumps(str(exc)))\n", tmp_path)
    message = json.loads(result.stdout.strip().splitlines()[-1])
    assert message.startswith("GDL: ULYSS_ANN_FIT: ULySS returned no solution: ") and "null weight" in message
    assert "null weight" not in result.stderr  # captured, not printed on the terminal


def _negative(path):
    """The spectrum of ``path`` with its flux negated, as a Spectrum made by hand (no reader lets it in)."""
    spectrum = read_spectrum(path)
    meta = {key: value for key, value in spectrum.meta.items() if key != "file"}
    return dataclasses.replace(spectrum, flux=-spectrum.flux, meta={**meta, "id": "negative"})


# ---------------------------------------------------------------- the machinery fails, not the spectrum

@pytest.fixture
def engine():
    interp = example_interpolator()
    guesses = {"Teff": [4800.0, 5400.0, 6000.0], "Logg": [2.0, 3.5], "Fe/H": [-2.0, -1.0]}  # 12 fits: ~seconds
    config = make_config(str(MODEL), interp, engine="gdl", backend="subprocess", guesses=guesses, mdegree=8)
    with GDLEngine(config, interp) as engine:
        yield engine


@pytest.mark.first_leg  # machinery: killed, resumed, repaired (docs/development.md)
def test_killed_or_hung_gdl_is_machinery_and_the_next_spectrum_fits(engine, spectra):
    spectrum = read_spectrum(spectra[1])
    reference = engine.fit(spectrum).params

    # killed during a fit
    pid = engine.session._process.pid
    threading.Timer(0.4, os.kill, (pid, 9)).start()
    with pytest.raises(MachineryError, match=r"gdl exited \(status -9: killed\) during the call"):
        engine.fit(spectrum)
    assert engine.fit(spectrum).params == reference and engine.session._process.pid != pid

    # killed between two fits: no spectrum was being fitted, a new gdl takes the next one
    pid = engine.session._process.pid
    os.kill(pid, 9)
    time.sleep(0.2)
    assert engine.fit(spectrum).params == reference and engine.session._process.pid != pid

    # hung (past the timeout): stopped, and the next fit runs in a new process
    pid = engine.session._process.pid
    engine.session.timeout = 0.3
    with pytest.raises(MachineryError, match="did not answer within 0.3 s"):
        engine.fit(spectrum)
    engine.session.timeout = 600
    assert engine.fit(spectrum).params == reference and engine.session._process.pid != pid


def test_gdl_messages_about_the_spectrum_are_not_machinery(engine, spectra):
    """ULySS's failure is the spectrum's (an ``error:`` row), and the same gdl process goes on."""
    spectrum = read_spectrum(spectra[0])
    pid = engine.session._process.pid
    negative = Spectrum(-spectrum.flux, spectrum.error, spectrum.wavelength, spectrum.good, spectrum.grid,
                        {**spectrum.meta, "id": "negative"})
    with pytest.raises(UlyssAnnError, match="null weight") as caught:
        engine.fit(negative)
    assert not isinstance(caught.value, MachineryError)
    assert engine.fit(spectrum).params["Teff"] > 0 and engine.session._process.pid == pid


@pytest.mark.first_leg  # machinery: killed, resumed, repaired (docs/development.md)
def test_gdl_interrupted_by_sigint_is_machinery_and_the_next_spectrum_fits(engine, spectra):
    """A SIGINT for the batch's process group that reaches GDL (not the driver): GDL stops with
    'Interrupt encountered'; that is the machinery (retried on --resume), not the spectrum."""
    spectrum = read_spectrum(spectra[1])
    reference = engine.fit(spectrum).params
    pid = engine.session._process.pid
    threading.Timer(0.4, os.kill, (pid, signal.SIGINT)).start()
    with pytest.raises(MachineryError, match="GDL was interrupted"):
        engine.fit(spectrum)
    # an interrupted gdl is not reused: its next call could abort on an assertion (seen in CI)
    assert engine.fit(spectrum).params == reference and engine.session._process.pid != pid
