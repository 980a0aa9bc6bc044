"""Anything a user may call a spectrum, as a :class:`~ulyss_ann.spectra.spectrum.Spectrum`.

:func:`as_spectrum` takes

* a path (``str`` or path-like): read by :func:`~ulyss_ann.spectra.readers.read_spectrum`;
* a :class:`~ulyss_ann.spectra.spectrum.Spectrum`: as it is;
* a specutils spectrum (``specutils.Spectrum`` of specutils ≥ 2, ``Spectrum1D`` of
  1.x; optional dependency): its spectral axis in any spectral unit (converted to Å),
  its flux, its uncertainty (standard deviation, variance or inverse variance) and
  its mask (True = bad, as specutils and astropy's NDData have it);
* a tuple ``(wavelength, flux[, error])`` of arrays [Å] or astropy Quantities (any
  spectral unit for the wavelength; the error in the flux's unit).

Wavelengths are taken to be in air, ULySS's convention (every model of this package
is in air): convert vacuum wavelengths first (:func:`~ulyss_ann.spectra.spectrum.vacuum_to_air`).
"""

import os

import numpy as np

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.spectra.readers import read_spectrum
from ulyss_ann.spectra.spectrum import Spectrum

__all__ = ["as_spectrum", "is_path", "is_array_tuple"]


def is_path(item):
    """True for a file name (str or path-like), the one input that is not already in memory."""
    return isinstance(item, (str, os.PathLike))


def is_array_tuple(item):
    """True for ``(wavelength, flux[, error])``: a tuple of two or three 1-D arrays (error may be None)."""
    if not isinstance(item, tuple) or len(item) not in (2, 3):
        return False
    return all((x is None and k == 2) or (not isinstance(x, (str, os.PathLike, Spectrum))
                                          and not hasattr(x, "spectral_axis") and np.ndim(x) == 1)
               for k, x in enumerate(item))


def _angstrom(values, what):
    """Wavelengths [Å] from an array (taken as Å) or a Quantity in any spectral unit."""
    unit = getattr(values, "unit", None)
    if unit is None:
        return np.asarray(values, float)
    import astropy.units as u

    try:
        return np.asarray(values.to_value(u.AA, equivalencies=u.spectral()), float)
    except u.UnitConversionError:
        raise UlyssAnnError(f"{what}: unit {unit} is not a spectral unit (wavelength, frequency, energy)") from None


def _value_in(values, unit, what):
    """A Quantity's value in ``unit`` (the flux's), or a plain array as it is."""
    if getattr(values, "unit", None) is None:
        return np.asarray(values, float)
    if unit is None:
        return np.asarray(values.value, float)
    import astropy.units as u

    try:
        return np.asarray(values.to_value(unit), float)
    except u.UnitConversionError:
        raise UlyssAnnError(f"{what}: unit {values.unit} differs from the flux's {unit}") from None


def _increasing(wavelength, *arrays):
    """Everything reversed when the wavelengths decrease (a frequency or energy axis, in λ)."""
    if wavelength.size > 1 and wavelength[0] > wavelength[-1]:
        return (wavelength[::-1],) + tuple(None if a is None else np.asarray(a)[::-1] for a in arrays)
    return (wavelength,) + arrays


def _from_specutils(spec, meta):
    flux = spec.flux
    if np.ndim(flux) != 1:
        raise UlyssAnnError(f"a specutils spectrum of shape {np.shape(flux)}: give one 1-D spectrum at a time "
                            "(iterate over the collection)")
    wavelength = _angstrom(spec.spectral_axis, "spectral_axis")
    values = np.asarray(flux.value, float)
    error = None
    uncertainty = getattr(spec, "uncertainty", None)
    if uncertainty is not None:
        kind = getattr(uncertainty, "uncertainty_type", "std")
        power = {"std": 1, "var": 2, "ivar": -2}.get(kind)
        if power is None:
            raise UlyssAnnError(f"specutils uncertainty of type {kind!r}: expected std, var or ivar")
        array = np.asarray(uncertainty.array, float)
        unit = getattr(uncertainty, "unit", None)
        if unit is not None and flux.unit is not None:  # in the flux's unit (squared for var, inverse for ivar)
            import astropy.units as u

            try:
                array = np.asarray((array * unit).to_value(flux.unit ** power), float)
            except u.UnitConversionError:
                raise UlyssAnnError(f"uncertainty in {unit}, which does not go with the flux's {flux.unit} "
                                    f"({kind})") from None
        with np.errstate(divide="ignore", invalid="ignore"):
            if power == 1:
                error = array
            elif power == 2:
                error = np.sqrt(array)
            else:
                error = np.where(array > 0, 1.0 / np.sqrt(np.where(array > 0, array, 1.0)), np.nan)
    good = None if getattr(spec, "mask", None) is None else ~np.asarray(spec.mask, bool)
    wavelength, values, error, good = _increasing(wavelength, values, error, good)
    meta = dict(meta)
    spec_meta = getattr(spec, "meta", None) or {}
    for key in ("id", "ra", "dec"):
        if key in spec_meta:
            meta.setdefault(key, spec_meta[key])
    return Spectrum.from_arrays(wavelength, values, error, good=good, meta=meta, fmt="arrays")


def as_spectrum(item, default_id=None):
    """``item`` as a Spectrum (see the module's text for what it may be).

    ``default_id``: the id of an in-memory spectrum that carries none (a batch numbers
    them so that their rows stay apart).
    """
    meta = {"id": default_id} if default_id is not None else {}
    if isinstance(item, Spectrum):
        return item
    if is_path(item):
        return read_spectrum(os.fspath(item))
    if hasattr(item, "spectral_axis") and hasattr(item, "flux"):
        return _from_specutils(item, meta)
    if is_array_tuple(item):
        wavelength = _angstrom(item[0], "wavelength")
        flux = item[1]
        unit = getattr(flux, "unit", None)
        error = _value_in(item[2], unit, "error") if len(item) == 3 and item[2] is not None else None
        wavelength, flux, error = _increasing(wavelength, _value_in(flux, None, "flux"), error)
        return Spectrum.from_arrays(wavelength, flux, error, meta=meta)
    raise UlyssAnnError(f"cannot fit a {type(item).__name__}: give a file name, a ulyss_ann.Spectrum, a specutils "
                        "spectrum, or (wavelength, flux[, error]) arrays")
