"""What GDL sends back to the GDL engine: one layout, defined in gdl_engine, documented alike in GDL.

The vectors of ULYSS_ANN_FIT and ULYSS_ANN_LAST_FIT are decoded by position; their
layouts live in ``ulyss_ann.fitting.gdl_engine.engine`` (RESULT_FIELDS, PARAMETER_FIELDS,
LAST_FIT_COLUMNS). These tests check that the GDL routines document the same names in
the same order, and, with real GDL and ULySS, that the decoded numbers are consistent
with the decoded arrays (a swapped field or column would break the identities).
"""

import re

import numpy as np
import pytest

from ulyss_ann import UlyssAnnError, example_interpolator
from ulyss_ann.fitting.core import FitConfig
from ulyss_ann.fitting.gdl_engine.engine import LAST_FIT_COLUMNS, PARAMETER_FIELDS, RESULT_FIELDS, GDLEngine, decode_result
from ulyss_ann.gdl.component import resource_dir
from ulyss_ann.spectra.examples import example_interpolator_path
from ulyss_ann.spectra.readers import read_spectrum
from ulyss_ann.spectra.simulate import simulate_spectrum, write_muse_spectrum


def _documented_list(pro, pattern):
    text = (resource_dir("gdl") / pro).read_text()
    block = re.search(pattern, text, re.S).group(1)
    return [name.strip() for name in re.sub(r"[;\s]+", " ", block).split(",")]


def test_gdl_routines_document_the_layout_the_engine_decodes():
    fields = _documented_list("ulyss_ann_fit.pro", r"; OUTPUT:\s*;\s*\[(.*?),\s*;?\s*\(")
    assert fields == list(RESULT_FIELDS)
    per_parameter = _documented_list("ulyss_ann_fit.pro", r"\((value, error, status)\) for each parameter")
    assert per_parameter == list(PARAMETER_FIELDS)
    columns = _documented_list("ulyss_ann_last_fit.pro", r"A 1-D array \[(.*?)\]")
    assert columns == list(LAST_FIT_COLUMNS)


def _top_level_items(text):
    """The comma-separated items of a GDL array literal [a, f(b, c), [d]] (nesting respected)."""
    depth, items, current = 0, [], ""
    for ch in text.strip()[1:-1]:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            items.append(current.strip())
            current = ""
        else:
            current += ch
    return items + [current.strip()]


def test_the_gdl_code_builds_vectors_of_that_layout():
    """The statements that build the vectors, not only their documentation, have the decoded shape."""
    code = (resource_dir("gdl") / "ulyss_ann_fit.pro").read_text().replace("$\n", " ")
    head = re.search(r"^res = (\[.*?\])\s*$", code, re.M).group(1)
    assert len(_top_level_items(head)) == len(RESULT_FIELDS)
    per_parameter = re.search(r"res = (\[res, .*?\])\s*$", code, re.M).group(1)
    assert len(_top_level_items(per_parameter)) - 1 == len(PARAMETER_FIELDS)
    last_fit = re.search(r"^last_fit = (\[.*?\])\s*$", code, re.M).group(1)
    assert len(_top_level_items(last_fit)) == len(LAST_FIT_COLUMNS)


def test_decoding_checks_the_length():
    npar = 3
    vector = np.arange(len(RESULT_FIELDS) + len(PARAMETER_FIELDS) * npar, dtype=float)
    decoded = decode_result(vector, npar)
    assert decoded["e_sigma"] == RESULT_FIELDS.index("e_sigma") and decoded["ulyss_seconds"] == len(RESULT_FIELDS) - 1
    np.testing.assert_array_equal(decoded["status"], vector[len(RESULT_FIELDS) + 2::3])
    with pytest.raises(UlyssAnnError, match=f"expected {len(RESULT_FIELDS) + 9}"):
        decode_result(vector[:-1], npar)


@pytest.mark.gdl
def test_decoded_numbers_agree_with_the_decoded_arrays(tmp_path):
    interp = example_interpolator()
    wave, flux, sigma = simulate_spectrum(interp, [5400.0, 3.2, -1.5], velocity=12.0, fwhm=2.6, snr=60.0, rng=5)
    write_muse_spectrum(tmp_path / "s.fits", wave, flux, sigma, truth={"SIM_TEFF": 5400.0})
    spectrum = read_spectrum(tmp_path / "s.fits")
    config = FitConfig(model=example_interpolator_path(), mdegree=8, backend="subprocess",
                       guesses={"Teff": [5200.0, 5600.0], "Fe/H": [-1.0]})
    with GDLEngine(config) as engine:
        result = engine.fit(spectrum, {"Logg": 3.2})
    assert result.n_guess == 2 and result.best_guess in (0, 1)
    assert 0 < engine.ulyss_seconds < result.time  # ULySS's own time is part of the engine's
    assert result.status == {"Teff": "free", "Logg": "fixed", "Fe/H": "free"} and result.params["Logg"] == 3.2
    fitted = result.mask
    assert result.n_pix == fitted.sum() > 1000
    residual = (result.flux - result.bestfit)[fitted]
    assert np.sqrt(np.mean(residual ** 2)) / np.mean(result.bestfit[fitted]) == pytest.approx(result.rms, rel=1e-9)
    free = 2 + 2 + config.mdegree + 2   # cz, sigma, Teff, Fe/H; the polynomial; uly_fit's count
    chi2 = np.sum((residual / result.error[fitted]) ** 2) / (result.n_pix - free)
    assert chi2 == pytest.approx(result.chi2, rel=1e-4)
    assert result.wavelength[0] >= result.lmin - 2 and result.wavelength[-1] <= result.lmax + 2
    assert abs(result.cz - 12.0) < 3 * result.e_cz + 1 and abs(result.params["Teff"] - 5400) < 60
