"""Figures: library code never touches pyplot or the backend, and the paper's figure functions
return Figures with what they should draw.

Two checks of "never touches the backend": a static one (no module under ulyss_ann/ calls
``matplotlib.use`` or imports ``matplotlib.pyplot``) and a run-time one (the paper's figure
functions leave a backend chosen beforehand, and ``sys.modules``, as they found them).
"""

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure

from ulyss_ann.paper.cluster_report import (plot_comparison, plot_distributions, plot_feh_trend, plot_fit_zooms,
                                            read_saved_fit, save_fit_figure)
from ulyss_ann.paper.ngc6397 import injected_feh
from ulyss_ann.paper.selfinversion import plot_precision_vs_mse, plot_selfinversion_maps

PACKAGE = Path(__file__).resolve().parents[1] / "ulyss_ann"
MODULES = sorted(PACKAGE.rglob("*.py"))


# ---------------------------------------------------------------- static scan

def backend_offences(source):
    """(line, what) of each place a module imports matplotlib.pyplot or calls matplotlib.use.

    Follows aliases: ``import matplotlib as mpl; mpl.use(...)``, ``from matplotlib import use``,
    ``from matplotlib import pyplot``, and ``importlib.import_module("matplotlib.pyplot")``.
    """
    tree = ast.parse(source)
    module_names, use_names, found = {"matplotlib"}, set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "matplotlib.pyplot" or alias.name.startswith("matplotlib.pyplot."):
                    found.append((node.lineno, f"import {alias.name}"))
                elif alias.name == "matplotlib" and alias.asname:
                    module_names.add(alias.asname)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "matplotlib.pyplot" or node.module.startswith("matplotlib.pyplot."):
                found.append((node.lineno, f"from {node.module} import ..."))
            elif node.module == "matplotlib":
                for alias in node.names:
                    if alias.name == "pyplot":
                        found.append((node.lineno, "from matplotlib import pyplot"))
                    elif alias.name == "use":
                        use_names.add(alias.asname or "use")
                        found.append((node.lineno, "from matplotlib import use"))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if (isinstance(func, ast.Attribute) and func.attr == "use" and isinstance(func.value, ast.Name)
                and func.value.id in module_names):
            found.append((node.lineno, f"{func.value.id}.use(...)"))
        elif isinstance(func, ast.Name) and func.id in use_names:
            found.append((node.lineno, f"{func.id}(...) (matplotlib.use)"))
        elif any(isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                 and arg.value.startswith("matplotlib.pyplot") for arg in node.args):
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "?")
            if name in ("import_module", "__import__"):
                found.append((node.lineno, f'{name}("matplotlib.pyplot")'))
    return sorted(found)


@pytest.mark.parametrize("snippet, expected", [
    ("import matplotlib\nmatplotlib.use('Agg')\n", ["matplotlib.use(...)"]),
    ("def f():\n    import matplotlib.pyplot as plt\n    return plt\n", ["import matplotlib.pyplot"]),
    ("from matplotlib import pyplot\n", ["from matplotlib import pyplot"]),
    ("from matplotlib.pyplot import subplots\n", ["from matplotlib.pyplot import ..."]),
    ("import matplotlib as mpl\nmpl.use('pdf')\n", ["mpl.use(...)"]),
    ("from matplotlib import use as u\nu('svg')\n", ["from matplotlib import use", "u(...) (matplotlib.use)"]),
    ("import importlib\nplt = importlib.import_module('matplotlib.pyplot')\n", ['import_module("matplotlib.pyplot")']),
    # allowed: the object API, and unrelated .use() calls
    ("from matplotlib.figure import Figure\nimport matplotlib.colors\nFigure()\n", []),
    ("import matplotlib\nx = matplotlib.get_backend()\nstyle.use('x')\nthing.use()\n", []),
])
def test_the_scan_finds_what_it_should(snippet, expected):
    """The scan itself: it must catch each way of touching pyplot or the backend, and nothing else."""
    assert [what for _, what in backend_offences(snippet)] == expected


