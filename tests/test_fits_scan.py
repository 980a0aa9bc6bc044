"""Plain FITS files read without astropy's HDU objects: the same headers, sizes and spectra as astropy's (#29)."""

import gzip
import shutil

import numpy as np
import pytest
from astropy.io import fits

from ulyss_ann.model import limits
from ulyss_ann.model.fits_scan import scan_fits
from ulyss_ann.spectra import fits_spectra
from ulyss_ann.spectra.readers import read_spectrum
from ulyss_ann.spectra.reader_registry import SpectrumReadError
from ulyss_ann.spectra.simulate import write_muse_spectrum


def _muse(path, **header):
    wave = 4750.0 + 1.25 * np.arange(300)
    flux = 1.0 + 0.1 * np.sin(wave / 30.0)
    head = fits.Header()
    for key, value in header.items():
        head[key] = value
    write_muse_spectrum(path, wave, flux, np.full(300, 0.01), header=head)
    return str(path)


def _by_astropy(monkeypatch):
    monkeypatch.setattr(limits, "scan_fits", lambda path: None)
    monkeypatch.setattr(fits_spectra, "plain_images", lambda source: None)


def _layouts(tmp_path):
    """Files of the layouts the lean path takes, and of those it hands to astropy."""
    muse = _muse(tmp_path / "muse.fits", OBJECT="it's a ''quoted'' star", RA=265.17, DEC=-53.67)
    miles = tmp_path / "miles.fits"  # no CTYPE1, a primary HDU only, float64
    fits.PrimaryHDU(np.linspace(1, 2, 500), header=fits.Header([("CRVAL1", 3540.5), ("CDELT1", 0.9),
                                                                 ("CRPIX1", 1.0)])).writeto(miles)
    table = tmp_path / "table.fits"  # an image and a binary table after it
    fits.HDUList([fits.open(muse)[0].copy(), fits.BinTableHDU.from_columns(
        [fits.Column(name="x", format="E", array=np.arange(7, dtype=np.float32))], name="EXTRA")]).writeto(table)
    scaled = tmp_path / "scaled.fits"  # integers scaled by BSCALE/BZERO: astropy's
    hdu = fits.PrimaryHDU(np.arange(300, dtype=np.int16) + 1000, header=fits.open(muse)[0].header.copy())
    hdu.header["BSCALE"], hdu.header["BZERO"] = 0.001, 0.0
    hdu.writeto(scaled)
    packed = tmp_path / "muse.fits.gz"
    with open(muse, "rb") as source, gzip.open(packed, "wb") as target:
        shutil.copyfileobj(source, target)
    return {"muse": muse, "miles": str(miles), "table": str(table), "scaled": str(scaled), "gzip": str(packed)}


def test_the_declared_sizes_and_headers_are_astropys(tmp_path, monkeypatch):
    files = _layouts(tmp_path)
    assert scan_fits(files["gzip"]) is None  # compressed as a whole: astropy's
    lean = {name: limits.declared_data(path) for name, path in files.items()}
    _by_astropy(monkeypatch)
    for name, path in files.items():
        theirs = limits.declared_data(path)
        assert len(lean[name]) == len(theirs)
        for mine, astropys in zip(lean[name], theirs):
            assert mine == astropys, name  # index, name, image, shape, nbytes, end, binary table
            assert list(mine.header.items()) == list(astropys.header.items()), name
            # the scan's own reading of the structural and scaling keywords (what plain_images checks): astropy's
            structural = mine.structural if mine.structural is not None else {}
            assert all(type(value) is type(astropys.header[key]) and value == astropys.header[key]
                       for key, value in structural.items() if key not in ("BSCALE", "BZERO", "BLANK")), name
            assert all((key in structural) == (key in astropys.header) for key in ("BSCALE", "BZERO", "BLANK")
                       if mine.structural is not None), name
    assert lean["muse"][0].structural is not None and "BSCALE" in lean["scaled"][0].structural
    # a structural keyword given twice (no valid FITS): astropy's reading, which takes the first
    text = open(files["muse"], "rb").read()
    end = text.index(b"END" + b" " * 77)
    for name, card, scanned in (("comment", b"COMMENT a card more", True),
                                ("twice", b"BITPIX  =                  -64 / a second BITPIX", False)):
        with open(tmp_path / f"{name}.fits", "wb") as handle:  # the card inserted before END, in its block
            handle.write(text[:end] + card.ljust(80) + text[end:end + 2880 - end % 2880 - 80]
                         + text[end - end % 2880 + 2880:])
        assert (scan_fits(str(tmp_path / f"{name}.fits")) is not None) == scanned, name


