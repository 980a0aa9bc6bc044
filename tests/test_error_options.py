"""The user's side of ``--errors``: the table's ``errors`` and ``e_`` columns from the command line (both
engines), the flat-valley check that fits with ``mc``/``total`` errors run (ulyss_ann.fitting.valley), and
the summary (and the figure's title) naming the errors a result carries.

All with the bundled example network; the native engine in-process, the GDL one with two parameters
fixed (one profile of 25 uly_fit nodes, a few seconds).
"""


import numpy as np
import pytest
from astropy.table import Table

from ulyss_ann import example_interpolator
from ulyss_ann.cli.main import main
from ulyss_ann.fitting.api import fit_spectrum
from ulyss_ann.model.parameter import Parameter
from ulyss_ann.spectra.examples import example_spectrum_path
from ulyss_ann.spectra.simulate import simulate_spectrum

NAMES = ("Teff", "Logg", "Fe/H")


def fitted_table(tmp_path, name, *options):
    out = tmp_path / f"{name}.ecsv"
    assert main(["fit", example_spectrum_path(), "-m", "example", "-j", "0", "--quiet", "-o", str(out),
                 *options]) == 0
    table = Table.read(out)
    assert len(table) == 1 and table["status"][0] == "ok"
    return table


def test_cli_total_errors_fill_the_errors_and_e_columns(tmp_path):
    formal = fitted_table(tmp_path, "formal", "--engine", "native")
    total = fitted_table(tmp_path, "total", "--engine", "native", "--errors", "total", "--nsimul", "10", "--seed", "1")
    assert formal["errors"][0] == "formal" and total["errors"][0] == "total"
    for name in NAMES:
        assert total[name][0] == formal[name][0]                      # the same best fit …
        error = total["e_" + name][0]
        assert np.isfinite(error) and error != formal["e_" + name][0]  # … other errors
    assert total["e_cz"][0] != formal["e_cz"][0]
    # total errors ran the flat-valley check; the example's valleys are normal ones
    assert "flat-valley" not in total["flag"][0]


@pytest.mark.gdl
def test_cli_mc_errors_with_the_gdl_engine(tmp_path):
    held = ["--engine", "gdl", "--fix", "Teff=5500", "--fix", "Fe/H=-2.1"]
    formal = fitted_table(tmp_path, "formal", *held)
    mc = fitted_table(tmp_path, "mc", *held, "--errors", "mc", "--nsimul", "5")
    assert formal["errors"][0] == "formal" and mc["errors"][0] == "mc" and mc["engine"][0].startswith("gdl")
    assert mc["Logg"][0] == formal["Logg"][0]
    assert np.isfinite(mc["e_Logg"][0]) and mc["e_Logg"][0] > 0 and mc["e_Logg"][0] != formal["e_Logg"][0]
    assert "flat-valley" not in mc["flag"][0]


def second_minimum_spectrum():
    """tests/test_chimap.py's constructed flat case: 5800-6000 Å of a 6000 K, log g 0.5, [Fe/H] −2.5 spectrum
    (S/N 100) with Teff and [Fe/H] held, whose log g profile has a second minimum near 5.5."""
    wave, flux, sigma = simulate_spectrum(example_interpolator(), [6000.0, 0.5, -2.5], snr=100.0, rng=3)
    return (wave, flux, sigma), dict(engine="native", mdegree=2, telluric="none", wave_range=(5800.0, 6000.0),
                                     fixed={"Teff": 6000.0, "Fe/H": -2.5})


def test_a_flat_valley_is_flagged_by_a_fit_with_mc_errors_only():
    spectrum, options = second_minimum_spectrum()
    mc = fit_spectrum(spectrum, "example", errors="mc", nsimul=5, seed=1, **options)
    assert mc.flat_valleys == ("Logg",) and "flat-valley:Logg" in mc.flags
    assert "flat-valley:Logg" in mc.row()["flag"].split(",") and "flat-valley:Logg" in mc.summary()
    formal = fit_spectrum(spectrum, "example", **options)  # formal errors never run the check
    assert formal.flat_valleys is None and not any(f.startswith("flat-valley") for f in formal.flags)
    unchecked = fit_spectrum(spectrum, "example", errors="mc", nsimul=5, seed=1, flat_check=False, **options)
    assert unchecked.flat_valleys is None and unchecked.error_method == "mc"
    assert "flat-valley:Logg" not in unchecked.flags


def test_the_example_spectrum_has_no_flat_valley():
    result = fit_spectrum(example_spectrum_path(), "example", engine="native", errors="mc", nsimul=5, seed=1)
    assert result.flat_valleys == ()  # checked (Teff, log g, [Fe/H] free), none flat
    assert not any(f.startswith("flat-valley") for f in result.flags)


def test_profile_nodes_follow_the_bounds():
    """The measured grids on the GSL networks' bounds (Teff by 250 K, log g by 0.25 dex; [Fe/H] by 0.2 dex),
    and a round step on the multiples inside any other parameter's bounds."""
    from ulyss_ann.fitting.valley import profile_nodes

    steps = {p.name: np.diff(profile_nodes(p)) for p in example_interpolator().parameters}
    assert np.allclose(steps["Teff"], 250.0) and len(steps["Teff"]) == 18
    assert np.allclose(steps["Logg"], 0.25) and len(steps["Logg"]) == 24
    assert np.allclose(steps["Fe/H"], 0.2) and len(steps["Fe/H"]) == 15
    odd = profile_nodes(Parameter("Alpha", "dex", -0.23, 0.61, 0.01, 0.0, 1.0))
    np.testing.assert_allclose(odd, np.linspace(-0.2, 0.6, 17), atol=1e-12)  # 0.84 / 14 = 0.06: by 0.05


def test_summary_and_figure_name_the_errors():
    spectrum = example_spectrum_path()
    mc = fit_spectrum(spectrum, "example", engine="native", errors="mc", nsimul=6, seed=1,
                      fixed={"Teff": 5500.0, "Fe/H": -2.1})
    formal = fit_spectrum(spectrum, "example", engine="native", fixed={"Teff": 5500.0, "Fe/H": -2.1})
    assert "(errors: mc (6 refits))" in mc.summary().splitlines()[0] and "errors: mc (6 refits)" in repr(mc)
    assert "(errors: formal)" in formal.summary().splitlines()[0]
    figure = mc.plot()
    assert "errors: mc (6 refits)" in figure.axes[0].get_title()
