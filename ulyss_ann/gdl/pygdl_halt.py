"""What python3-gdl does when GDL halts, made loud: a line on stderr and a non-zero exit, never a silent 0.

An error that GDL does not hand back to Python as ``GDL.error`` makes GDL *halt*:
it prints ``% Execution halted at: …`` and reads commands at its interactive prompt
from the process's standard input. At the end of that input GDL calls ``exit(0)``:
the Python process ends with status 0, without running a ``finally``, an
``atexit`` handler or the rest of the batch; with a terminal or an open pipe as
stdin it waits there for ever. GDL 1.0.1 halts so on an error that a routine with
``ON_ERROR, 2`` hands back to a caller without ``ON_ERROR`` of its own, even below
a ``CATCH`` (our routines set ``ON_ERROR, 2`` for that reason; ULySS's do not all),
and on ``STOP``. An audit's ``-j 0 --backend pygdl`` batch ended so with status 0 and
no table, after the cached interpolator copy was deleted.

:func:`call_guarded` runs each python3-gdl call with its standard input (fd 0)
pointed at a pipe that holds two GDL commands, read only if GDL halts: print
:data:`HALT_MESSAGE` on the batch's standard error, and ``exit`` with
:data:`HALT_EXIT_STATUS`. The rows already fitted are in the journal (``--resume``);
the subprocess backend reports such errors as rows instead.
"""

import fcntl
import os

from ulyss_ann.gdl.literals import gdl_string

__all__ = ["HALT_EXIT_STATUS", "HALT_MESSAGE", "call_guarded"]

#: The status of a process whose GDL halted (the command line's "stopped" status).
HALT_EXIT_STATUS = 2

HALT_MESSAGE = ("ulyss-ann: error: GDL halted on an error that python3-gdl (--backend pygdl) cannot return to "
                f"Python, and ends this process (status {HALT_EXIT_STATUS}); the spectra fitted before are in the "
                "journal: fit again with --resume, or use --backend subprocess, which makes such an error a row")

_prompt_input = None  # read end of the pipe holding the commands: made once per process


def _halt_commands():
    """The pipe GDL's prompt would read: the message on stderr, then exit (made once per process).

    While :meth:`~ulyss_ann.gdl.session.PyGDLSession.call_capturing` points fd 2 at a file,
    the line goes there, and only the exit status tells (GDL's OPENW cannot reopen a pipe
    through /proc, so the line cannot reach the original stderr by name)."""
    global _prompt_input

    if _prompt_input is None:
        commands = f"printf, -2, {gdl_string(HALT_MESSAGE)}\nexit, status={HALT_EXIT_STATUS}\n".encode()
        read_end, write_end = os.pipe()
        os.write(write_end, commands)  # far below a pipe's capacity: never blocks
        os.close(write_end)
        # above the standard descriptors: with stdin closed (`ulyss-ann fit ... <&-`) the pipe
        # would get fd 0 itself, which the call below points at it and then closes
        _prompt_input = fcntl.fcntl(read_end, fcntl.F_DUPFD_CLOEXEC, 3)
        os.close(read_end)
    return _prompt_input


def call_guarded(bridge_call, *args):
    """``bridge_call(*args)`` (``GDL.function``, ``GDL.pro``, ``GDL.script``) with fd 0 on the halt commands."""
    commands = _halt_commands()
    try:
        saved = os.dup(0)
    except OSError:  # no standard input at all: restore that afterwards
        saved = None
    os.dup2(commands, 0, inheritable=False)
    try:
        return bridge_call(*list(args))  # a new tuple: python3-gdl's copy-back refuses a shared one
    finally:
        if saved is None:
            os.close(0)
        else:
            os.dup2(saved, 0)
            os.close(saved)
