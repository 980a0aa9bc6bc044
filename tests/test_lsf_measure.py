"""The relative LSF measured from the data (ulyss_ann.fitting.lsf.measure, ``ulyss-ann lsf``).

Simulated spectra from the bundled example network (fast), with a known LSF injected:
the measurement must give it back within its errors (a constant FWHM and MUSE's
wavelength-dependent one), and fitting with the measured LSF must do as well as with
the true one. Then the command line: files, figures, and one-line errors.
"""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from conftest import cli_here
from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.fitting.lsf.measure import chunks, measure_lsf_many
from ulyss_ann.fitting.lsf.combine import combine_lsf, instrument_fwhm
from ulyss_ann.model.wavelength import C_KMS
from ulyss_ann.paper.ngc6397 import fwhm_muse, shift_and_resample, sigma_muse
from ulyss_ann.spectra.band_limited import observe
from ulyss_ann.spectra.examples import example_interpolator
from ulyss_ann.spectra.line_spread import gaussian_lsf, read_lsf, write_lsf
from ulyss_ann.spectra.lsf_smooth import lsf_records, smooth_lsf

MUSE = 4749.753 + 1.25 * np.arange(3680)
MUSE = MUSE[(MUSE >= 4765) & (MUSE <= 7380)]      # the real MUSE file's pixels, as simulate_cluster
# Stars with lines enough in every chunk (a hot metal-poor star leaves chunks without: σ pegged there).
CALIBRATORS = [((5000.0, 2.8, -0.6), 18.0), ((5600.0, 3.8, -1.0), -25.0), ((4600.0, 2.0, -0.3), 60.0)]


@pytest.fixture(scope="module")
def interp():
    return example_interpolator()


def _observe(interp, broadened, velocity, snr, rng):
    """The network's broadened spectrum shifted (cubic spline: no extra broadening), on MUSE's pixels,
    times a smooth continuum, with Gaussian noise of S/N ``snr`` (None: noise-free, errors still given)."""
    x = np.linspace(-1, 1, MUSE.size)
    flux = shift_and_resample(MUSE, interp.wavelength.wavelength, broadened, velocity) * 1e3 * (1 + 0.1 * x - 0.05 * x ** 2)
    error = flux / (snr or 100.0)
    if snr:
        flux = flux + rng.normal(size=flux.size) * error
    return MUSE, flux, error


def _muse_like(interp, params, velocity, snr, rng):
    """A star at MUSE's λ-dependent LSF (2.82 Å at 4750 Å to 2.54 Å at 7000 Å), as simulate_cluster makes it:
    broadened and shifted exactly (band_limited.observe; lsf_matrix and the spline are approximate, and
    their error depends on the pixel phase of MUSE's grid against the network's)."""
    x = np.linspace(-1, 1, MUSE.size)
    flux = observe(MUSE, interp.wavelength.wavelength, interp.evaluate(np.array(params)), velocity, sigma_muse)
    flux = flux * 1e3 * (1 + 0.1 * x - 0.05 * x ** 2)
    error = flux / (snr or 100.0)
    if snr:
        flux = flux + rng.normal(size=flux.size) * error
    return MUSE, flux, error


@pytest.fixture(scope="module")
def muse_measured(interp):
    """Three MUSE-like stars at S/N 150, measured in chunks of 200 Å every 100 Å and combined."""
    rng = np.random.default_rng(7)
    spectra = [_muse_like(interp, p, v, 150, rng) for p, v in CALIBRATORS]
    measured = measure_lsf_many(spectra, interp)
    return measured, combine_lsf(measured)


def test_chunks_are_uly_lsfs():
    """floor((hi - lo - width) / step) + 1 chunks from lo, each width wide; a range narrower than a chunk is an error."""
    found = chunks(4781.0, 7366.0, 200.0, 100.0)
    assert len(found) == 24 and found[0] == (4781.0, 4981.0) and found[-1] == (7081.0, 7281.0)
    assert len(chunks(4781.0, 7366.0, 400.0, 200.0)) == 11
    with pytest.raises(UlyssAnnError, match="narrower than one chunk"):
        chunks(4781.0, 7366.0, 5000.0, 100.0)


