"""χ² maps and profiles, as ULySS's ``uly_chimap`` (``ulyss-ann chimap``).

``map`` (:class:`~ulyss_ann.fitting.chimap.map.ChiMap`, :func:`~ulyss_ann.fitting.chimap.map.chi2_map`,
:func:`~ulyss_ann.fitting.chimap.map.chi2_profile`: χ² over a grid of fixed parameters, the others
optimised, written as FITS) and ``figure`` (its contour or profile plot). The flat-valley check
every fit runs is :mod:`ulyss_ann.fitting.valley`'s, at the top.
"""

__all__ = ["map", "figure"]
