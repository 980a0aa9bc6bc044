"""Reading and writing the perceptron FITS format: round trips, WCS, and the bad-file matrix."""

import filecmp
import os

import numpy as np
import pytest
from astropy.io import fits

from conftest import make_network, reference_file
from ulyss_ann import Interpolator, InterpolatorFileError, WavelengthGrid


@pytest.mark.parametrize("kwargs", [
    dict(hidden=(5, 7)),
    dict(hidden=(4,), activations=["tanh", "linear"], npar=4),
    dict(hidden=(3, 4, 5), activations=["relu", "tanh", "logistic", "logistic"],
         wavelength=WavelengthGrid(40, np.log(3600.0), 2e-5, 1.0, log=True, air=False)),
    dict(hidden=(6,), meta=[("SURROGAT", True, "test"), ("HISTORY", "made by a test", "")]),
    # the training record of train --export: strings, integers, and floats to the 15 digits it keeps
    dict(hidden=(3, 4), meta=[("RECIPE", "fast", "training recipe"), ("SEED", 7, "seed"), ("STEP", 12, "step"),
                              ("TRAINMSE", 1.23456789012346e-05, "MSE"), ("HOLDMSE", 0.00165537835803476, "MSE")]),
    dict(hidden=(5,), nodes=[[5000.0, 2.0, -1.0], [5100.0, 2.5, -1.5]]),
])
def test_write_read_is_bit_exact(tmp_path, kwargs):
    interp = make_network(**kwargs)
    path = tmp_path / "net.fits"
    interp.write(path)
    back = Interpolator.read(path)
    assert back == interp
    for a, b in zip(back.weights, interp.weights):
        assert a.tobytes() == b.tobytes()
    assert back.parameters == interp.parameters and back.meta == interp.meta
    np.testing.assert_array_equal(back.wavelength.wavelength, interp.wavelength.wavelength)
    back.write(tmp_path / "again.fits")
    assert filecmp.cmp(path, tmp_path / "again.fits", shallow=False)


def test_nodes_table_and_distance(tmp_path):
    grid = np.array([[t, g, z] for t in (5000.0, 5100.0, 5200.0) for g in (2.0, 2.5) for z in (-1.0, -0.5)])
    interp = make_network(nodes=grid[1:])  # node (5000, 2.0, -1.0) missing: a hole
    interp.write(tmp_path / "n.fits")
    back = Interpolator.read(tmp_path / "n.fits")
    np.testing.assert_array_equal(back.nodes, grid[1:])
    np.testing.assert_array_equal(back.mesh_steps, [100.0, 0.5, 0.5])
    # d = (distance to the nearest node, in steps) / (median, over the 4 nearest nodes, of
    # their distance to their 6th nearest node): on this 3x2x2 block every node is on its
    # surface, 6th neighbours at √2 (√3 at the corners next to the hole)
    assert back.node_distance([5100.0, 2.5, -0.5]) == 0.0
    assert back.node_distance([5150.0, 2.25, -0.75]) == pytest.approx(np.sqrt(0.75) / np.sqrt(2))  # mid-cell
    assert back.node_distance([5000.0, 2.0, -1.0]) == pytest.approx(1.0 / np.sqrt(3))  # one missing node
    assert back.node_distance([5600.0, 2.0, -1.0]) == pytest.approx(4.0 / np.sqrt(2))  # 4 steps beyond the edge
    with fits.open(tmp_path / "n.fits") as hdul:  # a NODES table lacking a parameter is refused
        hdul["NODES"] = fits.BinTableHDU.from_columns(hdul["NODES"].columns[:2], name="NODES")
        hdul.writeto(tmp_path / "bad.fits")
    with pytest.raises(InterpolatorFileError, match="HDU NODES: no column for Fe/H"):
        Interpolator.read(tmp_path / "bad.fits")


