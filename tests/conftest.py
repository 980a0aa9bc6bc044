"""Shared fixtures: small networks written by the tests, and the authors' files when present."""

import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pytest

import ulyss_ann
from ulyss_ann import Interpolator, Parameter, WavelengthGrid
from ulyss_ann.fitting.batch.journal import Journal
from ulyss_ann.gdl.ulyss_location import find_ulyss
from ulyss_ann.spectra.examples import example_interpolator_path

PROJECT = Path(__file__).resolve().parents[1]
SHARED = PROJECT.parent / "shared"
REFERENCE = SHARED / "data" / "reference"

# The wheel leg of scripts/test must test the installed wheel, never this checkout's sources.
if os.environ.get("ULYSS_ANN_TEST_WHEEL") and Path(ulyss_ann.__file__).resolve().is_relative_to(PROJECT / "ulyss_ann"):
    pytest.exit(f"ULYSS_ANN_TEST_WHEEL is set but ulyss_ann was imported from {ulyss_ann.__file__} "
                "(run pytest with python -P)", returncode=3)

# Keras 3 on torch (jax needs NumPy 2, which python3-gdl refuses; see ulyss_ann.training.keras_recipe).
os.environ.setdefault("KERAS_BACKEND", "torch")

# GDL tests use the real ULySS: ULYSS_DIR when set, else the copy beside the project.
if not os.environ.get("ULYSS_DIR") and (SHARED / "ulyss" / "pgm" / "ulyss.pro").is_file():
    os.environ["ULYSS_DIR"] = str(SHARED / "ulyss")


# What GDL tests need, said once: the markers `ulyss`, `gdl` and `pygdl` (registered in setup.cfg)
# become a skip with the reason where it is missing (a user's clone has neither ULySS nor ../shared).
@cache
def ulyss_missing():
    """Why ULySS's files are not here, or None when they are."""
    return None if find_ulyss() else "ULySS not found (set ULYSS_DIR; see ulyss_ann.gdl.ulyss_location)"


@cache
def gdl_command_missing():
    """Why the ``gdl`` command is not here, or None when it is."""
    return None if shutil.which("gdl") else "gdl not installed (./scripts/setup installs it: apt-get install " \
                                             "gnudatalanguage)"


def gdl_missing():
    """Why the ``gdl`` command with ULySS cannot run here, or None when it can."""
    return gdl_command_missing() or ulyss_missing()


@cache
def pygdl_missing():
    """Why in-process GDL (``import GDL``) with ULySS cannot run here, or None when it can."""
    from ulyss_ann.gdl.session import pygdl_available

    if gdl_missing():
        return gdl_missing()
    return None if pygdl_available() else "import GDL unavailable (python3-gdl: CPython 3.11, NumPy 1.x)"


HAVE_GDL = gdl_missing() is None


def _missing(item):
    """Why ``item``'s GDL or ULySS markers cannot be honoured here, or None."""
    if item.get_closest_marker("pygdl"):
        return pygdl_missing()
    gdl = item.get_closest_marker("gdl")
    if gdl:  # @pytest.mark.gdl(ulyss=False): the gdl command alone
        return gdl_missing() if gdl.kwargs.get("ulyss", True) else gdl_command_missing()
    return ulyss_missing() if item.get_closest_marker("ulyss") else None


# The wheel leg of ./scripts/test (ULYSS_ANN_TEST_WHEEL: Python 3.13, NumPy 2, the newest astropy,
# the installed wheel) runs what can differ there; a test marked `first_leg` checks machinery that
# none of that changes and runs in the first leg only (docs/development.md says which and why).
# ULYSS_ANN_TEST_EVERY_LEG=1 runs them in the wheel leg too.
WHEEL_LEG = bool(os.environ.get("ULYSS_ANN_TEST_WHEEL"))


def pytest_collection_modifyitems(config, items):
    for item in items:
        reason = _missing(item)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))
    if WHEEL_LEG and not os.environ.get("ULYSS_ANN_TEST_EVERY_LEG"):
        first_leg = [item for item in items if item.get_closest_marker("first_leg")]
        if first_leg:
            config.hook.pytest_deselected(items=first_leg)
            items[:] = [item for item in items if not item.get_closest_marker("first_leg")]


def reference_file(name):
    """Path of one of the authors' files, or skip the test saying why."""
    path = REFERENCE / name
    if not path.is_file():
        pytest.skip(f"{path} not found: the authors' reference files live in ../shared/data/reference "
                    "beside the project (absent from a user's clone)")
    return path


