"""The batch's processes (#24, items 1 and 10): a local Dask cluster private to the run (TLS with the run's
own credentials; another uid cannot run code in it), a user's own TLS cluster, the number of workers capped
by the machine, a worker death that fails only the spectrum that kills, Dask silent under --quiet, SIGTERM as
a clean stop, and ``--backend auto`` recorded as what it resolves to."""

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
from astropy.table import Table

from conftest import FAST, MODEL, TRUTH, journal_of, simulated_batch
from ulyss_ann import UlyssAnnError, example_interpolator
from ulyss_ann.fitting.batch.driver import fit
from ulyss_ann.spectra.inputs import as_spectrum

pytest.importorskip("distributed")
# Dask's processes, credentials and signals: the same Dask in both legs, no numbers checked
pytestmark = pytest.mark.first_leg


@pytest.fixture(scope="module")
def spectra(tmp_path_factory):
    """The six spectra of tests/test_batch_integrity.py."""
    return simulated_batch(tmp_path_factory.mktemp("spectra"), TRUTH, lambda i: 10.0 * i)


def _listening_ports(pid):
    """TCP ports on which process ``pid`` and its descendants listen, but Dask's HTTP servers (read-only
    pages: health, metrics, the dashboard), which answer an HTTP request."""
    import psutil
    import socket

    def http(port):
        with socket.create_connection(("127.0.0.1", port), timeout=2) as probe:
            probe.sendall(b"GET /health HTTP/1.0\r\n\r\n")
            try:
                return probe.recv(5) == b"HTTP/"
            except OSError:  # TLS: waits for a handshake, or closes
                return False

    processes = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    ports = {c.laddr.port for p in processes for c in p.net_connections("tcp") if c.status == "LISTEN"}
    return sorted(port for port in ports if not http(port))


# ------------------------------------------------------------------ item 1: a private local cluster
def test_the_local_cluster_refuses_every_client_without_the_runs_credentials():
    from dask.distributed import Client
    from distributed.security import Security

    from ulyss_ann.fitting.batch.cluster import close_quietly, local_client, local_cluster

    cluster = local_cluster(1, quiet=True)
    client = local_client(cluster)
    try:
        address = cluster.scheduler_address
        assert address.startswith("tls://127.0.0.1:")
        assert client.submit(sum, [20, 22], pure=False).result(timeout=30) == 42  # the run's own client works
        port = address.rsplit(":", 1)[1]
        for stranger, security in ((f"tcp://127.0.0.1:{port}", None),           # no TLS at all
                                   (address, Security.temporary())):             # TLS, someone else's certificate
            started = time.perf_counter()
            with pytest.raises(Exception) as refused:
                Client(stranger, security=security, timeout=5)
            assert time.perf_counter() - started < 5, f"{stranger}: not refused at once ({refused.value})"
        # Dask's HTTP servers (plain HTTP on 127.0.0.1) tell a stranger nothing of the run without --dashboard
        import psutil
        import urllib.request

        processes = [psutil.Process(), *psutil.Process().children(recursive=True)]
        http = sorted({c.laddr.port for p in processes for c in p.net_connections("tcp") if c.status == "LISTEN"}
                      - set(_listening_ports(os.getpid())))
        assert http, "no HTTP server found: the check below would check nothing"
        for port in http:
            assert urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).status == 200
            for page in ("/info/main/workers.html", "/json/identity.json", "/metrics", "/eventstream"):
                with pytest.raises(urllib.error.HTTPError):
                    urllib.request.urlopen(f"http://127.0.0.1:{port}{page}", timeout=5)
    finally:
        close_quietly(client, cluster)
    assert not os.path.exists(cluster.ulyss_ann_scratch)  # the cluster's temporary files went with it


ATTACK = r"""
import os, signal, sys
from dask.distributed import Client
from distributed.security import Security

ports, marker = sys.argv[1].split(","), sys.argv[2]


def plant(path):
    with open(path, "w") as out:
        out.write("ran as the batch's user")


def give_up(signum, frame):  # a port that never answers (an HTTP server waiting for a request)
    raise TimeoutError()


signal.signal(signal.SIGALRM, give_up)
for port in ports:
    for address, security in ((f"tcp://127.0.0.1:{port}", None), (f"tls://127.0.0.1:{port}", Security.temporary())):
        signal.alarm(40)
        try:
            client = Client(address, security=security, timeout=3)
            client.submit(plant, marker, pure=False).result(timeout=30)  # a loaded machine: time to run
            print("RAN", address, flush=True)
        except Exception as exc:
            print("refused", address, type(exc).__name__, flush=True)
        signal.alarm(0)
os._exit(0)  # without waiting for the threads of clients left half-open
"""


