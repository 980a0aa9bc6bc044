"""How a batch's tasks are run: in this process, or on Dask a few blocks at a time; each block's rows journalled
as it comes back.

:func:`run_serial` fits the blocks one after the other here (``workers=0``). :func:`run_dask` sends them to a
Dask cluster — the session's local one, or a scheduler's — keeping a *window* of blocks on the cluster:
twice the blocks that keep every worker thread busy (:data:`~ulyss_ann.fitting.batch.tasks.BLOCKS_PER_WORKER`
each), the next block made and sent as one comes back. A survey's blocks are never all made, nor all held by
the scheduler; the window follows the cluster's threads (read again every :data:`WINDOW_SECONDS`), so that
workers that join later (dask-jobqueue, an adaptive cluster) get work. A block whose workers die is fitted
again a spectrum at a time, ahead of the others; a cluster lost (its scheduler gone, the client closed)
gives each spectrum not fitted a ``failed: …`` row, which ``--resume`` fits again.
"""

import collections
import itertools
import sys
import time

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.fitting.batch.cluster import announce_dashboard, close_quietly, connect, dask_settings, dask_silenced
from ulyss_ann.fitting.batch.results import not_fitted
from ulyss_ann.fitting.batch.session_cluster import release, session_cluster
from ulyss_ann.fitting.batch.tasks import (BLOCKS_PER_WORKER, fit_block, fit_block_noting_warnings, task_blocks,
                                          worker_death_row)
from ulyss_ann.fitting.engines import engine_class

__all__ = ["run_serial", "run_dask", "WINDOW_SECONDS"]

#: How often the window of blocks on a cluster is fitted again to its worker threads (seconds).
WINDOW_SECONDS = 2.0


def _progress_bar(total, enabled):
    from ulyss_ann.spectra.progress import progress_bar

    return progress_bar(total=total, unit="spectrum", desc="fitting", enabled=enabled, dynamic_ncols=True)


def _record(journal, bar, rows, counts):
    """Journal a block's rows (one write, forced to disk), say its warnings, move the bar.

    ``counts``: [errors, failed] so far, shown on the bar as the summary will say them.
    """
    for row in rows:
        for message in row.pop("warnings", ()):  # said by a Dask worker, whose own warnings nobody sees
            bar.write(f"ulyss-ann: warning: {message}", file=sys.stderr)
    journal.append_many(rows)
    errors, failed = not_fitted(collections.Counter(row["status"] for row in rows))  # as the summary counts
    counts[0] += errors
    counts[1] += failed
    bar.set_postfix(errors=counts[0], failed=counts[1], refresh=False)
    bar.update(len(rows))


def run_serial(tasks, config, execution, journal, interp, progress):
    """Fit ``tasks`` (:class:`~ulyss_ann.fitting.batch.tasks.Tasks`) here, a block at a time."""
    counts = [0, 0]
    with _progress_bar(len(tasks), progress) as bar:
        for block in task_blocks(tasks, config, 1):
            _record(journal, bar, fit_block(block, config, interp), counts)


class _Window:
    """How many blocks a cluster is given at once: 2 x BLOCKS_PER_WORKER a worker thread, read again every
    :data:`WINDOW_SECONDS` (workers come and go)."""

    def __init__(self, client):
        self.client, self.read_at, self.blocks = client, -WINDOW_SECONDS, 2 * BLOCKS_PER_WORKER

    def size(self):
        if time.monotonic() - self.read_at >= WINDOW_SECONDS:
            self.read_at = time.monotonic()
            try:
                self.blocks = 2 * BLOCKS_PER_WORKER * max(1, sum(self.client.nthreads().values()))
            except Exception:  # the cluster lost: the next block's submission says so (run_dask)
                pass
        return self.blocks


