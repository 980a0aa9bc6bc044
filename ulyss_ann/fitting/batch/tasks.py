"""What one task of a batch does: fit one spectrum, or a block of them, into rows that say how it went.

The batch driver (:mod:`~ulyss_ann.fitting.batch.driver`) cuts the spectra to fit into blocks
(:func:`task_blocks`) and hands each to :func:`fit_block`, in this process or on a Dask
worker. With the native engine a block is fitted together — the spectra that share a
grid in lock-step (:meth:`~ulyss_ann.fitting.native_engine.engine.NativeEngine.solve_many`) —
so that a task is worth sending and the driver journals a block in one write; with the
GDL engine each spectrum is its own task (a fit takes long enough, and a GDL that dies
then takes only its own spectrum with it).

Every spectrum gets a row: ``ok``; ``error: …`` when the spectrum cannot be fitted (the
same reason it would get alone); ``failed: …`` when the machinery failed.
"""

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import replace

from ulyss_ann.errors import MachineryError, OversampledWarning, UlyssAnnError, first_line
from ulyss_ann.fitting.engines import engine_class, engine_for, engine_label
from ulyss_ann.fitting.batch.journal import failure_row
from ulyss_ann.spectra.inputs import as_spectrum

__all__ = ["Tasks", "fit_one", "fit_block", "fit_block_noting_warnings", "task_blocks", "worker_death_row",
           "BLOCKS_PER_WORKER"]

#: Tasks per worker at least, so that a cluster's workers finish together.
BLOCKS_PER_WORKER = 4


class Tasks(Sequence):
    """What a batch fits now: (entry, fixed values) pairs, made when asked from the batch's inputs
    (:class:`~ulyss_ann.fitting.batch.sources.BatchInputs`), ``chosen`` (their indices, an array) and its
    :class:`~ulyss_ann.fitting.fit_options.FixedValues`: a survey's 10⁶ tasks hold 8 bytes each."""

    def __init__(self, inputs, chosen, fixed_values):
        self._inputs, self._chosen, self._fixed = inputs, chosen, fixed_values

    def __len__(self):
        return len(self._chosen)

    def __getitem__(self, n):
        if isinstance(n, slice):
            return [self[i] for i in range(*n.indices(len(self)))]
        entry = self._inputs[int(self._chosen[n])]
        return entry, self._fixed.for_spectrum(entry.ident, entry.name_in_file)  # checked before: no error


class _Blocks(Sequence):
    """``tasks`` in blocks of ``size``, each made when asked."""

    def __init__(self, tasks, size):
        self._tasks, self._size = tasks, size

    def __len__(self):
        return math.ceil(len(self._tasks) / self._size)

    def __getitem__(self, k):
        if not 0 <= k < len(self):
            raise IndexError(k)
        return self._tasks[k * self._size:(k + 1) * self._size]


def task_blocks(tasks, config, slots):
    """``tasks`` ((entry, fixed) pairs) cut into blocks of the engine's
    :meth:`~ulyss_ann.fitting.engine_traits.EngineTraits.block_size` (one spectrum for the GDL engine;
    for the native one 32 on the CPU, more on a GPU), smaller when ``slots`` workers would otherwise get
    fewer than :data:`BLOCKS_PER_WORKER` blocks each; a sequence whose blocks are made as they are asked for."""
    block = engine_class(config.engine).block_size(config)
    size = max(1, min(block, math.ceil(len(tasks) / (BLOCKS_PER_WORKER * slots)))) if slots > 1 else block
    return _Blocks(tasks, size)


def _read(source, ident, config):
    spectrum = as_spectrum(source, format=config.format)  # --format: the reader forced, else the file's own
    if ident is not None and spectrum.meta.get("id") != ident:
        spectrum = replace(spectrum, meta={**spectrum.meta, "id": ident})
    return spectrum