def test_write_refuses_to_overwrite(tmp_path):
    interp = make_network()
    interp.write(tmp_path / "a.fits")
    with pytest.raises(InterpolatorFileError, match="a.fits"):
        interp.write(tmp_path / "a.fits")
    interp.write(tmp_path / "a.fits", overwrite=True)


@pytest.mark.parametrize("trial", [7, 8])
def test_authors_files_rewrite_byte_identical(tmp_path, trial):
    path = reference_file(f"gsl_ann_trial{trial}.fits")
    interp = Interpolator.read(path)
    assert interp.names == ("Teff", "Logg", "Fe/H")
    assert [p.unit for p in interp.parameters] == ["K", "dex", "dex"]
    assert interp.activations == ("logistic", "logistic", "linear")
    assert interp.wavelength == WavelengthGrid(2099, 4762.23779296875, 1.25, 1.0, log=False, air=True)
    interp.write(tmp_path / "copy.fits")
    assert filecmp.cmp(path, tmp_path / "copy.fits", shallow=False)
    assert Interpolator.read(tmp_path / "copy.fits") == interp


def _header(**cards):
    h = fits.Header()
    h["NAXIS"] = 1
    h["NAXIS1"] = 5
    for k, v in cards.items():
        h[k] = v
    return h


def test_wavelength_linear_log_and_standards():
    lin = WavelengthGrid.from_header(_header(CTYPE1="AWAV", CRVAL1=5000.0, CDELT1=2.0, CRPIX1=2))
    np.testing.assert_allclose(lin.wavelength, [4998.0, 5000, 5002, 5004, 5006])
    assert lin.air and not lin.log
    # ULySS convention: CRVAL1/CDELT1 in ln(Angstrom).
    ulyss_log = WavelengthGrid.from_header(_header(CTYPE1="WAVE-LOG", CRVAL1=np.log(5000.0), CDELT1=1e-4))
    np.testing.assert_allclose(ulyss_log.wavelength, 5000.0 * np.exp(1e-4 * np.arange(5)), rtol=1e-14)
    assert ulyss_log.log and not ulyss_log.air
    assert ulyss_log.velocity_step == pytest.approx(29.9792458)
    # FITS standard (Greisen et al. 2006): lambda = CRVAL1 exp(w / CRVAL1), through astropy.
    std_log = WavelengthGrid.from_header(_header(CTYPE1="AWAV-LOG", CRVAL1=5000.0, CDELT1=0.5))
    np.testing.assert_allclose(std_log.wavelength, 5000.0 * np.exp(0.5 * np.arange(5) / 5000.0), rtol=1e-13)
    # No CTYPE1 (MILES): ULySS's heuristic, Angstrom above 9, ln below.
    miles = WavelengthGrid.from_header(_header(CRVAL1=3540.5, CDELT1=0.9))
    np.testing.assert_allclose(miles.wavelength, 3540.5 + 0.9 * np.arange(5))
    with pytest.raises(ValueError, match="CTYPE1 = 'FREQ'"):
        WavelengthGrid.from_header(_header(CTYPE1="FREQ", CRVAL1=1.0, CDELT1=1.0))


def test_log_grid_header_round_trip():
    grid = WavelengthGrid(5, np.log(4800.0), 5e-5, 1.0, log=True, air=True)
    header = _header()
    for key, value, comment in grid.header_cards():
        header[key] = (value, comment)
    assert WavelengthGrid.from_header(header) == grid


# ---------------------------------------------------------------- the bad-file matrix

def _edit(path, hdu, **changes):
    """Rewrite ``path`` with header keywords changed (None deletes) in HDU ``hdu``."""
    with fits.open(path) as hdul:
        for key, value in changes.items():
            if value is None:
                del hdul[hdu].header[key]
            else:
                hdul[hdu].header[key] = value
        hdul.writeto(path, overwrite=True)


