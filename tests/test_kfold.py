"""k-fold splits by star (scripts/crossval_miles): each node held out once, never in its fold's training set."""

import dataclasses

import numpy as np
import pytest

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.training.grid_network import kfold_split


@pytest.mark.parametrize("n, k", [(771, 10), (23, 4), (5, 5)])
def test_every_node_is_held_out_exactly_once_and_never_trained_on(n, k):
    folds = kfold_split(n, k, seed=0)
    assert len(folds) == k
    held = np.concatenate([test for _, test in folds])
    assert np.array_equal(np.sort(held), np.arange(n))                       # once each
    for train, test in folds:
        assert not np.intersect1d(train, test).size                          # not in its fold's training
        assert np.array_equal(np.union1d(train, test), np.arange(n))         # the rest all trained on
        assert abs(len(test) - n / k) < 1                                    # nearly equal folds


def test_the_split_is_seeded():
    a, b, c = (kfold_split(100, 10, seed) for seed in (3, 3, 4))
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(a, b))
    assert not all(np.array_equal(x[1], y[1]) for x, y in zip(a, c))


@pytest.mark.parametrize("k", [1, 0, 12, 2.5, True])
def test_impossible_fold_counts_are_refused(k):
    with pytest.raises(UlyssAnnError, match="folds"):
        kfold_split(11, k, seed=0)


def test_a_fold_model_trained_on_a_held_out_star_is_refused():
    """The check scripts/crossval_miles runs on every fold's model (its NODES against the fold's held-out stars)."""
    from ulyss_ann import example_interpolator
    from ulyss_ann.spectra.grid import SpectralGrid
    from ulyss_ann.training.grid_network import check_fold_nodes
    from ulyss_ann.training.tgm_baseline import fit_tgm

    rng = np.random.default_rng(0)
    nodes = np.column_stack([rng.uniform(3600, 7900, 120).round(), rng.uniform(0.5, 5, 120).round(2),
                             rng.uniform(-2.5, 0, 120).round(2)])
    grid = SpectralGrid.from_network(example_interpolator(), nodes, ())
    for train, test in kfold_split(len(nodes), 4, seed=0):
        model = fit_tgm(grid, train, clip=0)
        check_fold_nodes(model, nodes[test])                      # its own fold: none of its stars
        with pytest.raises(UlyssAnnError, match="trained on 1 of its held-out stars"):
            check_fold_nodes(model, np.vstack([nodes[test], nodes[train[:1]]]))
    with pytest.raises(UlyssAnnError, match="no NODES"):
        check_fold_nodes(dataclasses.replace(model, nodes=None), nodes[test])
