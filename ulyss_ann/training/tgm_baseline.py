r"""ULySS's own interpolator as a baseline: the TGM polynomial fitted to a grid, pixel by pixel.

The interpolator ULySS users fit MILES stars with is TGM (Prugniel, Vauglin & Koleva 2011, A&A 531,
A165; Sharma, Prugniel & Singh 2016 for the cool stars): for each temperature regime (warm, hot, cold)
one polynomial in :math:`\tau = (\log_{10}T_\mathrm{eff} - 3.7617)/0.2`, :math:`\log g - 4.44` and
[Fe/H] per pixel, least-squares fitted to the library stars of that regime, the regimes blended
linearly in :math:`\log T_\mathrm{eff}` (the terms and the blending:
:mod:`ulyss_ann.model.input_maps`). :func:`fit_tgm` builds it from a
:class:`~ulyss_ann.spectra.grid.SpectralGrid` (the same normalised spectra a network is trained on)
and returns an :class:`~ulyss_ann.model.interpolator.Interpolator` with input map ``tgm``: its one
linear layer holds the 3 × 23 coefficients of each pixel. The native engine fits with it as with
any network (``fit_spectrum(star, model=tgm_file, engine="native")``), so a cross-validation scores
both by the same fits (``scripts/crossval_miles``).

Where this departs from ULySS's MILES TGM and why:

* **The spectra.** Fitted to the grid's spectra, each divided by its pseudo-continuum
  (:mod:`~ulyss_ann.spectra.miles`), as the networks are: ULySS fits flux-calibrated spectra and
  refits each star's multiplicative polynomial against the current interpolator, iterating. The fit
  of a star multiplies the model by a Legendre polynomial anyway (MDEGREE), so what differs is the
  continuum each side learns, not what the fit can match.
* **The regimes' stars.** Each polynomial is fitted to the stars where its weight is non-zero (warm
  4000-9000 K, hot ≥ 7000 K, cold ≤ 4550 K): the ranges ULySS evaluates it on. In a 3000-9000 K grid
  the hot polynomial sees only 7000-9000 K stars; TGM's goes to 50 000 K.
* **Outliers.** Stars whose RMS residual from their regime's polynomial stands ``clip`` robust standard
  deviations above the median are left out and the polynomial refitted (three rounds), as the TGM
  papers reject discrepant stars; how many is written in the header (``TGMREJ``). On MILES this leaves
  out about a fifth of the stars (140 of 693 in a fold), mostly the noisiest spectra (the RMS tracks
  S/N more than a wrong parameter); it helps TGM (cross-validated on 232 stars, FGK: 110 K and 0.25 dex
  in log g with it, 116 K and 0.31 without).
* **Sparse regimes.** Where a regime has few stars the 23 terms are solved by least squares with
  singular values below 1e-10 of the largest dropped (minimum norm), where ULySS's files zero some
  terms by hand.
"""

import numpy as np

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.model.input_maps import TERMS_PER_REGIME, TGM_REGIMES, TGMTerms, tgm_terms
from ulyss_ann.model.interpolator import Interpolator
from ulyss_ann.training.grid_network import SPECTRA_CARDS, grid_parameters

__all__ = ["fit_tgm", "regime_polynomial"]


def regime_polynomial(terms, flux, clip=3.0, rounds=3):
    """Least-squares coefficients (23, npix) of one regime and the stars kept (bool).

    ``terms`` (n, 23) the regime's terms of its stars (unweighted), ``flux`` (n, npix); a star whose RMS
    residual stands ``clip`` robust σ (1.4826 MAD) above the median is left out and the fit redone,
    ``rounds`` times at most (``clip`` 0: never).
    """
    keep = np.ones(len(flux), bool)
    for round_ in range(rounds + 1):
        coef = np.linalg.lstsq(terms[keep], flux[keep], rcond=1e-10)[0]
        if clip <= 0 or round_ == rounds:   # the stars kept are those this last fit used
            break
        rms = np.sqrt(np.mean((terms @ coef - flux) ** 2, axis=1))
        median = np.median(rms[keep])
        # a spread at rounding level (a grid that is a polynomial) makes no star an outlier
        spread = max(1.4826 * np.median(np.abs(rms[keep] - median)), 1e-6 * np.median(np.abs(flux)))
        new = rms <= median + clip * spread
        if np.array_equal(new, keep):
            break
        keep = new
    return coef, keep


def fit_tgm(grid, train=None, clip=3.0, source="tgm"):
    """ULySS's TGM polynomial fitted to a grid's spectra (the module's text says how and where it departs).

    Parameters
    ----------
    grid : SpectralGrid
        Parameters Teff [K], log g [dex], [Fe/H] [dex]; normalised spectra.
    train : array of int, optional
        The grid rows to fit (default: all), e.g. a cross-validation fold's.
    clip : float
        Outlier stars' rejection, in robust σ of the stars' RMS residual (0: none).
    source : str
        Named in the header's ORIGIN comment.

    Returns
    -------
    Interpolator
        Input map ``tgm``, one linear layer (1 + 69, npix) whose bias row is zero; NODES: the stars used.
    """
    problem = TGMTerms.order_problem(grid.names, grid.units)
    if problem:
        raise UlyssAnnError(f"the TGM polynomial: {problem}")
    rows = np.arange(len(grid.params)) if train is None else np.asarray(train, int)
    params, flux = grid.params[rows], grid.flux[rows]
    blended = tgm_terms(params)
    layer = np.zeros((1 + 3 * TERMS_PER_REGIME, flux.shape[1]))
    rejected, cards = 0, []
    for r, (regime, _) in enumerate(TGM_REGIMES):
        block = slice(r * TERMS_PER_REGIME, (r + 1) * TERMS_PER_REGIME)
        weight = blended[:, block][:, 0]            # the regime's weight (its first term is 1 × weight)
        members = np.flatnonzero(weight > 0)
        if members.size == 0:
            continue                                 # a regime outside the grid: zero coefficients
        unweighted = blended[members, block] / weight[members, None]
        coef, keep = regime_polynomial(unweighted, flux[members], clip)
        layer[1 + block.start:1 + block.stop] = coef
        rejected += int(np.sum(~keep))
        cards.append((f"TGMN{regime[:4].upper()}", int(keep.sum()), f"stars fitting the {regime} polynomial"))
    meta = [card for card in grid.meta if card[0] in SPECTRA_CARDS]
    meta += [("ORIGIN", "ulyss_ann", f"TGM polynomial, Prugniel+2011 form: {source}"[:47]),
             ("TGMCLIP", float(clip), "outlier stars rejected at this robust sigma"),
             ("TGMREJ", rejected, "stars rejected as outliers")] + cards
    return Interpolator(grid_parameters(grid.names, grid.units, params), (layer,), ("linear",), grid.wavelength, meta,
                        nodes=params, input_map="tgm")
