"""Survey scale: spectra fitted in lock-step blocks, compiled kernels, Dask blocks on a real multi-process cluster."""

import os
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import FAST, MODEL, TRUTH, simulated_batch
from ulyss_ann.fitting.native_engine import kernels
from ulyss_ann.fitting.core import FitConfig
from ulyss_ann.fitting.native_engine.lockstep import levenberg_marquardt
from ulyss_ann.fitting.native_engine.engine import NativeEngine
from ulyss_ann.fitting.native_engine.block import SpectralBlock
from ulyss_ann.spectra.readers import read_spectrum


@pytest.fixture(scope="module")
def spectra(tmp_path_factory):
    folder = tmp_path_factory.mktemp("survey")
    return simulated_batch(folder, TRUTH, lambda i: 40.0 * i - 100.0)


@pytest.fixture(scope="module")
def engine():
    return NativeEngine(FitConfig(model=MODEL, engine="native", mdegree=8))


@pytest.mark.skipif(not kernels.COMPILED, reason="numba not installed: the NumPy twins are the kernels")
def test_compiled_kernels_give_the_numbers_of_their_numpy_twins():
    rng = np.random.default_rng(3)
    rows, width, n = 7, 3, 301
    stack = rng.normal(size=(rows, width, n)).cumsum(axis=2)
    vel = rng.uniform(-4, 4, rows)
    sigma = np.array([0.3, 0.05, 1.0, 2.5, 0.31, 7.0, 0.1])       # below 0.1 px the kernel's σ is floored
    weights = np.where(rng.uniform(size=(rows, n)) < 0.1, 0.0, rng.uniform(0.5, 2, (rows, n)))
    f, df = np.ascontiguousarray(stack[:, 0]), np.ascontiguousarray(stack[:, 1:])
    for compiled, twin in zip(kernels.losvd(f, df, vel, sigma, 0.37, weights),
                              kernels.losvd_numpy(f, df, vel, sigma, 0.37, weights)):
        np.testing.assert_allclose(compiled, twin, rtol=1e-12, atol=1e-12 * np.abs(twin).max())
    tw, poly, resid = rng.normal(size=(3, rows, n))
    back, dt = rng.normal(size=(2, rows, width + 1, n))
    for compiled, twin in zip(kernels.products(tw, back, dt, poly, resid),
                              kernels.products_numpy(tw, back, dt, poly, resid)):
        np.testing.assert_allclose(compiled, twin, rtol=1e-10)
    # the start search's LOSVD without derivatives: losvd's t·w, bit for bit (the same sums in the same order)
    assert np.array_equal(kernels.losvd_values(f, vel, sigma, 0.37, weights),
                          kernels.losvd(f, df, vel, sigma, 0.37, weights)[1])


@pytest.mark.skipif(not kernels.COMPILED, reason="numba not installed: the NumPy twins are the kernels")
def test_the_compiled_inverse_is_numpys_and_refuses_the_matrices_numpy_refuses():
    # the polynomial's normal matrices BᵀB = Lᵀ diag(t²w²) L (degree 20), masked pixels weighing 0
    rng = np.random.default_rng(4)
    n, rows = 2069, 6
    legendre = np.polynomial.legendre.legvander(2.0 * np.arange(n) / n - 1.0, 20)
    tw = rng.uniform(0.2, 3.0, (rows, n)) * (rng.uniform(size=(rows, n)) > 0.1)
    tw[1, 1500:1600] = 0.0  # a telluric band masked
    normal = (legendre.T[None] * (tw ** 2)[:, None, :]) @ legendre
    twin = kernels.spd_inverse_numpy(normal)
    np.testing.assert_allclose(kernels.spd_inverse(normal), twin, rtol=1e-11, atol=1e-12 * np.abs(twin).max())
    # every pixel masked (a zero matrix), a matrix that is not positive: LinAlgError from both, as the engine
    # expects of a singular polynomial
    for spoil in (lambda m: m * 0.0, lambda m: -m):
        bad = normal.copy()
        bad[3] = spoil(bad[3])
        for inverse in (kernels.spd_inverse, kernels.spd_inverse_numpy):
            with pytest.raises(np.linalg.LinAlgError):
                inverse(bad)
    # a NaN is no error (as in NumPy on OpenBLAS's LAPACK): that matrix's inverse is NaN, the others' untouched
    bad = normal.copy()
    bad[3, 4, 4] = np.nan
    inverse = kernels.spd_inverse(bad)
    assert np.isnan(inverse[3]).any() and np.isfinite(np.delete(inverse, 3, axis=0)).all()
    # beyond SPD_LOOP_MAX (a high MDEGREE) the matrices are LAPACK's to invert
    legendre = np.polynomial.legendre.legvander(2.0 * np.arange(n) / n - 1.0, kernels.SPD_LOOP_MAX)
    large = (legendre.T[None] * (tw[:2] ** 2)[:, None, :]) @ legendre
    assert np.array_equal(kernels.spd_inverse(large), kernels.spd_inverse_numpy(large))


