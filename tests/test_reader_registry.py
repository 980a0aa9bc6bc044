"""The spectrum-reader registry (#27): a reader defined only here works end to end, priorities and
identification choose the reader (an APOGEE file is not taken for an SDSS table), --format forces one."""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

import ulyss_ann
from conftest import install_plugin, warnings_said
from ulyss_ann.cli.main import main
from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.spectra.examples import example_interpolator_path, example_spectrum_path
from ulyss_ann.spectra.reader_registry import SpectrumReader, register_reader, registered_readers, unregister_reader
from ulyss_ann.spectra.reader_registry import SpectrumReadError
from ulyss_ann.spectra import reader_registry
from ulyss_ann.spectra.readers import read_spectrum
from ulyss_ann.model.medium import vacuum_to_air
from ulyss_ann.spectra.spectrum import regular_grid
from ulyss_ann.spectra.spectrum_medium import file_medium

MODEL = example_interpolator_path()
FAST = dict(guesses={"Teff": [5400.0], "Logg": [3.6], "Fe/H": [-2.0]}, mdegree=8)
CLI_FAST = ["--engine", "native", "-j", "0", "--guess", "Teff=5400", "--guess", "Logg=3.6", "--guess", "Fe/H=-2",
            "--mdegree", "8", "--quiet"]


class ToyJsonReader(SpectrumReader):
    """A toy JSON format: {"toy_spectrum": 1, "wavelength": [...], "flux": [...], "error": [...], "meta": {...}}."""

    name = "toy-json"
    description = "toy JSON: wavelength, flux, error arrays (a reader defined only in the tests)"
    priority = 70

    def identify(self, source):
        return source.head.lstrip().startswith(b"{") and b'"toy_spectrum"' in source.head

    def read(self, source):
        with open(source.path) as handle:
            data = json.load(handle)
        wavelength = np.asarray(data["wavelength"], float)
        medium = file_medium([{"CTYPE1": data.get("ctype1", "")}])  # the WCS word for air or vacuum
        return self.spectrum(source, wavelength, data["flux"], data["error"], grid=regular_grid(wavelength),
                             meta=data.get("meta"), medium=medium)


@pytest.fixture
def toy_reader():
    reader = register_reader(ToyJsonReader())
    yield reader
    unregister_reader(reader.name)


def _write_toy(path):
    """The bundled example spectrum (flux in HDU 0, SIGMA in HDU 1, a linear air WCS) as a toy JSON file."""
    with ulyss_ann.example_spectrum() as hdul:
        header, flux, sigma = hdul[0].header, hdul[0].data, hdul["SIGMA"].data
        wavelength = header["CRVAL1"] + header["CDELT1"] * (np.arange(flux.size) + 1 - header["CRPIX1"])
        path.write_text(json.dumps({"toy_spectrum": 1, "ctype1": header["CTYPE1"], "wavelength": wavelength.tolist(),
                                    "flux": flux.astype(float).tolist(), "error": sigma.astype(float).tolist(),
                                    "meta": {"simulated": True, "object": header["OBJECT"]}}))
    return path


def test_a_reader_registered_in_the_tests_fits_from_python_like_the_fits_file(tmp_path, toy_reader):
    path = _write_toy(tmp_path / "star.json")
    spectrum = read_spectrum(path)
    assert spectrum.meta["format"] == "toy-json" and spectrum.meta["id"] == "star"
    result = ulyss_ann.fit_spectrum(path, model=MODEL, engine="native", **FAST)
    reference = ulyss_ann.fit_spectrum(example_spectrum_path(), model=MODEL, engine="native", **FAST)
    assert result.spectrum_id == "star"
    for name in ("Teff", "Logg", "Fe/H"):  # the same arrays: the same fit
        assert result.params[name] == pytest.approx(reference.params[name], rel=1e-6)
    assert result.cz == pytest.approx(reference.cz, abs=1e-3)
    table = ulyss_ann.fit([path], model=MODEL, output=None, engine="native", workers=0, progress=False,
                          format="toy-json", **FAST)  # the batch, its reader forced
    assert list(table["status"]) == ["ok"] and table["Teff"][0] == pytest.approx(result.params["Teff"], rel=1e-9)


