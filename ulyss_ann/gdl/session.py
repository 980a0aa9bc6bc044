"""A GDL session from Python: in-process (python3-gdl, "pygdl") or a persistent ``gdl`` subprocess.

Both backends offer one method, :meth:`GDLSession.call`, that calls a GDL *function*
with positional arguments and returns its value: a 1-D float64 array (or a float)
for numbers, a ``str`` for a string. That is all the in-process bridge can do
reliably (``../shared/notes/python-gdl-bridge.md``): keywords crash it, output
arguments never come back, C++ built-ins return None, so everything goes through
small ``.pro`` functions of ``ulyss_ann/gdl/pro/`` that take positional arguments and return values.

* ``pygdl`` — ``import GDL`` from Debian's python3-gdl (CPython 3.11, NumPy < 2).
  About 5 µs a call; the GIL is held during a call; every call leaks ~2.5 KB; a GDL
  that halts ends the process, loudly (:mod:`ulyss_ann.gdl.pygdl_halt`); GDL's own built-ins
  leak inside ULySS fits (~1.6 MB a fit, ``scripts/bench_gdl``) and the process cannot shed it. Its
  OpenMP threads wait passively (``OMP_WAIT_POLICY``): spinning, they doubled a fit's CPU time.
* ``subprocess`` — a persistent ``gdl -quiet``; arrays travel through binary files.
  About 1 ms a call, isolated from crashes and hangs (a call has a timeout), and
  :meth:`restart` gives back all of GDL's memory, so the batch driver recycles it
  every N fits.

``backend="auto"`` takes the subprocess when ``gdl`` is installed (robust, restartable: what long
batches need) and pygdl otherwise. GDL errors come back as :class:`~ulyss_ann.gdl.process.GDLError`
carrying GDL's message; a ``gdl`` process that died, hung or could not start is a
:class:`~ulyss_ann.gdl.process.GDLProcessError` (a :class:`~ulyss_ann.errors.MachineryError`: not the
spectrum's fault), after which the next call starts a fresh process; a missing GDL or ULySS is a
:class:`~ulyss_ann.gdl.process.GDLNotFoundError` naming the fix. :meth:`GDLSession.call_capturing`
also returns what GDL printed during the call (ULySS says why a fit failed only in printed messages).
"""

import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from ulyss_ann.gdl.literals import check_gdl_path, gdl_identifier, gdl_number, gdl_string
from ulyss_ann.gdl.pygdl_halt import call_guarded
from ulyss_ann.gdl.ulyss_location import find_ulyss
from ulyss_ann.gdl.process import (GDLError, GDLNotFoundError, GDLProcessError, ulyss_dir_or_error, gdl_error_lines,
                                   gdl_error, gdl_executable, gdl_interrupted, gdl_path)

__all__ = ["open_session", "resolve_backend", "GDLSession", "PyGDLSession", "SubprocessGDLSession", "BACKENDS",
           "pygdl_available", "import_gdl"]

BACKENDS = ("auto", "pygdl", "subprocess")

#: The search path python3-gdl was given when this module imported it (None: not us).
_IMPORTED_WITH = None


def import_gdl():
    """Debian's python3-gdl module, imported with GDL_PATH set first.

    GDL reads GDL_PATH once, at import: ULySS (when found), GDL's libraries and ours should
    be on it by then, whoever imports first (a check of the backend, or the session).
    Where GDL was imported before (by the caller, a notebook, another package), the
    session puts them on !PATH itself (:meth:`PyGDLSession._ensure_path`).
    """
    global _IMPORTED_WITH

    if "GDL" not in sys.modules:  # python3-gdl reads GDL_PATH once, at its first import
        path = gdl_path(ulyss=find_ulyss() is not None)
        os.environ["GDL_PATH"] = path
        _IMPORTED_WITH = path
        # else GDL's OpenMP threads spin between loops, a second core busy for nothing (scripts/bench_pygdl)
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read by libgomp when GDL loads it; the user's kept
    import GDL

    return GDL


def pygdl_available():
    """True where ``import GDL`` works in this interpreter (CPython 3.11, NumPy 1.x)."""
    try:
        import_gdl()
    except Exception:  # ImportError, or NumPy 2 ABI errors
        return False
    return True


