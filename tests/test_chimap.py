"""χ² maps and profiles (ulyss_ann.fitting.chimap.map, ``ulyss-ann chimap``) and the flat-valley check.

All with the native engine and the bundled example network: the map's least-χ² node is the free
fit's, the nodes' χ² is ULySS's (Σr² over uly_fit's degrees of freedom), Δχ² is never below the
free fit, the command writes uly_chimap's FITS layout and a figure and refuses bad axes in one
line, and a spectrum with a second log g minimum is flagged flat where the example's is not.
"""


import numpy as np
import pytest
from astropy.io import fits

from ulyss_ann import example_interpolator
from ulyss_ann.cli.main import main
from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.fitting.quality import FLAT_VALLEY
from ulyss_ann.fitting.chimap.map import chi2_map, chi2_profile
from ulyss_ann.fitting.valley import flat_parameters
from ulyss_ann.spectra.examples import example_spectrum_path
from ulyss_ann.spectra.simulate import simulate_spectrum

# fast: one guess of the parameter left free, a low-degree polynomial
FAST = dict(engine="native", mdegree=8, guesses={"Fe/H": [-1.5]})
TEFF = ("Teff", np.linspace(5000.0, 6000.0, 11))
LOGG = ("Logg", np.linspace(3.0, 4.4, 8))


@pytest.fixture(scope="module")
def example_map():
    return chi2_map(example_spectrum_path(), "example", TEFF, LOGG, **FAST)


def test_map_least_chi2_node_is_the_free_fit_within_a_grid_step(example_map):
    best, node = example_map.best, example_map.best_node
    assert not example_map.failures and example_map.chi2.shape == (8, 11)
    assert abs(node["Teff"] - best.params["Teff"]) <= 100.0       # the Teff step
    assert abs(node["Logg"] - best.params["Logg"]) <= 0.2         # the log g step
    # the free fit is the minimum of the fits with two parameters held: no node below it
    assert np.all(example_map.dchi2 >= 0.0)
    assert np.all(example_map.dchi2.ravel()[np.argsort(example_map.sum_sq.ravel())] ==
                  np.sort(example_map.dchi2.ravel()))


@pytest.mark.gdl
def test_the_gdl_engine_maps_alike(example_map):
    """uly_fit in GDL at 2 x 2 nodes of the native map (5 fits, a few seconds): the same χ² and Δχ²."""
    x, y = ("Teff", example_map.x[4:7:2]), ("Logg", example_map.y[2:5:2])
    gdl = chi2_map(example_spectrum_path(), "example", x, y, **dict(FAST, engine="gdl"))
    native = example_map.chi2[2:5:2, 4:7:2]
    assert not gdl.failures and gdl.best.engine.startswith("gdl")
    np.testing.assert_allclose(gdl.chi2, native, rtol=1e-5)   # float32 best fits (uly_fit's), LM to 1e-5 vs 1e-7
    np.testing.assert_allclose(gdl.dchi2, example_map.dchi2[2:5:2, 4:7:2], rtol=2e-4)  # seen: 6e-5


def test_map_chi2_is_ulysses_reduced_chi2(example_map):
    # uly_fit divides Σr² by N_good − (free parameters + cz, σ + MDEGREE + 2): Fe/H free, MDEGREE 8
    dof = example_map.best.n_pix - (1 + 2 + 8 + 2)
    np.testing.assert_allclose(example_map.sum_sq / example_map.chi2, dof, rtol=1e-6)
    assert example_map.noise_scale == 1.0 and example_map.best.chi2 < 1.0  # a fit to its noise: not rescaled


def test_profile_of_a_normal_valley_is_not_flat():
    options = dict(FAST, guesses={"Teff": [5500.0], "Fe/H": [-1.5]})
    profile = chi2_profile(example_spectrum_path(), "example", "Logg", np.arange(2.0, 5.01, 0.25), **options)
    assert profile.y is None and profile.dchi2.shape == (13,)
    assert flat_parameters({"Logg": profile}, profile.best) == ()
    # the free fit handed over (how a check after a fit saves it) is the reference as if made again
    again = chi2_profile(example_spectrum_path(), "example", "Logg", profile.x, free_fit=profile.best, **options)
    np.testing.assert_allclose(again.dchi2, profile.dchi2, rtol=1e-9)


def test_profile_with_a_second_minimum_is_flat():
    """Only 5800-6000 Å of a 6000 K, log g 0.5, [Fe/H] −2.5 spectrum (S/N 100), Teff and [Fe/H] held: the
    example network's spectrum there at log g 5.5 is almost the one at 1.25, so the profile has a second
    minimum (Δχ² 2.5 at 4.3 errors), which the error of the fit, from the curvature at its minimum, hides."""
    wave, flux, sigma = simulate_spectrum(example_interpolator(), [6000.0, 0.5, -2.5], snr=100.0, rng=3)
    profile = chi2_profile((wave, flux, sigma), "example", "Logg", np.arange(0.25, 6.0, 0.25), engine="native",
                           mdegree=2, telluric="none", wave_range=(5800.0, 6000.0),
                           fixed={"Teff": 6000.0, "Fe/H": -2.5})
    assert flat_parameters({"Logg": profile}, profile.best) == ("Logg",)
    far = profile.x > 5.0  # the second minimum, beyond 3 errors of the best value (~1.3)
    assert np.min(profile.dchi2[far]) < 4.0 and profile.best.params["Logg"] < 2.0
    assert FLAT_VALLEY == "flat-valley"


