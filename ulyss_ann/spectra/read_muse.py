"""The MUSE / PampelMuse spectrum: 1-D flux in the primary HDU (fpack: HDU 1) with a linear WCS,
its 1-σ error in an extension ``SIGMA``; RA/Dec from ``RA``/``DEC`` (or ``HIERARCH STAR RA``);
air wavelengths (``CTYPE1 = 'AWAV'``: the MUSE pipeline works in air).

Read as any 1-D FITS spectrum (:mod:`~ulyss_ann.spectra.read_fits_1d`), the ``SIGMA`` extension
being what tells it apart.
"""

from ulyss_ann.spectra.fits_spectra import spectrum_image_unit
from ulyss_ann.spectra.read_fits_1d import FitsImageReader
from ulyss_ann.spectra.reader_registry import register_reader

__all__ = ["MuseReader"]


class MuseReader(FitsImageReader):
    """A 1-D image with a ``SIGMA`` extension (PampelMuse's layout)."""

    name = "muse"
    description = "MUSE / PampelMuse: 1-D flux in the primary HDU with a linear WCS, the error in a SIGMA HDU"
    priority = 40

    def identify(self, source):
        image = spectrum_image_unit(source) if source.is_fits else None
        return image is not None and len([n for n in image.shape if n > 1]) == 1 and any(
            unit.name == "SIGMA" and unit.kind in ("image", "compressed-image") for unit in source.hdus[1:])


register_reader(MuseReader())
