"""ULySS's TGM polynomial as a model the native engine fits with (issue #28's baseline), and ensembles.

No shared data: the grids are the bundled example network's spectra at random nodes.
"""

import dataclasses

import numpy as np
import pytest
from astropy.io import fits

from ulyss_ann import Interpolator, example_interpolator
from ulyss_ann.errors import InterpolatorFileError, UlyssAnnError
from ulyss_ann.fitting.core import FitConfig
from ulyss_ann.fitting.native_engine.block import SpectralBlock
from ulyss_ann.fitting.native_engine.engine import NativeEngine
from ulyss_ann.gdl.component import generate_component
from ulyss_ann.model.input_maps import TERMS_PER_REGIME, tgm_terms
from ulyss_ann.model.wavelength import WavelengthGrid
from ulyss_ann.spectra.grid import SpectralGrid
from ulyss_ann.spectra.readers import read_spectrum
from ulyss_ann.spectra.simulate import simulate_spectrum, write_muse_spectrum
from ulyss_ann.training.ensemble import member_spread, merge_ensemble
from ulyss_ann.training.tgm_baseline import fit_tgm

BLENDS = (4000.0, 4550.0, 7000.0, 9000.0)


def random_nodes(n, seed, teff=(3500.0, 8000.0)):
    rng = np.random.default_rng(seed)
    # rounded as a catalogue's are (a FITS card keeps 15-16 digits of the bounds)
    return np.column_stack([rng.uniform(*teff, n).round(), rng.uniform(0.5, 5.0, n).round(2),
                            rng.uniform(-2.5, 0.0, n).round(2)])


@pytest.fixture(scope="module")
def grid():
    return SpectralGrid.from_network(example_interpolator(), random_nodes(400, 1), ())


@pytest.fixture(scope="module")
def tgm(grid, tmp_path_factory):
    model = fit_tgm(grid, clip=0)
    path = tmp_path_factory.mktemp("tgm") / "tgm.fits"
    model.write(path)
    return Interpolator.read(path)


def test_terms_and_their_derivatives():
    p = np.array([[5777.0, 4.44, 0.0], [4200.0, 1.5, -1.2], [8000.0, 3.9, 0.1], [3500.0, 0.8, -0.3],
                  [9500.0, 4.0, 0.0], [4549.0, 2.0, -2.0], [7001.0, 4.2, -0.5]])
    x, dx = tgm_terms(p, jacobian=True)
    assert x.shape == (7, 3 * TERMS_PER_REGIME) and dx.shape == (7, 3, 3 * TERMS_PER_REGIME)
    for k, h in enumerate((1e-3, 1e-6, 1e-6)):
        up, down = p.copy(), p.copy()
        up[:, k] += h
        down[:, k] -= h
        numeric = (tgm_terms(up) - tgm_terms(down)) / (2 * h)
        np.testing.assert_allclose(dx[:, k], numeric, atol=1e-7 * np.abs(numeric).max())
    # the Sun: warm regime only, its first terms 1, τ, [Fe/H], log g − 4.44
    tau = (np.log10(5777.0) - 3.7617) / 0.2
    np.testing.assert_allclose(x[0, :4], [1.0, tau, 0.0, 0.0], atol=1e-15)
    assert not x[0, TERMS_PER_REGIME:].any()


def uly_tgm_terms(log_teff_offset, grav, feh):
    """ULySS's uly_tgm_model_param, version 2, written out term by term (tt = offset / 0.2, tt2 = tt² − 1)."""
    tt = log_teff_offset / 0.2
    tt2 = tt ** 2 - 1.0
    return np.array([1.0, tt, feh, grav, tt ** 2, tt * tt2, tt2 ** 2, tt * feh, tt * grav, tt2 * grav, tt2 * feh,
                     grav ** 2, feh ** 2, tt * tt2 ** 2, tt * grav ** 2, grav ** 3, feh ** 3, tt * feh ** 2,
                     grav * feh, grav ** 2 * feh, grav * feh ** 2,
                     np.exp(tt) - 1 - tt * (1 + tt / 2 + tt ** 2 / 6 + tt ** 3 / 24 + tt ** 4 / 120),
                     np.exp(2 * tt) - 1 - 2 * tt * (1 + tt + 2 / 3 * tt ** 2 + tt ** 3 / 3 + tt ** 4 * 2 / 15)])


@pytest.mark.parametrize("teff, regime, shift", [(5777.0, 0, 0.0), (6400.0, 0, 0.0), (9800.0, 1, 0.0),
                                                 (3700.0, 2, 0.1), (3950.0, 2, 0.1)])
def test_terms_are_ulyss_tgm_version_2(teff, regime, shift):
    """Where one regime holds, its block is ULySS's 23 terms (the cold one at log Teff + 0.1), the others zero."""
    x = tgm_terms(np.array([[teff, 2.7, -1.3]]))[0].reshape(3, TERMS_PER_REGIME)
    expected = uly_tgm_terms(np.log10(teff) - 3.7617 + shift, 2.7 - 4.44, -1.3)
    np.testing.assert_allclose(x[regime], expected, rtol=1e-13, atol=1e-15)
    assert not np.delete(x, regime, axis=0).any()


