"""Göttingen / PHOENIX spectra as users download them, into a preprocessed SpectralGrid.

Three forms are read, each giving (vacuum or air) wavelengths in Å and the flux:

* **HiRes FITS** (``lte05800-4.50-0.0.PHOENIX-ACES-AGSS-COND-2011-HiRes.fits``): the flux
  alone in the primary HDU; the wavelengths (vacuum) in the separate file
  ``WAVE_PHOENIX-ACES-AGSS-COND-2011.fits`` (``wave_file=``).
* **R = 10 000 FITS** (the medium-resolution set the paper used): the flux with a
  logarithmic WCS in the header (:class:`~ulyss_ann.model.wavelength.WavelengthGrid`;
  ``CTYPE1`` ``WAVE`` = vacuum, ``AWAV`` = air, absent = vacuum as PHOENIX writes).
* **two-column text** (wavelength, flux), the form the authors' node names end in
  (``…-HiRes.txt``); vacuum unless told otherwise.

Parameters come from the header (``PHXTEFF``, ``PHXLOGG``, ``PHXM_H``, ``PHXALPHA``) when
present, else from the file name (:func:`~ulyss_ann.spectra.phoenix.parse_phoenix_name`).
PHOENIX wavelengths are in vacuum; the grid is converted to air (Morton 2000, the
formula of :func:`~ulyss_ann.model.medium.vacuum_to_air`) when ``air=True``, as the
authors' networks are (``CTYPE1 = 'AWAV'``), then preprocessed as in the paper
(:func:`~ulyss_ann.spectra.preprocessing.gsl_preprocess`).
"""

import os

import numpy as np
from astropy.io import fits

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.spectra.phoenix import parse_phoenix_name
from ulyss_ann.spectra.preprocessing import GSL_NPIX, GSL_START, GSL_STEP, gsl_preprocess
from ulyss_ann.spectra.grid import SpectralGrid
from ulyss_ann.spectra.readers import has_fits_signature
from ulyss_ann.model.medium import vacuum_to_air
from ulyss_ann.model.wavelength import WavelengthGrid

__all__ = ["read_phoenix", "phoenix_grid"]


def _parameters(path, header):
    keys = ("PHXTEFF", "PHXLOGG", "PHXM_H", "PHXALPHA")
    if header is not None and all(k in header for k in keys[:3]):
        return {"teff": float(header["PHXTEFF"]), "logg": float(header["PHXLOGG"]),
                "feh": float(header["PHXM_H"]) + 0.0, "alpha": float(header.get("PHXALPHA", 0.0))}
    try:
        return parse_phoenix_name(os.path.basename(path))
    except ValueError as exc:
        raise UlyssAnnError(f"{path}: no PHXTEFF/PHXLOGG/PHXM_H in the header and {exc}") from None


def read_phoenix(path, wave_file=None):
    """Read one PHOENIX spectrum: (wavelength [Å], flux, vacuum?, parameters dict)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UlyssAnnError(f"{path}: no such file")
    if not has_fits_signature(path):
        try:
            table = np.loadtxt(path, ndmin=2, comments="#")
        except ValueError as exc:
            raise UlyssAnnError(f"{path}: not FITS, nor two text columns wavelength flux ({exc})") from None
        if table.shape[1] < 2:
            raise UlyssAnnError(f"{path}: expected two text columns (wavelength, flux)")
        return table[:, 0], table[:, 1], True, _parameters(path, None)
    try:
        with fits.open(path, memmap=False) as hdul:
            flux = np.asarray(hdul[0].data, float).ravel()
            header = hdul[0].header
    except (OSError, ValueError, TypeError) as exc:
        raise UlyssAnnError(f"{path}: truncated or corrupt FITS ({exc})") from None
    params = _parameters(path, header)
    if "CRVAL1" in header:  # the R = 10 000 files carry their (log) WCS
        grid = WavelengthGrid.from_header(header, npix=flux.size)
        vacuum = not str(header.get("CTYPE1", "WAVE")).strip().upper().startswith("AWAV")
        return grid.wavelength, flux, vacuum, params
    if wave_file is None:
        raise UlyssAnnError(f"{path}: a HiRes file without wavelengths; give the separate "
                            "WAVE_PHOENIX-ACES-AGSS-COND-2011.fits (--wave)")
    try:
        wave = np.asarray(fits.getdata(wave_file), float).ravel()
    except (OSError, ValueError, TypeError) as exc:
        raise UlyssAnnError(f"{wave_file}: cannot read the wavelength file ({exc})") from None
    if wave.size != flux.size:
        raise UlyssAnnError(f"{path}: {flux.size} fluxes but {wave_file} holds {wave.size} wavelengths")
    return wave, flux, True, params


def phoenix_grid(files, wave_file=None, air=True, fwhm_in=None, resolving_power=None, progress=False):
    """A preprocessed SpectralGrid (2099 px, 4762.25–7384.75 Å, 2 Å FWHM, median 1) from PHOENIX files.

    ``resolving_power`` (e.g. 10000 for the medium-resolution set) selects the exact
    λ-dependent degradation; otherwise a constant kernel from ``fwhm_in`` (default: the
    FWHM of R = 10 000 at 6000 Å, 0.6 Å, as the paper).
    """
    from ulyss_ann.spectra.progress import progress_bar

    rows, params = [], []
    for path in progress_bar(files, desc="reading", unit="spectrum", enabled=progress):
        wave, flux, vacuum, p = read_phoenix(path, wave_file)
        if vacuum and air:
            wave = vacuum_to_air(wave)
        keep = (wave > GSL_START - 30) & (wave < GSL_START + GSL_STEP * GSL_NPIX + 30)
        if keep.sum() < 10:
            raise UlyssAnnError(f"{path}: does not cover 4762-7385 Å")
        if resolving_power is not None:
            rows.append(gsl_preprocess(wave[keep], flux[keep], resolving_power=resolving_power))
        else:
            rows.append(gsl_preprocess(wave[keep], flux[keep], fwhm_in=0.6 if fwhm_in is None else fwhm_in))
        params.append([p["teff"], p["logg"], p["feh"], p["alpha"]])
    params = np.array(params)
    names, units = ["Teff", "Logg", "Fe/H", "Alpha/Fe"], ["K", "dex", "dex", "dex"]
    meta = [("ORIGIN", "ulyss_ann", "PHOENIX preprocessed as Kumar+ sect. 2.1")]
    if np.ptp(params[:, 3]) == 0:  # [alpha/Fe] constant (GSL: +0.4): not a network input
        meta.append(("ALPHAFE", float(params[0, 3]), "[alpha/Fe] of every spectrum"))
        names, units, params = names[:3], units[:3], params[:, :3]
    return SpectralGrid(np.array(rows), params, names, units,
                        WavelengthGrid(GSL_NPIX, GSL_START, GSL_STEP, 1.0, log=False, air=air), meta)
