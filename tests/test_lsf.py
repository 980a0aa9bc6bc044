"""Relative LSF: ULySS's text files, Gaussian LSFs from FWHMs, and its injection (native = ULySS)."""


import numpy as np
import pytest

from conftest import cli_here, reference_file
from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.gdl.process import run_gdl
from ulyss_ann.spectra.line_spread import FWHM_TO_SIGMA, gaussian_lsf, read_lsf, write_lsf
from ulyss_ann.model.wavelength import C_KMS
from ulyss_ann.fitting.native_engine.numerics import lsf_convolve, slit_kernel



def test_gaussian_lsf_is_the_quadratic_difference_and_round_trips(tmp_path):
    lsf = gaussian_lsf(lambda w: 2.82 + (w - 4750) * (2.54 - 2.82) / 2250, 2.0, np.arange(4750, 7001, 250))
    assert lsf["wave"][0] == 4750 and lsf["wave"][-1] == 7000
    # MUSE relative to a 2 A model: sqrt(2.82^2 - 4) A at 4750 A, in km/s
    assert lsf["sigma"][0] == pytest.approx(np.sqrt(2.82 ** 2 - 4) * FWHM_TO_SIGMA / 4750 * C_KMS, rel=1e-12)
    assert lsf["sigma"][0] == pytest.approx(53.3, abs=0.05) and lsf["sigma"][-1] == pytest.approx(28.5, abs=0.05)
    assert lsf["sigma"].unit == "km / s" and lsf["wave"].unit == "Angstrom"
    path = tmp_path / "muse.lsf"
    write_lsf(lsf, path, comment="MUSE")
    back = read_lsf(path)
    assert np.array_equal(back["wave"], lsf["wave"])
    assert np.allclose(back["sigma"], lsf["sigma"], atol=1e-6)
    with pytest.raises(UlyssAnnError, match="not broader than the model"):
        gaussian_lsf(1.9, 2.0, [5000, 6000])


def test_read_lsf_errors_name_the_file(tmp_path):
    with pytest.raises(UlyssAnnError, match="nope.lsf: cannot read"):
        read_lsf(tmp_path / "nope.lsf")
    empty = tmp_path / "empty.lsf"
    empty.write_text("# nothing\nnot numbers at all here\n")
    with pytest.raises(UlyssAnnError, match="empty.lsf: no LSF record"):
        read_lsf(empty)
    # readcol reads the wavelength as an INT: 5000.9 is 5000
    odd = tmp_path / "odd.lsf"
    odd.write_text("0 30 0 0 5000.9\n0 40 0 0 6000\n")
    assert list(read_lsf(odd)["wave"]) == [5000, 6000]


def test_slit_kernel_moments():
    """uly_slit: unit sum, centre at ln(1+cz/c)/velscale*c pixels (reversed, for CONVOL), width σ."""
    kern = slit_kernel(30.0, 80.0, 0.0, 0.0, 20.0)
    n = kern.size // 2
    x = n - np.arange(kern.size)   # the offsets uly_slit writes, +N first
    assert kern.sum() == pytest.approx(1.0)
    shift, width = np.log1p(30 / C_KMS) * C_KMS / 20, np.log1p(80 / C_KMS) * C_KMS / 20
    # the kernel stops 5σ beyond the shift on one side, 5σ + 2|shift| on the other: ~1e-6 px of bias
    assert np.sum(kern * x) == pytest.approx(shift, abs=1e-5)
    assert np.sqrt(np.sum(kern * (x - shift) ** 2)) == pytest.approx(width, rel=1e-4)
    skewed = slit_kernel(0.0, 80.0, 0.1, 0.0, 20.0)
    assert np.sum(skewed * (n - np.arange(skewed.size)) ** 3) > 0   # h3 > 0: a tail to the red


def test_lsf_convolve_interpolates_between_records():
    """Between two records each pixel is a linear mix of the two convolutions; beyond, the nearest."""
    rng = np.random.default_rng(1)
    start, step = np.log(5000.0), 2e-5 * np.log(10) * 2
    npix = 2000
    data = rng.normal(size=(npix, 3))
    lsf = {"wave": np.array([5100.0, 5300.0]), "cz": np.zeros(2), "sigma": np.array([30.0, 90.0]),
           "h3": np.zeros(2), "h4": np.zeros(2)}
    out = lsf_convolve(data, lsf, start, step)
    velscale = C_KMS * step
    from ulyss_ann.fitting.native_engine.sampled_losvd import convolve_edge

    a = convolve_edge(data, slit_kernel(0, 30, 0, 0, velscale))
    b = convolve_edge(data, slit_kernel(0, 90, 0, 0, velscale))
    pa, pb = (np.log([5100.0, 5300.0]) - start) / step
    i = int(np.ceil((pa + pb) / 2))
    assert np.allclose(out[:int(pa)], a[:int(pa)]) and np.allclose(out[int(pb) + 1:], b[int(pb) + 1:])
    assert np.allclose(out[i], a[i] + (i - pa) / (pb - pa) * (b[i] - a[i]))
    with pytest.raises(UlyssAnnError, match="no LSF record lies within"):
        lsf_convolve(data, {**lsf, "wave": np.array([9000.0, 9100.0])}, start, step)


