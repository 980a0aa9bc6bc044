"""The simulated NGC 6397 sample (truth bookkeeping) and the cluster analysis (binning, visits, report)."""

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from conftest import cli_here
from ulyss_ann.paper.cluster_report import combine_visits, feh_bins, star_number, to_sgb
from ulyss_ann.spectra.examples import example_interpolator_path
from ulyss_ann.paper.ngc6397 import fwhm_muse, injected_feh, isochrone, lsf_matrix, simulate_cluster
from ulyss_ann.spectra.readers import read_spectrum


def test_feh_bins_of_known_values():
    teff = np.array([4510, 4740, 4760, 4999, 5000, 6100, 6300])
    feh = np.array([-2.0, -2.2, -2.4, -2.1, -1.0, -2.5, -2.3])
    logg = np.array([1.0, 2.0, 2.0, 2.5, 4.5, 3.9, 4.1])       # the 5000 K star has log g 4.5: left out
    bins = feh_bins(teff, feh, logg)
    assert list(bins["Teff"]) == [4625.0, 4875.0, 6125.0, 6375.0]
    assert list(bins["n"]) == [2, 2, 1, 1]
    np.testing.assert_allclose(bins["Fe/H"], [-2.1, -2.25, -2.5, -2.3])
    np.testing.assert_allclose(bins["std_Fe/H"][:2], [np.std([-2.0, -2.2], ddof=1), np.std([-2.4, -2.1], ddof=1)])
    (to_mean, _, n_to), (sgb_mean, _, n_sgb), diff = to_sgb([6200, 6300, 5500, 5600], [-2.3, -2.4, -2.1, -2.2],
                                                            [4.0, 4.1, 3.6, 3.7])
    assert (n_to, n_sgb) == (2, 2) and to_mean == pytest.approx(-2.35) and diff == pytest.approx(0.2)


def test_visits_are_combined_by_weighted_mean():
    table = Table(rows=[("ngc6397id000000007jd2456865p1111f000", "ok", 5000.0, 10.0, 2.0, 0.0, -2.0, 0.1, 1.0, 2.0),
                        ("ngc6397id000000007jd2456866p2222f000", "ok", 5030.0, 20.0, 2.0, 0.0, -2.3, 0.2, 1.0, 2.0),
                        ("ngc6397id000000009jd2456865p3333f000", "ok", 6000.0, 15.0, 4.0, 0.0, -2.4, 0.1, 1.0, 2.0),
                        ("ngc6397id000000009jd2456866p4444f000", "error: x", np.nan, np.nan, 4.0, 0.0, np.nan,
                         np.nan, 1.0, 2.0)],
                  names=("id", "status", "Teff", "e_Teff", "Logg", "e_Logg", "Fe/H", "e_Fe/H", "ra", "dec"))
    assert star_number(table["id"][0]) == 7 and star_number("no_star_here") is None
    stars = combine_visits(table)
    assert list(stars["star"]) == [7, 9] and list(stars["n_visits"]) == [2, 1]
    assert stars["Teff"][0] == pytest.approx((5000 / 100 + 5030 / 400) / (1 / 100 + 1 / 400))
    assert stars["e_Teff"][0] == pytest.approx(1 / np.sqrt(1 / 100 + 1 / 400))
    assert stars["scatter_Fe/H"][0] == pytest.approx(np.std([-2.0, -2.3], ddof=1))
    assert np.isnan(stars["scatter_Teff"][1]) and stars["Logg"][0] == 2.0 and str(stars["Teff"].unit) == "K"


def test_isochrone_trend_and_lsf():
    teff, logg = isochrone(np.array([0.0, 1.0]))
    assert (teff[0], logg[0]) == (4500, 1.0) and logg[1] == 4.2
    assert injected_feh(5000) == -2.12 and injected_feh(6400) == -2.35
    assert injected_feh(5875) == pytest.approx((-2.12 - 2.35) / 2)
    wave = 4762.25 + 1.25 * np.arange(2099)
    matrix = lsf_matrix(wave)
    line = np.zeros(wave.size)
    for centre in (150, 1800):
        line[:] = 0
        line[centre] = 1
        profile = matrix @ line
        x = wave - wave[centre]
        sigma = np.sqrt(np.sum(profile * x ** 2) / profile.sum())   # sampled Gaussian: widths add
        assert sigma == pytest.approx(np.sqrt(fwhm_muse(wave[centre]) ** 2 - 4) / 2.3548, rel=1e-6)


def test_simulated_files_carry_their_truth(tmp_path):
    truth = simulate_cluster(example_interpolator_path(), tmp_path, n_stars=5, n_spectra=8, seed=1)
    files = sorted(tmp_path.glob("*.fits"))
    assert len(files) == 8 == len(truth) and len(set(truth["star"])) == 5
    assert str(truth["Teff"].unit) == "K" and str(truth["cz"].unit) == "km / s"
    for row in truth:
        path = tmp_path / f"{row['id']}.fits"
        header = fits.getheader(path)
        assert header["SIMULATD"] and header["SIM_TEFF"] == pytest.approx(row["Teff"])
        assert header["SIM_FEH"] == pytest.approx(injected_feh(row["Teff"]))
        assert star_number(row["id"]) == row["star"]
        spectrum = read_spectrum(path)
        assert spectrum.meta["ra"] == pytest.approx(row["ra"]) and spectrum.error is not None
        assert 4765 <= spectrum.wavelength[0] < 4767 and 20 <= row["snr"] <= 200
        # the noise matches the S/N written in the truth
        assert np.median(spectrum.flux / spectrum.error) == pytest.approx(row["snr"], rel=0.05)
    by_star = {}
    for row in truth:   # repeated visits of one star share its parameters
        by_star.setdefault(row["star"], []).append((row["Teff"], row["Logg"], row["Fe/H"], row["cz"]))
    assert all(len(set(v)) == 1 for v in by_star.values()) and max(len(v) for v in by_star.values()) > 1
    phot = Table.read(tmp_path / "photometry.ecsv")
    np.testing.assert_allclose(phot["logg"], truth["Logg"])
    # the LSF the spectra were given, relative to the network's 2 A, for fit --lsf
    from ulyss_ann.spectra.line_spread import FWHM_TO_SIGMA, read_lsf

    lsf = read_lsf(tmp_path / "lsf.txt")
    k = list(lsf["wave"]).index(4750)
    assert lsf["sigma"][k] == pytest.approx(np.sqrt(2.82 ** 2 - 4) * FWHM_TO_SIGMA / 4750 * 299792.458, rel=1e-6)


