"""Monte-Carlo errors (``--errors mc``, ULySS's NSIMUL) in both engines, and the ``--errors`` options.

The pull test is on simulations, where the truth is known: spectra made from the bundled example
network at known parameters (no shift: the simulator's interpolation would broaden them) and
fitted with it, so that the model is exact and only the noise moves the answers. The errors
tell the truth when (value − truth)/error has unit width.
"""


import numpy as np
import pytest

from conftest import cli_here
from ulyss_ann import example_interpolator
from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.fitting.api import fit_spectrum
from ulyss_ann.fitting.native_engine.engine import NativeEngine
from ulyss_ann.fitting.fit_options import make_config
from ulyss_ann.fitting.resampling import MIN_NSIMUL, correlated_noise, robust_std
from ulyss_ann.model.bundled import bundled_path
from ulyss_ann.spectra.simulate import simulate_spectrum, write_muse_spectrum
from ulyss_ann.spectra.spectrum import Spectrum

GUESSES = {"Teff": [5600.0], "Logg": [3.0], "Fe/H": [-1.4]}
NSIMUL = 30


def simulated(interp, truth, seed, snr=100.0):
    wave, flux, sigma = simulate_spectrum(interp, truth, velocity=0.0, fwhm=2.0, snr=snr, rng=seed)
    return Spectrum.from_arrays(wave, flux, sigma, meta={"id": f"sim{seed}"})


def test_pull_widths_of_formal_and_mc_errors():
    """40 simulated spectra (S/N 100): (fitted − truth)/error has a width within 0.8-1.25 for
    every parameter, with MPFIT's errors and with the Monte-Carlo ones; MPFIT's are kept beside."""
    interp = example_interpolator()
    rng = np.random.default_rng(7)
    truth = np.column_stack([rng.uniform(4800, 6500, 40), rng.uniform(1.5, 4.5, 40), rng.uniform(-2.2, -0.5, 40)])
    spectra = [simulated(interp, t, 100 + i) for i, t in enumerate(truth)]
    widths = {}
    for method in ("formal", "mc"):
        config = make_config(bundled_path("example"), interp, engine="native", guesses=GUESSES, mdegree=8,
                             errors=method, nsimul=NSIMUL, seed=1, flat_check=False)  # errors only
        results = NativeEngine(config, interp).fit_many(spectra)
        assert all(r.error_method == method for r in results)
        for k, name in enumerate(interp.names):
            pulls = [(r.params[name] - truth[i, k]) / r.errors[name] for i, r in enumerate(results)]
            widths[method, name] = robust_std(pulls)
        if method == "mc":
            mc = results
    assert all(0.8 <= w <= 1.25 for w in widths.values()), widths
    # the formal errors stay beside the Monte-Carlo ones, and the row says which it carries
    row = mc[0].row()
    assert row["errors"] == "mc" and row["e_Teff"] == mc[0].errors["Teff"] != mc[0].formal_errors["Teff"]
    assert mc[0].to_table()["errors"][0] == "mc"


def test_mc_is_reproducible_with_a_seed():
    interp = example_interpolator()
    spectrum = simulated(interp, (5500.0, 3.5, -1.3), 3)
    options = dict(engine="native", guesses=GUESSES, mdegree=8, errors="mc", nsimul=MIN_NSIMUL * 2, flat_check=False)
    first = fit_spectrum(spectrum, "example", seed=5, **options)
    again = fit_spectrum(spectrum, "example", seed=5, **options)
    other = fit_spectrum(spectrum, "example", seed=6, **options)
    assert first.errors == again.errors and first.e_cz == again.e_cz
    assert first.errors != other.errors
    assert first.params == other.params  # the errors change, never the best fit


def test_correlated_noise_of_an_oversampled_spectrum():
    """ULySS's dof_factor: noise drawn on npix/dof_factor points and interpolated, so neighbours
    correlate, with the input pixels' size (√dof_factor times the rebinned errors); white at 1."""
    rng = np.random.default_rng(0)
    white = correlated_noise(rng, 400, 1000, 1.0)
    assert abs(np.std(white) - 1) < 0.01 and abs(np.corrcoef(white[:, :-1].ravel(), white[:, 1:].ravel())[0, 1]) < 0.01
    smooth = correlated_noise(rng, 400, 1000, 4.0)
    assert np.sqrt(np.mean(smooth ** 2)) == pytest.approx(2.0, rel=1e-9)
    assert np.corrcoef(smooth[:, :-1].ravel(), smooth[:, 1:].ravel())[0, 1] > 0.8