@pytest.mark.skipif(not kernels.COMPILED, reason="numba not installed: the NumPy twins are the kernels")
def test_the_compiled_sums_are_numpys_running_sums_bit_for_bit():
    """The rebinning's integral and the χ²/rms sums over the pixels of several fits: np.cumsum's additions in its
    order, every bit (a -0 first value stays -0), on values of very different sizes."""
    rng = np.random.default_rng(29)
    for n in (1, 2, 10, 2069):
        y = rng.normal(size=(n, 3)) * 10.0 ** rng.uniform(-12, 12, (n, 3))
        y[0, 1] = -0.0
        twin = np.concatenate([np.zeros((1, 3)), np.cumsum(y, axis=0)])
        got = kernels.running_sums(y)
        assert np.array_equal(got, twin) and np.array_equal(np.signbit(got), np.signbit(twin))
        values = rng.normal(size=(4, n)) * 10.0 ** rng.uniform(-12, 12, (4, n))
        assert np.array_equal(kernels.row_sums(values), np.cumsum(values, axis=1)[:, -1])


def test_the_start_searchs_chi2_is_the_fits_bit_for_bit(spectra, engine):
    # the guesses are ranked by SpectralBlock.chi2 (no Jacobian, no LOSVD derivative): the χ² evaluate gives
    # the same rows in the same call, to the last bit, or the ranking could differ from evaluate's
    stars = [read_spectrum(p) for p in spectra[:3]]
    captured = {}
    evaluate = SpectralBlock.evaluate

    def keep(self, thetas, owners):
        captured.setdefault("block", (self, thetas.copy(), owners.copy()))
        return evaluate(self, thetas, owners)

    SpectralBlock.evaluate = keep
    try:
        engine.fit_many(stars)
    finally:
        SpectralBlock.evaluate = evaluate
    block, thetas, owners = captured["block"]
    assert thetas.shape[1] == 5  # v, σ, Teff, log g, [Fe/H]
    # rows of every kernel width (evaluate sorts them by it, and chi2 must take the same chunks), 13 of them
    # (a short last chunk): BLAS may sum a row otherwise beside other rows (the previous chi2, whose chunks
    # followed the rows' order, differed here in 10 of 10 random sets)
    for seed in range(3):
        rng = np.random.default_rng(seed)
        thetas = np.column_stack([rng.uniform(-3, 3, 13), rng.uniform(0.5, 3, 13), rng.uniform(5000, 6000, 13),
                                  np.full(13, 3.0), rng.uniform(-1.5, -1, 13)])
        owners = rng.integers(0, 3, 13)
        assert np.array_equal(block.chi2(thetas, owners), block.evaluate(thetas, owners)[0])


@pytest.mark.skipif(not kernels.COMPILED, reason="numba not installed: the NumPy twins are the kernels")
def test_the_first_fit_says_it_compiles_and_a_cached_installation_says_nothing(spectra, engine, tmp_path):
    # an empty cache (a fresh installation): the notice names where the kernels will be kept
    probe = ("from ulyss_ann.fitting.native_engine import kernels; print(kernels.compilation_notice())")
    fresh = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)})
    assert fresh.returncode == 0, fresh.stderr
    assert "compiling the native engine's kernels" in fresh.stdout and str(tmp_path) in fresh.stdout
    # here, once a block has been fitted, the kernels are in numba's cache: no notice
    engine.fit(read_spectrum(spectra[0]))
    assert kernels.compilation_notice() is None


