r"""The wavelength medium — air or vacuum — of a network's pixels, and the conversion between them.

A line at 6564.61 Å in vacuum is at 6562.80 Å in air: the same spectrum labelled with the
other medium is shifted by ≈ 83 km/s (82.6–83.8 km/s over 4760–7390 Å). The fit compares
like with like: a model whose medium differs from the spectrum's (air, once read) has
its wavelength axis converted first (:func:`axis_in_medium`).

**The formula** is the IAU standard (Edlén 1953; Ciddor 1996 as simplified by Morton
2000, ApJS 130, 403, Eq. 8), as VALD and SDSS use it:

.. math::

    n = 1 + 8.34254\times10^{-5} + \frac{2.406147\times10^{-2}}{130 - s^2}
          + \frac{1.5998\times10^{-4}}{38.9 - s^2}, \qquad s = 10^4/\lambda_\mathrm{vac}\ [\mu\mathrm{m}^{-1}],

:math:`\lambda_\mathrm{air} = \lambda_\mathrm{vac}/n`. Its inverse (N. Piskunov's, in VALD's
air-to-vacuum conversion) is exact to ~1e-5 Å; :func:`air_to_vacuum` refines it by Newton
steps on the forward formula, so that ``vacuum_to_air(air_to_vacuum(x))`` gives x to < 1e-9 Å.

**Where a file says its medium** (:func:`medium_from_header`): ``AIRORVAC`` (``'air'`` /
``'vac'``, as IRAF and ESO write it), ``VACUUM`` (a boolean, as SDSS and LAMOST write it),
then ``CTYPE1`` (``AWAV`` air, ``WAVE`` vacuum); none of them: air, as ULySS reads it.
The authors' two published networks say ``AWAV`` over PHOENIX (vacuum) wavelengths that
were never converted: they are recognised by their SHA-256
(:data:`~ulyss_ann.model.reference_names.VACUUM_DESPITE_HEADER`).
"""

from dataclasses import replace

import numpy as np

__all__ = ["AIR", "VACUUM", "MEDIA", "vacuum_to_air", "air_to_vacuum", "medium_from_header", "check_medium",
           "axis_in_medium", "axis_residual_kms", "other_medium", "model_medium", "conversion_note",
           "SPECTRUM_MEDIUM", "on_spectra_axis", "OVERRIDE", "RECOGNISED", "stated_by_header"]

AIR, VACUUM = "air", "vacuum"
MEDIA = (AIR, VACUUM)


def _refractive_index(vacuum_wavelength):
    """Morton (2000) Eq. 8: the refractive index of standard air at a vacuum wavelength [Å]."""
    s2 = (1e4 / np.asarray(vacuum_wavelength, dtype=float)) ** 2
    return 1 + 8.34254e-5 + 2.406147e-2 / (130 - s2) + 1.5998e-4 / (38.9 - s2)


def vacuum_to_air(wavelength):
    """Air wavelengths [Å] from vacuum ones [Å] (the IAU standard, Morton 2000 Eq. 8; see the module's text)."""
    wavelength = np.asarray(wavelength, dtype=float)
    return wavelength / _refractive_index(wavelength)


def air_to_vacuum(wavelength):
    """Vacuum wavelengths [Å] from air ones [Å]: the exact inverse of :func:`vacuum_to_air` (< 1e-9 Å)."""
    air = np.asarray(wavelength, dtype=float)
    s2 = (1e4 / air) ** 2  # Piskunov's inverse formula (VALD) as the starting point
    vacuum = air * (1 + 8.336624212083e-5 + 2.408926869968e-2 / (130.1065924522 - s2)
                    + 1.599740894897e-4 / (38.92568793293 - s2))
    for _ in range(3):  # Newton on f(v) = v / n(v) - air; d f / d v ≈ 1 / n to 1e-7
        vacuum = vacuum - (vacuum_to_air(vacuum) - air) * _refractive_index(vacuum)
    return vacuum


def other_medium(medium):
    """Vacuum for air, air for vacuum: where a converted axis came from."""
    return VACUUM if medium == AIR else AIR


def check_medium(medium, what="medium"):
    """``medium`` as 'air' or 'vacuum' (None stays None), or UlyssAnnError naming ``what``."""
    if medium is None:
        return None
    text = str(medium).strip().lower()
    text = {"vac": VACUUM}.get(text, text)
    if text not in MEDIA:
        from ulyss_ann.errors import UlyssAnnError

        raise UlyssAnnError(f"{what} '{medium}': choose air or vacuum")
    return text


def medium_from_header(header):
    """(medium, source) that a FITS header states: AIRORVAC, VACUUM, then CTYPE1; else air (ULySS's reading)."""
    if "AIRORVAC" in header:
        value = str(header["AIRORVAC"]).strip().lower()
        if value in ("air", "vac", "vacuum"):
            return (AIR if value == "air" else VACUUM), f"header AIRORVAC={header['AIRORVAC']}"
    if "VACUUM" in header and isinstance(header["VACUUM"], (bool, np.bool_)):
        return (VACUUM if header["VACUUM"] else AIR), f"header VACUUM={'T' if header['VACUUM'] else 'F'}"
    ctype = str(header.get("CTYPE1", "")).strip().upper()
    if ctype[:4] in ("AWAV", "WAVE"):
        return (AIR if ctype.startswith("AWAV") else VACUUM), f"header CTYPE1={ctype}"
    return AIR, "no CTYPE1, AIRORVAC or VACUUM in the header: air, as ULySS reads it"


