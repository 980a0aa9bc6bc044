"""The fast recipe on a grid: hold-out, early stopping, loss history, and the interpolator from NumPy.

:func:`train_fast` runs :func:`~ulyss_ann.training.fast_recipe.fit_varpro` on the
training nodes of a SpectralGrid (standardised as every network of the package,
:mod:`ulyss_ann.training.grid_network`) and scores the held-out nodes at every step.
The weights it returns are NumPy arrays: the interpolator is made from them directly,
and the network is also written as a Keras 3 archive (the ``.keras`` the command
line's ``-o`` names) by :func:`~ulyss_ann.training.keras_io.save_recipe_network` —
with h5py, never importing Keras.
"""

import csv

import numpy as np

from ulyss_ann.training.fast_recipe import fit_varpro, predict
from ulyss_ann.training.grid_network import TrainingRecord, holdout_split, interpolator_from_weights, standardise
from ulyss_ann.training.keras_io import save_recipe_network
from ulyss_ann.training.outlier_stars import CLIP_STARS, TRIM

__all__ = ["train_fast", "validation_split"]


def validation_split(train_idx, validation, seed):
    """(fit, validation) indices: a seeded ``validation`` fraction of the training nodes (none for 0)."""
    if not validation:
        return train_idx, train_idx[:0]
    order = np.random.default_rng([seed, 1]).permutation(train_idx)
    n_val = int(round(validation * len(order)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def train_fast(grid, output, hidden, seed, holdout, time_limit, target_mse, validation, patience, progress,
               preset=None, grid_file=None, clip_stars=CLIP_STARS, max_steps=None, trim=TRIM):
    """Train with the fast recipe; write ``<output>.loss.csv`` and the network ``output`` (.keras).

    The hold-out is scored at every step, never fitted nor used to stop. ``clip_stars``:
    robust training, outlier training stars excluded (:func:`fit_varpro`; None or 0: off);
    early stopping scores the validation stars without their worst ``trim`` fraction (the
    ``validation_mse`` of the history and the loss CSV is that score);
    ``max_steps``: at most that many LM steps. Returns ``(history, interpolator)``: the
    loss history as a dict of arrays (with ``kept``, the index of the step whose weights
    are kept, when a validation set stops the run; ``excluded``, the grid rows of the
    training stars excluded at the kept step) and the
    :class:`~ulyss_ann.model.interpolator.Interpolator` of the kept weights.
    """
    from ulyss_ann.spectra.progress import progress_bar

    x = standardise(grid.params)
    train_idx, test_idx = holdout_split(len(x), holdout, seed)
    fit_idx, val_idx = validation_split(train_idx, validation, seed)
    history = {"epoch": [], "train_mse": [], "validation_mse": [], "holdout_mse": [], "seconds": [],
               "n_excluded": []}
    report = {"excluded": ()}
    bar = progress_bar(total=round(time_limit), unit="s", desc="training (fast)", enabled=progress,
                       bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s {postfix}")

    def on_step(seconds, mse, weights, val_mse):
        test_mse = float("nan")
        if test_idx.size:
            test_mse = float(np.mean((predict(weights, x[test_idx]) - grid.flux[test_idx]) ** 2))
        for key, value in zip(history, (len(history["epoch"]) + 1, mse, val_mse, test_mse, seconds,
                                        len(report["excluded"]))):
            history[key].append(value)
        bar.update(min(seconds, time_limit) - bar.n)
        bar.set_postfix(mse=f"{mse:.3g}", validation=f"{val_mse:.3g}", holdout=f"{test_mse:.3g}")

    weights = fit_varpro(x[fit_idx], grid.flux[fit_idx], hidden, seed=seed, time_limit=time_limit,
                         target_mse=target_mse, on_step=on_step, patience=patience,
                         validation=(x[val_idx], grid.flux[val_idx]) if val_idx.size else None,
                         clip_stars=clip_stars, trim=trim, report=report,
                         **({"max_iter": max_steps} if max_steps else {}))
    bar.close()
    with open(output + ".loss.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(list(history))
        # plain Python numbers: NumPy 2 writes a numpy scalar's repr as np.float64(…), which no reader parses
        writer.writerows(zip(*([repr(v.item() if hasattr(v, "item") else v) for v in column]
                               for column in history.values())))
    save_recipe_network(output, weights, seed)
    history = {k: np.array(v) for k, v in history.items()}
    kept = len(history["epoch"]) - 1
    if val_idx.size:  # the kept weights are those of the best validation step: report that step
        kept = history["kept"] = int(np.nanargmin(history["validation_mse"]))
    history["excluded"] = fit_idx[report["excluded"]]   # the kept step's, as grid rows
    record = TrainingRecord("fast", preset or "custom", seed, int(history["epoch"][kept]),
                            *(float(history[k][kept]) for k in ("train_mse", "validation_mse", "holdout_mse")),
                            grid_file=grid_file, excluded=len(history["excluded"]) if clip_stars else None)
    activations = ["logistic"] * (len(weights) - 1) + ["linear"]
    return history, interpolator_from_weights(weights, activations, grid, source=output, training=record)
