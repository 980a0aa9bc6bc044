"""A specutils spectrum (``specutils.Spectrum`` of specutils ≥ 2, ``Spectrum1D`` of 1.x; an optional
dependency, never imported here) as the arrays of a :class:`~ulyss_ann.spectra.spectrum.Spectrum`:
its spectral axis in any spectral unit (converted to Å, increasing), its flux, its uncertainty
(standard deviation, variance or inverse variance, in the flux's unit) and its mask (True = bad, as
specutils and astropy's NDData have it)."""

import numpy as np

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.spectra.spectrum import check_real

__all__ = ["specutils_arrays", "angstrom", "increasing"]


def angstrom(values, what):
    """Wavelengths [Å] from an array (taken as Å) or a Quantity in any spectral unit."""
    unit = getattr(values, "unit", None)
    if unit is None:
        return np.asarray(values, float)
    import astropy.units as u

    try:
        return np.asarray(values.to_value(u.AA, equivalencies=u.spectral()), float)
    except u.UnitConversionError:
        raise UlyssAnnError(f"{what}: unit {unit} is not a spectral unit (wavelength, frequency, energy)") from None


def increasing(wavelength, *arrays):
    """Everything reversed when the wavelengths decrease (a frequency or energy axis, in λ)."""
    if wavelength.size > 1 and wavelength[0] > wavelength[-1]:
        return (wavelength[::-1],) + tuple(None if a is None else np.asarray(a)[::-1] for a in arrays)
    return (wavelength,) + arrays


def _error(uncertainty, flux_unit):
    """The 1-σ error of a specutils uncertainty (std, var or ivar), in the flux's unit."""
    kind = getattr(uncertainty, "uncertainty_type", "std")
    power = {"std": 1, "var": 2, "ivar": -2}.get(kind)
    if power is None:
        raise UlyssAnnError(f"specutils uncertainty of type {kind!r}: expected std, var or ivar")
    array = np.asarray(uncertainty.array, float)
    unit = getattr(uncertainty, "unit", None)
    if unit is not None and flux_unit is not None:  # in the flux's unit (squared for var, inverse for ivar)
        import astropy.units as u

        try:
            array = np.asarray((array * unit).to_value(flux_unit ** power), float)
        except u.UnitConversionError:
            raise UlyssAnnError(f"uncertainty in {unit}, which does not go with the flux's {flux_unit} "
                                f"({kind})") from None
    with np.errstate(divide="ignore", invalid="ignore"):
        if power == 1:
            return array
        if power == 2:
            return np.sqrt(array)
        return np.where(array > 0, 1.0 / np.sqrt(np.where(array > 0, array, 1.0)), np.nan)


def specutils_arrays(spec):
    """(wavelength [Å], flux, error or None, good or None, meta) of a 1-D specutils spectrum; ``meta``: the
    ``id``, ``ra``, ``dec`` of its own meta. The caller checks that it is 1-D."""
    flux = spec.flux
    check_real(flux, "flux")
    wavelength = angstrom(spec.spectral_axis, "spectral_axis")
    values = np.asarray(flux.value, float)
    uncertainty = getattr(spec, "uncertainty", None)
    error = None if uncertainty is None else _error(uncertainty, flux.unit)
    good = None if getattr(spec, "mask", None) is None else ~np.asarray(spec.mask, bool)
    wavelength, values, error, good = increasing(wavelength, values, error, good)
    spec_meta = getattr(spec, "meta", None) or {}
    meta = {key: spec_meta[key] for key in ("id", "ra", "dec") if key in spec_meta}
    return wavelength, values, error, good, meta
