"""Where and how a batch runs: :class:`Execution`, the batch's counterpart of emcee's ``pool=``.

What a fit *is* (the model, its options) is the :class:`~ulyss_ann.fitting.core.FitConfig`; where it
runs (in this process, on a local Dask cluster, on a cluster of one's own), how often a dying worker
is forgiven and whether Dask's dashboard is served are this object's, so that the same batch can be
run elsewhere by changing one argument (:func:`~ulyss_ann.fitting.batch.driver.fit`'s
``execution=``), and none of it enters the run's identity (a batch resumed on another cluster is the
same run).
"""

import importlib
import warnings
from dataclasses import dataclass, replace

import numpy as np

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.fitting.batch.cluster import check_workers

__all__ = ["Execution"]


@dataclass(frozen=True)
class Execution:
    """Where and how a batch of fits runs: in this process, or on Dask (a private local cluster, or yours).

    Checked when made: a wrong value is refused in one line (:class:`~ulyss_ann.errors.UlyssAnnError`)
    before any spectrum is read or anything written. Immutable; ``dataclasses.replace`` makes a changed copy.

    Parameters
    ----------
    workers : int, optional
        Worker processes of the local cluster (default None: one per core, at most
        :data:`~ulyss_ann.fitting.batch.cluster.MAX_WORKERS_PER_CORE` per core, kept for the session's
        next batch; in this process where the batch is too small for a cluster to pay, and with a GPU
        ``device``, which this process feeds alone: :mod:`~ulyss_ann.fitting.batch.session_cluster`);
        0 fits in this process, without Dask (``-j 0``).
    scheduler : str, optional
        Address of an existing Dask scheduler (``tls://host:8786`` or ``tcp://``) used instead of a local
        cluster; its workers are its own, so ``workers`` is then left out (``--scheduler``).
    retries : int
        Worker deaths one task may cause before it is given up in this run (Dask's
        ``allowed-failures``; default 2); a block of spectra given up is then fitted one by one, and only a
        spectrum that still kills its worker gets a ``failed: …`` row, which ``resume`` fits again.
    dashboard : bool or callable
        True: the local cluster serves Dask's dashboard (127.0.0.1, port 8787 or a free one) and
        ``Dask dashboard: LINK`` is printed once the client is up (with ``scheduler``: that scheduler's
        dashboard); a callable is given the link instead. In this process (``workers=0``) there is none:
        a warning says so.

    See Also
    --------
    ulyss_ann.fit : the batch, which takes ``execution=`` or these same keywords.

    Examples
    --------
    >>> here = Execution(workers=0)
    >>> here
    Execution(workers=0, scheduler=None, retries=2, dashboard=False)
    >>> table = ulyss_ann.fit(files, "gsl_ann_trial7.fits", "r.ecsv", execution=here)   # doctest: +SKIP
    >>> cluster = Execution(scheduler="tls://head:8786", retries=4, dashboard=True)
    """

    workers: int = None
    scheduler: str = None
    retries: int = 2
    dashboard: object = False

    def __post_init__(self):
        workers = self.workers
        if workers is not None and (isinstance(workers, (bool, np.bool_)) or not isinstance(workers, (int, np.integer))
                                    or workers < 0):
            raise UlyssAnnError(f"workers (-j) {workers!r}: give 0 (no Dask) or a positive number of processes")
        check_workers(workers)
        if self.scheduler is not None and not isinstance(self.scheduler, str):
            raise UlyssAnnError(f"scheduler (--scheduler) {self.scheduler!r}: give the scheduler's address, "
                                "e.g. tls://host:8786")
        _check_address(self.scheduler)
        if workers is not None and self.scheduler is not None:
            raise UlyssAnnError("workers (-j) and scheduler (--scheduler): the cluster at the address has its own "
                                "workers; give one of them")
        retries = self.retries
        if isinstance(retries, (bool, np.bool_)) or not isinstance(retries, (int, np.integer)) or retries < 0:
            raise UlyssAnnError(f"retries {retries!r}: give a number of worker deaths >= 0")
        if not (isinstance(self.dashboard, (bool, np.bool_)) or callable(self.dashboard)):
            raise UlyssAnnError(f"dashboard (--dashboard) {self.dashboard!r}: give True, False, or a function "
                                "that is given the dashboard's link")

    @property
    def remote(self):
        """True on a cluster of one's own (``scheduler``): nothing of this machine is known there."""
        return self.scheduler is not None

    @property
    def in_process(self):
        """True when the fits run in this process, without Dask (``workers=0``, no scheduler)."""
        return self.workers == 0 and self.scheduler is None

    def with_workers(self, workers):
        """This execution with ``workers`` as the engine decided it (e.g. 0: one GPU fed by this process).

        Parameters
        ----------
        workers : int or None
            The worker processes, as :class:`Execution` takes them.

        Returns
        -------
        Execution
            ``self`` when nothing changes, else a checked copy.
        """
        return self if workers == self.workers else replace(self, workers=workers)

    def require_dask(self):
        """Refuse, in one line, an execution on Dask where Dask is not installed; warn of a dashboard asked in
        this process, where there is none. Said before the run's journal is opened."""
        if self.in_process:
            if self.dashboard:
                warnings.warn("no Dask dashboard: this batch fits in this process, without Dask (workers 0)",
                              stacklevel=3)
            return
        try:
            importlib.import_module("distributed")
        except ImportError:
            raise UlyssAnnError("fitting on several cores or a cluster needs Dask: pip install 'ulyss_ann[dask]', "
                                "or fit in this process with workers=0 (-j 0)") from None


def _check_address(address):
    """Refuse, in one line, a scheduler address Dask cannot use: one it cannot parse, a scheme it does not know
    or cannot connect with (``TCP://``, ``ucxx://``; ``ucx://`` where Dask dropped UCX), no port, a port that is
    no number or out of range. Said when the Execution is made, not once the run's journal exists; Dask's own
    parser and registry of schemes, where Dask is installed (:meth:`Execution.require_dask` says where it is
    not). A well-formed address where no scheduler answers is found on connecting."""
    if address is None:
        return
    try:
        from distributed.comm import parse_address
        from distributed.comm.addressing import parse_host_port
        from distributed.comm.registry import get_backend
    except ImportError:
        return
    try:
        scheme, location = parse_address(address)
        backend = get_backend(scheme)  # ValueError for a scheme Dask does not know
        try:
            backend.get_connector()
        except TypeError:  # a backend this Dask keeps as a stub (UCX, since Dask moved it out)
            raise ValueError(f"this Dask cannot connect through '{scheme}'") from None
        if scheme in ("tcp", "tls"):
            port = parse_host_port(location)[1]
            if not 0 < port < 65536:
                raise ValueError(f"port {port} out of range (1-65535)")
    except ValueError as exc:
        said = str(exc) if address in str(exc) else f"{address!r}: {exc}"  # Dask's words name it, or not
        raise UlyssAnnError(f"scheduler (--scheduler) {said}; give the scheduler's address, e.g. "
                            "tls://host:8786") from None