def test_regimes_blend_continuously_and_sum_to_one():
    teff = np.concatenate([np.linspace(3000, 12000, 2001), BLENDS])
    x = tgm_terms(np.column_stack([teff, np.full_like(teff, 3.0), np.full_like(teff, -0.5)]))
    weights = x[:, ::TERMS_PER_REGIME]          # each regime's first term is 1 × its weight
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-14)
    warm, hot, cold = weights.T
    assert np.all(cold[teff <= 4000] == 1) and np.all(warm[(teff >= 4550) & (teff <= 7000)] == 1)
    assert np.all(hot[teff >= 9000] == 1)
    # linear in log Teff: half and half at the geometric mean of each zone's ends
    middle = tgm_terms(np.array([[np.sqrt(4000 * 4550), 3.0, -0.5], [np.sqrt(7000 * 9000), 3.0, -0.5]]))
    np.testing.assert_allclose(middle[:, ::TERMS_PER_REGIME], [[0.5, 0, 0.5], [0.5, 0.5, 0]], atol=1e-12)
    for edge in BLENDS:   # no jump at the ends of the blending zones
        near = tgm_terms(np.array([[edge - 1e-6, 3.0, -0.5], [edge + 1e-6, 3.0, -0.5]]))
        np.testing.assert_allclose(near[0], near[1], atol=1e-6)


def test_fit_recovers_a_grid_that_is_a_tgm_polynomial(grid):
    """Spectra that are exactly a TGM model (random coefficients) are given back everywhere, blends included,
    from stars where one regime alone holds (each polynomial is fitted to its own regime's stars)."""
    rng = np.random.default_rng(3)
    coef = rng.normal(0, 0.01, (3 * TERMS_PER_REGIME, 50)) + 1.0 / (3 * TERMS_PER_REGIME)
    nodes = random_nodes(900, 4, teff=(3200.0, 11000.0))
    teff = nodes[:, 0]
    pure = (teff <= 4000) | ((teff >= 4550) & (teff <= 7000)) | (teff >= 9000)
    exact = SpectralGrid(tgm_terms(nodes) @ coef, nodes, grid.names, grid.units, WavelengthGrid(50, 5000.0, 1.0), ())
    train = np.flatnonzero(pure)[:400]
    model = fit_tgm(exact, train=train, clip=3.0)
    assert dict((k, v) for k, v, _ in model.meta)["TGMREJ"] == 0   # an exact polynomial has no outlier
    unseen = np.setdiff1d(np.arange(len(nodes)), train)
    assert np.sum(~pure[unseen]) > 100                              # the blending zones are tested too
    # to the conditioning of the hot regime's 23 terms over 9000-11000 K (~1e9), far below any spectrum's noise
    np.testing.assert_allclose(model.evaluate(nodes[unseen]), exact.flux[unseen], atol=1e-6)
    np.testing.assert_array_equal(model.nodes, nodes[train])


def test_file_round_trip_and_jacobian(tgm, grid):
    assert tgm.input_map == "tgm" and tgm.architecture == [3, grid.wavelength.npix]
    again = fit_tgm(grid, clip=0)
    assert tgm == again
    p = np.array([[4300.0, 1.8, -1.1], [5600.0, 4.1, -0.3], [7600.0, 3.8, -0.8]])
    flux, jac = tgm.evaluate_with_jacobian(p)
    np.testing.assert_allclose(flux, tgm.evaluate(p), rtol=1e-13)
    np.testing.assert_allclose(tgm.evaluate(p[1]), flux[1], rtol=1e-13)
    # steps where the central difference's rounding (the hot regime's 23 terms are conditioned ~1e9) and its
    # truncation are both far below the tolerance: with 1e-5 in log g the rounding alone reached 1.2e-7
    for k, h in enumerate((1e-1, 1e-3, 1e-3)):
        up, down = p.copy(), p.copy()
        up[:, k] += h
        down[:, k] -= h
        numeric = (tgm.evaluate(up) - tgm.evaluate(down)) / (2 * h)
        np.testing.assert_allclose(jac[:, :, k], numeric, atol=1e-6 * np.abs(numeric).max())
    # the polynomial interpolates the example network's spectra: ~1 % of the flux, not exactly
    assert np.median(np.abs(flux - example_interpolator().evaluate(p))) < 0.02


