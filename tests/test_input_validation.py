"""Inputs that used to give a silent wrong answer, a traceback or the end of a batch (issue 24, items 6, 7, 8, 9).

Each is now honoured (the mask of a masked array) or refused in one line naming what is
wrong: a spectrum's own problem (negative, complex, out-of-range flux; a bad in-memory
item of a batch) is an ``error:`` row; a bad interpolator file, --fix, --lsf, Keras file
or gdl-export name stops the command before any work.
"""

import json
import shutil
import warnings
import zipfile

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

import ulyss_ann
from conftest import reference_file
from ulyss_ann import Interpolator, UlyssAnnError, example_interpolator
from ulyss_ann.cli.main import main
from ulyss_ann.errors import InterpolatorFileError
from ulyss_ann.fitting.fit_options import FixedValues
from ulyss_ann.spectra.examples import example_interpolator_path
from ulyss_ann.spectra.inputs import as_spectrum
from ulyss_ann.spectra.line_spread import read_lsf
from ulyss_ann.spectra.simulate import simulate_spectrum

#: One guess and a low-degree polynomial: a fit of the example network in a fraction of a second.
FAST = dict(guesses={"Teff": [5400.0], "Logg": [3.0], "Fe/H": [-1.5]}, mdegree=8)
TRUTH = [5100.0, 3.0, -1.5]


@pytest.fixture(scope="module")
def star():
    """(wavelength, flux, error) of a MUSE-like star simulated from the example network (S/N 100)."""
    return simulate_spectrum(example_interpolator(), TRUTH, velocity=0.0, fwhm=2.0, snr=100.0, rng=0,
                             continuum=(1.0, 0.1, -0.05))


def one_line(excinfo, *words):
    text = str(excinfo.value)
    assert "\n" not in text, text
    for word in words:
        assert word in text, text
    return text


# ------------------------------------------------------------------ item 6a: masked arrays
def test_the_mask_of_a_masked_flux_or_error_is_honoured(star):
    wave, flux, error = star
    bad = np.zeros(wave.size, bool)
    bad[200:1200] = True
    spoiled = np.where(bad, 10.0, flux)  # garbage under the mask
    reference = ulyss_ann.fit_spectrum((wave, np.where(bad, np.nan, flux), error), "example", engine="native", **FAST)
    assert abs(reference.params["Teff"] - TRUTH[0]) < 60
    for item in [(wave, np.ma.masked_array(spoiled, mask=bad), error),
                 (wave, spoiled, np.ma.masked_array(error, mask=bad))]:
        result = ulyss_ann.fit_spectrum(item, "example", engine="native", **FAST)
        assert result.params["Teff"] == pytest.approx(reference.params["Teff"], abs=1e-6)
        assert result.params["Fe/H"] == pytest.approx(reference.params["Fe/H"], abs=1e-9)


def test_astropy_masked_quantities_keep_their_mask_and_masked_wavelengths_are_refused(star):
    import astropy.units as u
    from astropy.utils.masked import Masked

    wave, flux, error = star
    bad = np.zeros(wave.size, bool)
    bad[:50] = True
    spectrum = as_spectrum((wave * u.AA, Masked(flux * u.Jy, mask=bad), error * u.Jy))
    assert np.array_equal(spectrum.good, ~bad)
    with pytest.raises(UlyssAnnError) as info:
        as_spectrum((np.ma.masked_array(wave, mask=bad), flux, error))
    one_line(info, "wavelength", "50 masked")


# ------------------------------------------------------------------ item 6b, 6c, 8: flux no fit can use
def test_negative_flux_is_refused_not_fitted(star):
    wave, flux, error = star
    with pytest.raises(UlyssAnnError) as info:
        ulyss_ann.fit_spectrum((wave, -flux, error), "example", engine="native", **FAST)
    one_line(info, "the flux is negative overall", "median")


@pytest.mark.parametrize("which", [0, 1, 2])
def test_complex_arrays_are_refused(star, which):
    item = list(star)
    item[which] = item[which] + 0j
    with pytest.raises(UlyssAnnError) as info:
        as_spectrum(tuple(item))
    one_line(info, ("wavelength", "flux", "error")[which], "complex")


