"""The fast recipe: its structured Gauss–Newton algebra, and a short run end to end."""

import csv
import subprocess
import sys

import numpy as np
import pytest

from conftest import assert_varpro_derivatives, cli_here, example_grid
from ulyss_ann import Interpolator
from ulyss_ann.spectra.grid import SpectralGrid
from ulyss_ann.training.fast_recipe import VarProNetwork, fit_varpro
from ulyss_ann.training.grid_network import holdout_split


@pytest.mark.parametrize("ridge", [0.0, 0.3])
@pytest.mark.parametrize("hidden", [(4,), (3, 5)])
def test_normal_equations_match_the_explicit_jacobian(hidden, ridge):
    """JᵀJ and Jᵀr built from the layer structure equal those of a finite-difference Kaufman Jacobian."""
    rng = np.random.default_rng(1)
    x, targets = rng.normal(size=(40, 3)), rng.normal(size=(40, 5))
    net = VarProNetwork(x, targets, hidden, ridge=ridge)
    theta = 3 * net.glorot(3)
    cost, data, residual, res, _, _ = assert_varpro_derivatives(net, theta)
    assert cost == pytest.approx(residual @ residual) and data == pytest.approx(np.sum(res ** 2))


def test_varpro_beats_the_best_linear_fit_and_honours_the_target():
    """On a smooth 1-D family, a few LM steps reach an MSE far below any output-layer-only fit."""
    x = np.linspace(-1.7, 1.7, 80)[:, None]
    wave = np.linspace(0, 1, 50)
    y = 1 - 0.5 * np.exp(-0.5 * ((wave[None] - 0.5 - 0.1 * x) / (0.05 + 0.02 * x ** 2)) ** 2)
    seen = []
    weights = fit_varpro(x, y, (10,), seed=0, time_limit=20, target_mse=1e-6,
                         on_step=lambda s, mse, w, v: seen.append(mse))
    h = 0.5 * (1 + np.tanh(0.5 * (weights[0][0] + x @ weights[0][1:])))
    mse = np.mean((weights[1][0] + h @ weights[1][1:] - y) ** 2)
    linear = np.linalg.lstsq(np.hstack([np.ones_like(x), x]), y, rcond=None)[0]
    assert mse <= 1e-6 < np.mean((np.hstack([np.ones_like(x), x]) @ linear - y) ** 2) / 100
    assert seen[-1] == pytest.approx(mse, rel=1e-6) and all(np.diff(seen) <= 0)   # LM never goes uphill
    with pytest.raises(Exception, match="1 or 2 hidden layers"):
        fit_varpro(x, y, (4, 4, 4))


