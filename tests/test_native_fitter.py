"""The native engine: ULySS's numerics in NumPy, its Jacobian, its statistics, its agreement with uly_fit."""


import numpy as np
import pytest

from conftest import HAVE_GDL, SHARED, reference_file
from ulyss_ann import example_interpolator
from ulyss_ann.spectra.examples import example_interpolator_path
from ulyss_ann.fitting.core import FitConfig
from ulyss_ann.fitting.native_engine.engine import NativeEngine
from ulyss_ann.fitting.native_engine.block import SpectralBlock, legendre_products
from ulyss_ann.model.wavelength import C_KMS
from ulyss_ann.fitting.native_engine.numerics import fourier_losvd, log_rebin, natural_spline, xrebin, NaturalSpline
from ulyss_ann.fitting.native_engine.sampled_losvd import convolve_edge, losvd_kernel
from ulyss_ann.spectra.simulate import simulate_spectrum, write_muse_spectrum
from ulyss_ann.spectra.readers import read_spectrum

MUSE = SHARED / "data" / "muse" / "ngc6397id000010554jd2456865p5826f000.fits"


def test_xrebin_conserves_flux_and_log_rebin_keeps_flux_density():
    edges = np.linspace(4000, 5000, 101)
    y = 1 + np.sin(np.arange(100) / 7.0)
    new = np.linspace(4003, 4996, 57)
    inside = (edges[:-1] >= new[0]) & (edges[1:] <= new[-1])
    assert xrebin(edges, y, new).sum() == pytest.approx(np.interp(new[-1], edges, np.r_[0, np.cumsum(y)])
                                                        - np.interp(new[0], edges, np.r_[0, np.cumsum(y)]),
                                                        rel=2e-3) and inside.any()
    # a flat spectrum stays flat (per Å), with velscale = c ln(λ_hi/λ_lo)/N over the outer edges
    spec, velscale = log_rebin(np.full(500, 3.0), np.full(500, 0.1), np.ones(500, bool), 0, 4800.0, 1.25)
    assert velscale == pytest.approx(C_KMS * np.log((4800 + 499.5 * 1.25) / (4800 - 0.625)) / 500)
    assert spec.npix == 500 and spec.step == pytest.approx(velscale / C_KMS)
    # ULySS divides by λ·Δlnλ/Δλ, the bin width to first order: off by (Δlnλ)²/24 = 2.2e-9 here
    np.testing.assert_allclose(spec.data[2:-2], 3.0 * (1 + spec.step ** 2 / 24), rtol=1e-10)
    assert spec.good[2:-2].all()


def test_losvd_kernel_derivatives_and_convolution():
    dx, k, dk_dv, dk_ds = losvd_kernel(0.7, 1.3, 0.25, 500)
    assert k.sum() == pytest.approx(1.0) and dx == int(np.ceil(0.25 + 0.7 + 5 * 1.3))
    h = 1e-6
    for i, (v, s) in enumerate(((0.7 + h, 1.3), (0.7, 1.3 + h))):
        up = losvd_kernel(v, s, 0.25, 500)[1]
        down = losvd_kernel(2 * 0.7 - v, 2 * 1.3 - s, 0.25, 500)[1]
        np.testing.assert_allclose((up - down) / (2 * h), (dk_dv, dk_ds)[i], atol=1e-7)
    # IDL CONVOL(/EDGE_TRUNCATE): out[i] = Σ_k f[clip(i + k − dx)] K[k]
    f = np.random.default_rng(0).normal(size=40)
    out = convolve_edge(f, k)
    direct = [sum(f[min(max(i + j - dx, 0), 39)] * k[j] for j in range(k.size)) for i in range(40)]
    np.testing.assert_allclose(out, direct, rtol=1e-12)
    # a positive velocity moves a line to the red (larger pixel index)
    line = np.zeros(60)
    line[30] = 1
    shifted = convolve_edge(line, losvd_kernel(3.0, 0.8, 0.0, 60)[1])
    assert np.argmax(shifted) == 33