def _bad_weights(path, hdu, array):
    with fits.open(path) as hdul:
        header = hdul[hdu].header.copy()
        del header["NAXIS*"]
        cls = fits.PrimaryHDU if hdu == 0 else fits.ImageHDU
        hdul[hdu] = cls(array, header=header)
        hdul.writeto(path, overwrite=True)


def _nan_weights(path):
    with fits.open(path) as hdul:
        data = hdul[1].data.copy()
        data[2, 3] = np.nan
        _bad_weights(path, 1, data)


BAD_FILES = {
    "missing": (lambda p: p.unlink(), "no such file"),
    "not FITS": (lambda p: p.write_text("Teff Logg Fe/H\n5000 2 -1.5\n" * 200), "not a FITS file"),
    "empty": (lambda p: p.write_bytes(b""), "not a FITS file"),
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[:6000]), "truncated"),
    "directory": (lambda p: (p.unlink(), p.mkdir()), "is a directory"),
    "wrong version": (lambda p: _edit(p, 0, I_VERSIO="0.0.2"), r"HDU 0 \(TERM_WEIGHTS\): I_VERSIO = '0.0.2'"),
    "missing version": (lambda p: _edit(p, 0, I_VERSIO=None), "missing keyword I_VERSIO"),
    "missing scaling": (lambda p: _edit(p, 0, I_PR_S2=None), r"HDU 0 \(TERM_WEIGHTS\): missing keyword I_PR_S2"),
    "missing hlayer": (lambda p: _edit(p, 0, I_HLAYER=None), "missing keyword I_HLAYER"),
    "missing wcs": (lambda p: _edit(p, 0, CRVAL1=None), "HDU 0: missing keyword CRVAL1"),
    "text bound": (lambda p: _edit(p, 0, I_P_LB1="low"), "I_P_LB1 = 'low', expected a finite number"),
    "zero scale": (lambda p: _edit(p, 0, I_PR_S1=0.0), "I_PR_S1 = 0"),
    "unknown activation": (lambda p: _edit(p, 1, I_AFUNC="softplus"),
                           r"HDU 1 \(HIDDEN_LAYER_2\): I_AFUNC = 'softplus' is not a known activation"),
    "hlayer mismatch": (lambda p: _edit(p, 0, I_HLAYER=3), "I_HLAYER = 3 announces 4 layers, the file holds 3"),
    "duplicate layer": (lambda p: _edit(p, 2, I_LAYER=2), "I_LAYER = 2 repeats HDU 1"),
    "shape mismatch": (lambda p: _bad_weights(p, 1, np.ones((9, 7))),
                       r"HDU 1 \(HIDDEN_LAYER_2\): weight array has 9 rows .*expected 6"),
    "NaN weights": (_nan_weights, r"HDU 1 \(HIDDEN_LAYER_2\): 1 weights are NaN or infinite"),
    "unknown postprocessing": (lambda p: _edit(p, 0, I_POSTPR="exp"), "I_POSTPR = 'exp'"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_gives_one_clear_error(network_file, case):
    path, _ = network_file
    spoil, message = BAD_FILES[case]
    spoil(path)
    with pytest.raises(InterpolatorFileError, match=message) as info:
        Interpolator.read(path)
    text = str(info.value)
    assert text.startswith(str(path)) and "\n" not in text


def test_extra_hdus_are_ignored(network_file):
    """A table HDU after the layers that the reader does not know does not disturb it."""
    path, interp = network_file
    with fits.open(path) as hdul:
        nodes = fits.BinTableHDU.from_columns([fits.Column("Teff", "D", array=np.array([5000.0]))],
                                              name="PROVENANCE")
        hdul.append(nodes)
        hdul.writeto(path, overwrite=True)
    assert Interpolator.read(path) == interp


def test_reading_leaves_no_file_open(network_file):
    path, _ = network_file
    Interpolator.read(path)
    fd_dir = "/proc/self/fd"
    targets = {os.path.realpath(os.path.join(fd_dir, fd)) for fd in os.listdir(fd_dir)}
    assert str(path) not in targets