def test_fast_recipe_cli_writes_a_network_that_exports(tmp_path):
    pytest.importorskip("h5py", reason="h5py (the train extra) writes the .keras file")
    grid = example_grid()
    params = grid.params
    grid.save(tmp_path / "grid.fits")
    # bounded by steps, not seconds: the same network on any machine, and no CPU spent waiting for a clock
    out = cli_here("train", tmp_path / "grid.fits", "--recipe", "fast", "--hidden", "6,8", "--max-steps", "40",
                   "--validation", "0", "-o", tmp_path / "f.keras", "--export", tmp_path / "f.fits")
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(open(tmp_path / "f.keras.loss.csv")))
    mse = np.array([float(r["train_mse"]) for r in rows])
    assert len(rows) >= 3 and mse[-1] < mse[0] / 10 and np.all(np.isfinite([float(r["holdout_mse"]) for r in rows]))
    # the exported file reproduces the MSE the recipe reported, on the training and held-out nodes
    exported = Interpolator.read(tmp_path / "f.fits")
    assert exported.architecture == [3, 6, 8, 2099] and exported.is_surrogate
    train_idx, test_idx = holdout_split(len(params), 0.1, 0)
    for idx, column in ((train_idx, "train_mse"), (test_idx, "holdout_mse")):
        recomputed = np.mean((exported.evaluate(params[idx]) - grid.flux[idx]) ** 2)
        assert recomputed == pytest.approx(float(rows[-1][column]), rel=1e-6)
    # HDU 0 records how the weights were made and how well they do (the numbers of the loss CSV)
    record = exported.training_record
    assert sorted(record) == ["HOLDMSE", "PRESET", "RECIPE", "SEED", "STEP", "TRAINMSE"]   # no validation: no VALMSE
    assert (record["RECIPE"], record["PRESET"], record["SEED"], record["STEP"]) == ("fast", "custom", 0, len(rows))
    # a FITS card holds 16 significant digits of a float
    assert (record["TRAINMSE"], record["HOLDMSE"]) == pytest.approx(
        (float(rows[-1]["train_mse"]), float(rows[-1]["holdout_mse"])), rel=1e-15)
    assert ("TRAINGRD", "grid.fits", "the training grid") in exported.meta
    info = cli_here("info", "-m", tmp_path / "f.fits")
    assert f"training     fast recipe, preset custom, seed 0, step {len(rows)}; MSE " in info.stdout
    assert "trained on the SURROGATE grid" in info.stdout
    # early stopping: the weights kept are those of the lowest validation MSE, the hold-out untouched
    out = cli_here("train", tmp_path / "grid.fits", "--recipe", "fast", "--hidden", "6,8", "--time-limit", "10",
                   "--patience", "3", "-o", tmp_path / "v.keras", "--export", tmp_path / "v.fits")
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(open(tmp_path / "v.keras.loss.csv")))
    validation = np.array([float(r["validation_mse"]) for r in rows])
    kept = int(np.argmin(validation))
    assert f"step {kept + 1} (lowest validation MSE, kept)" in out.stdout
    record = Interpolator.read(tmp_path / "v.fits").training_record
    assert record["STEP"] == kept + 1
    assert (record["VALMSE"], record["HOLDMSE"]) == pytest.approx((validation[kept], float(rows[kept]["holdout_mse"])),
                                                                  rel=1e-15)
    recomputed = np.mean((Interpolator.read(tmp_path / "v.fits").evaluate(params[test_idx]) - grid.flux[test_idx]) ** 2)
    assert recomputed == pytest.approx(float(rows[kept]["holdout_mse"]), rel=1e-6)
    again = cli_here("train", tmp_path / "grid.fits", "--recipe", "fast", "--resume", "-o", tmp_path / "f.keras")
    assert again.returncode == 2 and "--resume is for the paper recipe" in again.stderr


def test_fast_recipe_builds_its_interpolator_without_keras(tmp_path):
    """No Keras and no pyplot are loaded; the .keras it writes (with h5py) is the network of the interpolator."""
    pytest.importorskip("h5py", reason="h5py (the train extra) writes the .keras file")
    example_grid().save(tmp_path / "grid.fits")
    code = ("import sys\n"
            "from ulyss_ann.spectra.grid import SpectralGrid\n"
            "from ulyss_ann.training.train import train\n"
            f"train(SpectralGrid.load({str(tmp_path / 'grid.fits')!r}), {str(tmp_path / 'n.keras')!r}, "
            f"hidden=(4, 5), recipe='fast', time_limit=3, validation=0, progress=False, "
            f"export={str(tmp_path / 'n.fits')!r})\n"
            "print(sorted(m for m in ('keras', 'torch', 'matplotlib.pyplot') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout
    assert (tmp_path / "n.keras.loss.png").stat().st_size > 5000
    exported = Interpolator.read(tmp_path / "n.fits")
    grid = SpectralGrid.load(tmp_path / "grid.fits")
    assert [(p.mean, p.scale) for p in exported.parameters] == list(zip(grid.params.mean(0), grid.params.std(0)))
    pytest.importorskip("keras")
    from ulyss_ann.training.keras_io import interpolator_from_keras

    # the same network: weights, scaling, nodes; only its provenance differs (an export says the
    # weights were made elsewhere, train --export records the training)
    again = interpolator_from_keras(tmp_path / "n.keras", grid)
    assert again.parameters == exported.parameters and np.array_equal(again.nodes, exported.nodes)
    assert all(np.array_equal(a, b) for a, b in zip(again.weights, exported.weights))
    assert exported.training_record["RECIPE"] == "fast" and again.training_record == {}
