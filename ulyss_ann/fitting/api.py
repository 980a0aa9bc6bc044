"""One spectrum, one call, one :class:`~ulyss_ann.fitting.result.FitResult`: the notebook's way in.

>>> import ulyss_ann
>>> result = ulyss_ann.fit_spectrum("star.fits", model="gsl_ann_trial7.fits")   # doctest: +SKIP
>>> result.params["Teff"], result.errors["Fe/H"]                               # doctest: +SKIP
>>> result.plot()                                                               # doctest: +SKIP

The spectrum may be a path, a :class:`~ulyss_ann.spectra.spectrum.Spectrum`, a
specutils spectrum or ``(wavelength, flux[, error])`` arrays or Quantities
(:func:`~ulyss_ann.spectra.inputs.as_spectrum`). Many spectra at once, in parallel and
resumable: :func:`~ulyss_ann.fitting.batch.fit`.
"""

import os

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.fitting.batch import make_config
from ulyss_ann.fitting.core import file_sha256
from ulyss_ann.fitting.engines import engine_for, resolve_engine
from ulyss_ann.model.interpolator import Interpolator
from ulyss_ann.spectra.inputs import as_spectrum

__all__ = ["fit_spectrum"]


def _model_path(model):
    from ulyss_ann.spectra.examples import example_interpolator_path

    if model is None:
        return example_interpolator_path()
    if isinstance(model, Interpolator):
        if model.path is None:
            raise UlyssAnnError("the interpolator must come from a file (Interpolator.read, or write it first)")
        return model.path
    return os.fspath(model)


def fit_spectrum(spectrum, model=None, *, engine="auto", fixed=None, **options):
    """Fit one spectrum with an interpolator; return its :class:`~ulyss_ann.fitting.result.FitResult`.

    Parameters
    ----------
    spectrum : path, Spectrum, specutils spectrum, or (wavelength, flux[, error])
        The spectrum (wavelengths in air, Å unless a Quantity says otherwise).
    model : path-like or Interpolator, optional
        The interpolator (default: the bundled example network).
    engine : str
        ``native`` (NumPy), ``gdl`` (ULySS in GDL) or ``auto`` (``gdl`` when GDL and
        ULySS are here, else ``native``), as :func:`~ulyss_ann.fitting.batch.fit`.
    fixed : dict, optional
        Parameter name -> value held fixed (e.g. ``{"Logg": 2.5}``).
    **options
        Any field of :class:`~ulyss_ann.fitting.core.FitConfig`: ``guesses``,
        ``mdegree``, ``wave_range``, ``telluric``, ``mask_nad``, ``masks``, ``losvd``,
        ``lsf``, ``backend``, ``save_fits``…

    Raises
    ------
    UlyssAnnError
        With one line saying what is wrong (an unreadable spectrum or model, an
        unknown option or parameter, no overlap, a guess outside the bounds).
    """
    path = os.path.abspath(_model_path(model))
    interp = model if isinstance(model, Interpolator) else Interpolator.read(path)
    backend = options.get("backend", "auto")
    config = make_config(path, engine=resolve_engine(engine, backend), **options)
    config.model_sha256 = file_sha256(path)
    if config.lsf is not None:
        config.lsf = os.path.abspath(config.lsf)
    fixed_values = {interp.names[interp.parameter_index(name)]: float(value) for name, value in (fixed or {}).items()}
    return engine_for(config, interp).fit(as_spectrum(spectrum), fixed_values)