def test_a_quiet_batch_does_not_announce_the_compilation(spectra, tmp_path, monkeypatch):
    # --quiet (progress=False) says nothing unasked, a first compile's notice included, while the batch runs;
    # after it a fit that compiles says so again
    probe = ("from ulyss_ann.fitting.native_engine import kernels\nimport sys\n"
             "from ulyss_ann.fitting.native_engine.notice import hushed\n"
             "if sys.argv[1:] == ['hushed']:\n    with hushed():\n        kernels.announce_compilation()\n"
             "    print('after', file=sys.stderr)\nkernels.announce_compilation()")
    for args, said in (([], 1), (["hushed"], 1)):
        fresh = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=120,
                               env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)})
        notices = fresh.stderr.count("compiling the native engine's kernels")
        assert fresh.returncode == 0 and notices == said, fresh
        if args:  # the hushed one said nothing; the one after it did
            assert fresh.stderr.index("after") < fresh.stderr.index("compiling the native engine's kernels")
    # a process that only rebins (the GPU path: the spline is its one compiled kernel) is told once, when the
    # spline compiles, not each time for the kernels it never uses
    rebin = ("import numpy as np\nfrom ulyss_ann.fitting.native_engine.numerics import natural_spline\n"
             "natural_spline(np.arange(5.0), np.arange(5.0) ** 2, np.arange(3.0) + 0.5)")
    cache = tmp_path / "rebin-only"
    for said in (1, 0):
        done = subprocess.run([sys.executable, "-c", rebin], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "NUMBA_CACHE_DIR": str(cache)})
        assert done.returncode == 0 and done.stderr.count("compiling the native engine's kernels") == said, done
    entered = []
    import contextlib

    import ulyss_ann

    @contextlib.contextmanager
    def noted():
        entered.append("in")
        yield
        entered.append("out")

    monkeypatch.setattr(NativeEngine, "hushed", classmethod(lambda cls: noted()))
    for progress in (True, False):
        table = ulyss_ann.fit(spectra[:1], model=MODEL, output=None, workers=0, progress=progress, engine="native",
                              mdegree=8)
        assert list(table["status"]) == ["ok"]
    assert entered == ["in", "out"]  # the quiet batch only, and it ended
    # hushing loads no numba: a quiet resume with nothing left to fit stays light (~55 MB less)
    output = tmp_path / "done.ecsv"
    options = dict(model=MODEL, workers=0, progress=False, engine="native", mdegree=8)
    monkeypatch.undo()
    ulyss_ann.fit(spectra[:1], output=output, **options)
    resume = ("import sys, ulyss_ann\n"
              f"ulyss_ann.fit({spectra[:1]!r}, output={str(output)!r}, resume=True, **{options!r})\n"
              "print('numba' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", resume], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.split() == ["False"], done


def test_a_block_gives_each_spectrum_its_own_fit(spectra, engine, tmp_path):
    """Spectra fitted together, one of them on another grid, one unfittable: each row is its fit alone."""
    stars = [read_spectrum(p) for p in spectra]
    other = stars[2]
    cut = other.wavelength > other.wavelength[40]     # a grid of its own: a block of one
    from ulyss_ann.spectra.spectrum import Spectrum
    stars[2] = Spectrum.from_arrays(other.wavelength[cut], other.flux[cut], other.error[cut], meta=dict(other.meta))
    flat = Spectrum.from_arrays(other.wavelength, np.ones_like(other.flux), other.error, meta={"id": "flat"})
    together = engine.fit_many(stars + [flat])
    assert isinstance(together[-1], Exception) and "no signal" in str(together[-1])
    for star, joint in zip(stars, together):
        alone = engine.fit(star)
        for name in ("Teff", "Logg", "Fe/H"):
            assert joint.params[name] == pytest.approx(alone.params[name], rel=1e-10, abs=1e-10)
            assert joint.errors[name] == pytest.approx(alone.errors[name], rel=1e-8)
        # χ² is computed from the float32 best fit (uly_fit's): parameters equal to 1e-14 (a block's
        # batched sums round otherwise in NumPy 2) can move it in float32's last places (7e-9 seen)
        assert joint.cz == pytest.approx(alone.cz, abs=1e-8) and joint.chi2 == pytest.approx(alone.chi2, rel=1e-7)
        assert joint.best_guess == alone.best_guess


