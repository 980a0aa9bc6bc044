"""The relative line-spread function measured from the data with the network (``ulyss-ann lsf measure``).

``measure`` (:func:`~ulyss_ann.fitting.lsf.measure.measure_lsf`: chunks of a spectrum fitted for
cz and σ, as ULySS's ``uly_lsf``; :func:`~ulyss_ann.fitting.lsf.measure.measure_lsf_many` on common
chunks) and ``combine`` (several stars' chunks combined into one LSF, and the instrument's FWHM it
implies). The engine does the fitting (the GDL engine's own ``uly_lsf`` included), chosen through
the registry; the LSF file itself is :mod:`ulyss_ann.spectra.line_spread`'s.
"""

__all__ = ["measure", "combine"]
