"""Fitting spectra with a network: the shared core at the top, engines and drivers in subpackages.

The top modules are what every engine and driver shares, and import none of the subpackages:
``core`` (:class:`~ulyss_ann.fitting.core.FitConfig`, the :class:`~ulyss_ann.fitting.core.FitEngine`
base class), ``engine_traits`` (what an engine declares), ``engines`` (the registry: engines by
name, as ``"module:Class"`` strings, one engine per process), ``api``
(:func:`~ulyss_ann.fitting.api.fit_spectrum`), ``result`` (:class:`~ulyss_ann.fitting.result.FitResult`),
``result_build`` and ``result_fits`` (a result from an engine's solution; its ``--save-fits`` file),
``fit_options`` (the model, the configuration and fixed values, checked up front), ``preparation``
(one spectrum made ready for an engine), ``masks``, ``quality`` (the flags), ``der_snr``,
``resampling`` and ``error_model`` (the errors), ``valley`` (the flat-χ² check), ``table`` (the
results table of one fit or a batch), ``result_figure`` (a fit's figures), ``safe_files``.

The subpackages, each importing the top (and the layers below), none another:

* ``native_engine`` — the fit in NumPy/SciPy (numba kernels, torch on a GPU);
* ``gdl_engine`` — ULySS's ``uly_fit`` and ``uly_lsf`` in GDL;
* ``batch`` — many spectra on Dask (:func:`~ulyss_ann.fitting.batch.driver.fit`);
* ``lsf`` — the line-spread function measured from the data;
* ``chimap`` — χ² maps and profiles.

No module outside an engine package imports it: the registry names the engines by string.
"""

__all__ = ["api", "core", "der_snr", "engine_traits", "engines", "error_model", "fit_options", "masks",
           "preparation", "quality", "resampling", "result", "result_build", "result_fits", "result_figure",
           "safe_files", "table", "valley",
           "native_engine", "gdl_engine", "batch", "lsf", "chimap"]