def make_network(hidden=(5, 7), activations=None, npar=3, npix=40, seed=0, wavelength=None, meta=(), nodes=None):
    """A random interpolator with the given hidden widths (weights of order 1)."""
    rng = np.random.default_rng(seed)
    widths = [npar, *hidden, npix]
    weights = [rng.normal(0, 1.0 / np.sqrt(a), (a + 1, b)) for a, b in zip(widths[:-1], widths[1:])]
    if activations is None:
        activations = ["logistic"] * len(hidden) + ["linear"]
    names = ["Teff", "Logg", "Fe/H", "Alpha/Fe", "Vmic"][:npar]
    units = ["K", "dex", "dex", "dex", "km/s"][:npar]
    lows = [3500.0, 0.0, -3.0, -0.2, 0.5][:npar]
    highs = [8000.0, 6.0, 0.0, 0.6, 3.0][:npar]
    parameters = [Parameter(n, u, lo, hi, (hi - lo) / 1000, (lo + hi) / 2, (hi - lo) / 4)
                  for n, u, lo, hi in zip(names, units, lows, highs)]
    if wavelength is None:
        wavelength = WavelengthGrid(npix, 4762.23779296875, 1.25)
    return Interpolator(parameters, weights, activations, wavelength, meta, nodes=nodes)


def random_params(interp, n, seed=1):
    """n parameter vectors drawn uniformly inside the interpolator's bounds."""
    rng = np.random.default_rng(seed)
    low = np.array([p.low for p in interp.parameters])
    high = np.array([p.high for p in interp.parameters])
    return low + (high - low) * rng.random((n, interp.npar))


@pytest.fixture
def network_file(tmp_path):
    """A small valid interpolator file written by the test, and its Interpolator."""
    interp = make_network()
    path = tmp_path / "small.fits"
    interp.write(path)
    return path, interp


def example_grid(n=300, seed=0):
    """A small surrogate-style grid: the bundled example network at ``n`` random parameters."""
    from ulyss_ann import example_interpolator
    from ulyss_ann.spectra.grid import SpectralGrid

    interp = example_interpolator()
    rng = np.random.default_rng(seed)
    params = np.column_stack([rng.uniform(4000, 7000, n), rng.uniform(0.5, 5, n), rng.uniform(-2.5, -0.5, n)])
    return SpectralGrid(interp.evaluate(params), params, interp.names, [p.unit for p in interp.parameters],
                        interp.wavelength, (("SURROGAT", True, "test grid from the example network"),))


def simulated_batch(folder, truth, velocity, truth_cards=False):
    """MUSE-like spectra simulated from the bundled example network (S/N 100, FWHM 2 Å), one per
    (Teff, log g, [Fe/H]) of ``truth``, at ``velocity(i)`` km/s, written as ``folder/sim000.fits``…;
    the truth in SIM_* header cards when ``truth_cards``. Returns their paths."""
    from ulyss_ann import example_interpolator
    from ulyss_ann.spectra.simulate import simulate_spectrum, write_muse_spectrum

    interp = example_interpolator()
    paths = []
    for i, (teff, logg, feh) in enumerate(truth):
        wave, flux, sigma = simulate_spectrum(interp, [teff, logg, feh], velocity=velocity(i), fwhm=2.0,
                                              snr=100.0, rng=i, continuum=(1.0, 0.1 * (i % 3), -0.05))
        path = folder / f"sim{i:03d}.fits"
        cards = {"SIM_TEFF": teff, "SIM_LOGG": logg, "SIM_FEH": feh} if truth_cards else None
        write_muse_spectrum(path, wave, flux, sigma, truth=cards)
        paths.append(str(path))
    return paths


# The batch-integrity tests (test_batch_integrity.py, test_batch_failures.py): the native engine
# from one guess with a low-degree polynomial (fast), the six spectra's truth, and their tools.
MODEL = example_interpolator_path()
FAST = dict(guesses={"Teff": [5400.0], "Logg": [3.0], "Fe/H": [-1.5]}, mdegree=8, progress=False,
            engine="native")
LOGG_FIXED = dict(FAST, guesses={"Teff": [5400.0], "Fe/H": [-1.5]})  # a fixed parameter takes no guesses
CLI_FAST = ["--engine", "native", "--guess", "Teff=5400", "--guess", "Logg=3", "--guess", "Fe/H=-1.5",
            "--mdegree", "8", "--quiet"]
TRUTH = [(5200.0, 2.8, -1.8), (5600.0, 3.6, -1.2), (5900.0, 4.0, -2.0), (5000.0, 2.2, -1.5),
         (5400.0, 3.2, -1.0), (5700.0, 3.9, -1.7)]


