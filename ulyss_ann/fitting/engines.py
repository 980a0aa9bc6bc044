"""The engines by name: a registry, which engine ``auto`` takes, and one engine per configuration and process.

**Registry.** An engine is a :class:`~ulyss_ann.fitting.core.FitEngine` subclass whose class-level
declarations (:class:`~ulyss_ann.fitting.engine_traits.EngineTraits`: name, label, options and
their checks, block size, what it needs installed, the batch's hooks) are all the package asks
of it. The built-in ones are registered here as ``"module:Class"`` and imported on first
lookup (``import ulyss_ann`` stays light); :func:`register_engine` adds one (a class, or such a
string); a package of your own can register through the entry-point group
``ulyss_ann.engines`` (``name = "package.module:Class"``), read on the first lookup that needs it.
:func:`engine_class` looks a name up; :func:`engine_names` lists them (the CLI's ``--engine``
choices and an unknown name's one-line refusal).

**auto.** ``engine="auto"`` takes, among the engines with an
:attr:`~ulyss_ann.fitting.engine_traits.EngineTraits.auto_priority` (highest first), the first whose
option checks let the options through and that this machine can run (the GDL engine when GDL and
ULySS are found here, the native one otherwise); when none can run, the first that takes the
options, which :func:`require_engine` then refuses with the fix, after the options are checked: a
user who typed an impossible combination of options hears about it first, with or without ULySS.

**One per process.** An engine is costly to start (the GDL engine generates a component and starts
a GDL session), so each process keeps one per :meth:`~ulyss_ann.fitting.core.FitConfig.engine_key`
and closes them all at exit: a Dask worker, or a notebook calling
:func:`~ulyss_ann.fitting.api.fit_spectrum` in a loop, starts each once.
"""

import atexit

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.registry import Registry

__all__ = ["AUTO", "ENTRY_POINT_GROUP", "register_engine", "unregister_engine", "engine_class", "engine_names",
           "engine_choices", "engine_help", "engine_reachable", "refresh_entry_points", "engine_of_label",
           "resolve_engine", "require_engine", "engine_label",
           "check_gdl", "gdl_ready", "engine_for", "open_engines", "close_engines", "ENGINES"]

#: The engine name that lets the registry choose (:func:`resolve_engine`).
AUTO = "auto"
#: The entry-point group through which installed packages register engines.
ENTRY_POINT_GROUP = "ulyss_ann.engines"


def _check_engine_class(cls, name):
    from ulyss_ann.fitting.core import FitEngine

    if not (isinstance(cls, type) and issubclass(cls, FitEngine)):
        raise UlyssAnnError(f"engine '{name}': {cls!r} is not a FitEngine subclass (ulyss_ann.fitting.core)")
    if not isinstance(cls.name, str) or not cls.name or (name is not None and cls.name != name):
        raise UlyssAnnError(f"engine '{name}': {cls.__module__}:{cls.__qualname__} must set name = '{name or 'NAME'}'")
    return cls


def _check_engine_name(name):
    """``auto`` is the registry's own choice, however an engine would take it (an entry point included)."""
    if name == AUTO:
        raise UlyssAnnError(f"engine name '{AUTO}' is taken by the registry's own choice; name the engine otherwise")


# name -> the engine's class, or "module:Class" / an entry point until first looked up (entry points stay
# unloaded: the CLI's help lists them without importing an engine)
_REGISTRY = Registry("engine", ENTRY_POINT_GROUP, check=_check_engine_class, check_name=_check_engine_name,
                     unknown=lambda name: f"engine '{name}': choose {', '.join(engine_choices())}", home="ulyss_ann")
# name -> one line for --engine's help, of engines registered unloaded (the CLI imports no engine to say it)
_SUMMARIES = {}

_OPEN = {}  # engine_key -> engine, in this process


def register_engine(engine, name=None, summary=None):
    """Register an engine: a FitEngine subclass (usable as a class decorator), or ``"module:Class"``
    with its ``name`` (imported on first lookup; ``summary``: its line in ``--engine``'s help, else
    the class's :attr:`~ulyss_ann.fitting.engine_traits.EngineTraits.summary` once loaded); returns
    ``engine``. A name registered already to another engine is refused, and so is ``auto``."""
    _REGISTRY.register(engine, name)
    if summary:
        _SUMMARIES[name or engine.name] = summary
    return engine


def unregister_engine(name):
    """Remove engine ``name`` from the registry; this process's open engines of it are closed."""
    _REGISTRY.unregister(name)
    _SUMMARIES.pop(name, None)
    for key in [k for k in _OPEN if k[0] == name]:
        _OPEN.pop(key).close()


def refresh_entry_points():
    """Read the entry points of the installed packages again (a package installed in a running session)."""
    _REGISTRY.refresh_entry_points()


def engine_class(name):
    """The registered engine class of ``name`` (imported on first lookup), or a one-line UlyssAnnError
    listing the names registered."""
    return _REGISTRY.get(name)


def engine_reachable(name):
    """Whether a fresh process (a Dask worker) finds engine ``name`` too: the package's, or an installed
    package's entry point; False for one registered in this session alone."""
    return _REGISTRY.reachable(name)


