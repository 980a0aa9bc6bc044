"""The batch driver: many spectra fitted in parallel on Dask, resumable, nothing lost.

``fit(files, model, output)`` reads each spectrum, fits it (GDL + ULySS, through
:class:`~ulyss_ann.gdl_fitter.GDLFitter`) and appends its row to a journal the
moment it is done (see :mod:`ulyss_ann.fit_results`); the ECSV table is rebuilt from
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
"""

import atexit
import functools
import logging
import os
import time

import numpy as np

from .errors import UlyssAnnError
from .fit_results import Journal, failure_row, make_row, rows_to_table, write_table
from .gdl_fitter import FitConfig, check_gdl_paths, file_sha256
from .interpolator import Interpolator
from .lsf import read_lsf
from .spectrum_readers import read_spectrum

__all__ = ["fit", "FixedValues"]

_FITTERS = {}  # one fitter per worker process (per configuration)


def _key(config):
    return (config.engine, config.losvd, config.model, config.backend, config.mdegree, config.save_fits,
            config.recycle_after, config.lsf)


@functools.lru_cache(maxsize=8)
def _model_sha(model):
    """The model's SHA-256, read once per worker process, not once per spectrum."""
    return file_sha256(model)


def _fitter(config):
    from .gdl_fitter import GDLFitter
    from .native_fitter import NativeFitter

    key = _key(config)
    if key not in _FITTERS:
        if not _FITTERS:
            atexit.register(_close_fitters)
        _FITTERS[key] = NativeFitter(config) if config.engine == "native" else GDLFitter(config)
    _FITTERS[key].config = config  # guesses, masks and range may differ between batches
    return _FITTERS[key]


def _close_fitters():
    for fitter in _FITTERS.values():
        fitter.close()
    _FITTERS.clear()


def fit_one(path, config, fixed=None):
    """Fit one spectrum file; always returns a row (failures carry their reason in ``status``)."""
    sha = _model_sha(config.model)
    spectrum = None
    try:
        spectrum = read_spectrum(path)
        fitter = _fitter(config)
        values = fitter.fit(spectrum, fixed)
        return make_row(spectrum, values, fitter.engine, os.path.basename(config.model), sha, fitter.interp)
    except UlyssAnnError as exc:
        fitter = _FITTERS.get(_key(config))
        engine = fitter.engine if fitter is not None else config.engine
        return failure_row(os.path.abspath(path), spectrum, f"error: {exc}", engine,
                           os.path.basename(config.model), sha)


class FixedValues:
    """Values of fixed parameters: a constant, or per spectrum from a table column.

    ``spec`` maps a parameter name to a number, to ``"table.ecsv:column"`` (the table's
    ``id`` column — else its first column — is matched to the spectrum id, the file
    name without extension), or to a dict {spectrum id: value}.
    """

    def __init__(self, spec, interp):
        self.constant, self.per_spectrum, self.source = {}, {}, {}
        for name, value in (spec or {}).items():
            name = interp.names[interp.parameter_index(name)]
            if isinstance(value, dict):
                self.per_spectrum[name] = {str(k): float(v) for k, v in value.items()}
                self.source[name] = "a mapping"
            elif isinstance(value, str) and ":" in value and not _is_number(value):
                self.per_spectrum[name] = self._from_table(value)
                self.source[name] = value
            else:
                self.constant[name] = float(value)

    @staticmethod
    def _from_table(spec):
        from astropy.table import Table

        path, _, column = spec.rpartition(":")
        if not os.path.exists(path):
            raise UlyssAnnError(f"{path}: no such table (from --fix …={spec})")
        try:
            table = Table.read(path)
        except Exception as exc:
            raise UlyssAnnError(f"{path}: cannot read as a table ({exc})") from None
        if column not in table.colnames:
            raise UlyssAnnError(f"{path}: no column '{column}' (has {', '.join(table.colnames)})")
        ids = table["id"] if "id" in table.colnames else table[table.colnames[0]]
        return {str(i): float(v) for i, v in zip(ids, table[column])}

    def for_spectrum(self, spectrum_id):
        """The fixed values of one spectrum, or a UlyssAnnError naming what is missing."""
        values = dict(self.constant)
        for name, table in self.per_spectrum.items():
            if spectrum_id not in table:
                raise UlyssAnnError(f"no fixed value of {name} for '{spectrum_id}' in {self.source[name]}")
            values[name] = table[spectrum_id]
        return values


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _spectrum_id(path):
    return os.path.splitext(os.path.basename(path))[0]


