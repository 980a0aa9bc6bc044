"""Rows that say when they cannot be trusted (issue 14): no signal is an error, far-from-nodes
means the same on regular and irregular grids, and a fit far worse than the noise is flagged."""

import csv

import numpy as np
import pytest

from conftest import SHARED
from ulyss_ann import Interpolator
from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.fitting.api import fit_spectrum
from ulyss_ann.fitting.batch.driver import fit
from ulyss_ann.spectra.examples import example_interpolator_path, miles_interpolator_path

MILES = SHARED / "data" / "miles"
WAVE = 4750.0 + 1.25 * np.arange(2100)  # inside the example network's 4761-7383 Å
# 2089 pixels in 4763-7374 Å, 1836 of them outside the MUSE pipeline's telluric bands (widened by ±30 km/s)
RNG = np.random.default_rng(14)


# ---------------------------------------------------------------- no usable signal
@pytest.mark.parametrize("flux, options, reason", [
    (np.zeros(WAVE.size), {}, r"^no signal: the flux is 0 at all 1836 fitted pixels \(4763-7374 Å\)$"),
    (np.full(WAVE.size, 3.5), {}, r"^no signal: the flux is 3\.5 at all 1836 fitted pixels"),
    (np.full(WAVE.size, np.nan), {}, r"^no usable pixels: 0 good of 2089 in 4763-7374 Å \(2089 bad values"),
    (1 + RNG.normal(0, 0.01, WAVE.size), dict(masks=[(4000.0, 8000.0)]),
     r"^no usable pixels: 0 good of 2089 .*\(0 bad values .*2089 in masked bands\); a fit of 26 unknowns"),
    (1 + RNG.normal(0, 0.01, WAVE.size), dict(masks=[(4000.0, 7355.0)]),  # 15 px left: fewer than 26 + 10
     r"^no usable pixels: 15 good of 2089 .* needs at least 36$"),
])
def test_no_signal_is_an_error_with_the_reason(flux, options, reason):
    with pytest.raises(UlyssAnnError, match=reason):
        fit_spectrum((WAVE, flux), engine="native", **options)


def test_input_mask_hiding_everything_is_no_usable_pixels():
    from ulyss_ann.spectra.spectrum import Spectrum

    spectrum = Spectrum.from_arrays(WAVE, 1 + RNG.normal(0, 0.01, WAVE.size), good=np.zeros(WAVE.size, bool))
    with pytest.raises(UlyssAnnError, match=r"^no usable pixels: 0 good of 2089 .*\(2089 bad values"):
        fit_spectrum(spectrum, engine="native")


def test_batch_row_of_an_all_zero_spectrum_is_an_error(tmp_path):
    good = 1 + 0.3 * np.sin(WAVE / 7.0) + RNG.normal(0, 0.01, WAVE.size)
    table = fit([(WAVE, np.zeros(WAVE.size)), (WAVE, good)], output=tmp_path / "r.ecsv", engine="native",
                workers=0, progress=False)
    status = list(table["status"])
    assert status[0].startswith("error") and "no signal: the flux is 0 at all 1836 fitted pixels" in status[0]
    assert status[1] == "ok"


@pytest.mark.gdl
def test_both_engines_give_the_same_reason():
    reasons = []
    for engine in ("native", "gdl"):
        with pytest.raises(UlyssAnnError) as caught:
            fit_spectrum((WAVE, np.zeros(WAVE.size)), engine=engine)
        reasons.append(str(caught.value))
    assert reasons[0] == reasons[1] == "no signal: the flux is 0 at all 1836 fitted pixels (4763-7374 Å)"


