"""Many spectra fitted in parallel on Dask, resumable, nothing lost or mixed.

``driver`` (:func:`~ulyss_ann.fitting.batch.driver.fit`: the batch), ``tasks`` (what one task
does: a spectrum, or a block of them, into rows), ``sources`` (the inputs and their ids), ``run``
(the run's identity and the output's lock), ``resume`` (what a batch continues from),
``journal`` (every finished spectrum on disk, checksummed; ``journal_lines``: one record's line),
``journal_index`` (a journal indexed in a scratch SQLite database: a survey's resume in a memory that does
not grow with it; ``journal_resolve``: its SQL; ``scratch``: the databases it and the inputs use), ``results``
(the table from the journal, a block at a time, and the run's summary), ``runners`` (the tasks run here,
or on Dask a window of blocks at a time), ``execution`` (where and how a batch runs:
workers, scheduler, retries, dashboard), ``cluster`` (the private local Dask
cluster, and how a batch stops), ``session_cluster`` (one cluster kept for a session's batches, and none
for small work) and ``worker_processes`` (workers that do not rerun the user's
script). It reaches the engines through the registry only.
"""

__all__ = ["driver", "tasks", "sources", "run", "resume", "journal", "journal_lines", "journal_index",
           "journal_resolve", "scratch", "results", "runners", "execution", "cluster", "session_cluster",
           "worker_processes"]
