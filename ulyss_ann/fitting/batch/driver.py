"""The batch driver: many spectra fitted in parallel on Dask, resumable, nothing lost or mixed.

``fit(spectra, model, output)`` goes in this order:

1. every option is checked (:mod:`~ulyss_ann.fitting.fit_options`) — a bad one stops
   everything in one line before any spectrum is read;
2. the output is locked (one run per output) and its journal opened: a new run
   records its configuration and inputs; ``resume=True`` checks that it is the same
   run and fits only what is left (:mod:`~ulyss_ann.fitting.batch.resume`,
   :mod:`~ulyss_ann.fitting.batch.run`);
3. each spectrum is read and fitted (either engine, through
   :func:`~ulyss_ann.fitting.engines.engine_for`) and its row appended to the journal
   the moment it is done (:mod:`~ulyss_ann.fitting.batch.journal`); a spectrum that cannot
   be fitted gets a row saying why, and the batch goes on;
4. the table is rebuilt from the journal — every spectrum of the run exactly once —
   and written atomically (:mod:`~ulyss_ann.fitting.table`).

Execution is Dask distributed: by default a ``LocalCluster`` of one worker process
per core (at most :data:`~ulyss_ann.fitting.batch.cluster.MAX_WORKERS_PER_CORE` per core), one
thread each — one GDL session per worker, because GDL holds the GIL and is not
thread-safe — private to the session: TLS with its own credentials
(:mod:`~ulyss_ann.fitting.batch.cluster`), kept for the session's next batch until
``ulyss_ann.close_cluster()``; a batch too small for a cluster to pay runs in this process instead
(:mod:`~ulyss_ann.fitting.batch.session_cluster`). ``scheduler="tls://host:8786"`` (or ``tcp://``) runs
the same batch on an existing cluster, with the security of Dask's configuration (each
worker needs ulyss_ann, GDL and ULySS, and the files on a shared path). The local
cluster's workers get :func:`dask_settings`: one BLAS thread, no sampling profiler, and
glibc told to keep freed memory (Dask's default ``MALLOC_TRIM_THRESHOLD_`` made the
native engine 2.2× slower per fit in a worker); give a cluster of your own the same
environment. Native tasks are blocks of spectra (:mod:`~ulyss_ann.fitting.batch.tasks`). A
worker killed or crashed (segfault, ``kill -9``) is restarted by its nanny and its task
retried, ``retries`` times at most (Dask's ``allowed-failures``); then each spectrum of
a native block is fitted again alone, at once, and only one that still kills its worker
gets a ``failed: …`` row, which ``--resume`` fits again. The scheduler's heartbeat
timeout is raised above the longest GDL call, which holds the GIL and freezes the
worker's event loop. ``workers=0`` fits in this process, without Dask. Ctrl-C or SIGTERM
stops the batch; what was finished is in the journal. Where and how the batch runs (workers,
scheduler, retries, dashboard) is one object, :class:`~ulyss_ann.fitting.batch.execution.Execution`,
which ``fit`` takes as ``execution=`` or builds from those keywords; inside, the driver works on the
fit's :class:`~ulyss_ann.fitting.core.FitConfig`, the Execution and the run's own options.

``output=None`` keeps everything in memory (no journal, no resume): the notebook's way,
with spectra that may be arrays or objects rather than files.
"""

import contextlib
import os
import time

import numpy as np

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.fitting.batch.cluster import stopping_on_sigterm
from ulyss_ann.fitting.batch.runners import run_dask, run_serial
from ulyss_ann.fitting.batch.session_cluster import runs_faster_here
from ulyss_ann.fitting.batch.execution import Execution
from ulyss_ann.fitting.engines import engine_class, engine_reachable, require_engine, resolve_engine
from ulyss_ann.fitting.fit_options import FixedValues, check_combination, check_output_folder, make_config, model_path
from ulyss_ann.fitting.batch.resume import open_journal, tasks_to_fit
from ulyss_ann.fitting.result import file_stem
from ulyss_ann.fitting.safe_files import check_outputs
from ulyss_ann.fitting.batch.run import OutputLock, run_record
from ulyss_ann.fitting.batch.sources import batch_inputs
from ulyss_ann.fitting.batch.results import batch_results
from ulyss_ann.fitting.resampling import error_method, nsimul
from ulyss_ann.fitting.table import table_format
from ulyss_ann.model.interpolator import Interpolator
from ulyss_ann.spectra.line_spread import read_lsf
from ulyss_ann.spectra.reader_registry import reader_reachable