def test_combine_weights_by_errors_and_keeps_the_scatter():
    """σ² averaged with weights from the chunks' cz errors (not from σ's own error, which depends on the σ
    measured); error = max(formal, scatter/√n); a chunk pegged at the floor (error 0: it wants no
    broadening) counts like any other, not left out (that would bias σ upwards)."""
    from astropy.table import Table

    from ulyss_ann.fitting.lsf.measure import LSFMeasurement

    def star(sigma, e_sigma, cz, e_cz):
        table = Table({"chunk": [0], "wmin": [4900.0], "wmax": [5100.0], "wave": [5000.0], "cz": [cz], "e_cz": [e_cz],
                       "sigma": [sigma], "e_sigma": [e_sigma], "h3": [0.0], "h4": [0.0], "chi2": [1.0],
                       "n_pix": [160]})
        return LSFMeasurement("s", table, None)

    combined = combine_lsf([star(40.0, 1.0, 1.0, 1.0), star(44.0, 2.0, -1.0, 2.0), star(0.6, 0.0, 0.0, 1.0)])
    row = combined[0]
    weights = np.array([1.0, 1 / 4, 1.0])                      # 1/e_cz²
    variance = np.sum(weights * np.array([40.0, 44.0, 0.6]) ** 2) / weights.sum()
    assert row["sigma"] == pytest.approx(np.sqrt(variance))
    ratio = np.median([2 * 40.0 * 1.0 / 1.0, 2 * 44.0 * 2.0 / 2.0])   # e(σ²)/e_cz of the chunks with a σ error
    scatter = np.std(np.array([40.0, 44.0, 0.6]) ** 2, ddof=1) / np.sqrt(3)
    assert scatter > ratio / np.sqrt(weights.sum())                    # the scatter wins here
    assert row["e_sigma"] == pytest.approx(scatter / (2 * np.sqrt(variance)))        # e(σ²)/2σ
    assert row["cz"] == pytest.approx((1.0 - 1 / 4) / 2.25)
    assert row["e_cz"] == pytest.approx(1 / np.sqrt(2.25))   # formal wins (the scatter/√3 is 0.58)
    assert row["n_stars"] == 3


def test_smooth_lsf_polynomial_clips_a_wild_chunk_and_median_ignores_it():
    from astropy.table import Table

    wave = np.arange(4900.0, 7300.0, 100.0)
    truth = gaussian_lsf(fwhm_muse, 2.0, wave)["sigma"]
    sigma = np.array(truth, float)
    sigma[8] = 400.0                                  # a telluric chunk
    table = Table({"wave": wave, "cz": np.zeros_like(wave), "sigma": sigma, "h3": 0 * wave, "h4": 0 * wave,
                   "e_cz": np.ones_like(wave), "e_sigma": np.ones_like(wave)})
    poly = smooth_lsf(table, "polynomial", degree=3)
    assert np.max(np.abs(poly["sigma"] - truth)) < 0.3       # the curve through the others, 400 left out
    median = smooth_lsf(table, "median", window=3)
    assert np.max(np.abs(median["sigma"] - truth)) < 1.5      # one chunk's neighbours: max 1 km/s of slope
    with pytest.raises(UlyssAnnError, match="odd"):
        smooth_lsf(table, "median", window=4)
    with pytest.raises(UlyssAnnError, match="degree 30"):
        smooth_lsf(table, "polynomial", degree=30)


def test_instrument_fwhm_inverts_gaussian_lsf():
    wave = np.arange(4800.0, 7400.0, 200.0)
    assert np.allclose(instrument_fwhm(gaussian_lsf(fwhm_muse, 2.0, wave), 2.0), fwhm_muse(wave), atol=1e-9)


