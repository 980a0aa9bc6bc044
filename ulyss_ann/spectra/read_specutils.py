"""specutils' own loaders through this package's registry: ``--format specutils`` hands the file to
``specutils.Spectrum.read`` (``Spectrum1D.read`` before specutils 2), which picks its loader from the
file; ``--format specutils:NAME`` names that loader (``specutils:tabular-fits``, ``specutils:APOGEE apStar``…).

Never chosen by content (specutils' loaders would claim files this package reads itself, with
other conventions): only when ``format=`` names it. specutils is an optional dependency
(``pip install specutils``), imported only then.
"""

import numpy as np

from ulyss_ann.errors import UlyssAnnError, first_line
from ulyss_ann.spectra.reader_registry import SpectrumReader, SpectrumReadError, register_reader
from ulyss_ann.spectra.specutils_spectra import specutils_arrays

__all__ = ["SpecutilsReader"]


def _spectrum_class(path):
    try:
        import specutils
    except ImportError:
        raise SpectrumReadError(f"{path}: --format specutils needs specutils, which is not installed "
                                "(pip install specutils)") from None
    return getattr(specutils, "Spectrum", None) or specutils.Spectrum1D


class SpecutilsReader(SpectrumReader):
    """The file read by specutils (its loader ``loader``, else the one specutils identifies)."""

    name = "specutils"
    description = "any format specutils reads (only when named: --format specutils or specutils:LOADER)"
    priority = 0
    identifies = False

    def __init__(self, loader=None):
        self.loader = loader or None

    def identify(self, source):
        return False

    def with_option(self, option):
        return SpecutilsReader(option)

    def read(self, source):
        path = source.path
        cls = _spectrum_class(path)
        try:
            spec = cls.read(path, **({"format": self.loader} if self.loader else {}))
        except Exception as exc:  # specutils' loaders raise anything; said in one line, naming the file
            raise SpectrumReadError(f"{path}: specutils{':' + self.loader if self.loader else ''} cannot read it "
                                    f"({type(exc).__name__}: {first_line(exc, 120)})") from None
        if np.ndim(spec.flux) != 1:
            raise SpectrumReadError(f"{path}: specutils read {np.shape(spec.flux)} fluxes, several spectra; give "
                                    "a file of one spectrum (or read it with specutils and fit each)")
        try:
            wavelength, flux, error, good, meta = specutils_arrays(spec)
        except UlyssAnnError as exc:  # a unit or an uncertainty this package cannot take
            raise SpectrumReadError(f"{path}: {exc}") from None
        return self.spectrum(source, wavelength, flux, error, good, None, meta)


register_reader(SpecutilsReader())