@pytest.mark.gdl
def test_lsf_convolve_equals_ulyss(tmp_path):
    """Our injection is ULySS's uly_spect_lsfconvol, records outside the range and h3/h4 included."""
    path = tmp_path / "lsf.txt"
    path.write_text("# cz sigma h3 h4 wave\n5. 35. 0.02 -0.03 4700\n0. 50. 0. 0. 5100\n-3. 70. 0. 0.05 6150\n"
                    "0. 40. 0. 0. 7000\n0. 40. 0. 0. 9000\n")
    rng = np.random.default_rng(7)
    start, step = np.log(4800.0), 3.0e-5
    data = rng.normal(size=(12000, 2)).cumsum(axis=0)
    from astropy.io import fits

    fits.writeto(tmp_path / "in.fits", data.T)           # IDL reads it as [npix, 2]
    out = run_gdl(f"""
data = readfits('{tmp_path / "in.fits"}', /SILENT)
s = uly_spect_alloc(DATA=double(data), START={f'{start:.17e}'.replace('e', 'd')}, STEP={f'{step:.17e}'.replace('e', 'd')}, SAMPLING=1)
resolve_routine, ['uly_lsf_plot', 'uly_spect_losvdconvol'], /EITHER
uly_spect_lsfconvol, '{path}', s, /QUIET
writefits, '{tmp_path / "out.fits"}', *s.data
""")
    ulyss = fits.getdata(tmp_path / "out.fits").T
    ours = lsf_convolve(data, read_lsf(path), start, step)
    assert "error" not in out.lower()
    assert np.max(np.abs(ours - ulyss)) < 1e-10 * np.max(np.abs(data))
    assert np.max(np.abs(ours - data)) > 0.1   # it did something


def test_native_fit_with_lsf_recovers_the_parameters(tmp_path):
    """A spectrum broadened by a wavelength-dependent LSF: the fit with that LSF injected recovers
    the truth and leaves almost no broadening to σ; without it σ absorbs a mean broadening."""
    from ulyss_ann import Interpolator
    from ulyss_ann.fitting.core import FitConfig
    from ulyss_ann.fitting.native_engine.engine import NativeEngine

    model = reference_file("gsl_ann_trial7.fits")
    interp = Interpolator.read(model).in_medium("air")   # the authors' vacuum axis, as the fit meets spectra
    lsf = gaussian_lsf(lambda w: 2.82 + (w - 4750) * (2.54 - 2.82) / 2250, 2.0, np.arange(4750, 7401, 50))
    write_lsf(lsf, tmp_path / "muse.lsf")
    truth = [5600.0, 3.6, -2.1]
    wave = interp.wavelength.wavelength
    # The model log-rebinned (ULySS's numerics), broadened by the LSF, observed on that
    # same ln-lambda grid: no resampling adds a broadening of its own.
    from ulyss_ann.spectra.spectrum import Spectrum
    from ulyss_ann.fitting.native_engine.numerics import log_rebin
    from ulyss_ann.model.wavelength import WavelengthGrid

    spec, _ = log_rebin(interp.evaluate(np.array(truth)), None, np.ones(wave.size, bool), 0, wave[0],
                        wave[1] - wave[0])
    observed = lsf_convolve(spec.data, lsf, spec.start, spec.step)[10:-10] * 1e3
    sigma = observed / 200
    grid = WavelengthGrid(observed.size, spec.start + 10 * spec.step, spec.step, 1.0, log=True)
    flux = observed + np.random.default_rng(3).normal(size=observed.size) * sigma
    s = Spectrum(flux, sigma, spec.wavelength[10:-10], np.ones(observed.size, bool), grid=grid,
                 meta={"id": "lsf-test", "simulated": True})
    results = {}
    for name, path in (("with", str(tmp_path / "muse.lsf")), ("without", None)):
        fitter = NativeEngine(FitConfig(model=model, engine="native", lsf=path))
        results[name] = fitter.fit(s, {"Logg": truth[1]}).row()
    w = results["with"]
    assert abs(w["Teff"] - truth[0]) < 5 * w["e_Teff"] + 10
    assert abs(w["Fe/H"] - truth[2]) < 5 * w["e_Fe/H"] + 0.01
    # With the LSF, σ is left on or below 0.3 px (the floor, to rounding), where ULySS's sampled
    # kernel is the identity to 0.4 %: the LSF did the broadening. Without it, σ takes a mean broadening.
    velscale = C_KMS * spec.step
    assert w["sigma"] <= 0.3 * velscale * (1 + 1e-9) < results["without"]["sigma"]
    assert w["chi2"] < results["without"]["chi2"]


