"""The identity of a batch run, and the lock that keeps one run per output.

**Run record.** A batch's journal begins with the run's configuration
(:func:`run_record`): the model and its SHA-256, the engine (and the GDL backend as
resolved — ``auto`` is the backend it gives —, or the native LOSVD), the LSF file and
its SHA-256, the fixed values and where they come from (a table and its SHA-256), the
guesses, MDEGREE, the range, the masks and the package version. ``--resume`` compares
it with the configuration asked now and refuses any difference, listing them
(:func:`run_differences`): a table never mixes rows of two set-ups, and its metadata
(written from this record) describes every row.

**Lock.** ``<output>.lock`` holds, while a batch runs, an exclusive lock (``flock``)
and says who holds it (PID, host, start time). A second run on the same output — from
another process or this one — is refused with that line; the kernel releases the lock
when its process ends, however it ends, so the lock of a run that is gone (``kill -9``,
a reboot) is simply taken over. A symbolic link at the lock's name is refused, never
followed (:mod:`~ulyss_ann.fitting.safe_files`). Linux maps ``flock`` onto NFS's byte-range locks, so
the lock also holds between the machines of a cluster sharing the output's folder.
"""

import datetime
import errno
import json
import os
import socket
import warnings

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.fitting.safe_files import open_own
from ulyss_ann.version import __version__

__all__ = ["run_record", "run_differences", "OutputLock", "IDENTITY_KEYS"]

#: The entries of a run record that a resumed run must repeat exactly (not the device: the
#: native engine's answers are the same on each, to rounding; not the seed: another draw of the
#: same perturbations gives errors of the same distribution, and without --seed none is repeatable).
IDENTITY_KEYS = ("model_sha256", "engine", "backend", "losvd", "search", "lsf_sha256", "fixed", "guesses", "mdegree",
                 "wave_range", "telluric", "mask_nad", "mask_ism", "masks", "medium", "format", "errors", "nsimul",
                 "version")


def run_record(config, fixed_values):
    """The configuration of a batch as a JSON-able dict (the journal's first record, the table's metadata).

    ``config``: the :class:`~ulyss_ann.fitting.core.FitConfig` (engine resolved);
    ``fixed_values``: the :class:`~ulyss_ann.fitting.fit_options.FixedValues`.
    Entries that do nothing for the engine are None (the backend for ``native``, the
    LOSVD kernel for ``gdl``, which always uses ULySS's).
    """
    from ulyss_ann.model.checksum import file_sha256
    from ulyss_ann.fitting.engines import engine_class
    from ulyss_ann.fitting.masks import telluric_record

    engine = engine_class(config.engine).record(config)  # software, backend, losvd: the engine's say
    return {
        "software": engine["software"],
        "version": __version__,
        "model": os.path.basename(config.model),
        "model_path": config.model,
        "model_sha256": config.model_sha256,
        "engine": config.engine,
        "backend": engine["backend"],
        "losvd": engine["losvd"],
        "search": engine["search"],  # --search: the guesses fitted (adaptive natively, all in ULySS)
        "lsf": config.lsf or "none",
        "lsf_sha256": file_sha256(config.lsf) if config.lsf else None,
        "fixed": fixed_values.describe(),
        "guesses": {k: list(v) for k, v in sorted((config.guesses or {}).items())} or None,
        "mdegree": config.mdegree,
        "wave_range": list(config.wave_range) if config.wave_range else None,
        "telluric": telluric_record(config.telluric),
        "mask_nad": config.mask_nad,
        "mask_ism": config.mask_ism,
        "masks": [list(m) for m in config.masks],
        "medium": config.medium,  # --medium (None: each file's own)
        "format": config.format,  # --format: the spectrum reader forced (None: each file's own, from its content)
        "errors": config.errors,  # --errors, and its refits and seed
        "nsimul": config.nsimul,
        "seed": config.seed,
        "flat_check": config.flat_check,  # with mc/total: the flat-valley profiles run (False: flags unchecked)
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _gdl_backend(backend):
    """The GDL backend that runs (``auto`` resolved, as the rows' ``engine`` column says): ``auto`` and
    the backend it resolves to are the same run."""
    from ulyss_ann.gdl.session import resolve_backend

    return resolve_backend(backend)


def run_differences(recorded, asked):
    """The identity entries where two run records differ, as lines ``name: recorded -> asked``."""
    def show(value):
        text = json.dumps(value, ensure_ascii=False)
        return text if len(text) <= 70 else text[:67] + "..."

    def hint(key):  # the option that repeats the journal's run (a run older than --search fitted every guess)
        return f" (give --search {_compared(key, recorded)})" if key == "search" else ""

    return [f"{key}: {show(recorded.get(key) if key != 'search' else _compared(key, recorded))} in the journal, "
            f"{show(asked.get(key))} now{hint(key)}"
            for key in IDENTITY_KEYS if _compared(key, recorded) != _compared(key, asked)]


def _compared(key, record):
    """A record's entry as compared (:func:`_normal`); ``nsimul`` as the refits each spectrum gets: the
    default where None (an earlier version's record too), none where the errors are MPFIT's (no refits)."""
    if key != "nsimul":
        return _normal(key, record.get(key))
    from ulyss_ann.fitting.resampling import DEFAULT_NSIMUL, error_method

    if not error_method(_normal("errors", record.get("errors"))).refits:
        return None
    return DEFAULT_NSIMUL if record.get("nsimul") is None else int(record["nsimul"])


def _normal(key, value):
    """A record's entry as compared: tuples and lists alike (a record read back from JSON has
    lists), NumPy scalars as numbers, and a --fix table by its column and SHA-256, not by the
    path it was reached by (a cluster mounts the same file under other names)."""
    value = json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))
    if key == "telluric" and isinstance(value, dict) and os.path.isabs(str(value.get("set"))):
        value = {"bands": value.get("bands")}  # a file by its bands, not the path it was reached by
    if key == "mask_ism" and value is None:  # a record of an earlier version: no interstellar mask
        value = False
    if key == "errors" and value is None:  # a record of an earlier version: MPFIT's errors
        value = "formal"
    if key == "search" and value is None:  # a record of an earlier version: every guess fitted
        value = "all"
    if key == "backend" and value == "auto":  # a record of an earlier version: what auto gives now
        value = _gdl_backend(value)
    if key == "fixed" and value:
        value = {name: {k: v for k, v in spec.items() if k != "table"} for name, spec in value.items()}
    return value


