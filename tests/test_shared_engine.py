"""An engine is shared per process (engines.engine_for): a fit's refits and χ² profiles must not swap its
configuration, or another thread's fit meanwhile gets theirs (MPFIT errors, no masks, air, these guesses)."""

import threading
from dataclasses import replace

from ulyss_ann import example_interpolator
from ulyss_ann.fitting.core import FitEngine
from ulyss_ann.fitting.native_engine.engine import NativeEngine
from ulyss_ann.fitting.fit_options import make_config
from ulyss_ann.fitting.resampling import MIN_NSIMUL
from ulyss_ann.model.bundled import bundled_path
from ulyss_ann.spectra.simulate import simulate_spectrum
from ulyss_ann.spectra.spectrum import Spectrum

GUESSES = {"Teff": [5600.0], "Logg": [3.0], "Fe/H": [-1.4]}


def simulated(interp, truth, seed):
    wave, flux, sigma = simulate_spectrum(interp, truth, velocity=0.0, fwhm=2.0, snr=100.0, rng=seed)
    return Spectrum.from_arrays(wave, flux, sigma, meta={"id": f"sim{seed}"})


def test_a_fit_in_another_thread_during_refits_keeps_its_configuration():
    """Thread A's refits (the generic ones, as GDL refits ``total``) pause inside the engine; thread B
    fits meanwhile on the same engine: B's fit is made with B's configuration (its errors), A's with
    A's, and the engine's configuration is the one it had."""
    interp = example_interpolator()
    config = make_config(bundled_path("example"), interp, engine="native", guesses=GUESSES, mdegree=8,
                         errors="mc", nsimul=MIN_NSIMUL, seed=3, flat_check=False)
    engine = NativeEngine(config, interp)
    engine.refit = lambda prepared, result, fluxes: FitEngine.refit(engine, prepared, result, fluxes)
    star_a, star_b = simulated(interp, (5500.0, 3.5, -1.3), 1), simulated(interp, (5800.0, 4.0, -1.0), 2)
    alone_b = engine.fit(star_b)  # B's answer when nobody else uses the engine

    a_refitting, b_done = threading.Event(), threading.Event()
    solve_many, thread_a = engine.solve_many, []

    def pausing_solve_many(prepared_fits):
        if threading.current_thread() is thread_a[0] and len(prepared_fits) == MIN_NSIMUL:  # A's refits
            a_refitting.set()
            assert b_done.wait(60)
        return solve_many(prepared_fits)

    engine.solve_many = pausing_solve_many
    results = {}
    thread_a.append(threading.Thread(target=lambda: results.update(a=engine.fit(star_a))))
    thread_a[0].start()
    assert a_refitting.wait(60)
    try:
        results["b"] = engine.fit(star_b)  # this thread is B
    finally:
        b_done.set()
        thread_a[0].join(60)
    assert engine.config is config
    for name in ("a", "b"):
        assert results[name].error_method == "mc" and results[name].n_refits == MIN_NSIMUL
    assert results["b"].params == alone_b.params and results["b"].errors == alone_b.errors


def test_a_fit_given_its_configuration_uses_it_and_leaves_the_engines():
    """``fit_many(…, config=)``: the fits follow the given configuration (here, no refits), the engine keeps its own."""
    interp = example_interpolator()
    config = make_config(bundled_path("example"), interp, engine="native", guesses=GUESSES, mdegree=8,
                         errors="mc", nsimul=MIN_NSIMUL, flat_check=False)
    engine = NativeEngine(config, interp)
    star = simulated(interp, (5500.0, 3.5, -1.3), 1)
    formal = engine.fit_many([star], config=replace(config, errors="formal"))[0]
    assert formal.error_method == "formal" and engine.config is config
    assert engine.fit(star).error_method == "mc"
