"""Compressed spectrum files (gzip, bzip2, fpack's tile compression) and the ids of their spectra (#25)."""

import bz2
import gzip
import shutil

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from conftest import cli_here
from ulyss_ann.fitting.batch.sources import batch_inputs
from ulyss_ann.spectra.compression import spectrum_name
from ulyss_ann.spectra.reader_registry import SpectrumReadError
from ulyss_ann.spectra.readers import read_spectrum
from ulyss_ann.spectra.examples import example_interpolator
from ulyss_ann.spectra.simulate import simulate_spectrum, write_muse_spectrum


def _muse(path, npix=190):
    wave = 4750.0 + 1.25 * np.arange(npix)
    flux = 1000.0 + np.random.default_rng(1).normal(0, 20.0, npix)
    sigma = np.linspace(15.0, 25.0, npix)  # not constant: the error read must be the SIGMA extension's
    write_muse_spectrum(path, wave, flux, sigma, header=fits.Header({"RA": 265.17, "DEC": -53.67}))
    return path


def _compress(path, opener, suffix):
    target = path.with_name(path.name + suffix)
    with open(path, "rb") as raw, opener(target, "wb") as packed:
        shutil.copyfileobj(raw, packed)
    return target


def _fpack(path, target):
    """``path`` tile-compressed as fpack writes it: an empty primary HDU, the flux in HDU 1 (lossless)."""
    with fits.open(path) as hdul:
        fits.HDUList([fits.PrimaryHDU()] + [fits.CompImageHDU(hdu.data, hdu.header, name=name, quantize_level=0.0,
                                                               compression_type="GZIP_1")
                                            for hdu, name in ((hdul[0], "COMPRESSED_IMAGE"), (hdul["SIGMA"], "SIGMA"))]
                     ).writeto(target)
    return target


@pytest.mark.parametrize("name", ["star.fits.gz", "star.fit.bz2", "star.fits.fz"])
def test_a_compressed_muse_file_reads_as_the_plain_one_with_its_sigma(tmp_path, name):
    plain = read_spectrum(_muse(tmp_path / "star.fits"))
    packed = tmp_path / "packed"
    packed.mkdir()
    if name.endswith(".fz"):
        path = _fpack(tmp_path / "star.fits", packed / name)
    else:
        opener = gzip.open if name.endswith(".gz") else bz2.open
        path = packed / name
        with open(tmp_path / "star.fits", "rb") as raw, opener(path, "wb") as out:
            shutil.copyfileobj(raw, out)
    spectrum = read_spectrum(path)
    assert spectrum.meta["id"] == "star" and spectrum.meta["format"] == "muse"
    assert (spectrum.meta["ra"], spectrum.meta["dec"]) == (265.17, -53.67)
    np.testing.assert_array_equal(spectrum.flux, plain.flux)
    np.testing.assert_array_equal(spectrum.error, plain.error)  # the SIGMA extension, not an estimate
    np.testing.assert_array_equal(spectrum.wavelength, plain.wavelength)
    assert spectrum.grid == plain.grid


def test_a_tile_compressed_long_spectrum_is_not_taken_for_a_truncated_file_and_its_pixels_are_budgeted(
        tmp_path, monkeypatch):
    # 10^5 equal pixels compress to a few kB, far less than the image's declared 400 kB
    header = fits.Header({"CRVAL1": 4750.0, "CDELT1": 0.01, "CRPIX1": 1.0, "CUNIT1": "Angstrom"})
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(np.ones(100_000, np.float32), header)]).writeto(
        tmp_path / "long.fits.fz")
    spectrum = read_spectrum(tmp_path / "long.fits.fz")
    assert spectrum.flux.size == 100_000 and spectrum.meta["id"] == "long"
    # what it holds once decompressed is what the budget counts, refused before it is read
    monkeypatch.setenv("ULYSS_ANN_MAX_PIXELS", "10000")
    with pytest.raises(SpectrumReadError, match="spectrum of 100000 pixels, over the memory budget"):
        read_spectrum(tmp_path / "long.fits.fz")


