"""The example data bundled with the package, so that the demo runs on a fresh clone.

See ``ulyss_ann/data/PROVENANCE.md`` for how each file was made
(``scripts/make_example_data`` remakes them).
"""

from importlib import resources

from ulyss_ann.model.bundled import bundled_path

__all__ = ["example_interpolator_path", "example_spectrum_path", "miles_interpolator_path",
           "example_interpolator", "example_spectrum"]


def _data_path(name):
    return str(resources.files("ulyss_ann") / "data" / name)


def example_interpolator_path():
    """Path of the bundled example interpolator (a small network fitted to the surrogate grid; name ``example``)."""
    return bundled_path("example")


def example_spectrum_path():
    """Path of the bundled example spectrum (simulated, MUSE-like; see PROVENANCE.md)."""
    return _data_path("example_spectrum.fits")


def miles_interpolator_path():
    """Path of the bundled MILES-trained interpolator (real spectra, name ``miles``; see PROVENANCE.md)."""
    return bundled_path("miles")


def example_interpolator():
    """The bundled example :class:`~ulyss_ann.Interpolator`."""
    from ulyss_ann.model.interpolator import Interpolator

    return Interpolator.read(example_interpolator_path())


def example_spectrum():
    """The bundled example spectrum as an astropy HDU list (flux in HDU 0, SIGMA in HDU 1)."""
    from astropy.io import fits

    return fits.open(example_spectrum_path())
