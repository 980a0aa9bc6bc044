"""The batch driver: many spectra fitted in parallel on Dask, resumable, nothing lost.

``fit(spectra, model, output)`` reads each spectrum, fits it (either engine, through
:func:`~ulyss_ann.fitting.engines.engine_for`) and appends its row to a journal the
moment it is done (see :mod:`ulyss_ann.fitting.journal`); the ECSV table is rebuilt from
the journal at the end, so ``resume=True`` after any crash continues where the
batch stopped and every spectrum ends in the table exactly once.

Execution is Dask distributed: by default a ``LocalCluster`` of one worker process
per core, one thread each — one GDL session per worker, because GDL holds the GIL
and is not thread-safe; ``scheduler="tcp://host:8786"`` runs the same batch on an
existing cluster (each worker needs ulyss_ann, GDL and ULySS, and the files on a
shared path). A worker killed or crashed (segfault, ``kill -9``) is restarted by its
nanny and its task retried, ``retries`` times at most (Dask's ``allowed-failures``);
after that the spectrum gets an error row and the batch goes on. The scheduler's
heartbeat timeout is raised above the longest GDL call, which holds the GIL and
freezes the worker's event loop. ``workers=0`` fits in this process, without Dask.

``output=None`` keeps everything in memory (no journal, no resume): the notebook's way,
with spectra that may be arrays or objects rather than files.
"""

import logging
import os
import time
from dataclasses import replace

import numpy as np

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.fitting.options import FixedValues, make_config, model_path
from ulyss_ann.fitting.engines import engine_for, resolve_engine
from ulyss_ann.fitting.journal import Journal, MemoryJournal, failure_row, rows_to_table, write_table
from ulyss_ann.model.interpolator import Interpolator
from ulyss_ann.spectra.inputs import as_spectrum, is_array_tuple, is_path
from ulyss_ann.spectra.lsf import read_lsf
from ulyss_ann.spectra.spectrum import Spectrum

__all__ = ["fit", "fit_one"]


def _in_memory(source):
    """The Spectrum of an in-memory source (its row keeps the id), None for a file."""
    return source if isinstance(source, Spectrum) else None


def fit_one(source, config, fixed=None, key=None, interp=None):
    """Fit one spectrum (a file or a Spectrum); always returns a row (failures say why in ``status``).

    ``interp``: the model, where this process has read it already (a batch without Dask).
    """
    spectrum, name = None, config.engine
    key = key if key is not None else os.path.abspath(source)
    try:
        spectrum = as_spectrum(source)
        engine = engine_for(config, interp)
        name = engine.name  # gdl-subprocess, gdl-pygdl or native: the same label as the successful rows
        row = engine.fit(spectrum, fixed).row()
        row["file"] = key
        return row
    except UlyssAnnError as exc:
        return failure_row(key, spectrum, f"error: {exc}", name, os.path.basename(config.model),
                           config.model_sha256)


def _sources(spectra):
    """(key, source, id) of each input: files by absolute path, in-memory spectra by id.

    In-memory spectra without an id of their own are numbered (``spectrum0001``…, on a
    copy: the caller's object is untouched) so that their rows never merge; a repeated
    key is fitted once.
    """
    if is_path(spectra) or isinstance(spectra, Spectrum) or is_array_tuple(spectra) or hasattr(spectra, "spectral_axis"):
        spectra = [spectra]  # one spectrum, not a sequence of them
    try:
        items = list(spectra)
    except TypeError:
        raise UlyssAnnError(f"cannot fit a {type(spectra).__name__}: give a file name, a ulyss_ann.Spectrum, a "
                            "specutils spectrum, (wavelength, flux[, error]) arrays, or a list of them") from None
    out, seen = [], set()
    for n, item in enumerate(items, start=1):
        if is_path(item):
            path = os.path.abspath(item)
            out.append((path, path, os.path.splitext(os.path.basename(path))[0]))
            continue
        spectrum = as_spectrum(item, default_id=f"spectrum{n:04d}")
        key = spectrum.meta.get("file") or f"memory:{spectrum.meta.get('id')}"
        if not spectrum.meta.get("file") and (spectrum.meta.get("id") in (None, "spectrum") or key in seen):
            spectrum = replace(spectrum, meta={**spectrum.meta, "id": f"spectrum{n:04d}"})
            key = f"memory:spectrum{n:04d}"
        seen.add(key)
        out.append((key, spectrum, str(spectrum.meta["id"])))
    return out