def test_flux_beyond_the_range_a_fit_holds_is_refused(star):
    wave, flux, error = star
    with pytest.raises(UlyssAnnError) as info:
        ulyss_ann.fit_spectrum((wave, flux * 1e300, error * 1e300), "example", engine="native", **FAST)
    one_line(info, "out of range", "rescale")
    # one wild pixel is a bad value, not a reason to refuse the spectrum
    wild = flux.copy()
    wild[5] = 1e300
    result = ulyss_ann.fit_spectrum((wave, wild, error), "example", engine="native", **FAST)
    assert abs(result.params["Teff"] - TRUTH[0]) < 60


@pytest.mark.gdl
def test_both_engines_refuse_negative_and_overflowing_flux_alike(star):
    wave, flux, error = star
    for item, words in (((wave, -flux, error), "negative overall"),
                        ((wave, flux * 1e300, error * 1e300), "out of range")):
        messages = []
        for engine in ("native", "gdl"):
            with pytest.raises(UlyssAnnError) as info:
                ulyss_ann.fit_spectrum(item, "example", engine=engine, **FAST)
            messages.append(one_line(info, words))
        assert messages[0] == messages[1]


# ------------------------------------------------------------------ item 7: one bad in-memory spectrum in a batch
def test_a_bad_in_memory_spectrum_gets_its_error_row_and_the_batch_goes_on(star):
    wave, flux, error = star
    table = ulyss_ann.fit([(wave, flux, error), (wave[:-5], flux, error), (wave, flux * np.nan, error),
                           (wave, flux * 1e300, error * 1e300)], model="example", output=None, workers=0,
                          engine="native", progress=False, **FAST)
    status = [str(s) for s in table["status"]]
    assert status[0] == "ok" and abs(table["Teff"][0] - TRUTH[0]) < 60
    assert status[1].startswith("error: ") and "flux values for" in status[1]
    assert status[2].startswith("error: ") and "no pixel has a finite flux" in status[2]
    assert status[3].startswith("error: ") and "out of range" in status[3]
    assert list(table["id"]) == ["spectrum0001", "spectrum0002", "spectrum0003", "spectrum0004"]


# ------------------------------------------------------------------ item 6d, 9: interpolator files
def _edited(tmp_path, **changes):
    """The example network with header keywords changed in every layer HDU."""
    path = tmp_path / "edited.fits"
    shutil.copyfile(example_interpolator_path(), path)
    with fits.open(path) as hdul:
        for hdu in hdul:
            if "I_LAYER" in hdu.header:
                hdu.header.update(changes)
        hdul.writeto(path, overwrite=True)
    return path


NONSENSE_SCALING = [("I_P_ST1", 0.0), ("I_PR_S1", 1e-300), ("I_PR_S2", 1e300), ("I_PR_S3", -0.95),
                    ("I_P_ST2", 1e-300), ("I_P_ST3", 50.0)]


def test_nonsense_input_scaling_or_step_is_refused_and_the_authors_files_pass(tmp_path):
    for keyword, value in NONSENSE_SCALING:
        with pytest.raises(InterpolatorFileError) as info:
            Interpolator.read(_edited(tmp_path, **{keyword: value}))
        one_line(info, f"{keyword} = ")
    for name in ("example", "miles", reference_file("gsl_ann_trial7.fits"), reference_file("gsl_ann_trial8.fits")):
        assert Interpolator.read(name).names == ("Teff", "Logg", "Fe/H")


def test_two_parameters_of_one_name_are_refused(tmp_path):
    with pytest.raises(InterpolatorFileError) as info:
        Interpolator.read(_edited(tmp_path, I_P_NM3="teff"))
    one_line(info, "I_P_NM3 = 'teff' repeats I_P_NM1")


