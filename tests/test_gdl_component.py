"""The generated GDL component, run in real GDL with the real ULySS."""

import re

import numpy as np
import pytest

from conftest import SHARED, make_network, random_params, reference_file
from ulyss_ann import Interpolator
from ulyss_ann.gdl.component import generate_component, guess_keywords, resource_dir
from ulyss_ann.gdl.process import GDLError, run_gdl

MUSE = SHARED / "data" / "muse" / "ngc6397id000010554jd2456865p5826f000.fits"



def parse_rows(text, width):
    """Numbers printed by GDL with FORMAT='(e25.17)', one value per line, as rows of ``width``."""
    values = np.array([float(v) for v in re.findall(r"[-+]?\d\.\d+e[-+]\d+", text)])
    return values.reshape(-1, width)


@pytest.fixture(scope="module")
def trial7_component(tmp_path_factory):
    interp = Interpolator.read(reference_file("gsl_ann_trial7.fits"))
    folder = tmp_path_factory.mktemp("gslann")
    generate_component(interp, "gslann", folder)
    return interp, folder


def test_generated_code_reads_like_ulyss(tmp_path):
    interp = make_network((5, 7), ["tanh", "logistic", "linear"])
    interp.path = str(tmp_path / "net.fits")
    interp.write(interp.path)
    files = generate_component(interp, "TestNet", tmp_path / "out")
    names = sorted(f.name for f in files)
    shared = [p.name for p in resource_dir("gdl").glob("*.pro")]
    assert "ulyss_ann_read_network.pro" in shared
    assert names == sorted(["testnet.pro", "testnet_init.pro", "testnet_evaldata.pro", "testnet_eval.pro",
                            "testnet_spectrum.pro", "testnet.fits"] + shared)
    constructor = (tmp_path / "out" / "testnet.pro").read_text()
    for section in ("; NAME:", "; PURPOSE:", "; CALLING SEQUENCE:", "; KEYWORDS:", "; EXAMPLE:"):
        assert section in constructor
    assert "function testnet, TG=tg, LG=lg, ZG=zg, TL=tl, LL=ll, ZL=zl" in constructor
    evaluation = (tmp_path / "out" / "testnet_eval.pro").read_text()
    assert "h1 = tanh(z)" in evaluation and "h2 = 1d / (1d + exp(-((z > (-100d)) < 100d)))" in evaluation
    assert "return, ev.b3 + ev.w3 # h2" in evaluation
    # Generating twice gives the same code (no dates, nothing random).
    again = generate_component(interp, "TestNet", tmp_path / "again")
    for a, b in zip(files, again):
        if a.suffix == ".pro":
            assert a.read_text().replace(str(tmp_path / "out"), "") == b.read_text().replace(str(tmp_path / "again"), "")


def test_keywords_follow_uly_tgm():
    assert guess_keywords(["Teff", "Logg", "Fe/H"]) == [("TG", "TL"), ("LG", "LL"), ("ZG", "ZL")]
    assert guess_keywords(["Teff", "Logg", "Fe/H", "vsini"]) == [("TG", "TL"), ("LG", "LL"), ("ZG", "ZL"),
                                                                 ("P4G", "P4L")]


def _gdl_spectra(name, folder, params):
    body = "\n".join(f"print, {name}_spectrum([{', '.join(f'{float(v)!r}d' for v in p)}]), FORMAT='(e25.17)'"
                     for p in params)
    return run_gdl(body, folders=[folder], ulyss=False)


@pytest.mark.gdl(ulyss=False)
def test_spectrum_equals_numpy_for_trial7(trial7_component):
    interp, folder = trial7_component
    params = random_params(interp, 6, seed=11)
    gdl = parse_rows(_gdl_spectra("gslann", folder, params), interp.npix)
    np.testing.assert_allclose(gdl, interp.evaluate(params), rtol=1e-12, atol=0)


