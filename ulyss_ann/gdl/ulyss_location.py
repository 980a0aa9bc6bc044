"""Where ULySS (the IDL/GDL package, GPL, not on any package registry) is installed.

Search order, first hit wins:

1. the ``ULYSS_DIR`` environment variable;
2. the default location ``$XDG_DATA_HOME/ulyss`` (``~/.local/share/ulyss``);
3. ``/usr/local/share/ulyss``.

A folder is ULySS if it holds ``pgm/ulyss.pro``.  ULySS also needs, in GDL,
``common uly_path, uly_root`` with ``uly_root`` set to that folder; the GDL code
of this package does that itself.

``python -m ulyss_ann.gdl.ulyss_location`` prints what was found, or what to do.
"""

import os
import sys
from pathlib import Path

__all__ = ["find_ulyss", "default_ulyss_dir", "INSTALL_HINT"]

INSTALL_HINT = (
    "ULySS not found. It is GPL IDL/GDL code on no package registry: download ULySS 1.3.2 "
    "from http://ulyss.univ-lyon1.fr, unpack it so that {default}/pgm/ulyss.pro exists "
    "(or anywhere, then export ULYSS_DIR=/path/to/ulyss). Everything that does not run "
    "GDL works without it."
)


def default_ulyss_dir():
    """The documented default location, ``$XDG_DATA_HOME/ulyss``."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "ulyss"


def _is_ulyss(folder):
    return folder is not None and (Path(folder) / "pgm" / "ulyss.pro").is_file()


def find_ulyss():
    """The ULySS folder, or None when it is in none of the places searched."""
    candidates = [os.environ.get("ULYSS_DIR"), default_ulyss_dir(), "/usr/local/share/ulyss"]
    for folder in candidates:
        if folder and _is_ulyss(folder):
            return Path(folder).resolve()
    return None


def main():
    found = find_ulyss()
    if found is None:
        if os.environ.get("ULYSS_DIR"):
            print(f"ULYSS_DIR={os.environ['ULYSS_DIR']} holds no pgm/ulyss.pro.")
        print(INSTALL_HINT.format(default=default_ulyss_dir()))
        return 1
    version = (found / "VERSION").read_text().strip() if (found / "VERSION").is_file() else "unknown"
    print(f"ULySS {version} found in {found}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
