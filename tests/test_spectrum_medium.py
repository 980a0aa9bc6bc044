"""The wavelength medium of spectra (issue 26, item 1): read where files say it, overridden by
--medium / medium=, vacuum spectra fitted on air in both engines; and a network's medium measured
from its line centres (``ulyss-ann info``)."""

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from scipy.interpolate import CubicSpline

import ulyss_ann
from conftest import SHARED, cli_here, reference_file
from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.fitting.api import fit_spectrum
from ulyss_ann.model.interpolator import Interpolator
from ulyss_ann.model.line_centres import measured_medium, medium_check
from ulyss_ann.model.medium import AIR, VACUUM, air_to_vacuum, vacuum_to_air
from ulyss_ann.spectra.readers import read_spectrum
from ulyss_ann.spectra.spectrum import ASSUMED
from ulyss_ann.spectra.spectrum_medium import SURVEY_CONVENTION, medium_note, spectrum_in_medium

STAR = Path(ulyss_ann.__file__).parent / "data" / "example_spectrum.fits"
MUSE = SHARED / "data" / "muse" / "ngc6397id000010554jd2456865p5826f000.fits"


def _image(path, cards, npix=200, start=5000.0, step=1.25):
    """A 1-D FITS spectrum on a linear axis with the header ``cards``."""
    header = fits.Header([("CRVAL1", start), ("CDELT1", step), ("CRPIX1", 1.0), *cards])
    flux = 1 + 0.1 * np.sin(np.arange(npix) / 7.0)
    fits.PrimaryHDU(flux, header).writeto(path)
    return start + step * np.arange(npix)


@pytest.mark.parametrize("cards, medium, source", [
    ([("CTYPE1", "AWAV")], AIR, "header CTYPE1=AWAV"),
    ([("CTYPE1", "WAVE")], VACUUM, "header CTYPE1=WAVE"),
    ([("CTYPE1", "AWAV"), ("AIRORVAC", "vac")], VACUUM, "header AIRORVAC=vac"),   # AIRORVAC before CTYPE1
    ([("CTYPE1", "WAVE"), ("AIRORVAC", "air")], AIR, "header AIRORVAC=air"),
    ([("VACUUM", True)], VACUUM, "header VACUUM=True"),
    ([("VACUUM", 1)], VACUUM, "header VACUUM=1"),                                  # SDSS: 1 = vacuum
    ([("VACUUM", 0)], AIR, "header VACUUM=0"),
    ([], AIR, ASSUMED),                                                            # ULySS's assumption
])
def test_an_image_spectrum_says_its_medium_and_is_read_on_air(tmp_path, cards, medium, source):
    written = _image(tmp_path / "s.fits", cards)
    spec = read_spectrum(tmp_path / "s.fits")
    assert (spec.medium, spec.medium_source) == (medium, source)
    expected = vacuum_to_air(written) if medium == VACUUM else written
    np.testing.assert_allclose(spec.wavelength, expected, rtol=0, atol=1e-9)
    assert medium_note(spec) == (f"{medium}→air" if medium == VACUUM else "air") + \
        f" ({'assumed' if source == ASSUMED else source})"


@pytest.mark.parametrize("card, medium, source", [
    (None, VACUUM, SURVEY_CONVENTION),            # SDSS and LAMOST publish vacuum wavelengths
    (("VACUUM", True), VACUUM, "header VACUUM=True"),
    (("AIRORVAC", "air"), AIR, "header AIRORVAC=air"),
])
def test_a_survey_table_is_vacuum_unless_it_says_otherwise(tmp_path, card, medium, source):
    loglam = 3.7 + 1e-4 * np.arange(300)
    table = fits.BinTableHDU.from_columns([fits.Column("flux", "D", array=np.ones(300) + 0.01 * np.arange(300)),
                                           fits.Column("loglam", "D", array=loglam),
                                           fits.Column("ivar", "D", array=np.full(300, 100.0))])
    primary = fits.PrimaryHDU()
    if card:
        primary.header[card[0]] = card[1]
    fits.HDUList([primary, table]).writeto(tmp_path / "spec.fits")
    spec = read_spectrum(tmp_path / "spec.fits")
    assert (spec.medium, spec.medium_source) == (medium, source)
    expected = vacuum_to_air(10 ** loglam) if medium == VACUUM else 10 ** loglam
    np.testing.assert_allclose(spec.wavelength, expected, rtol=1e-12)


