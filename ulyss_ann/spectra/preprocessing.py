r"""The paper's preprocessing of a grid spectrum (Kumar, Prugniel & Singh, §2.1), step by step.

1. **Resolution** — convolve with a Gaussian so that the spectrum reaches 2 Å FWHM:
   :math:`\mathrm{FWHM}_k = \sqrt{\mathrm{FWHM}_\mathrm{out}^2 - \mathrm{FWHM}_\mathrm{in}^2}`
   (Gaussians add in quadrature). The paper uses one kernel, with the input FWHM at
   6000 Å (0.6 Å for the R = 10 000 GSL spectra): :func:`degrade_constant`. For
   log-sampled input of constant resolving power R the input FWHM is λ/R, and
   :func:`degrade_to_constant_fwhm` uses the exact kernel at every pixel.
2. **Rebinning** to 1.25 Å bins, conserving flux: integrate the spectrum over the input
   bins, :math:`F(\lambda) = \int_{\lambda_0}^{\lambda} f\,d\lambda'`, interpolate
   :math:`F` at the new bin edges and differentiate,
   :math:`\bar f_j = (F(e_{j+1}) - F(e_j)) / (e_{j+1} - e_j)` — :func:`rebin_flux`.
3. **Trimming** to 4762.25–7384.75 Å (pixel centres; 2099 pixels), away from the
   telluric bands — part of the new grid of step 2.
4. **Normalisation** by the median flux: :func:`normalise_median`.

:func:`gsl_preprocess` chains them as the paper did. Wavelengths in Å throughout.
"""

import numpy as np
from scipy.ndimage import gaussian_filter1d

__all__ = ["FWHM_TO_SIGMA", "degrade_constant", "degrade_to_constant_fwhm", "bin_edges", "rebin_flux",
           "normalise_median", "gsl_wavelengths", "gsl_preprocess"]

#: sigma = FWHM / (2 sqrt(2 ln 2))
FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))

#: The paper's output grid: 1.25 Å pixels centred from 4762.25 to 7384.75 Å.
GSL_START, GSL_STEP, GSL_NPIX = 4762.25, 1.25, 2099


def degrade_constant(flux, step, fwhm_in, fwhm_out=2.0):
    """Convolve a linearly sampled spectrum (pixel ``step`` Å) from ``fwhm_in`` to ``fwhm_out`` Å.

    One Gaussian kernel of FWHM :math:`\\sqrt{\\mathrm{fwhm\\_out}^2 - \\mathrm{fwhm\\_in}^2}`,
    edges extended with the end values.
    """
    if fwhm_out < fwhm_in:
        raise ValueError(f"cannot sharpen: input FWHM {fwhm_in} Å > output {fwhm_out} Å")
    sigma_pix = np.sqrt(fwhm_out ** 2 - fwhm_in ** 2) * FWHM_TO_SIGMA / step
    return gaussian_filter1d(np.asarray(flux, float), sigma_pix, mode="nearest", truncate=5.0)


def degrade_to_constant_fwhm(wave, flux, resolving_power, fwhm_out=2.0):
    """Exact λ-dependent Gaussian degradation of a log-sampled spectrum to ``fwhm_out`` Å.

    The input resolution is :math:`\\mathrm{FWHM}_\\mathrm{in}(\\lambda) = \\lambda / R`; on a
    log grid of step :math:`\\delta = \\ln(\\lambda_{i+1}/\\lambda_i)` the kernel at pixel i has
    :math:`\\sigma_i = \\sqrt{\\mathrm{fwhm\\_out}^2 - (\\lambda_i/R)^2}\\,/\\,(2\\sqrt{2\\ln 2}\\,\\lambda_i\\,\\delta)`
    pixels. Each output pixel is the normalised Gaussian-weighted sum of its
    neighbours (a kernel per pixel, cut at 5σ; edges extended with the end values).
    """
    wave = np.asarray(wave, float)
    flux = np.asarray(flux, float)
    delta = np.log(wave[1] / wave[0])
    fwhm_in = wave / resolving_power
    if np.any(fwhm_in > fwhm_out):
        raise ValueError(f"cannot sharpen: input FWHM reaches {fwhm_in.max():.3f} Å > {fwhm_out} Å")
    sigma = np.sqrt(fwhm_out ** 2 - fwhm_in ** 2) * FWHM_TO_SIGMA / (wave * delta)
    half = int(np.ceil(5 * sigma.max()))
    offsets = np.arange(-half, half + 1)
    index = np.clip(np.arange(wave.size)[:, None] + offsets[None, :], 0, wave.size - 1)
    weights = np.exp(-0.5 * (offsets[None, :] / sigma[:, None]) ** 2)
    weights[np.abs(offsets)[None, :] > 5 * sigma[:, None]] = 0.0
    weights /= weights.sum(axis=1, keepdims=True)
    return np.sum(weights * flux[index], axis=1)


def bin_edges(centres):
    """Edges of bins around increasing pixel ``centres`` (midpoints; ends extrapolated)."""
    centres = np.asarray(centres, float)
    mid = 0.5 * (centres[1:] + centres[:-1])
    return np.concatenate([[2 * centres[0] - mid[0]], mid, [2 * centres[-1] - mid[-1]]])


def rebin_flux(wave, flux, new_centres):
    """Flux-conserving rebinning of a flux density onto bins centred at ``new_centres``.

    :math:`F` (the integral of the flux over the input bins, piecewise constant density)
    is linearly interpolated at the new edges and differenced: every new bin receives the
    flux that falls in it, so integrals over any range of whole bins are kept.
    """
    edges_in = bin_edges(wave)
    edges_out = bin_edges(new_centres)
    if edges_out[0] < edges_in[0] or edges_out[-1] > edges_in[-1]:
        raise ValueError(f"new bins {edges_out[0]:.2f}-{edges_out[-1]:.2f} Å exceed the spectrum "
                         f"{edges_in[0]:.2f}-{edges_in[-1]:.2f} Å")
    cumulative = np.concatenate([[0.0], np.cumsum(np.asarray(flux, float) * np.diff(edges_in))])
    return np.diff(np.interp(edges_out, edges_in, cumulative)) / np.diff(edges_out)


def normalise_median(flux):
    """The spectrum divided by its median flux (the paper's normalisation)."""
    flux = np.asarray(flux, float)
    median = np.median(flux)
    if not np.isfinite(median) or median <= 0:
        raise ValueError(f"median flux {median}: cannot normalise")
    return flux / median


def gsl_wavelengths():
    """Pixel centres of the paper's output grid (2099 px, 4762.25–7384.75 Å by 1.25 Å)."""
    return GSL_START + GSL_STEP * np.arange(GSL_NPIX)


def gsl_preprocess(wave, flux, fwhm_in=0.6, resolving_power=None, fwhm_out=2.0):
    """The paper's four steps: degrade to 2 Å, rebin to 1.25 Å, trim, normalise by the median.

    With ``resolving_power`` the exact λ-dependent kernel is used (log-sampled input);
    otherwise the paper's constant kernel from ``fwhm_in`` (linearly sampled input).
    Returns the 2099 normalised fluxes on :func:`gsl_wavelengths`.
    """
    wave = np.asarray(wave, float)
    if resolving_power is not None:
        degraded = degrade_to_constant_fwhm(wave, flux, resolving_power, fwhm_out)
    else:
        degraded = degrade_constant(flux, float(np.median(np.diff(wave))), fwhm_in, fwhm_out)
    return normalise_median(rebin_flux(wave, degraded, gsl_wavelengths()))
