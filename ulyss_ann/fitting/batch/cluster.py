"""The batch's Dask cluster, private to the run, and how the batch's processes stop.

**A private local cluster.** The batch's own ``LocalCluster`` talks TLS with credentials
made for this run alone (:func:`local_cluster`: ``Security.temporary()``, a key and a
self-signed certificate that exist only in this process's memory and its workers'). Every
connection, both ways, must show that certificate: another user of the machine who finds
the scheduler's port on 127.0.0.1 can neither submit work nor read results (without it,
any local process could run code in the workers, as the batch's user). Dask's HTTP
server (the dashboard with ``--dashboard``, and its health and metrics pages) stays on
127.0.0.1 without authentication: it only shows the cluster's state, but anyone on the
machine can read it; without ``--dashboard`` those servers answer ``/health`` alone.

**A cluster of your own** (``scheduler="tls://host:8786"``) is used with Dask's own
security settings (:func:`connect`): Dask reads them from its configuration
(``distributed.comm.tls.ca-file``, ``.client.cert``, ``.client.key``, and
``distributed.comm.require-encryption``), i.e. from ``~/.config/dask/*.yaml`` or
``DASK_DISTRIBUTED__COMM__TLS__CA_FILE``-style environment variables.

**Stopping.** Ctrl-C and SIGTERM (:func:`stopping_on_sigterm`) end a batch the same clean
way: the exception unwinds through the driver, which closes the cluster and the lock; what
was finished is in the journal. A worker busy in GDL cannot close itself in time (its nanny
kills it), so the driver removes what the workers leave: the local cluster's temporary files
are in one folder of the run, and the folders an engine's workers leave (the GDL sessions' in
/dev/shm) are noted as the batch goes, in the cluster's ``ulyss_ann_sessions``, by the engine's
:meth:`~ulyss_ann.fitting.engine_traits.EngineTraits.note_local_workers` (:func:`close_quietly`
removes them). Only ``kill -9`` of the driver leaves them behind.
"""

import contextlib
import logging
import os
import shutil
import signal
import tempfile
import threading
import warnings

from ulyss_ann.errors import UlyssAnnError, first_line

__all__ = ["dask_settings", "local_cluster", "local_client", "connect", "close_quietly",
           "announce_dashboard", "check_workers", "MAX_WORKERS_PER_CORE", "Terminated", "stopping_on_sigterm",
           "dask_silenced"]

#: Worker processes per core at most: more only queue for the cores, and each costs a Python
#: process (about 150 MB with Dask), a GDL session and scratch files (-j 100000 froze a machine).
MAX_WORKERS_PER_CORE = 4


def check_workers(workers):
    """Refuse, in one line, a number of worker processes this machine cannot hold."""
    cores = os.cpu_count() or 1
    if workers is not None and workers > MAX_WORKERS_PER_CORE * cores:
        raise UlyssAnnError(f"workers (-j) {workers}: more than {MAX_WORKERS_PER_CORE} per core, and this machine "
                            f"has {cores} cores: give at most {MAX_WORKERS_PER_CORE * cores} "
                            "(by default, one per core)")


def dask_settings(retries):
    """Dask's configuration for a batch: its tolerances, and what the local cluster's workers get."""
    return {"distributed.scheduler.worker-ttl": "2 hours",          # GDL calls hold the GIL
            "distributed.scheduler.allowed-failures": int(retries),
            "distributed.admin.tick.limit": "1 hour",
            # Dask's developers' log of the messages sent on each stream (1000 by default): each of the
            # scheduler's holds the blocks of spectra it sent a worker, ~13 KB a block of 32
            "distributed.admin.low-level-log-length": 100,
            # a worker holds only the task it runs: its death counts against that task alone (at
            # Dask's 1.1, a queued block of innocent spectra would be suspected too)
            "distributed.scheduler.worker-saturation": 1.0,
            "distributed.worker.multiprocessing-method": "spawn",
            # the worker's sampling profiler walks the fitting thread's stack every 10 ms
            "distributed.worker.profile.enabled": False,
            # one BLAS thread per worker (no oversubscription), as Dask's default, and glibc told
            # to keep freed memory: Dask's MALLOC_TRIM_THRESHOLD_=65536 made it map and unmap
            # every large temporary of the native engine (2.2x slower per fit in a worker), and
            # even glibc's default shrinks the heap of a worker's fitting thread (not the main
            # thread's) after each: 10-20 % slower than the same fits in a main thread
            "distributed.nanny.pre-spawn-environ": {"OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1,
                                                    "OPENBLAS_NUM_THREADS": 1,
                                                    "MALLOC_TRIM_THRESHOLD_": 1 << 30,
                                                    "MALLOC_MMAP_THRESHOLD_": 1 << 25}}