def test_guesses_that_meet_stop_early_and_change_nothing(spectra, engine):
    """The paper's 6 guesses: merging those that reach one point saves rounds, and every answer stays."""
    stars = [read_spectrum(p) for p in spectra]
    prepared = [engine.preparation.prepare(s) for s in stars]
    spec, layer, voff, _ = engine.rebinned_observation(prepared[0])
    specs = [engine.rebinned_observation(p)[0] for p in prepared]
    data = np.array([s.data for s in specs])
    weights = np.array([np.where(s.good, 1 / s.err, 0.0) for s in specs])
    free = np.ones(5, bool)
    block = SpectralBlock(engine, layer, data, weights, 8, voff, "sampled", free)
    step = spec.step
    lower = np.r_[-20.0, 0.3, engine.limits[:, 0]]
    upper = np.r_[20.0, np.log(1 + 1000 / 299792.458) / step, engine.limits[:, 1]]
    starts, owners = [], []
    for k in range(len(specs)):
        for teff in (5000.0, 5500.0, 6000.0):
            for feh in (-1.0, -1.5):
                starts.append([0.0, 1.0, teff, 3.0, feh])
                owners.append(k)
    starts, owners = np.array(starts), np.array(owners)
    merged = levenberg_marquardt(block.evaluate, starts, owners, lower, upper, free)
    separate = levenberg_marquardt(block.evaluate, starts, owners, lower, upper, free, same=0)
    assert merged.rounds.sum() < separate.rounds.sum()
    for k in range(len(specs)):
        mine = owners == k
        best_m, best_s = np.argmin(merged.cost[mine]), np.argmin(separate.cost[mine])
        diff = np.abs(merged.theta[mine][best_m] - separate.theta[mine][best_s])
        error = separate.error[mine][best_s]
        # σ of these spectra (no broadening beyond the network's) sits on its 0.3 px floor, where the
        # error is 0 by convention: there both answers must be on the floor, and equally good
        pegged = error == 0
        assert np.all((diff <= 0.1 * error + 1e-9) | pegged), (k, diff, error)
        assert np.all(diff[pegged] <= 1e-3) and merged.cost[mine][best_m] <= separate.cost[mine][best_s] * (1 + 1e-6)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: the ``dask`` command of this environment (the venv's, else the PATH's)
DASK = shutil.which("dask", path=os.path.dirname(sys.executable)) or shutil.which("dask")


@pytest.mark.first_leg  # machinery: a Dask scheduler and workers of one's own, the same Dask in both legs
@pytest.mark.skipif(DASK is None, reason="the dask command is not installed")
def test_a_batch_runs_on_a_real_multi_process_cluster(spectra, tmp_path):
    """`dask scheduler` and two `dask worker` processes on localhost: the batch through --scheduler, in blocks."""
    from dask.distributed import Client

    from ulyss_ann.fitting.batch.driver import fit

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    log = open(tmp_path / "cluster.log", "w")
    processes = [subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                   "--dashboard-address", ":0"], stdout=log, stderr=log)]
    try:
        time.sleep(2)
        # none of the thread settings of ./scripts/test's environment: the nanny's own must show below
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                                "OPENBLAS_NUM_THREADS")}
        processes += [subprocess.Popen([DASK, "worker", address, "--nthreads", "1", "--nworkers", "1",
                                        "--name", f"w{i}", "--local-directory", str(tmp_path / f"w{i}")],
                                       stdout=log, stderr=log, env=env) for i in range(2)]
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
            # no thread oversubscription: each worker's BLAS has one thread (the nanny sets it)
            threads = client.run(lambda: os.environ.get("OPENBLAS_NUM_THREADS"))
            assert sorted(threads.values()) == ["1", "1"], threads
        table = fit(spectra, MODEL, tmp_path / "r.ecsv", scheduler=address, **FAST)
        assert list(table["status"]) == ["ok"] * len(spectra)
        alone = fit(spectra, MODEL, tmp_path / "serial.ecsv", workers=0, **FAST)
        np.testing.assert_allclose(np.asarray(table["Teff"]), np.asarray(alone["Teff"]), rtol=1e-10)
    finally:
        for process in processes[::-1]:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()