def test_analytic_losvd_is_exact_where_the_sampled_one_is_not():
    """A Gaussian line of 2 px broadened by σ and shifted by v has a known profile (widths add in quadrature).

    At σ = 0.3 px (ULySS's floor, where MUSE fits sit) the sampled kernel is nearly a delta
    and misses the broadening; the Fourier form of pPXF gets it; at σ = 2 px both are right.
    """
    x = np.arange(200, dtype=float)
    line = 1 - 0.5 * np.exp(-0.5 * ((x - 100) / 2.0) ** 2)
    for sigma, vel in ((0.3, 0.4), (2.0, 1.5)):
        width = np.hypot(2.0, sigma)
        exact = 1 - 0.5 * 2.0 / width * np.exp(-0.5 * ((x - 100 - vel) / width) ** 2)
        kern = losvd_kernel(vel, sigma, 0.0, 200)[1]
        sampled_error = np.max(np.abs(convolve_edge(line, kern) - exact))
        fourier, d_dv, d_ds = fourier_losvd(line, vel, sigma, 0.0)
        assert np.max(np.abs(fourier - exact)) < 1e-6
        assert (sampled_error > 2e-3) == (sigma < 1), (sigma, sampled_error)
        h = 1e-6  # and its derivatives are those of the transform
        np.testing.assert_allclose(d_dv, (fourier_losvd(line, vel + h, sigma, 0.0)[0]
                                          - fourier_losvd(line, vel - h, sigma, 0.0)[0]) / (2 * h), atol=1e-7)
        np.testing.assert_allclose(d_ds, (fourier_losvd(line, vel, sigma + h, 0.0)[0]
                                          - fourier_losvd(line, vel, sigma - h, 0.0)[0]) / (2 * h), atol=1e-7)


@pytest.fixture(scope="module")
def fitter():
    return NativeEngine(FitConfig(model=example_interpolator_path(), mdegree=8))


def simulated(path, params, velocity, snr, seed, fwhm=2.6):
    wave, flux, sigma = simulate_spectrum(example_interpolator(), params, velocity=velocity, fwhm=fwhm, snr=snr,
                                          rng=seed)
    write_muse_spectrum(path, wave, flux, sigma, truth={"SIM_TEFF": params[0]})
    return read_spectrum(path)


def test_jacobian_is_that_of_the_projected_residual(fitter, tmp_path):
    spectrum = simulated(tmp_path / "s.fits", [5400, 3.2, -1.6], 25.0, 80, 1)
    spec, rebinned, voff, _ = fitter.rebinned_observation(fitter.preparation.prepare(spectrum))
    weights = np.where(spec.good, 1 / spec.err, 0.0)[None]
    block = SpectralBlock(fitter, rebinned, spec.data[None], weights, 8, voff, "sampled", np.ones(5, bool))
    theta = np.array([[0.4, 1.2, 5400.0, 3.2, -1.6]])
    owner = np.array([0])
    resid, jac = block.residuals(theta, owner)
    steps = np.array([1e-5, 1e-5, 1e-3, 1e-6, 1e-6])
    for j, h in enumerate(steps):
        up, down = theta.copy(), theta.copy()
        up[0, j] += h
        down[0, j] -= h
        numeric = (block.residuals(up, owner)[0][0] - block.residuals(down, owner)[0][0]) / (2 * h)
        np.testing.assert_allclose(jac[0, j], numeric, atol=2e-5 * np.abs(numeric).max())
    # what the optimiser gets: Σr², Jᵀr and JᵀJ of the same residual and Jacobian
    cost, grad, jtj, _ = block.evaluate(theta, owner)
    np.testing.assert_allclose(cost[0], np.sum(resid[0] ** 2), rtol=1e-12)
    np.testing.assert_allclose(grad[0], jac[0] @ resid[0], rtol=1e-9)
    np.testing.assert_allclose(jtj[0], jac[0] @ jac[0].T, rtol=1e-9)


def test_quoted_errors_match_the_scatter(fitter, tmp_path):
    """Pull width 1 ± 0.15 for Teff, log g and [Fe/H] over 100 noise realisations (σ above the floor)."""
    truth = np.array([5500.0, 3.5, -1.4])
    fits = []
    for seed in range(100):
        values = fitter.fit(simulated(tmp_path / "p.fits", truth, 30.0, 40, seed, fwhm=3.6)).row()
        fits.append([values[n] for n in ("Teff", "Logg", "Fe/H")] + [values["e_" + n] for n in ("Teff", "Logg", "Fe/H")])
    fits = np.array(fits)
    widths = np.std(fits[:, :3], axis=0, ddof=1) / np.mean(fits[:, 3:], axis=0)
    print("pull widths (Teff, logg, [Fe/H]):", widths)
    assert np.all(np.abs(widths - 1) < 0.15), widths
    assert np.all(np.abs(np.mean(fits[:, :3], axis=0) - truth) < 3 * np.std(fits[:, :3], axis=0))


