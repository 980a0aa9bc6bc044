"""The messages a newcomer met in the first hour (#25): each one line, naming the fix in the words of the
interface used (Python keywords beside their command-line flags)."""

import numpy as np
import pytest
from astropy.io import fits

from conftest import FAST, LOGG_FIXED, MODEL
from ulyss_ann import UlyssAnnError
from ulyss_ann.cli.main import main
from ulyss_ann.errors import InterpolatorFileError
from ulyss_ann.fitting.api import fit_spectrum
from ulyss_ann.fitting.batch.driver import fit
from ulyss_ann.model.interpolator import Interpolator
from ulyss_ann.spectra.simulate import simulate_spectrum, write_muse_spectrum


def _error_line(capsys, *argv):
    """``ulyss-ann ARGV`` in this process: its exit status and the whole of its stderr."""
    status = main([str(a) for a in argv])
    return status, capsys.readouterr().err


def test_a_fix_table_astropy_cannot_identify_is_one_line_with_the_formats_to_give(tmp_path):
    table = tmp_path / "phot.txt"
    table.write_text("id logg\nstar 4.2\n")
    with pytest.raises(UlyssAnnError) as caught:
        fit([], MODEL, None, fixed={"Logg": f"{table}:logg"}, **LOGG_FIXED)
    message = str(caught.value)
    assert "\n" not in message and "available formats" not in message
    assert message.startswith(f"{table}: cannot read as a table")
    assert message.endswith("give an ECSV, CSV or FITS table with an id column, e.g. phot.ecsv")


def _spectrum_file(path):
    fits.PrimaryHDU(np.ones(50), header=fits.Header([("CRVAL1", 5000.0), ("CDELT1", 1.0)])).writeto(path)
    return str(path)


def test_a_spectrum_given_as_the_network_is_named_for_what_it_is_everywhere(tmp_path, capsys):
    star = _spectrum_file(tmp_path / "star.fits")
    said = ("not a ULySS perceptron (interpolator) file (no I_VERSIO keyword in HDU 0); is it a spectrum? "
            "give the network as the model (-m; bundled: example, miles)")
    with pytest.raises(InterpolatorFileError, match=r"star\.fits: " + "not a ULySS perceptron"):
        Interpolator.read(star)
    for argv in (["info", "-m", star], ["fit", star, "-m", star, "--engine", "native", "-o", tmp_path / "r.ecsv"]):
        status, err = _error_line(capsys, *argv)
        assert status == 2 and err == f"ulyss-ann: error: {star}: {said}\n"
    # a perceptron file that is damaged (its I_ keywords there, one missing) still names the keyword
    damaged = tmp_path / "damaged.fits"
    with fits.open(MODEL) as hdul:
        del hdul[0].header["I_HLAYER"]  # I_VERSIO there: a perceptron file, damaged
        hdul.writeto(damaged)
    with pytest.raises(InterpolatorFileError, match=r"HDU 0 \(TERM_WEIGHTS\): missing keyword I_HLAYER$"):
        Interpolator.read(damaged)


def test_the_python_api_names_its_keywords_beside_the_flags(tmp_path):
    spectrum = str(tmp_path / "star.fits")
    wave, flux, sigma = simulate_spectrum(Interpolator.read(MODEL), [5500.0, 3.5, -1.0], snr=50.0,
                                          rng=np.random.default_rng(1))
    write_muse_spectrum(spectrum, wave, flux, sigma)
    with pytest.raises(UlyssAnnError, match=r"^wave_range \(--range\) 8000-9000 Å"):
        fit_spectrum(spectrum, MODEL, wave_range=(8000, 9000), engine="native")
    out = tmp_path / "results.ecsv"
    out.write_text("")
    with pytest.raises(UlyssAnnError, match=r"add resume=True \(--resume\) to continue that batch, or "
                                            r"overwrite=True \(--overwrite\) to start again"):
        fit([spectrum], MODEL, out, workers=0, **FAST)
    with pytest.raises(UlyssAnnError, match=r"^retry_failed \(--retry-failed\) acts on a resumed batch: "
                                            r"add resume=True \(--resume\)$"):
        fit([spectrum], MODEL, out, workers=0, retry_failed=True, **FAST)


def test_the_missing_ulyss_message_offers_the_native_engine(monkeypatch):
    from ulyss_ann.fitting import engines
    from ulyss_ann.gdl import ulyss_location

    monkeypatch.setattr(ulyss_location, "find_ulyss", lambda: None)
    with pytest.raises(UlyssAnnError) as caught:
        engines.check_gdl("auto")
    assert str(caught.value).endswith("The gdl engine needs it; engine='native' (--engine native) needs neither "
                                      "GDL nor ULySS.")


@pytest.mark.parametrize("output, said", [
    ("x.txt", "x.txt: eval writes the spectra as FITS; end the name in .fits, .fit, .fits.gz (e.g. spectra.fits)"),
    ("nodir/spec.fits", "nodir/spec.fits: its folder {tmp}/nodir does not exist; create it, or give another name"),
])
def test_eval_refuses_an_output_it_would_write_wrongly_or_not_at_all(tmp_path, capsys, monkeypatch, output, said):
    monkeypatch.chdir(tmp_path)
    status, err = _error_line(capsys, "eval", "-m", "example", "--param", "Teff=5000", "--param", "Logg=4",
                              "--param", "Fe/H=0", "-o", output)
    assert status == 2 and err == f"ulyss-ann: error: {said.format(tmp=tmp_path)}\n"
    assert list(tmp_path.iterdir()) == []


def test_eval_writes_a_gzipped_fits_file_but_no_fits_under_another_name(tmp_path, capsys):
    status, err = _error_line(capsys, "eval", "-m", "example", "--param", "Teff=5000", "--param", "Logg=4",
                              "--param", "Fe/H=0", "-o", tmp_path / "spec.txt")
    assert status == 2 and "eval writes the spectra as FITS" in err
    out = tmp_path / "spec.fits.gz"
    status, _ = _error_line(capsys, "eval", "-m", "example", "--param", "Teff=5000", "--param", "Logg=4",
                            "--param", "Fe/H=0", "-o", out)
    assert status == 0 and out.read_bytes()[:2] == b"\x1f\x8b"
    with fits.open(out) as hdul:
        assert hdul[0].data.shape[-1] == Interpolator.read(MODEL).wavelength.npix


@pytest.mark.parametrize("name", ["gsl_ann_trial7.fits", "toy_interpolator_v0.0.3_trial_7.fits"])
def test_an_absent_reference_network_says_where_to_download_it(tmp_path, capsys, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    status, err = _error_line(capsys, "info", "-m", name)
    assert status == 2 and err.count("\n") == 1
    assert "the authors' trial 7" in err
    assert "download trials/trial_7/toy_interpolator_v0.0.3_trial_7.fits of https://github.com/" in err


def test_the_progress_bar_counts_as_the_summary_does(tmp_path, capsys):
    unreadable = tmp_path / "bad.fits"
    unreadable.write_text("not FITS")
    table = fit([str(unreadable)], MODEL, tmp_path / "r.ecsv", workers=0, **dict(FAST, progress=True))
    assert table["status"][0].startswith("error:")
    err = capsys.readouterr().err
    assert "errors=1, failed=0" in err
