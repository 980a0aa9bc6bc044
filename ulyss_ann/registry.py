"""Things registered by name, and what installed packages add through an entry-point group: the one
machinery under the engines (:mod:`ulyss_ann.fitting.engines`), the spectrum readers
(:mod:`ulyss_ann.spectra.reader_registry`) and the training recipes (:mod:`ulyss_ann.training.train`).

A :class:`Registry` holds, by name, items (an engine class, a reader or a recipe instance) or
*lazy entries*: a ``"module:Class"`` string or an installed package's entry point, imported on the
first lookup of that name, so that naming a thing costs no import of it (``import ulyss_ann`` stays
light; a command's help lists the engines without starting torch). The entry points of its group
are read on the first lookup, never at import: a package installed with ``pip`` is seen by every
process (Dask workers included), and a process that looks nothing up reads no metadata.

Every refusal is one line: a name taken twice, an unknown name (the registry's own message, which
lists the names registered), a lazy entry that does not load (naming it). A broken entry point of an
installed package is one warning naming it, and it is left out: the others go on working; so is, in
what goes through every item (:meth:`Registry.loaded`: which engine ``auto`` takes), a lazy entry that
does not load, while asking for it by name still says why in one line.

A name registered in a session alone (a live class or instance) is unknown to another process, a Dask
worker: :meth:`Registry.reachable` says whether a fresh process finds it too (an entry point, or an
item of the package's own modules, which register theirs when imported). One lock guards the reading
of the entry points and each lazy load (a Dask worker's threads look items up at once); it is
re-entrant, so that a plug-in may look items up while it is imported.
"""

import importlib
import threading
import warnings

from ulyss_ann.errors import UlyssAnnError, first_line

__all__ = ["Registry", "RegistrationError"]


class RegistrationError(UlyssAnnError, ValueError):
    """A name registered twice, or a lazy entry given without its name (a ValueError too: what the readers'
    and recipes' registries raised before they shared this one)."""