# ------------------------------------------------------------------ item 6e, 6f: --fix
def _table(tmp_path, unit, values=(2.0, 250.0)):
    table = Table({"id": ["a", "b"], "logg": list(values)})
    table["logg"].unit = unit
    path = tmp_path / "phot.ecsv"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an unknown unit is written as it is, with a warning
        table.write(path, overwrite=True)
    return f"{path}:logg"


def test_fix_columns_are_converted_to_the_parameters_unit_or_refused(tmp_path):
    interp = Interpolator.read("example")
    assert FixedValues({"Logg": _table(tmp_path, "dex(cm/s2)")}, interp).for_spectrum("a") == {"Logg": 2.0}
    assert FixedValues({"Logg": _table(tmp_path, "dex")}, interp).for_spectrum("a") == {"Logg": 2.0}
    in_si = FixedValues({"Logg": _table(tmp_path, "m/s2")}, interp).for_spectrum("b")["Logg"]
    assert in_si == pytest.approx(np.log10(25000.0))  # 250 m/s2 = 25000 cm/s2
    log_si = FixedValues({"Logg": _table(tmp_path, "dex(m/s2)")}, interp).for_spectrum("a")["Logg"]
    assert log_si == pytest.approx(4.0)
    for unit in ("K", "furlong_per_fortnight"):
        with pytest.raises(UlyssAnnError) as info:
            FixedValues({"Logg": _table(tmp_path, unit)}, interp)
        one_line(info, "phot.ecsv: column 'logg'", unit)


@pytest.mark.parametrize("unit", ["log(cm.s**-2)", "log10(cm/s2)", "[cm/s2]", "[cm.s-2]"])
def test_fix_columns_in_the_log_units_of_catalogues_are_log_g(tmp_path, unit):
    """Gaia's log(cm.s**-2) and VizieR's [cm/s2], which astropy reads as unknown units, are dex(cm/s2)."""
    interp = Interpolator.read("example")
    assert FixedValues({"Logg": _table(tmp_path, unit)}, interp).for_spectrum("a") == {"Logg": 2.0}


def test_a_parameter_fixed_twice_is_refused(tmp_path, capsys):
    with pytest.raises(UlyssAnnError) as info:
        FixedValues({"Logg": 2.0, "logg": 3.0}, Interpolator.read("example"))
    one_line(info, "Logg fixed twice")
    status = main(["fit", str(tmp_path / "star.fits"), "-m", "example", "--fix", "Logg=2", "--fix", "Logg=3",
                   "-o", str(tmp_path / "r.ecsv")])
    err = capsys.readouterr().err
    assert status == 2 and "given twice" in err and "'Logg=2' and 'Logg=3'" in err and err.count("\n") == 1
    assert not (tmp_path / "r.ecsv").exists()


# ------------------------------------------------------------------ item 6g, 8, 9: --lsf files
LSF_OK = "# relative LSF\n0.0 40.0 0 0 4800\n0.0 35.0 0 0 6000\n0.0 30.0 0 0 7300\n"


@pytest.mark.parametrize("text, words", [
    (LSF_OK.replace("6000", "6OOO"), ["line 3", "6OOO", "not an LSF record"]),
    (LSF_OK.replace("35.0 0 0 6000", "35.0 0 6000"), ["line 3", "not an LSF record"]),
    (LSF_OK.replace("35.0", "nan"), ["line 3", "NaN or infinite"]),
])
def test_a_bad_lsf_line_is_refused_with_its_line_number(tmp_path, text, words):
    path = tmp_path / "bad.lsf"
    path.write_text(text)
    with pytest.raises(UlyssAnnError) as info:
        read_lsf(path)
    one_line(info, str(path), *words)


def test_a_binary_lsf_file_is_one_line_and_a_bad_lsf_stops_a_fit_up_front(tmp_path, star):
    path = tmp_path / "bin.lsf"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(UlyssAnnError) as info:
        read_lsf(path)
    one_line(info, str(path), "binary")
    path = tmp_path / "nan.lsf"
    path.write_text(LSF_OK.replace("35.0", "nan"))
    with pytest.raises(UlyssAnnError) as info:
        ulyss_ann.fit_spectrum(star, "example", engine="native", lsf=str(path), losvd="analytic", **FAST)
    one_line(info, "nan.lsf, line 3")
    ok = tmp_path / "ok.lsf"
    ok.write_text(LSF_OK)
    assert len(read_lsf(ok)) == 3