def test_a_constant_lsf_is_recovered_within_its_errors(interp):
    """FWHM 3.0 Å (relative σ = c/λ·√(9−4)/2.3548, 58 → 40 km/s): each star's chunks and their
    combination agree with it within the errors, and cz with each star's own velocity."""
    rng = np.random.default_rng(11)
    width = np.sqrt(3.0 ** 2 - 2.0 ** 2) / 2.3548 / interp.wavelength.cdelt    # 0.76 px: sampled to 0.05 %
    spectra = [_observe(interp, gaussian_filter1d(interp.evaluate(np.array(p)), width), v, 150, rng)
               for p, v in CALIBRATORS]
    measured = measure_lsf_many(spectra, interp)
    assert len(measured) == 3
    for m, (params, velocity) in zip(measured, CALIBRATORS):
        t = m.table
        assert abs(m.fit.cz - velocity) < 2.0               # the global fit found the star
        true = C_KMS / np.asarray(t["wave"]) * np.sqrt(5.0) / 2.3548
        # σ pegged at the floor (error 0) in the last chunk at most: 7166-7366 Å is 85 % masked (H2O)
        measured_ok = np.asarray(t["e_sigma"]) > 0
        assert len(t) == 25 and np.all(measured_ok[:-1])
        pull = (t["sigma"] - true)[measured_ok] / t["e_sigma"][measured_ok]
        # a single star's formal errors are a little optimistic (χ²/n 0.4-1.6 here, one chunk of the
        # 72 at 4.5): combine_lsf's error takes the scatter between stars for that reason
        assert np.mean(pull ** 2) < 3 and np.max(np.abs(pull)) < 5, pull
        pull_cz = t["cz"] / t["e_cz"]                       # relative to the star's velocity
        assert np.mean(pull_cz ** 2) < 3 and np.max(np.abs(pull_cz)) < 4, pull_cz
    c = combine_lsf(measured)
    true = C_KMS / np.asarray(c["wave"]) * np.sqrt(5.0) / 2.3548
    pull = (c["sigma"] - true) / c["e_sigma"]
    assert np.mean(pull ** 2) < 3 and np.max(np.abs(pull)) < 4, pull
    assert np.mean((c["cz"] / c["e_cz"]) ** 2) < 3
    # Little bias: the weighted mean offset is under 1.5 km/s, 3 % of σ (here -0.9 ± 0.3 km/s).
    weights = 1 / np.asarray(c["e_sigma"]) ** 2
    bias = np.sum(weights * (c["sigma"] - true)) / weights.sum()
    assert abs(bias) < 1.5


def test_a_muse_lsf_is_recovered_and_smoothed(muse_measured):
    """MUSE's λ-dependent LSF (53 → 26 km/s relative to 2 Å): the combined chunks agree with it within
    their errors, and the smoothed curve (uly_lsf_smooth's cubic) follows it within the chunks' errors."""
    measured, c = muse_measured
    wave = np.asarray(c["wave"])
    true = gaussian_lsf(fwhm_muse, 2.0, wave)["sigma"]
    pull = (c["sigma"] - true) / c["e_sigma"]
    assert len(c) == 25 and np.all(c["n_stars"] == 3)
    assert np.mean(pull ** 2) < 3 and np.max(np.abs(pull)) < 4, pull
    assert np.mean((c["cz"] / c["e_cz"]) ** 2) < 3 and np.max(np.abs(c["cz"] / c["e_cz"])) < 4
    smooth = smooth_lsf(c, "polynomial", degree=3)
    # The cubic averages several chunks: it lies within one chunk's error of the truth everywhere
    # (measured: at most 0.67 of it; 1.97 km/s, 0.066 Å of FWHM, at the red end, where the errors
    # are 5-9 km/s), and within 0.1 Å of MUSE's FWHM.
    assert np.max(np.abs(smooth["sigma"] - true) / c["e_sigma"]) < 1.0
    assert np.max(np.abs(instrument_fwhm(smooth, 2.0) - fwhm_muse(wave))) < 0.1
    # It is the shape that is measured, not a constant: blue and red ends differ as MUSE's do.
    assert smooth["sigma"][0] - smooth["sigma"][-1] == pytest.approx(true[0] - true[-1], abs=3.0)
    assert smooth["sigma"][0] - smooth["sigma"][-1] > 20