def test_bad_input_gives_a_clear_error(fitter, tmp_path):
    spectrum = simulated(tmp_path / "s.fits", [5400, 3.2, -1.6], 0.0, 80, 2)
    spectrum.wavelength = spectrum.wavelength + 5000.0
    spectrum.grid = None
    with pytest.raises(Exception, match="no overlap"):
        fitter.fit(spectrum)


TOLERANCE = {"Teff": 2.0, "Logg": 0.005, "Fe/H": 0.002, "cz": 1.0}


def _agree(native, gdl):
    for name, tol in TOLERANCE.items():
        assert abs(native[name] - gdl[name]) <= tol, (name, native[name], gdl[name])
    for name in ("Teff", "Logg", "Fe/H"):
        if gdl["e_" + name] > 0:
            assert native["e_" + name] == pytest.approx(gdl["e_" + name], rel=0.05), name


def _both_engines(config, spectrum):
    """(native, GDL) fits of one spectrum with one configuration, every guess fitted by both (ULySS's way:
    ``n_converged`` compared)."""
    from dataclasses import replace

    from ulyss_ann.fitting.gdl_engine.engine import GDLEngine

    gdl = GDLEngine(config)
    try:
        expected = gdl.fit(spectrum).row()
    finally:
        gdl.close()
    return NativeEngine(replace(config, search="all")).fit(spectrum).row(), expected


@pytest.mark.gdl
def test_native_agrees_with_uly_fit_on_the_real_muse_star():
    if not MUSE.is_file():
        pytest.skip(f"{MUSE} not found")
    config = FitConfig(model=reference_file("gsl_ann_trial7.fits"))
    got, expected = _both_engines(config, read_spectrum(MUSE))
    _agree(got, expected)
    assert got["n_pix"] == expected["n_pix"] and got["n_converged"] == expected["n_converged"]
    assert got["chi2"] == pytest.approx(expected["chi2"], rel=1e-5)


@pytest.mark.gdl
def test_native_agrees_with_uly_fit_with_an_injected_lsf(tmp_path):
    """--lsf: the component's LSF= in GDL and the native injection give the same fit."""
    from ulyss_ann.spectra.line_spread import gaussian_lsf, write_lsf
    from ulyss_ann.paper.ngc6397 import fwhm_muse

    if not MUSE.is_file():
        pytest.skip(f"{MUSE} not found")
    # Half of MUSE's nominal broadening (in variance): with all of it the model is broader
    # than this star (σ pegs at its lower limit, χ² goes flat and the optimisers stop apart).
    half = lambda w: np.sqrt(2.0 ** 2 + 0.5 * (fwhm_muse(w) ** 2 - 2.0 ** 2))  # noqa: E731
    write_lsf(gaussian_lsf(half, 2.0, np.arange(4750, 7401, 50)), tmp_path / "muse.lsf")
    config = FitConfig(model=reference_file("gsl_ann_trial7.fits"), lsf=str(tmp_path / "muse.lsf"))
    spectrum = read_spectrum(MUSE)
    got, expected = _both_engines(config, spectrum)
    plain = NativeEngine(FitConfig(model=config.model)).fit(spectrum).row()
    _agree(got, expected)
    assert got["chi2"] == pytest.approx(expected["chi2"], rel=1e-5)
    assert abs(got["chi2"] / plain["chi2"] - 1) > 1e-3   # the LSF did change the model