def local_cluster(workers, dashboard=False, quiet=False):
    """The batch's own cluster on this machine: ``workers`` processes of one thread, TLS with this run's
    credentials (see the module's text), Ctrl-C left to the driver; ``quiet``: only its critical logs.

    Its workers never run the user's main script again, as ``spawn`` would (no ``__main__`` guard needed:
    :mod:`~ulyss_ann.fitting.batch.worker_processes`). Its temporary files (the workers' ``TMPDIR``, Dask's
    scratch space) go to one folder of the run,
    which :func:`close_quietly` removes: a worker stopped mid-fit is killed by its nanny, and no
    clean-up of its own runs."""
    import dask
    from dask.distributed import LocalCluster
    from distributed.security import Security

    from ulyss_ann.fitting.batch.worker_processes import ScriptSafeNanny

    try:
        security = Security.temporary()
    except ImportError:  # cryptography: in the dask extra since the cluster was made private
        raise UlyssAnnError("a private Dask cluster needs the cryptography package: pip install "
                            "'ulyss_ann[dask]' (or cryptography), or fit in this process with workers=0 "
                            "(-j 0)") from None
    scratch = tempfile.mkdtemp(prefix="ulyss_ann_run_")
    settings = {"temporary-directory": scratch}
    if not dashboard:  # the HTTP servers serve only /health: no state of the run for other users to read
        settings.update({"distributed.scheduler.http.routes": ["distributed.http.health"],
                         "distributed.worker.http.routes": ["distributed.http.health"]})
    with _children_ignore_interrupts(), warnings.catch_warnings(), dask.config.set(settings):
        # 8787 taken: Dask's HTTP server (health; the dashboard if asked) takes a free port, which
        # the link printed says; its warning would break --quiet
        warnings.filterwarnings("ignore", message="Port .* is already in use")
        try:
            cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                                host="127.0.0.1", protocol="tls://", security=security,
                                silence_logs=logging.CRITICAL if quiet else logging.ERROR,
                                dashboard_address="127.0.0.1:8787" if dashboard else None,
                                env={"TMPDIR": scratch},  # the nannies' env wins over the user's TMPDIR
                                worker_class=ScriptSafeNanny)  # workers never run the user's script
        except BaseException as exc:
            shutil.rmtree(scratch, ignore_errors=True)
            if not isinstance(exc, RuntimeError):
                raise
            # "Nanny failed to start" (the batch driver says what the run left: a journal to resume, or nothing)
            raise UlyssAnnError(f"the Dask workers could not start ({first_line(exc)}): fit in this process with "
                                "workers=0 (-j 0)") from None
    cluster.ulyss_ann_scratch = scratch
    return cluster


def local_client(cluster):
    """The driver's client of its own cluster (the cluster's credentials), its workers ignoring Ctrl-C."""
    from dask.distributed import Client

    client = Client(cluster, security=cluster.security)
    client.register_plugin(_interrupts_ignored())  # also in workers a nanny restarts later
    return client


