"""Robust training of the fast recipe: outlier stars left out of the fit, and named.

A grid of observed stars (MILES) has stars whose spectrum disagrees with its neighbours (flux
calibration, wrong parameters). Planted here in small synthetic grids: a least-squares fit is
pulled by them, the robust one recovers the fit of the clean grid and says which stars it left out.
"""

import numpy as np
import pytest

from conftest import assert_varpro_derivatives, cli_here
from ulyss_ann.training.fast_recipe import VarProNetwork, fit_varpro, predict

WAVE = np.linspace(0, 1, 50)
PLANTED = np.array([11, 30, 47, 66])


def family(x):
    """A smooth 1-D family of absorption lines (as in test_training_fast)."""
    return 1 - 0.5 * np.exp(-0.5 * ((WAVE[None] - 0.5 - 0.1 * x) / (0.05 + 0.02 * x ** 2)) ** 2)


def with_outliers(flux, rows):
    """``flux`` with a wrong flux calibration, a 30 % tilt across the spectrum, on ``rows``."""
    bad = flux.copy()
    bad[rows] *= 1 + 0.3 * (WAVE - 0.5)[None]
    return bad


@pytest.mark.parametrize("hidden", [(4,), (3, 5)])
def test_star_weights_enter_the_normal_equations_exactly(hidden):
    """With per-star weights, JᵀJ and Jᵀr equal those of the finite-difference Jacobian of the weighted residual."""
    rng = np.random.default_rng(2)
    x, targets = rng.normal(size=(30, 2)), rng.normal(size=(30, 4))
    weights = rng.uniform(0, 2, 30)
    weights[[3, 17]] = 0.0                     # excluded stars
    net = VarProNetwork(x, targets, hidden, ridge=0.1)
    net.set_star_weights(weights)
    theta = 3 * net.glorot(5)
    _, data, _, _, hidden_output, a = assert_varpro_derivatives(net, theta, star_weights=weights)
    # the weighted problem is the plain one of the rows scaled by √w
    assert data == pytest.approx(np.sum(weights[:, None] * (targets - hidden_output @ a) ** 2))


def test_robust_training_recovers_the_clean_fit_and_names_the_outliers():
    """4 mis-calibrated stars of 80: least squares is 1000× worse off the nodes; clipped, as good as clean data."""
    x = np.linspace(-1.7, 1.7, 80)[:, None]
    between = np.linspace(-1.65, 1.65, 57)[:, None]    # scored off the nodes, on the true family

    def fit(flux, clip):
        report = {}
        weights = fit_varpro(x, flux, (10,), seed=0, time_limit=300, max_iter=40, clip_stars=clip, report=report)
        return np.mean((predict(weights, between) - family(between)) ** 2), report["excluded"]

    clean, excluded_clean = fit(family(x), 3)
    plain, _ = fit(with_outliers(family(x), PLANTED), 0)
    robust, excluded = fit(with_outliers(family(x), PLANTED), 3)
    assert excluded.tolist() == PLANTED.tolist()
    # the stars a clean fit matches worst, at the ends of the family, are model error: none left out
    assert excluded_clean.size == 0
    assert clean < 2e-7 and robust < 2 * clean and plain > 100 * robust


def test_train_cli_reports_the_excluded_stars(tmp_path):
    """train --clip-stars names the stars it left out, counts them per step and in the file (NEXCLUDE)."""
    pytest.importorskip("h5py", reason="h5py (the train extra) writes the .keras file")
    import csv
    import re

    from conftest import example_grid
    from ulyss_ann import Interpolator
    from ulyss_ann.training.fast_training import validation_split
    from ulyss_ann.training.grid_network import holdout_split

    grid = example_grid(n=200)
    fit_idx, _ = validation_split(holdout_split(200, 0.1, 0)[0], 0.1, 0)
    planted = fit_idx[[5, 40, 90]]
    grid.flux[planted] *= 1 + np.linspace(-0.3, 0.3, grid.flux.shape[1])[None]
    grid.save(tmp_path / "grid.fits")

    def train(name, *options):
        out = cli_here("train", tmp_path / "grid.fits", "--recipe", "fast", "--hidden", "6,8", "--max-steps", "8",
                       "--time-limit", "300", *options, "-o", tmp_path / f"{name}.keras",
                       "--export", tmp_path / f"{name}.fits")
        assert out.returncode == 0, out.stderr
        rows = list(csv.DictReader(open(tmp_path / f"{name}.keras.loss.csv")))
        return out.stdout, rows, {key: value for key, value, _ in Interpolator.read(tmp_path / f"{name}.fits").meta}

    stdout, rows, cards = train("robust", "--clip-stars", "3")
    line = next(line for line in stdout.splitlines() if line.startswith("excluded "))
    named = [int(row) for row in re.findall(r"row (\d+) \(", line)]
    assert set(planted) <= set(named)
    assert line.startswith(f"excluded {len(named)} training stars as outliers (--clip-stars 3;")
    assert f"row {planted[0]} (Teff {grid.params[planted[0], 0]:.4g}, " in line
    assert cards["NEXCLUDE"] == len(named) == int(rows[cards["STEP"] - 1]["n_excluded"])
    # without --clip-stars (the default) nothing is excluded and the file says nothing of it
    stdout, rows, cards = train("plain")
    assert "excluded" not in stdout and "NEXCLUDE" not in cards and {r["n_excluded"] for r in rows} == {"0"}


def test_early_stopping_scores_the_validation_stars_without_the_worst_tenth(tmp_path):
    """VALMSE (and the loss CSV's validation_mse) is the mean per-star MSE of the best 90 % of the validation stars."""
    pytest.importorskip("h5py", reason="h5py (the train extra) writes the .keras file")
    import csv

    from conftest import example_grid
    from ulyss_ann import Interpolator
    from ulyss_ann.training.fast_training import validation_split
    from ulyss_ann.training.grid_network import holdout_split
    from ulyss_ann.training.outlier_stars import validation_score

    grid = example_grid(n=200)
    val_idx = validation_split(holdout_split(200, 0.1, 0)[0], 0.1, 0)[1]
    grid.flux[val_idx[:1]] *= 1 + np.linspace(-0.3, 0.3, grid.flux.shape[1])[None]   # 1 bad star of 18
    grid.save(tmp_path / "grid.fits")
    out = cli_here("train", tmp_path / "grid.fits", "--recipe", "fast", "--hidden", "6,8", "--max-steps", "6",
                   "--time-limit", "300", "-o", tmp_path / "v.keras", "--export", tmp_path / "v.fits")
    assert out.returncode == 0, out.stderr
    network = Interpolator.read(tmp_path / "v.fits")
    per_star = np.mean((network.evaluate(grid.params[val_idx]) - grid.flux[val_idx]) ** 2, axis=1)
    record = network.training_record
    rows = list(csv.DictReader(open(tmp_path / "v.keras.loss.csv")))
    assert record["VALMSE"] == pytest.approx(validation_score(per_star, 0.1), rel=1e-6)
    assert float(rows[record["STEP"] - 1]["validation_mse"]) == pytest.approx(record["VALMSE"], rel=1e-15)
    assert validation_score(per_star, 0.1) < per_star.mean() / 3   # the bad star no longer decides
