"""The plain 1-D FITS spectrum: flux in the primary HDU (or fpack's HDU 1) with a linear or
logarithmic WCS, with or without ``CTYPE1`` (MILES): see
:class:`~ulyss_ann.model.wavelength.WavelengthGrid`; an error extension when there is one
(``SIGMA``, ``ERROR``, ``ERR``, ``NOISE``; ``STAT``/``VAR`` as variance, ``IVAR`` as inverse
variance); the medium from ``AIRORVAC``, ``VACUUM`` or ``CTYPE1``, else air.
"""

from dataclasses import replace

import numpy as np

from ulyss_ann.model.medium import AIR
from ulyss_ann.model.wavelength import WavelengthGrid
from ulyss_ann.spectra.fits_spectra import (error_extension, header_meta, image_hdu, opened_fits, spectrum_image_unit,
                                            unit_factor)
from ulyss_ann.spectra.reader_registry import SpectrumReader, SpectrumReadError, register_reader
from ulyss_ann.spectra.spectrum_medium import file_medium

__all__ = ["FitsImageReader", "read_image_spectrum"]


def read_image_spectrum(reader, path, hdul, hdu):
    """The Spectrum of the 1-D image ``hdu`` of ``hdul`` (its WCS, its error extension), made by ``reader``."""
    header = hdu.header
    data = np.squeeze(np.asarray(hdu.data, dtype=float))
    if data.ndim != 1:
        raise SpectrumReadError(f"{path}: primary HDU is a {data.ndim}-D image; expected a 1-D spectrum "
                                "(or a LAMOST-style 5-row array, or a binary table)")
    factor = unit_factor(header)
    if factor is None:
        raise SpectrumReadError(f"{path}: CUNIT1 = '{header['CUNIT1']}' is not a wavelength unit")
    try:
        grid = WavelengthGrid.from_header(header, npix=data.size)
    except KeyError as exc:
        raise SpectrumReadError(f"{path}: missing keyword {exc.args[0]} (the wavelength WCS)") from None
    except ValueError as exc:
        raise SpectrumReadError(f"{path}: {exc}") from None
    if grid.log and float(header["CRVAL1"]) >= 9:  # a FITS-standard -LOG axis: astropy gave Å already
        factor = 1.0
    wavelength = grid.wavelength if factor == 1.0 else grid.wavelength * factor  # Å already: no copy
    medium = file_medium([header])  # AIRORVAC or VACUUM before CTYPE1; MUSE and PampelMuse write AWAV
    if grid.air != (medium[0] == AIR):
        grid = replace(grid, air=medium[0] == AIR)
    if factor != 1.0:
        grid = None if grid.log else WavelengthGrid(grid.npix, grid.crval * factor, grid.cdelt * factor,
                                                    grid.crpix, False, grid.air)
    error, _ = error_extension(hdul, hdu)
    if error is not None and error.shape != data.shape:
        raise SpectrumReadError(f"{path}: error extension has {error.size} pixels, flux {data.size}")
    return reader.spectrum(path, wavelength, data, error, None, grid, header_meta(header), medium=medium)


class FitsImageReader(SpectrumReader):
    """Any FITS file whose primary HDU (or fpack's first compressed image) holds an image: the general
    FITS reader, below the layouts it would take for its own (MUSE, LAMOST images, APOGEE)."""

    name = "fits-1d"
    description = "plain 1-D FITS: flux in the primary HDU, a linear or log WCS (MILES), an optional error HDU"
    priority = 30

    def identify(self, source):
        return source.is_fits and spectrum_image_unit(source) is not None

    def read(self, source):
        with opened_fits(source) as hdul:
            hdu = image_hdu(hdul)
            if hdu is None:
                raise SpectrumReadError(f"{source.path}: no image HDU: not a 1-D FITS spectrum")
            return read_image_spectrum(self, source.path, hdul, hdu)


register_reader(FitsImageReader())
