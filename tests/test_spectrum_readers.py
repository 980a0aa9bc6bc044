"""Readers of observed spectra, on small files the tests write in each real format."""

import gzip
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from astropy.io import fits

from conftest import SHARED
from ulyss_ann.spectra.simulate import write_muse_spectrum
from ulyss_ann.spectra.reader_registry import SpectrumReadError
from ulyss_ann.spectra.readers import read_spectrum
from ulyss_ann.model.medium import vacuum_to_air


def test_vacuum_to_air_standard_lines():
    # H-alpha and H-beta: vacuum 6564.614, 4862.721 -> air 6562.801, 4861.363 (SDSS line list)
    np.testing.assert_allclose(vacuum_to_air(np.array([6564.614, 4862.721])), [6562.801, 4861.363], atol=0.003)


def test_muse_file_with_bad_pixels(tmp_path):
    wave = 4750.0 + 1.25 * np.arange(190)
    flux = 1000.0 + np.random.default_rng(1).normal(0, 20.0, 190)
    sigma = np.full(190, 20.0)
    flux[10] = np.nan
    sigma[20] = 0.0
    sigma[30] = -1.0
    header = fits.Header({"RA": 265.17, "DEC": -53.67})
    write_muse_spectrum(tmp_path / "star.fits", wave, flux, sigma, header=header)
    s = read_spectrum(tmp_path / "star.fits")
    assert s.meta["format"] == "muse" and s.meta["id"] == "star"
    assert (s.meta["ra"], s.meta["dec"]) == (265.17, -53.67)
    assert s.n_bad == 3 and not s.good[[10, 20, 30]].any()
    assert np.all(np.isfinite(s.flux)) and np.all(s.error > 0)
    np.testing.assert_allclose(s.wavelength, wave, rtol=1e-12)
    assert s.grid is not None and not s.grid.log and s.grid.air
    assert s.meta["snr"] == pytest.approx(50, rel=0.05)


def test_sdss_coadd_table_vacuum_log(tmp_path):
    loglam = 3.6 + 1e-4 * np.arange(300)
    flux = 1 + 0.1 * np.sin(np.arange(300))
    ivar = np.full(300, 400.0)
    ivar[5] = 0.0
    mask = np.zeros(300, np.int32)
    mask[7] = 16
    cols = [fits.Column("flux", "E", array=flux), fits.Column("loglam", "E", array=loglam),
            fits.Column("ivar", "E", array=ivar), fits.Column("and_mask", "J", array=mask),
            fits.Column("wdisp", "E", array=np.full(300, 1.1))]
    primary = fits.PrimaryHDU(header=fits.Header({"PLUG_RA": 10.5, "PLUG_DEC": 20.25}))
    fits.HDUList([primary, fits.BinTableHDU.from_columns(cols, name="COADD")]).writeto(tmp_path / "spec-1.fits")
    s = read_spectrum(tmp_path / "spec-1.fits")
    np.testing.assert_allclose(s.wavelength, vacuum_to_air(10 ** loglam.astype(np.float32).astype(float)))
    assert s.grid is None  # made irregular by the conversion: ULySS gets the wavelengths
    assert not s.good[5] and not s.good[7] and s.n_bad == 2
    np.testing.assert_allclose(s.error[s.good], 0.05)
    assert s.meta["ra"] == 10.5 and s.meta["format"] == "table"
    assert s.meta["lsf_sigma_pix"] == pytest.approx(1.1)


def test_lamost_table_one_row_of_arrays(tmp_path):
    wave = np.linspace(3700.0, 9000.0, 400)
    cols = [fits.Column("FLUX", "400E", array=[np.ones(400)]), fits.Column("IVAR", "400E", array=[np.full(400, 4.0)]),
            fits.Column("WAVELENGTH", "400D", array=[wave]), fits.Column("ANDMASK", "400J", array=[np.zeros(400)])]
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(tmp_path / "lamost.fits")
    s = read_spectrum(tmp_path / "lamost.fits")
    np.testing.assert_allclose(s.wavelength, vacuum_to_air(wave))
    np.testing.assert_allclose(s.error, 0.5)