@pytest.mark.gdl(ulyss=False)
def test_spectrum_equals_numpy_for_other_layer_counts(tmp_path):
    for hidden, acts in [((6, 5, 4), ["logistic", "tanh", "relu", "linear"]), ((9,), ["tanh", "logistic"])]:
        # with a NODES table after the layers: the GDL reader must not trip on it
        interp = make_network(hidden, acts, npix=50, seed=len(hidden), nodes=[[5000.0, 2.0, -1.0]])
        interp.write(tmp_path / f"net{len(hidden)}.fits")
        interp = Interpolator.read(tmp_path / f"net{len(hidden)}.fits")
        folder = tmp_path / f"comp{len(hidden)}"
        generate_component(interp, f"net{len(hidden)}", folder)
        params = random_params(interp, 5, seed=2)
        gdl = parse_rows(_gdl_spectra(f"net{len(hidden)}", folder, params), interp.npix)
        np.testing.assert_allclose(gdl, interp.evaluate(params), rtol=1e-12, atol=1e-15)


FIT = """
cmp = gslann(TG=[5000,5500,6000], LG=1.66, ZG=[-1,-1.5], FIXPAR=[0,1,0])
spec = uly_spect_read('{muse}', 4800, 7350, /QUIET)
narrow = uly_spect_read('{muse}', 5500, 6500, /QUIET)
order = [0, 0, 1, 0]              ; full, full, narrow, full again: one component throughout
for k = 0, n_elements(order)-1 do begin
   if order[k] eq 0 then s = spec else s = narrow
   ulyss, s, cmp, MDEGREE=20, /QUIET, SOLUTION=sol
   p = *sol.cmp[0].para
   print, p.value, sol.losvd, sol.chisq, sol.cmp[0].weight, FORMAT='(e25.17)'
   heap_free, sol
endfor
"""


@pytest.mark.gdl
def test_ulyss_fit_of_muse_star_is_sane_and_repeat_safe(trial7_component):
    _, folder = trial7_component
    if not MUSE.is_file():
        pytest.skip(f"{MUSE} not found")
    rows = parse_rows(run_gdl(FIT.format(muse=MUSE), folders=[folder]), 7)
    teff, logg, feh, cz = rows[0, :4]
    assert 5000 < teff < 5700 and logg == pytest.approx(1.66) and -2.5 < feh < -1.5
    assert abs(cz) < 200  # km/s; NGC 6397 is at +18.5, the MUSE wavelength zero point differs
    # Identical fits, also after a fit on a narrower range in between.
    for row in (rows[1], rows[3]):
        np.testing.assert_allclose(row, rows[0], rtol=1e-10, atol=0)
    assert abs(rows[2, 0] - teff) > 1e-6  # the narrow fit is a different fit


@pytest.mark.gdl
def test_memory_flat_over_1000_evaluations(trial7_component):
    _, folder = trial7_component
    out = run_gdl("""
junk = check_math()               ; GDL starts with an 'illegal operand' flag pending: clear it
cmp = gslann(TG=5000, LG=2, ZG=-1.5)
cmp = gslann_init(cmp, WAVERANGE=[4800d, 7350d], VELSCALE=60d)
for i = 0, 99 do f = gslann_eval(*cmp.eval_data, [5000d, 2d, -1.5d])   ; warm up
m0 = memory(/CURRENT) & r0 = ulyss_ann_rss()
for i = 0, 999 do f = gslann_eval(*cmp.eval_data, [4500d + i, 2d, -1.5d])
m1 = memory(/CURRENT) & r1 = ulyss_ann_rss()
for i = 0, 9 do cmp = gslann_init(cmp, WAVERANGE=[4800d, 7350d], VELSCALE=60d)  ; cached: no work
m2 = memory(/CURRENT)
print, m0, m1, m2, r0, r1, check_math(), FORMAT='(6I15)'
""", folders=[folder])
    m0, m1, m2, r0, r1, flags = (int(v) for v in out.split())
    assert m1 - m0 < 5e6 and m2 - m1 < 1e5   # GDL's heap
    assert r0 > 0 and r1 - r0 < 5e6          # the process as the OS sees it
    assert flags == 0  # no floating-point exception left pending for uly_fit's CHECK_MATH


@pytest.mark.gdl
def test_reinit_on_new_grid_never_touches_the_network(trial7_component):
    interp, folder = trial7_component
    out = run_gdl("""
junk = check_math()               ; GDL starts with an 'illegal operand' flag pending: clear it
cmp = gslann(TG=5000, LG=2, ZG=-1.5)
cmp = gslann_init(cmp, WAVERANGE=[5500d, 6000d], VELSCALE=60d)
cmp = gslann_init(cmp, WAVERANGE=[4700d, 7400d], VELSCALE=70d)
net = *(*cmp.init_data).net
print, n_elements(*net.bias[2]), cmp.npix, exp(cmp.start), FORMAT='(2I8, F12.4)'
print, (*net.bias[2])[0:2], FORMAT='(e25.17)'
""", folders=[folder])
    lines = out.split("\n")
    npix, cmp_npix, start = lines[0].split()
    assert int(npix) == 2099
    # Pixel 0 of the log grid lies within one step of the network's first wavelength.
    assert abs(float(start) - 4762.2378) < 4762.2378 * 70 / 299792.458
    np.testing.assert_array_equal(parse_rows("\n".join(lines[1:]), 3)[0], interp.weights[-1][0, :3])


