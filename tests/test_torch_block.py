"""The native engine's GPU path (torch): the CPU path's numbers, run here on the CPU (``device="torch-cpu"``)."""

import numpy as np
import pytest

from conftest import MODEL, TRUTH, simulated_batch
from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.fitting.batch.driver import fit
from ulyss_ann.fitting.core import FitConfig
from ulyss_ann.fitting.native_engine.engine import NativeEngine
from ulyss_ann.fitting.native_engine.block import SpectralBlock
from ulyss_ann.spectra.readers import read_spectrum

torch = pytest.importorskip("torch")
from ulyss_ann.fitting.native_engine.torch_block import TorchSpectralBlock  # noqa: E402


@pytest.fixture(scope="module")
def stars(tmp_path_factory):
    folder = tmp_path_factory.mktemp("torch")
    return [read_spectrum(p) for p in simulated_batch(folder, TRUTH, lambda i: 40.0 * i - 100.0)]


@pytest.mark.parametrize("free, voff", [
    ([True, True, True, False, True], None),        # log g held: a Jacobian of 4 columns; the data's own offset
    ([True, True, False, False, False], 1.7),       # every network parameter held (F' = 0); the model shifted
    ([True, True, True, True, True], -3.2),
])
def test_the_torch_block_evaluates_what_the_numpy_block_does(stars, free, voff):
    engine = NativeEngine(FitConfig(model=MODEL, engine="native", mdegree=8, device="cpu"))
    specs, layers, voffs = zip(*[engine.rebinned_observation(engine.preparation.prepare(s))[:3] for s in stars[:3]])
    data = np.array([s.data for s in specs])
    weights = np.array([np.where(s.good, 1 / s.err, 0.0) for s in specs])
    free = np.array(free)
    voffs = voffs if voff is None else [voff]
    rng = np.random.default_rng(1)
    rows = 11                                                           # kernels from 0.05 px (floored) to ~12 px wide
    thetas = np.column_stack([rng.uniform(-3, 3, rows), np.r_[0.05, 0.3, rng.uniform(0.3, 2.5, rows - 2)],
                              rng.uniform(4600, 6400, rows), np.full(rows, 3.0), rng.uniform(-2.3, -0.5, rows)])
    owners = rng.integers(0, 3, rows)
    expected = SpectralBlock(engine, layers[0], data, weights, 8, voffs[0], "sampled", free).evaluate(thetas, owners)
    block = TorchSpectralBlock(engine, layers[0], data, weights, 8, voffs[0], "sampled", free, torch.device("cpu"))
    cost, grad, jtj, bestfit = block.evaluate(thetas, owners)
    np.testing.assert_allclose(cost, expected[0], rtol=1e-10)
    np.testing.assert_allclose(grad, expected[1], rtol=1e-8, atol=1e-8 * np.abs(expected[1]).max())
    np.testing.assert_allclose(jtj, expected[2], rtol=1e-8, atol=1e-10 * np.abs(expected[2]).max())
    # float32 best fits: equal, or one float32 rounding step apart where the float64 values straddle it
    np.testing.assert_allclose(block.host(bestfit), expected[3], rtol=np.finfo(np.float32).eps, atol=0)


def test_fits_on_the_torch_path_are_the_cpu_fits(stars):
    cpu = NativeEngine(FitConfig(model=MODEL, engine="native", mdegree=8, device="cpu"))
    gpu_code = NativeEngine(FitConfig(model=MODEL, engine="native", mdegree=8, device="torch-cpu"))
    assert gpu_code.device is not None and cpu.device is None
    for a, b in zip(cpu.fit_many(stars), gpu_code.fit_many(stars)):
        for name in ("Teff", "Logg", "Fe/H"):
            assert b.params[name] == pytest.approx(a.params[name], rel=1e-9)
            assert b.errors[name] == pytest.approx(a.errors[name], rel=1e-6)
        assert b.cz == pytest.approx(a.cz, abs=1e-6) and b.best_guess == a.best_guess
        np.testing.assert_allclose(b.bestfit, a.bestfit, rtol=np.finfo(np.float32).eps, atol=0)


@pytest.mark.parametrize("device, message", [
    ("gpu", "device \\(--device\\) 'gpu': choose auto, cpu, cuda, cuda:N or torch-cpu"),
    ("cuda:x", "choose auto, cpu, cuda, cuda:N or torch-cpu"),
])
def test_a_bad_device_is_refused_before_any_fit(stars, tmp_path, device, message):
    with pytest.raises(UlyssAnnError, match=message):
        fit([stars[0]], MODEL, tmp_path / "r.ecsv", engine="native", device=device, progress=False)
    assert not (tmp_path / "r.ecsv").exists()


def test_the_gpu_is_the_native_engines(stars, tmp_path):
    with pytest.raises(UlyssAnnError, match="the native engine's; ULySS in GDL runs on the CPU"):
        fit([stars[0]], MODEL, tmp_path / "r.ecsv", engine="gdl", device="cuda", progress=False)
    with pytest.raises(UlyssAnnError, match="sampled LOSVD only"):
        fit([stars[0]], MODEL, tmp_path / "r.ecsv", engine="native", losvd="analytic", device="cuda", progress=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_says_so_in_one_line(stars, tmp_path):
    with pytest.raises(UlyssAnnError, match="torch sees no GPU here .*; use cpu"):
        fit([stars[0]], MODEL, tmp_path / "r.ecsv", engine="native", device="cuda", progress=False, workers=0)
    assert not (tmp_path / "r.ecsv").exists()


def test_a_gpu_device_without_torch_says_how_to_get_it(monkeypatch):
    from ulyss_ann.fitting.native_engine.torch_block import torch_device

    monkeypatch.setitem(__import__("sys").modules, "torch", None)   # as if torch were not installed
    with pytest.raises(ValueError, match="device \\(--device\\) 'cuda' needs torch.*pip install torch"):
        torch_device("cuda")
    assert torch_device("auto") is None and torch_device("cpu") is None


def test_engine_auto_with_a_gpu_device_is_the_native_engine():
    from ulyss_ann.fitting.engines import resolve_engine

    assert resolve_engine("auto", device="cuda", remote=True) == "native"
    assert resolve_engine("auto", device="torch-cpu", remote=True) == "native"


def test_batch_tasks_fill_the_gpu_block():
    from ulyss_ann.fitting.native_engine.lockstep import BLOCK_SPECTRA
    from ulyss_ann.fitting.batch.tasks import task_blocks
    from ulyss_ann.fitting.native_engine.torch_block import GPU_BLOCK_SPECTRA

    tasks = list(range(300))
    on_gpu = task_blocks(tasks, FitConfig(model=MODEL, engine="native", device="torch-cpu"), 1)
    on_cpu = task_blocks(tasks, FitConfig(model=MODEL, engine="native", device="cpu"), 1)
    assert [len(b) for b in on_gpu] == [min(300, GPU_BLOCK_SPECTRA)]
    assert max(len(b) for b in on_cpu) == BLOCK_SPECTRA and sum(map(len, on_cpu)) == 300


def test_the_command_line_refuses_a_bad_device(stars, tmp_path):
    from conftest import cli_here

    result = cli_here("fit", stars[0].meta["file"], "--engine", "native", "--device", "gpu", "-o", tmp_path / "r.ecsv")
    assert result.returncode == 2 and "device (--device) 'gpu': choose auto, cpu, cuda" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "r.ecsv").exists()
