"""Export a Keras network to the ULySS perceptron interpolator format.

A saved network holds only its layers; the rest of an interpolator file comes from
the grid it was trained on (``SpectralGrid``):

* input scaling ``linscale``: ``I_PR_Bn`` / ``I_PR_Sn`` = mean and (population)
  standard deviation of each parameter over the grid nodes — the standard scaling
  of the paper's recipe;
* bounds ``I_P_LBn`` / ``I_P_HBn`` = the grid's range; names and units from the grid;
* derivative steps ``I_P_STn``: 1 K for Teff, 0.005 dex for log g, 0.01 dex for
  [Fe/H] as in the authors' files, else a thousandth of the range;
* the wavelength WCS of the grid; the training nodes as the ``NODES`` table.

Readers: tf.keras 2 HDF5 files (``.h5``: ``model_config`` and ``model_weights``,
read with h5py, no Keras needed) and Keras 3 ``.keras`` archives (read with Keras).
Activations: ``sigmoid`` → ``logistic``, ``linear``, ``tanh``, ``relu``.
"""

import json
import os

import numpy as np

from .errors import UlyssAnnError
from .interpolator import Interpolator, Parameter

__all__ = ["read_keras_layers", "interpolator_from_keras", "DERIVATIVE_STEPS"]

#: Derivative steps the authors' files use, by parameter name.
DERIVATIVE_STEPS = {"teff": 1.0, "logg": 0.005, "fe/h": 0.01}
_ACTIVATION = {"sigmoid": "logistic", "logistic": "logistic", "linear": "linear", "tanh": "tanh", "relu": "relu"}


def _dense_layers(config):
    layers = config["config"]["layers"]
    dense = [layer for layer in layers if layer["class_name"] == "Dense"]
    other = [layer["class_name"] for layer in layers if layer["class_name"] not in ("Dense", "InputLayer")]
    if other:
        raise UlyssAnnError(f"layers {', '.join(other)} cannot be written as a perceptron (Dense layers only)")
    return dense


def _activation(path, layer):
    name = layer["config"].get("activation", "linear")
    if name not in _ACTIVATION:
        raise UlyssAnnError(f"{path}: layer {layer['config']['name']} has activation '{name}'; "
                            f"the perceptron format knows {', '.join(sorted(set(_ACTIVATION.values())))}")
    return _ACTIVATION[name]


def _read_h5(path):
    import h5py

    with h5py.File(path, "r") as handle:
        if "model_config" not in handle.attrs or "model_weights" not in handle:
            raise UlyssAnnError(f"{path}: not a Keras HDF5 model (no model_config / model_weights)")
        raw = handle.attrs["model_config"]
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        weights, activations = [], []
        for layer in _dense_layers(config):
            name = layer["config"]["name"]
            group = handle["model_weights"][name]
            arrays = {}
            group.visititems(lambda key, item: arrays.__setitem__(key.split("/")[-1].split(":")[0], item[()])
                             if hasattr(item, "shape") else None)
            if "kernel" not in arrays or "bias" not in arrays:
                raise UlyssAnnError(f"{path}: layer {name} lacks a kernel or a bias")
            weights.append(np.vstack([arrays["bias"][None, :], arrays["kernel"]]).astype(np.float64))
            activations.append(_activation(path, layer))
    return weights, activations


def _read_keras3(path):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    model = keras.saving.load_model(path, compile=False)
    weights, activations = [], []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if not isinstance(layer, keras.layers.Dense):
            raise UlyssAnnError(f"{path}: layer {layer.name} ({type(layer).__name__}) is not Dense")
        kernel, bias = (np.asarray(w, dtype=np.float64) for w in layer.get_weights())
        weights.append(np.vstack([bias[None, :], kernel]))
        name = keras.activations.serialize(layer.activation)
        if isinstance(name, dict):  # some Keras versions wrap the name
            name = name.get("config", name.get("class_name"))
        activations.append(_activation(path, {"config": {"name": layer.name, "activation": name}}))
    return weights, activations


def read_keras_layers(path):
    """Weights (bias in row 0) and activations of the Dense layers of a saved Keras model."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UlyssAnnError(f"{path}: no such file")
    with open(path, "rb") as handle:
        magic = handle.read(8)
    if magic.startswith(b"\x89HDF"):
        return _read_h5(path)
    if magic.startswith(b"PK"):
        return _read_keras3(path)
    raise UlyssAnnError(f"{path}: neither a tf.keras HDF5 (.h5) nor a Keras 3 (.keras) model")


def interpolator_from_keras(path, grid):
    """The interpolator of a saved Keras network trained on ``grid`` (a SpectralGrid)."""
    weights, activations = read_keras_layers(path)
    if weights[0].shape[0] - 1 != len(grid.names):
        raise UlyssAnnError(f"{path}: the network takes {weights[0].shape[0] - 1} inputs, the grid has "
                            f"{len(grid.names)} parameters ({', '.join(grid.names)})")
    if weights[-1].shape[1] != grid.wavelength.npix:
        raise UlyssAnnError(f"{path}: the network gives {weights[-1].shape[1]} pixels, the grid has "
                            f"{grid.wavelength.npix}")
    parameters = []
    for i, (name, unit) in enumerate(zip(grid.names, grid.units)):
        column = grid.params[:, i]
        low, high = float(column.min()), float(column.max())
        step = DERIVATIVE_STEPS.get(name.lower(), (high - low) / 1000 or 1e-3)
        parameters.append(Parameter(name, unit, low, high, step, float(column.mean()), float(column.std())))
    meta = [card for card in grid.meta if card[0] in ("SURROGAT", "FWHM", "CONTDEG", "ALPHAFE")]
    meta += [("GRIDDESC", card[2][:68], "the training grid") for card in grid.meta if card[0] == "ORIGIN"][:1]
    meta.append(("ORIGIN", "ulyss_ann", "ulyss-ann export of " + os.path.basename(path)))
    return Interpolator(parameters, weights, activations, grid.wavelength, meta, nodes=grid.params)