def test_region_grid_is_the_generator_around_the_isochrone():
    from ulyss_ann import Interpolator
    from ulyss_ann.paper.ngc6397 import region_grid

    grid = region_grid(example_interpolator_path(), n=200, seed=4)
    teff, logg, feh = grid.params.T
    assert grid.params.shape == (200, 3) and grid.is_surrogate
    assert teff.min() >= 4200 and teff.max() <= 6700 and logg.min() >= 0.6 and logg.max() <= 4.8
    assert feh.min() >= -3 and feh.max() <= -0.9 and feh.max() - feh.min() > 1.5
    # every point lies within 300 K / 0.4 dex of the isochrone: some isochrone point is that close
    s = np.linspace(0, 1, 20001)
    it, ig = isochrone(s)
    close = [np.any((np.abs(it - t) <= 300 + 1e-6) & (np.abs(ig - g) <= 0.4 + 1e-6)) for t, g in zip(teff, logg)
             if 0.6 < g < 4.8]
    assert all(close)
    np.testing.assert_allclose(grid.flux, Interpolator.read(example_interpolator_path()).evaluate(grid.params))


def test_report_from_a_results_table(tmp_path):
    rng = np.random.default_rng(3)
    teff = rng.uniform(4600, 6400, 60)
    rows = [(f"ngc6397id{k // 2 + 1:09d}jd{2456865 + k % 2}p1000f000", "ok", "", t, 30.0, 3.5, 0.0,
             injected_feh(t) + rng.normal(0, 0.05), 0.05, 10.0, 265.2, -53.7) for k, t in enumerate(teff)]
    results = Table(rows=rows, names=("id", "status", "flag", "Teff", "e_Teff", "Logg", "e_Logg", "Fe/H", "e_Fe/H",
                                      "cz", "ra", "dec"))
    results.write(tmp_path / "r.ecsv")
    truth = Table([results["id"], results["Teff"] + 10, results["Fe/H"] - 0.02, results["Logg"]],
                  names=("id", "Teff", "Fe/H", "Logg"))
    truth.write(tmp_path / "t.ecsv")
    out = cli_here("ngc6397", tmp_path / "r.ecsv", "--truth", tmp_path / "t.ecsv", "-o", tmp_path / "report")
    assert out.returncode == 0, out.stderr
    assert "60 of 60 spectra fitted, 30 stars (30 observed more than once)" in out.stdout
    assert "ΔTeff +10.0 ± 0.0 K, Δ[Fe/H] -0.020 ± 0.000 dex" in out.stdout
    made = {p.name for p in (tmp_path / "report").iterdir()}
    assert {"table4.ecsv", "table4.md", "stars.ecsv", "fig5_distributions.png", "fig6_truth.png",
            "fig7_feh_trend.png", "fig7_bins.ecsv"} <= made
    t4 = Table.read(tmp_path / "report" / "table4.ecsv")
    assert t4.colnames == ["ID", "RA", "Dec", "Teff", "e_Teff", "Logg", "Fe/H", "e_Fe/H", "QF"] and set(t4["QF"]) == {0}
    bad = cli_here("ngc6397", tmp_path / "t.ecsv", "-o", tmp_path / "x")
    assert bad.returncode == 2 and "missing" in bad.stderr and "Traceback" not in bad.stderr


def test_resampling_keeps_the_stated_lsf():
    """The simulator's shift and resampling add no width of their own (linear interpolation would)."""
    from ulyss_ann.model.wavelength import C_KMS
    from ulyss_ann.paper.ngc6397 import shift_and_resample

    wave = 4762.25 + 1.25 * np.arange(400)
    sigma_px, centre = 0.9, 200
    flux = 1 - 0.5 * np.exp(-0.5 * ((np.arange(400) - centre) / sigma_px) ** 2)
    out = wave[50:350] + 0.625                        # half a pixel off: the worst phase
    for velocity in (0.0, 25.0):
        depth = 1 - shift_and_resample(out, wave, flux, velocity)
        linear = 1 - np.interp(out, wave * (1 + velocity / C_KMS), flux)
        moments = []
        for d in (depth, linear):
            mean = np.sum(d * out) / d.sum()
            moments.append((mean, np.sum(d * (out - mean) ** 2) / d.sum() / 1.25 ** 2))
        expected_centre = wave[centre] * (1 + velocity / C_KMS)
        assert moments[0][0] == pytest.approx(expected_centre, abs=1e-3 * 1.25)
        assert moments[0][1] == pytest.approx(sigma_px ** 2, abs=1e-3)          # px²
        assert moments[1][1] - sigma_px ** 2 > 0.1   # what linear interpolation would have added