# ---------------------------------------------------------------- poor fits
def test_misfit_compares_the_residual_with_the_noise(surrogate):
    from ulyss_ann.spectra.simulate import simulate_spectrum

    wave, flux, error = simulate_spectrum(surrogate, [5500.0, 3.5, -1.5], velocity=20.0, snr=100.0, rng=3)
    plain = fit_spectrum((wave, flux, error), model=surrogate, engine="native")
    assert 0.7 < plain.misfit < 1.2 and plain.misfit <= np.sqrt(plain.chi2) and plain.flags == ()
    bare = fit_spectrum((wave, flux), model=surrogate, engine="native")  # no errors: χ² 0, the flux's own noise
    assert bare.chi2 == 0 and 0.7 < bare.misfit < 1.2 and bare.flags == ("errors-estimated",)
    # errors 10x too small: √χ² ~ 9, but the flux's own scatter says the fit is as good as the data
    small = fit_spectrum((wave, flux, error / 10), model=surrogate, engine="native")
    assert np.sqrt(small.chi2) > 8 and small.misfit == pytest.approx(plain.misfit) and small.flags == ()
    spiky = flux.copy()
    spiky[50::40] *= 2  # 52 spikes no stellar model makes: both noise estimates see them
    for arrays in ((wave, spiky, error), (wave, spiky)):
        result = fit_spectrum(arrays, model=surrogate, engine="native")
        no_sigma = ("errors-estimated",) if len(arrays) == 2 else ()
        assert result.misfit > 5 and result.flags == ("poor-fit",) + no_sigma


# ---------------------------------------------------------------- node distance, regular grid
@pytest.fixture(scope="module")
def surrogate():
    return Interpolator.read(example_interpolator_path())


def _full_cells(nodes):
    """Lower and upper corners of the grid cells whose 8 corners are all nodes."""
    axes = [np.unique(c) for c in nodes.T]
    present = {tuple(n) for n in nodes}
    cells = []
    for i in range(len(axes[0]) - 1):
        for j in range(len(axes[1]) - 1):
            for k in range(len(axes[2]) - 1):
                lo = (axes[0][i], axes[1][j], axes[2][k])
                hi = (axes[0][i + 1], axes[1][j + 1], axes[2][k + 1])
                corners = [(a, b, c) for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])]
                if all(c in present for c in corners):
                    cells.append((lo, hi))
    return np.array(cells)


def test_inside_the_regular_grid_is_near(surrogate):
    cells = _full_cells(surrogate.nodes)
    assert len(cells) > 2000  # the GSL grid, with its 200 K and 1-dex steps
    pick = cells[RNG.integers(len(cells), size=3000)]
    points = pick[:, 0] + RNG.random((3000, 3)) * (pick[:, 1] - pick[:, 0])
    centres = cells.mean(axis=1)
    d = surrogate.node_distance(np.vstack([points, centres]))
    assert d.shape == (3000 + len(cells),) and np.all(d < 1.0)
    assert surrogate.node_distance(surrogate.nodes[123]) == 0.0


@pytest.mark.parametrize("point", [
    (7600.0, 0.0, -1.0),   # hot and low gravity: 2 log g steps below the grid's edge
    (8000.0, 0.2, -2.9),   # the hot, metal-poor corner
    (8400.0, 4.0, -1.0),   # 2 Teff steps beyond the grid
])
def test_beyond_the_edge_is_far(surrogate, point):
    assert surrogate.node_distance(point) > 1.0


def test_a_hole_is_far(surrogate):
    centre = np.array([5500.0, 3.0, -1.0])
    nodes = surrogate.nodes
    hole = np.all(np.abs(nodes - centre) <= [200.0, 1.0, 0.5], axis=1)  # 5 x 5 x 3 nodes taken out
    assert hole.sum() == 75
    holed = Interpolator(surrogate.parameters, surrogate.weights, surrogate.activations, surrogate.wavelength,
                         nodes=nodes[~hole])
    assert surrogate.node_distance(centre) == 0.0
    assert holed.node_distance(centre) > 1.0
    assert holed.node_distance(centre + [700.0, 0.0, 0.0]) < 1.0  # the grid again beyond the hole


# ---------------------------------------------------------------- MILES: an irregular grid
def _miles_stars(select, n):
    """The first n MILES stars (by file name) whose catalogue parameters pass ``select``."""
    table = MILES / "params.csv"
    if not table.is_file():
        pytest.skip(f"{table} not found: the MILES spectra live in ../shared/data/miles")
    with open(table, newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["teff"] and r["logg"] and r["feh"]]
    chosen = [r for r in sorted(rows, key=lambda r: r["file"])
              if select(float(r["teff"]), float(r["logg"]), float(r["feh"]))][:n]
    assert len(chosen) == n
    return [(MILES / r["file"], float(r["teff"])) for r in chosen]