def test_the_spectra_are_astropys_bit_for_bit(tmp_path, monkeypatch):
    files = _layouts(tmp_path)
    lean = {name: read_spectrum(path) for name, path in files.items() if name != "table"}
    assert fits_spectra.plain_images(_source(files["muse"])) is not None
    assert fits_spectra.plain_images(_source(files["scaled"])) is None
    _by_astropy(monkeypatch)
    for name, mine in lean.items():
        theirs = read_spectrum(files[name])
        for attribute in ("flux", "error", "wavelength", "good"):
            a, b = getattr(mine, attribute), getattr(theirs, attribute)
            assert (a is None and b is None) or (a.dtype == b.dtype and np.array_equal(a, b)), (name, attribute)
        assert (mine.meta, mine.grid, mine.medium) == (theirs.meta, theirs.grid, theirs.medium), name


def _source(path):
    from ulyss_ann.spectra.reader_registry import SpectrumFile

    return SpectrumFile(path)


@pytest.mark.parametrize("cut", [100, 2880 + 500, -1800, -1000])
def test_a_damaged_file_is_refused_in_one_line_as_before(tmp_path, cut):
    """Cut in the first header, in the second, in the last data, in the last block's padding: the lean scan
    hands each to astropy, whose error says so, as before."""
    path = _muse(tmp_path / "star.fits")
    data = open(path, "rb").read()
    open(path, "wb").write(data[:cut])
    with pytest.raises(SpectrumReadError, match="truncated or corrupt"):
        read_spectrum(path)


@pytest.mark.parametrize("byte", [0xE9, 0x07, 0x7F])
def test_a_card_that_is_not_printable_ascii_goes_to_astropy(tmp_path, byte):
    """é in Latin-1, a bell, DEL: not FITS."""
    path = _muse(tmp_path / "star.fits", OBJECT="star")
    data = bytearray(open(path, "rb").read())
    at = data.index(b"OBJECT  = ")
    data[at + 12] = byte
    open(path, "wb").write(bytes(data))
    assert scan_fits(path) is None


def test_each_card_is_judged_whole_though_its_start_was_seen_before(tmp_path):
    """The scan remembers what the start of a card means (the keywords of a survey repeat): a HIERARCH card
    without '=' (astropy warns) is still refused after one with the same start was read, and a file whose
    structural keyword is given twice is still refused after the same card was read once."""
    good = _muse(tmp_path / "good.fits", **{"HIERARCH ESO DET NAME": "x"})
    assert scan_fits(good) is not None
    path = _muse(tmp_path / "star.fits", **{"HIERARCH ESO DET NAME": "x"})
    data = bytearray(open(path, "rb").read())
    at = data.index(b"HIERARCH ESO DET NAME")
    data[at:at + 80] = b"HIERARCH ESO DET NAME 'x'".ljust(80)
    open(path, "wb").write(bytes(data))
    assert scan_fits(path) is None
    twice = tmp_path / "twice.fits"
    data = bytearray(open(good, "rb").read())
    card = data[data.index(b"NAXIS1  = "):][:80]
    at = data.index(b"HIERARCH ESO DET NAME")
    data[at:at + 80] = card
    open(twice, "wb").write(bytes(data))
    assert scan_fits(twice) is None


def test_a_card_astropy_warns_about_is_refused_in_one_line_on_both_paths(tmp_path, monkeypatch):
    """A value glued to its '=' (not FITS): the scan hands the file to astropy, whose warning refuses it in one
    line, as before (read leanly, it had been read without its position)."""
    path = _muse(tmp_path / "star.fits", RA=265.17, DEC=-53.67)
    data = bytearray(open(path, "rb").read())
    at = data.index(b"RA      = ")
    data[at:at + 80] = b"RA      =265.17".ljust(80)
    open(path, "wb").write(bytes(data))
    assert scan_fits(path) is None
    with pytest.raises(SpectrumReadError, match="truncated or corrupt FITS file"):
        read_spectrum(path)
    _by_astropy(monkeypatch)
    with pytest.raises(SpectrumReadError, match="truncated or corrupt FITS file"):
        read_spectrum(path)


def test_an_image_extension_with_groups_goes_to_astropy(tmp_path):
    path = _muse(tmp_path / "star.fits")
    data = bytearray(open(path, "rb").read())
    at = data.index(b"GCOUNT  = ")
    data[at:at + 80] = b"GCOUNT  =                    2".ljust(80)
    open(path, "wb").write(bytes(data))
    from ulyss_ann.spectra.reader_registry import SpectrumFile

    assert fits_spectra.plain_images(SpectrumFile(path)) is None  # not reshaped from a size it does not have
    assert read_spectrum(path).flux.size == 300  # astropy reads it, as it always did
