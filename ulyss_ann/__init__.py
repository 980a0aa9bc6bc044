"""ulyss_ann — neural-network spectral interpolators for ULySS.

Implements and extends Kumar, Prugniel & Singh, "Physical parameters of stars in
NGC 6397 using ANN-based interpolation and full spectrum fitting".

The public API is small:

* :class:`Interpolator` — a trained network as the ULySS perceptron FITS format
  (version 0.0.3) describes it: read/write, ``evaluate`` and its analytic ``jacobian``.
* :class:`Parameter`, :class:`WavelengthGrid` — what an interpolator is made of.
* :func:`fit` — many spectra fitted by ULySS in GDL, in parallel, resumable.
* :func:`read_spectrum` — MUSE, SDSS/LAMOST, 1-D FITS and text spectra.
* :func:`example_interpolator`, :func:`example_spectrum` — the bundled example data.
* The errors in :mod:`ulyss_ann.errors`.
"""

__version__ = "0.1.0"

from .errors import (InterpolatorFileError, OutOfBoundsError, OutOfBoundsWarning,  # noqa: F401
                     ParameterError, UlyssAnnError)
from .interpolator import Interpolator, Parameter  # noqa: F401
from .wavelength import WavelengthGrid  # noqa: F401
from .example_data import example_interpolator, example_spectrum  # noqa: F401
from .spectrum_readers import Spectrum, read_spectrum  # noqa: F401
from .batch import fit  # noqa: F401
