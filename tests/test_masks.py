"""Telluric and interstellar masks: the named sets, a file of bands, the widening, both engines alike."""

import dataclasses

import numpy as np
import pytest

from conftest import FAST, MODEL, cli_here
from ulyss_ann import UlyssAnnError, example_interpolator
from ulyss_ann.fitting.api import fit_spectrum
from ulyss_ann.fitting.batch.driver import fit
from ulyss_ann.fitting.masks import BARYCENTRIC_KMS, ISM_KMS, ism_bands, resolve_telluric, widened
from ulyss_ann.fitting.fit_options import FixedValues, make_config
from ulyss_ann.fitting.preparation import FitPreparation
from ulyss_ann.fitting.batch.resume import RunMismatchError
from ulyss_ann.fitting.batch.run import run_differences, run_record
from ulyss_ann.model.wavelength import C_KMS
from ulyss_ann.spectra.examples import example_spectrum_path
from ulyss_ann.spectra.inputs import as_spectrum

#: The MUSE pipeline's telluric bands inside the example network's range (4762-7385 Å).
MUSE_IN_RANGE = ((6273.0, 6320.0), (6864.0, 6967.0), (7164.0, 7325.0))


def observed_example():
    """The bundled spectrum as if observed: a simulated one gets no telluric mask by default."""
    spectrum = as_spectrum(example_spectrum_path())
    return dataclasses.replace(spectrum, meta={**spectrum.meta, "simulated": False})


def good_pixels(**options):
    interp = example_interpolator()
    spectrum = observed_example()
    config = make_config(MODEL, interp, engine="native", **options)
    return spectrum.wavelength, FitPreparation(config, interp).good_pixels(spectrum)


def test_the_default_masks_the_muse_pipeline_bands_widened_by_the_barycentric_range():
    wave, good = good_pixels()
    for lo, hi in MUSE_IN_RANGE:
        edge = (lo * (1 - BARYCENTRIC_KMS / C_KMS), hi * (1 + BARYCENTRIC_KMS / C_KMS))
        assert not good[(wave >= edge[0]) & (wave <= edge[1])].any(), (lo, hi)
        # just outside the widened band (0.7 Å at 7000 Å), the pixels are fitted
        assert good[(wave > edge[1]) & (wave < edge[1] + 2.0)].all()
        assert good[(wave < edge[0]) & (wave > edge[0] - 2.0)].all()
    # the old O2 B mask ended at 6890 Å: the band's absorption to 6920 Å is masked now
    assert not good[(wave > 6890.0) & (wave < 6967.0)].any()
    assert np.array_equal(good_pixels(telluric=True)[1], good)  # True: the default set, as before
    assert good_pixels(telluric="none")[1].all() and good_pixels(telluric=False)[1].all()


def test_widening_is_a_doppler_shift_of_each_edge_outwards():
    lo, hi = widened((6864.0, 6967.0))
    assert lo == pytest.approx(6864.0 * (1 - 30.0 / C_KMS)) and hi == pytest.approx(6967.0 * (1 + 30.0 / C_KMS))
    assert resolve_telluric("MUSE").bands[1] == pytest.approx((lo, hi))
    assert resolve_telluric("none").bands == ()


def test_a_file_of_bands_is_masked_as_written(tmp_path):
    bands = tmp_path / "bands.txt"
    bands.write_text("# my tellurics\n5000 5010   # a band\n\n6000.5 6003\n")
    wave, good = good_pixels(telluric=str(bands))
    masked = wave[~good]
    assert masked.min() >= 5000.0 and masked.max() <= 6003.0
    assert not good[(wave >= 5000) & (wave <= 5010)].any() and not good[(wave >= 6000.5) & (wave <= 6003)].any()
    assert good[(wave > 6864) & (wave < 6967)].all()  # not the default set


@pytest.mark.parametrize("text, said", [("5000 5010\n6000\n", "line 2"), ("5000 4990\n", "LO < HI"),
                                        ("# nothing\n", "no bands"), ("5000 abc\n", "line 1")])
def test_a_malformed_file_of_bands_is_refused_in_one_line(tmp_path, text, said):
    bands = tmp_path / "bands.txt"
    bands.write_text(text)
    with pytest.raises(UlyssAnnError, match=said) as caught:
        fit_spectrum(example_spectrum_path(), MODEL, engine="native", telluric=str(bands), **FAST_SPECTRUM)
    assert "\n" not in str(caught.value) and "bands.txt" in str(caught.value)


FAST_SPECTRUM = {k: v for k, v in FAST.items() if k not in ("progress", "engine")}


def test_an_unknown_set_is_refused_on_the_command_line(tmp_path):
    done = cli_here("fit", example_spectrum_path(), "-m", "example", "--engine", "native", "-j", "0",
                    "-o", tmp_path / "r.ecsv", "--telluric", "keck")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "--telluric" in done.stderr and "muse" in done.stderr


def test_resume_sees_a_changed_telluric_set(tmp_path):
    interp = example_interpolator()
    bands = tmp_path / "bands.txt"
    bands.write_text("6860 6890\n")

    def record(**options):
        return run_record(make_config(MODEL, interp, engine="native", **options), FixedValues(None, interp))

    assert run_differences(record(telluric="muse"), record(telluric=True)) == []
    assert run_differences(record(), record()) == []
    changed = run_differences(record(telluric="muse"), record(telluric=str(bands)))
    assert len(changed) == 1 and changed[0].startswith("telluric:")
    before = record(telluric=str(bands))
    bands.write_text("6860 6920\n")  # the same file, other bands
    assert [d.split(":")[0] for d in run_differences(before, record(telluric=str(bands)))] == ["telluric"]
    assert [d.split(":")[0] for d in run_differences(record(), record(mask_ism=True))] == ["mask_ism"]


def test_resume_of_a_batch_refuses_another_telluric_set(tmp_path):
    out = tmp_path / "r.ecsv"
    fit([example_spectrum_path()], MODEL, out, workers=0, telluric="muse", **FAST)
    with pytest.raises(RunMismatchError, match="telluric"):
        fit([example_spectrum_path()], MODEL, out, workers=0, telluric="none", resume=True, **FAST)


def test_interstellar_masks_sit_at_rest_plus_minus_the_gas_velocity():
    wave, good = good_pixels(telluric="none", mask_ism=True)
    for centre in (5889.95, 5895.92, 5780.5, 6283.8):
        reach = centre * ISM_KMS / C_KMS  # 1 Å at 5890 Å
        assert not good[np.abs(wave - centre) <= reach + 2.0].any(), centre
    assert good[(wave > 5810) & (wave < 5880)].all()  # between the DIB and Na D: fitted
    assert len(ism_bands()) == 4


@pytest.mark.gdl
def test_both_engines_mask_the_same_pixels(tmp_path):
    spectrum = observed_example()
    results = {engine: fit_spectrum(spectrum, MODEL, engine=engine, **FAST_SPECTRUM) for engine in ("native", "gdl")}
    native, gdl = results["native"], results["gdl"]
    assert np.allclose(native.wavelength, gdl.wavelength, rtol=1e-9)
    assert np.array_equal(native.mask, gdl.mask) and native.n_masked == gdl.n_masked
    wave = native.wavelength
    assert not native.mask[(wave > 6890.0) & (wave < 6967.0)].any()  # the MUSE O2 B band, past the old mask