@pytest.mark.gdl
def test_native_agrees_with_uly_fit_on_simulated_spectra(tmp_path):
    from ulyss_ann.fitting.gdl_engine.engine import GDLEngine

    config = FitConfig(model=reference_file("gsl_ann_trial7.fits"))
    generator = example_interpolator()
    rng = np.random.default_rng(7)
    gdl, native = GDLEngine(config), NativeEngine(config)
    try:
        for i in range(4):
            params = [rng.uniform(4800, 6300), rng.uniform(2.0, 4.2), rng.uniform(-2.3, -1.0)]
            wave, flux, sigma = simulate_spectrum(generator, params, velocity=rng.uniform(-80, 80), fwhm=2.7,
                                                  snr=rng.uniform(20, 80), rng=i)
            write_muse_spectrum(tmp_path / f"s{i}.fits", wave, flux, sigma, truth={"SIM_TEFF": params[0]})
            spectrum = read_spectrum(tmp_path / f"s{i}.fits")
            _agree(native.fit(spectrum).row(), gdl.fit(spectrum).row())
    finally:
        gdl.close()


def test_any_grid_the_miles_network_on_a_miles_star():
    """Another sampling (0.9 Å, 4300 px, 3540–7410 Å) and a real star: both engines agree where GDL is here."""
    from ulyss_ann.spectra.examples import miles_interpolator_path

    star = SHARED / "data" / "miles" / "MILES_res2.50_star_m0001V.fits"   # HD 224930: 5305 K, 4.49, −0.75
    if not star.is_file():
        pytest.skip(f"{star} not found")
    config = FitConfig(model=miles_interpolator_path())
    spectrum = read_spectrum(star)
    got = NativeEngine(config).fit(spectrum).row()
    assert abs(got["Teff"] - 5305) < 150 and abs(got["Logg"] - 4.49) < 0.3 and abs(got["Fe/H"] + 0.75) < 0.2
    if HAVE_GDL:
        from ulyss_ann.fitting.gdl_engine.engine import GDLEngine

        gdl = GDLEngine(config)
        try:
            _agree(got, gdl.fit(spectrum).row())
        finally:
            gdl.close()


@pytest.mark.parametrize("degree", [0, 1, 4, 20])
def test_the_legendre_product_table_is_numpys_products_bit_for_bit(degree):
    # half the table is computed and mirrored: each entry must still be legmul's own (the fit's numbers
    # depend on the last bit), and its columns must expand P_k P_l
    from numpy.polynomial import legendre

    table = legendre_products(degree)
    x = np.linspace(-1.0, 1.0, 7)
    for k in range(degree + 1):
        for m in range(degree + 1):
            product = legendre.legmul(np.eye(degree + 1)[k], np.eye(degree + 1)[m])
            column = table[:, k * (degree + 1) + m]
            np.testing.assert_array_equal(column[:product.size], product)
            assert not column[product.size:].any()
            np.testing.assert_allclose(legendre.legval(x, column),
                                       legendre.legval(x, np.eye(degree + 1)[k]) * legendre.legval(x, np.eye(degree + 1)[m]),
                                       atol=1e-12)


