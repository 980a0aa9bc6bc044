r"""Simulated observations made from a network: MUSE-like spectra with known parameters.

A spectrum is the network's spectrum :math:`f(p)` (2 Å FWHM, on its own grid),
broadened by a Gaussian of FWHM :math:`\sqrt{\mathrm{FWHM}^2 - 2^2}` (to the
instrument's LSF) and Doppler-shifted by :math:`v` (:math:`\lambda \to \lambda(1 + v/c)`),
both exactly, in Fourier space (:func:`~ulyss_ann.spectra.band_limited.observe`; the linear
interpolation used before issue #26 added f(1 − f) px² of broadening at a pixel phase f),
then multiplied by a smooth continuum (the instrument's response), with Gaussian noise
of the given S/N per pixel. The ends are cut (``trim`` pixels each) so that the shift
never looks beyond the network's range.
Files are written in the MUSE/PampelMuse layout (flux in the primary HDU, 1-σ error
in ``SIGMA``), with the truth in the header (``SIM_*``) and ``SIMULATD = T``.
"""

import numpy as np
from astropy.io import fits

from ulyss_ann.spectra.band_limited import observe

__all__ = ["simulate_spectrum", "write_muse_spectrum"]

C_KMS = 299792.458
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


def simulate_spectrum(interp, params, velocity=0.0, fwhm=2.6, snr=60.0, continuum=(1.0, 0.25, -0.15),
                      rng=None, trim=15, scale=1.0e4):
    """Simulated observed spectrum; returns (wavelength, flux, sigma) on the trimmed network grid.

    Parameters
    ----------
    interp : Interpolator
        Linear-sampled network (its FWHM is taken as 2 Å, the GSL preprocessing).
    params : sequence
        Parameters in network order.
    velocity : float
        Radial velocity, km/s.
    fwhm : float
        Instrumental Gaussian FWHM, Å (>= 2).
    snr : float
        Signal-to-noise ratio per pixel.
    continuum : sequence
        Coefficients of the multiplicative polynomial in t in [-1, 1] across the range.
    """
    rng = np.random.default_rng(rng)
    interp = interp.in_medium("air")  # the spectrum is written on air wavelengths (AWAV), whatever the network's
    wave = interp.wavelength.wavelength
    flux = interp.evaluate(np.asarray(params, float))
    # the Gaussian's σ in Å (widths add in variance); none below the network's own 2 Å
    broadening = np.sqrt(fwhm ** 2 - 4.0) / FWHM_PER_SIGMA if fwhm > 2.0 else 0.0
    observed = observe(wave, wave, flux, velocity, broadening)
    t = np.linspace(-1, 1, wave.size)
    observed = observed * scale * np.polynomial.polynomial.polyval(t, continuum)
    sigma = np.abs(observed) / snr
    noisy = observed + rng.normal(0.0, 1.0, wave.size) * sigma
    keep = slice(trim, wave.size - trim)
    return wave[keep], noisy[keep], sigma[keep]


def write_muse_spectrum(path, wave, flux, sigma, truth=None, header=None, overwrite=True):
    """Write a spectrum in the MUSE/PampelMuse layout (linear air-wavelength WCS, SIGMA extension).

    ``truth`` maps header keywords (e.g. ``SIM_TEFF``) to (value, comment).
    """
    head = fits.Header() if header is None else header.copy()
    head["CRPIX1"] = 1
    head["CTYPE1"] = "AWAV"
    head["CRVAL1"] = (float(wave[0]), "Wavelength at first pixel \\AA")
    head["CDELT1"] = (float(wave[1] - wave[0]), "Step size in \\AA")
    head["CUNIT1"] = ("Angstrom", "wavelength unit")
    head["BUNIT"] = ("", "relative flux (dimensionless)")  # a unit astropy and specutils parse
    if truth is not None:
        head["SIMULATD"] = (True, "simulated spectrum, not a real star")
        for key, value in truth.items():
            head[key] = value
    primary = fits.PrimaryHDU(np.asarray(flux, np.float32), header=head)
    err = fits.ImageHDU(np.asarray(sigma, np.float32), header=head.copy(), name="SIGMA")
    fits.HDUList([primary, err]).writeto(path, overwrite=overwrite)