def fit_one(source, config, fixed=None, key=None, interp=None, ident=None):
    """Fit one spectrum (a file or a Spectrum); always returns a row (failures say why in ``status``).

    ``interp``: the model, where this process has read it already (a batch without Dask);
    ``ident``: the spectrum's id in the batch (the reader's otherwise). A problem of the
    spectrum gives ``error: …``; a failure of the machinery (GDL died, hung) or of
    ulyss_ann itself gives ``failed: …``, which ``--resume`` retries.
    """
    spectrum, name = None, engine_label(config)
    key = key if key is not None else os.path.abspath(source)
    try:
        spectrum = _read(source, ident, config)
        engine = engine_for(config, interp)
        name = engine.name  # the engine's label (gdl-subprocess…): the same as the successful rows
        row = engine.fit(spectrum, fixed, config=config).row()  # this batch's config, whoever shares the engine
        row["file"] = key
        return row
    except MachineryError as exc:
        status = f"failed: {exc}"
    except UlyssAnnError as exc:
        status = f"error: {exc}"
    except Exception as exc:  # a bug: recorded, retried on --resume, never the end of the batch
        status = f"failed: internal error ({type(exc).__name__}: {exc}); please report it"
    return failure_row(key, spectrum or ident, status, name, os.path.basename(config.model), config.model_sha256)


def fit_block(block, config, interp=None):
    """Rows of a block of (entry, fixed) tasks, in order; see the module's text.

    The engine fits the spectra it could read together (the native one in lock-step); a spectrum that cannot be
    read, and every spectrum of a block whose joint fit failed as a whole (a bug), goes
    through :func:`fit_one` alone, so that only its own row says so.
    """
    if len(block) == 1:  # an engine of one spectrum per task (task_blocks), or a block's last
        return [fit_one(entry.source, config, fixed, entry.key, interp, entry.ident) for entry, fixed in block]
    rows, readable = [None] * len(block), []
    for i, (entry, fixed) in enumerate(block):
        try:
            readable.append((i, _read(entry.source, entry.ident, config), fixed))
        except Exception:  # its row from fit_one, with the reason it gives alone
            rows[i] = fit_one(entry.source, config, fixed, entry.key, interp, entry.ident)
    try:
        engine = engine_for(config, interp)
        results = engine.fit_many([s for _, s, _ in readable], [f for _, _, f in readable], config=config)
    except Exception:
        results = None
    for k, (i, spectrum, fixed) in enumerate(readable):
        entry = block[i][0]
        if results is None:
            rows[i] = fit_one(spectrum, config, fixed, entry.key, interp, entry.ident)
        elif isinstance(results[k], UlyssAnnError):
            rows[i] = failure_row(entry.key, spectrum, f"error: {results[k]}", engine.name,
                                  os.path.basename(config.model), config.model_sha256)
        else:
            rows[i] = results[k].row()
            rows[i]["file"] = entry.key
    return rows


def fit_block_noting_warnings(block, config):
    """:func:`fit_block` in a Dask worker: the warnings of each fit travel back in its row, for the driver to print."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", OversampledWarning)
        rows = fit_block(block, config)
    notes = [str(w.message) for w in caught if issubclass(w.category, OversampledWarning)]
    for row in rows:  # each warning begins with the id of its spectrum
        mine = [note for note in notes if note.startswith(f"{row.get('id')}:")]
        if mine:
            row["warnings"] = mine
            notes = [note for note in notes if note not in mine]
    if notes and rows:
        rows[0].setdefault("warnings", []).extend(notes)
    return rows


def worker_death_row(entry, config, retries, exc):
    """The ``failed: …`` row of a spectrum whose task the cluster gave up (its workers died)."""
    if type(exc).__name__ == "KilledWorker":
        why = f"the worker died fitting it, {int(retries) + 1} times (KilledWorker)"
    elif "Cancelled" in type(exc).__name__:  # its message names the task's key: no use, and every row's own
        why = f"its task was cancelled on the cluster ({type(exc).__name__}: the scheduler was lost?)"
    else:
        why = f"its task failed on the cluster ({type(exc).__name__}: {first_line(exc)})"
    return failure_row(entry.key, entry.in_memory or entry.ident, f"failed: {why}", engine_label(config),
                       os.path.basename(config.model), config.model_sha256)