# ------------------------------------------------------------------ item 6h: gdl-export --name and folder
@pytest.mark.parametrize("name, words", [("ulyss_ann", ["its routine ulyss_ann_spectrum", "ulyss_ann"]),
                                         ("ulyss_ann_fit", ["a routine of ulyss_ann"]),
                                         ("strlen", ["a GDL built-in routine"]),
                                         ("for", ["a word of the GDL language"])])
def test_gdl_export_refuses_names_that_clash(tmp_path, capsys, name, words):
    out = tmp_path / "component"
    status = main(["gdl-export", "-m", "example", "--name", name, "-o", str(out)])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith(f"ulyss-ann: error: --name '{name}'") and err.count("\n") == 1
    for word in words:
        assert word in err
    assert not out.exists()


@pytest.mark.ulyss  # its routine names are checked
def test_gdl_export_refuses_the_name_of_a_ulyss_routine(tmp_path, capsys):
    assert main(["gdl-export", "-m", "example", "--name", "ulyss", "-o", str(tmp_path / "c")]) == 2
    assert "a ULySS routine" in capsys.readouterr().err


def test_gdl_export_refuses_a_folder_with_a_bar(tmp_path, capsys):
    out = tmp_path / "a|b"
    status = main(["gdl-export", "-m", "example", "--name", "gslann", "-o", str(out)])
    err = capsys.readouterr().err
    assert status == 2 and "'|'" in err and err.count("\n") == 1
    assert not out.exists()
    assert main(["gdl-export", "-m", "example", "--name", "gslann", "-o", str(tmp_path / "plain")]) == 0


# ------------------------------------------------------------------ item 9: a Keras file with a Lambda layer
def test_a_keras_file_with_a_lambda_layer_is_one_line(tmp_path):
    from ulyss_ann.training.keras_io import read_keras_layers

    dense = {"class_name": "Dense", "config": {"name": "dense", "units": 4, "activation": "sigmoid"}}
    lam = {"class_name": "Lambda", "config": {"name": "lambda", "function": {"class_name": "__lambda__",
                                                                           "config": {"code": "AAAA"}}}}
    config = {"module": "keras", "class_name": "Sequential", "config": {"name": "s", "layers": [dense, lam, dense]}}
    path = tmp_path / "lambda.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.5.0"}))
    with pytest.raises(UlyssAnnError) as info:
        read_keras_layers(path)
    one_line(info, "lambda.keras", "Lambda", "Dense layers only")


def _keras_archive(path, config):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config) if not isinstance(config, str) else config)
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.5.0"}))
    return path


def test_a_dense_layer_naming_a_function_outside_keras_is_refused_before_keras(tmp_path):
    """The safe-mode bypasses (CVE-2025-1550 and after) hide a foreign module inside an allowed layer."""
    from ulyss_ann.training.keras_io import read_keras_layers

    evil = {"module": "os", "class_name": "function", "config": "system", "registered_name": "function"}
    dense = {"module": "keras.layers", "class_name": "Dense",
             "config": {"name": "dense", "units": 4, "activation": evil}}
    config = {"module": "keras", "class_name": "Sequential", "config": {"name": "s", "layers": [dense]}}
    with pytest.raises(UlyssAnnError) as info:
        read_keras_layers(_keras_archive(tmp_path / "evil.keras", config))
    one_line(info, "evil.keras", "outside Keras", "os", "not loaded")


def test_an_archive_whose_config_cannot_be_read_is_refused_not_handed_to_keras(tmp_path):
    from ulyss_ann.training.keras_io import read_keras_layers

    with pytest.raises(UlyssAnnError) as info:
        read_keras_layers(_keras_archive(tmp_path / "odd.keras", "{not json"))
    one_line(info, "odd.keras", "config.json", "not loaded")