def test_text_spectra_are_assumed_air_and_the_muse_star_says_air(tmp_path):
    path = tmp_path / "s.txt"
    np.savetxt(path, np.column_stack([5000 + np.arange(20.0), np.ones(20)]))
    spec = read_spectrum(path)
    assert (spec.medium, medium_note(spec)) == (AIR, "air (assumed)")
    if not MUSE.is_file():
        pytest.skip(f"{MUSE} not found (shared data)")
    muse = read_spectrum(MUSE)  # PampelMuse copies the MUSE pipeline's air axis: CTYPE1 = 'AWAV'
    assert (muse.medium, muse.medium_source) == (AIR, "header CTYPE1=AWAV")


def test_the_override_takes_the_files_numbers_in_the_other_medium(tmp_path):
    written = _image(tmp_path / "vac.fits", [("CTYPE1", "WAVE")])
    vacuum = read_spectrum(tmp_path / "vac.fits")
    assert vacuum.grid is None  # converted: explicit wavelengths
    as_air = spectrum_in_medium(vacuum, "air")
    np.testing.assert_allclose(as_air.wavelength, written, rtol=0, atol=1e-8)  # the file's numbers again
    assert as_air.grid is not None and as_air.grid.cdelt == pytest.approx(1.25, rel=1e-9)
    assert medium_note(as_air) == "air (override: --medium / medium=)"
    again = spectrum_in_medium(as_air, "vacuum")
    np.testing.assert_allclose(again.wavelength, vacuum.wavelength, rtol=0, atol=1e-8)
    assert medium_note(again) == "vacuum→air (override: --medium / medium=)"
    assert spectrum_in_medium(vacuum, None) is vacuum


@pytest.mark.parametrize("value", ["glass", "Air?", 1])
def test_a_bad_medium_is_refused_in_one_line(value):
    with pytest.raises(UlyssAnnError, match=r"^medium \(--medium\) '.*': choose air or vacuum$"):
        fit_spectrum(STAR, model="example", engine="native", medium=value)


def _vacuum_copy(source, target, cards):
    """The air spectrum ``source`` on a linear VACUUM axis (flux by cubic spline), written with ``cards``."""
    with fits.open(source) as hdul:
        header, flux, sigma = hdul[0].header.copy(), hdul[0].data.astype(float), hdul["SIGMA"].data.astype(float)
    air = header["CRVAL1"] + header["CDELT1"] * np.arange(flux.size)
    vacuum = air_to_vacuum(air)
    axis = np.linspace(vacuum[0], vacuum[-1], flux.size)
    at = np.clip(vacuum_to_air(axis), air[0], air[-1])  # where the vacuum pixels are, in air
    header.update(CRVAL1=axis[0], CDELT1=axis[1] - axis[0], CRPIX1=1.0, **dict(cards))
    fits.HDUList([fits.PrimaryHDU(CubicSpline(air, flux)(at), header),
                  fits.ImageHDU(np.interp(at, air, sigma), name="SIGMA")]).writeto(target)


@pytest.fixture(scope="module")
def vacuum_star(tmp_path_factory):
    path = tmp_path_factory.mktemp("medium") / "vacuum_star.fits"
    _vacuum_copy(STAR, path, [("CTYPE1", "AWAV"), ("AIRORVAC", "vac")])  # AIRORVAC says what CTYPE1 does not
    return path


def test_a_vacuum_copy_fits_to_the_same_cz_natively(vacuum_star):
    original = fit_spectrum(STAR, model="example", engine="native")
    copy = fit_spectrum(vacuum_star, model="example", engine="native")
    assert copy.medium == "vacuum→air (header AIRORVAC=vac)" and original.medium == "air (header CTYPE1=AWAV)"
    assert abs(copy.cz - original.cz) < original.e_cz / 10  # measured: 0.03 km/s, e_cz 2.7
    assert copy.params["Teff"] == pytest.approx(original.params["Teff"], abs=original.errors["Teff"])
    # taken as air against its file, the copy's lines sit ~83 km/s to the red
    wrong = fit_spectrum(vacuum_star, model="example", engine="native", medium="air")
    assert 82 < wrong.cz - original.cz < 85
    assert wrong.medium == "air (override: --medium / medium=)"


def test_the_batch_table_and_its_record_carry_the_medium(vacuum_star):
    table = ulyss_ann.fit([str(STAR), str(vacuum_star)], model="example", output=None, workers=0, engine="native",
                          progress=False, medium="vacuum")
    assert list(table["medium"]) == ["vacuum→air (override: --medium / medium=)"] * 2
    assert table.meta["medium"] == "vacuum"
    assert table["cz"][0] - table["cz"][1] == pytest.approx(-83.3, abs=1.5)  # the star taken as vacuum: bluer


