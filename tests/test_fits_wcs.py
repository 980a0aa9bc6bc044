"""FITS that astropy and specutils read as they are: the unit on every wavelength axis, and ULySS's
ln-λ axis also as a FITS-standard WCS; files with a stated unit read in Å by our readers."""

import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from conftest import FAST, MODEL, example_grid
from ulyss_ann import example_interpolator
from ulyss_ann.fitting.api import fit_spectrum
from ulyss_ann.model.wavelength import WavelengthGrid
from ulyss_ann.spectra.grid import SpectralGrid
from ulyss_ann.spectra.model_files import write_model_spectra
from ulyss_ann.spectra.readers import read_spectrum
from ulyss_ann.spectra.simulate import simulate_spectrum, write_muse_spectrum

specutils = pytest.importorskip("specutils")


def _angstrom(header, npix, key=" "):
    """Wavelengths [Å] of a header's axis through astropy's WCS, in the unit the header states."""
    wcs = WCS(header, key=key, naxis=[1])
    assert wcs.wcs.cunit[0] != ""  # the unit is said, not assumed
    return wcs.pixel_to_world(np.arange(npix)).to_value("Angstrom")


def _specutils_angstrom(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # specutils notes the missing flux unit
        spectrum = specutils.Spectrum.read(path, format="wcs1d-fits")
    return spectrum.spectral_axis.to_value("Angstrom")


def test_a_model_spectrum_reads_in_angstrom_everywhere(tmp_path):
    interp = example_interpolator()
    path = tmp_path / "model.fits"
    write_model_spectra(path, interp, [5500.0, 3.0, -1.0], interp.evaluate([5500.0, 3.0, -1.0]))
    expected = interp.wavelength.wavelength
    header = fits.getheader(path)
    np.testing.assert_allclose(_angstrom(header, expected.size), expected, rtol=1e-12)
    np.testing.assert_allclose(_specutils_angstrom(path), expected, rtol=1e-12)
    np.testing.assert_allclose(read_spectrum(path).wavelength, expected, rtol=1e-12)  # and by ours, unchanged


@pytest.mark.parametrize("log", [False, True])
def test_a_grid_says_its_axis_to_astropy_and_keeps_it_for_ulyss(tmp_path, log):
    grid = example_grid(n=3)
    if log:  # the same spectra on a ULySS ln-λ axis (the values do not matter here)
        axis = WavelengthGrid(grid.wavelength.npix, np.log(4800.0), 7e-5, 1.0, log=True)
        grid = SpectralGrid(grid.flux, grid.params, grid.names, grid.units, axis, grid.meta)
    path = tmp_path / "grid.fits"
    grid.save(path)
    header = fits.getheader(path)
    expected = grid.wavelength.wavelength
    if log:  # ULySS's primary axis (ln λ in CRVAL1) is untouched; WCS "A" is the standard one
        assert header["CTYPE1"] == "AWAV-LOG" and header["CRVAL1"] == pytest.approx(np.log(4800.0), rel=1e-15)
        assert "CUNIT1" not in header
        np.testing.assert_allclose(_angstrom(header, expected.size, key="A"), expected, rtol=1e-10)
    else:
        np.testing.assert_allclose(_angstrom(header, expected.size), expected, rtol=1e-12)
    again = SpectralGrid.load(path)
    assert again.wavelength == grid.wavelength and again.meta == grid.meta  # the axis cards are not metadata
    grid_again = tmp_path / "again.fits"
    again.save(grid_again)
    assert fits.getheader(grid_again) == header  # saved twice: the same cards, none repeated


def test_a_best_fit_file_keeps_ulyss_axis_and_says_it_in_angstrom(tmp_path):
    interp = example_interpolator()
    wave, flux, sigma = simulate_spectrum(interp, [5400.0, 3.0, -1.5], velocity=10.0, fwhm=2.0, snr=80.0, rng=2)
    write_muse_spectrum(tmp_path / "star.fits", wave, flux, sigma)
    result = fit_spectrum(tmp_path / "star.fits", MODEL, **{k: v for k, v in FAST.items() if k != "progress"})
    path = result.write_fits(tmp_path / "fits")
    header = fits.getheader(path)
    ulyss_axis = WavelengthGrid.from_header(header)                        # as ULySS and our readers take it
    np.testing.assert_allclose(ulyss_axis.wavelength, result.wavelength, rtol=1e-12)
    np.testing.assert_allclose(_angstrom(header, result.flux.size, key="A"), result.wavelength, rtol=1e-10)
    with fits.open(path) as hdul:
        spectrum = specutils.Spectrum(flux=hdul["BESTFIT"].data * u.one, wcs=WCS(hdul["BESTFIT"].header, key="A"))
    np.testing.assert_allclose(spectrum.spectral_axis.to_value("Angstrom"), result.wavelength, rtol=1e-10)


def test_simulated_muse_files_say_angstrom_as_muse_does(tmp_path):
    interp = example_interpolator()
    wave, flux, sigma = simulate_spectrum(interp, [5400.0, 3.0, -1.5], velocity=0.0, fwhm=2.0, snr=80.0, rng=1)
    write_muse_spectrum(tmp_path / "star.fits", wave, flux, sigma)
    np.testing.assert_allclose(_angstrom(fits.getheader(tmp_path / "star.fits"), wave.size), wave, rtol=1e-12)
    np.testing.assert_allclose(_specutils_angstrom(tmp_path / "star.fits"), wave, rtol=1e-12)


@pytest.mark.parametrize("unit, scale", [("Angstrom", 1.0), ("nm", 0.1), (None, 1.0)])
def test_a_standard_log_axis_with_a_unit_reads_in_angstrom(tmp_path, unit, scale):
    """A FITS-standard -LOG axis (CRVAL1 in the unit of CUNIT1): wcslib gives metres, we want Å."""
    npix, start, step = 500, 4800.0, 1e-4                             # Å, ln step
    header = fits.Header()
    header["CTYPE1"], header["CRPIX1"], header["CRVAL1"], header["CDELT1"] = "AWAV-LOG", 1, start * scale, \
        start * scale * step
    if unit:
        header["CUNIT1"] = unit
    expected = start * np.exp(step * np.arange(npix))
    np.testing.assert_allclose(WavelengthGrid.from_header(header, npix=npix).wavelength, expected, rtol=1e-12)
    fits.PrimaryHDU(np.ones(npix), header=header).writeto(tmp_path / "s.fits")
    np.testing.assert_allclose(read_spectrum(tmp_path / "s.fits").wavelength, expected, rtol=1e-12)


def test_a_linear_grid_has_astropys_wavelengths_bit_for_bit():
    # the grid computes a linear axis itself (astropy.wcs costs an interactive first fit 0.1 s of import):
    # its values must stay wcslib's, on any sampling a file may have
    rng = np.random.default_rng(7)
    for trial in range(300):
        crval = float(rng.uniform(300.0, 25000.0))
        crval = round(crval, 2) if trial % 3 == 0 else crval
        cdelt = float(rng.choice([1.25, 0.9, 0.2, rng.uniform(0.01, 5.0)]))
        crpix = float(rng.choice([1.0, 0.5, rng.integers(-100, 100), rng.uniform(-50.0, 50.0)]))
        grid = WavelengthGrid(npix=int(rng.integers(2, 5000)), crval=crval, cdelt=cdelt, crpix=crpix,
                              air=bool(trial % 2))
        header = fits.Header(grid.header_cards())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # no CUNIT1, as in ULySS's files: wcslib says it assumes SI
            wcs = WCS(header, naxis=[1])
        expected = wcs.pixel_to_world_values(np.arange(grid.npix, dtype=float))
        np.testing.assert_array_equal(grid.wavelength, expected, err_msg=str(grid))