SECOND_USER = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv to act as a second user (uid 65534)")
def test_another_user_cannot_run_code_through_a_running_batchs_cluster(spectra, tmp_path):
    probe = subprocess.run(SECOND_USER + [sys.executable, "-c", "import dask.distributed"], capture_output=True,
                           text=True, timeout=120, cwd="/", stdin=subprocess.DEVNULL, env=dict(os.environ, HOME="/"))
    if probe.returncode != 0:  # an interpreter under a folder closed to others (a pyenv in /root)
        pytest.skip(f"uid 65534 cannot run this Python with Dask ({(probe.stderr.strip().splitlines() or ['?'])[-1]}); "
                    "the refusal of a client without the run's credentials is tested above")
    marker = tmp_path / "planted"
    attempts = []

    def attack(link):  # called by the batch once its cluster and client are up, before any spectrum
        ports = _listening_ports(os.getpid())
        env = dict(os.environ, HOME="/nonexistent", DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="3s")
        attempts.append(subprocess.run(
            SECOND_USER + [sys.executable, "-c", ATTACK,
             ",".join(map(str, ports)), str(marker)],
            capture_output=True, text=True, timeout=240, env=env, cwd="/", stdin=subprocess.DEVNULL))

    table = fit(spectra[:2], MODEL, tmp_path / "r.ecsv", workers=1, dashboard=attack, **FAST)
    assert list(table["status"]) == ["ok", "ok"]
    (result,) = attempts
    assert result.returncode == 0, result.stderr[-3000:]
    tried = result.stdout.splitlines()
    # the scheduler, the nanny and the worker, each without TLS and with TLS of another certificate
    assert len(tried) >= 6 and all(line.startswith("refused ") for line in tried), result.stdout
    assert not marker.exists()


def test_a_tls_cluster_of_ones_own_is_used_with_dasks_tls_settings(spectra, tmp_path):
    import dask
    from dask.distributed import LocalCluster
    from distributed.security import Security

    security = Security.temporary()
    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                           security=security, protocol="tls://")
    try:
        address = cluster.scheduler_address
        assert address.startswith("tls://")
        with dask.config.set({"distributed.comm.timeouts.connect": "5s"}):
            with pytest.raises(UlyssAnnError, match=r"cannot use the Dask scheduler tls://.*TLS settings") as no_tls:
                fit(spectra[:1], MODEL, tmp_path / "a.ecsv", scheduler=address, **FAST)
        assert "\n" not in str(no_tls.value)
        # what a user puts in ~/.config/dask/*.yaml or DASK_DISTRIBUTED__COMM__TLS__* (here the PEM texts
        # themselves; file names work the same)
        settings = {"distributed.comm.require-encryption": True,
                    "distributed.comm.tls.ca-file": security.tls_ca_file,
                    "distributed.comm.tls.client.cert": security.tls_client_cert,
                    "distributed.comm.tls.client.key": security.tls_client_key}
        with dask.config.set(settings):
            table = fit(spectra[:2], MODEL, tmp_path / "b.ecsv", scheduler=address, **FAST)
    finally:
        cluster.close(timeout=30)
    assert list(table["status"]) == ["ok", "ok"]


# ------------------------------------------------------------------ item 10
def test_more_workers_than_the_machine_can_hold_are_refused_in_one_line(spectra, tmp_path):
    cores = os.cpu_count() or 1
    started = time.perf_counter()
    with pytest.raises(UlyssAnnError, match=rf"workers \(-j\) 100000: .* give at most {4 * cores}\b"):
        fit(spectra[:1], MODEL, tmp_path / "r.ecsv", workers=100000, **FAST)
    assert time.perf_counter() - started < 10 and not os.path.exists(tmp_path / "r.ecsv.journal.jsonl")


def _arrive(driver):
    """A :class:`KillsItsWorker` unpickled: anywhere but in the driver, its process ends at once."""
    if os.getpid() != driver:
        os._exit(9)  # as a segfault would
    return KillsItsWorker(driver)


class KillsItsWorker:
    """Put in a spectrum's metadata: the worker that receives the spectrum dies (the driver, whose
    scheduler unpickles tasks too, is spared). Workers import it from this module (same sys.path)."""

    def __init__(self, driver):
        self.driver = driver

    def __reduce__(self):
        return _arrive, (self.driver,)