@pytest.mark.gdl
def test_gdl_nsimul_agrees_with_native_mc():
    """The GDL engine runs ULySS's own NSIMUL; its errors agree with the native refits' within
    their statistical scatter (each a standard deviation of 30 refits: ±13 %, so the ratio of the
    two within a factor 1.75, 3σ)."""
    interp = example_interpolator()
    spectrum = simulated(interp, (5500.0, 3.5, -1.3), 3)
    options = dict(guesses=GUESSES, mdegree=8, errors="mc", nsimul=NSIMUL, flat_check=False)
    native = fit_spectrum(spectrum, "example", engine="native", seed=2, **options)
    gdl = fit_spectrum(spectrum, "example", engine="gdl", **options)
    assert native.error_method == gdl.error_method == "mc"
    for name in interp.names:
        assert 1 / 1.75 < gdl.errors[name] / native.errors[name] < 1.75, (name, gdl.errors, native.errors)
        assert gdl.errors[name] != gdl.formal_errors[name]
    assert 1 / 1.75 < gdl.e_cz / native.e_cz < 1.75


@pytest.mark.gdl
def test_gdl_mc_is_ulysses_own_nsimul(monkeypatch):
    """The agreement above would hold as well if the GDL engine refitted Python's copies (the
    generic refits give the same statistics): a spy on the GDL session proves ULySS's NSIMUL
    (``ulyss_ann_mc``) ran, once, for all the simulations the errors come from."""
    from ulyss_ann.gdl.session import PyGDLSession, SubprocessGDLSession

    calls = []
    for session in (PyGDLSession, SubprocessGDLSession):  # whichever backend the engine opens
        def spied(self, function, *args, _call=session.call):
            calls.append(function)
            return _call(self, function, *args)
        monkeypatch.setattr(session, "call", spied)
    spectrum = simulated(example_interpolator(), (5500.0, 3.5, -1.3), 3)
    gdl = fit_spectrum(spectrum, "example", engine="gdl", guesses=GUESSES, mdegree=8, errors="mc",
                       nsimul=MIN_NSIMUL, flat_check=False)
    assert calls.count("ulyss_ann_mc") == 1 and calls.count("ulyss_ann_fit") == 1  # the best fit, then NSIMUL
    assert gdl.error_method == "mc" and gdl.n_refits == MIN_NSIMUL


@pytest.mark.gdl
def test_gdl_nsimul_runs_in_chunks_that_each_draw_their_own_noise(monkeypatch):
    """A large --nsimul in one GDL call would outlast the session's timeout (and again on every --resume):
    ULySS's NSIMUL runs NSIMUL_CHUNK simulations a call, the samples of all the calls kept, none repeated."""
    from ulyss_ann.fitting.gdl_engine import engine as gdl_engine
    from ulyss_ann.gdl.session import PyGDLSession, SubprocessGDLSession

    chunks = []
    for session in (PyGDLSession, SubprocessGDLSession):  # whichever backend the engine opens
        def spied(self, function, *args, _call=session.call):
            answer = _call(self, function, *args)
            if function == "ulyss_ann_mc":
                chunks.append((int(args[-3]), answer))
            return answer
        monkeypatch.setattr(session, "call", spied)
    monkeypatch.setattr(gdl_engine, "NSIMUL_CHUNK", 2)
    interp = example_interpolator()
    spectrum = simulated(interp, (5500.0, 3.5, -1.3), 3)
    gdl = fit_spectrum(spectrum, "example", engine="gdl", guesses=GUESSES, mdegree=8, errors="mc",
                       nsimul=MIN_NSIMUL, flat_check=False)
    assert [n for n, _ in chunks] == [2, 2, 1] and gdl.n_refits == MIN_NSIMUL
    rows = np.concatenate([answer.reshape(n, -1) for n, answer in chunks])
    assert len(np.unique(rows[:, 2], axis=0)) == MIN_NSIMUL  # each chunk its own noise: no Teff twice


