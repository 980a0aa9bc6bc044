"""Robust training on grids of observed stars: outlier stars and a robust validation score.

A library of observed stars (MILES) has stars whose spectrum disagrees with its neighbours
in (Teff, log g, [Fe/H]): a bad flux calibration, a wrong parameter, a binary. Fitted by
least squares, each pulls the network towards itself; scored by a mean, 2–3 of them decide
which step is kept (measured on MILES, 4000–6000 K: per-star MSE of 8–18e-3 against a
median of 6e-4). This is what pPXF or ULySS users expect from a fit to real data: clip.

* :func:`outlier_stars` flags the stars whose MSE stands ``clip`` robust standard deviations
  above the median, in log10 (per-star MSEs spread over decades; the log makes the rule
  scale-free, so it holds for any grid and any stage of the training);
* :func:`validation_score` scores a validation set by the mean of its per-star MSEs without
  the worst ``TRIM`` of them, so that the kept step is the one best for most stars.
"""

import numpy as np

__all__ = ["outlier_stars", "validation_score", "CLIP_STARS", "NEIGHBOURS", "TRIM", "MAD_TO_SIGMA"]

#: Scale of the median absolute deviation to the standard deviation of a normal distribution.
MAD_TO_SIGMA = 1.4826

#: Default of ``train --clip-stars``: off. Measured on MILES (docs/training.md) it changed the
#: held-out error by no more than the noise of 50 stars, and on smooth grids fitted by a small
#: network it also flags stars the network fits badly (model error), so it is opt-in.
CLIP_STARS = 0.0

#: Stars a star is compared with, its nearest in the standardised parameters.
NEIGHBOURS = 5

#: Fraction of the validation stars, the worst, left out of the early-stopping score
#: (``train --validation-trim``): chosen on MILES, where it kept steps with a 9–17 % lower held-out
#: MSE of the best 95 % of the stars than the plain mean did (docs/training.md).
TRIM = 0.1


def _excess(log_mse, clip):
    """Where ``log_mse`` stands ``clip`` robust standard deviations above its median."""
    centre = np.median(log_mse)
    spread = MAD_TO_SIGMA * np.median(np.abs(log_mse - centre))
    return log_mse > centre + clip * max(spread, 1e-3)   # a floor: identical MSEs flag nothing


def outlier_stars(star_mse, x, clip, neighbours=NEIGHBOURS):
    """Mask of the stars far worse than the rest AND than their neighbours (``clip`` None/0: none).

    ``star_mse``: each star's MSE; ``x``: their standardised parameters. A star is an outlier
    when its log10 MSE is ``clip`` robust standard deviations (1.4826 MAD) above the median
    of all stars, and its log10 ratio to the median MSE of its ``neighbours`` nearest stars in
    ``x`` is as far above the median ratio. The second test spares the stars a network fits
    worse because of where they lie (the edges of a grid, a fast-changing region: their
    neighbours are fitted as badly), which is model error, not a bad star: on a synthetic
    family without outliers the first test alone flagged 9 of 80 nodes, all at its two ends.
    """
    star_mse = np.asarray(star_mse, float)
    if not clip or star_mse.size <= neighbours:
        return np.zeros(star_mse.shape, bool)
    import scipy.spatial   # here: the command line reads CLIP_STARS from this module

    log = np.log10(np.maximum(star_mse, np.finfo(float).tiny))
    _, near = scipy.spatial.cKDTree(x).query(x, k=neighbours + 1)   # the star itself first
    local = log - np.median(log[near[:, 1:]], axis=1)
    return _excess(log, clip) & _excess(local, clip)


def validation_score(star_mse, trim=TRIM):
    """Mean per-star MSE without the worst ``trim`` fraction of the stars (at least one kept)."""
    ordered = np.sort(np.asarray(star_mse, float))
    return float(np.mean(ordered[:max(1, int(np.ceil((1 - trim) * len(ordered))))]))