def resolve_backend(backend):
    """``pygdl`` or ``subprocess`` for the ``backend`` asked (``auto``: the subprocess when ``gdl`` is here)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    return ("subprocess" if shutil.which("gdl") else "pygdl") if backend == "auto" else backend


def open_session(folders=(), backend="auto", timeout=600):
    """A started GDL session with ULySS and ``folders`` (generated components) on its path."""
    backend = resolve_backend(backend)
    if backend == "pygdl":
        return PyGDLSession(folders)
    return SubprocessGDLSession(folders, timeout=timeout)


class GDLSession:
    """What both backends offer."""

    backend = None

    def call(self, function, *args):
        """Value of the GDL function ``function(*args)`` (positional arguments only)."""
        raise NotImplementedError

    def call_capturing(self, function, *args):
        """``(value, lines)``: :meth:`call`, and the lines GDL printed meanwhile (its messages too).

        Printed messages do not raise here: they are what the caller wants to read.
        """
        raise NotImplementedError

    def restart(self):
        """Start afresh (frees GDL's memory where the backend can)."""

    def close(self):
        """End the session."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _as_gdl_array(value):
    """Arrays as the bridge accepts them: 1-D float64, or int32 for integers (never int64/bool)."""
    array = np.ascontiguousarray(value).ravel()
    if array.size == 0:
        raise ValueError("empty arrays cannot be passed to GDL")  # they abort python3-gdl
    if array.dtype.kind in "biu":
        return array.astype(np.int32)
    return array.astype(np.float64)


class PyGDLSession(GDLSession):
    """GDL inside this Python process (Debian's python3-gdl)."""

    backend = "pygdl"
    _started = False
    _path_added = None  # the search path _ensure_path put on !PATH, once per process

    def __init__(self, folders=()):
        try:
            GDL = import_gdl()
        except ImportError as exc:
            raise GDLNotFoundError(f"import GDL failed ({exc}): install python3-gdl and run ./scripts/setup, "
                                   "or use the subprocess backend") from None
        self._gdl = GDL
        if not PyGDLSession._started:
            call_guarded(GDL.pro, "on_error", 2)  # else any GDL error kills or hangs Python
            call_guarded(GDL.pro, "defsysv", "!QUIET", 1)
            PyGDLSession._started = True
        self._ensure_path()
        extra = ":".join("+" + check_gdl_path(os.path.abspath(f), "GDL folder", search_path=True) for f in folders)
        self._pro("ulyss_ann_set_root", str(ulyss_dir_or_error()), extra or " ")

    def _ensure_path(self):
        """Our routines, ULySS and GDL's libraries on !PATH, whoever imported GDL and when.

        python3-gdl reads GDL_PATH once, at its import. Imported by anyone else first (a
        notebook's ``import GDL``, or, before this was fixed, the backend check of ``-j 0``,
        which ran ``import GDL`` before the session had set GDL_PATH), !PATH lacked our
        folder and every fit failed with "Procedure ULYSS_ANN_SET_ROOT not found", while
        Dask workers, whose session imported GDL itself, worked. So the session checks and
        prepends the path itself, through a one-line batch file: !PATH can only be read
        and expanded (``+`` folders) by GDL code, and the path reaches that code as an
        escaped literal.
        """
        wanted = gdl_path()
        if wanted in (_IMPORTED_WITH, PyGDLSession._path_added):
            return
        handle, script = tempfile.mkstemp(prefix="ulyss_ann_path_", suffix=".pro")
        try:
            with os.fdopen(handle, "w") as out:
                out.write(f"!PATH = expand_path({gdl_string(wanted)}) + path_sep(/SEARCH_PATH) + !PATH\n")
            check_gdl_path(script, "the temporary folder (set TMPDIR to change it)")
            try:
                call_guarded(self._gdl.script, script)
            except self._gdl.error as exc:
                raise GDLProcessError(f"GDL could not set its search path: {exc}") from None
        finally:
            os.remove(script)
        PyGDLSession._path_added = wanted

    def _pro(self, name, *args):
        try:
            call_guarded(self._gdl.pro, *[name, *args])  # a list: a tuple of constants trips the bridge
        except self._gdl.error as exc:
            raise gdl_error(str(exc)) from None

    def call_capturing(self, function, *args):
        # GDL prints to this process's own fds 1 and 2: point them at a file for the call.
        import ctypes

        sys.stdout.flush()
        sys.stderr.flush()
        libc = ctypes.CDLL(None)
        with tempfile.TemporaryFile() as sink:
            saved = os.dup(1), os.dup(2)
            try:
                os.dup2(sink.fileno(), 1)
                os.dup2(sink.fileno(), 2)
                try:
                    value = self.call(function, *args)
                finally:
                    call_guarded(self._gdl.pro, "flush", -1)  # GDL's buffered stdout (unit -1), then C's
                    libc.fflush(None)
                    os.dup2(saved[0], 1)
                    os.dup2(saved[1], 2)
            finally:
                os.close(saved[0])
                os.close(saved[1])
            sink.seek(0)
            lines = sink.read().decode("utf-8", "replace").splitlines()
        return value, lines

    def call(self, function, *args):
        gdl_identifier(function, "GDL function")  # as the subprocess bridge, which types it as code
        converted = [_as_gdl_array(a) if isinstance(a, (np.ndarray, list, tuple)) else a for a in args]
        converted = [float(a) if isinstance(a, (np.floating, np.integer)) and not isinstance(a, bool) else a
                     for a in converted]
        try:
            value = call_guarded(self._gdl.function, *[function, *converted])
        except self._gdl.error as exc:
            raise gdl_error(str(exc)) from None
        return value if isinstance(value, str) else np.atleast_1d(np.asarray(value, dtype=np.float64))


class SubprocessGDLSession(GDLSession):
    """A persistent ``gdl`` process fed through a pipe; arrays go through binary files."""

    backend = "subprocess"

    def __init__(self, folders=(), timeout=600):
        self.folders = [check_gdl_path(os.path.abspath(f), "GDL folder", search_path=True) for f in folders]
        self.timeout = timeout
        self._scratch = tempfile.mkdtemp(prefix="ulyss_ann_gdl_", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        self._process = None
        self._counter = 0
        # A fresh end marker per session: no output of a fit (a file name printed by
        # ULySS, say) can pose as it.
        self._sentinel = "__ULYSS_ANN_END_" + os.urandom(8).hex() + "__"
        self._start()

    def _start(self):
        env = dict(os.environ, GDL_PATH=gdl_path(*self.folders))
        # Binary pipes read with os.read: a buffered reader would hold lines that select()
        # no longer sees on the pipe, and wait forever for the sentinel it already has.
        try:
            self._process = subprocess.Popen([gdl_executable(), "-quiet"], stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0,
                                             env=env, cwd=self._scratch)
        except OSError as exc:  # fork/exec failed: out of memory or processes, a broken install
            self._process = None
            raise GDLProcessError(f"gdl could not start ({exc}); the next spectrum tries again") from None
        self._pending = b""
        root = gdl_string(ulyss_dir_or_error())
        # on_error, 2 as for pygdl: an error in a callee returns to the caller, where the
        # CATCH of ulyss_ann_fit turns it into a row's status.
        try:
            self._run(f"on_error, 2\n!QUIET = 1\n!EXCEPT = 0\nulyss_ann_set_root, {root}, ' '")
        except GDLProcessError as exc:
            raise GDLProcessError(f"gdl could not start: {exc}") from None

    def _readline(self, deadline):
        """One line of GDL's output (without the newline), or None at end of output."""
        fd = self._process.stdout.fileno()
        while b"\n" not in self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                self._kill()
                raise GDLProcessError(f"GDL did not answer within {self.timeout} s and was stopped; "
                                      "the next spectrum gets a new gdl process")
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        return line.decode("utf-8", "replace")

    def _run(self, statements, raise_messages=True):
        """Send statements (one per line), return the lines they printed; GDL errors raise.

        ``raise_messages=False``: GDL's '% …' messages are returned with the other lines.
        A gdl that died since the last call (killed, or out of memory, between two
        spectra) is replaced silently: no spectrum was being fitted. One that dies or
        hangs during the call raises GDLProcessError; the next call starts a new one.
        """
        if self._process is None or self._process.poll() is not None:
            self._start()  # after a crash or a timeout: a fresh session
        lines, deadline = [], time.monotonic() + self.timeout
        try:
            self._process.stdin.write((statements + f"\nprint, '{self._sentinel}'\n").encode())
        except OSError:  # BrokenPipeError: it died just now; what it printed tells why
            pass
        while True:
            line = self._readline(deadline)
            if line is None:
                code = self._process.wait()
                self._process = None
                shown = " | ".join(x for x in lines[-3:] if x.strip())
                raise GDLProcessError(f"gdl exited (status {code}{': killed' if code == -9 else ''}) during the call"
                                      f"{'; last output: ' + shown if shown else ''}; "
                                      "the next spectrum gets a new gdl process")
            if line.strip() == self._sentinel:
                break
            lines.append(line)
        errors = gdl_error_lines(lines)
        if any(gdl_interrupted(error) for error in errors):
            self._kill()  # a SIGINT leaves gdl unsound (its next call aborted on an assertion in CI): a new one
        elif errors:
            try:
                self._process.stdin.write(b"retall\n")  # back to the main level, session intact
            except OSError:
                pass  # died meanwhile: the next call starts a new one
        if errors and raise_messages:
            raise gdl_error("; ".join(errors))
        return lines

    def _literal(self, index, value):
        """GDL statement assigning argument ``index``; arrays go through a binary file.

        Strings are typed into GDL as escaped literals (:func:`gdl_string`): a file name
        with a quote or a newline stays one string and never becomes a statement.
        """
        name = f"ulyss_ann_arg{index}"
        if isinstance(value, str):
            return f"{name} = {gdl_string(value)}"
        if isinstance(value, (np.ndarray, list, tuple)):
            array = _as_gdl_array(value)
            path = os.path.join(self._scratch, f"arg{index}.bin")
            array.astype("<f8" if array.dtype.kind == "f" else "<i4").tofile(path)
            maker = "dblarr" if array.dtype.kind == "f" else "lonarr"
            return (f"{name} = {maker}({array.size}) & openr, lun, {gdl_string(path)}, /GET_LUN, /SWAP_IF_BIG_ENDIAN"
                    f" & readu, lun, {name} & free_lun, lun")
        if isinstance(value, (bool, int, np.integer)):
            return f"{name} = {int(value)}L"
        if not np.isfinite(value):
            raise ValueError(f"cannot pass {value} to GDL")
        return f"{name} = {gdl_number(value)}"

    def call(self, function, *args):
        return self._call(function, args, True)[0]

    def call_capturing(self, function, *args):
        return self._call(function, args, False)

    def _call(self, function, args, raise_messages):
        self._counter += 1
        result = os.path.join(self._scratch, "result.bin")
        if os.path.exists(result):
            os.remove(result)  # never read the previous call's value
        lines = [self._literal(i, a) for i, a in enumerate(args)]
        arglist = ", ".join(f"ulyss_ann_arg{i}" for i in range(len(args)))
        lines.append(f"ulyss_ann_put_result, {gdl_identifier(function, 'GDL function')}({arglist}), "
                     f"{gdl_string(result)}")
        printed = self._run("\n".join(lines), raise_messages)
        return self._value(function, printed), printed

    def _value(self, function, printed):
        result = os.path.join(self._scratch, "result.bin")
        for line in reversed(printed):
            if line.startswith("ULYSS_ANN_STRING:"):
                n = int(line.split(":")[1])
                with open(result, "rb") as handle:
                    return handle.read(n).decode("utf-8", "replace")
            if line.startswith("ULYSS_ANN_NUMERIC:"):
                n = int(line.split(":")[1])
                return np.fromfile(result, dtype="<f8", count=n).astype(np.float64)
        raise GDLError(f"{function} returned nothing; GDL printed: {' | '.join(printed[-5:])}")

    def _kill(self):
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._process = None

    def restart(self):
        self.close(keep_scratch=True)
        self._start()

    def close(self, keep_scratch=False):
        if self._process is not None and self._process.poll() is None:
            try:
                self._process.stdin.write(b"exit\n")
                self._process.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self._kill()
        self._process = None
        if not keep_scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
