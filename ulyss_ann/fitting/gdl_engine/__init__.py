"""The GDL engine: ULySS itself in GDL with a generated component (``--engine gdl``).

``engine`` (:class:`~ulyss_ann.fitting.gdl_engine.engine.GDLEngine`, the class the registry
names: ``uly_fit`` on one spectrum), ``uly_lsf`` (the relative LSF by ULySS's ``uly_lsf``) and
``scratch`` (the GDL sessions' scratch folders a batch's workers leave, noted for removal).
Only the registry's string names this package.
"""

__all__ = ["engine", "uly_lsf", "scratch"]