def test_miles_stars_inside_the_coverage_are_not_flagged():
    # well inside the network's 3260-8991 K: FGK dwarfs and giants of near-solar metallicity
    stars = _miles_stars(lambda t, g, z: 4500 <= t <= 6500 and 1.0 <= g <= 4.6 and -1.0 <= z <= 0.3, 5)
    model = Interpolator.read(miles_interpolator_path())
    for path, teff in stars:
        result = fit_spectrum(path, model=model, engine="native")
        assert result.node_distance < 1.0 and result.misfit < 2.0, (path.name, result)
        assert "far-from-nodes" not in result.flags and "poor-fit" not in result.flags
        assert abs(result.params["Teff"] - teff) < 400  # they are fitted, not just unflagged


def test_hot_miles_stars_are_flagged_poor_fit():
    # 15-25 kK: far above the 3000-9000 K the network was trained on
    stars = _miles_stars(lambda t, g, z: 15000 <= t <= 25000, 4)
    model = Interpolator.read(miles_interpolator_path())
    for path, teff in stars:
        result = fit_spectrum(path, model=model, engine="native")
        # their Teff lands inside the grid, so Teff's bounds do not see them (a B star's weak metal lines
        # may take [Fe/H] to its lower bound: the 5-network miles does so for one of the four)
        assert 5000 < result.params["Teff"] < 8000 and "bound:Teff" not in result.flags
        assert result.misfit > 5.0 and "poor-fit" in result.flags, (path.name, result)


# ---------------------------------------------------------------- no σ given (issue 25)
def _example_arrays():
    from ulyss_ann.spectra.examples import example_spectrum_path
    from ulyss_ann.spectra.inputs import as_spectrum

    star = as_spectrum(example_spectrum_path())  # the bundled simulated star, with its SIGMA
    return star.wavelength, star.flux, star.error


def test_a_spectrum_without_sigma_says_its_errors_are_estimated():
    """Without σ the fit is unweighted and its errors come from the residuals: the result, its row
    and its text say so; with σ nothing of it is said."""
    wave, flux, error = _example_arrays()
    weighted = fit_spectrum((wave, flux, error), engine="native")
    bare = fit_spectrum((wave, flux), engine="native")
    assert not weighted.errors_estimated and "errors-estimated" not in weighted.flags
    assert "errors estimated" not in repr(weighted) and f"χ² = {weighted.chi2:.4g}" in weighted.summary()
    assert bare.errors_estimated and bare.flags == ("errors-estimated",) and bare.chi2 == 0
    assert bare.row()["flag"] == "errors-estimated"
    assert "errors estimated from the residuals (no σ given)" in repr(bare) and "χ²" not in bare.summary()
    # scaled by the residuals (χ²/dof = 1): near what the weighted fit gives, not MPFIT's errors for σ = 1
    assert bare.errors["Teff"] == pytest.approx(weighted.errors["Teff"], rel=0.3)


def test_batch_table_and_summary_count_the_spectra_without_sigma(tmp_path, capsys, monkeypatch):
    """A text file of two columns (no error column) beside the bundled FITS star (with SIGMA)."""
    import warnings

    from astropy.table import Table

    from ulyss_ann.cli.main import main
    from ulyss_ann.spectra.examples import example_spectrum_path

    wave, flux, _ = _example_arrays()
    text = tmp_path / "bare.txt"
    np.savetxt(text, np.column_stack([wave, flux]))
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # main() sets its own
    out = tmp_path / "r.ecsv"
    assert main(["fit", str(text), example_spectrum_path(), "-m", "example", "--engine", "native", "-j", "0",
                 "-o", str(out)]) == 0
    said = capsys.readouterr().out
    assert "2 spectra: 2 fitted, 0 error, 0 failed" in said
    assert ("1 without σ: fitted unweighted, errors estimated from the residuals (flag errors-estimated)"
            in said.splitlines())
    table = Table.read(out)
    flags = dict(zip(table["id"], np.ma.filled(table["flag"], "")))
    assert flags == {"bare": "errors-estimated", "example_spectrum": ""}


@pytest.mark.gdl
def test_both_engines_estimate_the_errors_alike():
    wave, flux, _ = _example_arrays()
    native, gdl = (fit_spectrum((wave, flux), engine=engine) for engine in ("native", "gdl"))
    assert native.errors_estimated and gdl.errors_estimated and native.chi2 == gdl.chi2 == 0
    assert "errors-estimated" in native.flags and "errors-estimated" in gdl.flags
    for name in native.errors:  # ULySS scales them by the residuals too (measured: within 0.6 %)
        assert gdl.errors[name] == pytest.approx(native.errors[name], rel=0.02)