def test_the_scan_covers_the_package():
    names = {p.relative_to(PACKAGE).as_posix() for p in MODULES}
    assert {"figures.py", "paper/selfinversion.py", "paper/cluster_report.py", "fitting/result_figure.py",
            "training/keras_recipe.py", "cli/main.py"} <= names


@pytest.mark.parametrize("path", MODULES, ids=[p.relative_to(PACKAGE).as_posix() for p in MODULES])
def test_no_module_touches_pyplot_or_the_backend(path):
    offences = backend_offences(path.read_text(encoding="utf-8"))
    assert not offences, f"{path.relative_to(PACKAGE.parent)}: " + "; ".join(
        f"line {line}: {what}" for line, what in offences)


# ---------------------------------------------------------------- the paper's figures, small data

@pytest.fixture
def foreign_backend():
    """A backend other than Agg chosen beforehand (what a notebook or an application would have):
    the figure functions must leave it as it is."""
    before = matplotlib.rcParams._get("backend")      # as set, without resolving an automatic choice
    matplotlib.use("svg", force=True)
    assert matplotlib.get_backend().lower() == "svg"
    yield "svg"
    matplotlib.use(before, force=True)


def _results(n=60, seed=3):
    """A results table of ulyss-ann fit: 30 stars seen twice, the paper's trend plus noise, one failed fit."""
    rng = np.random.default_rng(seed)
    teff = rng.uniform(4600, 6400, n)
    logg = np.where(teff > 6200, 4.5, np.where(teff > 6000, 4.0, 3.5))     # dwarfs above 6200 K
    rows = [(f"ngc6397id{k // 2 + 1:09d}jd{2456865 + k % 2}p1000f000", "ok", "", t, 30.0, g, 0.0,
             injected_feh(t) + rng.normal(0, 0.05), 0.05, rng.normal(18, 3), 265.2, -53.7)
            for k, (t, g) in enumerate(zip(teff, logg))]
    rows[-1] = rows[-1][:1] + ("error: no convergence", "") + (np.nan,) * 9
    return Table(rows=rows, names=("id", "status", "flag", "Teff", "e_Teff", "Logg", "e_Logg", "Fe/H", "e_Fe/H",
                                   "cz", "ra", "dec"))


def _offsets(ax):
    return [c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)]


def test_selfinversion_maps(foreign_backend):
    rng = np.random.default_rng(0)
    actual = np.column_stack([rng.uniform(3500, 8000, 50), rng.uniform(0, 6, 50), rng.uniform(-2.5, 0, 50)])
    residual = rng.normal(0, [10, 0.05, 0.03], (50, 3))
    fig = plot_selfinversion_maps(actual, residual, ["Teff", "Logg", "Fe/H"], "/some/where/net7.fits",
                                  surrogate=True)
    assert isinstance(fig, Figure)
    panels = [ax for ax in fig.axes if _offsets(ax)]
    assert len(panels) == 12 and len(fig.axes) == 15          # 4 [Fe/H] bins x 3 maps, and 3 colour bars
    for k in range(3):                                        # a parameter's column holds every node once
        offsets = np.vstack([_offsets(ax)[0] for ax in panels[k::3]])
        values = np.concatenate([ax.collections[0].get_array() for ax in panels[k::3]])
        order = np.lexsort(offsets.T)
        np.testing.assert_allclose(offsets[order], actual[np.lexsort(actual[:, :2].T), :2])   # at (Teff, log g)
        np.testing.assert_allclose(values[order], residual[np.lexsort(actual[:, :2].T), k])
    for ax in panels:
        assert ax.get_xlim()[0] > ax.get_xlim()[1] and ax.get_ylim()[0] > ax.get_ylim()[1]   # HR-diagram way
    assert fig.get_suptitle() == "self-inversion of net7.fits on the SURROGATE grid"
    assert matplotlib.get_backend().lower() == foreign_backend


