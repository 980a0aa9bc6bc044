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
  the training nodes as the ``NODES`` table.
"""

import os

import numpy as np

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.model.interpolator import Interpolator
from ulyss_ann.model.parameter import Parameter

__all__ = ["input_scaling", "standardise", "holdout_split", "interpolator_from_weights", "DERIVATIVE_STEPS"]

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


def interpolator_from_weights(weights, activations, grid, source):
    """The interpolator of a network trained on ``grid`` (a SpectralGrid).

    ``weights``: one ``(n_in + 1, n_out)`` array per layer, bias in row 0;
    ``activations``: their names (``logistic``, ``linear``…); ``source``: the network's
    file, named in messages and in the provenance card ``ORIGIN``.
    """
    if weights[0].shape[0] - 1 != len(grid.names):
        raise UlyssAnnError(f"{source}: the network takes {weights[0].shape[0] - 1} inputs, the grid has "
                            f"{len(grid.names)} parameters ({', '.join(grid.names)})")
    if weights[-1].shape[1] != grid.wavelength.npix:
        raise UlyssAnnError(f"{source}: the network gives {weights[-1].shape[1]} pixels, the grid has "
                            f"{grid.wavelength.npix}")
    parameters = []
    for name, unit, column, mean, std in zip(grid.names, grid.units, grid.params.T, *input_scaling(grid.params)):
        low, high = float(column.min()), float(column.max())
        step = DERIVATIVE_STEPS.get(name.lower(), (high - low) / 1000 or 1e-3)
        parameters.append(Parameter(name, unit, low, high, step, float(mean), float(std)))
    meta = [card for card in grid.meta if card[0] in ("SURROGAT", "FWHM", "CONTDEG", "ALPHAFE")]
    meta += [("GRIDDESC", card[2][:68], "the training grid") for card in grid.meta if card[0] == "ORIGIN"][:1]
    meta.append(("ORIGIN", "ulyss_ann", "ulyss-ann export of " + os.path.basename(os.fspath(source))))
    return Interpolator(parameters, weights, activations, grid.wavelength, meta, nodes=grid.params)
