"""The authors' reference files by name, and where each is downloaded: a table low enough in the layers that
``model`` (the ``-m`` of every command) can say where a missing one comes from.

:mod:`ulyss_ann.spectra.reference_files` searches folders for them; this module only names them.
"""

import os
from dataclasses import dataclass

__all__ = ["AUTHORS_REPOSITORY", "ReferenceFile", "TRIAL7", "TRIAL8", "GSL_NODES", "reference_named"]

AUTHORS_REPOSITORY = "https://github.com/niteshchandra039/ANN_spectral_Interpolator"


@dataclass(frozen=True)
class ReferenceFile:
    """One of the authors' files: our name, the other names it goes by, and where to get it."""

    name: str
    what: str
    aliases: tuple = ()
    source: str = ""

    @property
    def names(self):
        return (self.name, *self.aliases)


TRIAL8 = ReferenceFile("gsl_ann_trial8.fits", "the authors' trial 8",
                       ("toy_interpolator_v0.0.3_trial_8.fits",),
                       f"trials/trial_8/toy_interpolator_v0.0.3_trial_8.fits of {AUTHORS_REPOSITORY}")
TRIAL7 = ReferenceFile("gsl_ann_trial7.fits", "the authors' trial 7",
                       ("toy_interpolator_v0.0.3_trial_7.fits",),
                       f"trials/trial_7/toy_interpolator_v0.0.3_trial_7.fits of {AUTHORS_REPOSITORY}")
# Not in the authors' repository; the bundled example network carries the same 2908 nodes, in the same
# order (its NODES table), which grid surrogate uses when this file is nowhere.
GSL_NODES = ReferenceFile("gsl_nodes.txt", "the authors' list of the 2908 GSL nodes")


def reference_named(path):
    """The downloadable reference file whose name (or alias) ``path``'s file name is, or None."""
    name = os.path.basename(os.fspath(path))
    return next((ref for ref in (TRIAL7, TRIAL8) if name in ref.names), None)