def fit(spectra, model=None, output="results.ecsv", *, guesses=None, fixed=None, mdegree=20, wave_range=None,
        telluric=None, mask_nad=False, masks=(), workers=None, scheduler=None, resume=False,
        overwrite=False, backend="auto", engine="auto", progress=True, save_fits=None, retries=2,
        recycle_after=100, losvd="sampled", lsf=None):
    """Fit spectra with an interpolator, through GDL + ULySS or natively; return the results table.

    Parameters
    ----------
    spectra : path, or sequence of paths, Spectrum, specutils spectra or (wavelength, flux[, error])
        One file name, or a list of any of the inputs of
        :func:`~ulyss_ann.spectra.inputs.as_spectrum`.
    model : path-like, optional
        Interpolator file (default: the bundled example network).
    output : path-like or None
        Results table (ECSV); the journal is ``output + '.journal.jsonl'``. None: keep
        the results in memory only (no journal, no resume).
    guesses, mdegree, wave_range, telluric, mask_nad, masks, backend, save_fits, recycle_after, losvd, lsf
        See :class:`~ulyss_ann.fitting.core.FitConfig`.
    fixed : dict, optional
        Fixed parameters, as in :class:`~ulyss_ann.fitting.options.FixedValues` (a value, a table column, or a
        mapping spectrum id -> value).
    workers : int, optional
        Worker processes of the local cluster (default: one per core); 0 fits here.
    scheduler : str, optional
        Address of an existing Dask scheduler to use instead of a local cluster.
    resume : bool
        Continue a batch: spectra already in the journal are not fitted again.
    overwrite : bool
        Start afresh, discarding an earlier output and journal.
    engine : str
        ``gdl``: ULySS's ``uly_fit`` in GDL with the generated component; ``native``: the
        same model and fit in NumPy/SciPy; ``auto`` (default): ``gdl`` when GDL and
        ULySS are found here, else ``native``. The table's ``engine`` column records which ran.
    retries : int
        Worker deaths one spectrum may cause before it is given up.

    Returns
    -------
    astropy.table.Table
        One row per spectrum, columns with units (also written to ``output``).
    """
    model = os.path.abspath(model_path(model))
    interp = Interpolator.read(model)  # a bad model stops everything before any work
    if output is not None:
        folder = os.path.dirname(os.path.abspath(output))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise UlyssAnnError(f"{output}: its folder {folder} does not exist or is not writable")
    if lsf is not None:
        read_lsf(os.path.abspath(lsf))  # a missing or empty LSF file stops everything before any work
    if workers is not None and workers < 0:
        raise UlyssAnnError(f"workers = {workers}: give 0 (no Dask) or a positive number of processes")
    engine = resolve_engine(engine, backend, remote=scheduler is not None)
    config = make_config(model, interp, guesses=guesses, mdegree=mdegree, wave_range=wave_range,
                         telluric=telluric, mask_nad=mask_nad, masks=masks, backend=backend, save_fits=save_fits,
                         recycle_after=recycle_after, engine=engine, losvd=losvd, lsf=lsf)
    sha, lsf = config.model_sha256, config.lsf
    if engine == "gdl":
        from ulyss_ann.fitting.gdl_engine import check_gdl_paths

        check_gdl_paths(config)  # a path GDL cannot open stops everything before any work
    fixed_values = FixedValues(fixed, interp)
    sources = _sources(spectra)
    journal = _open_journal(output, resume, overwrite)
    done = journal.read()
    todo = list({key: (key, source, ident) for key, source, ident in sources if key not in done}.values())
    if progress and done:
        print(f"resuming: {len(done)} spectra already in {journal.path}, {len(todo)} to fit")
    tasks = []
    for key, source, ident in todo:
        try:
            if is_path(source) and not os.path.isfile(source):
                raise UlyssAnnError(f"{source}: no such file")
            tasks.append((key, source, fixed_values.for_spectrum(ident)))
        except UlyssAnnError as exc:
            journal.append(failure_row(key, _in_memory(source), f"error: {exc}", engine, os.path.basename(model), sha))
    started = time.perf_counter()
    if tasks:
        runner = _run_serial if workers == 0 and scheduler is None else _run_dask
        runner(tasks, config, journal, workers, scheduler, progress, retries, interp)
    rows = journal.read()
    ordered = [rows[key] for key in dict.fromkeys(key for key, _, _ in sources) if key in rows]
    table = rows_to_table(ordered, [(p.name, p.unit) for p in interp.parameters])
    meta = {"model": os.path.basename(model), "model_sha256": sha, "mdegree": mdegree, "engine": engine,
            "lsf": lsf or "none",
            "software": "ulyss_ann (" + ("GDL + ULySS" if engine == "gdl" else "native NumPy/SciPy fitter") + ")"}
    if output is not None:
        write_table(table, output, meta=meta)
    else:
        table.meta.update(meta)
    if progress:
        _summary(table, interp, time.perf_counter() - started, len(tasks))
    return table


