"""``lsf measure --medium`` / ``measure_lsf(..., medium=)`` (issue 26): the spectra's medium taken as given,
as ``fit`` and ``chimap`` take it, for the global fit and every chunk alike."""

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

import ulyss_ann
from conftest import cli_here
from ulyss_ann.fitting.lsf.measure import measure_lsf
from ulyss_ann.spectra.line_spread import read_lsf

STAR = Path(ulyss_ann.__file__).parent / "data" / "example_spectrum.fits"  # air, and its header says so
CHUNKS = {"width": 600.0, "step": 600.0}  # four chunks over the example's 4760-7390 Å: enough, and fast


@pytest.fixture(scope="module")
def labelled_vacuum(tmp_path_factory):
    """The example spectrum, its numbers untouched, under a header that says vacuum (AIRORVAC = 'vac'): read
    as its file says, it is converted to air (≈ 83 km/s bluer, varying with λ); taken as air, it is the original."""
    path = tmp_path_factory.mktemp("lsf_medium") / "labelled_vacuum.fits"
    with fits.open(STAR) as hdul:
        hdul[0].header["AIRORVAC"] = "vac"
        hdul.writeto(path)
    return path


def test_measure_lsf_takes_the_medium_for_the_chunks_as_for_the_global_fit(labelled_vacuum):
    original = measure_lsf(STAR, "example", **CHUNKS)
    as_air = measure_lsf(labelled_vacuum, "example", medium="air", **CHUNKS)
    assert as_air.fit.cz == pytest.approx(original.fit.cz, abs=1e-6)
    # every chunk as the original's: before, the chunks read the file's vacuum and sat ≈ −83 km/s off the fit
    assert np.allclose(as_air.table["cz"], original.table["cz"], atol=1e-6)
    assert np.allclose(as_air.table["sigma"], original.table["sigma"], atol=1e-6)
    converted = measure_lsf(labelled_vacuum, "example", **CHUNKS)  # the header's vacuum, converted to air
    assert 80 < original.fit.cz - converted.fit.cz < 86
    # the air-vacuum shift varies over the range (82.6-83.8 km/s): the chunks relative to the star differ
    assert np.max(np.abs(converted.table["cz"] - original.table["cz"])) > 0.1  # measured: 2.8 km/s


def test_lsf_measure_medium_on_the_command_line(labelled_vacuum, tmp_path):
    options = ["-m", "example", "--width", "600", "--step", "600"]
    cz = {}
    for name, spectrum, extra in (("original", STAR, []), ("converted", labelled_vacuum, []),
                                  ("as_air", labelled_vacuum, ["--medium", "air"])):
        run = cli_here("lsf", "measure", spectrum, *options, *extra, "-o", tmp_path / f"{name}.lsf")
        assert run.returncode == 0, run.stderr
        cz[name] = np.asarray(read_lsf(tmp_path / f"{name}.lsf")["cz"], float)
    assert np.array_equal(cz["as_air"], cz["original"])
    assert not np.allclose(cz["converted"], cz["original"], atol=0.1)


def test_measure_lsf_takes_the_model_medium_for_the_chunks_too(tmp_path):
    """--model-medium / model_medium= (also new to lsf measure): the chunks' model is the global fit's."""
    relabelled = tmp_path / "relabelled.fits"  # the example's air axis under a header that says vacuum
    with fits.open(Path(ulyss_ann.__file__).parent / "data" / "example_interpolator.fits") as hdul:
        hdul[0].header["CTYPE1"] = "WAVE"
        hdul.writeto(relabelled)
    original = measure_lsf(STAR, "example", **CHUNKS)
    as_air = measure_lsf(STAR, str(relabelled), model_medium="air", **CHUNKS)
    assert as_air.fit.cz == pytest.approx(original.fit.cz, abs=1e-6)
    assert np.allclose(as_air.table["cz"], original.table["cz"], atol=1e-6)  # before: the chunks ≈ +83 km/s
