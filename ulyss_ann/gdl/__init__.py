"""GDL and ULySS from Python: finding them, talking to GDL, generating a ULySS component.

``ulyss_location`` (where ULySS is), ``literals`` (outside text as safe GDL source),
``process`` (one-off ``gdl`` runs), ``session`` (a lasting session: in-process
python3-gdl or a ``gdl`` subprocess), ``component`` (renders ``ulyss_ann/gdl/templates/`` for one
interpolator file).
"""

# the subpackage's modules (each name has one address: its module's)
__all__ = ["component", "component_cache", "literals", "process", "pygdl_halt", "reserved_names", "session",
           "ulyss_location"]