def cli_here(*args, cwd=None):
    """``ulyss-ann ARGS…`` run by its ``main`` in this process: a CompletedProcess as :func:`cli` gives.

    For the many checks of what a command says (one-line errors, help, tables written): the same
    code from argument parsing to exit status, without a new interpreter's start and imports (about
    2 s each, hundreds of times over the two legs). A defect that would print a traceback raises here
    instead, which fails the test as surely. What needs a process of its own (the installed entry
    point, the environment, stdin, signals, Dask workers) keeps :func:`cli`.
    """
    import contextlib
    import io
    import warnings

    from ulyss_ann.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    argv = [str(a) for a in args]
    with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            contextlib.chdir(cwd or os.getcwd()):
        # a fresh interpreter's filters (Python's defaults), not pytest's: a user never sees the lines those add
        warnings.resetwarnings()
        warnings.filterwarnings("default", category=DeprecationWarning, module="__main__", append=True)
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.filterwarnings("ignore", category=category, append=True)
        try:
            status = main(argv)
        except SystemExit as exc:  # argparse's own errors and --help
            status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    return subprocess.CompletedProcess(["ulyss-ann", *argv], status, out.getvalue(), err.getvalue())


def cli(*args, timeout=300, **kwargs):
    """``ulyss-ann ARGS…`` in a new Python process (stdin closed), its output captured."""
    return subprocess.run([sys.executable, "-m", "ulyss_ann.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, **kwargs)


def install_plugin(folder, monkeypatch, module, source, group, entries):
    """An installed package as ``importlib.metadata`` sees it, in ``folder`` (put on sys.path): the module
    ``module`` of ``source`` and a dist-info declaring ``entries`` (lines ``name = module:Class``) in the
    entry-point ``group``. Nothing is pip-installed: the test's folder holds it all, gone with it."""
    import textwrap

    (Path(folder) / f"{module}.py").write_text(textwrap.dedent(source))
    info = Path(folder) / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n" + "".join(f"{line}\n" for line in entries))
    monkeypatch.syspath_prepend(str(folder))


def warnings_said(action):
    """The warnings ``action()`` gives, each as its list of lines (every one, even one said before)."""
    import warnings

    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        action()
    return [str(w.message).splitlines() for w in said]


def can_mount_tmpfs():
    """True where a user namespace may mount a tiny tmpfs (``unshare -rm``): a real full disk for a test."""
    import shutil

    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0


def journal_of(out):
    """The journal of the batch whose table is ``out``."""
    return Journal(f"{out}.journal.jsonl")


def assert_varpro_derivatives(net, theta, star_weights=None):
    """The fast recipe's JᵀJ and Jᵀr (``net.normal_equations``) equal those of a finite-difference
    Kaufman Jacobian of the residual (rows scaled by √w with ``star_weights``), and Kaufman's
    gradient is the exact gradient of the projected cost (VarPro theory). Returns
    ``(cost, data, residual, res, hidden_output, a)`` for the caller's own checks."""
    import numpy as np

    (cost, data), gram, grad = net.normal_equations(theta)
    layers, q_top, q_bot, a, res, res_bot = net.project(theta)
    root = 1.0 if star_weights is None else np.sqrt(star_weights)[:, None]
    q = np.vstack([q_top, q_bot])
    projector = np.eye(len(q)) - q @ q.T

    def model_at_fixed_a(t):  # √w H(θ) A, stacked with the (θ-independent) ridge rows
        return np.vstack([root * (net.hidden_outputs(t)[-1] @ a), np.zeros((len(q_bot), a.shape[1]))])

    eps = 1e-6
    jac = np.column_stack([-(projector @ (model_at_fixed_a(theta + d) - model_at_fixed_a(theta - d))).ravel()
                           / (2 * eps) for d in np.eye(len(theta)) * eps])
    residual = np.vstack([res, res_bot]).ravel()
    np.testing.assert_allclose(gram, jac.T @ jac, atol=1e-7 * np.abs(gram).max())
    np.testing.assert_allclose(grad, -jac.T @ residual, atol=1e-6 * np.abs(grad).max())
    numeric = [(net.cost(theta + d)[0] - net.cost(theta - d)[0]) / (2 * eps) for d in np.eye(len(theta)) * eps]
    np.testing.assert_allclose(-2 * grad, numeric, atol=1e-6 * np.abs(numeric).max())
    return cost, data, residual, res, layers[-1], a


@pytest.fixture(autouse=True)
def no_cluster_kept_between_tests():
    """Each test starts without the session's kept Dask cluster (a test of its own checks the keeping):
    a cluster one test left, with its settings and workers' state, is no other test's."""
    yield
    import sys as _sys

    session = _sys.modules.get("ulyss_ann.fitting.batch.session_cluster")
    if session is not None:
        session.close_cluster()
