"""The authors' reference files by name, and where each is downloaded: a table low enough in the layers that
``model`` (the ``-m`` of every command) can say where a missing one comes from.

:mod:`ulyss_ann.spectra.reference_files` searches folders for them; this module only names them.
"""

import os
from dataclasses import dataclass

__all__ = ["AUTHORS_REPOSITORY", "ReferenceFile", "TRIAL7", "TRIAL8", "GSL_NODES", "reference_named",
           "VACUUM_DESPITE_HEADER", "recognised_vacuum"]

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


#: The authors' published networks whose pixels are on vacuum wavelengths although their header says air
#: (``CTYPE1 = 'AWAV'`` written over the PHOENIX grid, which is in vacuum, without converting it). Measured
#: (issue 26): Hβ, Mg b, Na D and Hα of trial 7 and 8 at 5800 K / 4.4 / −0.5 sit +82.9 km/s (median) from
#: their air wavelengths and +0.1 km/s from their vacuum ones. Keyed by (file size, SHA-256), so that the
#: SHA-256 is computed only for files of these sizes.
VACUUM_DESPITE_HEADER = {
    (1123200, "073b44c099c8184bfeb4e35db78abd817d64e94c665a1252d4c1f26eb25f5232"): TRIAL7,
    (1123200, "f17411dc49b8eb648316c570be9f4a8ac714ebb6d35e80e25ecf0699c5a6e2ed"): TRIAL8,
}


def recognised_vacuum(path):
    """``(ReferenceFile, sha256)`` when ``path`` is one of :data:`VACUUM_DESPITE_HEADER`, else None."""
    from ulyss_ann.model.checksum import file_sha256

    try:
        size = os.path.getsize(path)
    except OSError:
        return None
    if not any(size == known for known, _ in VACUUM_DESPITE_HEADER):
        return None
    sha = file_sha256(path)
    reference = VACUUM_DESPITE_HEADER.get((size, sha))
    return None if reference is None else (reference, sha)
