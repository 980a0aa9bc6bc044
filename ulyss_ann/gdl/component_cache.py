"""The batch's cache of generated GDL components, verified before use and repaired when damaged.

One folder per network and code version, shared by every worker and every run:
``$XDG_CACHE_HOME/ulyss_ann/components/ann_<model sha256[:12]>_<code digest[:10]>/``.
Each folder ends with a manifest, ``MANIFEST.sha256``: the SHA-256 of every other file
in it, written last. A folder whose manifest is missing (a generation that was stopped,
or code older than the manifest), or whose files are not exactly those it lists, is
*damaged*: the GDL would read a deleted interpolator copy or a changed routine, and
fail on every spectrum, run after run. :func:`cached_component` checks the manifest
each time an engine starts and regenerates a damaged folder.

Generation writes into a temporary folder beside the cache, which is then renamed into
place (an atomic publish): two workers that generate at once never see a half-written
component, and the loser of the race simply uses the winner's. Check and repair also
hold a lock file (``flock``), so that one worker never moves a folder aside that
another has just repaired.
"""

import fcntl
import hashlib
import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path

from ulyss_ann.errors import MachineryError, UlyssAnnError
from ulyss_ann.gdl.component import converted_axis, generate_component, resource_dir
from ulyss_ann.model.checksum import file_sha256

__all__ = ["MANIFEST", "cache_dir", "code_version", "component_problem", "checked_problem", "write_manifest",
           "cached_component", "check_cache_owner"]

#: The manifest's file name, inside each component folder.
MANIFEST = "MANIFEST.sha256"


def cache_dir():
    """Where the components live: ``$XDG_CACHE_HOME/ulyss_ann/components`` (``~/.cache`` by default)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ulyss_ann" / "components"


def code_version():
    """A digest of the GDL code and templates of this installation (the cache key's second half)."""
    digest = hashlib.sha256()
    for kind, pattern in (("gdl", "*.pro"), ("templates", "*.j2")):
        for path in sorted(resource_dir(kind).glob(pattern)):
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:10]


def write_manifest(folder):
    """Write ``folder/MANIFEST.sha256`` (``<sha256>  <name>`` a line), last, through a rename."""
    folder = Path(folder)
    lines = [f"{file_sha256(path)}  {path.name}\n" for path in sorted(folder.iterdir()) if path.name != MANIFEST]
    partial = folder / f".{MANIFEST}.partial"
    partial.write_text("".join(lines))
    os.replace(partial, folder / MANIFEST)


def component_problem(folder):
    """What is wrong with the component ``folder`` (one phrase), or None when its manifest holds.

    Every file must be listed with its SHA-256, and nothing else may be there: GDL
    compiles any ``.pro`` it finds on its path, the folder's included.
    """
    folder = Path(folder)
    try:
        text = (folder / MANIFEST).read_text()
    except FileNotFoundError:
        return "it has no manifest (an interrupted generation, or older code)" if folder.is_dir() else "it is missing"
    except (OSError, UnicodeDecodeError) as exc:
        return f"its manifest cannot be read ({getattr(exc, 'strerror', None) or exc})"
    expected = {}
    for line in text.splitlines():
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or not name or "/" in name:
            return f"its manifest has a malformed line: {line[:80]!r}"
        expected[name] = digest
    present = {path.name for path in folder.iterdir()} - {MANIFEST}
    for name in sorted(expected):
        if name not in present:
            return f"{name} is missing"
        try:
            if file_sha256(folder / name) != expected[name]:
                return f"{name} has changed (its SHA-256 differs from the manifest's)"
        except OSError as exc:
            return f"{name} cannot be read ({exc.strerror})"
    extra = sorted(present - set(expected))
    if extra:
        return f"it holds {extra[0]}, which the manifest does not list"
    return None


