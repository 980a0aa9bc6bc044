"""The notebook's way in: one real MUSE star fitted from every kind of input, in memory.

``ulyss_ann.fit_spectrum`` and ``ulyss_ann.fit`` take a path, a ``ulyss_ann.Spectrum``,
a specutils spectrum, ``(wavelength, flux[, error])`` arrays or Quantities; all of them
must give the fit of the file itself.
"""

import shutil

import numpy as np
import pytest
from astropy.io import fits

import ulyss_ann
from conftest import SHARED, reference_file
from ulyss_ann import Spectrum, UlyssAnnError

MUSE = SHARED / "data" / "muse" / "ngc6397id000010554jd2456865p5826f000.fits"
TEFF_TOL, FEH_TOL = 1.0, 0.002  # K, dex: the same fit, whatever the way in


@pytest.fixture(scope="module")
def muse():
    if not MUSE.is_file():
        pytest.skip(f"{MUSE} not found: the real MUSE star lives in ../shared/data/muse beside the project "
                    "(absent from a user's clone)")
    return str(MUSE)


@pytest.fixture(scope="module")
def model():
    return str(reference_file("gsl_ann_trial7.fits"))


@pytest.fixture(scope="module")
def arrays(muse):
    """(wavelength [Å], flux, 1-σ error) read with astropy alone: linear WCS, error in HDU SIGMA."""
    with fits.open(muse) as hdul:
        header = hdul[0].header
        flux = np.asarray(hdul[0].data, float)
        error = np.asarray(hdul["SIGMA"].data, float)
    pixel = np.arange(flux.size) + 1.0
    wavelength = header["CRVAL1"] + header["CDELT1"] * (pixel - header["CRPIX1"])
    return wavelength, flux, error


@pytest.fixture(scope="module")
def reference(muse, model):
    """The fit of the file given by its path: what every other input must reproduce."""
    result = ulyss_ann.fit_spectrum(muse, model=model, engine="native")
    assert 5300 < result.params["Teff"] < 5600 and -2.2 < result.params["Fe/H"] < -1.6  # metal-poor subgiant
    return result


def assert_same_fit(result, reference):
    assert abs(result.params["Teff"] - reference.params["Teff"]) <= TEFF_TOL, (result, reference)
    assert abs(result.params["Fe/H"] - reference.params["Fe/H"]) <= FEH_TOL, (result, reference)


def one_line_error(excinfo, *words):
    message = str(excinfo.value)
    assert "\n" not in message and message.strip(), message
    for word in words:
        assert word in message, message
    return message


def specutils_class():
    specutils = pytest.importorskip("specutils", reason="specutils not installed (pip install ulyss_ann[specutils])")
    cls = getattr(specutils, "Spectrum", None) or specutils.Spectrum1D  # specutils 2.x / 1.x
    from astropy.nddata import StdDevUncertainty

    return cls, StdDevUncertainty


# --------------------------------------------------------------------- fit_spectrum, every input
def test_fit_from_path_is_a_fit_result(reference, muse):
    assert reference.engine == "native"
    assert reference.spectrum_id == "ngc6397id000010554jd2456865p5826f000"
    assert reference.units == {"Teff": "K", "Logg": "dex", "Fe/H": "dex"}
    assert set(reference.errors) == set(reference.params) and all(e > 0 for e in reference.errors.values())
    from pathlib import Path

    assert_same_fit(ulyss_ann.fit_spectrum(Path(muse), model=ulyss_ann.Interpolator.read(reference_file(
        "gsl_ann_trial7.fits")), engine="native"), reference)


def test_fit_from_arrays(arrays, model, reference):
    wavelength, flux, error = arrays
    assert_same_fit(ulyss_ann.fit_spectrum((wavelength, flux, error), model=model, engine="native"), reference)


def test_fit_from_spectrum_objects(arrays, muse, model, reference):
    read = ulyss_ann.read_spectrum(muse)
    result = ulyss_ann.fit_spectrum(read, model=model, engine="native")
    assert_same_fit(result, reference)
    assert result.spectrum_id == reference.spectrum_id
    built = Spectrum.from_arrays(*arrays, meta={"id": "star10554"})
    assert built.grid is not None and not built.grid.log  # the linear WCS is recognised from the arrays
    result = ulyss_ann.fit_spectrum(built, model=model, engine="native")
    assert_same_fit(result, reference)
    assert result.spectrum_id == "star10554"


