"""The flat χ² valley: χ² along one parameter held at nodes (fitted by an engine already open), and the check.

A χ² profile holds one of the network's parameters at a row of nodes and fits everything else at
each, with the fit's own options (:mod:`~ulyss_ann.fitting.chimap.map` builds its maps and profiles on
:func:`fit_nodes`). A parameter is *flat* when its profile stays low far from the best value
(:func:`flat_parameters`): the error quoted, from the curvature at the minimum, then says nothing
of what the data allow (a second minimum, a plateau).

The check runs after every fit that asks for more than MPFIT's errors (``--errors mc``/``total``,
which pay for refits already; :meth:`~ulyss_ann.fitting.core.FitEngine.fit_many` calls
:func:`check_flat_valleys`): a profile of each free parameter over :func:`profile_nodes`, each
profile's nodes in one ``fit_many`` of the engine already open (the native engine fits them in
lock-step), from the best fit's values. ``formal`` never runs it (a profile costs 13-25 fits);
``flat_check=False`` skips it. Measured after ``--errors mc`` fits (trial 7, native, 2 shared
cores): 1.0-2.1 s a spectrum on the MUSE star and 5 MILES stars, with the least Δχ² beyond 3
errors as :data:`FLAT_DISTANCE` says (the same as from the usual guesses): none flagged. The GDL
engine: one uly_fit a node (the example spectrum: 16 s in all with ``mc``).

Kept apart from chimap.py, which opens engines (options → engines → core), so that core can
call the check without an import cycle.
"""

import time
from collections import namedtuple
from dataclasses import replace

import numpy as np

from ulyss_ann.errors import MachineryError
from ulyss_ann.fitting.resampling import Formal

__all__ = ["FLAT_DCHI2", "FLAT_DISTANCE", "PROFILE_INTERVALS", "Profile", "fit_nodes",
           "flat_parameters", "check_flat_valleys", "noise_scale", "profile_nodes", "scaled_error", "sum_of_squares"]

#: A profile node whose Δχ² (noise-scaled, see :mod:`~ulyss_ann.fitting.chimap.map`) stays below this …
FLAT_DCHI2 = 4.0
#: … farther than this many errors (formal, scaled as Δχ² is) from the best value makes the parameter flat.
#: Where a valley is the parabola the error describes, Δχ² > 9 there. Measured (native engine, trial 7,
#: profiles of Teff by 250 K, log g by 0.25 dex, [Fe/H] by 0.25 dex): the smallest Δχ² beyond 3 errors is
#: 11.0-21.4 (log g), 67-250 (Teff), 20-298 ([Fe/H]) on 5 MILES stars (m0014, m0196, m0306, m0541, m0675);
#: on the MUSE star (without / with --mask-ism) 13.9 / 12.1 (log g), 11.5 / 47.8 (Teff), 54.8 / 61.1 ([Fe/H]).
#: None is flat: the MUSE star's log g moving 3.68 -> 2.54 with --mask-ism is a change of the data (the
#: interstellar Na D), each valley a narrow parabola (Δχ² 60 and 161 at the other's minimum), not a flat
#: one. A simulated spectrum (example network, 6000 K, log g 0.5, [Fe/H] -2.5, S/N 100, Teff and [Fe/H]
#: fixed, 5800-6000 Å only) has a second minimum at log g 5.5, Δχ² 2.5 at 4.3 errors: flat
#: (tests/test_chimap.py). The lowest normal valley (11.0) stays 2.7 times above the threshold.
FLAT_DISTANCE = 3.0
#: The nodes of the check's profiles: the largest step of 1, 2, 2.5 or 5 × 10^k that cuts the parameter's
#: training range into at least this many intervals. On trial 7's bounds (and the example's): Teff by
#: 250 K, log g by 0.25 dex (the grids measured above), [Fe/H] by 0.2 dex (finer than the 0.25 measured:
#: 3 dex / 0.25 is 12 intervals only); 19 + 25 + 16 = 60 fits a spectrum with the three free.
PROFILE_INTERVALS = 14
_NICE = (5.0, 2.5, 2.0, 1.0)

