"""The quality flags of a fit: derived from the numbers of a :class:`~ulyss_ann.fitting.result.FitResult`,
so alike for both engines, with the thresholds that decide them (each measured, as said at its value).

Kept apart from :mod:`~ulyss_ann.fitting.result` so that the result stays a container: what makes a
fit doubtful is decided here, in one place (the batch summary counts the same names).
"""

__all__ = ["quality_flags", "POOR_FIT", "FAR_FROM_NODES", "ERRORS_ESTIMATED", "LOW_COVERAGE", "LOW_COVERAGE_FLAG",
           "ERRORS_FALLBACK", "FLAT_VALLEY"]

#: ``poor-fit`` above this :attr:`FitResult.misfit`. Measured with the native engine: 40
#: simulated NGC 6397 spectra (S/N 20-200, made with trial 8, fitted with trial 7)
#: 0.76-1.15; the real MUSE star (S/N 380) 1.98; 573 MILES stars inside the bounds of the
#: bundled MILES network median 0.55, 99th percentile 4.2, 3 above 5 (two of them fits
#: 1250 and 2600 K off their catalogue Teff); 33 of the 34 MILES stars hotter than
#: 12 000 K, which it cannot model and fits at 4700-7400 K, above 5 (3.2-21).
POOR_FIT = 5.0
#: ``far-from-nodes`` above this :attr:`FitResult.node_distance` (see
#: :meth:`~ulyss_ann.model.interpolator.Interpolator.node_distance`).
FAR_FROM_NODES = 1.0
#: The flag of a spectrum fitted without σ (:attr:`FitResult.errors_estimated`).
ERRORS_ESTIMATED = "errors-estimated"
#: ``low-coverage`` below this :attr:`FitResult.coverage` (measured: docs/fitting.md, "Coverage").
LOW_COVERAGE = 0.7
LOW_COVERAGE_FLAG = "low-coverage"
#: The flag of a fit whose errors are MPFIT's although another method was asked for.
ERRORS_FALLBACK = "errors-fallback"
#: The flag of a fit whose χ² valley along a parameter is flat, ``flat-valley:<name>``: the thresholds and
#: their measurements are :data:`~ulyss_ann.fitting.valley.FLAT_DISTANCE`'s (checked with ``--errors mc|total``).
FLAT_VALLEY = "flat-valley"


def quality_flags(result, misfit=None):
    """Quality flags of ``result`` (a tuple of str), empty when nothing is wrong; ``misfit``: its
    :attr:`misfit` where the caller has it already (a batch row: computing it sorts the flux).

    * ``bound:<name>``: the parameter ended on a bound of the training grid (its
      status ``low``/``high``); the network's answer there is a limit, not a value.
    * ``sigma-floor``: the LOSVD width sits at ULySS's 0.3 px floor (no error on it).
    * ``one-guess-converged``: of several guesses only the best reached its minimum.
    * ``far-from-nodes``: :attr:`node_distance` > :data:`FAR_FROM_NODES` (1): the
      solution is farther from every training node than the nodes there are from their
      neighbours — a hole or beyond the edge of the grid, where the network extrapolates
      (only for interpolators that carry their nodes).
    * ``poor-fit``: :attr:`misfit` > :data:`POOR_FIT` (5): the residual is far above the
      noise, the star is one the network cannot model (outside its training coverage, a
      peculiar star, a bad spectrum), and its parameters are those of the least bad
      model, not the star's: MILES stars at 12-36 kK fitted with the 3000-9000 K MILES
      network land at 4700-7400 K, inside the grid, where no other flag sees them.
    * ``errors-estimated``: the spectrum had no σ (:attr:`errors_estimated`): an
      unweighted fit, its errors estimated from the residuals, χ² 0.
    * ``low-coverage``: :attr:`coverage` < :data:`LOW_COVERAGE` (0.7): the parameters
      rest on part of the lines and can be far from a full fit's (log g by a dex).
    * ``errors-fallback``: the errors asked for (``--errors mc``…) could not be had (too few
      refits converged): the row carries MPFIT's (its ``errors`` column says ``formal``).
    * ``flat-valley:<name>``: the χ² profile along the parameter stays within Δχ² 4 of the
      minimum more than 3 (scaled formal) errors away (:attr:`flat_valleys`, checked only with
      ``--errors mc|total``): a second minimum or a plateau, which the error does not show.
    """
    flags = [f"bound:{name}" for name, status in result.status.items() if status in ("low", "high")]
    if result.formal_e_sigma == 0 and result.sigma > 0:  # pegged: MPFIT's zero, whatever errors replace it
        flags.append("sigma-floor")
    if result.n_guess > 1 and result.n_converged == 1:
        flags.append("one-guess-converged")
    if result.node_distance is not None and result.node_distance > FAR_FROM_NODES:
        flags.append("far-from-nodes")
    if (result.misfit if misfit is None else misfit) > POOR_FIT:
        flags.append("poor-fit")
    if result.errors_estimated:
        flags.append(ERRORS_ESTIMATED)
    if result.coverage < LOW_COVERAGE:
        flags.append(LOW_COVERAGE_FLAG)
    if result.errors_fallback:
        flags.append(ERRORS_FALLBACK)
    flags += [f"{FLAT_VALLEY}:{name}" for name in (result.flat_valleys or ())]
    return tuple(flags)
