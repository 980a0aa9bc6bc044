"""Write model spectra as FITS files that ULySS and astropy read.

* One spectrum: a 1-D primary image of normalised flux with the wavelength WCS
  (``CTYPE1/CRPIX1/CRVAL1/CDELT1``, as ``uly_spect_read`` expects) and the parameters
  as header cards ``P_NMi`` (name), ``P_VALi`` (value), ``P_UNi`` (unit).
* Several spectra: a 2-D primary image, one spectrum per row (FITS axis 2), the same
  axis-1 WCS, and a binary-table HDU ``PARAMS`` holding the parameters of each row
  (one column per parameter, with units).

Both carry ``MODEL`` (the interpolator file name) and, when the interpolator was
made from the surrogate grid, ``SURROGAT = T``.
"""

import os

import numpy as np
from astropy.io import fits

from ulyss_ann.errors import UlyssAnnError

__all__ = ["write_model_spectra"]


def write_model_spectra(path, interp, params, flux, overwrite=False):
    """Write spectra computed by ``interp`` at ``params`` (npar,) or (n, npar) to ``path``."""
    params = np.asarray(params, dtype=float)
    flux = np.asarray(flux, dtype=float)
    hdu = fits.PrimaryHDU(flux)
    header = hdu.header
    for key, value, comment in interp.wavelength.data_cards():
        header[key] = (value, comment)
    header["BUNIT"] = ("", "normalised flux (dimensionless)")
    header["ORIGIN"] = ("ulyss_ann", "model spectrum computed by ulyss-ann eval")
    header["MODEL"] = (os.path.basename(interp.path or "(in memory)"), "interpolator file")
    if interp.is_surrogate:
        header["SURROGAT"] = (True, "made from the surrogate grid, not the real GSL")
    hdus = [hdu]
    if params.ndim == 1:
        for i, (par, value) in enumerate(zip(interp.parameters, params), start=1):
            header[f"P_NM{i}"] = (par.name, "parameter name")
            header[f"P_VAL{i}"] = (float(value), f"[{par.unit}] parameter value" if par.unit else "parameter value")
            header[f"P_UN{i}"] = (par.unit, "parameter unit")
    else:
        header["CTYPE2"] = ("SPECTRUM", "row index; parameters in HDU PARAMS")
        # Columns built directly: FITS allows any unit string, and 'dex' is not one astropy
        # can write through a Table without a warning.
        columns = [fits.Column(name=p.name, format="D", unit=p.unit or None, array=params[:, i])
                   for i, p in enumerate(interp.parameters)]
        table_hdu = fits.BinTableHDU.from_columns(columns, name="PARAMS")
        hdus.append(table_hdu)
    try:
        fits.HDUList(hdus).writeto(path, overwrite=overwrite)
    except OSError as exc:
        hint = " (add --overwrite to replace it)" if os.path.exists(path) else ""
        raise UlyssAnnError(f"{path}: cannot write: {exc}{hint}") from None