#: A parameter's profile as the check keeps it: its nodes ``x``, their noise-scaled ``dchi2`` (NaN where
#: the node's fit failed) and the ``noise_scale`` (what a :class:`~ulyss_ann.fitting.chimap.map.ChiMap` has too).
Profile = namedtuple("Profile", "x dchi2 noise_scale")


def sum_of_squares(result):
    """Σr² of a fit over its fitted pixels, r = (data − fit)/σ (σ = 1 when the spectrum has none)."""
    residual = result.residual[result.mask]
    if result.error is not None:
        residual = residual / result.error[result.mask]
    return float(np.sum(residual ** 2))


def noise_scale(result, mdegree):
    """What Δχ² is divided by: the free fit's Σr²/dof when the spectrum has no errors, else its reduced
    χ² when above 1 (uly_fit's dof: free parameters, cz, σ, MDEGREE + 2)."""
    unknowns = 2 + sum(state != "fixed" for state in result.status.values()) + mdegree + 2
    per_dof = sum_of_squares(result) / max(result.n_pix - unknowns, 1)
    return float(per_dof if result.error is None else max(per_dof, 1.0))


def scaled_error(result, name, noise_scale, errors=None):
    """``result``'s error of ``name`` (or ``errors[name]``) scaled as Δχ² is: × √noise_scale for a spectrum with
    errors (MPFIT's formal error assumes a fit to the noise); without errors, MPFIT's are scaled so already."""
    error = (result.errors if errors is None else errors)[name]
    return float(error if result.error is None else error * np.sqrt(noise_scale))


def flat_parameters(profiles, result, dchi2=FLAT_DCHI2, distance=FLAT_DISTANCE, errors=None):
    """The parameters whose χ² valley is flat: a tuple of names (the fit is then
    :data:`~ulyss_ann.fitting.quality.FLAT_VALLEY`).

    A parameter is flat when its profile (``profiles[name]``, a :func:`~ulyss_ann.fitting.chimap.map.chi2_profile`
    of the spectrum ``result`` fitted, or a :class:`Profile`) has a node farther than ``distance``
    errors of ``result`` (or ``errors``: the check after a fit judges MPFIT's, as measured) from its
    best value where the noise-scaled Δχ² is below ``dchi2``: the quoted error is then no measure of
    what the data allow (a second minimum, or a plateau). The error is scaled as Δχ² is (× √noise_scale
    for a spectrum with errors; without, MPFIT's are scaled already), so that a parabola reaches Δχ² =
    ``distance``² there. A parameter without an error (fixed, or pegged at a bound) is not judged.
    :data:`FLAT_DISTANCE` gives the measurements.
    """
    errors = result.errors if errors is None else errors
    flat = []
    for name, profile in profiles.items():
        error = errors.get(name, 0.0)
        if not (np.isfinite(error) and error > 0):
            continue
        error = scaled_error(result, name, profile.noise_scale, errors)
        far = np.abs(np.asarray(profile.x) - result.params[name]) > distance * error
        with np.errstate(invalid="ignore"):  # a failed node (NaN) is no evidence of flatness
            if np.any(far & (np.asarray(profile.dchi2) < dchi2)):
                flat.append(name)
    return tuple(flat)


def node_numbers(outcomes, names, points):
    """Reduced χ², Σr² (NaN where a node's fit failed) and ``"name=value: why"`` of each failure."""
    chi2, sum_sq, failures = np.full(len(outcomes), np.nan), np.full(len(outcomes), np.nan), []
    for k, outcome in enumerate(outcomes):
        if isinstance(outcome, Exception):
            where = ", ".join(f"{n}={v:g}" for n, v in zip(names, points[k]))
            failures.append(f"{where}: {outcome}")
            continue
        chi2[k], sum_sq[k] = outcome.chi2, sum_of_squares(outcome)
    return chi2, sum_sq, failures


