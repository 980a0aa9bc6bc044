"""The memory budget (issue 24, items 2 and 9): what cannot fit is refused from the headers, in one line.

Files declaring huge sizes are sparse (a few KB on disk): the checks must refuse them before
reading. The CLI runs under an address-space limit, so that code reading them at their
declared size fails here with MemoryError instead of taking the machine.
"""

import os
import resource
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from conftest import CLI_FAST, FAST, MODEL, TRUTH, cli, simulated_batch
from ulyss_ann import UlyssAnnError, read_spectrum
from ulyss_ann.cli.main import main
from ulyss_ann.fitting.batch.driver import fit
from ulyss_ann.fitting.native_engine.engine import NativeEngine
from ulyss_ann.spectra.examples import example_interpolator_path
from ulyss_ann.spectra.reader_registry import SpectrumReadError

ADDRESS_SPACE = 3 * 2**30  # enough for the CLI (it needs < 2 GB), far from what the bombs declare


def _limited():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def limited_cli(*args, **kwargs):
    return cli(*args, preexec_fn=_limited, **kwargs)


def sparse_fits(path, header):
    """A FITS file of one HDU whose data (as ``header`` declares them) are a hole: its full length
    on paper, a few KB on disk."""
    text = header.tostring().encode()
    nbytes = abs(header["BITPIX"]) // 8 * int(np.prod([header[f"NAXIS{k}"] for k in range(1, header["NAXIS"] + 1)]))
    with open(path, "wb") as handle:
        handle.write(text)
        handle.seek(len(text) + nbytes + (-nbytes) % 2880 - 1)
        handle.write(b"\0")
    return path


def test_a_sparse_fits_declaring_a_billion_pixels_is_an_error_row(tmp_path):
    header = fits.Header([("SIMPLE", True), ("BITPIX", -32), ("NAXIS", 1), ("NAXIS1", 10**9),
                          ("CRVAL1", 4800.0), ("CDELT1", 1.25)])
    bomb = sparse_fits(tmp_path / "bomb.fits", header)
    run = limited_cli("fit", bomb, "-j", "0", "-o", tmp_path / "r.ecsv", *CLI_FAST)
    assert run.returncode == 3 and "Traceback" not in run.stderr, run.stderr
    status = Table.read(tmp_path / "r.ecsv")["status"][0]
    assert status.startswith(f"error: {bomb}: a spectrum of 1000000000 pixels, over the memory budget of "
                             "1000000 pixels") and "ULYSS_ANN_MAX_PIXELS" in status


@pytest.fixture
def spectra(tmp_path):
    return simulated_batch(tmp_path, TRUTH[:3], lambda i: 20.0 * i)


def one_pixel_more(source, target):
    """A copy of a MUSE-like spectrum file with one more pixel at its red end."""
    with fits.open(source) as hdul:
        for hdu in hdul:
            if hdu.data is not None:
                hdu.data = np.append(hdu.data, hdu.data[-1])
        hdul.writeto(target)
    return target


def test_a_spectrum_over_the_pixel_budget_is_an_error_row_and_the_batch_goes_on(spectra, tmp_path):
    npix = read_spectrum(spectra[0]).flux.size
    big = one_pixel_more(spectra[1], tmp_path / "big.fits")
    env = dict(os.environ, ULYSS_ANN_MAX_PIXELS=str(npix))
    run = cli("fit", spectra[0], big, spectra[2], "-j", "0", "-o", tmp_path / "r.ecsv", *CLI_FAST, env=env)
    assert run.returncode == 1, run.stderr  # some fitted, some not
    status = list(Table.read(tmp_path / "r.ecsv")["status"])
    assert status[0] == status[2] == "ok"
    need = 2600 * (npix + 1) / 1e9  # GB, at the measured bytes per pixel
    assert status[1] == (f"error: {big}: a spectrum of {npix + 1} pixels, over the memory budget of {npix} pixels "
                         f"per spectrum (a native fit needs ~{need:.2g} GB); rebin it to fewer pixels "
                         "(the network's step is enough), or raise ULYSS_ANN_MAX_PIXELS if the machine has the memory")


def test_arrays_over_the_pixel_budget_are_refused_before_the_fit(spectra, monkeypatch):
    from ulyss_ann import fit_spectrum

    spectrum = read_spectrum(spectra[0])
    monkeypatch.setenv("ULYSS_ANN_MAX_PIXELS", str(spectrum.flux.size - 1))
    with pytest.raises(UlyssAnnError, match=f"a spectrum of {spectrum.flux.size} pixels, over the memory budget"):
        fit_spectrum((spectrum.wavelength, spectrum.flux, spectrum.error), MODEL,
                     **{k: v for k, v in FAST.items() if k != "progress"})