def test_a_spectrum_that_kills_its_worker_fails_alone_and_dask_says_nothing_when_quiet(spectra, capfd, tmp_path):
    readable = [as_spectrum(path) for path in spectra[:3]]
    readable[1] = replace(readable[1], meta={**readable[1].meta, "trap": KillsItsWorker(os.getpid())})
    capfd.readouterr()
    # one native block of three; no retries: the first death gives up the block
    table = fit(readable, MODEL, tmp_path / "r.ecsv", workers=1, retries=0, **FAST)
    err = capfd.readouterr().err
    counts = journal_of(tmp_path / "r.ecsv").read().counts
    assert len(counts) == 3 and set(counts.values()) == {1}, counts  # each spectrum journalled once
    assert table["status"][0] == "ok" and table["status"][2] == "ok"  # the innocent ones, fitted again alone
    assert table["status"][1] == "failed: the worker died fitting it, 1 times (KilledWorker)"
    assert err.strip() == "", err  # progress=False (--quiet): no log line of Dask's, no traceback


@pytest.mark.gdl
@pytest.mark.parametrize("workers, whom", [("0", "driver"), ("1", "driver"), ("1", "process group")])
def test_sigterm_stops_a_batch_cleanly_and_resume_completes_it(spectra, tmp_path, workers, whom):
    """`kill PID`, or a batch system's time limit, which signals the whole process group."""
    import psutil

    out, private_tmp = tmp_path / "r.ecsv", tmp_path / "tmp"
    private_tmp.mkdir()
    command = [sys.executable, "-m", "ulyss_ann.cli", "fit", *spectra, "-m", MODEL, "-o", str(out), "--quiet",
               "--engine", "gdl", "--backend", "subprocess", "--mdegree", "8", "--guess", "Teff=4500,5500,6500",
               "--guess", "Fe/H=-2,-1"]
    env = dict(os.environ, TMPDIR=str(private_tmp))
    driver = subprocess.Popen(command + ["-j", workers], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)  # its own group
    deadline = time.time() + 120
    while time.time() < deadline and len(journal_of(out).read().rows) < 1 and driver.poll() is None:
        time.sleep(0.05)
    sessions = [child.cwd() for child in psutil.Process(driver.pid).children(recursive=True)
                if child.name() == "gdl"]
    if whom == "driver":
        os.kill(driver.pid, signal.SIGTERM)
    else:
        os.killpg(driver.pid, signal.SIGTERM)
    stdout, stderr = driver.communicate(timeout=120)
    assert driver.returncode == 143
    assert stderr.splitlines() == [f"ulyss-ann: stopped by SIGTERM: the spectra finished are in {out}.journal.jsonl; "
                                   "run the same command with --resume to go on"], stderr
    assert sessions and all(os.path.basename(s).startswith("ulyss_ann_gdl_") for s in sessions)
    assert [s for s in sessions if os.path.exists(s)] == []  # the GDL sessions' folders (/dev/shm)
    assert os.listdir(private_tmp) == []  # the engines' folders, Dask's scratch space
    assert len(journal_of(out).read().rows) < len(spectra)
    again = subprocess.run(command + ["-j", "0", "--resume"], env=env, capture_output=True, text=True, timeout=300,
                           stdin=subprocess.DEVNULL)
    assert again.returncode == 0, again.stderr
    state = journal_of(out).read()
    assert len(state.rows) == len(spectra) and set(state.counts.values()) == {1}
    assert set(Table.read(out)["status"]) == {"ok"}


def test_backend_auto_is_recorded_as_the_backend_it_resolves_to():
    from ulyss_ann.fitting.fit_options import FixedValues, make_config
    from ulyss_ann.fitting.batch.run import run_differences, run_record
    from ulyss_ann.gdl.session import resolve_backend

    interp = example_interpolator()
    fixed = FixedValues(None, interp)
    resolved = resolve_backend("auto")
    other = {"subprocess": "pygdl", "pygdl": "subprocess"}[resolved]
    record = {backend: run_record(make_config(MODEL, interp, engine="gdl", backend=backend), fixed)
              for backend in ("auto", resolved, other)}
    assert record["auto"]["backend"] == resolved  # what runs, as the engine column says
    assert run_differences(record["auto"], record[resolved]) == []
    assert run_differences(record[resolved], record["auto"]) == []
    assert run_differences(dict(record[resolved], backend="auto"), record[resolved]) == []  # an older journal's
    assert run_differences(record["auto"], record[other]) == [
        f'backend: "{resolved}" in the journal, "{other}" now']


def test_quiet_silences_every_dask_logger_with_a_level_of_its_own():
    """distributed.client has its own level and handler: lowering the parent alone let its
    'Failed to reconnect to scheduler' through --quiet."""
    import logging

    import distributed  # noqa: F401 - its loggers exist once imported

    from ulyss_ann.fitting.batch.cluster import dask_silenced

    client = logging.getLogger("distributed.client")
    assert client.level not in (logging.NOTSET, logging.CRITICAL)  # a level of its own, as Dask sets it
    before = client.level
    with dask_silenced(True):
        assert not client.isEnabledFor(logging.ERROR)
        assert not logging.getLogger("distributed.scheduler").isEnabledFor(logging.ERROR)
    assert client.level == before
