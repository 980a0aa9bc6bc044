"""The command line, ``ulyss-ann COMMAND``: one module per family of commands.

``main`` (:mod:`ulyss_ann.cli.main`) builds the parser (``build_parser``) from ``fit``
(fitting), ``lsf`` (LSF files), ``grids`` (grids), ``train`` (training, export; its recipes and
their options from :mod:`ulyss_ann.training.train`'s registry) and ``paper`` (self-inversion,
the NGC 6397 simulation and analysis), runs the command, and prints any user error as
one line. ``options`` holds what every command spells the same way: ``-m/--model MODEL``
(a file or a bundled name, ``example`` or ``miles``) and ``--dashboard``.
"""

# The console script's address (setup.cfg: ``ulyss-ann = ulyss_ann.cli:main``, as installed scripts
# name it): the one name this package re-exports; everything else has its module's address only.
from ulyss_ann.cli.main import main

__all__ = ["main"]
