"""Spectral grids and the export of Keras networks to interpolator files."""

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import cli_here, reference_file
from ulyss_ann import Interpolator, UlyssAnnError, WavelengthGrid
from ulyss_ann.training.keras_io import interpolator_from_keras
from ulyss_ann.spectra.grid import SpectralGrid, surrogate_grid


@pytest.fixture(scope="module")
def surrogate(tmp_path_factory):
    path = tmp_path_factory.mktemp("grid") / "gsl_surrogate.fits"
    result = cli_here("grid", "surrogate", "-o", path, "--model", reference_file("gsl_ann_trial8.fits"), "--nodes",
                      reference_file("gsl_nodes.txt"))
    assert result.returncode == 0, result.stderr
    assert "SURROGATE grid of 2908 spectra x 2099 px" in result.stdout
    return path


def test_surrogate_grid_is_trial8_at_the_nodes_and_says_so(surrogate):
    grid = SpectralGrid.load(surrogate)
    trial8 = Interpolator.read(reference_file("gsl_ann_trial8.fits"))
    assert grid.flux.shape == (2908, 2099) and grid.is_surrogate
    assert grid.names == ("Teff", "Logg", "Fe/H") and grid.units == ("K", "dex", "dex")
    # (batched BLAS products of different sizes differ in the last bit)
    np.testing.assert_allclose(grid.flux[::97], trial8.evaluate(grid.params[::97]), rtol=1e-13, atol=1e-15)
    assert grid.wavelength == trial8.wavelength
    # the nodes are the authors': their mean and std are the published input scaling
    np.testing.assert_allclose(grid.params.mean(0), [p.mean for p in trial8.parameters], rtol=1e-14)
    np.testing.assert_allclose(grid.params.std(0), [p.scale for p in trial8.parameters], rtol=1e-14)


@pytest.mark.parametrize("trial", [7, 8])
def test_authors_keras2_files_export_to_their_published_interpolators(surrogate, tmp_path, trial):
    pytest.importorskip("h5py", reason="h5py (the train extra) reads the .h5 files")
    out = tmp_path / "exported.fits"
    result = cli_here("export", reference_file(f"gsl_ann_trial{trial}.keras2.h5"), "--grid", surrogate, "-o", out)
    assert result.returncode == 0, result.stderr
    exported, published = Interpolator.read(out), Interpolator.read(reference_file(f"gsl_ann_trial{trial}.fits"))
    for a, b in zip(exported.weights, published.weights):
        np.testing.assert_array_equal(a, b)
    assert exported.activations == published.activations and exported.wavelength == published.wavelength
    params = SpectralGrid.load(surrogate).params[::13]
    np.testing.assert_allclose(exported.evaluate(params), published.evaluate(params), rtol=0, atol=1e-10)
    assert exported.nodes.shape == (2908, 3)
    # The weights are the authors', trained on the real Goettingen spectra: the surrogate grid gave
    # the scaling and wavelengths only, and the file says exactly that (issue 25, defect 2).
    assert not exported.is_surrogate and exported.scaling_from_surrogate
    cards = {key: value for key, value, _ in exported.meta}
    assert "SURROGAT" not in cards and cards["NETFILE"] == f"gsl_ann_trial{trial}.keras2.h5"
    assert cards["SCALGRID"] == "gsl_surrogate.fits" and "RECIPE" not in cards and "TRAINMSE" not in cards
    assert "the surrogate grid" in result.stdout and "SURROGATE: trained" not in result.stdout
    info = cli_here("info", "-m", out)
    assert "trained on the SURROGATE grid" not in info.stdout
    assert "only the input scaling and wavelengths come from the SURROGATE grid" in info.stdout


