"""The APOGEE star file: apStar/asStar (combined spectra) and aspcapStar (pseudo-continuum normalised).

The layout, as SDSS's data model gives it (DR12-DR17 "Using APOGEE spectra" and the
apStar/aspcapStar data models): an empty primary HDU (the object: ``RA``, ``DEC``, ``OBJID``),
the flux in HDU 1, its 1-σ error in HDU 2 and, in apStar, the pixel bitmask in HDU 3 (an
aspcapStar's HDU 3 is the best-fit model, floats: not a mask). HDU 1's header holds the
wavelength as a log10-λ WCS, ``CRVAL1`` (4.179, i.e. 15100.8 Å) and ``CDELT1`` (6e-6 dex), on a
common rest-frame grid of 8575 pixels, in **vacuum** (APOGEE's convention; converted to air as every
vacuum spectrum is). An apStar file of several visits has a 2-D HDU 1 whose rows are the combined
spectrum (row 0, pixel-weighted: the one read), the globally weighted one, then each visit.

Pixels flagged by :data:`APOGEE_BAD_PIXELS` (BADPIX, CRPIX, SATPIX, UNFIXABLE, BADDARK, BADFLAT,
BADERR, NOSKY and SIG_SKYLINE of APOGEE_PIXMASK: the combination apogee's own tools mask) are bad.
"""

import numpy as np

from ulyss_ann.model.medium import VACUUM
from ulyss_ann.spectra.fits_spectra import header_meta, opened_fits
from ulyss_ann.spectra.reader_registry import SpectrumReader, SpectrumReadError, register_reader
from ulyss_ann.spectra.spectrum_medium import file_medium

__all__ = ["ApogeeReader", "APOGEE_BAD_PIXELS", "APOGEE_CONVENTION"]

#: APOGEE_PIXMASK bits of a pixel not to fit: bits 0-7 (BADPIX … NOSKY) and 12 (SIG_SKYLINE).
APOGEE_BAD_PIXELS = 0b1_0000_1111_1111

#: Why an APOGEE spectrum that says nothing is on vacuum.
APOGEE_CONVENTION = "APOGEE convention: vacuum"

#: The largest CRVAL1 of a log10-λ axis [log10 Å] (10^5 Å = 10 µm; an Å axis starts far above it).
LOG10_CRVAL_MAX = 5.0


def _log10_wcs(header):
    """True for a log10-λ WCS: CRVAL1 a log10 of Å, CDELT1 a small positive step in dex."""
    try:
        crval, cdelt = float(header["CRVAL1"]), float(header.get("CDELT1", header.get("CD1_1")))
    except (KeyError, TypeError, ValueError):
        return False
    return 2.0 < crval < LOG10_CRVAL_MAX and 0 < cdelt < 1e-3


class ApogeeReader(SpectrumReader):
    """An empty primary HDU, flux and error images in HDUs 1 and 2 of the same shape, a log10-λ WCS."""

    name = "apogee"
    description = ("APOGEE apStar / aspcapStar: flux in HDU 1 (apStar: row 0, the combined spectrum), error HDU 2, "
                   "mask HDU 3, log10-wavelength WCS (vacuum)")
    priority = 60

    def identify(self, source):
        hdus = source.hdus if source.is_fits else ()
        return (len(hdus) >= 3 and hdus[0].kind == "empty" and hdus[1].kind == "image" and hdus[2].kind == "image"
                and len(hdus[1].shape) in (1, 2) and hdus[2].shape == hdus[1].shape and _log10_wcs(hdus[1].header))

    def read(self, source):
        path = source.path
        with opened_fits(source) as hdul:
            if len(hdul) < 3 or hdul[1].data is None or hdul[2].data is None:
                raise SpectrumReadError(f"{path}: no flux and error images in HDUs 1 and 2: not an APOGEE star file")
            flux, error = np.atleast_2d(hdul[1].data)[0], np.atleast_2d(hdul[2].data)[0]  # row 0: the combined
            header, primary = hdul[1].header, hdul[0].header
            mask = hdul[3].data if len(hdul) > 3 else None
            if mask is not None and not np.issubdtype(mask.dtype, np.integer):
                mask = None  # aspcapStar: HDU 3 is the best-fit model
            good = None if mask is None else (np.atleast_2d(mask)[0].astype(np.int64) & APOGEE_BAD_PIXELS) == 0
            if not _log10_wcs(header):
                raise SpectrumReadError(f"{path}: HDU 1 has no log10-wavelength WCS (CRVAL1 in log10 Angstrom, "
                                        "CDELT1 in dex): not an APOGEE star file")
            crpix = float(header.get("CRPIX1", 1.0))
            step = float(header.get("CDELT1", header.get("CD1_1")))
            wavelength = 10.0 ** (float(header["CRVAL1"]) + step * (np.arange(flux.size) + 1.0 - crpix))
            medium = file_medium([header, primary], (VACUUM, APOGEE_CONVENTION))
            meta = header_meta(primary)
            if "object" not in meta and "OBJID" in primary:
                meta["object"] = str(primary["OBJID"]).strip()
        return self.spectrum(source, wavelength, np.asarray(flux, float), np.asarray(error, float), good, None, meta,
                             medium=medium)


register_reader(ApogeeReader())
