"""The version of ulyss_ann (one place: setup.cfg and the generated GDL read it here)."""

__version__ = "0.1.0"
