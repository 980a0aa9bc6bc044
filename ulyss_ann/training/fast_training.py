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
from ulyss_ann.training.grid_network import holdout_split, interpolator_from_weights, standardise
from ulyss_ann.training.keras_io import save_recipe_network

__all__ = ["train_fast", "validation_split"]


def validation_split(train_idx, validation, seed):
    """(fit, validation) indices: a seeded ``validation`` fraction of the training nodes (none for 0)."""
    if not validation:
        return train_idx, train_idx[:0]
    order = np.random.default_rng([seed, 1]).permutation(train_idx)
    n_val = int(round(validation * len(order)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def train_fast(grid, output, hidden, seed, holdout, time_limit, target_mse, validation, patience, progress):
    """Train with the fast recipe; write ``<output>.loss.csv`` and the network ``output`` (.keras).

    The hold-out is scored at every step, never fitted nor used to stop. Returns
    ``(history, interpolator)``: the loss history as a dict of arrays (with ``kept``, the
    index of the step whose weights are kept, when a validation set stops the run) and
    the :class:`~ulyss_ann.model.interpolator.Interpolator` of the kept weights.
    """
    from tqdm import tqdm

    x = standardise(grid.params)
    train_idx, test_idx = holdout_split(len(x), holdout, seed)
    fit_idx, val_idx = validation_split(train_idx, validation, seed)
    history = {"epoch": [], "train_mse": [], "validation_mse": [], "holdout_mse": [], "seconds": []}
    bar = tqdm(total=round(time_limit), unit="s", desc="training (fast)", disable=not progress,
               bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s {postfix}")

    def on_step(seconds, mse, weights, val_mse):
        test_mse = float("nan")
        if test_idx.size:
            test_mse = float(np.mean((predict(weights, x[test_idx]) - grid.flux[test_idx]) ** 2))
        for key, value in zip(history, (len(history["epoch"]) + 1, mse, val_mse, test_mse, seconds)):
            history[key].append(value)
        bar.update(min(seconds, time_limit) - bar.n)
        bar.set_postfix(mse=f"{mse:.3g}", validation=f"{val_mse:.3g}", holdout=f"{test_mse:.3g}")

    weights = fit_varpro(x[fit_idx], grid.flux[fit_idx], hidden, seed=seed, time_limit=time_limit,
                         target_mse=target_mse, on_step=on_step, patience=patience,
                         validation=(x[val_idx], grid.flux[val_idx]) if val_idx.size else None)
    bar.close()
    with open(output + ".loss.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(list(history))
        writer.writerows(zip(*([repr(v) for v in column] for column in history.values())))
    save_recipe_network(output, weights, seed)
    history = {k: np.array(v) for k, v in history.items()}
    if val_idx.size:  # the kept weights are those of the best validation step: report that step
        history["kept"] = int(np.nanargmin(history["validation_mse"]))
    activations = ["logistic"] * (len(weights) - 1) + ["linear"]
    return history, interpolator_from_weights(weights, activations, grid, source=output)