def test_keras3_network_exports_and_evaluates_like_keras(tmp_path):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(0)
    params = np.column_stack([rng.uniform(4000, 7000, 60), rng.uniform(0, 5, 60), rng.uniform(-2.5, 0, 60)])
    grid = SpectralGrid(rng.random((60, 25)), params, ("Teff", "Logg", "Fe/H"), ("K", "dex", "dex"),
                        WavelengthGrid(25, 5000.0, 2.0))
    keras.config.set_floatx("float64")  # the paper's networks are float64
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((3,), dtype="float64"),
                              keras.layers.Dense(6, activation="sigmoid", dtype="float64"),
                              keras.layers.Dense(5, activation="tanh", dtype="float64"),
                              keras.layers.Dense(25, activation="linear", dtype="float64")])
    model.save(tmp_path / "net.keras")
    interp = interpolator_from_keras(tmp_path / "net.keras", grid)
    x = (params - params.mean(0)) / params.std(0)
    # The exported arrays are Keras's own weights, bit for bit: a float64 forward pass with
    # them equals the interpolator to rounding.
    (k1, b1), (k2, b2), (k3, b3) = (layer.get_weights() for layer in model.layers)
    h = 1 / (1 + np.exp(-(x @ k1 + b1)))
    h = np.tanh(h @ k2 + b2)
    np.testing.assert_allclose(interp.evaluate(params), h @ k3 + b3, rtol=1e-12, atol=1e-14)
    # Keras itself (torch backend) computes these products at about float32 precision
    # (seen here: 4e-8 off even for one linear layer), hence the looser check against it.
    expected = np.asarray(model.predict(x, verbose=0), dtype=float)
    np.testing.assert_allclose(interp.evaluate(params), expected, rtol=0, atol=1e-6)
    assert interp.activations == ("logistic", "tanh", "linear")
    with pytest.raises(UlyssAnnError, match="the network takes 3 inputs, the grid has 2 parameters"):
        interpolator_from_keras(tmp_path / "net.keras", SpectralGrid(
            grid.flux, params[:, :2], ("Teff", "Logg"), ("K", "dex"), grid.wavelength))


def test_grid_and_export_errors(tmp_path):
    (tmp_path / "junk.h5").write_text("nothing")
    with pytest.raises(UlyssAnnError, match="neither a tf.keras HDF5"):
        interpolator_from_keras(tmp_path / "junk.h5", None)
    with pytest.raises(UlyssAnnError, match="no such file"):
        SpectralGrid.load(tmp_path / "absent.fits")
    (tmp_path / "notgrid.fits").write_bytes(open(reference_file("gsl_ann_trial7.fits"), "rb").read())
    with pytest.raises(UlyssAnnError, match="not a spectral grid"):
        SpectralGrid.load(tmp_path / "notgrid.fits")
    with pytest.raises(UlyssAnnError, match="absent.txt: .*No such file"):
        surrogate_grid(reference_file("gsl_ann_trial8.fits"), tmp_path / "absent.txt")



def _export_without(module, network, grid, out):
    """ulyss-ann export in a Python where ``module`` cannot be imported (as where the train extra is absent)."""
    code = (f"import sys; sys.modules[{module!r}] = None; from ulyss_ann.cli.main import main; "
            f"sys.exit(main(['export', {str(network)!r}, '--grid', {str(grid)!r}, '-o', {str(out)!r}]))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_without_the_train_extra_exporting_a_keras_network_is_one_line(surrogate, tmp_path):
    network = reference_file("gsl_ann_trial7.keras2.h5")
    result = _export_without("h5py", network, surrogate, tmp_path / "x.fits")
    assert result.returncode == 2 and result.stderr.splitlines() == [
        f"ulyss-ann: error: {network}: reading a Keras .h5 network needs h5py (pip install 'ulyss_ann[train]', "
        "or pip install h5py)"]
    keras3 = tmp_path / "net.keras"
    keras3.write_bytes(b"PK\x03\x04 a zip as Keras 3 writes it")  # the reader needs keras before it reads on
    result = _export_without("keras", keras3, surrogate, tmp_path / "y.fits")
    assert result.returncode == 2 and result.stderr.splitlines() == [
        f"ulyss-ann: error: {keras3}: reading a Keras 3 .keras network needs keras (pip install 'ulyss_ann[train]')"]