def test_lamost_image_rows(tmp_path):
    wave = np.linspace(3700.0, 9000.0, 300)
    data = np.vstack([np.ones(300), np.full(300, 100.0), wave, np.zeros(300), np.zeros(300)])
    data[3, 12] = 1
    fits.PrimaryHDU(data, header=fits.Header({"RA": 1.0, "DEC": 2.0})).writeto(tmp_path / "spec-lamost.fits")
    s = read_spectrum(tmp_path / "spec-lamost.fits")
    assert s.meta["format"] == "lamost-image" and not s.good[12]
    np.testing.assert_allclose(s.wavelength, vacuum_to_air(wave))


def test_plain_fits_log_and_miles_style(tmp_path):
    data = np.ones(100)
    header = fits.Header({"CTYPE1": "AWAV-LOG", "CRVAL1": np.log(4000.0), "CDELT1": 1e-4, "CRPIX1": 1})
    fits.PrimaryHDU(data, header=header).writeto(tmp_path / "log.fits")
    s = read_spectrum(tmp_path / "log.fits")
    assert s.grid.log and s.error is None and s.meta["format"] == "fits-1d"
    np.testing.assert_allclose(s.wavelength, 4000 * np.exp(1e-4 * np.arange(100)))
    fits.PrimaryHDU(data, header=fits.Header({"CRVAL1": 3540.5, "CDELT1": 0.9})).writeto(tmp_path / "m.fits")
    np.testing.assert_allclose(read_spectrum(tmp_path / "m.fits").wavelength, 3540.5 + 0.9 * np.arange(100))
    header = fits.Header({"CTYPE1": "WAVE", "CUNIT1": "nm", "CRVAL1": 400.0, "CDELT1": 0.1})
    fits.PrimaryHDU(data, header=header).writeto(tmp_path / "nm.fits")
    s = read_spectrum(tmp_path / "nm.fits")
    np.testing.assert_allclose(s.wavelength, vacuum_to_air(4000.0 + np.arange(100)))


def test_real_miles_file():
    path = SHARED / "data" / "miles" / "MILES_res2.50_star_m0001V.fits"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    s = read_spectrum(path)
    assert s.flux.size == 4300 and s.wavelength[0] == 3540.5 and s.error is None
    assert s.meta["lsf_fwhm"] == 2.5


def test_text_columns(tmp_path):
    wave = np.linspace(5000, 6000, 50)
    np.savetxt(tmp_path / "two.txt", np.column_stack([wave, np.ones(50)]), header="wave flux")
    np.savetxt(tmp_path / "three.dat", np.column_stack([wave, np.ones(50), np.full(50, 0.1)]))
    assert read_spectrum(tmp_path / "two.txt").error is None
    s = read_spectrum(tmp_path / "three.dat")
    np.testing.assert_allclose(s.error, 0.1) and np.testing.assert_allclose(s.wavelength, wave)


#: The one line a refused text spectrum must carry: what a text spectrum looks like (issue 25).
TEXT_FORMAT = ("expected text columns wavelength, flux[, error], separated by spaces or commas, "
               "with an optional header line and # comments")


def _text_spectrum(order=("wave", "flux", "err"), error_of=lambda sigma: sigma):
    """(wavelength, flux, σ, rows of the columns in ``order``) of a small text spectrum."""
    wave = np.linspace(5000.0, 6000.0, 40)
    flux = 1.0 + 0.01 * np.arange(40)
    sigma = 0.05 + 0.001 * np.arange(40)
    by_name = {"wave": wave, "flux": flux, "err": error_of(sigma), "quality": np.full(40, 7.0)}
    return wave, flux, sigma, np.column_stack([by_name[name] for name in order])


