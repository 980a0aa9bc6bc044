"""Where the authors' reference files are found: one lookup for every command that defaults to them.

``ulyss-ann grid surrogate`` and ``ulyss-ann simulate ngc6397`` default to the authors' trial-8
network (Kumar, Prugniel & Singh), and ``grid surrogate`` to their list of the 2908 GSL nodes.
These files are not in the package (they are the authors', and large); a user downloads them.
Each is looked for, first found wins, in:

1. the explicit option (``-m FILE``, ``--nodes FILE``): used as given, never searched;
2. the folder ``$ULYSS_ANN_REFERENCE_DIR``;
3. the current folder;
4. the user data folder ``$XDG_DATA_HOME/ulyss_ann/reference`` (``~/.local/share/ulyss_ann/reference``,
   beside ``$XDG_DATA_HOME/ulyss_ann/gdl`` where ``gdl-export --install`` writes);
5. in a development checkout only (the package beside ``pyproject.toml``),
   ``../shared/data/reference`` next to the checkout.

In each folder a file is known by our name (``gsl_ann_trial8.fits``) or by the name it has in the
authors' repository (``toy_interpolator_v0.0.3_trial_8.fits``), so a downloaded file works as it is.
When none is found, :func:`missing_reference` gives the one line: the files sought, the places
searched, and where to download them.
"""

import os
from pathlib import Path

from ulyss_ann.errors import UlyssAnnError
# the names and sources live in model, so that -m gsl_ann_trial7.fits can say where to download it
from ulyss_ann.model.reference_names import AUTHORS_REPOSITORY, GSL_NODES, TRIAL7, TRIAL8, ReferenceFile  # noqa: F401

__all__ = ["ENV_VAR", "search_folders",
           "find_reference", "require_reference", "missing_reference", "user_reference_folder"]

#: The environment variable naming a folder of the authors' files (searched before the current folder).
ENV_VAR = "ULYSS_ANN_REFERENCE_DIR"

# The package beside pyproject.toml is a development checkout; only there is ../shared/data/reference
# (the project's shared data) a place to look. None in an installed wheel, where the same relative path
# would be site-packages/../shared. Module-level so that a test can take it away.
_CHECKOUT = Path(__file__).resolve().parents[2]
DEVELOPMENT_FOLDER = (_CHECKOUT.parent / "shared" / "data" / "reference"
                      if (_CHECKOUT / "pyproject.toml").is_file() else None)


def user_reference_folder():
    """``$XDG_DATA_HOME/ulyss_ann/reference`` (``~/.local/share/ulyss_ann/reference``)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "ulyss_ann" / "reference"


def search_folders():
    """The folders searched, in order, as (how the place is named, folder); those that do not apply left out."""
    folders = []
    if os.environ.get(ENV_VAR):
        folders.append((f"${ENV_VAR}", Path(os.environ[ENV_VAR]).expanduser()))
    folders.append(("the current folder", Path.cwd()))
    folders.append(("the user data folder", user_reference_folder()))
    if DEVELOPMENT_FOLDER is not None:
        folders.append(("the development checkout's shared data", DEVELOPMENT_FOLDER))
    return folders


def find_reference(reference):
    """The path of ``reference`` (a :class:`ReferenceFile`) in the first folder that has it, or None."""
    for _, folder in search_folders():
        for name in reference.names:
            path = folder / name
            if path.is_file():
                return str(path)
    return None


def require_reference(reference, option, role=None):
    """The path of ``reference``, or :func:`missing_reference` raised (``option`` gives it explicitly)."""
    path = find_reference(reference)
    if path is None:
        raise missing_reference(reference, option, role)
    return path


def missing_reference(reference, option, role=None):
    """The one-line error: which file (``role``: what the command wanted it for, e.g. "the default
    generating network"), where it was looked for, and how to provide it."""
    places = "; ".join(f"{label} {folder}" for label, folder in search_folders())
    if not os.environ.get(ENV_VAR):
        places = f"${ENV_VAR} (unset); {places}"
    sought = " or ".join(reference.names)
    get = (f"download {reference.source}" if reference.source
           else "copy it (it is not in the authors' repository)")
    said = f"{role}, {reference.what}" if role else reference.what
    return UlyssAnnError(f"{said} ({sought}), is in none of: {places}. Fix: give {option}, or {get} into one of "
                         f"these folders, e.g. {user_reference_folder()}, or into a folder named by ${ENV_VAR}")
