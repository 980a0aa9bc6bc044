"""The command line, ``ulyss-ann COMMAND``: one module per family of commands.

``main`` (:mod:`ulyss_ann.cli.main`) builds the parser (``build_parser``) from ``fit``
(fitting), ``lsf`` (LSF files), ``grids`` (grids), ``train`` (training, export; its recipes and
their options from :mod:`ulyss_ann.training.train`'s registry) and ``paper`` (self-inversion,
the NGC 6397 simulation and analysis), runs the command, and prints any user error as
one line. ``options`` holds what every command spells the same way: ``-m/--model MODEL``
(a file or a bundled name, ``example`` or ``miles``) and ``--dashboard``.
"""

from ulyss_ann.cli.main import build_parser, main

__all__ = ["main", "build_parser"]
