"""The ulyss-ann command line, end to end as a user runs it (in this process, or in its own where that matters)."""

import os
import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from conftest import cli_here, make_network, reference_file
from ulyss_ann.spectra.examples import example_interpolator_path


def run(*args, cwd=None, env=None):
    """A command in this process (conftest.cli_here), or, given an environment, in a Python of its own."""
    if env is None:
        return cli_here(*args, cwd=cwd)
    return subprocess.run([sys.executable, "-m", "ulyss_ann.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ulyss-ann: error:"), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_help_teaches_the_workflow():
    result = run("--help")
    assert result.returncode == 0
    for text in ("ulyss-ann info -m MODEL", "ulyss-ann eval -m MODEL --param Teff=5000", "--table"):
        assert text in result.stdout
    eval_help = run("eval", "--help").stdout
    assert "--strict" in eval_help and "PARAMS" in eval_help


def _options(parser, path=()):
    """(command, option) for every option of every command of ``parser``."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, path + (name,))
        elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield " ".join(path), action


def test_every_option_says_what_it_does_and_its_default():
    import argparse

    from ulyss_ann.cli.main import build_parser

    undocumented, silent_defaults, hidden = [], [], []
    for command, action in _options(build_parser()):
        name = f"{command} {'/'.join(action.option_strings) or action.dest}"
        if action.help == argparse.SUPPRESS and action.dest == "deprecated_model":
            hidden.append(command)  # the positional MODEL of before -m: accepted, not shown
            continue
        if not action.help or action.help == argparse.SUPPRESS:
            undocumented.append(name)
            continue
        default = action.default
        if action.option_strings and default not in (None, False, [], ()) and not isinstance(
                action, argparse._StoreTrueAction):
            shown = f"{default:g}" if isinstance(default, float) else str(default)
            if "default" not in action.help and shown not in action.help:
                silent_defaults.append(name)
    assert not undocumented and not silent_defaults, (undocumented, silent_defaults)
    assert sorted(hidden) == ["eval", "gdl-export", "info"]


def test_info_describes_a_network(network_file):
    path, interp = network_file
    result = run("info", "-m", path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "version 0.0.3" in out and "[3, 5, 7, 40]" in out and f"{interp.n_weights:,}" in out
    assert "4762.238–4810.988 Å, 40 px, 1.25 Å per pixel (linear sampling), air wavelengths" in out
    for p in interp.parameters:
        assert p.name in out
    assert "Teff     K          3500      8000" in out


def test_info_defaults_to_the_bundled_example_and_says_surrogate():
    result = run("info")
    assert result.returncode == 0, result.stderr
    assert "bundled example" in result.stdout and "SURROGATE" in result.stdout
    assert example_interpolator_path() in result.stdout


def test_eval_one_spectrum_writes_fits_with_wcs_and_a_figure(network_file, tmp_path):
    path, interp = network_file
    out, png = tmp_path / "spec.fits", tmp_path / "spec.png"
    result = run("eval", "-m", path, "--param", "Teff=5000", "--param", "logg=2", "-p", "FE/H=-1.5",
                 "-o", out, "--plot", png)
    assert result.returncode == 0, result.stderr
    with fits.open(out) as hdul:
        flux, header = hdul[0].data, hdul[0].header
    np.testing.assert_array_equal(flux, interp.evaluate([5000.0, 2.0, -1.5]))
    wave = WCS(header).pixel_to_world(np.arange(flux.size)).to_value("Angstrom")  # CUNIT1 says Å
    np.testing.assert_allclose(wave, interp.wavelength.wavelength, rtol=1e-12)
    assert header["CTYPE1"] == "AWAV" and header["CUNIT1"] == "Angstrom"
    assert (header["P_NM1"], header["P_VAL1"], header["P_UN1"]) == ("Teff", 5000.0, "K")
    assert header["P_NM3"] == "Fe/H" and header["P_VAL3"] == -1.5
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10000


def test_eval_authors_trial7_matches_independent_forward_pass(tmp_path):
    """Done-when of the foundation issue: ulyss-ann eval on trial 7 to <= 1e-10."""
    path = reference_file("gsl_ann_trial7.fits")
    out = tmp_path / "t7.fits"
    result = run("eval", "-m", path, "--param", "Teff=5000", "--param", "Logg=2", "--param", "Fe/H=-1.5", "-o", out)
    assert result.returncode == 0, result.stderr
    with fits.open(path) as hdul:
        layers = dict((h.header["I_LAYER"], h.data.astype(float)) for h in hdul)
        head = hdul[0].header
        x = np.array([(v - head[f"I_PR_B{n}"]) / head[f"I_PR_S{n}"] for n, v in zip((1, 2, 3), (5000, 2, -1.5))])
    for k in (1, 2):
        x = 1 / (1 + np.exp(-(layers[k][0] + x @ layers[k][1:])))
    expected = layers[3][0] + x @ layers[3][1:]
    np.testing.assert_allclose(fits.getdata(out), expected, rtol=1e-10, atol=0)


@pytest.mark.filterwarnings("ignore:.dex. did not parse as fits unit")
def test_eval_table_gives_image_and_params_hdu(network_file, tmp_path):
    path, interp = network_file
    table = Table({"teff": [4500.0, 5000.0, 6000.0], "LOGG": [1.5, 2.5, 4.0], "Fe/H": [-2.0, -1.0, 0.0]})
    table["teff"].unit = "K"
    table.write(tmp_path / "params.ecsv")
    out = tmp_path / "many.fits"
    result = run("eval", "-m", path, "--table", tmp_path / "params.ecsv", "-o", out, "--plot", tmp_path / "m.png")
    assert result.returncode == 0, result.stderr
    with fits.open(out) as hdul:
        assert hdul[0].data.shape == (3, interp.npix)
        params = Table.read(hdul["PARAMS"])
        np.testing.assert_array_equal(hdul[0].data, interp.evaluate(np.array(
            [[4500.0, 1.5, -2.0], [5000.0, 2.5, -1.0], [6000.0, 4.0, 0.0]])))
    assert params.colnames == ["Teff", "Logg", "Fe/H"] and str(params["Teff"].unit) == "K"
    np.testing.assert_array_equal(params["Logg"], [1.5, 2.5, 4.0])


def test_out_of_bounds_warns_then_strict_refuses(network_file, tmp_path):
    path, _ = network_file
    args = ["eval", "-m", path, "-p", "Teff=9500", "-p", "Logg=2", "-p", "Fe/H=-1"]
    warned = run(*args, "-o", tmp_path / "a.fits")
    assert warned.returncode == 0 and (tmp_path / "a.fits").exists()
    assert "ulyss-ann: warning: Teff = 9500" in warned.stderr and "extrapolates" in warned.stderr
    strict = run(*args, "-o", tmp_path / "b.fits", "--strict")
    assert_one_line_error(strict, "Teff = 9500", "[3500, 8000] K")
    assert not (tmp_path / "b.fits").exists()


@pytest.mark.parametrize("extra, fragments", [
    (["-p", "Teff=5000", "-p", "Logg=2"], ["missing parameter(s) Fe/H"]),
    (["-p", "Teff=5000", "-p", "Logg=2", "-p", "Fe/H=-1", "-p", "Vsini=3"], ["unknown parameter 'Vsini'"]),
    (["-p", "Teff"], ["expected NAME=VALUE"]),
    (["-p", "Teff=hot", "-p", "Logg=2", "-p", "Fe/H=-1"], ["'hot' is not a number"]),
    ([], ["no parameters"]),
])
def test_eval_parameter_errors(network_file, tmp_path, extra, fragments):
    path, _ = network_file
    assert_one_line_error(run("eval", "-m", path, *extra, "-o", tmp_path / "x.fits"), *fragments)


def test_eval_table_errors(network_file, tmp_path):
    path, _ = network_file
    Table({"Teff": [5000.0], "Logg": [2.0]}).write(tmp_path / "short.ecsv")
    assert_one_line_error(run("eval", "-m", path, "--table", tmp_path / "short.ecsv", "-o", tmp_path / "x.fits"),
                          "short.ecsv", "missing column(s) Fe/H")
    (tmp_path / "blanks.txt").write_text("Teff Logg Fe/H\n5000 2 -1\n")  # text columns: read as astropy's ascii
    result = run("eval", "-m", path, "--table", tmp_path / "blanks.txt", "-o", tmp_path / "t.fits")
    assert result.returncode == 0 and "1 spectrum," in result.stdout, result.stderr
    (tmp_path / "junk.ecsv").write_text("\x00\x01 not a table")
    assert_one_line_error(run("eval", "-m", path, "--table", tmp_path / "junk.ecsv", "-o", tmp_path / "x.fits"),
                          "junk.ecsv", "cannot read as a table")


def test_eval_will_not_overwrite_without_asking(network_file, tmp_path):
    path, _ = network_file
    out = tmp_path / "s.fits"
    out.write_text("precious")
    args = ["eval", "-m", path, "-p", "Teff=5000", "-p", "Logg=2", "-p", "Fe/H=-1", "-o", out]
    assert_one_line_error(run(*args), "s.fits", "--overwrite")
    assert out.read_text() == "precious"
    assert run(*args, "--overwrite").returncode == 0


def test_nothing_to_do_is_an_error(network_file):
    path, _ = network_file
    assert_one_line_error(run("eval", "-m", path, "-p", "Teff=5000"), "nothing to do")


def test_bad_model_files_give_one_line_naming_them(tmp_path):
    (tmp_path / "notfits.fits").write_text("hello")
    assert_one_line_error(run("info", "-m", tmp_path / "notfits.fits"), "notfits.fits", "not a FITS file")
    assert_one_line_error(run("info", "-m", tmp_path / "absent.fits"), "absent.fits", "no such file")
    net = make_network()
    net.write(tmp_path / "net.fits")
    (tmp_path / "cut.fits").write_bytes((tmp_path / "net.fits").read_bytes()[:5000])
    assert_one_line_error(run("eval", "-m", tmp_path / "cut.fits", "-p", "Teff=5000", "-o", tmp_path / "o.fits"),
                          "cut.fits", "truncated")


def test_console_script_is_installed():
    """The ulyss-ann script of this interpreter's own install (not another one on the PATH)."""
    exe = os.path.join(os.path.dirname(sys.executable), "ulyss-ann")
    result = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("ulyss-ann ")


def _export_and_path(network_file, tmp_path, ulyss_dir):
    """``gdl-export``'s output, and GDL_PATH as a shell gets it from the printed line (ULYSS_DIR=/opt/ulyss)."""
    env = dict(os.environ, ULYSS_DIR=str(ulyss_dir), XDG_DATA_HOME=str(tmp_path / "data"))
    result = run("gdl-export", "-m", network_file[0], "--name", "mynet", "-o", tmp_path / "comp", env=env)
    assert result.returncode == 0, result.stderr
    for name in ("mynet.pro", "mynet_init.pro", "mynet_eval.pro", "mynet_spectrum.pro", "mynet.fits"):
        assert (tmp_path / "comp" / name).is_file()
    assert "ulyss, 'star.fits', mynet(TG=[5000,5500,6000]" in result.stdout
    export = [line.strip() for line in result.stdout.splitlines() if line.strip().startswith("export GDL_PATH=")]
    shell = subprocess.run(["bash", "-c", f'{export[0]}; printf %s "$GDL_PATH"'], capture_output=True, text=True,
                           env=dict(os.environ, ULYSS_DIR="/opt/ulyss"))
    return result.stdout, shell.stdout.split(":")


def test_gdl_export_writes_a_component_and_the_path_line_to_the_ulyss_found(network_file, tmp_path):
    ulyss = tmp_path / "ulyss"
    (ulyss / "pgm").mkdir(parents=True)
    (ulyss / "pgm" / "ulyss.pro").write_text("")  # what makes a folder ULySS for the search
    out, path = _export_and_path(network_file, tmp_path, ulyss)
    from ulyss_ann.gdl.process import SYSTEM_LIBRARIES

    assert path == [f"+{tmp_path / 'comp'}", f"+{ulyss}/pgm", f"+{ulyss}/dep", *SYSTEM_LIBRARIES]
    assert f"uly_root = '{ulyss}'" in out and "ULySS was not found" not in out


@pytest.mark.skipif(os.path.isfile("/usr/local/share/ulyss/pgm/ulyss.pro"), reason="ULySS in /usr/local/share/ulyss")
def test_gdl_export_without_ulyss_prints_lines_that_paste_once_ulyss_dir_is_set(network_file, tmp_path):
    out, path = _export_and_path(network_file, tmp_path, tmp_path / "no-ulyss")
    assert path[:3] == [f"+{tmp_path / 'comp'}", "+/opt/ulyss/pgm", "+/opt/ulyss/dep"]
    from ulyss_ann.gdl.process import SYSTEM_LIBRARIES

    assert path[3:] == SYSTEM_LIBRARIES
    assert "export ULYSS_DIR=/path/to/ulyss   # ULySS was not found here" in out
    assert "uly_root = getenv('ULYSS_DIR')" in out


def test_gdl_export_refuses_a_bad_name(network_file, tmp_path):
    path, _ = network_file
    assert_one_line_error(run("gdl-export", "-m", path, "--name", "9lives", "-o", tmp_path / "c"),
                          "--name '9lives'", "letter")


@pytest.mark.parametrize("args, fragments", [
    (["-o", "/nonexistent/dir/r.ecsv"], ["/nonexistent/dir", "does not exist"]),
    (["--workers", "-1"], ["workers (-j) -1"]),
    (["--guess", "Teff=hot"], ["--guess", "expected numbers"]),
    (["--range", "7000,5000"], ["--range", "LMIN < LMAX"]),
    (["--fix", "Logg"], ["--fix", "NAME=VALUE"]),
    (["--fix", "Vsini=3"], ["unknown parameter 'Vsini'"]),
])
def test_fit_option_errors_are_one_line(tmp_path, args, fragments):
    spectrum = tmp_path / "s.txt"
    spectrum.write_text("\n".join(f"{5000 + i} 1" for i in range(20)))
    result = run("fit", spectrum, "-o", tmp_path / "r.ecsv", *args) if "-o" not in args else \
        run("fit", spectrum, *args)
    assert_one_line_error(result, *fragments)


def test_a_closed_pipe_ends_quietly_without_a_traceback():
    """`ulyss-ann info | head -1`: the reader is gone before we write; no traceback, the shell's 141."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run([sys.executable, "-m", "ulyss_ann.cli", "info", "-m", "example"], stdout=write_end,
                                stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert result.returncode == 141 and result.stderr == "", result.stderr
