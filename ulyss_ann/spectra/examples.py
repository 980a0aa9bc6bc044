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
    """The bundled example interpolator (name ``example``: what ``model`` is by default).

    Returns
    -------
    Interpolator
        A small network (3 → 16 → 32 → 2099) trained on the SURROGATE grid: Teff [K], Logg
        and Fe/H [dex] to a normalised spectrum of 4761–7383 Å (air). For trying things out,
        not for science (``ulyss_ann/data/PROVENANCE.md``).

    Examples
    --------
    >>> ulyss_ann.example_interpolator().names   # doctest: +SKIP
    ('Teff', 'Logg', 'Fe/H')
    """
    from ulyss_ann.model.interpolator import Interpolator

    return Interpolator.read(example_interpolator_path())


def example_spectrum():
    """The bundled example spectrum: a simulated MUSE-like star, as an astropy HDU list.

    Returns
    -------
    astropy.io.fits.HDUList
        Flux in HDU 0 (relative, 4780–7364 Å in air), its 1-σ error in HDU 1 ``SIGMA``; the
        header's ``SIM_*`` cards give the true parameters. Close it when done (or use
        ``with``). ``ulyss_ann.fit_spectrum`` and ``ulyss_ann.fit`` take it as it is.

    Examples
    --------
    >>> import ulyss_ann
    >>> with ulyss_ann.example_spectrum() as star:
    ...     result = ulyss_ann.fit_spectrum(star)
    >>> round(result.params["Teff"], -1)
    5500.0

    See Also
    --------
    ulyss_ann.spectra.examples.example_spectrum_path : its file, which ``read_spectrum`` reads as the fit does.
    """
    from astropy.io import fits

    return fits.open(example_spectrum_path())