def test_the_rebinning_spline_is_scipys_bit_for_bit():
    # ULySS's xrebin through a natural cubic spline of SciPy's own steps (scipy.interpolate costs every
    # process 0.36 s of import): the values must stay SciPy's to the last bit, ends, knots and columns included
    from scipy.interpolate import CubicSpline

    rng = np.random.default_rng(5)
    for trial in range(120):
        n = 2 if trial < 3 else 3 if trial < 6 else int(rng.integers(2, 2000))  # two knots: a line, SciPy's too
        x = np.cumsum(rng.uniform(0.1, 2.0, n)) + rng.uniform(-100.0, 5000.0)
        y = np.cumsum(rng.normal(size=(n,) if trial % 3 else (n, 3)), axis=0)
        at = np.sort(rng.uniform(x[0] - 3.0, x[-1] + 3.0, int(rng.integers(5, 3000))))
        at[[0, 1, -1]] = x[0], x[n // 2], x[-1]   # on knots, the last interval closed
        at.sort()
        expected = CubicSpline(x, y, bc_type="natural", axis=0)(at)
        np.testing.assert_array_equal(natural_spline(x, y, at), expected, err_msg=f"trial {trial}")
        # the NumPy twin of the compiled spline (LAPACK's gttrs for the slopes): the same bits too
        np.testing.assert_array_equal(NaturalSpline(x, at).numpy(y), expected, err_msg=f"twin, trial {trial}")


def test_log_rebinning_keeps_each_grid_and_gives_the_same_bits_again():
    # a survey's spectra share their grid: the spline's factors, intervals and edges are computed once per grid
    # (linear, ln-λ resampled, explicit wavelengths), and a second spectrum on it is rebinned as the first
    from ulyss_ann.fitting.native_engine import numerics

    rng = np.random.default_rng(8)
    wave = np.cumsum(rng.uniform(1.0, 1.5, 700)) + 4800.0
    for sampling, start, step, explicit in ((0, 4800.0, 1.25, None), (1, np.log(4800.0), 2e-4, None),
                                            (2, wave[0], 1.25, wave)):
        numerics._rebin_grid.cache_clear()
        flux, err = 1 + 0.1 * rng.normal(size=(2, 700)), rng.uniform(0.01, 0.02, (2, 700))
        good = rng.uniform(size=(2, 700)) > 0.05
        velscale = 40.0 if sampling == 1 else None
        first = [numerics.log_rebin(flux[k], err[k], good[k], sampling, start, step, explicit, velscale)[0]
                 for k in range(2)]
        assert numerics._rebin_grid.cache_info().misses == 1 and numerics._rebin_grid.cache_info().hits == 1
        numerics._rebin_grid.cache_clear()
        again = numerics.log_rebin(flux[1], err[1], good[1], sampling, start, step, explicit, velscale)[0]
        for name in ("data", "err", "good", "start", "step", "dof_factor"):
            assert np.array_equal(getattr(first[1], name), getattr(again, name)), (sampling, name)
        borders = numerics._borders(sampling, start, step, 700, explicit)[0]
        edges = np.exp(again.start + (np.arange(again.npix + 1) - 0.5) * again.step)
        flat = numerics.xrebin(borders, np.ones(700), edges) if sampling == 2 else None
        if flat is not None:
            assert np.array_equal(again.data, numerics.xrebin(borders, flux[1], edges) / flat)


@pytest.mark.parametrize("rows", [1, 2, 6])
def test_the_best_guess_sums_are_those_numpy_gave_the_gathered_fits(rows):
    # χ² and rms of each guess's best fit were NumPy's sums of ``bestfit[rows][:, good]`` (F-ordered); pixel_sums
    # takes C-ordered rows ten times faster, and must give the reported χ² bit for bit
    from ulyss_ann.fitting.native_engine.solutions import pixel_sums

    rng = np.random.default_rng(rows)
    bestfit = rng.normal(1.0, 0.1, (rows + 3, 2100))
    picked, good = rng.permutation(rows + 3)[:rows], np.flatnonzero(rng.random(2100) > 0.05)
    data, noise = rng.normal(1.0, 0.1, good.size), rng.uniform(0.01, 0.02, good.size)
    gathered = bestfit[picked][:, good]
    residual = data - np.take(bestfit[picked], good, axis=1)
    assert np.array_equal(pixel_sums(residual * residual), np.sum((data - gathered) ** 2, axis=1))
    assert np.array_equal(pixel_sums((residual / noise) ** 2), np.sum(((data - gathered) / noise) ** 2, axis=1))
    assert np.array_equal(pixel_sums(np.take(bestfit[picked], good, axis=1)), np.sum(gathered, axis=1))


def test_the_guesses_combinations_are_made_once_and_keep_the_sign_of_zero():
    from ulyss_ann.fitting.native_engine.numerics import guess_odometer

    plus, minus = guess_odometer([5000.0, 6000.0, 0.0], [2, 1]), guess_odometer([5000.0, 6000.0, -0.0], [2, 1])
    assert plus.tolist() == [[5000.0, 0.0], [6000.0, 0.0]] and not plus.flags.writeable
    assert np.signbit(minus[:, 1]).all() and not np.signbit(plus[:, 1]).any()
    assert guess_odometer(np.array([5000.0, 6000.0, 0.0]), np.array([2, 1])) is plus   # made once
    # ULySS's node order: the first parameter fastest
    assert guess_odometer([5000.0, 5500.0, 6000.0, 2.5, -1.0, -1.5], [3, 1, 2]).tolist() == [
        [5000.0, 2.5, -1.0], [5500.0, 2.5, -1.0], [6000.0, 2.5, -1.0],
        [5000.0, 2.5, -1.5], [5500.0, 2.5, -1.5], [6000.0, 2.5, -1.5]]
    assert guess_odometer([4.0, 1.0, 2.0], [1, 2]).tolist() == [[4.0, 1.0], [4.0, 2.0]]
