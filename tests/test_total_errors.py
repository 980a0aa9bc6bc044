"""``--errors total``: errors that grow with the interpolator's structured mismatch (ulyss_ann.fitting.error_model).

A spectrum of the bundled example network with a known structured mismatch added — its own
lines, with their depth modulated along the spectrum (as a network that makes some lines too
deep and others too shallow) — and little noise: MPFIT's errors see only the noise, ``total``
must see the mismatch too, grow in proportion to it, and be reproducible with a seed. The
bootstrap's part is checked without the constant floor (``without_floor``), which is checked alone.
"""

import warnings

import numpy as np
import pytest

import ulyss_ann
from ulyss_ann.fitting.error_model import (BLOCK_KMS, FLOOR, Total, block_pixels, sign_flipped_blocks,
                                           without_floor)
from ulyss_ann.fitting.resampling import ERROR_METHODS, robust_std
from ulyss_ann.model.wavelength import C_KMS

NAMES = ("Teff", "Logg", "Fe/H")
TRUTH = [5500.0, 4.0, -1.0]


@pytest.fixture(scope="module")
def star():
    interp = ulyss_ann.example_interpolator()
    wave = interp.wavelength.wavelength
    clean = interp.evaluate(TRUTH)
    lines = clean - np.convolve(clean, np.ones(41) / 41, mode="same")  # the lines, without the continuum
    mismatch = lines * np.sin(2 * np.pi * wave / 250.0)               # depths wrong by ±, over 250 Å
    sigma = 0.002 * np.median(clean)                                   # S/N 500
    noise = np.random.default_rng(0).standard_normal(wave.size) * sigma
    return wave, clean + noise, mismatch, np.full(wave.size, sigma)


def fit(star, amplitude, errors, seed=3):
    wave, flux, mismatch, sigma = star
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ulyss_ann.fit_spectrum((wave, flux + amplitude * mismatch, sigma), model="example", engine="native",
                                      errors=errors, nsimul=20, seed=seed, mdegree=10)


def test_total_is_registered():
    assert ERROR_METHODS["total"] is Total and Total.refits


def test_total_sees_the_mismatch_that_formal_does_not(star):
    formal, total = fit(star, 0.1, "formal"), fit(star, 0.1, "total")
    assert total.error_method == "total" and formal.error_method == "formal"
    assert total.params == formal.params  # the errors change, never the solution
    bootstrap = without_floor(total.errors)
    for name in NAMES:
        # measured: 5.3x, 5.1x, 4.6x (Teff, log g, [Fe/H]); MPFIT's errors are those of the noise alone
        assert bootstrap[name] > 2 * formal.errors[name], name
        assert total.formal_errors[name] == pytest.approx(formal.errors[name])


def test_total_grows_with_the_mismatch_and_formal_does_not(star):
    small, large = fit(star, 0.1, "total"), fit(star, 0.3, "total")
    small_bootstrap, large_bootstrap = without_floor(small.errors), without_floor(large.errors)
    for name in NAMES:
        # a mismatch 3x larger: bootstrap errors measured 2.9x, 3.3x, 3.3x larger; MPFIT's unchanged (1.00)
        assert 2.0 < large_bootstrap[name] / small_bootstrap[name] < 4.5, name
        assert large.formal_errors[name] / small.formal_errors[name] == pytest.approx(1.0, abs=0.1), name
        # and they cover the bias the mismatch causes, even without the floor (55 K, 0.17, 0.047 at
        # 0.3; bootstrap errors 44 K, 0.13, 0.047)
        assert abs(large.params[name] - TRUTH[NAMES.index(name)]) < 3 * large_bootstrap[name], name


def test_without_mismatch_total_is_the_noise(star):
    """A residual that is only white noise: the bootstrap's copies carry it and the added noise, so
    the bootstrap's part of ``total`` is √2 x MPFIT's (measured 0.87, 1.01, 1.07 of that), within
    the width of 20 refits' robust scatter (~30 %) both ways; the floor is added in quadrature, so
    ``total`` is never below it."""
    formal, total = fit(star, 0.0, "formal"), fit(star, 0.0, "total")
    bootstrap = without_floor(total.errors)
    for name in NAMES:
        expected = np.sqrt(2.0) * formal.errors[name]
        assert 0.6 < bootstrap[name] / expected < 1.6, name
        floor = FLOOR[name.lower()]
        assert total.errors[name] == pytest.approx(np.hypot(bootstrap[name], floor)) and total.errors[name] >= floor


def test_the_floor_is_added_in_quadrature_to_the_calibrated_parameters_only():
    values = np.random.default_rng(4).normal(0.0, 30.0, 200)
    errors = Total().errors(None, {"Teff": values, "Fe/H": values / 1000.0, "cz": values, "sigma": values})
    spread = robust_std(values)
    assert errors["Teff"] == pytest.approx(np.hypot(spread, FLOOR["teff"]))
    assert errors["Fe/H"] == pytest.approx(np.hypot(spread / 1000.0, FLOOR["fe/h"]))
    assert FLOOR["cz"] > 0 and errors["cz"] == pytest.approx(np.hypot(spread, FLOOR["cz"]))  # calibrated too
    assert errors["sigma"] == pytest.approx(spread)  # no floor where none was calibrated
    assert without_floor(errors) == pytest.approx({"Teff": spread, "Fe/H": spread / 1000.0, "cz": spread,
                                                   "sigma": spread})


def test_total_is_reproducible_with_a_seed(star):
    first, again, other = fit(star, 0.1, "total", seed=7), fit(star, 0.1, "total", seed=7), fit(star, 0.1, "total", 8)
    assert first.errors == again.errors and (first.e_cz, first.e_sigma) == (again.e_cz, again.e_sigma)
    assert first.errors != other.errors


def test_blocks_keep_the_residual_and_flip_it_whole():
    residual = np.random.default_rng(1).standard_normal(100)
    copies = sign_flipped_blocks(residual, 10, np.random.default_rng(2), 50)
    assert copies.shape == (50, 100)
    signs = copies / residual
    assert np.allclose(np.abs(signs), 1.0)
    # a sign changes only at a block's edge: at most 10 blocks (11 with the random phase) per copy
    assert np.all(np.count_nonzero(np.diff(signs, axis=1), axis=1) <= 10)
    assert np.any(signs < 0) and np.any(signs > 0)
    assert block_pixels(1.0 / C_KMS * 50.0) == round(BLOCK_KMS / 50.0)  # 50 km/s pixels
    assert block_pixels(1.0, block_kms=1.0) == 1  # never below one pixel


def test_a_fixed_parameter_keeps_no_error(star):
    """A fixed parameter is no measurement: ``total`` adds its calibrated floor to the refits' scatter
    of every parameter, which gave a fixed T_eff 42 K; it keeps MPFIT's 0 (the others are measured)."""
    wave, flux, mismatch, sigma = star
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = ulyss_ann.fit_spectrum((wave, flux + 0.1 * mismatch, sigma), model="example", engine="native",
                                        errors="total", nsimul=8, seed=3, mdegree=10, fixed={"Teff": 5500.0})
    assert result.status["Teff"] == "fixed" and result.error_method == "total"
    assert result.errors["Teff"] == 0.0 == result.formal_errors["Teff"]
    assert result.errors["Logg"] > 0.0 and result.errors["Fe/H"] > 0.0
