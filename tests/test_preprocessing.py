"""The paper's preprocessing on synthetic spectra with known answers."""

import numpy as np
import pytest

from ulyss_ann.spectra.preprocessing import (FWHM_TO_SIGMA, bin_edges, degrade_constant, degrade_to_constant_fwhm,
                                     gsl_preprocess, gsl_wavelengths, normalise_median, rebin_flux)


def gaussian_line(wave, centre, fwhm, depth=0.5):
    return 1.0 - depth * np.exp(-0.5 * ((wave - centre) / (fwhm * FWHM_TO_SIGMA)) ** 2)


def measured_fwhm(wave, flux):
    """FWHM from the second moment of the line's absorption (exact for a Gaussian)."""
    a = 1.0 - flux
    centre = np.sum(wave * a) / np.sum(a)
    return np.sqrt(np.sum(a * (wave - centre) ** 2) / np.sum(a)) / FWHM_TO_SIGMA


def test_constant_kernel_gives_2A_and_keeps_the_line_area():
    wave = 5000 + 0.02 * np.arange(20000)
    flux = gaussian_line(wave, 5200.0, 0.6)
    out = degrade_constant(flux, 0.02, 0.6, 2.0)
    assert measured_fwhm(wave, out) == pytest.approx(2.0, rel=1e-4)
    assert np.sum(1 - out) == pytest.approx(np.sum(1 - flux), rel=1e-10)


def test_exact_kernel_for_constant_resolving_power():
    wave = 4000 * np.exp(2e-5 * np.arange(40000))          # log-sampled, ~0.1 Å pixels
    lines = [4600.0, 6000.0, 7500.0]
    flux = np.prod([gaussian_line(wave, c, c / 10000.0) for c in lines], axis=0)  # R = 10000
    out = degrade_to_constant_fwhm(wave, flux, 10000.0, 2.0)
    for c in lines:  # every line comes out at 2 Å, whatever its input width
        near = np.abs(wave - c) < 8
        assert measured_fwhm(wave[near], out[near]) == pytest.approx(2.0, rel=2e-3)
    with pytest.raises(ValueError, match="cannot sharpen"):
        degrade_to_constant_fwhm(wave, flux, 1000.0, 2.0)


def test_rebinning_conserves_flux_and_constants():
    wave = 4700 + 0.05 * np.arange(60000)
    flux = gaussian_line(wave, 6000.3, 2.0, depth=0.7) * 3.0
    new = gsl_wavelengths()
    out = rebin_flux(wave, flux, new)
    # the equivalent width (area of the line) is the same on both grids
    window_in, window_out = np.abs(wave - 6000) < 20, np.abs(new - 6000) < 20
    ew_in = np.sum((3.0 - flux[window_in]) * 0.05)
    ew_out = np.sum((3.0 - out[window_out]) * 1.25)
    assert ew_out == pytest.approx(ew_in, rel=1e-3)
    np.testing.assert_allclose(rebin_flux(wave, np.full(wave.size, 2.5), new), 2.5, rtol=1e-12)
    edges = bin_edges(new)
    assert edges.size == 2100 and edges[0] == pytest.approx(4761.625)
    with pytest.raises(ValueError, match="exceed the spectrum"):
        rebin_flux(wave[:1000], flux[:1000], new)


def test_gsl_pipeline_shape_and_normalisation():
    wave = 4500 + 0.1 * np.arange(32000)
    flux = (wave / 5000.0) ** -2 * gaussian_line(wave, 6562.8, 0.6, 0.6)
    out = gsl_preprocess(wave, flux, fwhm_in=0.6)
    assert out.shape == (2099,) and np.median(out) == pytest.approx(1.0)
    assert gsl_wavelengths()[[0, -1]].tolist() == [4762.25, 7384.75]
    with pytest.raises(ValueError, match="cannot normalise"):
        normalise_median(-np.ones(5))
