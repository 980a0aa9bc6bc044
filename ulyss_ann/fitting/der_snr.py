"""The noise of a spectrum estimated from its flux alone (DER_SNR), for :attr:`FitResult.misfit`.

Its own module so that :mod:`ulyss_ann.fitting.result` stays within the 400 lines a module may hold.
"""

import numpy as np

from ulyss_ann.spectra.spectrum import median

__all__ = ["der_noise"]


def der_noise(flux, good):
    """The noise of ``flux`` estimated from the flux alone (DER_SNR, Stoehr et al. 2008).

    :math:`\\sigma = 1.482602/\\sqrt 6 \\;\\mathrm{median}|2f_i - f_{i-2} - f_{i+2}|` over the
    pixels i with i-2, i, i+2 all ``good``: exact for white noise on a flux that is locally
    linear over 4 pixels; lines the data resolve add to it, so at high S/N it also holds part
    of the spectrum's own structure. NaN when fewer than 10 such pixels, or when it is 0 (a
    flux linear over every 4 pixels says nothing of its noise).
    """
    flux, good = np.asarray(flux, float), np.asarray(good, bool)
    if flux.size < 5:
        return np.nan
    ok = good[2:-2] & good[:-4] & good[4:]
    if np.count_nonzero(ok) < 10:
        return np.nan
    sigma = 1.482602 / np.sqrt(6.0) * median(np.abs(2 * flux[2:-2] - flux[:-4] - flux[4:])[ok])  # np.median's
    return sigma if sigma > 0 else np.nan
