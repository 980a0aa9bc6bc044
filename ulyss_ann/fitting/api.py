"""One spectrum, one call, one :class:`~ulyss_ann.fitting.result.FitResult`: the notebook's way in.

>>> import ulyss_ann
>>> result = ulyss_ann.fit_spectrum("star.fits", model="gsl_ann_trial7.fits")   # doctest: +SKIP
>>> result.params["Teff"], result.errors["Fe/H"]                               # doctest: +SKIP
>>> result.plot()                                                               # doctest: +SKIP

The spectrum may be a path, a :class:`~ulyss_ann.spectra.spectrum.Spectrum`, a
specutils spectrum or ``(wavelength, flux[, error])`` arrays or Quantities
(:func:`~ulyss_ann.spectra.inputs.as_spectrum`). Many spectra at once, in parallel and
resumable: :func:`~ulyss_ann.fitting.batch.driver.fit`.
"""

import os

from ulyss_ann.fitting.fit_options import FixedValues, check_combination, make_config, model_path
from ulyss_ann.fitting.engines import engine_for, require_engine, resolve_engine
from ulyss_ann.model.interpolator import Interpolator
from ulyss_ann.spectra.inputs import as_spectrum

__all__ = ["fit_spectrum"]


def fit_spectrum(spectrum, model=None, *, engine="auto", fixed=None, **options):
    """Fit one spectrum with an interpolator; return its :class:`~ulyss_ann.fitting.result.FitResult`.

    Parameters
    ----------
    spectrum : path, Spectrum, specutils spectrum, or (wavelength, flux[, error])
        The spectrum (Å unless a Quantity says otherwise; a file's medium as its header says, arrays in
        air unless ``medium='vacuum'``: :mod:`~ulyss_ann.spectra.spectrum_medium`).
    model : path-like or Interpolator, optional
        The interpolator: a file, a bundled name (``'example'``, the default, or ``'miles'``), or an
        Interpolator read from a file.
    engine : str
        ``native`` (NumPy), ``gdl`` (ULySS in GDL) or ``auto`` (``gdl`` when GDL and
        ULySS are here, else ``native``), as :func:`~ulyss_ann.fitting.batch.driver.fit`.
    fixed : dict, optional
        Parameter name -> value held fixed (e.g. ``{"Logg": 2.5}``).
    **options
        Any field of :class:`~ulyss_ann.fitting.core.FitConfig`: ``guesses``,
        ``mdegree``, ``wave_range``, ``telluric``, ``mask_nad``, ``masks``, ``losvd``,
        ``lsf``, ``device``, ``search``, ``backend``, ``save_fits``, ``model_medium``, ``medium``, ``format``…

    Returns
    -------
    FitResult
        The parameters and their 1-σ errors in the interpolator's units (``result.units``),
        ``cz`` and ``sigma`` [km/s], the reduced χ², quality ``flags``, the fitted arrays;
        ``plot()``, ``to_table()``, ``write_fits(folder)``.

    Raises
    ------
    UlyssAnnError
        With one line saying what is wrong (an unreadable spectrum or model, an
        unknown option or parameter, no overlap, a guess outside the bounds).

    See Also
    --------
    ulyss_ann.fit : many spectra, in parallel, resumable.
    ulyss_ann.read_spectrum : a file read as the fit reads it.

    Examples
    --------
    The MUSE star of ``docs/python.md``:

    >>> result = ulyss_ann.fit_spectrum("star.fits", model="gsl_ann_trial7.fits")   # doctest: +SKIP
    >>> result.params["Teff"], result.errors["Teff"], result.units["Teff"]        # doctest: +SKIP
    (5425.6, 5.2, 'K')
    """
    config, fitter, _, spectrum, values = configured_call(spectrum, model, engine, fixed, options)
    # this call's options, passed on: another thread may give the shared engine its own meanwhile
    return fitter.fit(spectrum, values, config=config)


def configured_call(spectrum, model, engine, fixed, options):
    """What a fit of one spectrum needs, every option checked first: the call's FitConfig (to pass to the
    shared engine's fits), the engine, the network, the spectrum read, and its fixed values (for
    :func:`fit_spectrum` and the χ² maps alike)."""
    path = os.path.abspath(model_path(model))
    interp = model if isinstance(model, Interpolator) else Interpolator.read(path)
    config = make_config(path, interp, engine=resolve_engine(engine, options.get("backend", "auto"),
                                                             losvd=options.get("losvd", "sampled"),
                                                             device=options.get("device", "auto"),
                                                             search=options.get("search", "auto")), **options)
    fixed_values = FixedValues(fixed, interp)
    check_combination(config, fixed_values)
    require_engine(config.engine, config.backend)  # after the options: those are refused on any machine
    spectrum = as_spectrum(spectrum, format=config.format)  # format=: the reader forced, else the file's own
    values = fixed_values.for_spectrum(str(spectrum.meta.get("id")))
    return config, engine_for(config, interp), interp, spectrum, values
