"""A fit whose unmasked pixels cover too little of the network is an error or flagged, never a plain ok (#26).

Coverage: the fraction of the network's wavelength range that the fitted, unmasked pixels
cover (docs/fitting.md, "Coverage"). Below MIN_COVERAGE no fit (an ``error:`` row, a
UlyssAnnError from fit_spectrum); below LOW_COVERAGE the flag ``low-coverage``. The check
sits in the preparation both engines share, so the GDL engine says the same.
"""


import numpy as np
import pytest

from ulyss_ann import fit_spectrum
from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.fitting.batch.driver import fit
from ulyss_ann.fitting.core import FitConfig
from ulyss_ann.fitting.preparation import MIN_COVERAGE, FitPreparation
from ulyss_ann.fitting.quality import LOW_COVERAGE, LOW_COVERAGE_FLAG
from ulyss_ann.model.interpolator import Interpolator
from ulyss_ann.spectra.examples import example_interpolator_path, example_spectrum_path
from ulyss_ann.spectra.inputs import as_spectrum

from conftest import FAST

MODEL = example_interpolator_path()
ONE_GUESS = {"Teff": [5400.0], "Logg": [3.0], "Fe/H": [-1.5]}


def network_range():
    wave = Interpolator.read(MODEL).wavelength.wavelength
    return wave[0], wave[-1]


def relabelled_star(first):
    """The bundled example star with its wavelengths relabelled to start at ``first`` Å (same step)."""
    star = as_spectrum(example_spectrum_path())
    wave = np.asarray(star.wavelength, float)
    error = None if star.error is None else np.asarray(star.error, float)
    return (wave - wave[0] + first, np.asarray(star.flux, float), error)


def test_a_star_relabelled_to_barely_overlap_is_an_error_not_ok():
    lo, hi = network_range()
    wave, flux, error = relabelled_star(hi - 0.03 * (hi - lo))   # ~3 % of the network left
    with pytest.raises(UlyssAnnError, match=r"coverage \d\.\d %.*fit a spectrum or --range that overlaps"):
        fit_spectrum((wave, flux, error), MODEL, engine="native", guesses=ONE_GUESS, mdegree=8)


def test_the_batch_row_of_a_barely_overlapping_star_is_an_error_row(tmp_path):
    lo, hi = network_range()
    wave, flux, error = relabelled_star(hi - 0.03 * (hi - lo))
    table = fit([(wave, flux, error)], MODEL, output=str(tmp_path / "r.ecsv"), workers=0, **FAST)
    assert str(table["status"][0]).startswith("error: coverage")


def test_a_partly_covering_star_is_flagged_with_its_coverage():
    lo, hi = network_range()
    wave, flux, error = relabelled_star(lo + 0.6 * (hi - lo))   # the network's last 40 %
    result = fit_spectrum((wave, flux, error), MODEL, engine="native", guesses=ONE_GUESS, mdegree=8)
    assert 0.2 < result.coverage < LOW_COVERAGE   # 40 % less the telluric bands
    assert LOW_COVERAGE_FLAG in result.flags and LOW_COVERAGE_FLAG in result.row()["flag"]
    assert result.row()["coverage"] == result.coverage and result.to_table()["coverage"][0] == result.coverage


def test_the_whole_star_is_not_flagged():
    result = fit_spectrum(example_spectrum_path(), MODEL, engine="native", guesses=ONE_GUESS, mdegree=8)
    assert result.coverage > 0.95 and LOW_COVERAGE_FLAG not in result.flags


@pytest.mark.parametrize("fraction, refused", [(MIN_COVERAGE - 0.003, True), (MIN_COVERAGE + 0.003, False)])
def test_the_threshold_is_where_it_is_said(fraction, refused):
    """A window of the bundled star just below / just above MIN_COVERAGE of the network's range."""
    lo, hi = network_range()
    start = 5200.0  # no band masked here
    window = (start, start + fraction * (hi - lo))
    preparation = FitPreparation(FitConfig(model=MODEL, wave_range=window), Interpolator.read(MODEL))
    star = as_spectrum(example_spectrum_path())
    if refused:
        with pytest.raises(UlyssAnnError, match="coverage"):
            preparation.prepare(star)
    else:
        assert abs(preparation.prepare(star).coverage - fraction) < 0.002


@pytest.mark.gdl
def test_the_gdl_engine_refuses_and_flags_alike():
    lo, hi = network_range()
    wave, flux, error = relabelled_star(hi - 0.03 * (hi - lo))
    with pytest.raises(UlyssAnnError, match="coverage"):
        fit_spectrum((wave, flux, error), MODEL, engine="gdl", guesses=ONE_GUESS, mdegree=8)
    wave, flux, error = relabelled_star(lo + 0.6 * (hi - lo))
    result = fit_spectrum((wave, flux, error), MODEL, engine="gdl", guesses=ONE_GUESS, mdegree=8)
    assert result.engine.startswith("gdl") and LOW_COVERAGE_FLAG in result.flags