@pytest.mark.parametrize("name, header, delimiter, order, error_of", [
    ("star.csv", "wave,flux,err", ",", ("wave", "flux", "err"), None),  # a CSV with its header
    ("star.csv", None, ", ", ("wave", "flux", "err"), None),  # a CSV without one
    ("star.txt", "wave flux err", " ", ("wave", "flux", "err"), None),  # a header line without '#'
    ("star.tsv", "lambda\tflux\tsigma", "\t", ("wave", "flux", "err"), None),
    # the header's names choose the columns, whatever their order; an IVAR is an inverse variance
    ("star.csv", "FLUX,Wavelength,IVAR,quality", ",", ("flux", "wave", "err", "quality"), lambda s: 1 / s ** 2),
    ("star.csv.gz", "wave,flux,err", ",", ("wave", "flux", "err"), None),  # compressed text: the same reader
])
def test_text_spectra_separated_by_commas_or_spaces_with_a_header_line(tmp_path, name, header, delimiter, order,
                                                                     error_of):
    wave, flux, sigma, rows = _text_spectrum(order, error_of or (lambda s: s))
    text = "# observed 2024\n" + (header + "\n" if header else "")
    text += "".join(delimiter.join(repr(float(v)) for v in row) + "\n" for row in rows)
    path = tmp_path / name
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    s = read_spectrum(path)
    assert s.meta["format"] == "text"
    np.testing.assert_allclose(s.wavelength, wave, rtol=1e-12)
    np.testing.assert_allclose(s.flux, flux, rtol=1e-12)
    np.testing.assert_allclose(s.error, sigma, rtol=1e-12)


@pytest.mark.parametrize("content, message", [
    (b"wave flux err\n", "a header line and no line of numbers"),
    (b"# only a comment\n", "no line of numbers"),
    (b"wave flux\n5000 1\nfive 2\n", "neither FITS nor a table of numbers"),
    (b"5000;1;0.1\n" * 20, "1 text columns"),  # ';' is a comment (IDL's), not a delimiter
    (b"w,f,e,q\n" + b"5000,1,2,3\n" * 20, "4 text columns"),
])
def test_a_refused_text_spectrum_says_the_format_wanted_in_one_line(tmp_path, content, message):
    path = tmp_path / "star.txt"
    path.write_bytes(content)
    with pytest.raises(SpectrumReadError, match=re.escape(message)) as info:
        read_spectrum(path)
    assert TEXT_FORMAT in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    (b"SIMPLE  =                    T" + b" " * 50 + b"BITPIX  = 8", "truncated or corrupt"),
    (b"hello world\nthis is not a spectrum\n", "neither FITS nor a table of numbers"),
    (b"5000 1 2 3\n5001 1 2 3\n" * 10, "4 text columns"),
    (b"5001 1\n5000 1\n" * 10, "do not increase monotonically"),
    (b"5000 1\n5001 1\n", "at least 10 pixels"),
])
def test_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.fits"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SpectrumReadError, match=message) as info:
        read_spectrum(path)
    assert str(info.value).startswith(str(path))


def test_no_usable_pixel_and_mismatched_error(tmp_path):
    wave = np.linspace(5000, 6000, 50)
    write_muse_spectrum(tmp_path / "nan.fits", wave, np.full(50, np.nan), np.ones(50))
    with pytest.raises(SpectrumReadError, match="no pixel has a finite flux"):
        read_spectrum(tmp_path / "nan.fits")
    write_muse_spectrum(tmp_path / "mis.fits", wave, np.ones(50), np.ones(50))
    with fits.open(tmp_path / "mis.fits") as hdul:
        hdul["SIGMA"].data = np.ones(40, np.float32)
        hdul.writeto(tmp_path / "mis2.fits")
    with pytest.raises(SpectrumReadError, match="error extension has 40 pixels, flux 50"):
        read_spectrum(tmp_path / "mis2.fits")