@pytest.mark.parametrize("unit", ["Angstrom", "nm"])
def test_fit_from_specutils(arrays, model, reference, unit):
    import astropy.units as u

    cls, StdDevUncertainty = specutils_class()
    wavelength, flux, error = arrays
    flux_unit = u.Unit("1e-20 erg / (s cm2 Angstrom)")
    axis = (wavelength * u.AA).to(u.Unit(unit))
    spec = cls(spectral_axis=axis, flux=flux * flux_unit, uncertainty=StdDevUncertainty(error * flux_unit))
    result = ulyss_ann.fit_spectrum(spec, model=model, engine="native")
    assert_same_fit(result, reference)


def test_fit_from_quantities(arrays, model, reference):
    import astropy.units as u

    wavelength, flux, error = arrays
    flux_unit = u.Unit("1e-20 erg / (s cm2 Angstrom)")
    result = ulyss_ann.fit_spectrum((wavelength * u.AA, flux * flux_unit, error * flux_unit), model=model,
                                    engine="native")
    assert_same_fit(result, reference)
    # nm, and the error in another (compatible) unit than the flux
    result = ulyss_ann.fit_spectrum(((wavelength / 10) * u.nm, flux * flux_unit, (error * 1e-20) * flux_unit * 1e20),
                                    model=model, engine="native")
    assert_same_fit(result, reference)


def test_fit_from_a_frequency_axis(arrays, model, reference):
    """A spectral axis in frequency runs backwards in wavelength: it is turned round, not refused."""
    import astropy.units as u

    wavelength, flux, error = arrays
    frequency = (wavelength * u.AA).to(u.THz, equivalencies=u.spectral())[::-1]
    result = ulyss_ann.fit_spectrum((frequency, flux[::-1], error[::-1]), model=model, engine="native")
    assert_same_fit(result, reference)