__all__ = ["fit"]


def fit(spectra, model=None, output="results.ecsv", *, guesses=None, fixed=None, mdegree=20, wave_range=None,
        telluric=None, mask_nad=False, mask_ism=False, masks=(), workers=None, scheduler=None, resume=False,
        overwrite=False, backend="auto", engine="auto", progress=True, save_fits=None, retries=2,
        recycle_after=100, losvd="sampled", lsf=None, retry_failed=False, add_spectra=False, device="auto",
        search="auto", dashboard=False, model_medium=None, medium=None, errors="formal", nsimul=None, seed=None, flat_check=True,
        format=None, execution=None, return_table=True):
    """Fit spectra with an interpolator, through GDL + ULySS or natively; return the results table.

    Every option is checked before any spectrum is read (one-line UlyssAnnError); a
    spectrum that cannot be fitted gets a row whose ``status`` says why, and the batch
    goes on.

    Parameters
    ----------
    spectra : path, or sequence of paths, Spectrum, specutils spectra or (wavelength, flux[, error])
        One file name, or a list of any of the inputs of
        :func:`~ulyss_ann.spectra.inputs.as_spectrum` (ids: :mod:`~ulyss_ann.fitting.batch.sources`).
    model : path-like or str, optional
        Interpolator file, or a bundled name: ``'example'`` (the default) or ``'miles'``.
    output : path-like or None
        Results table (ECSV); the journal is ``output + '.journal.jsonl'``, the lock
        ``output + '.lock'``. None: keep the results in memory only (no journal, no resume).
    guesses, mdegree, wave_range, telluric, mask_nad, mask_ism, masks, backend, save_fits, recycle_after
        The fit's options, as :func:`~ulyss_ann.fit_spectrum` takes them: see :class:`~ulyss_ann.fitting.core.FitConfig`
        (``wave_range`` in Å).
    losvd, lsf, device, search, model_medium, medium, errors, nsimul, seed, flat_check
        The same: see :class:`~ulyss_ann.fitting.core.FitConfig`.
    format : str, optional
        The spectrum reader forced for every file, by name (as :func:`~ulyss_ann.read_spectrum`'s
        ``format``); None (default): each file's own.
    progress : bool
        A progress bar while fitting (one line at its end when stderr is not a terminal) and the
        summary of the run at its end.
    fixed : dict, optional
        Fixed parameters, as in :class:`~ulyss_ann.fitting.fit_options.FixedValues` (a value, a table column, or a
        mapping spectrum id -> value).
    workers, scheduler, retries, dashboard
        Where and how the batch runs, as :class:`~ulyss_ann.fitting.batch.execution.Execution` takes
        them (``workers=0``: in this process, without Dask; default: one worker process per core, kept for
        the session's next batch — or in this process, where the batch is too small for a cluster to pay).
    execution : Execution, optional
        The same four at once, e.g. ``Execution(workers=0)``: then none of them is given apart
        (one at a value other than its default is refused).
    resume : bool
        Continue a batch: spectra already in the journal are not fitted again, except
        failures of the machinery (``failed: …``, :data:`~ulyss_ann.fitting.batch.resume.MACHINERY_TRIES`
        tries in all).
        The configuration must be the journal's (:mod:`~ulyss_ann.fitting.batch.run`), and the
        spectra the same.
    retry_failed : bool
        On resume, fit again every spectrum whose row is not ``ok`` (``error: …``, and
        failures of the machinery given up after their tries).
    add_spectra : bool
        On resume, accept spectra that are not in the run yet, and fit them into it.
    overwrite : bool
        Start afresh, discarding an earlier output and journal.
    engine : str
        ``gdl``: ULySS's ``uly_fit`` in GDL with the generated component; ``native``: the
        same model and fit in NumPy/SciPy; ``auto`` (default): ``gdl`` when GDL and
        ULySS are found here (and the options are ULySS's), else ``native``; or another registered
        engine (:mod:`~ulyss_ann.fitting.engines`). The table's ``engine`` column records which ran.

    return_table : bool
        True (default): return the table. False: return only a
        :class:`~ulyss_ann.fitting.batch.results.BatchSummary` (the counts, and the ``ok`` rows'
        parameters, kept in a temporary file), the table being written to ``output`` a block of rows at a
        time: the driver's memory then does not grow with the run (the command line's way), where the table
        would take ~1.5 KB a spectrum.

    Returns
    -------
    astropy.table.Table or BatchSummary
        One row per spectrum, columns with units (also written to ``output``); its
        metadata is the run's record. With ``return_table=False``, the summary.

    Raises
    ------
    UlyssAnnError
        One line, before any spectrum is read, for an option that is wrong (a model that cannot be
        read, an unknown parameter, options that do nothing together, a journal of another
        configuration on ``resume``), or for a cluster that cannot be used; with an ``output``,
        ``resume=True`` then continues from the journal.

    See Also
    --------
    ulyss_ann.fit_spectrum : one spectrum, in memory, with its arrays and figure.

    Examples
    --------
    >>> table = ulyss_ann.fit(sorted(glob.glob("muse/*.fits")), "gsl_ann_trial7.fits", "results.ecsv",
    ...                       fixed={"Logg": "photometry.ecsv:logg"}, workers=2)     # doctest: +SKIP
    >>> table = ulyss_ann.fit([(wave, flux, error)], output=None, workers=0)        # doctest: +SKIP
    """
    execution = _execution(execution, workers=workers, scheduler=scheduler, retries=retries, dashboard=dashboard)
    model = os.path.abspath(model_path(model))
    interp = Interpolator.read(model)  # a bad model stops everything before any work
    _check_run_options(output, resume, overwrite, retry_failed, add_spectra, return_table)
    if lsf is not None:
        read_lsf(os.path.abspath(lsf))  # a missing or empty LSF file stops everything before any work
    engine = resolve_engine(engine, backend, remote=execution.remote, losvd=losvd, device=device, search=search)
    config = make_config(model, interp, guesses=guesses, mdegree=mdegree, wave_range=wave_range,
                         telluric=telluric, mask_nad=mask_nad, mask_ism=mask_ism, masks=masks, backend=backend,
                         save_fits=save_fits, recycle_after=recycle_after, engine=engine, losvd=losvd, lsf=lsf,
                         device=device, search=search, model_medium=model_medium, medium=medium, errors=errors, nsimul=nsimul, seed=seed,
                         flat_check=flat_check, format=format)
    engine_kind = engine_class(engine)
    # the engine checks its device before any work, and may feed it from this process (one GPU: workers 0)
    execution = execution.with_workers(engine_kind.batch_workers(config, execution.workers, execution.remote))
    fixed_values = FixedValues(fixed, interp)
    check_combination(config, fixed_values)
    require_engine(engine, backend, remote=execution.remote)  # after the options, refused on any machine
    engine_kind.check_batch(config)  # e.g. a path GDL cannot open: stops everything before any work
    inputs = batch_inputs(spectra)
    execution = _here_when_faster(execution, engine_kind, config, len(inputs))
    execution.require_dask()  # said now, before the journal is opened
    _check_workers_see(engine, config.format, execution)
    # before the lock: no output that is a link or one of the spectra is ever written or deleted
    check_outputs(output, inputs, config.save_fits, stem=file_stem)
    record = run_record(config, fixed_values)
    # quiet (--quiet): nor a first fit's notice that it compiles. SIGTERM stops as Ctrl-C does: lock released,
    # scratch folders removed
    with stopping_on_sigterm(), engine_kind.hushed() if not progress else contextlib.nullcontext():
        lock = OutputLock(output).acquire() if output is not None else None
        try:
            journal, state, inputs = open_journal(output, resume, overwrite, record, inputs, add_spectra)
            started = time.perf_counter()
            with state:  # the journal's index (on disk): the tasks from it, then the table
                tasks = tasks_to_fit(inputs, state, journal, config, fixed_values, retry_failed, progress)
                if tasks:
                    runner = run_serial if execution.in_process else run_dask
                    runner(tasks, config, execution, journal, interp, progress)
                fitted_now = len(tasks)
                del tasks, inputs
                # the table from the journal, a block at a time (the run's own rows, each spectrum once)
                table, summary = batch_results(journal, [(p.name, p.unit) for p in interp.parameters], output,
                                               keep_table=return_table, index=state)
        finally:
            if lock is not None:
                lock.release()
    if progress:
        print("\n".join(summary.lines(interp.names, time.perf_counter() - started, fitted_now)))
    return table if return_table else summary