@pytest.mark.parametrize("options, said", [
    (dict(errors="bootstrap"), "errors (--errors) 'bootstrap': choose "),
    (dict(errors="mc", nsimul=MIN_NSIMUL - 1), f"nsimul (--nsimul) {MIN_NSIMUL - 1}: give the refits"),
    (dict(errors="mc", nsimul=True), "nsimul (--nsimul) True"),
    (dict(errors="mc", nsimul=12.5), "nsimul (--nsimul) 12.5"),
    (dict(errors="mc", seed=-1), "seed (--seed) -1"),
])
def test_error_options_refused_in_one_line(options, said):
    interp = example_interpolator()
    with pytest.raises(UlyssAnnError) as caught:
        make_config(bundled_path("example"), interp, engine="native", **options)
    assert said in str(caught.value) and "\n" not in str(caught.value)
    if options.get("errors") == "bootstrap":
        assert "formal" in str(caught.value) and "mc" in str(caught.value)


def test_cli_errors_option(tmp_path):
    interp = example_interpolator()
    wave, flux, sigma = simulate_spectrum(interp, (5500.0, 3.5, -1.3), fwhm=2.0, snr=100.0, rng=1)
    write_muse_spectrum(tmp_path / "star.fits", wave, flux, sigma)
    fast = ["--engine", "native", "-m", "example", "--guess", "Teff=5600", "--guess", "Logg=3",
            "--guess", "Fe/H=-1.4", "--mdegree", "8", "--quiet", "-j", "0"]
    bad = cli_here("fit", tmp_path / "star.fits", "-o", tmp_path / "bad.ecsv", "--errors", "jackknife", *fast)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0
    assert bad.stderr.startswith("ulyss-ann: error: errors (--errors) 'jackknife': choose ")
    good = cli_here("fit", tmp_path / "star.fits", "-o", tmp_path / "mc.ecsv", "--errors", "mc", "--nsimul", "8",
                    "--seed", "3", *fast)
    assert good.returncode == 0, good.stderr
    from astropy.table import Table

    table = Table.read(tmp_path / "mc.ecsv")
    assert table["errors"][0] == "mc" and table["status"][0] == "ok" and table["e_Teff"][0] > 0


def test_generic_refit_agrees_with_the_native_block():
    """FitEngine.refit (each copy a spectrum of its own, as the GDL engine refits ``total``'s copies)
    and the native lock-step block give the same refitted values for the same perturbed copies."""
    from ulyss_ann.fitting.core import FitEngine
    from ulyss_ann.fitting.resampling import MonteCarlo

    interp = example_interpolator()
    spectrum = simulated(interp, (5500.0, 3.5, -1.3), 3)
    config = make_config(bundled_path("example"), interp, engine="native", guesses=GUESSES, mdegree=8)
    engine = NativeEngine(config, interp)
    prepared = engine.preparation.prepare(spectrum)
    result = engine.fit(spectrum)
    fluxes = MonteCarlo().perturbed(result, np.random.default_rng(4), 6)
    block = engine.refit(prepared, result, fluxes)
    generic = FitEngine.refit(engine, prepared, result, fluxes)
    assert engine.config is config  # the generic refit's own configuration does not stay behind
    for name in interp.names:
        assert len(block[name]) == len(generic[name]) == 6
        assert np.std(block[name]) > 0.3 * result.errors[name]  # the copies differ: the noise moved them
        np.testing.assert_allclose(generic[name], block[name], atol=0.02 * result.errors[name])


def test_failed_refits_keep_the_formal_errors_and_say_so(monkeypatch):
    """Refits that fail leave MPFIT's errors, flagged ``errors-fallback``; a dead engine is the row's failure."""
    from ulyss_ann.errors import MachineryError

    interp = example_interpolator()
    spectrum = simulated(interp, (5500.0, 3.5, -1.3), 3)
    config = make_config(bundled_path("example"), interp, engine="native", guesses=GUESSES, mdegree=8,
                         errors="mc", nsimul=MIN_NSIMUL)
    engine = NativeEngine(config, interp)

    def diverging(prepared, result, fluxes):
        samples = engine.__class__.refit(engine, prepared, result, fluxes)
        return {name: values[:MIN_NSIMUL - 1] for name, values in samples.items()}

    monkeypatch.setattr(engine, "refit", diverging)
    result = engine.fit_many([spectrum])[0]
    assert result.error_method == "formal" and result.errors == {k: result.formal_errors[k] for k in result.params}
    assert "errors-fallback" in result.flags and result.row()["errors"] == "formal"

    def dead(*args):
        raise MachineryError("gdl died")

    monkeypatch.setattr(engine, "refit", dead)
    assert isinstance(engine.fit_many([spectrum])[0], MachineryError)
