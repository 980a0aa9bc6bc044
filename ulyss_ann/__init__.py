"""Neural-network spectral interpolators for ULySS: train, export, run in GDL, fit from Python.

Implements and extends Kumar, Prugniel & Singh, "Physical parameters of stars in
NGC 6397 using ANN-based interpolation and full spectrum fitting".

The public API is small:

* :class:`Interpolator` — a trained network as the ULySS perceptron FITS format
  (version 0.0.3) describes it: read/write, ``evaluate`` and its analytic ``jacobian``.
* :class:`Parameter`, :class:`WavelengthGrid` — what an interpolator is made of.
* :class:`Spectrum`, :func:`read_spectrum` — an observed spectrum; MUSE, SDSS/LAMOST,
  1-D FITS and text files.
* :func:`fit_spectrum` — one spectrum (a path, a ``Spectrum``, a specutils spectrum or
  arrays) fitted in memory: a :class:`FitResult` (``params``, ``errors``, ``plot()``).
* :func:`fit` — many spectra, in parallel on Dask, resumable: an astropy table; where it runs
  is an :class:`Execution` (``execution=Execution(workers=0)``); the local cluster it starts is kept for
  the session's next batch, until :func:`close_cluster`.
* :func:`measure_lsf` — the relative line-spread function of a spectrum against the
  network, as ULySS's ``uly_lsf`` (:mod:`ulyss_ann.fitting.lsf.measure`).
* :func:`example_interpolator`, :func:`example_spectrum` — the bundled example data.
* The errors in :mod:`ulyss_ann.errors`.

The subpackages, one concern each (imports point down this list): ``cli``, ``paper``
(self-inversion, NGC 6397), ``fitting`` (both engines, the batch driver), ``gdl`` and
``training``, ``spectra`` (spectra, grids, LSF), ``model`` (the network and its file).
``import ulyss_ann`` loads none of Dask, Keras, matplotlib, Jinja2 or GDL: the fit and
the figures load theirs on use.
"""

from ulyss_ann.errors import (InterpolatorFileError, OutOfBoundsError, OutOfBoundsWarning,  # noqa: F401
                              ParameterError, UlyssAnnError)
from ulyss_ann.model.interpolator import Interpolator  # noqa: F401
from ulyss_ann.model.parameter import Parameter  # noqa: F401
from ulyss_ann.model.wavelength import WavelengthGrid  # noqa: F401
from ulyss_ann.spectra.examples import example_interpolator, example_spectrum  # noqa: F401
from ulyss_ann.spectra.readers import read_spectrum  # noqa: F401
from ulyss_ann.spectra.spectrum import Spectrum  # noqa: F401
from ulyss_ann.version import __version__  # noqa: F401

__all__ = ["Interpolator", "Parameter", "WavelengthGrid", "Spectrum", "read_spectrum", "fit", "Execution",
           "close_cluster", "fit_spectrum", "FitResult", "measure_lsf", "example_interpolator", "example_spectrum",
           "UlyssAnnError", "InterpolatorFileError", "ParameterError", "OutOfBoundsError", "OutOfBoundsWarning", "__version__"]

# The fit loads Dask, tqdm and the engines: on first use (PEP 562), not at import.
_LAZY = {"fit": ("ulyss_ann.fitting.batch.driver", "fit"),
         "Execution": ("ulyss_ann.fitting.batch.execution", "Execution"),
         "fit_spectrum": ("ulyss_ann.fitting.api", "fit_spectrum"),
         "FitResult": ("ulyss_ann.fitting.result", "FitResult"),
         "measure_lsf": ("ulyss_ann.fitting.lsf.measure", "measure_lsf"),
         "close_cluster": ("ulyss_ann.fitting.batch.session_cluster", "close_cluster")}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        value = getattr(importlib.import_module(module), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ulyss_ann' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