def test_compressed_text_reads_and_damaged_streams_are_one_line(tmp_path):
    wave = np.linspace(5000, 6000, 50)
    np.savetxt(tmp_path / "star.txt", np.column_stack([wave, np.ones(50), np.full(50, 0.1)]))
    text = _compress(tmp_path / "star.txt", gzip.open, ".gz")
    spectrum = read_spectrum(text)
    assert spectrum.meta["id"] == "star"
    np.testing.assert_allclose(spectrum.error, 0.1)
    (tmp_path / "cut.txt.gz").write_bytes(text.read_bytes()[:200])
    with pytest.raises(SpectrumReadError, match="cut.txt.gz: a corrupt compressed file"):
        read_spectrum(tmp_path / "cut.txt.gz")
    with gzip.open(tmp_path / "empty.txt.gz", "wb"):
        pass   # a gzip stream of nothing: said as the empty file it is, as an uncompressed one is
    with pytest.raises(SpectrumReadError, match="empty.txt.gz: an empty file once decompressed"):
        read_spectrum(tmp_path / "empty.txt.gz")
    packed = _compress(_muse(tmp_path / "muse.fits", npix=4000), gzip.open, ".gz").read_bytes()
    (tmp_path / "cut.fits.gz").write_bytes(packed[:len(packed) // 2])
    (tmp_path / "garbled.fits.gz").write_bytes(packed[:10] + b"x" * 500)
    for name, words in (("cut.fits.gz", "truncated or corrupt"), ("garbled.fits.gz", "corrupt gzip file")):
        with pytest.raises(SpectrumReadError, match=words) as info:
            read_spectrum(tmp_path / name)
        assert str(info.value).startswith(str(tmp_path / name)) and "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["star.fits.gz", "star.fits.fz", "star.fit.bz2", "star.fits", "star.FITS.GZ",
                                  "star.txt", "star.txt.gz"])
def test_a_spectrum_id_drops_every_suffix_of_its_file(name):
    assert spectrum_name(f"/data/night1/{name}") == "star"


def test_dotted_names_keep_their_dots_and_a_compressed_twin_is_told_apart(tmp_path):
    assert spectrum_name("ngc.6397.fits.gz") == "ngc.6397"
    assert spectrum_name("star.v2.txt") == "star.v2"  # text: the last extension only, as before
    files = [str(tmp_path / "a" / "star.fits.gz"), str(tmp_path / "b" / "star.fits")]
    ids = {entry.ident for entry in batch_inputs(files)}
    assert ids == {"a/star", "b/star"}


def test_fix_from_a_table_reaches_a_gzipped_spectrum_through_the_cli(tmp_path):
    truth = [5400.0, 3.2, -1.5]
    wave, flux, error = simulate_spectrum(example_interpolator(), truth, velocity=0.0, fwhm=2.0, snr=100.0, rng=0)
    write_muse_spectrum(tmp_path / "star.fits", wave, flux, error)
    path = _compress(tmp_path / "star.fits", gzip.open, ".gz")
    (tmp_path / "star.fits").unlink()
    Table({"id": ["star"], "logg": [2.5]}).write(tmp_path / "logg.ecsv")
    out = tmp_path / "out.ecsv"
    fast = ["--engine", "native", "--guess", "Teff=5400", "--guess", "Fe/H=-1.5", "--mdegree", "8", "--quiet"]
    run = cli_here("fit", path, "-m", "example", "-j", "0", "-o", out, "--fix",
                   f"Logg={tmp_path / 'logg.ecsv'}:logg", *fast)
    assert run.returncode == 0, run.stderr
    row = Table.read(out)[0]
    assert row["id"] == "star" and str(row["status"]) == "ok", row
    assert row["Logg"] == 2.5 and row["e_Logg"] == 0  # fixed from the table: the id matched
    assert abs(row["Teff"] - truth[0]) < 300