def axis_in_medium(grid, source_medium, target_medium):
    """The regular :class:`~ulyss_ann.model.wavelength.WavelengthGrid` nearest to ``grid`` converted.

    A medium conversion is not exactly a change of start and step (the refractive index
    varies with λ), but both engines take a network's axis as a start and a step (ULySS's
    ``uly_spect_alloc``). The converted axis is the least-squares line (in λ, or in ln λ on
    a log axis) through the exactly converted pixel centres: over the GSL networks'
    4762–7385 Å the largest departure is 0.0011 Å, 0.07 km/s (:func:`axis_residual_kms`),
    where a pure velocity shift would leave ±0.6 km/s.
    """
    if source_medium == target_medium:
        return grid
    lam = grid.wavelength
    converted = vacuum_to_air(lam) if target_medium == AIR else air_to_vacuum(lam)
    axis = np.log(converted) if grid.log else converted
    index = np.arange(grid.npix) + 1.0 - grid.crpix
    step, start = np.polyfit(index, axis, 1)
    return replace(grid, crval=float(start), cdelt=float(step), air=target_medium == AIR)


def axis_residual_kms(grid, source_medium, target_medium):
    """Largest velocity difference [km/s] between :func:`axis_in_medium` and the exact conversion."""
    from ulyss_ann.model.wavelength import C_KMS

    lam = grid.wavelength
    exact = vacuum_to_air(lam) if target_medium == AIR else air_to_vacuum(lam)
    if source_medium == target_medium:
        return 0.0
    return float(C_KMS * np.max(np.abs(axis_in_medium(grid, source_medium, target_medium).wavelength / exact - 1)))


#: The ``medium_source`` of a network whose medium the user gave (medium=, model_medium=, --model-medium).
OVERRIDE = "override"
#: How the ``medium_source`` of one of the authors' files recognised by its SHA-256 begins.
RECOGNISED = "recognised: "


def stated_by_header(source):
    """Whether a network's ``medium_source`` is its file's own say (a header card, or none: air), the one
    reading that its lines may contradict unnoticed: neither the user's override nor a recognised file."""
    return bool(source) and source != OVERRIDE and not source.startswith(RECOGNISED)


_NOTICED = set()  # files whose recognition was said, in this process: once is enough


def model_medium(path, stated, stated_source, override=None):
    """(medium, source) of the interpolator file ``path``: ``override`` if given, else the authors'
    recognised files (vacuum, said once in a UserWarning), else what its header states."""
    import os
    import warnings

    from ulyss_ann.model.reference_names import recognised_vacuum

    override = check_medium(override, "model medium (medium=, --model-medium)")
    if override is not None:
        return override, OVERRIDE
    recognised = recognised_vacuum(path) if stated == AIR else None
    if recognised is None:
        return stated, stated_source
    reference, sha = recognised
    source = f"{RECOGNISED}{reference.what} (SHA-256 {sha[:12]}…), vacuum although its header says air"
    if os.path.realpath(path) not in _NOTICED:
        _NOTICED.add(os.path.realpath(path))
        warnings.warn(f"{os.path.basename(path)}: {reference.what}, recognised by its SHA-256, is on vacuum "
                      "wavelengths although its header says air (CTYPE1=AWAV): fits convert its axis to air "
                      "(--model-medium / medium= overrides)", UserWarning, stacklevel=3)
    return VACUUM, source


def reason_in_brief(source):
    """The few words of a medium's ``source`` a table row carries: the recognised file's name, else the source."""
    return source.split(" (SHA-256")[0][len(RECOGNISED):] if source.startswith(RECOGNISED) else source


def conversion_note(original, source, target):
    """What a table row says of the model's medium: ``vacuum→air (the authors' trial 7)``, or ``air (header …)``."""
    medium = original if original == target else f"{original}→{target}"
    return f"{medium} ({reason_in_brief(source)})"


#: The medium of every spectrum a fit sees: the readers convert vacuum spectra to air
#: (:meth:`~ulyss_ann.spectra.spectrum.Spectrum.from_arrays`, ``vacuum=True``), as ULySS expects.
SPECTRUM_MEDIUM = AIR


def on_spectra_axis(interp, override=None):
    """``interp`` as a fit meets the spectra: on :data:`SPECTRUM_MEDIUM` wavelengths, its medium
    taken as ``override`` ('air'/'vacuum') when given. Both engines take the model from here."""
    from dataclasses import replace as replaced

    override = check_medium(override, "model medium (model_medium=, --model-medium)")
    if override is None and interp.medium_conversion is not None:
        return interp  # converted already
    if override is not None:
        interp = replaced(interp, medium=override, medium_source=OVERRIDE)
    return interp.in_medium(SPECTRUM_MEDIUM)