class OutputLock:
    """An exclusive lock on a batch's output, held while the batch runs (see the module's text)."""

    def __init__(self, output):
        self.path = f"{os.fspath(output)}.lock"
        self._handle = None

    def acquire(self):
        import fcntl

        while True:
            try:
                # never through a link put at the lock's name (it would truncate the link's target)
                descriptor = open_own(self.path, os.O_RDWR | os.O_CREAT)
                handle = open(descriptor, "r+b", buffering=0)  # unbuffered: closing never writes
            except OSError as exc:
                raise UlyssAnnError(f"{self.path}: cannot create the batch's lock ({exc.strerror or exc})") from None
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    # A file system without locks (Lustre mounted without -o flock, some NFS
                    # set-ups): run unlocked, and say so, rather than refuse every run.
                    warnings.warn(f"{self.path}: this file system cannot lock files ({exc.strerror}); nothing "
                                  "stops a second batch from writing the same output at the same time",
                                  UserWarning, stacklevel=2)
                    handle.close()
                    return self
                handle.seek(0)
                holder = handle.read().decode(errors="replace").strip() or "another process"
                handle.close()
                raise UlyssAnnError(f"{self.path[:-5]}: another batch is writing it ({holder}); wait for it to "
                                    f"end, or give another --output") from None
            # The file may have been removed by the run that held it between our open and
            # our lock: then we hold a lock on a file nobody else sees, and must try again.
            try:  # lstat: a link put there since is not our file (the next open refuses it)
                same = os.path.samestat(os.fstat(handle.fileno()), os.lstat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            handle.close()
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"PID {os.getpid()} on {socket.gethostname()}, started {started}\n".encode())
        except OSError:
            pass  # a full disk: the lock holds without its note; the journal or table will say what is wrong
        self._handle = handle
        return self

    def release(self):
        if self._handle is not None:
            try:
                os.remove(self.path)  # while still locked: nobody can take a lock on it in between
            except OSError:
                pass
            self._handle.close()  # closing releases the lock
            self._handle = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
