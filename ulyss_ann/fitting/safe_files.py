"""The files a batch creates are its own: no link followed, no input overwritten, no half file shown.

A batch writes its table, journal and lock beside ``--output``, and ``<id>_fit.fits`` /
``<id>.res`` into ``--save-fits``. In a folder that others can write to (a shared
project space), a symbolic link put at one of those names would make the batch write
— truncate, append to — whatever file the link points to, with the batch user's
rights; a dangling link would create its target. So:

* **Links are never followed** where a name is ours to create. The lock and the
  journal are opened with ``O_NOFOLLOW`` (:func:`open_own`); tables and saved fits are
  written into a private temporary folder beside the final name and renamed over it
  (:func:`write_beside`): ``rename`` replaces a name, it never writes through a link.
  A link found at one of these names is refused in one line
  (:func:`link_refused`), before anything is fitted (:func:`check_outputs`) and again
  at the moment of writing, not removed: it may be someone's mistake worth seeing.
* **No partial file is ever visible** under a final name: a crash or a full disk in
  the middle of a write leaves the old file (or none), and the temporary is removed.
* **An output is never an input**: an output name (the table, its journal, its lock)
  that is the same file as one of the spectra to fit — by name or by device and inode,
  hard links included — is refused before anything is written or deleted, and so is a
  ``--save-fits`` file name that is one of the spectra.

Folders are the user's: a ``--output`` or ``--save-fits`` folder that is itself a link
is followed, as any path the user types.
"""

import errno
import os
import shutil
import tempfile

from ulyss_ann.errors import UlyssAnnError

__all__ = ["link_refused", "refuse_link", "open_own", "write_beside", "no_room", "check_outputs", "FULL_DISK"]

#: The errors of a file system with no room left for us (full, or our quota used up).
FULL_DISK = (errno.ENOSPC, errno.EDQUOT)


def link_refused(path, option="--output"):
    """The one-line error for a symbolic link at a name we write (``option``: the option that chose it)."""
    what = "--save-fits folder" if option == "--save-fits" else option
    return UlyssAnnError(f"{path}: is a symbolic link; ulyss-ann does not write through links: remove it or give "
                         f"another {what}")


def refuse_link(path, option="--output"):
    """Raise :func:`link_refused` when ``path`` is a symbolic link (dangling or not)."""
    if os.path.islink(path):
        raise link_refused(path, option)


def open_own(path, flags, option="--output", mode=0o666):
    """``os.open`` that never follows a link at ``path`` (a link: :func:`link_refused`; else OSError as usual)."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP and os.path.islink(path):
            raise link_refused(path, option) from None
        raise


def write_beside(path, write, option="--output", sync=True):
    """Write the file ``path`` completely, or not at all: ``write(temporary_path)`` writes it.

    The temporary path lies in a new folder beside ``path`` that only this user can
    enter (mode 0700, made with ``mkdtemp``): nobody can put a link at that name, and
    the writer (astropy) may open it by name as it likes. The file is forced to disk
    (``sync``), then renamed over ``path`` — which replaces a name and never follows a
    link — and the folder is removed, whatever happens. A link at ``path`` is refused
    (:func:`link_refused`); write errors propagate (OSError, or the writer's own).
    """
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    refuse_link(path, option)
    private = tempfile.mkdtemp(prefix=f".{name[:40]}.", suffix=".tmp", dir=folder)
    try:
        temporary = os.path.join(private, name)  # the name kept: astropy tells a table's format by it
        write(temporary)
        if sync:
            descriptor = os.open(temporary, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        refuse_link(path, option)  # made a link while we wrote: refused all the same
        os.replace(temporary, path)
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return path


def no_room(exc, folder, needed=None):
    """True when ``exc``, an error writing into ``folder``, means that the folder's file system is full.

    By its errno (ENOSPC, EDQUOT) anywhere in the chain of errors; or, since writers lose it
    (NumPy's ``tofile``, which astropy's FITS writer uses, says only "N requested and M
    written"), by the room left there being less than the ``needed`` bytes.
    """
    seen = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in FULL_DISK:
            return True
        seen = seen.__cause__ or seen.__context__
    if not isinstance(exc, OSError) or not needed:
        return False
    try:
        info = os.statvfs(folder)
    except OSError:
        return False
    return info.f_bavail * info.f_frsize < needed


def check_outputs(output, inputs, save_fits=None, stem=None):
    """Refuse, before anything is written or deleted, outputs that are links or are the spectra to fit.

    ``output``: the table (None: nothing on disk); ``inputs``: the batch's
    :class:`~ulyss_ann.fitting.batch.sources.BatchInput`; ``save_fits``: its folder, with
    ``stem(id)`` the stem of the files saved for a spectrum. One UlyssAnnError, in one line.
    """
    files = _Files(inputs)
    if output is not None:
        output = os.fspath(output)
        named = [output, f"{output}.journal.jsonl", f"{output}.lock"]
        for path in named:
            refuse_link(path)
        same = _same_files(named, files)
        if same:
            path, entry = same
            raise UlyssAnnError(f"{path}: is one of the spectra to fit ({entry.key}); ulyss-ann never writes over "
                                "its inputs: give another --output")
    if save_fits and stem is not None:
        writers = {saved: entry for entry in inputs
                   for saved in (f"{stem(entry.ident)}_fit.fits", f"{stem(entry.ident)}.res")}
        links = _links_in(save_fits) & set(writers)
        if links:
            raise link_refused(os.path.join(save_fits, sorted(links)[0]), "--save-fits")
        folder, real = os.path.realpath(save_fits), {}
        for entry in files:  # by name: one realpath per folder of spectra, not one per spectrum
            name, where = os.path.basename(entry.key), os.path.dirname(entry.key)
            if name in writers and real.setdefault(where, os.path.realpath(where)) == folder:
                raise UlyssAnnError(f"{entry.key}: is one of the spectra to fit, and --save-fits would write "
                                    f"{writers[name].ident}'s fit over it: give another --save-fits folder")


class _Files:
    """The inputs that are files, as an iterable that can be gone through again (made as it goes)."""

    def __init__(self, inputs):
        self.inputs = inputs

    def __iter__(self):
        return (entry for entry in self.inputs if entry.from_file)


def _links_in(folder):
    """The names of the symbolic links in ``folder`` (none when it does not exist yet): one listing,
    no call per spectrum."""
    try:
        with os.scandir(folder) as entries:
            return {entry.name for entry in entries if entry.is_symlink()}
    except OSError:
        return set()


def _same_files(paths, entries):
    """(path, entry) for the first of ``paths`` that is the file of one of ``entries``, or None.

    By name first (no file system call per spectrum); by device and inode only when an
    output exists already (a resumed or overwritten run), which also finds a hard link.
    """
    names = {name for path in paths for name in (os.path.abspath(path), os.path.realpath(path))}
    found = {entry.key: entry for entry in entries if entry.key in names}  # a few: not a dict of 10^6 entries
    for path in paths:
        entry = found.get(os.path.abspath(path)) or found.get(os.path.realpath(path))
        if entry is not None:
            return path, entry
    existing = {}
    for path in paths:
        try:
            info = os.stat(path)
        except OSError:
            continue
        existing[(info.st_dev, info.st_ino)] = path
    if not existing:
        return None
    for entry in entries:
        try:
            info = os.stat(entry.key)
        except OSError:
            continue
        path = existing.get((info.st_dev, info.st_ino))
        if path is not None:
            return path, entry
    return None