def test_precision_vs_mse(foreign_backend):
    points = [("trial 7", 8.12e-6, [16.9, 16.4, 9.8]), ("trial 8", 4.77e-6, [14.0, 12.4, 6.8]),
              ("ours", 2e-5, [30.0, 20.0, 12.0])]
    fig = plot_precision_vs_mse(points, title="Fig. 3 here")
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_title() == "Fig. 3 here"
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["T$_{eff}$", "log g", "[Fe/H]"]
    for k, line in enumerate(lines):        # one point per network, at (MSE, precision of parameter k)
        np.testing.assert_allclose(line.get_xdata(), [p[1] for p in points])
        np.testing.assert_allclose(line.get_ydata(), [p[2][k] for p in points])
    assert sorted(t.get_text() for t in ax.texts) == ["ours", "trial 7", "trial 8"]
    with pytest.raises(TypeError):          # the old (points, path) call must not pass silently
        plot_precision_vs_mse(points, "fig3.png")
    assert matplotlib.get_backend().lower() == foreign_backend


def test_distributions(foreign_backend):
    results = _results()
    fig = plot_distributions(results, "a test")
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    for ax, name in zip(fig.axes, ("Teff", "Logg", "Fe/H", "cz")):
        assert len(ax.patches) == 30        # histogram bars of the 59 fitted spectra
        assert sum(p.get_height() for p in ax.patches) == 59, name
    assert [ax.get_xlabel() for ax in fig.axes] == ["Teff (K)", "log g (dex)", "[Fe/H] (dex)", "cz (km/s)"]
    assert fig.get_suptitle() == "NGC 6397: parameters of 59 spectra (a test)"
    assert matplotlib.get_backend().lower() == foreign_backend


def test_comparison(foreign_backend):
    results = _results()
    truth = Table([results["id"], results["Teff"] + 10, results["Fe/H"] - 0.02], names=("id", "Teff", "Fe/H"))
    fig = plot_comparison(results, truth, "a test", "truth")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    ok = np.isfinite(results["Teff"])
    for ax, name, offset, text in zip(fig.axes, ("Teff", "Fe/H"), (10, -0.02),
                                      ("= 10 ± 0 K\n59 spectra", "= -0.020 ± 0.000 dex\n59 spectra")):
        (points,) = _offsets(ax)
        np.testing.assert_allclose(points[:, 1], results[name][ok])
        np.testing.assert_allclose(points[:, 0], results[name][ok] + offset)
        assert text in ax.texts[0].get_text() and "truth − this work" in ax.texts[0].get_text()
    assert matplotlib.get_backend().lower() == foreign_backend


def test_feh_trend(foreign_backend):
    results = _results()
    fig = plot_feh_trend(results, "a test", truth=injected_feh)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    ok = np.isfinite(results["Teff"])
    (points,) = _offsets(ax)
    giants = np.asarray(results["Logg"][ok]) < 4.2
    assert 0 < len(points) == giants.sum() < ok.sum()
    lines = {line.get_label(): line for line in ax.get_lines()}
    trend = lines["injected trend (simulation)"]
    np.testing.assert_allclose(trend.get_ydata(), injected_feh(trend.get_xdata()))
    bins = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert len(bins) == 1 and len(bins[0].get_xdata()) >= 5            # the 250 K bins with stars
    assert np.all(np.diff(bins[0].get_xdata()) >= 250) and set(np.asarray(bins[0].get_xdata()) % 250) == {125}
    assert len(ax.get_legend().get_texts()) == 3
    without = plot_feh_trend(results, "a test")                        # no truth: no injected-trend line
    assert "injected trend (simulation)" not in [line.get_label() for line in without.axes[0].get_lines()]
    assert matplotlib.get_backend().lower() == foreign_backend