def test_a_reader_registered_in_the_tests_fits_from_the_cli_and_by_format(tmp_path, toy_reader, capsys):
    path = _write_toy(tmp_path / "star.json")
    assert main(["fit", str(path), "-m", MODEL, *CLI_FAST, "-o", str(tmp_path / "out.ecsv")]) == 0
    table = Table.read(tmp_path / "out.ecsv")
    assert list(table["status"]) == ["ok"] and list(table["id"]) == ["star"]
    assert table.meta.get("format") is None  # each file's own reader
    # forced by name: the format reaches the batch's reads and the run's record (a resume must repeat it)
    assert main(["fit", str(path), "-m", MODEL, *CLI_FAST, "--format", "toy-json", "-o", str(tmp_path / "f.ecsv")]) == 0
    forced = Table.read(tmp_path / "f.ecsv")
    assert list(forced["status"]) == ["ok"] and forced.meta["format"] == "toy-json"
    np.testing.assert_allclose(forced["Teff"], table["Teff"], rtol=1e-9)
    capsys.readouterr()
    assert main(["fit", str(path), "-m", MODEL, *CLI_FAST, "--format", "toy-json", "--resume",
                 "-o", str(tmp_path / "out.ecsv")]) == 2  # another reader: another run
    assert 'format: null in the journal, "toy-json" now' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    assert "toy-json:toyJSON:wavelength" in "".join(capsys.readouterr().out.split())  # --format's help: the registry's


def _apstar(path, nrows=3, npix=400):
    """An apStar-like file as the APOGEE data model lays it out: an empty primary HDU (RA, DEC, OBJID), flux
    (rows: combined, global, visits), error and an integer bitmask in HDUs 1-3 with a log10-λ WCS, then tables."""
    rng = np.random.default_rng(3)
    flux = 1000.0 + rng.normal(0, 5.0, (nrows, npix))
    flux[1:] += 50.0  # the other rows differ: row 0 must be the one read
    error = np.full((nrows, npix), 5.0)
    mask = np.zeros((nrows, npix), np.int16)
    mask[0, 10] = 1 << 0   # BADPIX
    mask[0, 20] = 1 << 12  # SIG_SKYLINE
    mask[0, 30] = 1 << 9   # PERSIST_HIGH: informational, kept
    primary = fits.PrimaryHDU(header=fits.Header({"RA": 10.5, "DEC": -3.25, "OBJID": "2M00420000-0315000",
                                                  "TELESCOP": "apo25m"}))
    wcs = {"CRVAL1": 4.179, "CDELT1": 6e-6, "CRPIX1": 1, "CTYPE1": "LOG-LINEAR", "DC-FLAG": 1}
    hdus = [primary, fits.ImageHDU(flux.astype(np.float32), fits.Header(wcs)),
            fits.ImageHDU(error.astype(np.float32), fits.Header(wcs)), fits.ImageHDU(mask, fits.Header(wcs))]
    visits = fits.BinTableHDU(Table({"SNR": np.full(nrows - 2, 80.0), "VHELIO": np.zeros(nrows - 2)}))
    fits.HDUList(hdus + [visits]).writeto(path)
    return path, flux


def test_an_apstar_file_is_read_by_the_apogee_reader_not_the_table_one(tmp_path):
    path, flux = _apstar(tmp_path / "apStar-dr17-2M00420000-0315000.fits")
    spectrum = read_spectrum(path)
    assert spectrum.meta["format"] == "apogee"
    assert (spectrum.meta["ra"], spectrum.meta["dec"], spectrum.meta["object"]) == (10.5, -3.25, "2M00420000-0315000")
    assert spectrum.medium == "vacuum" and spectrum.medium_source == "APOGEE convention: vacuum"
    np.testing.assert_allclose(spectrum.wavelength, vacuum_to_air(10 ** (4.179 + 6e-6 * np.arange(400))), rtol=1e-12)
    assert not spectrum.good[10] and not spectrum.good[20] and spectrum.good[30] and spectrum.n_bad == 2
    good = spectrum.good
    np.testing.assert_allclose(spectrum.flux[good], flux[0].astype(np.float32)[good], rtol=1e-6)  # row 0
    with pytest.raises(SpectrumReadError, match="no FLUX column"):
        read_spectrum(path, format="table")  # what the table reader would have made of it


