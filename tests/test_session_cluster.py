"""A session's batches: no Dask cluster for work this process does sooner, one cluster kept for the rest."""

import os

import numpy as np
import pytest

import ulyss_ann
from conftest import FAST, MODEL, TRUTH, cli_here, simulated_batch
from ulyss_ann.fitting.batch import cluster as cluster_module
from ulyss_ann.fitting.batch import session_cluster
from ulyss_ann.fitting.batch.session_cluster import CLUSTER_START_SECONDS, runs_faster_here

pytest.importorskip("distributed", reason="Dask is not installed (pip install 'ulyss_ann[dask]')")


@pytest.fixture(scope="module")
def spectra(tmp_path_factory):
    return simulated_batch(tmp_path_factory.mktemp("session"), TRUTH, lambda i: 25.0 * i - 60.0)


@pytest.fixture
def started(monkeypatch):
    """The local clusters started from now on (the real ones, counted)."""
    clusters = []
    real = cluster_module.local_cluster

    def counted(*args, **kwargs):
        clusters.append(real(*args, **kwargs))
        return clusters[-1]

    monkeypatch.setattr(cluster_module, "local_cluster", counted)
    return clusters


def test_the_choice_weighs_the_fits_against_the_clusters_start():
    cores = os.cpu_count() or 1
    if cores == 1:
        pytest.skip("one core: a cluster never saves time, every batch runs in this process")
    saved_per_spectrum = 0.02 * (1 - 1 / cores)
    few = int(CLUSTER_START_SECONDS / saved_per_spectrum)
    assert runs_faster_here(few, 0.02, None, 2, False)
    assert not runs_faster_here(few + 2, 0.02, None, 2, False)
    assert not runs_faster_here(1, None, None, 2, False)  # an engine that never runs here unasked


def test_a_small_batch_starts_no_cluster_and_gives_the_clusters_rows(spectra, started):
    here = ulyss_ann.fit(spectra, MODEL, output=None, **FAST)
    assert started == [] and not session_cluster.close_cluster()
    assert list(here["status"]) == ["ok"] * len(spectra)
    there = ulyss_ann.fit(spectra, MODEL, output=None, workers=2, **FAST)
    for name in ("Teff", "Logg", "Fe/H", "cz", "chi2"):
        np.testing.assert_allclose(there[name], here[name], rtol=1e-9, err_msg=name)


def test_one_cluster_serves_a_sessions_batches_until_it_is_closed(spectra, started, tmp_path):
    first = ulyss_ann.fit(spectra[:3], MODEL, output=None, workers=2, **FAST)
    second = ulyss_ann.fit(spectra[3:], MODEL, tmp_path / "r.ecsv", workers=2, **FAST)
    assert len(started) == 1, "the second batch started a cluster of its own"
    assert list(first["status"]) + list(second["status"]) == ["ok"] * len(spectra)
    scratch = started[0].ulyss_ann_scratch
    assert os.path.isdir(scratch)
    ulyss_ann.fit(spectra[:2], MODEL, output=None, workers=2, retries=1, **FAST)  # other settings: another
    assert len(started) == 2 and started[0].status.name == "closed" and not os.path.exists(scratch)
    assert ulyss_ann.close_cluster() and started[1].status.name == "closed"
    assert not os.path.exists(started[1].ulyss_ann_scratch)
    assert not ulyss_ann.close_cluster()  # nothing kept any more


def test_a_batch_stopped_by_an_error_closes_the_kept_cluster(spectra, started, monkeypatch):
    from ulyss_ann.fitting.batch import runners

    def journal_full(*args, **kwargs):
        raise ulyss_ann.UlyssAnnError("the test's full disk")

    monkeypatch.setattr(runners, "_record", journal_full)
    with pytest.raises(ulyss_ann.UlyssAnnError, match="the test's full disk"):
        ulyss_ann.fit(spectra[:2], MODEL, output=None, workers=2, **FAST)
    assert len(started) == 1 and started[0].status.name == "closed"  # its tasks may have been running
    assert not os.path.exists(started[0].ulyss_ann_scratch) and not ulyss_ann.close_cluster()


