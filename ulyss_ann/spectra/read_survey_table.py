"""The SDSS / LAMOST binary table: columns for flux (``FLUX``), its uncertainty
(``IVAR``/``INVVAR``/``INVERSE_VARIANCE`` or ``ERROR``/``ERR``/``SIGMA``), wavelength
(``WAVELENGTH``/``WAVE``/``LAMBDA`` in Å, or ``LOGLAM`` = log10 Å) and masks
(``AND_MASK``/``ANDMASK``/``MASK``: non-zero is bad), either one row of arrays or one row per
pixel; ``COADD`` is preferred when present. SDSS and LAMOST wavelengths are in vacuum (``VACUUM``
header keyword or, when no keyword says, the surveys' convention: both publish vacuum wavelengths).
SDSS's ``WDISP`` (the LSF's Gaussian σ in pixels) is kept as ``meta['lsf_sigma_pix']``.
"""

import numpy as np
from astropy.io import fits

from ulyss_ann.model.medium import VACUUM
from ulyss_ann.spectra.fits_spectra import header_meta, opened_fits
from ulyss_ann.spectra.reader_registry import SpectrumReader, SpectrumReadError, register_reader
from ulyss_ann.spectra.spectrum_medium import SURVEY_CONVENTION, file_medium

__all__ = ["SurveyTableReader"]


def _column(table, *names):
    lowered = {n.lower(): n for n in table.columns.names}
    for name in names:
        if name in lowered:
            return np.asarray(table[lowered[name]], dtype=float).ravel()
    return None


class SurveyTableReader(SpectrumReader):
    """A FITS file of binary tables (and no image the image readers would take)."""

    name = "table"
    description = ("SDSS / LAMOST binary table: FLUX, IVAR or ERROR, LOGLAM or WAVELENGTH, AND_MASK columns "
                   "(COADD preferred; vacuum)")
    priority = 20

    def identify(self, source):
        return source.is_fits and bool(source.units("table"))

    def read(self, source):
        path = source.path
        with opened_fits(source) as hdul:
            tables = [h for h in hdul if isinstance(h, fits.BinTableHDU)]
            if not tables:
                raise SpectrumReadError(f"{path}: no binary table HDU: not an SDSS/LAMOST table spectrum")
            tables.sort(key=lambda h: h.name != "COADD")
            hdu = tables[0]
            data = hdu.data
            flux = _column(data, "flux")
            if flux is None:
                raise SpectrumReadError(f"{path}: table HDU '{hdu.name}' has no FLUX column "
                                        f"(columns: {', '.join(data.columns.names)})")
            loglam = _column(data, "loglam")
            wave = 10 ** loglam if loglam is not None else _column(data, "wavelength", "wave", "lambda")
            if wave is None:
                raise SpectrumReadError(f"{path}: table HDU '{hdu.name}' has no wavelength column "
                                        "(expected LOGLAM, WAVELENGTH, WAVE or LAMBDA)")
            ivar = _column(data, "ivar", "invvar", "inverse_variance")
            if ivar is not None:
                with np.errstate(divide="ignore"):
                    error = np.where(ivar > 0, 1.0 / np.sqrt(np.where(ivar > 0, ivar, 1.0)), np.nan)
            else:
                error = _column(data, "error", "err", "sigma", "flux_err")
            wdisp = _column(data, "wdisp")
            mask = _column(data, "and_mask", "andmask", "mask")
            good = None if mask is None else mask == 0
            header = hdul[0].header
            medium = file_medium([header, hdu.header], (VACUUM, SURVEY_CONVENTION))  # SDSS and LAMOST: vacuum
            meta = header_meta(header) or header_meta(hdu.header)
        if wdisp is not None and np.any(wdisp > 0):  # SDSS: Gaussian sigma of the LSF, in pixels
            meta["lsf_sigma_pix"] = float(np.median(wdisp[wdisp > 0]))
        return self.spectrum(source, wave, flux, error, good, None, meta, medium=medium)


register_reader(SurveyTableReader())