class Registry:
    """Items by name, lazy ``"module:Class"`` entries, and the entry points of one group.

    Parameters
    ----------
    kind : str
        What an item is called in messages (``engine``, ``spectrum reader``…).
    group : str
        The entry-point group through which installed packages register items (``ulyss_ann.engines``).
    check : callable, optional
        ``check(item, name) -> item``: refuses (raises) what is not an item of this registry, and may
        turn what is loaded into the item (a reader class into its instance); ``name``: the name it is
        registered under, None when the item names itself.
    unknown : callable, optional
        ``unknown(name) -> str``: the one line for a name not registered; by default it lists the names.
    load_entry_points : bool
        True: an entry point is loaded when the group is read (what needs each item's attributes to
        order them, e.g. the readers' priorities); False: it stays a lazy entry until looked up.
    check_name : callable, optional
        ``check_name(name)``: refuses (raises) a name no item may take (the engines' ``auto``), however
        it is registered, an entry point included (which is then one warning, and left out).
    fold_case : bool
        True: names are one whatever their case (``Toy`` is ``toy``: a user's ``--format`` is lower-cased).
    home : str, optional
        The package whose modules register their items when imported (``ulyss_ann``): those items are
        :meth:`reachable` from a fresh process, as the entry points' are.
    """

    def __init__(self, kind, group, check=None, unknown=None, load_entry_points=False, check_name=None,
                 fold_case=False, home=None):
        self.kind = kind
        self.group = group
        self._check = check
        self._unknown = unknown
        self._load_entry_points = load_entry_points
        self._check_name = check_name
        self._fold_case = fold_case
        self._home = home
        self._entries = {}  # name -> the item, or a lazy entry until first looked up
        self._from_entry_points = {}  # name -> the entry point's value it came from (a refresh skips it)
        self._entry_points_read = False
        self._not_loading = set()  # names of lazy entries said (once) not to load by loaded()
        self._lock = threading.RLock()

    def register(self, item, name=None):
        """Register ``item`` (it names itself, or ``name`` names it), or a lazy ``"module:Class"`` / entry point
        with its ``name``; returns what was registered. A name taken by something else is refused."""
        with self._lock:
            if _is_lazy(item):
                if not name or (isinstance(item, str) and ":" not in item):
                    raise RegistrationError(f"{self.kind} {_address(item)!r}: give 'module:Class' and the "
                                            f"{self.kind}'s name")
            else:
                item = self._checked(item, name)
                name = item.name
            if self._check_name:
                self._check_name(name)
            key = self._key(name)
            known = self._entries.get(key)
            if known is not None and not _same(known, item):
                raise RegistrationError(f"{self.kind} '{name}' is registered already ({_address(known)}); "
                                        "unregister it first")
            if known is None or _is_lazy(known):
                self._entries[key] = item
            return item

    def unregister(self, name):
        """Forget ``name`` (a name not registered: nothing)."""
        with self._lock:
            key = self._key(name)
            self._entries.pop(key, None)
            self._from_entry_points.pop(key, None)
            self._not_loading.discard(key)

    def get(self, name):
        """The item ``name`` (a lazy entry imported now, once), or a one-line UlyssAnnError: the unknown name
        with the names registered, or the entry that does not load."""
        with self._lock:  # two threads asking at once: one import, one item
            key = self._key(name) if isinstance(name, str) else None
            if key is not None and key not in self._entries:
                self._read_entry_points()
            entry = self._entries.get(key)
            if entry is None:
                raise UlyssAnnError(self._unknown(name) if self._unknown else
                                    f"{self.kind} '{name}': none registered; registered: {', '.join(self.names())}")
            if _is_lazy(entry):
                try:
                    loaded = entry.load() if hasattr(entry, "load") else _import(entry)
                except Exception as exc:  # noqa: BLE001 - a broken plug-in names itself; the others go on working
                    raise UlyssAnnError(f"{self.kind} '{name}': {_address(entry)} does not load "
                                        f"({_cause(exc)})") from None
                entry = self._entries[key] = self._checked(loaded, key)
            return entry

    def loaded(self):
        """``(name, item)`` of every registered name whose item loads, in the order registered; a lazy entry that
        does not load is left out, said once in a warning naming it (asking for it by name still refuses it)."""
        for name in self.names():
            try:
                item = self.get(name)
            except UlyssAnnError as exc:
                with self._lock:
                    said = name in self._not_loading
                    self._not_loading.add(name)
                if not said:
                    warnings.warn(f"{exc}; left out until it loads (fix or uninstall the package that "
                                  "declares it)", stacklevel=2)
                continue
            yield name, item

    def reachable(self, name):
        """Whether a fresh process (a Dask worker) finds ``name`` too: registered through an entry point, or an
        item of :attr:`home`'s modules (which register it when imported); False for a name registered in this
        session alone, whether as an item or as a ``"module:Class"`` of a module of one's own."""
        with self._lock:
            self._read_entry_points()
            key = self._key(name)
            if key in self._from_entry_points:
                return True
            entry = self._entries.get(key)
            module = _address(entry).partition(":")[0] if entry is not None else ""
            return bool(self._home) and (module == self._home or module.startswith(f"{self._home}."))

    def peek(self, name):
        """What ``name`` holds now, not loaded: the item, or its lazy entry (e.g. to describe it without an import)."""
        return self._entries[self._key(name)]

    def names(self):
        """The registered names, in the order registered (entry points last, read here)."""
        with self._lock:
            self._read_entry_points()
            return list(self._entries)

    def __iter__(self):
        return iter(self.names())

    def __contains__(self, name):
        return isinstance(name, str) and self._key(name) in self.names()

    def refresh_entry_points(self):
        """Read the group's entry points again (a package installed in a running session)."""
        with self._lock:
            self._entry_points_read = False
            self._read_entry_points()

    def _key(self, name):
        return name.lower() if self._fold_case and isinstance(name, str) else name

    def _checked(self, item, name):
        return self._check(item, name) if self._check else item

    def _read_entry_points(self):
        """Register the group's entry points, once (until a refresh); a broken one: one warning, left out."""
        with self._lock:  # another thread waits for the whole group; this one may re-enter (a plug-in's lookup)
            if not self._entry_points_read:
                self._entry_points_read = True  # before loading: a plug-in that looks an item up while imported
                self._read_group()

    def _read_group(self):
        from importlib.metadata import entry_points  # here: a process that looks nothing up reads no metadata

        try:
            found = entry_points(group=self.group)
        except Exception as exc:  # noqa: BLE001 - a damaged installation's metadata: the built-ins go on working
            warnings.warn(f"{self.kind}s of installed packages not read ({first_line(exc, 120)})", stacklevel=4)
            return
        for point in found:
            key = self._key(point.name)
            if key in self._entries and self._from_entry_points.get(key) == point.value:
                continue
            try:
                if self._check_name:
                    self._check_name(point.name)
                if self._load_entry_points:
                    item = self._checked(point.load(), point.name)
                    known = self._entries.get(key)
                    if known is None or _address(known) != _address(item):  # not registered by its module already
                        self.register(item)
                else:
                    self.register(point, point.name)
            except Exception as exc:  # noqa: BLE001 - a broken plug-in names itself, in one line
                warnings.warn(f"{self.kind} '{point.name} = {point.value}' ({self.group}) left out: "
                              f"{_cause(exc)}; fix or uninstall the package that declares it", stacklevel=5)
                continue
            self._from_entry_points[key] = point.value


def _cause(exc):
    return f"{type(exc).__name__}: {first_line(exc, 160)}"


def _is_lazy(entry):
    """A ``"module:Class"`` string or an entry point: imported on first lookup."""
    if isinstance(entry, str):
        return True
    return hasattr(entry, "load") and hasattr(entry, "value") and not isinstance(entry, type)


def _address(entry):
    """``module:Class`` of an entry, a class, or an instance's class."""
    if isinstance(entry, str):
        return entry
    if _is_lazy(entry):
        return entry.value
    cls = entry if isinstance(entry, type) else type(entry)
    return f"{cls.__module__}:{cls.__qualname__}"


def _same(known, item):
    """The same thing registered again (a class and its ``"module:Class"``): no conflict. Two instances are
    two things, even of one class."""
    if known is item:
        return True
    instances = [entry for entry in (known, item) if not (_is_lazy(entry) or isinstance(entry, type))]
    return not instances and _address(known) == _address(item)


def _import(spec):
    module, _, attribute = spec.partition(":")
    return getattr(importlib.import_module(module), attribute)