def run_dask(tasks, config, execution, journal, interp, progress):
    """Fit ``tasks`` on Dask (``execution``'s scheduler, or the session's local cluster), a window of blocks at
    a time (see the module's text)."""
    import dask
    from dask.distributed import as_completed

    with dask.config.set(dask_settings(execution.retries)), dask_silenced(not progress):
        cluster = client = None
        keep = False
        counts = [0, 0]  # errors, failed
        engine_kind = engine_class(config.engine)
        try:
            try:
                if execution.scheduler:
                    client = connect(execution.scheduler)
                else:  # the session's: kept for the next batch (session_cluster's text)
                    client, cluster = session_cluster(execution.workers, execution.retries, execution.dashboard,
                                                      quiet=not progress)
            except UlyssAnnError as exc:  # before any fit: what the run left is the journal, or nothing
                raise UlyssAnnError(f"{exc}; {_what_is_left(journal)}") from None
            if execution.dashboard:
                announce_dashboard(execution.dashboard, client, execution.scheduler)
            notice = engine_kind.batch_notice(config) if cluster is not None and progress else None
            if notice:  # said once here, for the local workers (which keep theirs)
                print(notice, file=sys.stderr, flush=True)
            slots = sum(client.nthreads().values()) or 1
            blocks, futures, pending = iter(task_blocks(tasks, config, slots)), {}, as_completed()
            window = _Window(client)

            def fill():  # blocks made and sent until the window is full, while the client is connected
                while len(futures) < window.size() and client.status == "running":
                    block = next(blocks, None)
                    if block is None:
                        return
                    try:
                        future = client.submit(fit_block_noting_warnings, block, config, pure=False)
                    except Exception as exc:  # the client closed as it was sent
                        lost(itertools.chain([block], blocks), exc)
                        return
                    futures[future] = block
                    pending.add(future)

            def lost(rest, exc):  # the cluster lost: each block not sent says so, as a cancelled one's rows do
                for block in rest:
                    _record(journal, bar, [worker_death_row(entry, config, execution.retries, exc)
                                           for entry, _ in block], counts)

            with _progress_bar(len(tasks), progress) as bar:
                fill()
                for future in pending:
                    block = futures.pop(future)
                    try:
                        rows = future.result()
                    except Exception as exc:  # KilledWorker after `retries` deaths
                        rows = None
                        if len(block) > 1 and type(exc).__name__ == "KilledWorker":
                            # one spectrum killed the workers of its block: each is fitted alone,
                            # ahead of the blocks still queued, and only the one that kills its
                            # worker again fails (any other failure, a lost scheduler, is every task's)
                            for task in block:
                                alone = client.submit(fit_block_noting_warnings, [task], config, pure=False,
                                                      priority=1)
                                futures[alone] = [task]
                                pending.add(alone)
                        else:
                            rows = [worker_death_row(entry, config, execution.retries, exc) for entry, _ in block]
                    future.release()
                    if cluster is not None:
                        engine_kind.note_local_workers(cluster)  # e.g. GDL's scratch folders, removed at the end
                    if rows is not None:
                        _record(journal, bar, rows, counts)
                    fill()  # after the block's rows are journalled
                # none left on the cluster: blocks not sent mean a scheduler lost (a future sent while the
                # client reconnects would never come back)
                lost(blocks, ConnectionError(f"the scheduler was lost, the client is {client.status}"))
            keep = counts[1] == 0  # no worker died for good: the cluster is as good as new
        finally:
            try:
                if cluster is not None:
                    engine_kind.note_local_workers(cluster)  # the last ones, before the workers go
            finally:
                if cluster is None:
                    close_quietly(client, None)  # the user's cluster: this batch's connection
                else:  # kept for the next batch, or closed: stopped by an error or Ctrl-C, tasks may still run
                    release(cluster, keep=keep)


def _what_is_left(journal):
    """What a batch stopped before its first fit leaves: a journal that resume continues, or nothing."""
    if journal.path is None:
        return "nothing was written (output=None keeps the results in memory only: there is nothing to resume)"
    return f"then run again with resume=True (--resume), which continues from {journal.path}"