@contextmanager
def _locked(base, name):
    """Hold ``base/.NAME.lock`` while checking or repairing a component (shared by all processes).

    Where the file system cannot lock, the atomic publish alone keeps workers safe."""
    fd = None
    try:
        fd = os.open(base / f".{name}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:
        if fd is not None:
            os.close(fd)
            fd = None
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock


def _publish(interp, name, folder):
    """Generate the component into a temporary folder beside ``folder``, with its manifest, and
    rename it into place; a damaged ``folder`` is moved aside first (and deleted)."""
    scratch = Path(tempfile.mkdtemp(prefix=f".{name}.new.", dir=folder.parent))
    try:
        generate_component(interp, name, scratch, final_dir=folder)
        write_manifest(scratch)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    aside = None
    if os.path.lexists(folder):
        aside = folder.parent / f".{folder.name}.damaged.{uuid.uuid4().hex[:8]}"
        try:
            os.rename(folder, aside)
        except FileNotFoundError:  # another worker moved it meanwhile
            aside = None
    try:
        os.rename(scratch, folder)
    except OSError:  # another worker published one first: theirs is checked by the caller
        shutil.rmtree(scratch, ignore_errors=True)
    if aside is not None:
        if aside.is_dir() and not aside.is_symlink():
            shutil.rmtree(aside, ignore_errors=True)
        else:
            aside.unlink(missing_ok=True)


def check_cache_owner(base=None):
    """UlyssAnnError unless the cache's folders that exist are this user's and writable by nobody else.

    The manifest catches damage, not intent: whoever can write the cache can write a
    manifest too, and GDL compiles the ``.pro`` files it finds there, as the batch's user.
    So the folders above the components (``ulyss_ann``, ``components``) must be owned by
    this user and closed to the group's and others' writes; a component folder is made
    private (mode 0700) by :func:`_publish`.
    """
    base = Path(base) if base is not None else cache_dir()
    for folder in (base.parent, base, *(sorted(base.glob("ann_*")) if base.is_dir() else ())):
        try:
            info = os.lstat(folder)
        except FileNotFoundError:
            continue
        if info.st_uid != os.geteuid() or info.st_mode & 0o022:
            raise UlyssAnnError(f"{folder}: the GDL component cache must be yours and writable by you alone (GDL "
                                "runs the code it finds there): fix its owner or permissions (chmod go-w), or set "
                                "XDG_CACHE_HOME to a folder of your own")


def checked_problem(folder):
    """:func:`component_problem` under the cache's lock: never a folder caught in another worker's repair."""
    folder = Path(folder)
    with _locked(folder.parent, folder.name.rsplit("_", 1)[0]):
        return component_problem(folder)


def cached_component(interp, sha):
    """``(name, folder)`` of the verified component of ``interp`` (``sha``: its file's SHA-256).

    The folder is generated when absent and regenerated when :func:`component_problem`
    finds it damaged.
    """
    base = cache_dir()
    # a component carrying a converted axis (ulyss_ann.model.medium) is another component
    name = "ann_" + sha[:12] + ("" if converted_axis(interp) is None else f"_{interp.medium}")
    folder = base / f"{name}_{code_version()}"  # new code never meets old generated files
    check_cache_owner(base)
    try:
        base.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # ours: private whatever the umask
        base.mkdir(mode=0o700, exist_ok=True)
        with _locked(base, name):
            for _ in range(3):  # a race lost to another worker's publish costs one more look
                problem = component_problem(folder)
                if problem is None:
                    return name, folder
                _publish(interp, name, folder)
    except OSError as exc:  # a full disk, a read-only cache: the machinery's, retried on --resume
        raise MachineryError(f"the GDL component cache {base} cannot be written ({exc.strerror or exc}); "
                             "free some space there, or set XDG_CACHE_HOME to another place") from None
    raise MachineryError(f"the GDL component cache {folder} could not be made sound ({problem}); "
                         "delete the folder, or set XDG_CACHE_HOME to another place")