def engine_names():
    """The registered engines' names, sorted (entry points included)."""
    return sorted(_REGISTRY.names())


def engine_choices():
    """What ``engine=`` / ``--engine`` takes: ``auto`` and every registered name."""
    return [AUTO, *engine_names()]


def engine_help(default=AUTO, auto=True):
    """``--engine``'s help: each engine's summary, and (``auto``) what auto does; ``default`` marked."""
    def mark(name):
        return f"{name} (default)" if name == default else name

    def summary(name):  # without importing an engine registered unloaded (every command builds this help)
        entry = _REGISTRY.peek(name)
        return _SUMMARIES.get(name) or (entry.summary if isinstance(entry, type) else "an installed engine")

    parts = [f"{mark(name)}: {summary(name)}" for name in engine_names()]
    if auto:
        parts.append(f"{mark(AUTO)}: the first engine that the options allow and this machine can run "
                     "(gdl where GDL and ULySS are here, else native)")
    return "; ".join(parts)


def engine_of_label(label):
    """The engine name of a table's ``engine`` column (``gdl-subprocess`` -> ``gdl``), or UlyssAnnError.

    The engine named exactly, else the longest name among those that own the label: ``native-jax-gpu`` is
    the ``native-jax`` engine's, when one is registered, not ``native``'s. An engine that does not load is
    left out (one warning naming it)."""
    label = str(label)
    owners = [name for name, cls in _REGISTRY.loaded() if cls.owns_label(label)]
    if owners:
        return max(owners, key=lambda name: (name == label, len(name)))
    raise UlyssAnnError(f"engine '{label}' (the table's engine column): no engine registered here writes it; "
                        f"registered: {', '.join(engine_names())}")


def resolve_engine(engine, backend="auto", remote=False, losvd="sampled", device="auto", search="auto"):
    """The registered engine's name for the ``engine`` asked (``auto`` resolved: see the module's text);
    whether this machine can run it is :func:`require_engine`'s check (``remote``: kept for callers)."""
    if engine != AUTO:
        return engine_class(engine).name  # an unknown name: one line listing the registered ones
    options = {"backend": backend, "losvd": losvd, "device": device, "search": search}
    engines = _auto_engines()
    taking = [cls for cls in engines if cls.accepts(options)]
    for cls in taking:
        if cls.available(backend):
            return cls.name
    # none can run here: the one the options ask for, which require_engine refuses with the fix;
    # options no engine takes: the last resort's, whose checks then name the option
    return (taking or engines[-1:])[0].name


def require_engine(engine, backend="auto", remote=False):
    """Stop, with the fix, when this machine lacks what ``engine`` needs (GDL and ULySS for ``gdl``).

    Called once the options are checked (they are refused first, in one line, on any machine);
    ``remote``: the fits run on a cluster, whose machines are what count.
    """
    engine_class(engine).require(backend, remote)


def engine_label(config):
    """The ``engine`` column of the rows of ``config`` (``native``, ``gdl-subprocess``, ``gdl-pygdl``…).

    Rows of spectra that failed before any engine started carry it too, so that every row
    of a run names the same engine.
    """
    return engine_class(config.engine).label(config)


def check_gdl(backend):
    """Stop at once, with the fix, when this machine cannot run GDL + ULySS (the gdl engine's needs)."""
    engine_class("gdl").require(backend)


def gdl_ready(backend):
    """True when GDL and ULySS are both here."""
    return engine_class("gdl").available(backend)


def engine_for(config, interp=None):
    """The engine of ``config`` in this process, started on first use."""
    key = config.engine_key()
    if key not in _OPEN:
        engine = engine_class(config.engine)  # auto is resolved before
        if not _OPEN:
            atexit.register(close_engines)
        _OPEN[key] = engine(config, interp)
    engine = _OPEN[key]
    engine.config = config  # guesses, masks and range may differ between batches
    return engine


def open_engines():
    """The engines this process has started (for benchmarks: their counters)."""
    return list(_OPEN.values())


def close_engines():
    """Close every engine of this process (GDL sessions end)."""
    for engine in _OPEN.values():
        engine.close()
    _OPEN.clear()


def __getattr__(name):
    if name == "ENGINES":  # computed on use: engines registered later count
        return tuple(engine_choices())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _auto_engines():
    """The engines auto may take, highest priority first; one that does not load is left out (one warning
    naming it), so that a broken plug-in leaves auto working for everyone."""
    ranked = [cls for _, cls in sorted(_REGISTRY.loaded(), key=lambda named: named[0])]  # ties: by name
    return sorted((cls for cls in ranked if cls.auto_priority is not None), key=lambda cls: -cls.auto_priority)


# The built-in engines: imported on first lookup
register_engine("ulyss_ann.fitting.gdl_engine.engine:GDLEngine", "gdl", "ULySS's uly_fit in GDL")
register_engine("ulyss_ann.fitting.native_engine.engine:NativeEngine", "native", "the same fit in NumPy, no GDL needed")
