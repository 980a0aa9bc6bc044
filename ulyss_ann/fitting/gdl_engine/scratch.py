"""The GDL sessions' scratch folders that the workers of a batch's local Dask cluster leave behind.

A worker busy in GDL cannot close itself in time when the batch stops (its nanny kills it), so
its session's folder in /dev/shm would stay: the GDL engine notes those folders as the batch goes
(:meth:`~ulyss_ann.fitting.gdl_engine.engine.GDLEngine.note_local_workers`), in the cluster's
``ulyss_ann_sessions``, which the batch's clean-up removes. GDL's own business, kept here so the
batch's cluster code knows no engine.
"""

import os

__all__ = ["GDL_PROGRAM", "note_gdl_sessions"]

#: The GDL interpreter's process name (the program, not the engine: a process's name is no engine's).
GDL_PROGRAM = "gdl"


def note_gdl_sessions(cluster):
    """Note the scratch folders of the GDL sessions of the local cluster's workers, for
    :func:`~ulyss_ann.fitting.batch.cluster.close_quietly` to remove: each ``gdl`` process runs in its session's folder
    (/dev/shm/ulyss_ann_gdl_*, :class:`~ulyss_ann.gdl.session.SubprocessGDLSession`). Noted as the
    batch goes: a worker killed (with its process group, by a restart) takes no clean-up with it."""
    import psutil  # a dependency of distributed

    folders = cluster.__dict__.setdefault("ulyss_ann_sessions", set())
    for nanny in list(getattr(cluster, "workers", {}).values()):
        pid = getattr(getattr(nanny, "process", None), "pid", None)
        try:
            children = psutil.Process(pid).children(recursive=True) if pid else []
        except psutil.Error:
            continue
        for child in children:
            try:
                if child.name() == GDL_PROGRAM and os.path.basename(child.cwd()).startswith("ulyss_ann_gdl_"):
                    folders.add(child.cwd())
            except psutil.Error:  # ended meanwhile, or not ours to inspect
                pass