def fit(files, model, output="results.ecsv", *, guesses=None, fixed=None, mdegree=20, wave_range=None,
        telluric=None, mask_nad=False, masks=(), workers=None, scheduler=None, resume=False,
        overwrite=False, backend="auto", engine="auto", progress=True, save_fits=None, retries=2,
        recycle_after=100, losvd="sampled", lsf=None):
    """Fit spectra with an interpolator, through GDL + ULySS or natively; return the results table.

    Parameters
    ----------
    files : sequence of path-like
        Spectra in any format :func:`~ulyss_ann.spectrum_readers.read_spectrum` reads.
    model : path-like
        Interpolator file.
    output : path-like
        Results table (ECSV); the journal is ``output + '.journal.jsonl'``.
    guesses, fixed, mdegree, wave_range, telluric, mask_nad, masks, backend, save_fits, recycle_after, losvd, lsf
        See :class:`~ulyss_ann.gdl_fitter.FitConfig`; ``fixed`` as in :class:`FixedValues`.
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
        same model and fit in NumPy/SciPy (:mod:`ulyss_ann.native_fitter`), no GDL
        needed; ``auto`` (default): ``gdl`` when GDL and ULySS are found here, else
        ``native``. The table's ``engine`` column records which ran.
    retries : int
        Worker deaths one spectrum may cause before it is given up.

    Returns
    -------
    astropy.table.Table
        One row per spectrum (also written to ``output``).
    """
    if engine not in ("auto", "gdl", "native"):
        raise UlyssAnnError(f"engine '{engine}': choose auto, gdl or native")
    model = os.path.abspath(model)
    interp = Interpolator.read(model)  # a bad model stops everything before any work
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise UlyssAnnError(f"{output}: its folder {folder} does not exist or is not writable")
    if lsf is not None:
        lsf = os.path.abspath(lsf)
        read_lsf(lsf)  # a missing or empty LSF file stops everything before any work
    if workers is not None and workers < 0:
        raise UlyssAnnError(f"workers = {workers}: give 0 (no Dask) or a positive number of processes")
    if engine == "auto":
        engine = "gdl" if _gdl_ready(backend) else "native"   # checked here: no second check below
    elif engine == "gdl" and scheduler is None:
        _check_gdl(backend)  # on a remote cluster the workers' machines are what count
    journal = Journal(str(output) + ".journal.jsonl")
    if overwrite:
        for path in (output, journal.path):
            if os.path.exists(path):
                os.remove(path)
    elif not resume and (os.path.exists(output) or os.path.exists(journal.path)):
        raise UlyssAnnError(f"{output} or its journal exists: add --resume to continue that batch, "
                            "or --overwrite to start again")
    config = FitConfig(model=model, guesses=guesses, mdegree=mdegree, wave_range=wave_range, telluric=telluric,
                       mask_nad=mask_nad, masks=tuple(masks), backend=backend, save_fits=save_fits,
                       recycle_after=recycle_after, engine=engine, losvd=losvd, lsf=lsf)
    if engine == "gdl":
        check_gdl_paths(config)  # a path GDL cannot open stops everything before any work
    fixed_values = FixedValues(fixed, interp)
    files = [os.path.abspath(f) for f in files]
    done = journal.read()
    todo = list(dict.fromkeys(f for f in files if f not in done))
    if progress and done:
        print(f"resuming: {len(done)} spectra already in {journal.path}, {len(todo)} to fit")
    sha = file_sha256(model)
    tasks = []
    for path in todo:
        try:
            if not os.path.isfile(path):
                raise UlyssAnnError(f"{path}: no such file")
            tasks.append((path, fixed_values.for_spectrum(_spectrum_id(path))))
        except UlyssAnnError as exc:
            journal.append(failure_row(path, None, f"error: {exc}", engine, os.path.basename(model), sha))
    started = time.perf_counter()
    if tasks:
        runner = _run_serial if workers == 0 and scheduler is None else _run_dask
        runner(tasks, config, journal, workers, scheduler, progress, retries, sha)
    rows = journal.read()
    ordered = [rows[f] for f in dict.fromkeys(files) if f in rows]
    table = rows_to_table(ordered, interp)
    write_table(table, output, meta={"model": os.path.basename(model), "model_sha256": sha,
                                     "mdegree": mdegree, "engine": engine, "lsf": lsf or "none",
                                     "software": "ulyss_ann (" + ("GDL + ULySS" if engine == "gdl" else
                                                                  "native NumPy/SciPy fitter") + ")"})
    if progress:
        _summary(table, interp, time.perf_counter() - started, len(tasks))
    return table