def test_cli_writes_the_map_and_its_figure(tmp_path, capsys):
    out, png = tmp_path / "map.fits", tmp_path / "map.png"
    status = main(["chimap", example_spectrum_path(), "-m", "example", "--engine", "native", "--mdegree", "8",
                   "--guess", "Fe/H=-1.5", "--x", "Teff=5200:5800:4", "--y", "Logg=3.2:4.2:3", "-o", str(out),
                   "--plot", str(png)])
    printed = capsys.readouterr().out
    assert status == 0 and "12 nodes, 12 fitted" in printed
    with fits.open(out) as hdus:  # uly_chimap's layout: map, x nodes, y nodes; then ours
        assert hdus[0].data.shape == (3, 4) and hdus[0].header["CTYPE1"] == "Teff"
        assert hdus[0].header["CTYPE2"] == "Logg" and hdus[0].header["CUNIT1"] == "K"
        np.testing.assert_allclose(hdus[1].data, [5200, 5400, 5600, 5800])
        np.testing.assert_allclose(hdus[2].data, [3.2, 3.7, 4.2])
        assert [h.name for h in hdus[3:]] == ["SUMSQ", "DCHI2"] and np.all(hdus["DCHI2"].data >= 0)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["chimap", example_spectrum_path(), "-m", "example", "--x", "Teff=5200:5800:4", "-o",
                 str(out)]) == 2
    assert "exists; add --overwrite" in capsys.readouterr().err


@pytest.mark.parametrize("axes, said", [
    (["--x", "Teff"], "--x 'Teff': expected NAME=LO:HI:N"),
    (["--x", "Teff=4500:6500"], "expected NAME=LO:HI:N with numbers"),
    (["--x", "Teff=4500:6500:1"], "N = 1 nodes"),
    (["--x", "Teff=4500:6500:2.5"], "N = 2.5 nodes"),
    (["--x", "Teff=a:b:3"], "expected NAME=LO:HI:N with numbers"),
    (["--x", "Tef=4500:6500:3"], "Tef"),
    (["--x", "Teff=1000:6500:3"], "outside the network's training bounds"),
    (["--x", "Teff=6500:4500:3"], "increasing order"),
    (["--x", "cz=-50:50:3"], "always fit cz and sigma"),
    (["--x", "Teff=4500:6500:3", "--y", "teff=5000:6000:3"], "both Teff"),
    (["--x", "Teff=4500:6500:3", "--fix", "Teff=5000"], "both fixed and mapped"),
])
def test_cli_refuses_bad_axes_in_one_line(tmp_path, capsys, axes, said):
    out = tmp_path / "map.fits"
    status = main(["chimap", example_spectrum_path(), "-m", "example", *axes, "-o", str(out)])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("ulyss-ann: error: ") and err.count("\n") == 1 and said in err
    assert not out.exists()


def test_map_needs_two_axes_and_no_saved_fits():
    with pytest.raises(UlyssAnnError, match="needs two axes"):
        chi2_map(example_spectrum_path(), "example", TEFF)
    with pytest.raises(UlyssAnnError, match="saves no best fits"):
        chi2_map(example_spectrum_path(), "example", TEFF, LOGG, save_fits="somewhere", **FAST)


def test_a_map_is_about_chi2_whatever_errors_says(tmp_path, monkeypatch):
    """errors="mc" (or total) asked of a map: no refits nor flat checks, neither at the free fit nor at
    any node (they cost nsimul fits a node and change no χ²), and the E_* cards hold MPFIT's errors,
    also those of a free fit handed over with mc errors (how the check after a fit hands it)."""
    from ulyss_ann.fitting import core

    refits, checks = [], []
    resample, check = core.FitEngine.resample, core.check_flat_valleys
    monkeypatch.setattr(core.FitEngine, "resample", lambda *a: refits.append(1) or resample(*a))
    monkeypatch.setattr(core, "check_flat_valleys", lambda *a: checks.append(1) or check(*a))
    options = dict(FAST, guesses={"Teff": [5500.0], "Fe/H": [-1.5]}, nsimul=5, seed=1)
    logg = np.arange(3.0, 4.01, 0.5)
    profile = chi2_profile(example_spectrum_path(), "example", "Logg", logg, errors="mc", **options)
    assert (refits, checks) == ([], [])
    assert profile.best.error_method == "formal" and profile.best.flat_valleys is None
    measured = chi2_profile(example_spectrum_path(), "example", "Logg", logg, **options)
    np.testing.assert_allclose(profile.dchi2, measured.dchi2, rtol=1e-9)  # the same χ² as a formal map's

    from ulyss_ann import fit_spectrum
    best = fit_spectrum(example_spectrum_path(), "example", errors="mc", flat_check=False, **options)
    assert best.error_method == "mc" and best.errors["Teff"] != best.formal_errors["Teff"]
    path = chi2_profile(example_spectrum_path(), "example", "Logg", logg, free_fit=best,
                        **options).write(tmp_path / "p.fits")
    header = fits.getheader(path)
    assert header["E_TEFF"] == pytest.approx(best.formal_errors["Teff"]) and header["E_LOGG"] > 0.0
