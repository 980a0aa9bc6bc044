"""The LAMOST image: a 2-D primary array whose rows are flux, inverse variance, wavelength
(vacuum, LAMOST's convention when no keyword says), and-mask, or-mask (3 to 5 rows)."""

import numpy as np

from ulyss_ann.model.medium import VACUUM
from ulyss_ann.spectra.fits_spectra import header_meta, opened_fits
from ulyss_ann.spectra.reader_registry import SpectrumReader, SpectrumReadError, register_reader
from ulyss_ann.spectra.spectrum_medium import SURVEY_CONVENTION, file_medium

__all__ = ["LamostImageReader", "LAMOST_ROWS"]

#: The rows a LAMOST-style array may have: flux, ivar, wavelength[, and-mask[, or-mask]].
LAMOST_ROWS = (3, 4, 5)


class LamostImageReader(SpectrumReader):
    """The primary image of 3-5 rows, the third an increasing wavelength."""

    name = "lamost-image"
    description = "LAMOST image: a 2-D primary array, rows flux, inverse variance, wavelength (vacuum), masks"
    priority = 50

    def identify(self, source):
        primary = source.hdus[0] if source.is_fits and source.hdus else None
        return (primary is not None and primary.kind == "image" and len(primary.shape) == 2
                and primary.shape[1] in LAMOST_ROWS and primary.shape[0] > primary.shape[1])

    def read(self, source):
        with opened_fits(source) as hdul:
            data, header = np.asarray(hdul[0].data, dtype=float), hdul[0].header
        if data.ndim != 2 or data.shape[0] not in LAMOST_ROWS or not np.all(np.diff(data[2]) > 0):
            raise SpectrumReadError(f"{source.path}: primary HDU is a {data.ndim}-D image of shape {data.shape} whose "
                                    "third row is no increasing wavelength; expected a LAMOST-style array (flux, "
                                    "inverse variance, wavelength, masks), a 1-D spectrum or a binary table")
        flux, ivar, wave = data[0], data[1], data[2]
        good = data[3] == 0 if data.shape[0] > 3 else None
        with np.errstate(divide="ignore"):
            error = np.where(ivar > 0, 1.0 / np.sqrt(np.where(ivar > 0, ivar, 1.0)), np.nan)
        medium = file_medium([header], (VACUUM, SURVEY_CONVENTION))  # LAMOST publishes vacuum wavelengths
        return self.spectrum(source, wave, flux, error, good, None, header_meta(header), medium=medium)


register_reader(LamostImageReader())
