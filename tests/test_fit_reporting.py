"""What a fit says to people (issue 25): value and error to one decimal place, a fixed parameter
said as fixed, the masked bands in the figure's legend, a --range cut to the coverage said."""

import re
import warnings

import numpy as np
import pytest
from astropy.table import Table

from ulyss_ann.fitting.api import fit_spectrum
from ulyss_ann.figures import parameter_label, value_with_error
from ulyss_ann.spectra.examples import example_spectrum_path

ASKED = (4000.0, 5000.0)  # the example network covers 4762-7385 Å


@pytest.mark.parametrize("value, error, unit, fixed, text", [
    (5498.5, 29.3, "K", False, "5498 ± 29 K"),
    (-2.0899, 0.0571, "dex", False, "-2.090 ± 0.057 dex"),
    (3.689, 0.16, "dex", False, "3.69 ± 0.16 dex"),
    (5503.0, 293.0, "K", False, "5500 ± 290 K"),          # the error's 2 digits, not the value's 5
    (1.23456, 0.0996, "", False, "1.23 ± 0.10"),          # 0.0996 rounds to 0.10: two digits, not 0.100
    (-0.001, 0.5, "", False, "0.00 ± 0.50"),              # no -0.00
    (3.7, 0.0, "dex", True, "3.7 dex (fixed)"),
    (18.806, 0.0, "km/s", False, "18.806 km/s"),          # no error (σ on its floor): the value alone
    (5.0, 1e-17, "K", False, "5 ± 1e-17 K"),               # a noise-free fit: not 18 decimals in a title
    (1e300, 1e299, "", False, "1e+300 ± 1e+299"),          # nor 300-digit integers
    (5000.0, float("nan"), "K", False, "5000 K"),          # no error: the value alone
])
def test_value_and_error_to_the_errors_second_digit(value, error, unit, fixed, text):
    assert value_with_error(value, error, unit, fixed=fixed) == text


@pytest.fixture(scope="module")
def fixed_logg():
    """The bundled star with log g fixed and --range reaching below the network."""
    return fit_spectrum(example_spectrum_path(), engine="native", fixed={"Logg": 3.7}, wave_range=ASKED)


def test_the_figure_title_says_fixed_and_rounds_alike(fixed_logg):
    title = fixed_logg.plot().axes[0].get_title()
    assert "log g = 3.7 dex (fixed)" in title and "± 0 " not in title
    pairs = re.findall(r"= (-?\d+(?:\.(\d+))?) ± (\d+(?:\.(\d+))?) ", title)
    assert len(pairs) == 4  # Teff, [Fe/H], cz, σ
    for value, value_decimals, error, error_decimals in pairs:
        assert len(value_decimals) == len(error_decimals), (value, error)
    assert title == fixed_logg.summary(parameter_label)  # one text: the title, the summary, the repr


def test_a_range_cut_to_the_coverage_is_said(fixed_logg):
    assert fixed_logg.requested_range == ASKED and fixed_logg.lmin > 4762 and fixed_logg.lmax == 5000
    note = (f"fitted {fixed_logg.lmin:.0f}-5000 Å of the 4000-5000 Å asked for (the part that the network and "
            "the spectrum both cover)")
    assert fixed_logg.range_note == note and note in fixed_logg.summary()
    inside = fit_spectrum(example_spectrum_path(), engine="native", fixed={"Logg": 3.7}, wave_range=(5000, 6000))
    assert (inside.lmin, inside.lmax) == (5000, 6000) and inside.range_note == ""


def test_the_cli_says_one_spectrum_and_warns_of_a_range_cut_in_one_line(tmp_path, capsys, monkeypatch):
    from ulyss_ann.cli.main import main

    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # main() sets its own
    status = main(["fit", example_spectrum_path(), "-m", "example", "--engine", "native", "-j", "0",
                   "--fix", "Logg=3.7", "--range", "4000,5000", "-o", str(tmp_path / "r.ecsv")])
    assert status == 0
    out, err = capsys.readouterr()
    assert out.startswith("1 spectrum: 1 fitted, 0 error, 0 failed (the machinery)")  # not "1 spectra"
    said = [line for line in err.splitlines() if line.startswith("ulyss-ann:")]  # not the progress bar's
    lmin = Table.read(tmp_path / "r.ecsv")["lmin"][0]
    assert lmin > 4762
    assert said == [f"ulyss-ann: warning: --range 4000,5000: fitted {lmin:.0f}-5000 Å only, the part that the "
                    "network and the spectrum cover (lmin, lmax in the table)"]


def test_masked_bands_are_in_the_legend():
    result = fit_spectrum(example_spectrum_path(), engine="native", masks=[(5000.0, 5100.0), (6000.0, 6050.0)])
    assert (~result.mask).any()
    labels = [text.get_text() for text in result.plot().axes[0].get_legend().get_texts()]
    assert labels == ["data", "best fit", "masked (not fitted)"]  # one entry for both bands
