"""ULySS's ``dof_factor`` comes back from the GDL engine, equal to the native engine's.

Both engines log-rebin a spectrum at its own mean velocity step, so the log pixels number
as many as the linear ones and ``dof_factor`` (ULySS's ``nout/nin``, ≥ 1) is 1 for MUSE
or MILES spectra. It exceeds 1 where the linear grid spans a wide ratio of wavelengths:
``nin`` counts the linear pixels between the log grid's first and last centres, fewer
than ``nout`` once λ_max/λ_min ≳ 13 (the red end's log pixels are wider than the linear
ones by more than the blue end's are narrower). A small network over 2000-40000 Å at
20 Å a pixel gives such a spectrum: one log pixel more than linear ones, a dof_factor of
1.0005 (no larger: ULySS's σ guess, one log pixel, must stay under its 1000 km/s limit,
which needs ~1900 pixels over that ratio).
"""

import subprocess
import sys

import pytest

from conftest import make_network
from ulyss_ann.fitting.core import FitConfig
from ulyss_ann.fitting.gdl_engine.engine import GDLEngine
from ulyss_ann.fitting.native_engine.engine import NativeEngine
from ulyss_ann.model.wavelength import WavelengthGrid
from ulyss_ann.spectra.readers import read_spectrum
from ulyss_ann.spectra.simulate import simulate_spectrum, write_muse_spectrum

PARAMS = [5500.0, 3.0, -1.5]


@pytest.fixture
def wide(tmp_path):
    """A random 3-parameter network over 2000-40000 Å (air), its output lifted positive like a flux,
    and a spectrum made from it (S/N 100, written as MUSE writes): (options, spectrum path,
    the native engine's result)."""
    interp = make_network(npix=1901, seed=3, wavelength=WavelengthGrid(1901, 2000.0, 20.0, air=True))
    interp.weights[-1][0] += 5.0  # the output bias: fluxes ~5 ± 0.5, never near 0 (ULySS divides by them)
    interp.write(tmp_path / "wide.fits")
    wave, flux, sigma = simulate_spectrum(interp, PARAMS, fwhm=2.0, snr=100.0, rng=1, trim=2)
    write_muse_spectrum(tmp_path / "spectrum.fits", wave, flux, sigma)
    options = dict(model=str(tmp_path / "wide.fits"), mdegree=2,
                   guesses={name: [value] for name, value in zip(interp.names, PARAMS)})
    with NativeEngine(FitConfig(**options)) as engine:
        native = engine.fit(read_spectrum(tmp_path / "spectrum.fits"), {})
    # nout/nin, whole pixel counts: the N linear pixels give N log ones, of which ULySS counts
    # N - 1 linear pixels between the first and last log centres (from the grid, not from either engine)
    assert native.dof_factor == pytest.approx(wave.size / (wave.size - 1), rel=1e-12)
    assert native.dof_factor - 1 > 4e-4
    return options, tmp_path / "spectrum.fits", native


# ULySS keeps dof_factor in a single-precision field of its spectrum structure (uly_spect_alloc's
# dof_factor:1.): the GDL engine's equals the native one to float32's rounding, 6e-8 relative,
# 1/10000 of the excess over 1 that is checked (before the GDL engine reported it, it got 1.0)
FLOAT32_ROUNDING = 1e-7


@pytest.mark.gdl
def test_gdl_engine_reports_ulysses_dof_factor(wide):
    options, path, native = wide
    with GDLEngine(FitConfig(backend="subprocess", **options)) as engine:
        gdl = engine.fit(read_spectrum(path), {})
    assert gdl.dof_factor == pytest.approx(native.dof_factor, rel=FLOAT32_ROUNDING)


@pytest.mark.pygdl
def test_in_process_bridge_reports_it_too(wide):
    """The same number through python3-gdl, in a fresh process (it reads GDL_PATH once, at import)."""
    options, path, native = wide
    code = ("from ulyss_ann.fitting.core import FitConfig\n"
            "from ulyss_ann.fitting.gdl_engine.engine import GDLEngine\n"
            "from ulyss_ann.spectra.readers import read_spectrum\n"
            f"with GDLEngine(FitConfig(backend='pygdl', **{options!r})) as engine:\n"
            f"    result = engine.fit(read_spectrum({str(path)!r}), {{}})\n"
            "print(result.engine, repr(result.dof_factor))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr[-3000:]
    engine, dof_factor = out.stdout.split()[-2:]
    assert engine == "gdl-pygdl"
    assert float(dof_factor) == pytest.approx(native.dof_factor, rel=FLOAT32_ROUNDING)