def test_lsf_command_writes_the_instrument_relative_to_the_model(tmp_path):

    out = tmp_path / "muse.lsf"
    model = reference_file("gsl_ann_trial7.fits")
    run = cli_here("lsf", "--fwhm", "7000:2.54, 4750:2.82", "--model", model, "--step", "100", "-o", out)
    assert run.returncode == 0, run.stderr
    lsf = read_lsf(out)
    assert lsf["wave"][0] == 4700 and lsf["wave"][-1] == 7400   # covers the model's 4762-7385 A
    fwhm = lambda w: 2.82 + (w - 4750) * (2.54 - 2.82) / 2250   # noqa: E731  (extrapolated beyond 7000 A)
    expected = gaussian_lsf(fwhm, 2.0, lsf["wave"])["sigma"]
    assert np.allclose(lsf["sigma"], expected, atol=1e-6)
    bad = cli_here("lsf", "--fwhm", "1.8", "--model", model, "-o", tmp_path / "x.lsf")
    assert bad.returncode == 2 and "not broader than the model" in bad.stderr and "Traceback" not in bad.stderr


def test_fit_with_a_missing_lsf_file_stops_before_any_work(tmp_path):
    from ulyss_ann.fitting.batch.driver import fit

    with pytest.raises(UlyssAnnError, match="nope.lsf: cannot read the LSF file"):
        fit([str(tmp_path / "a.fits")], reference_file("gsl_ann_trial7.fits"), str(tmp_path / "r.ecsv"),
            engine="native", lsf=str(tmp_path / "nope.lsf"), progress=False, workers=0)
    assert not (tmp_path / "r.ecsv").exists()


def test_lsf_with_the_analytic_losvd_recovers_a_simulated_muse_star(tmp_path):
    """The simulator's MUSE star (its LSF, cubic-spline resampling, 18.5 km/s), noise-free, fitted by
    its own network with the LSF injected: the analytic LOSVD recovers everything; ULySS's sampled
    kernel, pegged at 0.3 px once the LSF took the broadening, cannot follow the sub-pixel shift."""
    from ulyss_ann import Interpolator
    from ulyss_ann.fitting.core import FitConfig
    from ulyss_ann.fitting.native_engine.engine import NativeEngine
    from ulyss_ann.paper.ngc6397 import fwhm_muse, lsf_matrix, shift_and_resample
    from ulyss_ann.spectra.simulate import write_muse_spectrum
    from ulyss_ann.spectra.readers import read_spectrum

    model = reference_file("gsl_ann_trial8.fits")
    interp = Interpolator.read(model).in_medium("air")   # as the simulator builds MUSE's air axis
    wave = interp.wavelength.wavelength
    muse = 4749.753 + 1.25 * np.arange(3680)
    muse = muse[(muse >= 4765) & (muse <= 7380)]
    truth = np.array([5600.0, 3.7, -2.2])
    flux = shift_and_resample(muse, wave, lsf_matrix(wave) @ interp.evaluate(truth), 18.5) * 1e3
    write_muse_spectrum(tmp_path / "star.fits", muse, flux, flux / 100, truth={"SIM_TEFF": (5600.0, "")})
    write_lsf(gaussian_lsf(fwhm_muse, 2.0, np.arange(4700, 7451, 50)), tmp_path / "lsf.txt")
    spectrum = read_spectrum(tmp_path / "star.fits")
    fits = {losvd: NativeEngine(FitConfig(model=model, lsf=str(tmp_path / "lsf.txt"), losvd=losvd)).fit(
        spectrum, {"Logg": 3.7}).row() for losvd in ("analytic", "sampled")}
    a, s = fits["analytic"], fits["sampled"]
    assert abs(a["cz"] - 18.5) < 0.5 and abs(a["Teff"] - 5600) < 3 and abs(a["Fe/H"] + 2.2) < 0.01
    assert a["rms"] < 3e-4
    assert abs(s["cz"] - 18.5) > 3 and s["rms"] > 2 * a["rms"]   # what the sampled kernel does here


# ------------------------------------------------------------------ measured LSFs: files, chunks, combination, smoothing
def test_a_measured_lsf_keeps_its_errors_through_the_file(tmp_path):
    from astropy.table import Table

    lsf = Table({"wave": [4800.0, 4900.0], "cz": [1.5, -2.0], "sigma": [30.0, 25.0], "h3": [0.0, 0.0],
                 "h4": [0.0, 0.0], "e_cz": [0.8, 1.1], "e_sigma": [2.0, 0.0]})
    write_lsf(lsf, tmp_path / "m.lsf")
    lines = [line.split() for line in open(tmp_path / "m.lsf") if not line.startswith("#")]
    assert [len(fields) for fields in lines] == [7, 7] and lines[0][4] == "4800"  # uly_lsf_read's five, then errors
    back = read_lsf(tmp_path / "m.lsf")
    assert list(back["e_cz"]) == [0.8, 1.1] and list(back["e_sigma"]) == [2.0, 0.0]
    assert "e_cz" not in read_lsf(_gaussian_file(tmp_path)).colnames  # a Gaussian LSF has none


def _gaussian_file(tmp_path):
    write_lsf(gaussian_lsf(2.6, 2.0, [4800, 5000]), tmp_path / "g.lsf")
    return tmp_path / "g.lsf"
