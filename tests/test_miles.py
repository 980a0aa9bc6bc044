"""MILES reader and its continuum normalisation, on files in MILES's own layout that the test writes."""

import re

import numpy as np
import pytest
from astropy.io import fits
from numpy.polynomial import legendre

from conftest import cli_here
from ulyss_ann import Interpolator
from ulyss_ann.spectra.examples import miles_interpolator_path
from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.spectra.miles import files_of_nodes, miles_grid, pseudo_continuum
from ulyss_ann.spectra.grid import SpectralGrid

WAVE = 3540.5 + 0.9 * np.arange(4300)


def line_spectrum(teff):
    """A flat continuum with absorption lines whose depth follows Teff (known answer: the lines alone)."""
    depth = 0.3 + 0.4 * (6000 - teff) / 3000
    lines = np.ones_like(WAVE)
    for centre in np.linspace(3700, 7300, 40):
        lines -= depth * np.exp(-0.5 * ((WAVE - centre) / 1.2) ** 2)
    return lines


def write_miles(folder, rows):
    """MILES files as the MaNGA DAP ships them: 1-D float64, CRVAL1/CDELT1, no CTYPE1, FWHM card."""
    lines = ["file,miles_id,name,teff,logg,feh"]
    x = 2 * (WAVE - WAVE[0]) / (WAVE[-1] - WAVE[0]) - 1
    for k, (teff, logg, feh, bad) in enumerate(rows):
        name = f"MILES_res2.50_star_m{k + 1:04d}V.fits"
        continuum = 1e-13 * legendre.legval(x, [3.0, 0.8 - (teff or 5000) / 1e4, -0.3, 0.1])  # reddened SED
        flux = continuum * line_spectrum(teff or 5000)
        if bad:
            flux[:3] = 0.0
        hdu = fits.PrimaryHDU(flux)
        hdu.header.update(CRPIX1=1, CRVAL1=3540.5, CDELT1=0.9, FWHM=2.5, TPLLIB="MILES")
        hdu.writeto(folder / name)
        lines.append(f"{name},{k + 1:04d},HD{k},{teff if teff else ''},{logg},{feh}")
    (folder / "params.csv").write_text("\n".join(lines) + "\n")


def test_pseudo_continuum_follows_the_envelope_not_the_lines():
    x = 2 * (WAVE - WAVE[0]) / (WAVE[-1] - WAVE[0]) - 1
    continuum = legendre.legval(x, [2.0, 0.5, -0.2, 0.05])
    rng = np.random.default_rng(0)
    flux = continuum * line_spectrum(4500) * (1 + 0.002 * rng.normal(size=WAVE.size))
    fitted = pseudo_continuum(WAVE, flux, degree=6)
    assert np.max(np.abs(fitted / continuum - 1)) < 0.004   # a plain least-squares fit is pulled down by the lines
    plain = legendre.legval(x, legendre.legfit(x, flux, 6))
    assert np.median(plain / continuum - 1) < -0.01


def test_miles_grid_normalises_and_keeps_only_usable_stars(tmp_path):
    write_miles(tmp_path, [(4500, 2.0, -0.5, False), (5500, 4.0, 0.0, False), (None, 4.0, 0.0, False),
                           (6500, 4.2, -1.0, True), (9500, 4.0, 0.0, False)])
    grid, skipped = miles_grid(tmp_path, teff_range=(3000, 9000))
    assert grid.params.tolist() == [[4500, 2.0, -0.5], [5500, 4.0, 0.0]]   # no Teff; bad flux; too hot
    assert len(skipped) == 1 and "m0004V" in skipped[0]
    assert grid.wavelength.npix == 4300 and grid.wavelength.air
    np.testing.assert_allclose(grid.wavelength.wavelength[[0, -1]], [3540.5, 7409.6])
    for row, teff in zip(grid.flux, (4500, 5500)):
        expected = line_spectrum(teff) / np.median(line_spectrum(teff))
        assert np.max(np.abs(row - expected)) < 0.01 and np.median(row) == pytest.approx(1.0)
    assert dict((k, v) for k, v, _ in grid.meta)["CONTDEG"] == 6
    # the command line writes the same grid, and says what it left out
    out = cli_here("grid", "miles", tmp_path, "--teff-range", "3000, 9000", "-o", tmp_path / "g.fits")
    assert out.returncode == 0 and "1 left out for bad flux: MILES_res2.50_star_m0004V.fits" in out.stdout
    np.testing.assert_array_equal(SpectralGrid.load(tmp_path / "g.fits").flux, grid.flux)
    missing = cli_here("grid", "miles", tmp_path / "nope", "-o", tmp_path / "h.fits")
    assert missing.returncode == 2 and "give the one folder" in missing.stderr


def test_bundled_miles_interpolator_describes_itself():
    interp = Interpolator.read(miles_interpolator_path())
    assert interp.architecture == [3, 160, 320, 4300] and not interp.is_surrogate   # 5 trial-7 networks, averaged
    assert interp.nodes.shape == (771, 3)
    info = cli_here("info", "-m", "miles")
    assert info.returncode == 0 and "MILES library, continuum-normalised" in info.stdout and "4300 px" in info.stdout
    # how it was made and how well it did on stars it never saw (scripts/train_miles --scores)
    assert "the mean of 5 networks, seeds 0..4" in info.stdout
    assert re.search(r"cross-validated \(771 held-out stars, 10 folds\): .* FGK: Teff \d+(\.\d+)? K", info.stdout)


def test_grid_nodes_find_their_files_by_their_values_not_their_order(tmp_path):
    table = tmp_path / "params.csv"
    table.write_text("file,miles_id,name,teff,logg,feh\n"
                     "b.fits,2,B,5000.0,2.5,-1.0\n"
                     "a.fits,1,A,6000.0,4.0,0.1\n"
                     "c.fits,3,C,,4.0,0.1\n"            # no Teff: not a star of any grid
                     "d.fits,4,D,5000.0,2.5,-1.0\n")    # the same values as b.fits
    # miles_grid sorts by file name: a before b, whatever the table's order
    assert files_of_nodes([[6000.0, 4.0, 0.1]], table) == ["a.fits"]
    with pytest.raises(UlyssAnnError, match="2 stars have the grid node"):
        files_of_nodes([[6000.0, 4.0, 0.1], [5000.0, 2.5, -1.0]], table)
    with pytest.raises(UlyssAnnError, match="0 stars have the grid node"):
        files_of_nodes([[5500.0, 4.0, 0.0]], table)