def test_native_blocks_keep_to_the_pixel_budget(spectra, tmp_path, monkeypatch):
    npix = read_spectrum(spectra[0]).flux.size
    monkeypatch.setenv("ULYSS_ANN_MAX_PIXELS", str(2 * npix))
    blocks = []
    solve_block = NativeEngine._solve_block

    def recorded(self, prepared_fits, specs, layer, voff):
        blocks.append(sum(s.npix for s in specs))
        return solve_block(self, prepared_fits, specs, layer, voff)

    monkeypatch.setattr(NativeEngine, "_solve_block", recorded)
    # the three share their grid (simulated alike): one block of three without the budget
    table = fit(spectra, MODEL, tmp_path / "r.ecsv", workers=0, **FAST)
    assert list(table["status"]) == ["ok"] * 3
    assert len(blocks) > 1 and max(blocks) <= 2 * npix, blocks


def test_a_long_text_file_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    monkeypatch.setenv("ULYSS_ANN_MAX_PIXELS", "20")
    text = tmp_path / "spec.txt"
    lines = ["# " + "x" * 200] * 13 + [f"{5000 + i} 1.0 0.01" for i in range(15)]  # 15 pixels, 2.9 kB
    text.write_text("\n".join(lines) + "\n")
    with pytest.raises(SpectrumReadError, match=r"a text file of 2\d\d\d bytes, over the memory budget for a text "
                                                r"spectrum \(128 bytes per pixel x 20 pixels\)"):
        read_spectrum(text)


def test_a_malformed_budget_is_one_line_naming_the_variable(spectra, monkeypatch):
    monkeypatch.setenv("ULYSS_ANN_MAX_PIXELS", "lots")
    with pytest.raises(UlyssAnnError, match="ULYSS_ANN_MAX_PIXELS = 'lots': expected a positive whole number"):
        read_spectrum(spectra[0])


def test_a_malformed_budget_stops_a_batch_before_any_row(spectra, tmp_path, monkeypatch):
    """The run's mistake, not each spectrum's: no error rows that a plain --resume would keep."""
    monkeypatch.setenv("ULYSS_ANN_MAX_PIXELS", "abc")
    output = tmp_path / "r.ecsv"
    with pytest.raises(UlyssAnnError, match="ULYSS_ANN_MAX_PIXELS = 'abc'"):
        fit(spectra, MODEL, output, workers=0, **FAST)
    assert not output.exists() and not Path(f"{output}.journal.jsonl").exists()


def test_an_interpolator_declaring_13e9_values_is_one_line(tmp_path):
    header = fits.getheader(example_interpolator_path())
    header["NAXIS2"] = 6_200_000  # x 2099 pixels: 1.3e10 values, 97 GiB as float64
    bomb = sparse_fits(tmp_path / "bomb.fits", header)
    run = limited_cli("info", "-m", bomb)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1, run.stderr
    assert lines[0] == (f"ulyss-ann: error: {bomb}: its headers declare 1.3e+10 values (97.0 GiB as float64), over "
                        "the memory budget of 50000000 for an interpolator; raise ULYSS_ANN_MAX_MODEL_VALUES if the "
                        "network is genuinely that large")


@pytest.mark.parametrize("cdelt", [0.0, -1.25])
def test_an_interpolator_with_a_step_not_positive_is_one_line(tmp_path, capsys, cdelt):
    with fits.open(example_interpolator_path()) as hdul:
        hdul[0].header["CDELT1"] = cdelt
        hdul.writeto(tmp_path / "net.fits")
    assert main(["info", "-m", str(tmp_path / "net.fits")]) == 2
    assert capsys.readouterr().err == (f"ulyss-ann: error: {tmp_path / 'net.fits'}: HDU 0: CDELT1 = {cdelt!r}: the "
                                       "wavelength step must be positive (Å per pixel, or ln Å per pixel on a -LOG "
                                       "axis)\n")


def test_the_bundled_networks_and_spectrum_are_far_within_the_budget():
    from ulyss_ann.model.limits import FILE_VALUES_PER_PIXEL, declared_data, max_model_values, max_pixels
    from ulyss_ann.spectra.examples import example_spectrum_path

    # the largest, the MILES ensemble (1.4e6 values), is 35 times under the budget; trial 7 350 times
    for name in ("example_interpolator.fits", "miles_trial7x5.fits"):
        path = Path(example_interpolator_path()).parent / name
        assert sum(h.values for h in declared_data(path)) * 30 < max_model_values()
    assert sum(h.values for h in declared_data(example_spectrum_path())) * 100 < FILE_VALUES_PER_PIXEL * max_pixels()
