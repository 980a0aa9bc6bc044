"""The MILES empirical library as a SpectralGrid: real, noisy, irregularly spaced stars.

MILES (Sánchez-Blázquez et al. 2006; Falcón-Barroso et al. 2011) spectra cover
3540.5–7409.6 Å at 0.9 Å per pixel, 2.5 Å FWHM, air wavelengths, flux-calibrated. Their
atmospheric parameters (Cenarro et al. 2007) come from a CSV table with columns
``file, teff, logg, feh`` (the layout of ``../shared/data/miles/params.csv``).

**Continuum normalisation.** The stars carry interstellar reddening and flux-calibration
errors of a few per cent over the range, both smooth in λ. ULySS's own MILES
interpolator (Prugniel, Vauglin & Koleva 2011) removes them by fitting every star with a
multiplicative polynomial and dividing it out, and every ULySS fit multiplies the model
by a Legendre polynomial (MDEGREE) again. We do the same without a model: each spectrum
is divided by its *pseudo-continuum*, a Legendre polynomial of degree ``degree`` (6 by
default) in λ fitted to the flux with asymmetric clipping — pixels more than 1σ below
the fit (absorption lines) or 3σ above it are rejected and the fit repeated, 10 times
at most — so that it follows the upper envelope, not the lines:

    f_norm(λ) = f(λ) / C(λ),    C(λ) = Σ_{k≤degree} c_k P_k(x),  x = 2(λ − λ₀)/(λ₁ − λ₀) − 1,

then by its median, as the paper normalises its grid. What is lost is the broad spectral
energy distribution (and with it the reddening); what a network then models is the line
spectrum on a flat continuum, which is what a ULySS fit with MDEGREE ≥ ``degree`` uses.
Stars with no parameters, non-finite or non-positive flux are left out, and counted.
"""

import csv
import os

import numpy as np
from astropy.io import fits
from numpy.polynomial import legendre

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.spectra.grid import SpectralGrid
from ulyss_ann.model.wavelength import WavelengthGrid

__all__ = ["pseudo_continuum", "read_miles_params", "miles_grid", "files_of_nodes"]


def pseudo_continuum(wave, flux, degree=6, low=1.0, high=3.0, iterations=10):
    """The upper-envelope Legendre fit C(λ) of the module docstring (same shape as ``flux``)."""
    x = 2 * (wave - wave[0]) / (wave[-1] - wave[0]) - 1
    keep = np.isfinite(flux)
    for _ in range(iterations):
        coef = legendre.legfit(x[keep], flux[keep], degree)
        fit = legendre.legval(x, coef)
        resid = flux - fit
        sigma = np.std(resid[keep])
        new = np.isfinite(flux) & (resid > -low * sigma) & (resid < high * sigma)
        if np.array_equal(new, keep) or new.sum() <= degree + 1:
            break
        keep = new
    return fit


def read_miles_params(path):
    """{file name: (teff, logg, feh)} for the rows with all three parameters."""
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise UlyssAnnError(f"{path}: cannot read the MILES parameter table: {exc}") from None
    out = {}
    for row in rows:
        try:
            values = tuple(float(row[k]) for k in ("teff", "logg", "feh"))
        except (KeyError, TypeError, ValueError):
            continue
        if all(np.isfinite(values)):
            out[row["file"]] = values
    if not out:
        raise UlyssAnnError(f"{path}: no row with file, teff, logg and feh (the layout of MILES params.csv)")
    return out


def files_of_nodes(nodes, params_csv):
    """The MILES file of each grid node (rows of Teff, log g, [Fe/H]): the row of ``params_csv``
    (:func:`read_miles_params`) with those values, one star each — a grid's order (``miles_grid``
    sorts by file name) is not the table's, but its values are unique there."""
    by_values = {}
    for name, values in read_miles_params(params_csv).items():
        by_values.setdefault(values, []).append(name)
    files = []
    for node in np.asarray(nodes, dtype=np.float64):
        found = by_values.get(tuple(float(v) for v in node), [])
        if len(found) != 1:
            raise UlyssAnnError(f"{params_csv}: {len(found)} stars have the grid node {tuple(node)}: "
                                "each node must be one star of this table")
        files.append(found[0])
    return files


def miles_grid(directory, params_csv=None, degree=6, teff_range=None, progress=False):
    """A continuum-normalised SpectralGrid of the MILES stars of ``directory`` that have parameters.

    ``teff_range`` = (low, high) in K keeps only those stars (MILES reaches 36 000 K; the
    few hot stars are far apart in parameter space). Returns (grid, list of skipped files
    with the reason).
    """
    from ulyss_ann.spectra.progress import progress_bar

    params_csv = params_csv or os.path.join(directory, "params.csv")
    table = read_miles_params(params_csv)
    if teff_range is not None:
        table = {k: v for k, v in table.items() if teff_range[0] <= v[0] <= teff_range[1]}
    rows, params, skipped, wavelength = [], [], [], None
    for name in progress_bar(sorted(table), desc="reading MILES", unit="star", enabled=progress):
        path = os.path.join(directory, name)
        try:
            with fits.open(path, memmap=False) as hdul:
                flux = np.asarray(hdul[0].data, dtype=np.float64)
                grid = WavelengthGrid(flux.size, float(hdul[0].header["CRVAL1"]), float(hdul[0].header["CDELT1"]),
                                      1.0, log=False, air=True)
        except (OSError, KeyError, TypeError, ValueError) as exc:
            skipped.append(f"{name} ({exc})")
            continue
        if wavelength is None:
            wavelength = grid
        if flux.ndim != 1 or grid != wavelength or not np.all(np.isfinite(flux)) or np.any(flux <= 0):
            skipped.append(f"{name} (other sampling, or non-finite / non-positive flux)")
            continue
        normalised = flux / pseudo_continuum(wavelength.wavelength, flux, degree)
        rows.append(normalised / np.median(normalised))
        params.append(table[name])
    if not rows:
        raise UlyssAnnError(f"{directory}: no readable MILES spectrum with parameters in {params_csv}")
    meta = (("ORIGIN", "ulyss_ann", "MILES library, continuum-normalised"),
            ("FWHM", 2.5, "[Angstrom] spectral resolution of MILES"),
            ("CONTDEG", degree, "Legendre degree of the divided pseudo-continuum"),
            ("NSKIPPED", len(skipped), "stars left out (bad flux)"))
    grid = SpectralGrid(np.array(rows), np.array(params), ("Teff", "Logg", "Fe/H"), ("K", "dex", "dex"),
                        wavelength, meta)
    return grid, skipped