def test_native_engine_fits_with_the_tgm_model(tgm, tmp_path):
    """The block's projected-residual Jacobian through the TGM map; a noise-free spectrum recovered."""
    fitter = NativeEngine(FitConfig(model=tgm.path, mdegree=8))
    truth = [5100.0, 3.1, -1.3]
    wave, flux, sigma = simulate_spectrum(tgm, truth, velocity=20.0, fwhm=2.6, snr=1e6, rng=0)
    write_muse_spectrum(tmp_path / "s.fits", wave, flux, sigma)
    spectrum = read_spectrum(tmp_path / "s.fits")
    spec, rebinned, voff, _ = fitter.rebinned_observation(fitter.preparation.prepare(spectrum))
    weights = np.where(spec.good, 1 / spec.err, 0.0)[None]
    block = SpectralBlock(fitter, rebinned, spec.data[None], weights, 8, voff, "sampled", np.ones(5, bool))
    theta, owner = np.array([[0.4, 1.2, 5000.0, 3.0, -1.2]]), np.array([0])
    resid, jac = block.residuals(theta, owner)
    for j, h in enumerate((1e-5, 1e-5, 1e-3, 1e-6, 1e-6)):
        up, down = theta.copy(), theta.copy()
        up[0, j] += h
        down[0, j] -= h
        numeric = (block.residuals(up, owner)[0][0] - block.residuals(down, owner)[0][0]) / (2 * h)
        np.testing.assert_allclose(jac[0, j], numeric, atol=2e-5 * np.abs(numeric).max())
    result = fitter.fit(spectrum)
    # within what the simulation's rebinning and sampled LOSVD leave in any model's noise-free fit (the
    # example network's own: 3.7 K, 0.003 dex, 0.6 dex/1000, 0.5 km/s)
    found = np.array([result.params[n] for n in ("Teff", "Logg", "Fe/H")])
    assert np.all(np.abs(found - truth) < [6, 0.006, 0.002]), found
    assert abs(result.cz - 20.0) < 1.0


def test_tgm_model_is_refused_where_only_networks_go(tgm, tmp_path):
    with pytest.raises(UlyssAnnError, match="input map 'tgm'.*--engine native"):
        generate_component(tgm, "tgmcmp", tmp_path / "gdl")
    with pytest.raises(UlyssAnnError, match="torch path knows networks only"):
        NativeEngine(FitConfig(model=tgm.path, device="torch-cpu"))
    with pytest.raises(UlyssAnnError, match="need Teff"):
        fit_tgm(SpectralGrid(np.ones((3, 5)), np.ones((3, 2)), ("a", "b"), ("K", "dex"),
                             WavelengthGrid(5, 5000.0, 1.0), ()))
    # log g and [Fe/H] swapped (both in dex): refused by name, not silently read in the wrong order
    with pytest.raises(UlyssAnnError, match="need Teff"):
        fit_tgm(SpectralGrid(np.ones((3, 5)), np.ones((3, 3)), ("Teff", "Fe/H", "Logg"), ("K", "dex", "dex"),
                             WavelengthGrid(5, 5000.0, 1.0), ()))
    swapped = tmp_path / "swapped.fits"
    tgm.write(swapped)
    with fits.open(swapped, mode="update") as hdul:
        hdul[0].header["I_P_NM2"], hdul[0].header["I_P_NM3"] = "Fe/H", "Logg"
    with pytest.raises(InterpolatorFileError, match="I_PREPRO = 'tgm': the TGM terms need Teff"):
        Interpolator.read(swapped)


def test_an_ensemble_is_one_network_equal_to_the_mean():
    base = example_interpolator()
    rng = np.random.default_rng(5)
    members = [Interpolator(base.parameters, [w + rng.normal(0, 0.05, w.shape) for w in base.weights],
                            base.activations, base.wavelength, base.meta) for _ in range(3)]
    merged = merge_ensemble(members)
    assert merged.architecture == [3, 48, 96, base.npix]
    p = random_nodes(20, 6)
    spectra = np.stack([m.evaluate(p) for m in members])
    np.testing.assert_allclose(merged.evaluate(p), spectra.mean(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(merged.jacobian(p), np.mean([m.jacobian(p) for m in members], axis=0),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(member_spread(members, p), spectra.std(axis=0, ddof=1))
    with pytest.raises(UlyssAnnError, match="same parameters"):
        merge_ensemble([members[0], example_interpolator().in_medium("vacuum")])


def test_ensembles_of_one_hidden_layer_and_what_cannot_merge(tgm):
    rng = np.random.default_rng(7)
    base = example_interpolator()
    shallow = [Interpolator(base.parameters, [rng.normal(0, 0.5, (4, 12)), rng.normal(0, 0.1, (13, base.npix))],
                            ("logistic", "linear"), base.wavelength, nodes=base.nodes) for _ in range(4)]
    p = random_nodes(10, 8)
    np.testing.assert_allclose(merge_ensemble(shallow).evaluate(p), np.mean([m.evaluate(p) for m in shallow], axis=0),
                               rtol=1e-12, atol=1e-12)
    other_stars = dataclasses.replace(shallow[1], nodes=base.nodes[:-1])   # trained on other stars
    with pytest.raises(UlyssAnnError, match="trained on other stars"):
        merge_ensemble([shallow[0], other_stars])
    with pytest.raises(UlyssAnnError, match="networks with hidden layers"):
        merge_ensemble([tgm, tgm])