def _gdl_ready(backend):
    """True when GDL and ULySS are both here (what ``engine='auto'`` asks)."""
    try:
        _check_gdl(backend)
    except UlyssAnnError:
        return False
    return True


def _check_gdl(backend):
    """Stop at once, with the fix, when this machine cannot run GDL + ULySS."""
    import shutil

    from .gdl_process import GDLNotFoundError, gdl_executable
    from .gdl_session import _pygdl_available
    from .ulyss_location import INSTALL_HINT, default_ulyss_dir, find_ulyss

    if find_ulyss() is None:
        raise GDLNotFoundError(INSTALL_HINT.format(default=default_ulyss_dir()).replace(
            "Everything that does not run GDL works without it.", "ulyss-ann fit needs it (engine gdl)."))
    if backend == "pygdl" and not _pygdl_available():
        raise GDLNotFoundError("import GDL failed: install python3-gdl (./scripts/setup) or use --backend subprocess")
    if backend == "subprocess" or (backend == "auto" and not shutil.which("gdl") and not _pygdl_available()):
        gdl_executable()  # raises with the apt-get line


def _progress_bar(total, enabled):
    from tqdm import tqdm

    return tqdm(total=total, unit="spectrum", desc="fitting", disable=not enabled, dynamic_ncols=True)


def _record(journal, bar, row, failures):
    journal.append(row)
    if row["status"] != "ok":
        failures[0] += 1
    bar.set_postfix(failed=failures[0], refresh=False)
    bar.update(1)


def _run_serial(tasks, config, journal, workers, scheduler, progress, retries, sha):
    failures = [0]
    with _progress_bar(len(tasks), progress) as bar:
        for path, fixed in tasks:
            _record(journal, bar, fit_one(path, config, fixed), failures)


def _run_dask(tasks, config, journal, workers, scheduler, progress, retries, sha):
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
            futures = {client.submit(fit_one, path, config, fixed, pure=False): path for path, fixed in tasks}
            failures = [0]
            with _progress_bar(len(futures), progress) as bar:
                for future in as_completed(futures):
                    path = futures.pop(future)
                    try:
                        row = future.result()
                    except Exception as exc:  # KilledWorker after `retries` deaths, or a bug
                        row = failure_row(path, None, f"error: worker failed ({type(exc).__name__}: {exc})",
                                          "gdl", os.path.basename(config.model), sha)
                    future.release()
                    _record(journal, bar, row, failures)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


def _summary(table, interp, seconds, fitted_now):
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