# ------------------------------------------------------------------ #25 defect 8: a flux of several spectra
def test_a_flux_of_several_spectra_is_refused_with_its_shape_and_the_way_to_fit_many(star):
    from ulyss_ann import Spectrum

    wave, flux, error = star
    several = np.vstack([flux, flux, flux])
    with pytest.raises(UlyssAnnError) as info:
        ulyss_ann.fit_spectrum((wave, several, error), "example", engine="native", **FAST)
    one_line(info, f"flux of shape (3, {wave.size})", "flux[i]", "ulyss_ann.fit")
    with pytest.raises(UlyssAnnError) as info:
        ulyss_ann.fit_spectrum((wave, flux, several.T), "example", engine="native", **FAST)
    one_line(info, f"error of shape ({wave.size}, 3)", "error[:, i]")
    with pytest.raises(UlyssAnnError) as info:
        Spectrum.from_arrays(wave, several, error)
    one_line(info, f"flux of shape (3, {wave.size})")
    with pytest.raises(UlyssAnnError) as info:  # in a batch, a mistake in the call: refused whole
        ulyss_ann.fit([(wave, flux, error), (wave, several, error)], model="example", output=None, workers=0,
                      engine="native", progress=False, **FAST)
    one_line(info, f"flux of shape (3, {wave.size})")


def test_a_flux_of_one_row_or_one_column_is_that_spectrum(star):
    wave, flux, error = star
    reference = as_spectrum((wave, flux, error))
    for item in [(wave, flux[None, :], error[:, None]), (wave, flux[:, None], error[None, :]),
                 (wave[::-1], flux[::-1][None, :], error[::-1][None, :])]:  # reversed: pixels, not rows
        spectrum = as_spectrum(item)
        np.testing.assert_array_equal(spectrum.flux, reference.flux)
        np.testing.assert_array_equal(spectrum.error, reference.error)
        np.testing.assert_array_equal(spectrum.wavelength, reference.wavelength)


# ------------------------------------------------------------------ issue 25: wavelengths in nm
def test_a_spectrum_in_nm_is_told_to_give_its_wavelengths_in_angstrom(tmp_path, star):
    wave, flux, error = star
    path = tmp_path / "star_nm.txt"
    np.savetxt(path, np.column_stack([wave / 10, flux, error]), header="wavelength [nm], flux, error")
    with pytest.raises(UlyssAnnError) as excinfo:
        ulyss_ann.fit_spectrum(path, "example", engine="native", **FAST)
    one_line(excinfo, "no overlap", "are its wavelengths in nm? give them in Å")
    with pytest.raises(UlyssAnnError) as excinfo:  # Å read as nm (a wrong CUNIT1): ten times too long
        ulyss_ann.fit_spectrum((wave * 10, flux, error), "example", engine="native", **FAST)
    one_line(excinfo, "no overlap", "labelled nm? give them in Å")
    with pytest.raises(UlyssAnnError) as excinfo:  # off by another factor: no guess at the unit
        ulyss_ann.fit_spectrum((wave * 1000, flux, error), "example", engine="native", **FAST)
    assert "nm" not in one_line(excinfo, "no overlap")


def test_the_median_checks_count_only_where_the_count_decides():
    # from_arrays refuses a flux whose median is out of range or negative; it sorts only where at least half
    # the values are beyond the bound: elsewhere the median cannot be, ties and even counts included
    from ulyss_ann.spectra.spectrum import _median_may_pass

    rng = np.random.default_rng(11)
    decided = 0
    for _ in range(4000):
        values = rng.choice([-2.0, -1.0, -0.0, 0.0, 1e-300, 1.0, 3.0], size=int(rng.integers(1, 9)))
        for beyond, median_beyond in ((values < 0, np.median(values) < 0), (values > 1.0, np.median(values) > 1.0)):
            if not _median_may_pass(beyond):
                decided += 1
                assert not median_beyond, values
    assert decided > 1000
