"""What a network trained on a SpectralGrid takes from the grid: its inputs and its interpolator file.

Both recipes and the import of Keras networks share these, so that a network is
evaluated with exactly the standardisation it was trained with:

* input scaling ``linscale``: ``x = (p - mean) / std`` with the mean and the
  (population) standard deviation of each parameter over the grid nodes — the
  standard scaling of the paper's recipe, ``I_PR_Bn`` / ``I_PR_Sn`` of the file;
* the hold-out: a seeded random choice of nodes kept out of training;
* the rest of an interpolator file besides the weights: bounds ``I_P_LBn`` /
  ``I_P_HBn`` = the grid's range; names and units from the grid; derivative steps
  ``I_P_STn``: 1 K for Teff, 0.005 dex for log g, 0.01 dex for [Fe/H] as in the
  authors' files, else a thousandth of the range; the wavelength WCS of the grid;
  the training nodes as the ``NODES`` table;
* provenance cards that say what the WEIGHTS are (:func:`provenance_cards`): trained here,
  with their recipe, seed and MSEs, or read from a Keras file made elsewhere — the grid
  then gives the scaling only, and its ``SURROGAT`` is not the network's.
"""

import os
from dataclasses import dataclass

import numpy as np

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.model.interpolator import Interpolator
from ulyss_ann.model.parameter import Parameter

__all__ = ["input_scaling", "standardise", "holdout_split", "kfold_split", "interpolator_from_weights",
           "provenance_cards", "TrainingRecord", "DERIVATIVE_STEPS", "SPECTRA_CARDS",
           "check_fold_nodes", "grid_parameters"]

#: Derivative steps the authors' files use, by parameter name.
DERIVATIVE_STEPS = {"teff": 1.0, "logg": 0.005, "fe/h": 0.01}


def input_scaling(params):
    """(mean, std): arrays of the mean and population standard deviation of each parameter (column)."""
    params = np.asarray(params, dtype=np.float64)
    return params.mean(0), params.std(0)


def standardise(params, scaling=None):
    """The network's inputs ``(params - mean) / std``; ``scaling`` defaults to :func:`input_scaling` of ``params``."""
    params = np.asarray(params, dtype=np.float64)
    mean, std = input_scaling(params) if scaling is None else scaling
    return (params - mean) / std


def holdout_split(n, holdout, seed):
    """Indices of training and held-out nodes (a seeded random choice)."""
    order = np.random.default_rng(seed).permutation(n)
    n_out = int(round(holdout * n))
    return np.sort(order[n_out:]), np.sort(order[:n_out])


def check_fold_nodes(interp, held_out_params):
    """UlyssAnnError unless ``interp`` (a fold's model) lists training nodes (NODES) and none of them is one of
    its fold's held-out stars (``held_out_params``, n × npar): the cross-validation's bookkeeping."""
    if interp.nodes is None:
        raise UlyssAnnError(f"{interp.path or 'a fold model'}: no NODES table, so its training stars are unknown")
    nodes = {tuple(row) for row in np.asarray(interp.nodes, float).tolist()}
    leaked = [p for p in np.asarray(held_out_params, float).tolist() if tuple(p) in nodes]
    if leaked:
        raise UlyssAnnError(f"{interp.path or 'a fold model'} was trained on {len(leaked)} of its held-out stars "
                            f"(e.g. {tuple(leaked[0])})")


