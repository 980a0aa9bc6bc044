"""Keras files: networks read into interpolators, and the recipe's network written without Keras.

A saved network holds only its layers; the rest of an interpolator file comes from
the grid it was trained on (``SpectralGrid``), as
:mod:`ulyss_ann.training.grid_network` describes: input scaling, bounds, names,
units, derivative steps, the wavelength WCS and the training nodes.

Readers: tf.keras 2 HDF5 files (``.h5``: ``model_config`` and ``model_weights``,
read with h5py, no Keras needed) and Keras 3 ``.keras`` archives (read with Keras).
Activations: ``sigmoid`` → ``logistic``, ``linear``, ``tanh``, ``relu``.

Writer: :func:`save_recipe_network` writes the network of the paper's recipe
(:func:`recipe_layers`: logistic hidden layers, a linear output) as a Keras 3
``.keras`` archive — the ``config.json``, ``metadata.json`` and ``model.weights.h5``
that ``model.save`` writes for it, compiled with Adam and the MSE — with h5py only, so
that the fast recipe, whose weights are NumPy arrays, never imports Keras.
"""

import datetime
import importlib.metadata
import io
import json
import os
import zipfile

import numpy as np

from ulyss_ann.errors import UlyssAnnError, first_line
from ulyss_ann.training.grid_network import interpolator_from_weights

__all__ = ["read_keras_layers", "interpolator_from_keras", "recipe_layers", "save_recipe_network"]

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
    try:
        import h5py
    except ImportError:
        raise UlyssAnnError(f"{path}: reading a Keras .h5 network needs h5py "
                            "(pip install 'ulyss_ann[train]', or pip install h5py)") from None

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


def _check_keras3_layers(path):
    """UlyssAnnError unless the archive's config.json describes Dense (and Input) layers only.

    Read before Keras loads anything, and walked whole: a layer that is no perceptron's
    (a ``Lambda``, which holds Python code, or any custom layer) and any object the config
    would have Keras import from outside Keras (``{"module": "os", ...}``, the way of the
    safe-mode bypasses CVE-2025-1550 and CVE-2025-9906) are refused in one line, and never
    deserialised. A config.json that cannot be read is refused too; only a file that is no
    zip archive at all is left to Keras, which opens nothing else then.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        return  # not an archive: Keras (or its absence) says what is wrong, in one line
    try:
        with archive:
            config = json.loads(archive.read("config.json"))
        names = [layer["class_name"] for layer in config["config"]["layers"]]
    except (zipfile.BadZipFile, KeyError, TypeError, ValueError, OSError):
        raise UlyssAnnError(f"{path}: its config.json does not describe a Keras Sequential or functional model "
                            "of layers; not loaded") from None
    other = sorted({str(name) for name in names if name not in ("Dense", "InputLayer")})
    if other:
        raise UlyssAnnError(f"{path}: layers {', '.join(other)} cannot be written as a perceptron (Dense layers "
                            "only); not loaded")
    foreign = sorted(_foreign_modules(config))
    if foreign:
        raise UlyssAnnError(f"{path}: its config.json names objects from outside Keras ({', '.join(foreign[:3])}), "
                            "which loading would import; not loaded")


def _foreign_modules(node):
    """The ``module`` entries of a Keras config (at any depth) that are not Keras's own."""
    found = set()
    if isinstance(node, dict):
        module = node.get("module")
        if module is not None and not (isinstance(module, str) and (module == "keras" or module.startswith("keras."))):
            found.add(str(module))
        for value in node.values():
            found |= _foreign_modules(value)
    elif isinstance(node, list):
        for value in node:
            found |= _foreign_modules(value)
    return found


def _read_keras3(path):
    _check_keras3_layers(path)
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        raise UlyssAnnError(f"{path}: reading a Keras 3 .keras network needs keras "
                            "(pip install 'ulyss_ann[train]')") from None

    try:
        model = keras.saving.load_model(path, compile=False)  # safe_mode (the default): no code is run
    except Exception as exc:  # Keras raises ValueError, TypeError, KeyError… for a file it cannot load
        raise UlyssAnnError(f"{path}: Keras cannot load it ({first_line(exc, 120)})") from None
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


