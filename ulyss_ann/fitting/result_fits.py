r"""The files written for one fit (``--save-fits``): the best-fit FITS file, and how a failure to write says so.

:func:`write_fit_fits` writes a result's data, best fit, residual and mask on the fitted ln-λ grid;
:func:`save_failure` is the error of any ``--save-fits`` file that could not be written (the GDL
engine's copy of ULySS's ``.res`` too); :func:`header_text` makes any text fit a FITS header
(the χ² maps use it as well). This module reads a result by its attributes and does not import
:mod:`~ulyss_ann.fitting.result` (the result imports it).
"""

import errno
import os
import re

import numpy as np

from ulyss_ann.errors import MachineryError, UlyssAnnError
from ulyss_ann.fitting.safe_files import no_room, write_beside
from ulyss_ann.model.wavelength import WavelengthGrid

__all__ = ["header_text", "save_failure", "write_fit_fits"]


def header_text(text):
    """Text for a FITS header value, which holds printable ASCII only: anything else written as a
    Python escape (``é`` as ``\\xe9``, a newline as ``\\x0a``)."""
    text = str(text).encode("ascii", "backslashreplace").decode()
    return re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", text)


def save_failure(path, exc, needed=None):
    """The error for a --save-fits file that could not be written: the machinery's, not the spectrum's
    (``failed: …``, fitted again on --resume), and a full disk said as such (``needed``: the file's
    size, to tell one when the writer lost the error's number: :func:`~ulyss_ann.fitting.safe_files.no_room`)."""
    if isinstance(exc, UlyssAnnError):
        return exc
    if no_room(exc, os.path.dirname(path), needed):
        return MachineryError(f"the --save-fits folder is full ({os.strerror(errno.ENOSPC)}): {path} not written; "
                              "make room and run again with --resume")
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else f"{type(exc).__name__}: {exc}"
    return MachineryError(f"cannot write {path} ({' '.join(reason.split())}): check the --save-fits folder, then "
                          "run again with --resume")


def write_fit_fits(result, path):
    """Write ``result``'s fit to ``path`` (see ``FitResult.write_fits``), whole or not at all; returns ``path``."""
    from astropy.io import fits

    # ULySS's ln-λ axis, and the same axis as FITS-standard WCS "A" for astropy and specutils
    axis = WavelengthGrid(len(result.flux), result.ln_start, result.ln_step, 1.0, log=True, air=True)
    header = fits.Header(axis.data_cards())
    header["OBJECT"] = header_text(result.spectrum_id)  # FITS: printable ASCII only
    hdus = [fits.PrimaryHDU(result.flux, header=header)]
    for name, values in (("BESTFIT", result.bestfit), ("RESIDUAL", result.residual),
                         ("MASK", result.mask.astype(np.uint8))):
        hdus.append(fits.ImageHDU(values, header=header, name=name))
    hdus = fits.HDUList(hdus)
    try:  # complete or not at all, never through a link (see ulyss_ann.fitting.safe_files)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_beside(path, hdus.writeto, option="--save-fits")
    except Exception as exc:  # noqa: BLE001 - the reason, in one line, as a machinery failure
        raise save_failure(path, exc, needed=sum(hdu.filebytes() for hdu in hdus)) from None
    return path