def test_chimap_takes_the_medium_as_fit_does(vacuum_star, tmp_path):
    """chimap --medium (it had none): the map's free fit is fit's with the same medium, not the file's."""
    guesses = {"Teff": [5400.0], "Logg": [3.5], "Fe/H": [-1.5]}
    options = ["-m", "example", "--engine", "native", "--mdegree", "8"] + [
        f"--guess={name}={values[0]}" for name, values in guesses.items()]
    teff = {}
    for medium in (None, "air"):
        out = tmp_path / f"{medium}.fits"
        run = cli_here("chimap", vacuum_star, *options, *([f"--medium={medium}"] if medium else []),
                       "--x", "Logg=3:4:3", "-o", out)
        assert run.returncode == 0, run.stderr
        teff[medium] = fits.getheader(out)["B_TEFF"]
        free = fit_spectrum(vacuum_star, model="example", engine="native", mdegree=8, guesses=guesses, medium=medium)
        assert teff[medium] == pytest.approx(free.params["Teff"], rel=1e-9)
    assert teff[None] != teff["air"]  # the file's vacuum, converted, against its wavelengths taken as air


@pytest.mark.gdl
def test_the_gdl_engine_fits_the_vacuum_copy_as_native_does(vacuum_star):
    native = fit_spectrum(vacuum_star, model="example", engine="native")
    gdl = fit_spectrum(vacuum_star, model="example", engine="gdl")  # explicit wavelengths: SAMPLING=2
    assert gdl.medium == native.medium
    assert abs(gdl.cz - native.cz) < 0.05  # measured: 0.008 km/s


def _mislabelled_example(folder):
    """The example network on vacuum wavelengths that its header calls air, as the authors' trial 8 is
    (and the example was, until it was moved to air): its lines sit 83 km/s from where air puts them."""
    from dataclasses import replace

    from ulyss_ann.model.medium import axis_in_medium

    example = Interpolator.read("example")
    vacuum_axis = axis_in_medium(example.wavelength, AIR, VACUUM)
    path = Path(folder) / "mislabelled.fits"
    replace(example, wavelength=replace(vacuum_axis, air=True)).write(path)
    return path


def test_line_centres_say_which_medium_the_bundled_networks_are_on(tmp_path):
    miles = measured_medium(Interpolator.read("miles"))  # trained on MILES: air
    assert miles.medium == AIR and abs(miles.from_air) < 5 and len(miles.lines) >= 5
    assert medium_check(Interpolator.read("miles"), miles)[1] is None
    # the example is on trial 8's axis converted to air (ulyss_ann/data/PROVENANCE.md)
    example = Interpolator.read("example")
    measurement = measured_medium(example)
    assert measurement.medium == AIR and abs(measurement.from_air) < 5
    assert medium_check(example, measurement)[1] is None
    # the same lines on a vacuum axis labelled air: the contradiction is seen and said
    mislabelled = Interpolator.read(_mislabelled_example(tmp_path))
    measurement = measured_medium(mislabelled)
    assert measurement.medium == VACUUM and abs(measurement.from_vacuum) < 5
    note, warning = medium_check(mislabelled, measurement)
    assert note == "air (header CTYPE1=AWAV), but its lines are on vacuum wavelengths"
    assert "--model-medium vacuum" in warning


def test_line_centres_of_the_authors_trial_7_are_vacuum():
    path = reference_file("gsl_ann_trial7.fits")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the recognition notice
        interp = Interpolator.read(path)
    measurement = measured_medium(interp)
    assert measurement.medium == VACUUM
    assert 78 < measurement.from_air < 88 and abs(measurement.from_vacuum) < 5
    assert medium_check(interp, measurement) == (
        "vacuum (the authors' trial 7), as its lines confirm; its header says air", None)


def test_info_prints_the_measured_medium_and_warns_on_a_contradiction(capsys, tmp_path):
    from ulyss_ann.cli.main import main

    assert main(["info", "-m", str(_mislabelled_example(tmp_path))]) == 0
    out, err = capsys.readouterr()
    assert re.search(r"\n  line centres \+8\d\.\d km/s from air, [-+]\d\.\d from vacuum \(\d lines: Hβ, .*\): "
                     r"vacuum \(at Teff 5800, Logg 4\.4, Fe/H -0\.5\)\n", out)
    assert "WARNING      its lines are on vacuum wavelengths but fits take it as air" in out
    assert err.startswith("ulyss-ann: warning: mislabelled.fits: its lines are on vacuum")