def interpolator_from_keras(path, grid, training=None, grid_file=None):
    """The interpolator of a saved Keras network with ``grid``'s scaling, bounds and pixels (a SpectralGrid).

    ``training``: the :class:`~ulyss_ann.training.grid_network.TrainingRecord` when the
    network was trained here on ``grid``; None (``export``) for weights made elsewhere, which
    never inherit the grid's ``SURROGAT`` (:func:`~ulyss_ann.training.grid_network.provenance_cards`).
    """
    return interpolator_from_weights(*read_keras_layers(path), grid, source=path, training=training,
                                     grid_file=grid_file)


def recipe_layers(hidden, npix, seed):
    """(name, width, Keras activation, initialiser seed) of each Dense layer of the recipe's network."""
    layers = [(f"hidden_{k + 1}", int(width), "sigmoid", seed + k) for k, width in enumerate(hidden)]
    return layers + [("predicted_spectrum", int(npix), "linear", seed + 99)]


def _keras_object(module, class_name, config):
    return {"module": module, "class_name": class_name, "config": config, "registered_name": None}


def save_recipe_network(path, weights, seed):
    """Write the recipe's network with ``weights`` (bias in row 0) as a Keras 3 archive, without Keras.

    Loading it (``keras.saving.load_model``) gives the model :func:`build_network
    <ulyss_ann.training.keras_recipe.build_network>` makes for ``seed``, compiled, with
    these weights in float64; a test checks it against Keras.
    """
    try:
        import h5py
    except ImportError:
        raise UlyssAnnError(f"{path}: writing a .keras network needs h5py (pip install 'ulyss_ann[train]', or pip install h5py)") from None
    npar = weights[0].shape[0] - 1
    layers = [_keras_object("keras.layers", "InputLayer", {"batch_shape": [None, npar], "dtype": "float64",
                                                            "name": "input_layer"})]
    weights_file = io.BytesIO()
    with h5py.File(weights_file, "w") as store:
        specs = recipe_layers([w.shape[1] for w in weights[:-1]], weights[-1].shape[1], seed)
        for k, ((name, width, activation, init_seed), w) in enumerate(zip(specs, weights)):
            init = _keras_object("keras.initializers", "GlorotNormal", {"seed": init_seed})
            layer = _keras_object("keras.layers", "Dense", {
                "name": name, "trainable": True, "dtype": "float64", "units": width, "activation": activation,
                "use_bias": True, "kernel_initializer": init,
                "bias_initializer": _keras_object("keras.initializers", "Zeros", {})})
            layers.append(dict(layer, build_config={"input_shape": [None, w.shape[0] - 1]}))
            group = store.create_group(f"layers/dense{f'_{k}' if k else ''}/vars")   # Keras's own paths
            group.attrs["name"] = name
            group["0"], group["1"] = w[1:], w[0]                                    # kernel, bias
        optimizer = store.create_group("optimizer/vars")
        optimizer.attrs["name"] = "adam"
        optimizer["0"], optimizer["1"] = np.int32(0), np.float64(1e-3)             # iterations, learning rate
        store.create_group("vars").attrs["name"] = "sequential"
    model = dict(_keras_object("keras", "Sequential", {"name": "sequential", "trainable": True, "dtype": "float64",
                                                       "layers": layers, "build_input_shape": [None, npar]}),
                 build_config={"input_shape": [None, npar]},
                 compile_config={"optimizer": _keras_object("keras.optimizers", "Adam",
                                                            {"name": "adam", "learning_rate": 1e-3}),
                                 "loss": "mse"})
    try:
        version = importlib.metadata.version("keras")
    except importlib.metadata.PackageNotFoundError:
        version = "3.0.0"
    saved = datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": version, "date_saved": saved}))
        archive.writestr("config.json", json.dumps(model))
        archive.writestr("model.weights.h5", weights_file.getvalue())
    return path
