"""The command line, ``ulyss-ann COMMAND``: one module per family of commands.

``main`` (:mod:`ulyss_ann.cli.main`) builds the parser from ``fit`` (fitting and LSF files),
``grids`` (grids, training, self-inversion) and ``paper`` (the NGC 6397 simulation and
analysis), runs the command, and prints any user error as one line.
"""

from ulyss_ann.cli.main import main

__all__ = ["main"]