def kfold_split(n, k, seed):
    """``k`` folds of ``n`` nodes: a list of (training, held-out) index arrays, each node held out
    exactly once (a seeded permutation cut in ``k`` nearly equal parts), for cross-validation by star."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 2 <= k <= n:
        raise UlyssAnnError(f"k-fold: {k!r} folds of {n} nodes (a whole number, 2 to {n})")
    parts = np.array_split(np.random.default_rng(seed).permutation(n), int(k))
    return [(np.sort(np.concatenate([p for j, p in enumerate(parts) if j != i])), np.sort(part))
            for i, part in enumerate(parts)]


#: Cards of a grid that describe its spectra (resolution, continuum, [alpha/Fe]): they hold for any
#: network whose output pixels are the grid's, whoever trained it.
SPECTRA_CARDS = ("FWHM", "CONTDEG", "ALPHAFE")


@dataclass(frozen=True)
class TrainingRecord:
    """How the weights were trained here, on the grid they are exported with: HDU 0 cards.

    ``recipe`` (``fast`` or ``paper``), ``preset``, ``seed``; ``step``: the LM step or the
    epoch of the weights; the MSE of the weights on the nodes they were fitted to, on the
    validation nodes (fast recipe, early stopping) and on the held-out nodes (never seen);
    ``grid_file``: the grid's file; ``excluded``: the number of training stars excluded as
    outliers by robust training (None: not robust, no card). A NaN MSE (no validation or no hold-out) writes no card.
    """

    recipe: str
    preset: str
    seed: int
    step: int
    train_mse: float
    validation_mse: float = float("nan")
    holdout_mse: float = float("nan")
    grid_file: str = None
    excluded: int = None

    def cards(self):
        cards = [("RECIPE", self.recipe, "training recipe of these weights"),
                 ("PRESET", self.preset, "architecture preset (the paper's Table 2)"),
                 ("SEED", int(self.seed), "seed of weights, hold-out, validation split"),
                 ("STEP", int(self.step), "LM step (fast) or epoch (paper) kept")]
        for key, value, comment in (("TRAINMSE", self.train_mse, "MSE on the nodes fitted"),
                                    ("VALMSE", self.validation_mse, "MSE on the validation nodes (early stop)"),
                                    ("HOLDMSE", self.holdout_mse, "MSE on the held-out nodes (never fitted)")):
            if np.isfinite(value):  # FITS headers hold no NaN
                # 15 significant digits: what a FITS card holds exactly, so the file reads back equal
                cards.append((key, float(f"{value:.15g}"), comment))
        if self.excluded is not None:   # robust training: how many training stars were left out
            cards.append(("NEXCLUDE", int(self.excluded), "outlier training stars excluded (--clip-stars)"))
        if self.grid_file:
            cards.append(_text_card("TRAINGRD", os.path.basename(os.fspath(self.grid_file)), "the training grid"))
        return cards


def _text_card(key, text, comment):
    """A string card that fits one 80-character FITS card: the comment shortened first, then the text."""
    text = str(text)[:68]
    room = 80 - 10 - (max(len(text), 8) + 2) - 3    # 'KEY     = ' 'text' ' / '
    return key, text, comment[:max(room, 0)]


def provenance_cards(grid, source, training=None, grid_file=None):
    """HDU 0 provenance of a network of ``grid``'s pixels: what the weights are, then the grid's part.

    A network trained here (``training``, a :class:`TrainingRecord`) takes the grid's
    ``SURROGAT`` with its training record: its weights are made from those spectra. Weights
    read from a Keras file (``training`` None: ``export``) were made elsewhere, whatever grid
    gives their input scaling, bounds and wavelengths: the file names the network
    (``NETFILE``) and that grid (``SCALGRID``, and ``SCALSURR = T`` for a surrogate one),
    and never says ``SURROGAT`` — the authors' trial 8 exported with the surrogate grid's
    scaling is the authors' network, trained on the real Göttingen spectra.
    """
    network = os.path.basename(os.fspath(source))
    trained = training is not None
    meta = [card for card in grid.meta if card[0] in SPECTRA_CARDS + (("SURROGAT",) if trained else ())]
    meta += [_text_card("GRIDDESC", card[2], "the training grid" if trained else "grid of the input scaling")
             for card in grid.meta if card[0] == "ORIGIN"][:1]
    if trained:
        meta.append(("ORIGIN", "ulyss_ann", f"trained by ulyss-ann train ({training.recipe} recipe)"))
        meta.append(_text_card("NETFILE", network, "network file of these weights"))
        meta += training.cards()
        return meta
    meta.append(("ORIGIN", "ulyss_ann", "ulyss-ann export of " + network))
    meta.append(_text_card("NETFILE", network, "weights made elsewhere, read from here"))
    if grid_file:
        meta.append(_text_card("SCALGRID", os.path.basename(os.fspath(grid_file)),
                               "grid of the input scaling and wavelengths"))
    if grid.is_surrogate:
        meta.append(("SCALSURR", True, "the scaling grid is SURROGATE; the weights not"))
    return meta


def interpolator_from_weights(weights, activations, grid, source, training=None, grid_file=None):
    """The interpolator of a network whose output pixels are ``grid``'s (a SpectralGrid).

    ``weights``: one ``(n_in + 1, n_out)`` array per layer, bias in row 0;
    ``activations``: their names (``logistic``, ``linear``…); ``source``: the network's
    file, named in messages and in the provenance cards; ``training``: the
    :class:`TrainingRecord` when the weights were trained here on ``grid``, None for weights
    made elsewhere (:func:`provenance_cards` says what each writes); ``grid_file``: the
    grid's file, named in the cards of an export.
    """
    if weights[0].shape[0] - 1 != len(grid.names):
        raise UlyssAnnError(f"{source}: the network takes {weights[0].shape[0] - 1} inputs, the grid has "
                            f"{len(grid.names)} parameters ({', '.join(grid.names)})")
    if weights[-1].shape[1] != grid.wavelength.npix:
        raise UlyssAnnError(f"{source}: the network gives {weights[-1].shape[1]} pixels, the grid has "
                            f"{grid.wavelength.npix}")
    meta = provenance_cards(grid, source, training, grid_file)
    return Interpolator(grid_parameters(grid.names, grid.units, grid.params), weights, activations, grid.wavelength,
                        meta, nodes=grid.params)


def grid_parameters(names, units, params):
    """The Parameters of a model trained on nodes ``params`` (n × npar): bounds the nodes' range, input scaling
    their mean and standard deviation, derivative steps ULySS's (:data:`DERIVATIVE_STEPS`) or 1/1000 of the
    range."""
    parameters = []
    for name, unit, column, mean, std in zip(names, units, np.asarray(params, float).T, *input_scaling(params)):
        low, high = float(column.min()), float(column.max())
        step = DERIVATIVE_STEPS.get(name.lower(), (high - low) / 1000 or 1e-3)
        parameters.append(Parameter(name, unit, low, high, step, float(mean), float(std)))
    return parameters