@pytest.mark.gdl
@pytest.mark.parametrize("statement, message", [
    ("cmp = gslann(MODEL_FILE='/nonexistent/net.fits')", "interpolator file not found: /nonexistent/net.fits"),
    ("cmp = gslann(TG=[5000, 9000])", "guess Teff = 9000 K outside the limits [3500, 8000]"),
    ("cmp = gslann(ZG=0.5, ZL=[-2d, 0d])", "guess Fe/H = 0.5 dex outside the limits [-2, 0]"),
    ("cmp = gslann(TL=[1d, 2d, 3d])", "TL must be [low, high]"),
    ("cmp = gslann_init(gslann(), WAVERANGE=[8000d, 9000d], VELSCALE=60d)", "does not overlap the network range"),
])
def test_errors_are_one_gdl_message(trial7_component, statement, message):
    _, folder = trial7_component
    with pytest.raises(GDLError, match=re.escape(message)):
        run_gdl(statement, folders=[folder])


@pytest.mark.gdl(ulyss=False)
def test_malformed_files_and_missing_ulyss(trial7_component, tmp_path):
    _, folder = trial7_component
    (tmp_path / "junk.fits").write_text("not a fits file at all\n" * 50)
    with pytest.raises(GDLError, match="junk.fits"):
        run_gdl(f"f = gslann_spectrum([5000d, 2d, -1d], MODEL_FILE='{tmp_path / 'junk.fits'}')",
                folders=[folder], ulyss=False)
    other = make_network((4,), npix=20)
    other.write(tmp_path / "other.fits")
    with pytest.raises(GDLError, match=r"architecture \[3,4,20\] differs from \[3,32,64,2099\]"):
        run_gdl(f"f = gslann_spectrum([5000d, 2d, -1d], MODEL_FILE='{tmp_path / 'other.fits'}')",
                folders=[folder], ulyss=False)
    with pytest.raises(GDLError, match="ULySS is not on !PATH"):
        run_gdl("cmp = gslann()", folders=[folder], ulyss=False)


@pytest.mark.gdl
def test_lsf_is_injected_once_and_exactly(trial7_component, tmp_path):
    """LSF in the rebinned layer == LSF applied to each evaluated spectrum (the layer is linear)."""
    _, folder = trial7_component
    lsf = tmp_path / "lsf.txt"
    lsf.write_text("0. 40. 0. 0. 5000\n0. 60. 0. 0. 6000\n0. 80. 0. 0. 7000\n")
    out = run_gdl(f"""
plain = gslann_init(gslann(), WAVERANGE=[4800d, 7350d], VELSCALE=60d)
broad = gslann_init(gslann(LSF='{lsf}'), WAVERANGE=[4800d, 7350d], VELSCALE=60d)
p = [5200d, 2.5d, -1.8d]
s = uly_spect_alloc(DATA=gslann_eval(*plain.eval_data, p), START=plain.start, STEP=plain.step, SAMPLING=1)
uly_spect_lsfconvol, '{lsf}', s, /QUIET
f = gslann_eval(*broad.eval_data, p)
print, max(abs(f - *s.data) / abs(*s.data)), FORMAT='(e25.17)'
print, stddev(f - gslann_eval(*plain.eval_data, p)), FORMAT='(e25.17)'
print, strpos(broad.descr, 'lsf:') ge 0
""", folders=[folder])
    values = parse_rows(out, 1)[:, 0]
    assert values[0] < 1e-12        # identical to convolving each spectrum
    assert values[1] > 1e-3         # and it did broaden the lines
    assert out.strip().endswith("1")
    with pytest.raises(GDLError, match="LSF file not found: /nonexistent/lsf.txt"):
        run_gdl("cmp = gslann(LSF='/nonexistent/lsf.txt')", folders=[folder])
