"""The fast recipe on a grid: hold-out, early stopping, loss history, and the interpolator from NumPy.

:func:`train_fast` runs :func:`~ulyss_ann.training.fast_recipe.fit_varpro` on the
training nodes of a SpectralGrid (standardised as every network of the package,
:mod:`ulyss_ann.training.grid_network`) and scores the held-out nodes at every step.
The weights it returns are NumPy arrays: the interpolator is made from them directly,
and the network is also written as a Keras 3 archive (the ``.keras`` the command
line's ``-o`` names) by :func:`~ulyss_ann.training.keras_io.save_recipe_network` —
with h5py, never importing Keras. :class:`FastRecipe` is the recipe ``fast`` of
:func:`ulyss_ann.training.train.train` and of ``ulyss-ann train --recipe fast``.
"""

import csv

import numpy as np

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.training.grid_network import TrainingRecord, holdout_split, interpolator_from_weights, standardise
from ulyss_ann.training.keras_io import save_recipe_network
from ulyss_ann.training.outlier_stars import CLIP_STARS, TRIM
from ulyss_ann.training.recipe import Recipe

__all__ = ["FastRecipe", "train_fast", "validation_split"]


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
    # here, not at the top: the command line reads FastRecipe's options from this module, and
    # scipy.linalg costs every command its import
    from ulyss_ann.training.fast_recipe import fit_varpro, predict

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


class FastRecipe(Recipe):
    """The fast recipe: VarPro + Levenberg–Marquardt (:func:`train_fast`); the preset gives the architecture only.

    Runs for ``time_limit`` seconds, or until the training MSE reaches ``target_mse``, or
    ``max_steps`` steps; a ``validation`` fraction of the training nodes stops it early
    (``patience`` steps without a better score, the mean without the worst
    ``validation_trim`` fraction; 0 turns it off); ``clip_stars``: robust training. The loss
    CSV has one row per accepted step, ``epoch`` counting steps.
    """

    name = "fast"
    description = "VarPro + Levenberg-Marquardt"
    defaults = {"time_limit": 120.0, "target_mse": None, "validation": 0.1, "patience": 20, "max_steps": None,
                "clip_stars": CLIP_STARS, "validation_trim": TRIM}
    step_name = "step"
    step_label = "Levenberg–Marquardt step"

    def add_options(self, group):
        group.add_argument("--time-limit", type=float, default=120.0, metavar="SECONDS",
                           help="fast recipe: seconds to train (120)")
        group.add_argument("--target-mse", type=float, help="fast recipe: stop at this training MSE")
        group.add_argument("--validation", type=float, default=0.1,
                           help="fast recipe: fraction of the training nodes kept for early stopping (0.1; 0 = off)")
        group.add_argument("--patience", type=int, default=20,
                           help="fast recipe: steps without a better validation MSE before stopping (20)")
        group.add_argument("--max-steps", type=int, metavar="N",
                           help="fast recipe: stop after N Levenberg-Marquardt steps (reproducible, unlike "
                                "--time-limit)")
        group.add_argument("--clip-stars", type=float, default=CLIP_STARS, metavar="SIGMA",
                           help="fast recipe: robust training; a training star whose MSE stands SIGMA robust "
                                "standard deviations above the rest and above its neighbours' is left out of the "
                                f"fit, and named (e.g. 3; default {CLIP_STARS:g} = off)")
        group.add_argument("--validation-trim", type=float, default=TRIM, metavar="FRACTION",
                           help="fast recipe: early stopping scores the validation stars without this fraction, "
                                f"the worst, so that 2-3 bad stars do not decide ({TRIM:g}; 0 = plain mean)")

    def check(self, output, options):
        super().check(output, options)
        if not 0 <= options["validation_trim"] < 1:
            raise UlyssAnnError(f"--validation-trim {options['validation_trim']}: expected a fraction in [0, 1)")
        if (options["clip_stars"] or 0) < 0 or (options["max_steps"] is not None and options["max_steps"] < 1):
            raise UlyssAnnError("--clip-stars must be >= 0 (0 = off) and --max-steps >= 1")

    def run(self, grid, output, settings, seed, holdout, progress, grid_file, want_interpolator, time_limit=120.0,
            target_mse=None, validation=0.1, patience=20, max_steps=None, clip_stars=CLIP_STARS,
            validation_trim=TRIM):
        # the interpolator comes from the NumPy weights at no cost: made whether asked for or not
        return train_fast(grid, output, settings["hidden"], seed, holdout, time_limit, target_mse, validation,
                          patience, progress, preset=settings["preset"], grid_file=grid_file,
                          clip_stars=clip_stars, max_steps=max_steps, trim=validation_trim)
