"""Training with the paper's recipe: a short run, exact resume, export, errors."""

import csv

import numpy as np
import pytest

from conftest import cli_here, example_grid
from ulyss_ann import Interpolator
from ulyss_ann.spectra.grid import SpectralGrid
from ulyss_ann.training.grid_network import standardise

keras = pytest.importorskip("keras")


@pytest.fixture(scope="module")
def grid_file(tmp_path_factory):
    """300 spectra of the example network at random parameters (a small surrogate grid)."""
    path = tmp_path_factory.mktemp("grid") / "grid.fits"
    example_grid().save(path)
    return path


def weights(path):
    return [w for layer in keras.saving.load_model(path).layers for w in layer.get_weights()]


def test_short_run_resume_and_export(grid_file, tmp_path):
    common = ["--hidden", "8,16", "--seed", "3"]
    full = cli_here("train", grid_file, "-o", tmp_path / "a.keras", "--epochs", "4", *common,
                    "--export", tmp_path / "a.fits")
    assert full.returncode == 0, full.stderr
    rows = list(csv.DictReader(open(tmp_path / "a.keras.loss.csv")))
    mse = [float(r["train_mse"]) for r in rows]
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4] and mse[-1] < mse[0]  # it learns
    assert all(np.isfinite(float(r["holdout_mse"])) for r in rows)
    assert (tmp_path / "a.keras.loss.png").stat().st_size > 5000
    # 2 epochs, then --resume to 4: the very same network as 4 epochs at once
    assert cli_here("train", grid_file, "-o", tmp_path / "b.keras", "--epochs", "2", *common).returncode == 0
    resumed = cli_here("train", grid_file, "-o", tmp_path / "b.keras", "--epochs", "4", *common, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    for a, b in zip(weights(tmp_path / "a.keras"), weights(tmp_path / "b.keras")):
        np.testing.assert_array_equal(a, b)
    # the exported interpolator computes what the network computes
    interp = Interpolator.read(tmp_path / "a.fits")
    assert interp.architecture == [3, 8, 16, 2099] and interp.is_surrogate and interp.nodes.shape == (300, 3)
    grid = SpectralGrid.load(grid_file)
    x = standardise(grid.params)[:5]
    predicted = keras.saving.load_model(tmp_path / "a.keras").predict(x, verbose=0)
    np.testing.assert_allclose(interp.evaluate(grid.params[:5]), predicted, atol=1e-6)  # Keras: ~float32 products
    # the interpolator standardises exactly as the network was trained
    assert [(p.mean, p.scale) for p in interp.parameters] == list(zip(grid.params.mean(0), grid.params.std(0)))


def test_training_errors(grid_file, tmp_path):
    nothing = cli_here("train", grid_file, "-o", tmp_path / "c.keras", "--resume")
    assert nothing.returncode == 2 and "nothing to resume" in nothing.stderr
    bad = cli_here("train", grid_file, "-o", tmp_path / "c.h5")
    assert bad.returncode == 2 and "must end in .keras" in bad.stderr
    assert cli_here("train", tmp_path / "absent.fits", "-o", tmp_path / "c.keras").returncode == 2
