"""Fitting spectra with a network: one core, two engines, a result object, the batch driver.

``core`` (configuration, preparation, the :class:`FitEngine` base class), ``result``
(:class:`FitResult`), ``native_engine`` (NumPy/SciPy, with ``numerics`` and
``lockstep``, ``spectral_block``, ``kernels``), ``gdl_engine`` (ULySS in GDL), ``options`` (the model, the configuration
and fixed values, checked up front), ``engines`` (which engine, one per process), ``api``
(:func:`fit_spectrum`), ``batch`` (:func:`fit`: the driver, on Dask), ``sources`` (a batch's
inputs and their ids), ``run`` (the run's record, the output's lock), ``resume`` (what a
batch continues from), ``journal`` (checksummed records), ``table`` (the results table),
``lsf_measure`` and ``gdl_lsf`` (the line-spread function measured from the data, natively
or by ULySS's ``uly_lsf``), ``figures``.
"""
