"""The wavelength medium of a network (issue 26, item 1): the conversion, what files say, the authors'
files recognised, and fits that compare like with like in both engines."""

import warnings
from pathlib import Path

import numpy as np
import pytest

import ulyss_ann
from conftest import FAST, reference_file
from ulyss_ann.fitting.api import fit_spectrum
from ulyss_ann.model.checksum import file_sha256
from ulyss_ann.model.interpolator import Interpolator
from ulyss_ann.model.medium import (AIR, VACUUM, air_to_vacuum, axis_in_medium, axis_residual_kms,
                                    medium_from_header, vacuum_to_air)

STAR = Path(ulyss_ann.__file__).parent / "data" / "example_spectrum.fits"


@pytest.mark.parametrize("vacuum, air", [(6564.61, 6562.80),    # Hα (NIST; SDSS line lists)
                                         (5891.58, 5889.95),    # Na D2
                                         (5897.56, 5895.92),    # Na D1
                                         (4862.68, 4861.33)])   # Hβ (NIST)
def test_conversion_gives_published_wavelengths(vacuum, air):
    assert vacuum_to_air(vacuum) == pytest.approx(air, abs=0.01)
    assert air_to_vacuum(air) == pytest.approx(vacuum, abs=0.01)


def test_conversion_round_trip_is_exact():
    wave = np.linspace(3000.0, 11000.0, 20001)
    assert np.max(np.abs(vacuum_to_air(air_to_vacuum(wave)) - wave)) < 1e-6
    assert np.max(np.abs(air_to_vacuum(vacuum_to_air(wave)) - wave)) < 1e-6


def test_converted_axis_is_regular_to_a_tenth_of_a_km_s():
    grid = Interpolator.read("example").wavelength  # the GSL axis: 2099 px of 1.25 Å from 4762 Å
    converted = axis_in_medium(grid, VACUUM, AIR)
    assert converted.air and converted.npix == grid.npix
    assert axis_residual_kms(grid, VACUUM, AIR) < 0.08
    shift = 299792.458 * np.log(grid.wavelength / converted.wavelength)
    assert 82.0 < np.median(shift) < 84.0


@pytest.mark.parametrize("cards, medium", [({"AIRORVAC": "vac", "CTYPE1": "AWAV"}, VACUUM),
                                           ({"VACUUM": True}, VACUUM), ({"VACUUM": False, "CTYPE1": "WAVE"}, AIR),
                                           ({"CTYPE1": "WAVE-LOG"}, VACUUM), ({"CTYPE1": "AWAV"}, AIR), ({}, AIR)])
def test_header_says_the_medium(cards, medium):
    assert medium_from_header(cards)[0] == medium


@pytest.mark.parametrize("name", ["gsl_ann_trial7.fits", "gsl_ann_trial8.fits"])
def test_authors_files_are_recognised_as_vacuum(name):
    path = reference_file(name)
    before = file_sha256(path)
    with pytest.warns(UserWarning, match="recognised by its SHA-256"):
        interp = Interpolator.read(path, medium=None)
        import ulyss_ann.model.medium as medium_module
        medium_module._NOTICED.clear()  # said once per process: read again to hear it
        interp = Interpolator.read(path)
    assert interp.medium == VACUUM and "the authors' trial" in interp.medium_source
    assert interp.wavelength.air  # the header's claim is kept, and so is the file
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Interpolator.read(path, medium="air").medium_source == "override"
    assert file_sha256(path) == before


def test_bundled_example_is_air_and_can_be_overridden():
    assert Interpolator.read("example").medium == AIR
    assert Interpolator.read("example", medium="vacuum").medium == VACUUM


def _cz(engine, medium):
    options = {key: value for key, value in FAST.items() if key not in ("engine", "progress", "workers")}
    return fit_spectrum(str(STAR), "example", engine=engine, model_medium=medium, **options)


def test_native_fit_of_a_vacuum_model_shifts_cz_by_the_air_vacuum_difference():
    air, vacuum = _cz("native", None), _cz("native", "vacuum")
    assert air.model_medium.startswith("air") and vacuum.model_medium == "vacuum→air (override)"
    assert 82.5 < vacuum.cz - air.cz < 84.0


@pytest.mark.gdl
def test_gdl_engine_converts_the_axis_as_native_does():
    native, gdl = _cz("native", "vacuum"), _cz("gdl", "vacuum")
    assert gdl.model_medium == native.model_medium
    assert abs(gdl.cz - native.cz) < 0.2
