"""Self-inversion precision (Eq. 6) and the ULySS .res reader."""

import numpy as np
import pytest

from conftest import cli_here, reference_file
from ulyss_ann import UlyssAnnError
from ulyss_ann.paper.selfinversion import mesh_steps, precision, read_res, selfinversion_from_res

RES = """!BEGIN   ULYSS solut file (header section)
!SOL_VERS=                    2 /ULySS solut file format version
!END
!cols:chisq snr  cmp1_weight cmp1_Teff     cmp1_e_Teff     cmp1_Fe/H
!unts: - K dex
       1.5000000       100.0   1.0   5010.0000       3.0000000      -1.0100000
!BEGIN   ULYSS solut file (header section)
!END
!cols:chisq snr  cmp1_weight cmp1_Teff     cmp1_e_Teff     cmp1_Fe/H
!unts: - K dex
       1.2000000       90.0   1.0   4980.0000       2.0000000      -0.9800000
"""


def test_eq6_and_mesh_steps():
    assert precision([[1.0, 0.0], [3.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]).tolist() == [np.sqrt(5.0), 0.0]
    nodes = [[3500, -3.0], [3600, -2.0], [3700, -1.5], [3900, -1.0]]
    np.testing.assert_allclose(mesh_steps(nodes), [400 / 3, 2.0 / 3])


def test_read_res_blocks(tmp_path):
    (tmp_path / "a.res").write_text(RES)
    table = read_res(tmp_path / "a.res")
    assert table.colnames == ["chisq", "snr", "weight", "Teff", "e_Teff", "Fe/H"]
    np.testing.assert_allclose(table["Teff"], [5010.0, 4980.0])
    (tmp_path / "b.res").write_text(RES.replace("-0.9800000", "-0.98 7"))
    with pytest.raises(UlyssAnnError, match="b.res, line 11: 7 values for 6 columns"):
        read_res(tmp_path / "b.res")
    (tmp_path / "c.res").write_text("1 2 3\n")
    with pytest.raises(UlyssAnnError, match="before any '!cols:' line"):
        read_res(tmp_path / "c.res")


@pytest.mark.parametrize("trial, expected", [(7, (19.0, 0.082, 0.059)), (8, (15.7, 0.062, 0.041))])
def test_authors_selfinversion_gives_the_published_precision(trial, expected):
    result = selfinversion_from_res(reference_file(f"selfinversion_trial{trial}.res"),
                                    reference_file("gsl_nodes.txt"))
    assert result["n"] == 2908
    teff, logg, feh = result["absolute"]
    assert (round(teff, 1), round(logg, 3), round(feh, 3)) == expected  # as the paper quotes them
    np.testing.assert_allclose(result["mesh"], [112.5, 0.5, 0.6])


def test_cli_selfinv():
    result = cli_here("selfinv", "--res", reference_file("selfinversion_trial7.res"), "--nodes",
                      reference_file("gsl_nodes.txt"))
    assert result.returncode == 0, result.stderr
    assert "19.0 K" in result.stdout and "0.082 dex" in result.stdout and "0.059 dex" in result.stdout


def test_selfinversion_of_a_network_on_its_own_spectra(tmp_path):
    """Fitting a network's own noise-free spectra gives its nodes back (the fit range keeps voff at 0)."""
    from ulyss_ann import example_interpolator
    from ulyss_ann.spectra.examples import example_interpolator_path
    from ulyss_ann.paper.selfinversion import selfinversion_from_grid
    from ulyss_ann.spectra.grid import SpectralGrid

    interp = example_interpolator()
    params = np.array([[4800.0, 2.0, -1.2], [5300.0, 3.5, -1.8], [5900.0, 4.0, -0.8], [6200.0, 4.2, -2.0]])
    grid = SpectralGrid(interp.evaluate(params), params, interp.names, [p.unit for p in interp.parameters],
                        interp.wavelength, (("SURROGAT", True, "test"),))
    result = selfinversion_from_grid(grid, example_interpolator_path(), str(tmp_path), engine="native", workers=0,
                                     progress=False)
    assert result["n"] == 4 and result["failed"] == 0 and result["engine"] == "native"
    assert result["absolute"][0] < 3.0 and result["absolute"][1] < 0.01 and result["absolute"][2] < 0.005
    assert (tmp_path / "selfinv_maps.png").stat().st_size > 10000


def _points(ax):
    from matplotlib.collections import PathCollection

    (points,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    return points


def _maps(fig):
    """The map panels of a figure, row by row (not the colour bars)."""
    from matplotlib.collections import PathCollection

    return [ax for ax in fig.axes if any(isinstance(c, PathCollection) for c in ax.collections)]


def test_each_feh_layer_of_the_map_is_its_own_row():
    """On one panel the [Fe/H] layers of a grid sit at the same (Teff, log g) and hide each other."""
    from ulyss_ann.paper.selfinversion import plot_selfinversion_maps

    teff, logg = np.meshgrid([4000.0, 5000.0, 6000.0], [1.0, 3.0])
    layer = np.column_stack([teff.ravel(), logg.ravel()])
    feh = (-2.0, -1.0, 0.0)
    actual = np.vstack([np.column_stack([layer, np.full(len(layer), f)]) for f in feh])
    residual = np.random.default_rng(1).normal(0, [20, 0.1, 0.05], actual.shape)
    fig = plot_selfinversion_maps(actual, residual, ["Teff", "Logg", "Fe/H"], "net.fits")
    maps = _maps(fig)
    assert len(maps) == 9                                     # 3 layers x 3 parameters (+ 3 colour bars)
    for k in range(3):                                        # one column per parameter
        column = maps[k::3]
        for row, f in enumerate(feh):
            points = _points(column[row])
            mine = actual[:, 2] == f
            np.testing.assert_array_equal(points.get_offsets(), actual[mine, :2])   # this layer's nodes only
            np.testing.assert_array_equal(points.get_array(), residual[mine, k])
            assert column[row].get_title().startswith(f"Fe/H = {f:+.2f}")
        assert len({_points(ax).get_clim() for ax in column}) == 1                 # one colour scale per parameter


def test_an_irregular_grid_is_cut_into_bins_that_hold_every_node_once():
    from ulyss_ann.paper.selfinversion import IRREGULAR_LAYERS, plot_selfinversion_maps

    rng = np.random.default_rng(2)
    actual = np.column_stack([rng.uniform(3500, 8000, 60), rng.uniform(0, 6, 60), rng.uniform(-2.5, 0, 60)])
    fig = plot_selfinversion_maps(actual, rng.normal(0, [10, 0.05, 0.03], (60, 3)), ["Teff", "Logg", "Fe/H"], "m")
    first_column = _maps(fig)[::3]
    assert len(first_column) == IRREGULAR_LAYERS
    shown = np.vstack([_points(ax).get_offsets() for ax in first_column])
    assert sorted(map(tuple, shown)) == sorted(map(tuple, actual[:, :2]))


def test_an_irregular_grid_with_repeated_values_is_split_into_layers_of_about_equal_counts():
    from ulyss_ann.paper.selfinversion import IRREGULAR_LAYERS, node_layers

    # MILES-like: most stars near solar [Fe/H] at repeated values, a sparse metal-poor tail
    feh = np.concatenate([np.round(np.linspace(-2.5, -1.1, 15), 2), np.repeat(np.round(np.linspace(-0.5, 0.4, 20), 2), 9)])
    layers = node_layers(feh)
    counts = [np.count_nonzero((feh >= lo) & ((feh <= hi) if k == len(layers) - 1 else (feh < hi)))
              for k, (lo, hi) in enumerate(layers)]
    assert sum(counts) == len(feh) and len(layers) <= IRREGULAR_LAYERS
    assert min(counts) >= 0.15 * len(feh), counts   # quantiles of the distinct values: 9, 24, 81, 81