def test_import_does_not_load_specutils():
    import subprocess
    import sys

    code = ("import sys, ulyss_ann, ulyss_ann.fitting.api, ulyss_ann.fitting.batch.driver, ulyss_ann.spectra.inputs; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('specutils', 'gwcs')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------- looking at the result
def test_plot_returns_a_figure_and_keeps_the_backend(reference):
    import matplotlib
    from matplotlib.figure import Figure

    backend = matplotlib.get_backend()
    fig = reference.plot()
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2
    assert all(ax.lines for ax in fig.axes)
    assert len(fig.axes[0].lines[0].get_xdata()) == reference.wavelength.size
    assert matplotlib.get_backend() == backend


def test_to_table_has_units(reference):
    import astropy.units as u

    table = reference.to_table()
    assert len(table) == 1
    assert table["Teff"].unit == u.K and table["cz"].unit == u.km / u.s
    assert table["Teff"][0] == pytest.approx(reference.params["Teff"])


# --------------------------------------------------------------------- fit: many at once, in memory
def test_batch_of_one_path_string(muse, model, reference):
    import astropy.units as u

    table = ulyss_ann.fit(muse, model=model, engine="native", output=None, workers=0, progress=False)
    assert len(table) == 1, "a single path must not be iterated character by character"
    row = table[0]
    assert row["status"] == "ok" and row["id"] == reference.spectrum_id
    assert table["Teff"].unit == u.K and table["Fe/H"].unit == u.dex and table["cz"].unit == u.km / u.s
    assert abs(row["Teff"] - reference.params["Teff"]) <= TEFF_TOL
    assert abs(row["Fe/H"] - reference.params["Fe/H"]) <= FEH_TOL


def test_batch_of_mixed_inputs_keeps_order_and_ids(muse, model, arrays, reference):
    inputs = [muse, Spectrum.from_arrays(*arrays), tuple(arrays)]
    table = ulyss_ann.fit(inputs, model=model, output=None, workers=0, engine="native", progress=False)
    assert len(table) == 3
    assert list(table["status"]) == ["ok"] * 3
    ids = list(table["id"])
    assert ids[0] == reference.spectrum_id and len(set(ids)) == 3, ids
    np.testing.assert_allclose(table["Teff"], reference.params["Teff"], atol=TEFF_TOL)
    np.testing.assert_allclose(table["Fe/H"], reference.params["Fe/H"], atol=FEH_TOL)


def test_batch_of_spectra_without_ids_keeps_them_all(model, arrays):
    wavelength, flux, error = arrays
    spectra = [Spectrum.from_arrays(wavelength, flux, error), Spectrum.from_arrays(wavelength, 2 * flux, 2 * error)]
    table = ulyss_ann.fit(spectra, model=model, output=None, workers=0, engine="native", progress=False)
    assert len(table) == 2 and len(set(table["id"])) == 2
    assert [s.meta["id"] for s in spectra] == ["spectrum", "spectrum"]   # the caller's objects untouched


def test_spectra_in_memory_keep_a_row_each_whatever_their_names(tmp_path):
    # an in-memory spectrum without a name of its own is numbered; a name a spectrum given before took is
    # not reused, so none is dropped and a resume still sees every one of the run's spectra
    from dataclasses import replace

    from ulyss_ann.fitting.batch.resume import open_journal
    from ulyss_ann.fitting.batch.sources import batch_inputs
    from ulyss_ann.spectra.inputs import as_spectrum

    wave = np.linspace(4800.0, 5800.0, 300)
    flux = 1 + 0.01 * np.sin(wave)

    def named(ident):
        spectrum = as_spectrum((wave, flux))
        return replace(spectrum, meta={**spectrum.meta, "id": ident})

    bad = (wave, flux[:-5])   # refused: its row says why
    for items in ([named("spectrum0003"), (wave, flux), (wave, flux)], [named("spectrum0003"), (wave, flux), bad]):
        entries = batch_inputs(items)
        assert len(entries) == 3, [e.key for e in entries]
        assert len({e.key for e in entries}) == 3 and len({e.ident for e in entries}) == 3
    output, record = tmp_path / "memory.ecsv", {"engine": "native"}
    open_journal(output, False, False, record, batch_inputs([named("spectrum0003"), named("foo"), bad]), False)
    with pytest.raises(UlyssAnnError, match=r"1 spectrum of this run not given now \(e\.g\. memory:foo\)"):
        open_journal(output, True, False, record, batch_inputs([named("spectrum0003"), named("bar"), bad]), True)


# --------------------------------------------------------------------- errors, one line each
def test_bad_inputs_are_one_line_errors(model, arrays):
    import astropy.units as u

    with pytest.raises(UlyssAnnError) as excinfo:
        ulyss_ann.fit_spectrum(42, model=model, engine="native")
    one_line_error(excinfo, "int")
    with pytest.raises(UlyssAnnError) as excinfo:
        ulyss_ann.fit([42], model=model, engine="native", output=None, workers=0, progress=False)
    one_line_error(excinfo, "int")
    cls, _ = specutils_class()
    wavelength, flux, _ = arrays
    two_d = cls(spectral_axis=wavelength * u.AA, flux=np.vstack([flux, flux]) * u.Jy)
    with pytest.raises(UlyssAnnError) as excinfo:
        ulyss_ann.fit_spectrum(two_d, model=model, engine="native")
    one_line_error(excinfo, "(2, ")
    with pytest.raises(UlyssAnnError) as excinfo:
        ulyss_ann.fit(two_d, model=model, engine="native", output=None, workers=0, progress=False)
    one_line_error(excinfo, "(2, ")


def test_batch_of_a_lone_bad_input_is_a_one_line_error(model):
    with pytest.raises(UlyssAnnError) as excinfo:
        ulyss_ann.fit(42, model=model, engine="native", output=None, workers=0, progress=False)
    one_line_error(excinfo, "int")


def test_unknown_option_is_named(muse, model):
    with pytest.raises(UlyssAnnError) as excinfo:
        ulyss_ann.fit_spectrum(muse, model=model, engine="native", mdegre=10)
    one_line_error(excinfo, "mdegre")


# --------------------------------------------------------------------- the GDL engine, the same way in
@pytest.mark.gdl
def test_gdl_engine_from_arrays_matches_path(muse, model, arrays):
    by_path = ulyss_ann.fit_spectrum(muse, model=model, engine="gdl")
    by_arrays = ulyss_ann.fit_spectrum(tuple(arrays), model=model, engine="gdl")
    assert by_path.engine.startswith("gdl") and by_arrays.engine.startswith("gdl")
    assert 5300 < by_path.params["Teff"] < 5600 and -2.2 < by_path.params["Fe/H"] < -1.6
    assert_same_fit(by_arrays, by_path)


# --------------------------------------------------------------------- options, models and units, checked
def test_the_uncertainty_unit_of_a_specutils_spectrum_is_honoured(arrays, model, reference):
    import astropy.units as u

    cls, StdDevUncertainty = specutils_class()
    wavelength, flux, error = arrays
    flux_unit = u.Unit("1e-20 erg / (s cm2 Angstrom)")
    # the same errors, written in a unit 1000 times smaller
    spec = cls(spectral_axis=wavelength * u.AA, flux=flux * flux_unit,
               uncertainty=StdDevUncertainty(error * 1e3, unit=flux_unit / 1e3))
    result = ulyss_ann.fit_spectrum(spec, model=model, engine="native")
    assert result.errors["Teff"] == pytest.approx(reference.errors["Teff"], rel=1e-6)
    assert result.e_cz == pytest.approx(reference.e_cz, rel=1e-6)


def test_guesses_and_fixed_values_are_checked_and_used(muse, model):
    with pytest.raises(UlyssAnnError) as excinfo:
        ulyss_ann.fit_spectrum(muse, model=model, engine="native", guesses={"Tef": [5000.0]})
    one_line_error(excinfo, "Tef", "Teff")
    with pytest.raises(UlyssAnnError) as excinfo:
        ulyss_ann.fit_spectrum(muse, model=model, engine="native", fixed={"Logg": "x"})
    one_line_error(excinfo, "Logg", "'x'")
    # a guess of 0.0 is a guess (not "none given"), and NumPy arrays are fine
    result = ulyss_ann.fit_spectrum(muse, model=model, engine="native", mdegree=8,
                                    guesses={"Fe/H": 0.0, "Teff": np.array([5400.0])})
    assert result.n_guess == 1
    with pytest.raises(UlyssAnnError) as excinfo:
        ulyss_ann.fit([muse], model=model, engine="native", output=None, workers=0, progress=False,
                      guesses={"Tef": [5000.0]})
    one_line_error(excinfo, "Tef")


def test_a_model_rewritten_under_the_same_name_is_a_new_model(muse, model, tmp_path, reference):
    from ulyss_ann.spectra.examples import example_interpolator_path

    path = tmp_path / "network.fits"
    shutil.copyfile(example_interpolator_path(), path)
    first = ulyss_ann.fit_spectrum(muse, model=path, engine="native")
    assert first.surrogate and "SURROGATE" in repr(first)
    shutil.copyfile(model, path)   # trial 7 now
    second = ulyss_ann.fit_spectrum(muse, model=path, engine="native")
    assert second.model_sha256 != first.model_sha256 and not second.surrogate
    assert second.params == reference.params


@pytest.mark.pygdl
def test_the_in_process_gdl_bridge_from_a_notebook(muse, model):
    """engine='gdl', backend='pygdl' in a fresh process (python3-gdl reads GDL_PATH once, at import)."""
    import subprocess
    import sys

    code = ("import ulyss_ann; r = ulyss_ann.fit_spectrum(%r, model=%r, engine='gdl', backend='pygdl'); "
            "print(r.engine, repr(r.params['Teff']), repr(r.params['Fe/H']))" % (muse, model))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    engine, teff, feh = out.stdout.split()
    subprocess_result = ulyss_ann.fit_spectrum(muse, model=model, engine="gdl", backend="subprocess")
    assert engine == "gdl-pygdl"
    assert abs(float(teff) - subprocess_result.params["Teff"]) <= TEFF_TOL
    assert abs(float(feh) - subprocess_result.params["Fe/H"]) <= FEH_TOL


def test_fit_from_an_hdulist_is_the_fit_of_its_content_now():
    # astropy's HDUList (fits.open's, example_spectrum()'s, one built in memory) is read as its file would be:
    # its content as it is now, an id from the file it came from
    from ulyss_ann.spectra.examples import example_spectrum_path

    alone = ulyss_ann.fit_spectrum(example_spectrum_path(), engine="native")
    with ulyss_ann.example_spectrum() as hdul:
        result = ulyss_ann.fit_spectrum(hdul, engine="native")
        assert result.params == alone.params and result.chi2 == alone.chi2
        assert result.spectrum_id == alone.spectrum_id == "example_spectrum"
        assert result.meta["file"] == str(example_spectrum_path())
        hdul["SIGMA"].data = hdul["SIGMA"].data * 10.0  # changed in memory, not on disk
        changed = ulyss_ann.fit_spectrum(hdul, engine="native")
        built = fits.HDUList([fits.PrimaryHDU(hdul[0].data, header=hdul[0].header),
                              fits.ImageHDU(hdul["SIGMA"].data, header=hdul["SIGMA"].header, name="SIGMA")])
        table = ulyss_ann.fit([built, built], output=None, workers=0, progress=False, engine="native")
    assert changed.chi2 == pytest.approx(alone.chi2 / 100, rel=1e-6)
    assert changed.params["Teff"] == pytest.approx(alone.params["Teff"], abs=1e-3)
    assert list(table["status"]) == ["ok", "ok"] and len(set(table["id"])) == 2
    assert list(table["chi2"]) == pytest.approx([changed.chi2] * 2, rel=1e-9)
    # what cannot be fitted names the HDUList, never the temporary file it was written to
    for hdul, words in ((fits.HDUList(), "the HDUList is empty"),
                        (fits.HDUList([fits.PrimaryHDU()]), "the HDUList: ")):
        with pytest.raises(UlyssAnnError) as excinfo:
            ulyss_ann.fit_spectrum(hdul, engine="native")
        assert "ulyss_ann-" not in one_line_error(excinfo, words)