def _execution(execution, **keywords):
    """The batch's :class:`Execution`: ``execution`` as given, or one made of fit's keywords, which are then
    left at their defaults (a keyword given beside ``execution`` would be ignored: refused instead)."""
    if execution is None:
        return Execution(**keywords)
    if not isinstance(execution, Execution):
        raise UlyssAnnError(f"execution {execution!r}: give an Execution (ulyss_ann.Execution(workers=…, "
                            "scheduler=…, retries=…, dashboard=…)), or None")
    defaults = Execution()
    given = [name for name, value in keywords.items()
             if value is not getattr(defaults, name) and value != getattr(defaults, name)]
    if given:
        raise UlyssAnnError(f"execution and {given[0]} ({given[0]}={keywords[given[0]]!r}): give {given[0]} in the "
                            f"Execution (Execution({given[0]}=…)), or leave execution out")
    return execution


def _here_when_faster(execution, engine_kind, config, spectra):
    """``execution``, or in this process (workers 0) where the default workers would start a cluster that
    costs more than it saves (:func:`~ulyss_ann.fitting.batch.session_cluster.runs_faster_here`): the
    engine's cost of a spectrum, times the fits of its errors' refits. Judged on every spectrum given, before
    the journal says how many are left (a batch without Dask must be told so before anything is written)."""
    if execution.workers is not None or execution.scheduler is not None or execution.dashboard:
        return execution  # what the user asked for (a dashboard needs a cluster)
    cost = engine_kind.seconds_per_spectrum
    if cost is not None and error_method(config.errors).refits:
        cost *= 1 + nsimul(config)
    if runs_faster_here(spectra, cost, execution.workers, execution.retries, execution.dashboard):
        return execution.with_workers(0)
    return execution