def _docs_recipe(word):
    """The code block of docs/python.md holding ``word``."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "python.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    found = [block for block in blocks if word in block]
    assert len(found) == 1, f"docs/python.md: {len(found)} code blocks with {word}"
    return found[0]


def test_a_muse_file_read_by_specutils_as_docs_python_says_keeps_its_sigma(tmp_path):
    """#25: MUSE's SIGMA reaches the fit through specutils too (unweighted, the star's log g was 0.3 off)."""
    specutils = pytest.importorskip("specutils")
    from astropy.nddata import InverseVariance, StdDevUncertainty, VarianceUncertainty

    from ulyss_ann.spectra.inputs import as_spectrum

    wave = 4750.0 + 1.25 * np.arange(190)
    flux = 1000.0 + np.random.default_rng(1).normal(0, 20.0, 190)
    sigma = np.linspace(15.0, 25.0, 190)
    write_muse_spectrum(tmp_path / "star.fits", wave, flux, sigma)
    read = read_spectrum(tmp_path / "star.fits")  # the fit's own reader
    np.testing.assert_allclose(read.error, sigma, rtol=1e-6)  # float32 in the file
    # specutils 1.x calls it Spectrum1D, as the docs' comment says
    scope = {"specutils": SimpleNamespace(Spectrum=getattr(specutils, "Spectrum", None) or specutils.Spectrum1D)}
    exec(_docs_recipe('uncertainty_hdu="SIGMA"').replace('"star.fits"', repr(str(tmp_path / "star.fits"))), scope)
    spec = scope["spec"]
    assert isinstance(spec.uncertainty, StdDevUncertainty)
    through_specutils = as_spectrum(spec)
    np.testing.assert_array_equal(through_specutils.error, read.error)
    np.testing.assert_array_equal(through_specutils.flux, read.flux)
    # the same sigma given as a variance or an inverse variance
    for uncertainty in (VarianceUncertainty(read.error ** 2), InverseVariance(read.error ** -2.0)):
        other = as_spectrum(type(spec)(spectral_axis=spec.spectral_axis, flux=spec.flux, uncertainty=uncertainty))
        np.testing.assert_allclose(other.error, read.error, rtol=1e-12)


def test_the_signal_to_noise_median_is_numpys_bit_for_bit():
    """Every spectrum read takes the median of its flux / error (meta['snr']) by partition, not np.median
    (a third of its time): the same bits for every size, with -0, NaNs of either sign and infinities, and
    beyond float64's range (the mean of two huge values); another type is np.median's own."""
    from ulyss_ann.spectra.spectrum import median

    def bits(value):
        return np.float64(value).view(np.int64)

    rng = np.random.default_rng(29)
    for size in list(range(1, 40)) + [1000, 1001, 2069]:
        for _ in range(40):
            values = rng.normal(size=size) * 10.0 ** rng.uniform(-300, 300)
            if rng.random() < 0.3:
                values = np.round(rng.normal(size=size)) * rng.choice([-0.0, 0.0, 1.0])
            if rng.random() < 0.2:
                values[rng.integers(size)] = rng.choice([np.nan, -np.nan, np.inf, -np.inf])
            assert bits(median(values)) == bits(np.median(values))
    single = np.array([0.1, 0.2, 0.3, 0.7, 1e38, 3e38], np.float32)
    for part in (single[:4], single[4:]):
        assert bits(median(part)) == bits(float(np.median(part)))


def test_a_plain_file_is_opened_once_for_its_compression_and_head(tmp_path):
    """The reader's view of a plain file: no compression, its first bytes as they are (read with the test for
    compression); a gzip file's head is its content's."""
    import builtins

    from ulyss_ann.spectra import compression, reader_registry
    from ulyss_ann.spectra.reader_registry import HEAD_BYTES, SpectrumFile

    path = tmp_path / "star.fits"
    write_muse_spectrum(path, 4750.0 + 1.25 * np.arange(3000), np.ones(3000), np.full(3000, 0.01))
    content = path.read_bytes()
    opened = []

    def counted(*args, **kwargs):
        opened.append(args[0])
        return builtins.open(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        for module in (reader_registry, compression):
            patch.setattr(module, "open", counted, raising=False)
        source = SpectrumFile(path)
        assert source.compression is None and source.head == content[:HEAD_BYTES] and source.is_fits
    assert len(opened) == 1
    packed = tmp_path / "star.fits.gz"
    packed.write_bytes(gzip.compress(content))
    source = SpectrumFile(packed)
    assert source.compression.name == "gzip" and source.head == content[:HEAD_BYTES]
