"""The interpolators bundled with the package, reachable by name: ``example`` and ``miles``.

Wherever an interpolator is asked for — ``Interpolator.read``, ``ulyss_ann.fit``,
``fit_spectrum``, ``measure_lsf``, the ``-m/--model`` option of every command — it may be
a file or one of these names. An existing file wins (a file called ``miles`` in the
current folder is that file); otherwise a bundled name; otherwise one line naming the
value and the bundled names. See ``ulyss_ann/data/PROVENANCE.md`` for how each was made.
"""

import os
from importlib import resources

from ulyss_ann.errors import InterpolatorFileError
from ulyss_ann.model.reference_names import reference_named

__all__ = ["BUNDLED", "bundled_names", "bundled_path", "bundled_name_of", "interpolator_file"]

#: name -> (file in ulyss_ann/data, what it is)
BUNDLED = {
    "example": ("example_interpolator.fits", "a small network fitted to the SURROGATE grid"),
    "miles": ("miles_trial7x5.fits", "trial 7's architecture, 5 networks averaged, trained on the MILES library "
                                     "(real spectra), cross-validated"),
}


def bundled_names():
    """The names of the bundled interpolators, in order: ``('example', 'miles')``."""
    return tuple(BUNDLED)


def bundled_path(name):
    """The file of the bundled interpolator ``name`` (KeyError for another name)."""
    return str(resources.files("ulyss_ann") / "data" / BUNDLED[name][0])


def bundled_name_of(path):
    """The bundled name whose file ``path`` is, or None."""
    path = os.path.realpath(os.fspath(path))
    for name in BUNDLED:
        if os.path.realpath(bundled_path(name)) == path:
            return name
    return None


def interpolator_file(model):
    """The file of an interpolator given as a path or a bundled name.

    An existing file wins (a folder of that name does not hide a bundled one); else a bundled name (:data:`BUNDLED`) gives its file; else
    :class:`~ulyss_ann.errors.InterpolatorFileError`, one line naming ``model`` and the
    bundled names.
    """
    path = os.fspath(model)
    # a file, not a folder: `grid miles DIR` makes folders called miles
    if os.path.isfile(path) or (os.path.exists(path) and path not in BUNDLED):
        return path
    if path in BUNDLED:
        return bundled_path(path)
    reference = reference_named(path)
    if reference is not None:  # the README's first command names one: say where it comes from
        raise InterpolatorFileError(path, f"no such file, nor a bundled interpolator; it is {reference.what}, "
                                          f"not in the package: download {reference.source} and give its path "
                                          f"(or try a bundled one: {', '.join(BUNDLED)})")
    raise InterpolatorFileError(path, f"no such file, nor a bundled interpolator (bundled: "
                                      f"{', '.join(BUNDLED)}); check the path")
