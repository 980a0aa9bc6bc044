"""The wavelength medium of an observed spectrum: where its file says it, and the user's override.

Every fit is made on air wavelengths (ULySS's convention; :data:`~ulyss_ann.model.medium.SPECTRUM_MEDIUM`),
so a spectrum on vacuum wavelengths is converted to air as it is read (Morton 2000,
:func:`~ulyss_ann.model.medium.vacuum_to_air`), and ``cz`` is then a velocity in the observer's
frame in both engines. The conversion is not a shift of start and step (the refractive
index varies with λ): the converted spectrum keeps its exact wavelengths, which both
engines take as they are (ULySS's ``SAMPLING=2``).

Where a file says its medium (:func:`stated_medium`), first found wins:

* ``AIRORVAC`` — ``'air'`` or ``'vac'`` (IRAF, ESO and SDSS write it);
* ``VACUUM`` — true (``T`` or 1) for vacuum (SDSS and LAMOST write it);
* ``CTYPE1`` — ``AWAV`` air, ``WAVE`` vacuum (FITS WCS paper III, Greisen et al. 2006);
  a MUSE cube or PampelMuse spectrum says ``AWAV``: the MUSE pipeline works in air.

A file that says none of them is taken on its format's convention — SDSS and LAMOST
binary tables and LAMOST images are on vacuum wavelengths — and otherwise on air, as
ULySS reads it, said as *assumed*. ``--medium`` / ``medium=`` overrides all of this
(:func:`spectrum_in_medium`).
"""

from dataclasses import replace

import numpy as np

from ulyss_ann.model.medium import AIR, SPECTRUM_MEDIUM, VACUUM, air_to_vacuum, check_medium, vacuum_to_air
from ulyss_ann.spectra.spectrum import ASSUMED, regular_grid

__all__ = ["stated_medium", "file_medium", "spectrum_in_medium", "medium_note", "SURVEY_CONVENTION"]

#: Why an SDSS or LAMOST spectrum that says nothing is on vacuum.
SURVEY_CONVENTION = "SDSS/LAMOST convention: vacuum"
#: Why a spectrum is on the medium the user gave.
OVERRIDE = "override: --medium / medium="

_TRUE, _FALSE = ("T", "TRUE", "1", "Y", "YES"), ("F", "FALSE", "0", "N", "NO")


def _vacuum_flag(value):
    """The ``VACUUM`` keyword as True/False (a boolean, 0/1 or 'T'/'F'), None when it is none of them."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    text = str(value).strip().upper()
    return True if text in _TRUE else False if text in _FALSE else None


def stated_medium(header):
    """(medium, source) that a FITS header states (``AIRORVAC``, ``VACUUM``, ``CTYPE1``), or None."""
    if "AIRORVAC" in header:
        value = str(header["AIRORVAC"]).strip().lower()
        if value in ("air", "vac", "vacuum"):
            return (AIR if value == "air" else VACUUM), f"header AIRORVAC={header['AIRORVAC']}"
    if "VACUUM" in header:
        flag = _vacuum_flag(header["VACUUM"])
        if flag is not None:
            return (VACUUM if flag else AIR), f"header VACUUM={header['VACUUM']}"
    ctype = str(header.get("CTYPE1", "")).strip().upper()
    if ctype[:4] in ("AWAV", "WAVE"):
        return (AIR if ctype.startswith("AWAV") else VACUUM), f"header CTYPE1={ctype}"
    return None


def file_medium(headers, convention=None):
    """(medium, source) of a file from its ``headers`` (the first that states one), else its format's
    ``convention`` ((medium, reason), e.g. SDSS's vacuum), else air, :data:`ASSUMED`."""
    for header in headers:
        stated = stated_medium(header)
        if stated is not None:
            return stated
    return convention if convention is not None else (AIR, ASSUMED)


def spectrum_in_medium(spectrum, medium):
    """``spectrum`` as if its file's wavelengths were in ``medium`` ('air'/'vacuum'; None: as read).

    The readers have converted a vacuum spectrum to air already: taking it as air instead
    brings its file's wavelengths back (:func:`~ulyss_ann.model.medium.air_to_vacuum`, exact
    to < 1e-9 Å, so a regular sampling is recognised again); taking an air one as vacuum
    converts it.
    """
    medium = check_medium(medium, "medium (--medium)")
    if medium is None or medium == spectrum.medium:
        return spectrum if medium is None else replace(spectrum, medium_source=OVERRIDE)
    if medium == VACUUM:  # the file's numbers (air as read) are vacuum ones
        wavelength, grid = vacuum_to_air(spectrum.wavelength), None
    else:  # back to the file's numbers, which are air already
        wavelength = air_to_vacuum(spectrum.wavelength)
        grid = regular_grid(wavelength)
    return replace(spectrum, wavelength=wavelength, grid=grid, medium=medium, medium_source=OVERRIDE)


def medium_note(spectrum):
    """What a table row says of the spectrum's medium: ``air (header CTYPE1=AWAV)``,
    ``vacuum→air (header VACUUM=True)``, ``air (assumed)``."""
    medium = spectrum.medium or SPECTRUM_MEDIUM
    source = spectrum.medium_source or ASSUMED
    shown = medium if medium == SPECTRUM_MEDIUM else f"{medium}→{SPECTRUM_MEDIUM}"
    return f"{shown} ({'assumed' if source == ASSUMED else source})"
