"""Self-inversion precision (Eq. 6) and the ULySS .res reader."""

import subprocess
import sys

import numpy as np
import pytest

from conftest import reference_file
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
    result = subprocess.run([sys.executable, "-m", "ulyss_ann.cli", "selfinv", "--res",
                             str(reference_file("selfinversion_trial7.res")), "--nodes",
                             str(reference_file("gsl_nodes.txt"))], capture_output=True, text=True, timeout=120)
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