def test_a_gzipped_aspcapstar_file_reads_without_a_mask_and_names_its_spectrum_without_fits_gz(tmp_path):
    path, _ = _apstar(tmp_path / "apStar.fits")
    with fits.open(path) as hdul:  # aspcapStar: 1-D, HDU 3 the best-fit model (floats), then the ASPCAP table
        hdul[1].data, hdul[2].data, hdul[3].data = hdul[1].data[0], hdul[2].data[0], hdul[1].data[0] * 0.9
        hdul.writeto(tmp_path / "model.fits")
    packed = tmp_path / "aspcapStar-2M1.fits.gz"
    packed.write_bytes(gzip.compress((tmp_path / "model.fits").read_bytes()))
    spectrum = read_spectrum(packed)
    assert spectrum.meta["format"] == "apogee" and spectrum.meta["id"] == "aspcapStar-2M1"
    assert spectrum.n_bad == 0  # a model is no bitmask


def test_readers_are_asked_by_priority():
    priorities = [reader.priority for reader in registered_readers()]
    assert priorities == sorted(priorities, reverse=True)
    names = [reader.name for reader in registered_readers()]
    assert names.index("apogee") < names.index("table") and names.index("muse") < names.index("fits-1d")


def test_an_unknown_format_is_one_line_listing_the_readers(tmp_path, capsys):
    with pytest.raises(UlyssAnnError, match="--format nope: no such spectrum reader; the readers are apogee, ") as info:
        read_spectrum(example_spectrum_path(), format="nope")
    assert "\n" not in str(info.value) and "specutils" in str(info.value)
    status = main(["fit", example_spectrum_path(), "-m", MODEL, *CLI_FAST, "--format", "nope",
                   "-o", str(tmp_path / "out.ecsv")])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("ulyss-ann: error: --format nope: no such spectrum reader")
    assert err.count("\n") == 1 and not (tmp_path / "out.ecsv").exists()


@pytest.mark.parametrize("forced", ["text", "apogee", "lamost-image"])
def test_a_format_forced_on_a_file_of_another_kind_is_one_line_naming_it(forced):
    with pytest.raises(SpectrumReadError) as info:
        read_spectrum(example_spectrum_path(), format=forced)
    message = str(info.value)
    assert message.startswith(f"{example_spectrum_path()}: not a {forced} file") and "\n" not in message
    assert "it reads as muse" in message


@pytest.mark.parametrize("command", [["chimap", "{spectrum}", "--x", "Teff=5000:6000:3", "-o", "{out}.fits"],
                                     ["lsf", "measure", "{spectrum}", "-o", "{out}.txt"]])
def test_the_other_commands_that_read_a_spectrum_take_format(tmp_path, capsys, command):
    argv = [item.format(spectrum=example_spectrum_path(), out=tmp_path / "out") for item in command]
    assert main(argv + ["-m", MODEL, "--format", "text"]) == 2
    err = capsys.readouterr().err
    assert f"{example_spectrum_path()}: not a text file" in err and err.count("\n") == 1


def test_specutils_loaders_are_reached_by_format_only(tmp_path, monkeypatch):
    specutils = pytest.importorskip("specutils")
    import astropy.units as u
    from astropy.nddata import StdDevUncertainty

    cls = getattr(specutils, "Spectrum", None) or specutils.Spectrum1D
    wave = np.linspace(5000.0, 5100.0, 60) * u.AA
    flux = np.linspace(1.0, 2.0, 60) * u.Jy
    cls(flux=flux, spectral_axis=wave, uncertainty=StdDevUncertainty(np.full(60, 0.1))).write(
        tmp_path / "s.fits", format="tabular-fits")
    spectrum = read_spectrum(tmp_path / "s.fits", format="specutils:tabular-fits")
    assert spectrum.meta["format"] == "specutils" and spectrum.meta["id"] == "s"
    np.testing.assert_allclose(spectrum.flux, np.linspace(1.0, 2.0, 60))
    np.testing.assert_allclose(spectrum.error, 0.1)
    assert read_spectrum(tmp_path / "s.fits").meta["format"] != "specutils"  # never chosen by content
    monkeypatch.setitem(__import__("sys").modules, "specutils", None)  # specutils absent: one line
    with pytest.raises(SpectrumReadError, match="needs specutils, which is not installed"):
        read_spectrum(tmp_path / "s.fits", format="specutils")


def test_the_docs_list_every_registered_reader():
    text = (Path(__file__).resolve().parents[1] / "docs" / "fitting.md").read_text()
    for reader in registered_readers():
        assert f"| `{reader.name}` | {reader.description} |" in text, reader.name


