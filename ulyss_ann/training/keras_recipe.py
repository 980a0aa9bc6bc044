"""Training a Keras network on a SpectralGrid with the paper's recipe (Kumar, Prugniel & Singh §4.1).

The recipe: architecture ``[npar, hidden…, npix]``, logistic (sigmoid) hidden layers, a
linear output layer, inputs standardised with the grid's mean and standard
deviation, Glorot-normal initial weights and zero biases, Adam with learning rate
1e-3, batches of 32, mean squared error — all in float64, as the authors' networks.
Presets ``trial0`` … ``trial8`` are Table 2's architectures and epoch budgets; trials
0–4 stop early when the loss has not decreased for 50 epochs.

Beyond the paper: a hold-out of grid nodes (10 % by default) whose MSE is reported
beside the training MSE (the paper's lowest-MSE network, trial 6, overfit), a
progress bar, a loss CSV and figure (Fig. 2 style), checkpoints after every epoch and
``resume`` that continues exactly (the batches of epoch e are shuffled with a
generator seeded by (seed, e), and Adam's state is in the checkpoint).

Backend: Keras 3 on torch. jax needs NumPy 2, which python3-gdl refuses; torch 2.13
(CPU build) installs beside NumPy 1.26 and runs on a GPU when one is present.

The recipe is :class:`PaperRecipe` (``recipe="paper"``), registered in
:mod:`ulyss_ann.training.train`, whose :func:`~ulyss_ann.training.train.train` runs it.
The fast recipe (``recipe="fast"``, :mod:`ulyss_ann.training.fast_training`): variable
projection + Levenberg–Marquardt in NumPy, the output layer solved exactly at every
step. It reaches the paper's trial-7 MSE in well under a minute on a 2-core CPU where
Adam at batch 32 needs 1e5 epochs (``scripts/bench_train`` measures both).

Both recipes standardise their inputs as the exported interpolator does
(:mod:`ulyss_ann.training.grid_network`). The loss figure is made with matplotlib's
object API (:func:`plot_loss` returns it, for every recipe) and saved with
:func:`ulyss_ann.figures.save_figure`.
"""

import csv
import json
import os
import time

import numpy as np

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.figures import new_figure
from ulyss_ann.training.grid_network import TrainingRecord, holdout_split, standardise
from ulyss_ann.training.keras_io import recipe_layers
from ulyss_ann.training.recipe import Recipe

__all__ = ["PRESETS", "PaperRecipe", "import_keras", "build_network", "plot_loss"]

#: Table 2 of the paper: hidden layers, epoch budget, early stopping.
PRESETS = {
    "trial0": dict(hidden=(32, 128, 512), epochs=100000, patience=50),
    "trial1": dict(hidden=(32, 128, 512), epochs=100000, patience=50),
    "trial2": dict(hidden=(32, 128, 512, 1024), epochs=100000, patience=50),
    "trial3": dict(hidden=(64, 256, 1024), epochs=100000, patience=50),
    "trial4": dict(hidden=(64, 256, 1024), epochs=100000, patience=50),
    "trial5": dict(hidden=(64, 256, 1024), epochs=1000, patience=None),
    "trial6": dict(hidden=(32, 128, 512), epochs=100000, patience=None),
    "trial7": dict(hidden=(32, 64), epochs=100000, patience=None),
    "trial8": dict(hidden=(32, 64), epochs=1000000, patience=None),
}


def import_keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError as exc:
        raise UlyssAnnError(f"training needs Keras 3 and torch ({exc}); run ./scripts/setup") from None
    keras.config.set_floatx("float64")
    return keras


def build_network(keras, npar, hidden, npix, seed):
    init = keras.initializers.GlorotNormal
    layers = [keras.Input((npar,), dtype="float64")]
    for name, width, activation, init_seed in recipe_layers(hidden, npix, seed):
        layers.append(keras.layers.Dense(width, activation=activation, kernel_initializer=init(seed=init_seed),
                                         dtype="float64", name=name))
    model = keras.Sequential(layers)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), loss="mse")
    return model


class PaperRecipe(Recipe):
    """The paper's recipe: Adam (lr 1e-3), batches of ``batch_size`` (32), the preset's epochs, on Keras.

    Writes beside the network ``<output>.loss.csv`` (epoch, train MSE, hold-out MSE,
    seconds) and the checkpoint state ``<output>.state.json``; ``resume`` continues from
    it exactly. Keras is imported when it runs, not before.
    """

    name = "paper"
    description = "Adam, batch 32 (Table 2)"
    defaults = {"epochs": None, "batch_size": 32, "resume": False}

    def add_options(self, group):
        group.add_argument("--epochs", type=int, help="epoch budget (overrides the preset's)")
        group.add_argument("--resume", action="store_true", help="continue from the last checkpoint (paper recipe)")
        group.add_argument("--batch-size", type=int, default=32, metavar="N",
                           help="paper recipe: Adam's batch size (32, the paper's)")

    def check(self, output, options):
        super().check(output, options)
        if options["batch_size"] < 1:
            raise UlyssAnnError(f"--batch-size {options['batch_size']}: expected a number of nodes >= 1")

    def loss_title(self, preset):
        return preset

    def run(self, grid, output, settings, seed, holdout, progress, grid_file, want_interpolator, epochs=None,
            batch_size=32, resume=False):
        if epochs:
            settings = dict(settings, epochs=int(epochs))
        history = _train_paper(grid, output, settings, seed, holdout, batch_size, resume, progress)
        if not want_interpolator:
            return history, None
        from ulyss_ann.training.keras_io import interpolator_from_keras

        # the network is in its Keras checkpoint
        last = {k: history[k][-1] if len(history[k]) else float("nan") for k in history}
        record = TrainingRecord("paper", settings["preset"], seed,
                                int(last["epoch"]) if len(history["epoch"]) else 0, last["train_mse"],
                                holdout_mse=last["holdout_mse"], grid_file=grid_file)
        return history, interpolator_from_keras(output, grid, training=record)


