"""Which engine fits, and one engine per configuration and process, kept for the next spectrum.

``engine="auto"`` takes the GDL engine when GDL and ULySS are both found here, the native
one otherwise; ``gdl`` on a machine without them stops with the fix (:func:`require_engine`),
after the options are checked: a user who typed an impossible combination of options hears
about it first, with or without ULySS. An engine is
costly to start (the GDL engine generates a component and starts a GDL session), so
each process keeps one per :meth:`~ulyss_ann.fitting.core.FitConfig.engine_key` and
closes them all at exit: a Dask worker, or a notebook calling
:func:`~ulyss_ann.fitting.api.fit_spectrum` in a loop, starts each once.
"""

import atexit
import shutil

from ulyss_ann.errors import UlyssAnnError

__all__ = ["ENGINES", "resolve_engine", "require_engine", "engine_label", "check_gdl", "gdl_ready", "engine_for",
           "open_engines", "close_engines"]

ENGINES = ("auto", "gdl", "native")

_OPEN = {}  # engine_key -> engine, in this process


def check_gdl(backend):
    """Stop at once, with the fix, when this machine cannot run GDL + ULySS."""
    from ulyss_ann.gdl.process import GDLNotFoundError, gdl_executable
    from ulyss_ann.gdl.session import pygdl_available
    from ulyss_ann.gdl.ulyss_location import INSTALL_HINT, default_ulyss_dir, find_ulyss

    if find_ulyss() is None:
        raise GDLNotFoundError(INSTALL_HINT.format(default=default_ulyss_dir()).replace(
            "Everything that does not run GDL works without it.",
            "The gdl engine needs it; engine='native' (--engine native) needs neither GDL nor ULySS."))
    if backend == "pygdl" and not pygdl_available():
        raise GDLNotFoundError("import GDL failed: install python3-gdl (./scripts/setup) or use --backend subprocess")
    if backend == "subprocess" or (backend == "auto" and not shutil.which("gdl") and not pygdl_available()):
        gdl_executable()  # raises with the apt-get line


def gdl_ready(backend):
    """True when GDL and ULySS are both here (what ``engine='auto'`` asks)."""
    try:
        check_gdl(backend)
    except UlyssAnnError:
        return False
    return True


def resolve_engine(engine, backend="auto", remote=False, losvd="sampled", device="auto"):
    """``gdl`` or ``native`` for the ``engine`` asked; whether GDL is here is :func:`require_engine`'s check.

    ``auto`` takes ``native`` for what only it does (``losvd="analytic"``, a GPU ``device``), ``gdl`` when a
    GDL ``backend`` is named, else ``gdl`` when GDL and ULySS are here, ``native`` otherwise.
    ``remote`` (the fits run on a cluster) is :func:`require_engine`'s concern; kept for callers.
    """
    if engine not in ENGINES:
        raise UlyssAnnError(f"engine '{engine}': choose {', '.join(ENGINES)}")
    if engine == "auto":
        if losvd == "analytic" or device not in ("auto", "cpu"):  # what only the native engine does
            return "native"
        if backend == "auto":
            return "gdl" if gdl_ready(backend) else "native"
        engine = "gdl"
    return engine


def require_engine(engine, backend="auto", remote=False):
    """Stop, with the fix, when ``engine`` is ``gdl`` and this machine lacks GDL or ULySS.

    Called once the options are checked (they are refused first, in one line, on any machine);
    ``remote``: the fits run on a cluster, whose machines are what count.
    """
    if engine == "gdl" and not remote:
        check_gdl(backend)


def engine_label(config):
    """The ``engine`` column of the rows of ``config``: ``native``, ``gdl-subprocess`` or ``gdl-pygdl``.

    Rows of spectra that failed before any engine started carry it too, so that every row
    of a run names the same engine.
    """
    if config.engine != "gdl":
        return config.engine
    from ulyss_ann.gdl.session import resolve_backend

    return f"gdl-{resolve_backend(config.backend)}"


def engine_for(config, interp=None):
    """The engine of ``config`` in this process, started on first use."""
    key = config.engine_key()
    if key not in _OPEN:
        if not _OPEN:
            atexit.register(close_engines)
        if config.engine == "native":
            from ulyss_ann.fitting.native_engine import NativeEngine as Engine
        elif config.engine == "gdl":
            from ulyss_ann.fitting.gdl_engine import GDLEngine as Engine
        else:
            raise UlyssAnnError(f"engine '{config.engine}': choose gdl or native (auto is resolved before)")
        _OPEN[key] = Engine(config, interp)
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