def fit_nodes(fitter, spectrum, base, names, points, config=None):
    """Fit ``spectrum`` with ``names`` held at each row of ``points`` (and ``base``'s fixed values), in one
    ``fit_many`` of the open engine ``fitter`` with ``config`` (default the engine's): :func:`node_numbers`
    of the fits."""
    nodes = [dict(base, **dict(zip(names, map(float, point)))) for point in points]
    return node_numbers(fitter.fit_many([spectrum] * len(nodes), nodes, config=config), names, points)


def profile_nodes(parameter):
    """The nodes of the check's profile of ``parameter`` (a network Parameter): a round step
    (:data:`PROFILE_INTERVALS`) on its multiples inside the training bounds."""
    width = float(parameter.high - parameter.low)
    magnitude = 10.0 ** np.floor(np.log10(width / PROFILE_INTERVALS))
    step = next(m * magnitude for m in _NICE if m * magnitude <= width / PROFILE_INTERVALS * (1 + 1e-9))
    first, last = np.ceil(parameter.low / step - 1e-9), np.floor(parameter.high / step + 1e-9)
    return np.round(np.arange(first, last + 1) * step, 10)


def _judged(result):
    """The parameters the check profiles: free, with a formal error (fixed or pegged ones are not judged)."""
    return [name for name, state in result.status.items()
            if state == "free" and np.isfinite(result.formal_errors[name]) and result.formal_errors[name] > 0]


def check_flat_valleys(engine, spectra, fixed, results, config=None):
    """Profile each free parameter of every FitResult in ``results`` and set its ``flat_valleys``.

    ``spectra`` and ``fixed`` are what ``engine.fit_many`` fitted (one each per result). A profile's
    nodes go to one ``fit_many`` of ``engine`` (the native engine: one lock-step block), each node
    from one guess, the best fit's values (as the refits start; the usual guesses would cost 2-6
    times more, in GDL 0.8 s a node), with MPFIT's errors (no refits, no check: nothing recurses) and
    nothing saved. A result whose nodes met a failure of the machinery (GDL died) becomes that error
    (its row ``failed:``, fitted again on ``--resume``), as its refits would; nodes that fail
    otherwise are left out of the check. ``config``: the FitConfig the results were fitted with
    (default the engine's); the nodes get one derived from it, passed to ``fit_many``, never swapped
    into the engine (which threads may share). Returns the results, in order.
    """
    interp, saved = engine.interp, config if config is not None else engine.config
    for index, result in enumerate(results):
        if isinstance(result, Exception):
            continue
        started, broken = time.perf_counter(), None
        base, profiles, scale = dict(fixed[index] or {}), {}, noise_scale(result, saved.mdegree)
        nodes_config = replace(saved, errors=Formal.name, save_fits=None,
                               guesses={name: [value] for name, value in result.params.items()})
        # a block per parameter: one of mixed fixed flags is slower (measured 0.96 s against 0.72)
        for name in _judged(result):
            values = profile_nodes(interp.parameters[interp.parameter_index(name)])
            nodes = [dict(base, **{name: float(v)}) for v in values]
            outcomes = engine.fit_many([spectra[index]] * len(nodes), nodes, config=nodes_config)
            broken = next((o for o in outcomes if isinstance(o, MachineryError)), None)
            if broken is not None:
                break
            _, sum_sq, _ = node_numbers(outcomes, [name], values[:, None])
            profiles[name] = Profile(values, (sum_sq - sum_of_squares(result)) / scale, scale)
        if broken is not None:
            results[index] = broken
            continue
        result.flat_valleys = flat_parameters(profiles, result, errors=result.formal_errors)
        result.time += time.perf_counter() - started
    return results