def _fit_file(path):
    """A ``<id>_fit.fits`` as ``fit --save-fits`` writes it: flux, BESTFIT, MASK on a ln-λ grid."""
    ln_start, ln_step, npix = np.log(4800.0), 1.25 / 5800, 1600
    wave = np.exp(ln_start + ln_step * np.arange(npix))
    best = 1 - 0.4 * sum(np.exp(-0.5 * ((wave - c) / 2.0) ** 2) for c in (4861.3, 5175.0, 6562.8))
    flux = best + np.random.default_rng(1).normal(0, 0.01, npix)
    mask = np.ones(npix, np.uint8)
    mask[300:340] = 0
    header = fits.Header({"CRVAL1": ln_start, "CDELT1": ln_step, "CRPIX1": 1})
    fits.HDUList([fits.PrimaryHDU(flux, header=header), fits.ImageHDU(best, header=header, name="BESTFIT"),
                  fits.ImageHDU(mask, header=header, name="MASK")]).writeto(path)
    return wave, flux, best, mask.astype(bool)


def test_fit_with_zooms(tmp_path, foreign_backend):
    wave, flux, best, mask = _fit_file(tmp_path / "star_fit.fits")
    read = read_saved_fit(tmp_path / "star_fit.fits")
    np.testing.assert_allclose(read[0], wave)
    assert np.array_equal(read[3], mask) and np.allclose(read[1], flux) and np.allclose(read[2], best)
    fig = plot_fit_zooms(*read, "star")
    assert isinstance(fig, Figure) and len(fig.axes) == 5             # fit, residuals, Hβ, Mg b, Hα
    top, res, *zooms = fig.axes
    assert [line.get_label() for line in top.get_lines()][:2] == ["observed", "best fit (network × polynomial, LOSVD)"]
    assert top.get_title().startswith("star — residual rms ")
    residual = res.get_lines()[0].get_ydata()
    assert np.isnan(residual[300:340]).all() and np.allclose(residual[~np.isnan(residual)], (flux - best)[mask])
    assert [ax.get_title() for ax in zooms] == ["Hβ", "Mg b", "Hα"]
    for ax, centre in zip(zooms, (4861.3, 5175.0, 6562.8)):
        x = ax.get_lines()[0].get_xdata()
        assert x.size > 10 and abs(x.mean() - centre) < 5
    out = save_fit_figure(tmp_path / "star_fit.fits", tmp_path / "fig4.png", "star")
    assert Path(out).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.get_backend().lower() == foreign_backend


def test_figure_argument_is_reused():
    """``figure=``: the caller's Figure is cleared and drawn into, and returned."""
    mine = Figure()
    mine.subplots(3, 3)
    fig = plot_distributions(_results(), "a test", figure=mine)
    assert fig is mine and len(mine.axes) == 4


def test_no_pyplot_at_run_time(tmp_path):
    """In a fresh interpreter with a backend of its own, drawing every paper figure and writing the
    report imports no pyplot and leaves the backend alone."""
    script = textwrap.dedent(f"""
        import sys
        import matplotlib
        matplotlib.use("svg")
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import numpy as np
        from test_figures import _results, _fit_file
        from ulyss_ann.paper import cluster_report as cr, selfinversion as si
        from ulyss_ann.paper.ngc6397 import injected_feh
        results = _results()
        results.write({str(tmp_path / "r.ecsv")!r})
        figures = [cr.plot_distributions(results, "x"), cr.plot_comparison(results, results, "x", "y"),
                   cr.plot_feh_trend(results, "x", injected_feh),
                   cr.plot_fit_zooms(*_fit_file({str(tmp_path / "s_fit.fits")!r}), "x"),
                   si.plot_selfinversion_maps(np.ones((3, 3)), np.zeros((3, 3)), ["Teff", "Logg", "Fe/H"], "m"),
                   si.plot_precision_vs_mse([("a", 1e-5, [1, 2, 3])])]
        cr.make_report({str(tmp_path / "r.ecsv")!r}, {str(tmp_path / "report")!r},
                       fit_files=[{str(tmp_path / "s_fit.fits")!r}])
        print(matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules, len(figures))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["svg", "False", "6"]
    assert {"fig5_distributions.png", "fig7_feh_trend.png", "fig4_s.png"} <= {
        p.name for p in (tmp_path / "report").iterdir()}
