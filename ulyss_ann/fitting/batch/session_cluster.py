"""One local Dask cluster for a Python session, shared by its batches, and when a batch needs none.

Starting the batch's private cluster (:func:`~ulyss_ann.fitting.batch.cluster.local_cluster`: worker
processes that import the engine, TLS credentials) costs about :data:`CLUSTER_START_SECONDS`; a notebook
that calls :func:`ulyss_ann.fit` on 30 spectra, looks, and calls it again paid it every time, for work one
process does in less. So:

* **No cluster for small work.** With the default workers, a batch whose fits would take this process
  less time than the cluster's start-up saves (:func:`runs_faster_here`, from the engine's
  :attr:`~ulyss_ann.fitting.engine_traits.EngineTraits.seconds_per_spectrum`) is fitted in this process,
  as ``workers=0`` would.
* **One cluster for the session.** The local cluster a batch starts is kept when the batch ends well (no
  ``failed:`` row), and the next batch with the same workers, retries and dashboard uses it — its workers
  keep their engines (a GDL session, the compiled kernels) warm; batches run from several threads share
  it. A batch of other settings closes it when no batch is using it (else it gets a cluster of its own);
  a batch that stopped on an error or Ctrl-C (tasks may still run there) or saw a worker die for good has
  it closed when the last batch using it ends; a cluster left without workers is not used again.
  :func:`close_cluster` (``ulyss_ann.close_cluster()``) closes it at will, and the end of the session
  closes it in any case, with its temporary files. It stays private to this process: its credentials are
  in its memory alone.

A cluster of one's own (``scheduler=``) is never kept: it is the user's, and each batch connects anew.
"""

import atexit
import os
import threading
from dataclasses import dataclass

__all__ = ["session_cluster", "release", "close_cluster", "runs_faster_here", "CLUSTER_START_SECONDS"]

#: Seconds a local cluster of this machine's cores takes to start and to have its workers fit their first
#: spectrum: 2.1–2.4 s measured on the 2-core CI machine (one spectrum on 2 workers against in this
#: process, ``scripts/bench_native``'s start-up lines); rounded up, since a laptop's spawn is slower.
CLUSTER_START_SECONDS = 3.0

_lock = threading.RLock()
_held = None
_exit_registered = False


@dataclass
class _Held:
    key: tuple
    cluster: object
    client: object
    users: int = 0          # batches using it now (a session may run batches from several threads)
    doomed: bool = False    # to be closed when its last batch ends: taken by no new batch


def _key(workers, retries, dashboard):
    """What a kept cluster must match: its worker processes (the default: one per core), the retries its
    scheduler was started with (Dask's allowed-failures), and whether it serves the dashboard."""
    return (workers or os.cpu_count() or 1, int(retries), bool(dashboard))


def _usable(held, key):
    """Whether the kept cluster can take a batch of these settings: the same settings, not to be closed, its
    client running and its scheduler with workers (ones that died for good leave it with none)."""
    if held is None or held.doomed or held.key != key or getattr(held.client, "status", None) != "running":
        return False
    try:
        return bool(held.client.nthreads())
    except Exception:  # noqa: BLE001 - a scheduler that does not answer is no cluster to use
        return False


def session_cluster(workers, retries, dashboard=False, quiet=False):
    """(client, cluster) for a batch: the session's kept cluster with these settings, started if there is none.

    Called inside the batch's ``dask.config.set(dask_settings(retries))``, which a new cluster's scheduler
    and workers take. A kept cluster of other settings that no batch is using is closed first; one in use
    (a batch in another thread) is left to it, and this batch gets a cluster of its own, closed when it ends.
    Give the cluster back with :func:`release`.
    """
    global _held, _exit_registered
    from ulyss_ann.fitting.batch.cluster import close_quietly, local_client, local_cluster

    key = _key(workers, retries, dashboard)
    with _lock:
        if _usable(_held, key):
            _held.users += 1
            return _held.client, _held.cluster
        if _held is not None and _held.users == 0:
            close_cluster()
        cluster = local_cluster(workers, dashboard, quiet=quiet)
        try:
            client = local_client(cluster)
        except BaseException:
            close_quietly(None, cluster)
            raise
        if _held is None:
            _held = _Held(key, cluster, client, users=1)
            if not _exit_registered:
                atexit.register(close_cluster)
                _exit_registered = True
        else:  # the kept one is another batch's now: this one is the batch's own
            cluster.ulyss_ann_client = client
        return client, cluster


def release(cluster, keep=True):
    """A batch is done with ``cluster`` (from :func:`session_cluster`).

    The kept cluster stays for the next batch when ``keep`` (the batch ended well); else it is closed once no
    other batch uses it (a batch stopped by an error or Ctrl-C may leave tasks running there). A cluster of
    the batch's own is closed.
    """
    global _held
    from ulyss_ann.fitting.batch.cluster import close_quietly

    with _lock:
        if _held is not None and _held.cluster is cluster:
            _held.users -= 1
            _held.doomed = _held.doomed or not keep
            if not _held.doomed or _held.users > 0:
                return
            held, _held = _held, None
            client = held.client
        else:
            client = getattr(cluster, "ulyss_ann_client", None)
    close_quietly(client, cluster)


def close_cluster():
    """Close the session's local Dask cluster, if one is kept, and remove its temporary files.

    The next batch that needs a cluster starts a new one. Called at the end of the session anyway; call
    it to give the cores and memory back sooner (each worker holds a Python process, ~150 MB). A cluster
    that a batch is using (one run from another thread) is closed when that batch ends.

    Returns
    -------
    bool
        True when a cluster was closed, or will be when the batch using it ends.

    Examples
    --------
    >>> table = ulyss_ann.fit(files, output=None)     # doctest: +SKIP
    >>> ulyss_ann.close_cluster()                     # doctest: +SKIP
    True
    """
    global _held
    with _lock:
        held = _held
        if held is None:
            return False
        if held.users > 0:
            held.doomed = True
            return True
        _held = None
    from ulyss_ann.fitting.batch.cluster import close_quietly

    close_quietly(held.client, held.cluster)
    return True


def runs_faster_here(spectra, seconds_per_spectrum, workers, retries, dashboard):
    """Whether a batch of ``spectra`` with the default workers is done sooner in this process than on a new
    local cluster: its fits, ``spectra × seconds_per_spectrum``, save at most the fraction ``1 − 1/cores`` of
    their time on the cluster, which costs :data:`CLUSTER_START_SECONDS` to start. A kept cluster with the
    same settings costs nothing to start: it is used. ``seconds_per_spectrum`` None: the engine is never run
    in this process unasked (e.g. GDL, where a crash of the interpreter would take the session with it)."""
    if seconds_per_spectrum is None:
        return False
    with _lock:
        if _usable(_held, _key(workers, retries, dashboard)):
            return False
    cores = os.cpu_count() or 1
    return spectra * seconds_per_spectrum * (1.0 - 1.0 / cores) <= CLUSTER_START_SECONDS
