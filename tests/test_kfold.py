"""k-fold splits by star (scripts/crossval_miles): each node held out once, never in its fold's training set."""

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