def test_fitting_with_the_measured_lsf_is_as_good_as_with_the_true_one(interp, muse_measured, tmp_path):
    """Other stars (noise-free, errors of S/N 100) fitted with the measured (smoothed) LSF, with the
    true one, and with none. Measured ≡ true to a tenth of the noise; with no LSF, σ takes a mean
    broadening and the fit is systematically worse (χ² 5× the LSF fits', Teff and log g biased several
    times more) — though on this smooth surrogate network the biases stay below S/N 100's errors."""
    from ulyss_ann.fitting.api import fit_spectrum

    _, combined = muse_measured
    write_lsf(lsf_records(smooth_lsf(combined, "polynomial", degree=3)), tmp_path / "measured.lsf")
    write_lsf(gaussian_lsf(fwhm_muse, 2.0, np.arange(4700, 7451, 50)), tmp_path / "true.lsf")
    stars = [((5200.0, 3.3, -0.8), 10.0), ((4900.0, 2.6, -1.5), 30.0), ((5800.0, 4.0, -0.5), -5.0),
             ((6100.0, 4.1, -1.2), 22.0), ((4700.0, 2.2, -1.0), 0.0)]
    names = ("Teff", "Logg", "Fe/H")
    bias = {k: [] for k in ("true", "measured", "none")}
    error, chi2, sigma = [], {k: [] for k in bias}, {k: [] for k in bias}
    for params, velocity in stars:
        spectrum = _muse_like(interp, params, velocity, None, None)
        for key, lsf in (("true", tmp_path / "true.lsf"), ("measured", tmp_path / "measured.lsf"), ("none", None)):
            r = fit_spectrum(spectrum, interp, engine="native", losvd="analytic", lsf=None if lsf is None else str(lsf))
            bias[key].append([r.params[n] - p for n, p in zip(names, params)])
            chi2[key].append(r.chi2)
            sigma[key].append(r.sigma)
            if key == "true":
                error.append([r.errors[n] for n in names])
    bias = {k: np.array(v) for k, v in bias.items()}
    error = np.array(error)
    # the true LSF: the truth, to a fifth of the noise. The remainder is the phase error of ULySS's
    # kernel sampled at whole pixels (σ ≈ 0.5 px, uly_spect_lsfconvol, which the native engine follows):
    # below 0.15σ while the network's pixels were 1.25 Å like MUSE's (one fixed phase), 0.175σ
    # ([Fe/H] of the 6100 K star) since the example network is on its air axis (1.2497 Å: every phase)
    assert np.all(np.abs(bias["true"]) < 0.2 * error)
    # the measured LSF: the same answers as the true one, to a tenth of the noise
    assert np.all(np.abs(bias["measured"] - bias["true"]) < 0.1 * error)
    assert np.mean(chi2["measured"]) < 1.5 * np.mean(chi2["true"])
    # with an LSF, the fit's own σ is left a small residual; without, it takes MUSE's mean broadening
    assert max(sigma["measured"]) < 20 < 35 < min(sigma["none"])
    # no LSF: χ² five times larger, Teff and log g biased well beyond the LSF fits
    assert np.mean(chi2["none"]) > 5 * np.mean(chi2["measured"])
    rms = {k: np.sqrt(np.mean(v ** 2, axis=0)) for k, v in bias.items()}
    assert rms["none"][0] > 2 * rms["measured"][0] and rms["none"][1] > 2 * rms["measured"][1]
    assert np.all(rms["none"] < np.mean(error, axis=0))      # what is true here: below S/N 100's errors


# ----------------------------------------------------------------------------------- the command line
@pytest.fixture(scope="module")
def two_spectra(interp, tmp_path_factory):
    from ulyss_ann.spectra.simulate import write_muse_spectrum

    folder = tmp_path_factory.mktemp("lsf_cli")
    rng = np.random.default_rng(5)
    paths = []
    for k, (params, velocity) in enumerate(CALIBRATORS[:2]):
        wave, flux, error = _muse_like(interp, params, velocity, 120, rng)
        paths.append(folder / f"star{k}.fits")
        write_muse_spectrum(paths[-1], wave, flux, error)
    return folder, paths