def test_a_kept_cluster_takes_the_small_batches_too_and_is_shared_until_its_last_batch(spectra, started):
    cores = os.cpu_count() or 1
    ulyss_ann.fit(spectra[:2], MODEL, output=None, workers=cores, **FAST)   # the default workers' cluster
    assert not runs_faster_here(1, 0.03, None, 2, False)  # kept and warm: no start to save
    small = ulyss_ann.fit(spectra[:1], MODEL, output=None, **FAST)
    assert len(started) == 1 and list(small["status"]) == ["ok"]
    # two batches at once (threads of a session) hold it; a failed one closes it only when the other ends
    first, cluster = session_cluster.session_cluster(cores, 2)
    again, same = session_cluster.session_cluster(cores, 2)
    assert same is cluster and again is first and len(started) == 1
    session_cluster.release(cluster, keep=False)
    assert cluster.status.name == "running"
    assert session_cluster.runs_faster_here(1, 0.03, cores, 2, False)  # to be closed: no batch counts on it
    session_cluster.release(cluster, keep=True)
    assert cluster.status.name == "closed" and not ulyss_ann.close_cluster()


def test_the_command_line_closes_its_cluster(spectra, tmp_path):
    done = cli_here("fit", *spectra[:2], "-o", tmp_path / "r.ecsv", "-j", "2", "--engine", "native", "--mdegree", "8",
                    "--guess", "Teff=5400", "--guess", "Logg=3", "--guess", "Fe/H=-1.5", "--quiet")
    assert done.returncode == 0, done.stderr
    assert not ulyss_ann.close_cluster()  # nothing kept after its one batch


def test_the_engines_notice_is_said_once_for_the_local_workers(spectra, monkeypatch, capsys):
    # the native engine's compile notice: each worker process keeps its own, the driver says it once
    from ulyss_ann.fitting.native_engine.engine import NativeEngine

    monkeypatch.setattr(NativeEngine, "batch_notice", classmethod(lambda cls, config: "the test's notice"))
    loud = {**FAST, "progress": True}
    ulyss_ann.fit(spectra[:2], MODEL, output=None, workers=2, **loud)
    assert capsys.readouterr().err.count("the test's notice") == 1
    ulyss_ann.fit(spectra[:2], MODEL, output=None, workers=2, **FAST)   # quiet (--quiet): nothing said
    assert "the test's notice" not in capsys.readouterr().err
    ulyss_ann.fit(spectra[:2], MODEL, output=None, workers=0, **loud)   # in this process: the engine's own
    assert "the test's notice" not in capsys.readouterr().err


def test_a_worker_process_keeps_the_compile_notice_to_itself(tmp_path):
    import subprocess
    import sys

    probe = ("import multiprocessing as mp\n"
             "from ulyss_ann.fitting.native_engine import kernels\n"
             "if __name__ == '__main__':\n"
             "    child = mp.get_context('spawn').Process(target=kernels.announce_compilation)\n"
             "    child.start(); child.join()\n"
             "    kernels.announce_compilation()\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("compiling the native engine's kernels") == 1  # the parent's, not the child's


def test_refits_count_in_the_cost_of_a_batch():
    # --errors mc refits each spectrum NSIMUL times: 30 such spectra are no small work any more
    from types import SimpleNamespace

    from ulyss_ann.fitting.batch.driver import _here_when_faster
    from ulyss_ann.fitting.native_engine.engine import NativeEngine

    if (os.cpu_count() or 1) == 1:
        pytest.skip("one core: a cluster never saves time, every batch runs in this process")
    default = ulyss_ann.Execution()
    formal = SimpleNamespace(errors="formal", nsimul=None)
    refitted = SimpleNamespace(errors="mc", nsimul=None)
    assert _here_when_faster(default, NativeEngine, formal, 30).in_process
    assert not _here_when_faster(default, NativeEngine, refitted, 30).in_process
    assert _here_when_faster(default, NativeEngine, SimpleNamespace(errors="mc", nsimul=5), 5).in_process