def _check_workers_see(engine, reader, execution):
    """Refuse, in one line, an engine or a forced reader registered in this session alone when Dask's workers
    (other processes) fit: each of their rows would be a failure, or an error, of a name they do not know."""
    if execution.in_process:
        return
    for kind, name, reachable, group in (("engine", engine, engine_reachable, "ulyss_ann.engines"),
                                         ("reader", reader, reader_reachable, "ulyss_ann.readers")):
        if name is not None and not reachable(name):
            raise UlyssAnnError(f"the {kind} '{name}' is registered in this session only, which Dask's workers cannot "
                                f"see: fit with workers=0 (-j 0), or register it through an entry point ({group})")


def _check_run_options(output, resume, overwrite, retry_failed, add_spectra, return_table=True):
    """Refuse, in one line, the options of the run itself that are wrong or do nothing together."""
    if not isinstance(return_table, (bool, np.bool_)):
        raise UlyssAnnError(f"return_table {return_table!r}: give True (the table) or False (a summary)")
    if not return_table and output is None:
        raise UlyssAnnError("return_table=False with output=None: the results would be kept nowhere; give an "
                            "output table, or return the table")
    if resume and overwrite:
        raise UlyssAnnError("resume (--resume) and overwrite (--overwrite): continue the batch, or start it again, "
                            "not both")
    if (retry_failed or add_spectra) and not resume:
        option = "retry_failed (--retry-failed)" if retry_failed else "add_spectra (--add-spectra)"
        raise UlyssAnnError(f"{option} acts on a resumed batch: add resume=True (--resume)")
    if output is not None:
        if os.path.isdir(os.path.abspath(output)):
            raise UlyssAnnError(f"{output}: a folder; give the results table's file name (e.g. {output}/r.ecsv)")
        check_output_folder(output)
        table_format(output)  # a name astropy cannot write is refused now, not after the fits
    elif resume:
        raise UlyssAnnError("resume needs an output table (its journal is what a batch resumes from)")