def test_cli_measure_smooth_plot(two_spectra):
    folder, paths = two_spectra
    run = cli_here("lsf", "measure", *paths, "-o", "m.lsf", "--plot", "m.png", "--smooth", "polynomial:3",
               "--fwhm", "4750:2.82,7000:2.54", "--per-star", "stars", cwd=folder)
    assert run.returncode == 0, run.stderr
    assert "from 2 spectra" in run.stdout
    lsf = read_lsf(folder / "m.lsf")
    assert {"e_cz", "e_sigma"} <= set(lsf.colnames) and len(lsf) == 25
    assert np.all(lsf["e_sigma"] > 0) and "smoothed (polynomial:3)" in (folder / "m.lsf").read_text()
    true = gaussian_lsf(fwhm_muse, 2.0, lsf["wave"])["sigma"]
    assert np.all(np.abs(lsf["sigma"] - true) < 3 * lsf["e_sigma"])     # two stars at S/N 120, smoothed
    assert np.median(np.abs(lsf["sigma"] - true)) < 3.0
    assert (folder / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (folder / "stars").iterdir()) == ["star0.lsf", "star1.lsf"]
    for path in (folder / "stars").iterdir():
        assert len(read_lsf(path)) == 25

    run = cli_here("lsf", "smooth", "stars/star0.lsf", "-o", "s.lsf", "--method", "median", "--window", "5",
               "--plot", "s.png", cwd=folder)
    assert run.returncode == 0, run.stderr
    single, smoothed = read_lsf(folder / "stars/star0.lsf"), read_lsf(folder / "s.lsf")
    assert smoothed["sigma"][10] == pytest.approx(np.median(single["sigma"][8:13]), abs=1e-5)
    assert (folder / "s.png").stat().st_size > 10_000

    run = cli_here("lsf", "plot", "m.lsf", "s.lsf", "--fwhm", "4750:2.82,7000:2.54", "-o", "p.png", cwd=folder)
    assert run.returncode == 0, run.stderr
    assert (folder / "p.png").stat().st_size > 10_000


