"""Fitting spectra with a network: one core, two engines, a result object, the batch driver.

``core`` (configuration, preparation, the :class:`FitEngine` base class), ``result``
(:class:`FitResult`), ``native_engine`` (NumPy/SciPy, with ``numerics`` and
``bounded_lm``), ``gdl_engine`` (ULySS in GDL), ``options`` (the model, the configuration
and fixed values, checked up front), ``engines`` (which engine, one per process), ``api``
(:func:`fit_spectrum`), ``batch`` (:func:`fit`: Dask, journal, resume), ``journal`` (rows
and the results table), ``figures``.
"""