def _train_paper(grid, output, settings, seed, holdout, batch_size, resume, progress):
    """Adam epochs from scratch or from the checkpoint ``output``; returns the loss history."""
    keras = import_keras()
    state_file, loss_file = output + ".state.json", output + ".loss.csv"
    x = standardise(grid.params)
    train_idx, test_idx = holdout_split(len(x), holdout, seed)
    start_epoch, best, stale = 0, np.inf, 0
    if resume:
        if not (os.path.exists(output) and os.path.exists(state_file)):
            raise UlyssAnnError(f"{output}: nothing to resume (no checkpoint {state_file})")
        state = json.load(open(state_file))
        if state["seed"] != seed or state["holdout"] != holdout or tuple(state["hidden"]) != settings["hidden"]:
            raise UlyssAnnError(f"{state_file}: trained with other settings ({state}); resume with the same ones")
        model = keras.saving.load_model(output)
        start_epoch, best, stale = state["epoch"], state["best"], state["stale"]
    else:
        keras.utils.set_random_seed(seed)
        model = build_network(keras, x.shape[1], settings["hidden"], grid.flux.shape[1], seed)
        with open(loss_file, "w", newline="") as handle:
            csv.writer(handle).writerow(["epoch", "train_mse", "holdout_mse", "seconds"])
    return _fit_epochs(keras, model, x, grid.flux, train_idx, test_idx, start_epoch, settings, seed,
                       batch_size, best, stale, output, state_file, loss_file, holdout, progress)


def _fit_epochs(keras, model, x, y, train_idx, test_idx, start, settings, seed, batch_size, best, stale,
                output, state_file, loss_file, holdout, progress):
    from ulyss_ann.spectra.progress import progress_bar

    bar = progress_bar(total=settings["epochs"], initial=start, unit="epoch", desc="training", enabled=progress)
    history = {"epoch": [], "train_mse": [], "holdout_mse": []}
    for epoch in range(start, settings["epochs"]):
        began = time.perf_counter()
        order = train_idx[np.random.default_rng([seed, epoch]).permutation(train_idx.size)]
        loss = model.fit(x[order], y[order], batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
        train_mse = float(loss.history["loss"][-1])
        test_mse = (float(np.mean((model.predict(x[test_idx], verbose=0) - y[test_idx]) ** 2))
                    if test_idx.size else float("nan"))
        seconds = time.perf_counter() - began
        with open(loss_file, "a", newline="") as handle:
            csv.writer(handle).writerow([epoch + 1, repr(train_mse), repr(test_mse), f"{seconds:.3f}"])
        for key, value in (("epoch", epoch + 1), ("train_mse", train_mse), ("holdout_mse", test_mse)):
            history[key].append(value)
        improved = train_mse < best
        best, stale = (train_mse, 0) if improved else (best, stale + 1)
        model.save(output)  # the checkpoint: weights and Adam's state
        with open(state_file, "w") as handle:
            json.dump({"epoch": epoch + 1, "best": best, "stale": stale, "seed": seed, "holdout": holdout,
                       "hidden": list(settings["hidden"])}, handle)
        bar.set_postfix(mse=f"{train_mse:.3g}", holdout=f"{test_mse:.3g}", refresh=False)
        bar.update(1)
        if settings["patience"] is not None and stale >= settings["patience"]:
            break  # early stopping, as the paper's trials 0-4
    bar.close()
    return {k: np.array(v) for k, v in history.items()}


def plot_loss(loss_file, title, surrogate=False, xlabel="epoch", figure=None):
    """The loss curves of a training run (Fig. 2 style) from its loss CSV: a Figure, or None if it has no rows.

    Training and held-out MSE against ``xlabel`` on log axes, and for the fast recipe the
    validation MSE with the step whose weights are kept. ``figure``: a Figure to draw into
    (cleared) instead of a new one. Save it with :func:`ulyss_ann.figures.save_figure`.
    """
    with open(loss_file, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return None
    epoch = [int(r["epoch"]) for r in rows]
    fig = new_figure(figure, figsize=(7, 4.5))
    ax = fig.add_subplot()
    ax.plot(epoch, [float(r["train_mse"]) for r in rows], label="training nodes")
    if "validation_mse" in rows[0] and any(np.isfinite(float(r["validation_mse"])) for r in rows):
        val = np.array([float(r["validation_mse"]) for r in rows])
        ax.plot(epoch, val, label="validation nodes (early stopping)")
        ax.axvline(epoch[int(np.nanargmin(val))], color="0.5", ls=":", lw=1, label="weights kept")
    ax.plot(epoch, [float(r["holdout_mse"]) for r in rows], label="held-out nodes")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("MSE (normalised flux²)")
    ax.set_title(title + (" — surrogate grid" if surrogate else ""), fontsize=10)
    ax.legend()
    return fig