def test_cli_old_spelling_still_writes_a_gaussian_lsf(tmp_path):
    run = cli_here("lsf", "--fwhm", "2.5", "-o", "x.lsf", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    lsf = read_lsf(tmp_path / "x.lsf")
    assert np.allclose(lsf["sigma"], C_KMS / lsf["wave"] * np.sqrt(2.5 ** 2 - 4) / 2.3548, rtol=1e-4)


@pytest.mark.parametrize("options, message", [
    (["--width", "0"], "width 0 Å and step 100 Å: both must be > 0"),
    (["--step", "-5"], "both must be > 0"),
    (["--width", "5000"], "width 5000 Å: wider than the network's range"),
    (["--smooth", "foo"], "--smooth 'foo': polynomial:DEGREE or median:CHUNKS"),
    (["--moments", "4"], "the native engine fits a Gaussian LOSVD only"),
    (["--chunk-mdegree", "-1"], "chunk mdegree -1"),
    (["--engine", "gdl", "--losvd", "analytic"], "--losvd analytic: the native engine's"),
    (["--plot", "lsf.txt"], "--plot lsf.txt: not a figure format matplotlib writes"),
    (["--fix", "Logg=3", "--guess", "Logg=2"], "Logg: both guessed and fixed"),
])
def test_cli_bad_options_stop_with_one_line(two_spectra, options, message):
    """Options no spectrum can make right: exit 2, one line naming the problem, no per-spectrum warnings."""
    folder, paths = two_spectra
    run = cli_here("lsf", "measure", *paths, "-o", "bad.lsf", *options, cwd=folder)
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0 and message in run.stderr, run.stderr
    assert "Traceback" not in run.stderr and not (folder / "bad.lsf").exists()


def test_a_floored_lsf_record_broadens_nothing_when_injected():
    """ULySS's kernel (uly_slit) turns a Gaussian far below a pixel, shifted by a fraction of one, into a flat
    box: a σ of 0.1 km/s with cz 5 km/s on 60 km/s pixels broadens like ~50 km/s. lsf_records floors σ at
    SIGMA_FLOOR (5 % of such a pixel), where the injected kernel is a spike again."""
    from astropy.table import Table

    from ulyss_ann.spectra.lsf_smooth import SIGMA_FLOOR, lsf_records
    from ulyss_ann.fitting.native_engine.numerics import lsf_convolve, slit_kernel

    velscale = 60.0
    assert np.ptp(slit_kernel(5.0, 0.1, 0.0, 0.0, velscale)) < 1e-12          # the flat box ULySS would inject
    kernel = slit_kernel(5.0, SIGMA_FLOOR, 0.0, 0.0, velscale)
    assert kernel.max() > 0.9                                                   # a spike: (almost) no broadening
    step = velscale / C_KMS
    start = np.log(4800.0)
    lines = 1.0 - 0.5 * np.exp(-0.5 * ((np.arange(3000) % 50 - 25) / 0.7) ** 2)  # lines 0.7 px wide
    measured = Table({"wave": [5000.0, 6000.0], "cz": [5.0, 5.0], "sigma": [0.1, 0.1], "h3": [0.0, 0.0],
                      "h4": [0.0, 0.0]})
    floored = lsf_records(measured)
    assert list(floored["sigma"]) == [SIGMA_FLOOR, SIGMA_FLOOR]
    depth = 1 - lines.min()
    assert 1 - lsf_convolve(lines, floored, start, step).min() > 0.95 * depth       # lines kept
    assert 1 - lsf_convolve(lines, measured, start, step).min() < 0.7 * depth        # unfloored: washed out


def test_stars_of_other_ranges_share_chunks_and_fixed_values_hold(interp):
    """measure_lsf_many measures every star on the range all of them cover (chunk k is the same chunk for
    all), and ``fixed`` holds a parameter in each global fit."""
    rng = np.random.default_rng(5)
    wave, flux, error = _muse_like(interp, CALIBRATORS[0][0], CALIBRATORS[0][1], 150, rng)
    short = (wave >= 5200.0) & (wave <= 6900.0)
    spectra = [(wave, flux, error), (wave[short], flux[short], error[short])]
    measured = measure_lsf_many(spectra, interp, fixed={"Logg": 3.0}, width=400.0, step=200.0)
    assert [m.fit.params["Logg"] for m in measured] == [3.0, 3.0]
    first, second = (m.table for m in measured)
    assert first["wmin"][0] >= 5200.0 and first["wmax"][-1] <= 6900.0            # the common range
    np.testing.assert_array_equal(first["wmin"], second["wmin"])
    combined = combine_lsf(measured)
    assert np.all(combined["n_stars"] == 2) and len(combined) == len(first)
    with pytest.raises(UlyssAnnError, match="both guessed and fixed"):   # the fit's options, checked once
        measure_lsf_many(spectra, interp, fixed={"Logg": 3.0}, guesses={"Logg": [2.0]})


def test_a_noisy_pegged_chunk_weighs_little():
    """A chunk pegged at σ = 0 with a large velocity error (low S/N, few lines) hardly moves the mean."""
    from astropy.table import Table

    from ulyss_ann.fitting.lsf.measure import LSFMeasurement

    def star(sigma, e_sigma, e_cz):
        return LSFMeasurement("s", Table({"chunk": [0], "wmin": [6800.0], "wmax": [7000.0], "wave": [6900.0],
                                          "cz": [0.0], "e_cz": [e_cz], "sigma": [sigma], "e_sigma": [e_sigma],
                                          "h3": [0.0], "h4": [0.0], "chi2": [1.0], "n_pix": [160]}), None)

    quiet = combine_lsf([star(28.0, 2.0, 1.5), star(30.0, 2.0, 1.5), star(0.5, 0.0, 300.0)])
    assert quiet["sigma"][0] > 28.5  # the pegged chunk's stand-in error is 400 km/s: no pull to 0
    sharp = combine_lsf([star(28.0, 2.0, 1.5), star(0.5, 0.0, 1.5)])
    assert sharp["sigma"][0] == pytest.approx(np.sqrt((28.0 ** 2 + 0.5 ** 2) / 2))   # pegged, as good: it counts


def test_lsf_smooth_and_plot_refuse_options_that_do_nothing(two_spectra, tmp_path):
    write_lsf(gaussian_lsf(2.6, 2.0, [4800, 5000, 5200, 5400, 5600]), tmp_path / "g.lsf")
    for options, message in ((["--method", "median", "--degree", "5"], "--degree does nothing with --method median"),
                             (["--window", "5"], "--window does nothing with --method polynomial")):
        run = cli_here("lsf", "smooth", str(tmp_path / "g.lsf"), "-o", str(tmp_path / "s.lsf"), *options, cwd=tmp_path)
        assert run.returncode == 2 and message in run.stderr and run.stderr.count("\n") == 1, run.stderr
    run = cli_here("lsf", "plot", *(3 * [str(tmp_path / "g.lsf")]), "-o", str(tmp_path / "p.png"), cwd=tmp_path)
    assert run.returncode == 2 and "one or two" in run.stderr and not (tmp_path / "p.png").exists()
