"""Run GDL code in a ``gdl`` subprocess: the path, the ULySS common block, and errors as exceptions.

GDL exits with status 0 even after an error, so errors are recognised in its
output: a line ``% Execution halted`` or ``% NAME: message`` on stderr (other than
``% Compiled module``).  Each call writes the statements into a main-level
procedure in a scratch folder (GDL batch files run line by line; a real
routine runs as one unit) and runs it with stdin closed, so that GDL, on an
error, exits instead of waiting at its prompt.

This module is the plumbing for tests, benchmarks and ``ulyss-ann gdl-export``;
the batch driver's persistent session layer is built on the same conventions.
"""

import os
import re
import shutil
import subprocess
import tempfile
import uuid

from ulyss_ann.errors import MachineryError, UlyssAnnError
from ulyss_ann.gdl.literals import check_gdl_path, gdl_string
from ulyss_ann.gdl.ulyss_location import INSTALL_HINT, default_ulyss_dir, find_ulyss

__all__ = ["GDLError", "GDLProcessError", "GDLNotFoundError", "gdl_error", "gdl_interrupted", "gdl_executable",
           "gdl_path", "gdl_error_lines", "run_gdl", "ulyss_dir_or_error"]

#: GDL's own libraries as Debian installs them (gdl-astrolib, gdl-mpfit, gdl-coyote).
SYSTEM_LIBRARIES = [
    "+/usr/share/gnudatalanguage/astrolib",
    "/usr/share/gnudatalanguage/mpfit",
    "/usr/share/gnudatalanguage/coyote",
    "+/usr/share/gnudatalanguage/lib",
]

_NOISE = re.compile(r"(Unable to initialize GTK|wxWidgets not initializing|^% Compiled module"
                    r"|^% Program caused arithmetic error|^% Floating|^$)")


class GDLError(UlyssAnnError):
    """GDL stopped on an error; the message is GDL's own (about the spectrum, the model, a file)."""


class GDLProcessError(GDLError, MachineryError):
    """The ``gdl`` process itself failed: it died (``kill -9``, a crash), hung past the
    timeout or could not start. Nothing is wrong with the spectrum: the batch records a
    ``failed: …`` row and fits it again on ``--resume``; the session starts afresh."""


def gdl_interrupted(message):
    """Whether GDL's message says it was interrupted (a SIGINT reached it)."""
    return "Interrupt encountered" in message


def gdl_error(message):
    """The exception for an error GDL reported: a GDLError, or a GDLProcessError when GDL was
    interrupted (a SIGINT sent to the batch's process group reached it): then the machinery
    was stopped, not the spectrum wrong, and ``--resume`` fits it again."""
    if gdl_interrupted(message):
        return GDLProcessError(f"GDL was interrupted (SIGINT) during the call: {message}")
    return GDLError(message)


class GDLNotFoundError(UlyssAnnError):
    """GDL (or ULySS, when it is needed) is not installed."""


def gdl_executable():
    """Path of the ``gdl`` program, or GDLNotFoundError saying how to install it."""
    exe = shutil.which("gdl")
    if exe is None:
        raise GDLNotFoundError("gdl not found: install GDL with 'sudo apt-get install gnudatalanguage "
                               "gdl-astrolib gdl-mpfit gdl-coyote' (or run ./scripts/setup)")
    return exe


def ulyss_dir_or_error():
    found = find_ulyss()
    if found is None:
        raise GDLNotFoundError(INSTALL_HINT.format(default=default_ulyss_dir()))
    return found


def gdl_path(*folders, ulyss=True):
    """A ``GDL_PATH`` reaching ``folders``, ULySS (``pgm``, ``dep``) and GDL's libraries.

    The package's hand-written GDL (``ulyss_ann/gdl/pro/``) comes after ``folders``. Each folder is
    searched with its sub-folders (``+``).
    """
    from ulyss_ann.gdl.component import resource_dir

    entries = ["+" + os.path.abspath(f) for f in folders] + ["+" + str(resource_dir("gdl"))]
    if ulyss:
        root = ulyss_dir_or_error()
        entries += ["+" + str(root / "pgm"), "+" + str(root / "dep")]
    for entry in entries:  # GDL_PATH is ':'-separated and GDL expands '$' in it
        check_gdl_path(entry[1:], "GDL_PATH folder", search_path=True)
    return ":".join(entries + SYSTEM_LIBRARIES)


def gdl_error_lines(lines):
    """GDL's error messages among its output lines: '% NAME: message', without the '% '.

    Left out: compilation notes, arithmetic-flag notes, and the traceback after
    'Execution halted at:' / 'Error occurred at:' (indented '%      NAME  line  file').
    """
    return [line[2:].strip() for line in lines
            if line.startswith("% ") and not line[2:3].isspace() and not _NOISE.search(line)
            and not re.match(r"% (Execution halted|Error occurred) at", line)]


def run_gdl(statements, folders=(), ulyss=True, timeout=300):
    """Run GDL statements (one per line, as in a procedure body) and return their printed output.

    Parameters
    ----------
    statements : str
        The body of a procedure: any GDL code, loops included.
    folders : sequence of path-like
        Folders of .pro files to put first on the path (generated components).
    ulyss : bool
        Put ULySS on the path and set ``common uly_path, uly_root`` (needs ULySS).
    timeout : float
        Seconds before the run is killed (a runaway fit).

    Raises
    ------
    GDLError
        With GDL's error lines, when GDL stopped on an error.
    GDLNotFoundError
        When gdl (or ULySS, if ``ulyss``) is missing.
    """
    exe = gdl_executable()
    env = dict(os.environ, GDL_PATH=gdl_path(*folders, ulyss=ulyss))
    name = "ulyss_ann_job_" + uuid.uuid4().hex[:12]
    lines = ["pro " + name, "compile_opt idl2", "!QUIET = 1", "!EXCEPT = 0"]
    if ulyss:
        lines += ["common uly_path, uly_root", f"uly_root = {gdl_string(ulyss_dir_or_error())}"]
    lines += [statements, "end"]
    with tempfile.TemporaryDirectory(prefix="ulyss_ann_gdl_") as scratch:
        with open(os.path.join(scratch, name + ".pro"), "w") as handle:
            handle.write("\n".join(lines) + "\n")
        env["GDL_PATH"] = scratch + ":" + env["GDL_PATH"]
        try:
            result = subprocess.run([exe, "-quiet", "-e", name], env=env, cwd=scratch, text=True,
                                    stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise GDLProcessError(f"GDL ran longer than {timeout} s and was stopped") from None
        except OSError as exc:  # fork/exec failed (out of memory, too many processes)
            raise GDLProcessError(f"gdl could not start: {exc}") from None
    if result.returncode < 0:  # killed by a signal (kill -9, a crash): not the code's fault
        raise GDLProcessError(f"gdl was killed by signal {-result.returncode}: {result.stderr.strip()[-300:]}")
    errors = gdl_error_lines(result.stderr.splitlines() + result.stdout.splitlines())
    if errors or result.returncode != 0:
        text = "; ".join(errors)
        raise GDLError(text or f"gdl exited with status {result.returncode}: {result.stderr.strip()[-300:]}")
    return result.stdout