def _worker_state():
    import dask

    return (os.environ.get("OPENBLAS_NUM_THREADS"), os.environ.get("MALLOC_TRIM_THRESHOLD_"),
            os.environ.get("MALLOC_MMAP_THRESHOLD_"), dask.config.get("distributed.worker.profile.enabled"))


def test_the_local_clusters_workers_get_the_batchs_settings(monkeypatch):
    """What the batch's settings say reaches the spawned workers: one BLAS thread, glibc keeping freed
    memory (not Dask's MALLOC_TRIM_THRESHOLD_=65536), no sampling profiler."""
    # Dask lets a variable already in the environment win over its config (a user's own setting does);
    # an earlier in-process cluster of the suite can leave Dask's default there, so start from none
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MALLOC_TRIM_THRESHOLD_",
                 "MALLOC_MMAP_THRESHOLD_"):
        monkeypatch.delenv(name, raising=False)
    import dask
    import logging
    from dask.distributed import Client, LocalCluster

    from ulyss_ann.fitting.batch.cluster import dask_settings

    with dask.config.set(dask_settings(2)):
        with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                          silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
            states = list(client.run(_worker_state).values())
    assert states == [("1", str(1 << 30), str(1 << 25), False)]


def test_complete_columns_are_written_unmasked_and_missing_values_masked():
    """Masked columns only where a value is missing (astropy writes masked ECSV columns item by item)."""
    from ulyss_ann.fitting.table import rows_to_table

    rows = [{"id": "a", "file": "a.fits", "ra": 1.0, "Teff": 5000.0, "n_guess": 6, "status": "ok"},
            {"id": "b", "file": "b.fits", "ra": None, "Teff": 5100.0, "n_guess": None, "status": "error: x"}]
    table = rows_to_table(rows, [("Teff", "K")])
    assert not hasattr(table["Teff"], "mask") and list(table["Teff"]) == [5000.0, 5100.0]
    assert list(table["ra"].mask) == [False, True] and list(table["n_guess"].mask) == [False, True]
    assert table["Teff"].unit == "K"


def test_log_rebinning_flux_error_and_mask_together_is_rebinning_each():
    """One spline for data, variance and mask gives each one's own rebinning, bit for bit."""
    from ulyss_ann.fitting.native_engine.numerics import log_rebin, xrebin

    rng = np.random.default_rng(4)
    n, start, step = 900, 4800.0, 1.25
    flux, err = 1 + 0.1 * rng.normal(size=n), rng.uniform(0.01, 0.02, n)
    good = rng.uniform(size=n) > 0.05
    spec, _ = log_rebin(flux, err, good, 0, start, step)
    borders = start + (np.arange(n + 1) - 0.5) * step                  # the linear pixels' edges [Å]
    edges = np.exp(spec.start + (np.arange(spec.npix + 1) - 0.5) * spec.step)
    flat = np.exp(spec.start + np.arange(spec.npix) * spec.step) * spec.step / step
    assert np.array_equal(spec.data, xrebin(borders, flux, edges) / flat)
    assert np.array_equal(spec.good, np.abs(xrebin(borders, good.astype(float), edges) / flat - 1) < 0.1)
    variance = xrebin(borders, err ** 2, edges)
    variance = np.maximum(variance, np.min(err[good]) ** 2 * n / spec.npix)
    assert np.array_equal(spec.err, np.sqrt(variance) / flat)
