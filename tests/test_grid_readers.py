"""PHOENIX readers on small files written by the tests in the real formats, into a grid."""

import numpy as np
import pytest
from astropy.io import fits

from conftest import cli_here
from ulyss_ann import UlyssAnnError
from ulyss_ann.spectra.grid_readers import phoenix_grid, read_phoenix
from ulyss_ann.spectra.preprocessing import FWHM_TO_SIGMA, gsl_wavelengths
from ulyss_ann.spectra.grid import SpectralGrid
from ulyss_ann.model.medium import vacuum_to_air

NAME = "lte{:05d}-{:.2f}{:+.1f}.Alpha=+0.40.PHOENIX-ACES-AGSS-COND-2011-HiRes"


def spectrum(wave, teff):
    """A black-body-like slope with one line at 6564.61 Å vacuum (H-alpha), 0.3 Å wide."""
    line = 1 - 0.5 * np.exp(-0.5 * ((wave - 6564.61) / (0.3 * FWHM_TO_SIGMA)) ** 2)
    return (wave / 5000.0) ** (-teff / 2000.0) * line


@pytest.fixture
def hires(tmp_path):
    wave = 4600 + 0.05 * np.arange(60000)  # vacuum, as the WAVE_PHOENIX file
    fits.PrimaryHDU(wave).writeto(tmp_path / "WAVE_PHOENIX-ACES-AGSS-COND-2011.fits")
    paths = []
    for teff, logg, feh in [(5000, 2.5, -1.0), (5100, 2.5, -1.0), (5000, 3.0, -0.0)]:
        path = tmp_path / (NAME.format(teff, logg, feh) + ".fits")
        header = fits.Header({"PHXTEFF": float(teff), "PHXLOGG": logg, "PHXM_H": feh, "PHXALPHA": 0.4})
        fits.PrimaryHDU(spectrum(wave, teff), header=header).writeto(path)
        paths.append(path)
    return paths, tmp_path / "WAVE_PHOENIX-ACES-AGSS-COND-2011.fits", wave


def test_hires_fits_with_wave_file_to_grid(hires, tmp_path):
    paths, wave_file, wave = hires
    w, f, vacuum, p = read_phoenix(paths[0], wave_file)
    assert vacuum and p == {"teff": 5000.0, "logg": 2.5, "feh": -1.0, "alpha": 0.4}
    grid = phoenix_grid(paths, wave_file=wave_file)
    assert grid.flux.shape == (3, 2099) and grid.names == ("Teff", "Logg", "Fe/H")
    np.testing.assert_array_equal(grid.params[2], [5000.0, 3.0, 0.0])
    assert dict((k, v) for k, v, _ in grid.meta)["ALPHAFE"] == 0.4
    np.testing.assert_allclose(np.median(grid.flux, axis=1), 1.0)
    # H-alpha moved from vacuum to air (6562.80 Å) and broadened to 2 Å
    centre = gsl_wavelengths()[np.argmin(grid.flux[0][1400:1500]) + 1400]
    assert abs(centre - vacuum_to_air(6564.61)) < 1.25
    grid.save(tmp_path / "g.fits")
    np.testing.assert_array_equal(SpectralGrid.load(tmp_path / "g.fits").flux, grid.flux)


def test_r10000_log_wcs_and_text_forms(tmp_path):
    wave = 4600 * np.exp(1e-5 * np.arange(50000))
    header = fits.Header({"CTYPE1": "WAVE-LOG", "CRVAL1": np.log(4600.0), "CDELT1": 1e-5, "CRPIX1": 1})
    path = tmp_path / (NAME.format(5500, 4.0, -2.0) + ".fits")
    fits.PrimaryHDU(spectrum(wave, 5500), header=header).writeto(path)
    w, f, vacuum, p = read_phoenix(path)
    np.testing.assert_allclose(w, wave, rtol=1e-12)
    assert vacuum and p["teff"] == 5500 and p["feh"] == -2.0
    text = tmp_path / (NAME.format(5500, 4.0, -2.0) + ".txt")
    np.savetxt(text, np.column_stack([wave[::5], spectrum(wave[::5], 5500)]))
    grid = phoenix_grid([path, text], resolving_power=None, fwhm_in=0.6)
    np.testing.assert_allclose(grid.flux[0], grid.flux[1], rtol=2e-3)  # same spectrum, two forms


def test_errors_name_the_file(hires, tmp_path):
    paths, _, _ = hires
    with pytest.raises(UlyssAnnError, match="WAVE_PHOENIX-ACES-AGSS-COND-2011.fits"):
        read_phoenix(paths[0])
    (tmp_path / "sun.txt").write_text("5000 1\n5001 1\n")
    with pytest.raises(UlyssAnnError, match="sun.txt: .*not a PHOENIX file name"):
        read_phoenix(tmp_path / "sun.txt")
    with pytest.raises(UlyssAnnError, match="no such file"):
        read_phoenix(tmp_path / "absent.fits")


def test_cli_grid_phoenix(hires, tmp_path):

    paths, wave_file, _ = hires
    out = tmp_path / "cli.fits"
    result = cli_here("grid", "phoenix", *paths, "--wave", wave_file, "-o", out)
    assert result.returncode == 0, result.stderr
    assert "3 spectra x 2099 px, parameters Teff, Logg, Fe/H" in result.stdout
    missing = cli_here("grid", "phoenix", paths[0], "-o", tmp_path / "x.fits")
    assert missing.returncode == 2 and "--wave" in missing.stderr and "Traceback" not in missing.stderr