#: An installed package's reader, in a module of its own: the toy JSON format under another name.
PLUGIN_READER = """\
import json

import numpy as np

from ulyss_ann.spectra.reader_registry import SpectrumReader
from ulyss_ann.spectra.spectrum import regular_grid


class PluginJsonReader(SpectrumReader):
    name = "toy-plugin"
    description = "toy JSON, from an installed package (the tests')"
    priority = 70

    def identify(self, source):
        return b'"toy_spectrum"' in source.head

    def read(self, source):
        with open(source.path) as handle:
            data = json.load(handle)
        wavelength = np.asarray(data["wavelength"], float)
        return self.spectrum(source, wavelength, data["flux"], data["error"], grid=regular_grid(wavelength))
"""


def test_an_installed_package_registers_a_reader_through_its_entry_point(tmp_path, monkeypatch):
    install_plugin(tmp_path, monkeypatch, "toy_reader_plugin", PLUGIN_READER, "ulyss_ann.readers",
                   ["toy-plugin = toy_reader_plugin:PluginJsonReader", "toy-broken = toy_reader_plugin:NoSuchReader"])
    path = _write_toy(tmp_path / "star.json")
    try:
        # the broken one: one line naming it, and every other reader still there
        assert warnings_said(reader_registry.refresh_entry_points) == [[
            "spectrum reader 'toy-broken = toy_reader_plugin:NoSuchReader' (ulyss_ann.readers) left out: "
            "AttributeError: module 'toy_reader_plugin' has no attribute 'NoSuchReader'; fix or uninstall the "
            "package that declares it"]]
        assert "toy-plugin" in [r.name for r in registered_readers()] and "toy-broken" not in {
            r.name for r in registered_readers()}
        spectrum = read_spectrum(path)  # identified among the built-ins, by its priority
        assert spectrum.meta["format"] == "toy-plugin" and spectrum.meta["id"] == "star"
        assert read_spectrum(path, format="toy-plugin").flux.size == spectrum.flux.size
        assert reader_registry.reader_reachable("toy-plugin")  # Dask's workers see it: a batch may force it
    finally:
        unregister_reader("toy-plugin")
    # another process (a Dask worker) sees it too, with nothing registered in it by hand
    code = ("import warnings; warnings.simplefilter('ignore'); from ulyss_ann.spectra.readers import read_spectrum; "
            f"print(read_spectrum({str(path)!r}).meta['format'])")
    path_entries = [str(tmp_path)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(path_entries)})
    assert run.returncode == 0 and run.stdout.strip() == "toy-plugin", run.stderr


class CapitalToyReader(ToyJsonReader):
    name = "Toy"  # capitals: --format lower-cases what it is given


def test_a_reader_named_with_capitals_is_forced_by_its_name_in_any_case(tmp_path):
    path = _write_toy(tmp_path / "star.json")
    reader = register_reader(CapitalToyReader())
    try:
        assert reader_registry.reader_named("Toy") is reader and reader_registry.reader_named("toy") is reader
        assert read_spectrum(path, format="Toy").meta["format"] == "Toy"
        with pytest.raises(ValueError, match="^spectrum reader 'toy' is registered already"):
            register_reader(type("LowerToy", (ToyJsonReader,), {"name": "toy"})())  # one name, whatever its case
    finally:
        unregister_reader("Toy")
    assert "toy" not in [r.name.lower() for r in registered_readers()]


def test_a_reader_registered_in_this_session_alone_is_refused_for_dask_workers(tmp_path, toy_reader):
    assert not reader_registry.reader_reachable("toy-json") and reader_registry.reader_reachable("fits-1d")
    assert reader_registry.reader_reachable("specutils:tabular-fits")  # the package's own, with its option
    path = _write_toy(tmp_path / "star.json")
    with pytest.raises(UlyssAnnError) as refused:
        ulyss_ann.fit([path], model=MODEL, output=tmp_path / "r.ecsv", engine="native", workers=2, progress=False,
                      format="toy-json", **FAST)
    assert str(refused.value) == ("the reader 'toy-json' is registered in this session only, which Dask's workers "
                                  "cannot see: fit with workers=0 (-j 0), or register it through an entry point "
                                  "(ulyss_ann.readers)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["star.json"]  # before any cluster, journal or table
