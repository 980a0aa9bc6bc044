"""Several stars' noisy LSF chunks combine into the injected LSF (``combine_lsf``; issue #26, item 5).

Metal-poor stars at modest S/N, as in NGC 6397: a chunk's σ is pegged at the floor in many
stars and comes out at 100-400 km/s in a few, with σ errors that shrink as σ grows. The old
combination (a mean of σ weighted by σ's own errors) let such a chunk dominate; the new one
averages σ² with weights from the chunks' velocity errors, which do not depend on the σ
measured. Simulated spectra of the bundled example network, MUSE's LSF, seeded noise.
"""

import numpy as np

from ulyss_ann.fitting.lsf.combine import combine_lsf
from ulyss_ann.fitting.lsf.measure import measure_lsf_many
from ulyss_ann.paper.ngc6397 import fwhm_muse, lsf_matrix, shift_and_resample
from ulyss_ann.spectra.examples import example_interpolator
from ulyss_ann.spectra.line_spread import gaussian_lsf

MUSE = 4749.753 + 1.25 * np.arange(3680)
MUSE = MUSE[(MUSE >= 4765) & (MUSE <= 7380)]      # the real MUSE file's pixels, as simulate_cluster
# NGC 6397-like stars ([Fe/H] ≈ −2.2: few lines in the red), velocity [km/s], S/N per pixel
METAL_POOR = [((6300.0, 4.5, -2.2), 18.0, 40), ((5900.0, 4.2, -2.1), -25.0, 60), ((5100.0, 2.8, -2.2), 60.0, 50),
              ((6100.0, 4.0, -2.3), 5.0, 80), ((5400.0, 3.5, -2.0), -40.0, 40), ((6500.0, 4.3, -2.2), 30.0, 60)]


def _muse_star(interp, params, velocity, snr, rng):
    """The network's spectrum at MUSE's λ-dependent LSF, shifted (cubic spline), on MUSE's pixels, times a
    smooth continuum, with noise (as tests/test_lsf_measure.py's stars)."""
    x = np.linspace(-1, 1, MUSE.size)
    broadened = lsf_matrix(interp.wavelength.wavelength) @ interp.evaluate(np.array(params))
    flux = shift_and_resample(MUSE, interp.wavelength.wavelength, broadened, velocity) * 1e3 * (1 + 0.1 * x - 0.05 * x ** 2)
    error = flux / snr
    return MUSE, flux + rng.normal(size=flux.size) * error, error


def test_noisy_metal_poor_stars_combine_into_the_injected_lsf():
    """Six stars at S/N 40-80: the combined chunks are within 25 km/s RMS of the injected σ (53 → 26 km/s)
    and none is off by 50 km/s. Measured: RMS 17.9 km/s, at most 40 km/s off; the old combination
    (σ weighted by its own errors) gave 84 km/s RMS, one chunk at +410 km/s. (This seed shows the old
    failure; of seeds 0-3, seeds 1 and 2 gave 84 and 100 km/s, 0 and 3 gave 20 and 15, and the new
    combination 18, 18, 16, 14.)"""
    interp = example_interpolator()
    rng = np.random.default_rng(1)
    spectra = [_muse_star(interp, params, velocity, snr, rng) for params, velocity, snr in METAL_POOR]
    combined = combine_lsf(measure_lsf_many(spectra, interp))
    difference = np.asarray(combined["sigma"]) - gaussian_lsf(fwhm_muse, 2.0, np.asarray(combined["wave"]))["sigma"]
    assert np.sqrt(np.mean(difference ** 2)) < 25.0
    assert np.max(np.abs(difference)) < 50.0