def connect(scheduler):
    """A client of the user's cluster at ``scheduler``, with the security of Dask's configuration."""
    from dask.distributed import Client
    from distributed.security import Security

    try:
        # Security() reads distributed.comm.tls.* and require-encryption from Dask's configuration
        return Client(scheduler, security=Security())
    except (OSError, ValueError, TypeError) as exc:  # unreachable (timed out), refused, not an address, no TLS set-up
        tls = (" and, for tls://, Dask's TLS settings (distributed.comm.tls.ca-file, .client.cert, .client.key)"
               if str(scheduler).startswith("tls://") else "")
        raise UlyssAnnError(f"cannot use the Dask scheduler {scheduler} ({first_line(exc)}): check the address "
                            f"(tcp://HOST:PORT or tls://HOST:PORT) and that it runs{tls}") from None


def announce_dashboard(dashboard, client, scheduler):
    """``Dask dashboard: LINK`` (or the callable ``dashboard`` given the link), once the client is up."""
    import importlib.util

    try:
        link = client.dashboard_link
    except (KeyError, TypeError):  # a scheduler started without its dashboard
        link = None
    if not link:
        warnings.warn(f"no Dask dashboard: the scheduler {scheduler or ''} serves none".replace("  ", " "))
        return
    if callable(dashboard):
        dashboard(link)
        return
    note = ""
    if scheduler is None and importlib.util.find_spec("bokeh") is None:
        note = " (its pages need bokeh: pip install 'bokeh>=3.1')"
    print(f"Dask dashboard: {link}{note}", flush=True)


@contextlib.contextmanager
def dask_silenced(enabled):
    """Dask's loggers in this process (the scheduler and nannies of a local cluster, the client) limited
    to critical messages while ``enabled`` (a quiet batch: no worker-death warnings, no tracebacks)."""
    if not enabled:
        yield
        return
    # distributed.client and others have levels (and handlers) of their own: each is set, not just the parent
    names = ["distributed"] + [name for name, logger in logging.root.manager.loggerDict.items()
                               if name.startswith("distributed.") and isinstance(logger, logging.Logger)]
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def close_quietly(client, cluster):
    """Close the client and the local cluster (either may be None), and remove the cluster's temporary files (see
    :func:`local_cluster`) and its GDL sessions' folders; an interrupted close says nothing more."""
    with dask_silenced(True):
        try:
            if client is not None:
                client.close()
            if cluster is not None:
                cluster.close()
        finally:
            for folder in [*getattr(cluster, "ulyss_ann_sessions", ()), getattr(cluster, "ulyss_ann_scratch", None)]:
                if folder:
                    shutil.rmtree(folder, ignore_errors=True)


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into the clean stop of Ctrl-C (a KeyboardInterrupt, so every clean-up of an
    interrupt runs: the GDL process stopped, the cluster closed, the lock released)."""


@contextlib.contextmanager
def stopping_on_sigterm():
    """While a batch runs, SIGTERM raises :class:`Terminated` in the main thread.

    Without this, SIGTERM (``kill``, a batch system's time limit) ended the process at once:
    no message, and the GDL sessions' scratch folders left in /dev/shm and the temporary
    folder. A handler set by the caller is left alone, as is a batch run from another thread
    (only the main thread may set handlers).
    """
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        yield
        return

    def terminate(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
        raise Terminated()

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _children_ignore_interrupts():
    """Start the local cluster's processes with Ctrl-C ignored (restored here after).

    A Ctrl-C at a terminal goes to the whole process group: without this every worker
    prints its own KeyboardInterrupt traceback (~70 lines) while the driver stops them
    anyway. An ignored signal stays ignored across exec, and Python then installs no
    handler of its own, so the spawned workers leave the interrupt to the driver.
    """
    @contextlib.contextmanager
    def ignoring():
        if threading.current_thread() is not threading.main_thread():
            yield  # only the main thread may set handlers (a batch run from a thread)
            return
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
    return ignoring()


def _interrupts_ignored():
    """A Dask worker plugin: the worker ignores Ctrl-C (the driver stops the cluster).

    Only for the batch's own local cluster: the workers of a cluster given by address
    belong to whoever started them.
    """
    from dask.distributed import WorkerPlugin

    class InterruptsIgnored(WorkerPlugin):
        name = "ulyss-ann-interrupts-ignored"

        def setup(self, worker):
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # runs in the worker's main thread

    return InterruptsIgnored()
