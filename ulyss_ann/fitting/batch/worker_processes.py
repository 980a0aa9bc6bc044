"""The local cluster's worker processes start without running the user's script again.

Dask's nannies start each worker with multiprocessing's ``spawn`` (a fresh interpreter:
``fork`` would copy a driver that already runs threads, which is unsafe). To let a child
unpickle functions defined in the parent's main module, ``spawn`` (and ``forkserver``,
which prepares its children the same way) first runs that main module again in the child,
as ``__mp_main__``: a script calling :func:`ulyss_ann.fit` without an
``if __name__ == "__main__":`` guard made each worker start a cluster of its own and die
(a Dask error and some 250 lines of tracebacks), and with the guard everything above it
(a ``fit_spectrum``, a ``plot()``) ran once more in every worker.

The workers need nothing from the main module: ulyss_ann's tasks are functions of the
package, and Dask sends anything defined in ``__main__`` by value (cloudpickle), as it does
to the workers of ``dask worker``, which never see the script. Multiprocessing has no
option to skip that step (loky, joblib's process pool, has one of its own), but it never
runs a main module that is a package's ``__main__`` (``python -m package``: its code runs
unconditionally, so running it again would start the program again): while a nanny starts
its worker, :func:`main_module_not_rerun` gives the main module's ``__spec__`` that name,
and puts the real one back after. Nothing else reads a script's ``__spec__`` (it is None
for a script run by path, and for a notebook, where there is no script to run anyway). For
that second or so, a process that another thread of the driver starts with ``spawn`` (a
``ProcessPoolExecutor``, a torch ``DataLoader``) would not get the script either.
The nanny does this for every start, the first and each restart of a worker that died
(:class:`ScriptSafeNanny`), and the cluster is still the run's own (the nanny's credentials
and settings are Dask's own, unchanged).
"""

import contextlib
import importlib.machinery
import sys
import threading

from distributed import Nanny

__all__ = ["main_module_not_rerun", "ScriptSafeNanny"]

_lock = threading.Lock()
_MISSING = object()  # the main module had no __spec__ at all (IPython's namespace module): delete it after
_hidden = {"depth": 0, "module": None, "spec": _MISSING}  # nannies start their workers concurrently


@contextlib.contextmanager
def main_module_not_rerun():
    """While inside, a process started with ``spawn`` or ``forkserver`` does not run this process's main
    module (see the module's text); nested and concurrent uses restore the main module's ``__spec__`` once,
    as it was (deleted again if it was absent). A main module that refuses the name is left as it is."""
    with _lock:
        if _hidden["depth"] == 0:
            main = sys.modules.get("__main__")
            spec = main.__dict__.get("__spec__", _MISSING) if hasattr(main, "__dict__") else _MISSING
            try:
                main.__spec__ = importlib.machinery.ModuleSpec("__main__", None)
                _hidden.update(module=main, spec=spec)
            except (AttributeError, TypeError):  # no main module, or one that takes no attributes
                _hidden.update(module=None, spec=_MISSING)
        _hidden["depth"] += 1
    try:
        yield
    finally:
        with _lock:
            _hidden["depth"] -= 1
            if _hidden["depth"] == 0 and _hidden["module"] is not None:
                if _hidden["spec"] is _MISSING:
                    del _hidden["module"].__spec__
                else:
                    _hidden["module"].__spec__ = _hidden["spec"]
                _hidden.update(module=None, spec=_MISSING)


class ScriptSafeNanny(Nanny):
    """Dask's nanny, whose worker process never runs the user's script (see the module's text)."""

    async def instantiate(self):
        # the worker's interpreter reads the main module's name when it is spawned, in this call
        with main_module_not_rerun():
            return await super().instantiate()