def _open_journal(output, resume, overwrite):
    """The batch's journal: on disk beside ``output``, or in memory when there is no output."""
    if output is None:
        if resume:
            raise UlyssAnnError("resume needs an output table (its journal is what a batch resumes from)")
        return MemoryJournal()
    journal = Journal(str(output) + ".journal.jsonl")
    if overwrite:
        for path in (output, journal.path):
            if os.path.exists(path):
                os.remove(path)
    elif not resume and (os.path.exists(output) or os.path.exists(journal.path)):
        raise UlyssAnnError(f"{output} or its journal exists: add --resume to continue that batch, "
                            "or --overwrite to start again")
    return journal


def _progress_bar(total, enabled):
    from tqdm import tqdm

    return tqdm(total=total, unit="spectrum", desc="fitting", disable=not enabled, dynamic_ncols=True)


def _record(journal, bar, row, failures):
    journal.append(row)
    if row["status"] != "ok":
        failures[0] += 1
    bar.set_postfix(failed=failures[0], refresh=False)
    bar.update(1)


def _run_serial(tasks, config, journal, workers, scheduler, progress, retries, interp):
    failures = [0]
    with _progress_bar(len(tasks), progress) as bar:
        for key, source, fixed in tasks:
            _record(journal, bar, fit_one(source, config, fixed, key, interp), failures)


def _run_dask(tasks, config, journal, workers, scheduler, progress, retries, interp):
    import dask
    from dask.distributed import Client, LocalCluster, as_completed

    settings = {"distributed.scheduler.worker-ttl": "2 hours",          # GDL calls hold the GIL
                "distributed.scheduler.allowed-failures": int(retries),
                "distributed.admin.tick.limit": "1 hour",
                "distributed.worker.multiprocessing-method": "spawn"}
    with dask.config.set(settings):
        cluster = None
        if scheduler:
            client = Client(scheduler)
        else:
            cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                                   processes=True, dashboard_address=None, silence_logs=logging.ERROR)
            client = Client(cluster)
        try:
            futures = {client.submit(fit_one, source, config, fixed, key, pure=False): (key, source)
                       for key, source, fixed in tasks}
            failures = [0]
            with _progress_bar(len(futures), progress) as bar:
                for future in as_completed(futures):
                    key, source = futures.pop(future)
                    try:
                        row = future.result()
                    except Exception as exc:  # KilledWorker after `retries` deaths, or a bug
                        row = failure_row(key, _in_memory(source), f"error: worker failed ({type(exc).__name__}: "
                                          f"{exc})", config.engine, os.path.basename(config.model),
                                          config.model_sha256)
                    future.release()
                    _record(journal, bar, row, failures)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


def _summary(table, interp, seconds, fitted_now):
    """Print what the batch did: counts, medians, the commonest failures."""
    ok = table["status"] == "ok"
    lines = [f"{len(table)} spectra: {int(ok.sum())} fitted, {int((~ok).sum())} failed"
             f" ({fitted_now} processed in {seconds:.1f} s)"]
    if ok.any():
        medians = ", ".join(f"{p.name} {np.ma.median(table[p.name][ok]):.4g} {p.unit}".rstrip()
                            for p in interp.parameters)
        lines.append(f"median: {medians}, cz {np.ma.median(table['cz'][ok]):.1f} km/s")
    for status in sorted(set(table["status"][~ok]))[:5]:
        lines.append(f"  {np.count_nonzero(table['status'] == status)} x {status}")
    print("\n".join(lines))
