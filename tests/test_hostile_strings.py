"""An interpolator file is data, never code: hostile names, units and paths in real GDL.

The hostile strings try to run ``touch $ULYSS_ANN_PWNED``; every test that reaches GDL
points that variable at a file in its own folder (GDL runs in scratch folders of its
own, so a relative name would vanish with them) and checks that the file never appears,
and that a legitimate odd string (an apostrophe, ``km/s``, non-ASCII) comes back from
GDL verbatim.
"""

import os
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from conftest import cli_here, make_network
from ulyss_ann import Interpolator, InterpolatorFileError, ParameterError, UlyssAnnError
from ulyss_ann.spectra.examples import example_interpolator_path
from ulyss_ann.gdl.component import generate_component
from ulyss_ann.gdl.literals import check_gdl_path, gdl_comment, gdl_string
from ulyss_ann.gdl.process import run_gdl
from ulyss_ann.spectra.simulate import simulate_spectrum, write_muse_spectrum

#: A valid FITS string that, pasted into GDL code, ends the string and runs a shell command.
HOSTILE_UNIT = "K' & spawn, 'touch $ULYSS_ANN_PWNED' ;"
#: Strings that must survive the trip to GDL and back unchanged.
ODD_STRINGS = ["km/s", "it's", "o'brien's ''quoted''", 'a "double" quote', "x & spawn, 'touch $ULYSS_ANN_PWNED'",
               "semi ; colon", "dollar $HOME $(touch $ULYSS_ANN_PWNED)", "back\\slash", "new\nline'\n spawn, 'touch $ULYSS_ANN_PWNED'",
               "tab\tand\rreturn", "Ångström é ü", "", " ", "'"]


@pytest.fixture(autouse=True)
def pwned_marker(tmp_path, monkeypatch):
    """Where a hostile string that ran would leave its mark (inherited by GDL and the CLI)."""
    monkeypatch.setenv("ULYSS_ANN_PWNED", str(tmp_path / "PWNED"))


def assert_no_command_ran(*folders):
    for folder in folders:
        found = [os.path.join(d, f) for d, _, files in os.walk(folder) for f in files if f == "PWNED"]
        assert not found, f"a hostile string ran a command: {found}"


def hostile_unit_file(path):
    """The bundled example network with the unit of Teff set to HOSTILE_UNIT (in every HDU)."""
    interp = Interpolator.read(example_interpolator_path())
    teff = replace(interp.parameters[0], unit=HOSTILE_UNIT)
    interp = replace(interp, parameters=(teff,) + interp.parameters[1:], path=None)
    interp.write(path)
    return path


def rewrite_keyword(source, target, key, value):
    """Copy ``source`` with ``key`` set to ``value`` in every layer HDU (as a file's author could)."""
    with fits.open(source) as hdul:
        for hdu in hdul:
            if key in hdu.header:
                hdu.header[key] = value
        hdul.writeto(target)
    return target


# ---------------------------------------------------------------- the escaping itself

def test_gdl_string_never_leaves_a_quoted_string_or_a_line():
    for text in ODD_STRINGS:
        literal = gdl_string(text)
        assert "\n" not in literal and "\r" not in literal
        # Outside the quoted pieces there are only '+', brackets, 'string', byte literals.
        outside = "".join(literal.split("'")[0::2])
        assert set(outside) <= set("()[]+ ,0123456789bstring"), (text, literal)
    comment = gdl_comment("a\nb\r\x0bc ; & $ é")
    assert "\n" not in comment and "\r" not in comment and "\x0b" not in comment
    assert comment == "a\\nb\\r\\x0bc ; & $ \\xe9"


ECHO_SCRIPT = """
import json, sys
from ulyss_ann.gdl.session import open_session
from ulyss_ann import UlyssAnnError
texts = json.loads(sys.argv[3])
with open_session([sys.argv[2]], backend=sys.argv[1], timeout=120) as session:
    back = [session.call("ulyss_ann_test_echo", t) for t in texts]
    try:
        session.call("print, 1 & spawn, 'touch $ULYSS_ANN_PWNED' & x = abs", 1.0)
        refused = False
    except UlyssAnnError as exc:
        refused = "GDL function" in str(exc)
print(json.dumps({"back": back, "refused": refused}))
"""


@pytest.mark.gdl
@pytest.mark.parametrize("backend", ["subprocess", pytest.param("pygdl", marks=pytest.mark.pygdl)])
def test_strings_sent_to_a_gdl_session_come_back_verbatim(backend, tmp_path):
    """Both bridges, each in a fresh process (python3-gdl reads GDL_PATH once, at import)."""
    import json

    folder = tmp_path / "echo"
    folder.mkdir()
    (folder / "ulyss_ann_test_echo.pro").write_text("function ulyss_ann_test_echo, s\nreturn, s\nend\n")
    texts = [t for t in ODD_STRINGS if t or backend != "pygdl"]  # python3-gdl returns '' as None
    result = subprocess.run([sys.executable, "-c", ECHO_SCRIPT, backend, str(folder), json.dumps(texts)],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["back"] == texts
    assert answer["refused"]
    assert_no_command_ran(tmp_path)


def test_paths_gdl_would_mangle_are_refused_in_one_line():
    with pytest.raises(UlyssAnnError, match=r"--lsf '/data/\$HOME/lsf.txt': GDL cannot use a path containing '\$'"):
        check_gdl_path("/data/$HOME/lsf.txt", "--lsf")
    with pytest.raises(UlyssAnnError, match="':'"):
        check_gdl_path("/data/a:b", "GDL folder", search_path=True)
    assert check_gdl_path("/data/o'brien é/lsf.txt", "--lsf") == "/data/o'brien é/lsf.txt"


# ---------------------------------------------------------------- names are checked when read

@pytest.mark.parametrize("name", ["Teff' & spawn, 'touch $ULYSS_ANN_PWNED' ;", "Te ff", "T;eff", "T$eff", "9teff", ""])
def test_hostile_parameter_names_are_refused_naming_file_hdu_and_keyword(name, tmp_path):
    path = rewrite_keyword(example_interpolator_path(), tmp_path / "evil.fits", "I_P_NM1", name)
    with pytest.raises(InterpolatorFileError) as error:
        Interpolator.read(path)
    message = str(error.value)
    assert message.startswith(f"{path}: HDU 0 (TERM_WEIGHTS): keyword I_P_NM1: parameter name")
    assert "\n" not in message
    result = cli_here("info", "-m", path, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "keyword I_P_NM1" in result.stderr
    result = cli_here("gdl-export", "-m", path, "-o", tmp_path / "out", cwd=tmp_path)
    assert result.returncode == 2 and "keyword I_P_NM1" in result.stderr and not (tmp_path / "out").exists()


def test_parameters_built_in_memory_are_checked_too():
    interp = make_network()
    with pytest.raises(ParameterError, match="parameter name"):
        replace(interp.parameters[0], name="Teff'\nspawn")
    with pytest.raises(ParameterError, match="parameter unit"):
        replace(interp.parameters[0], unit="K\n; spawn, 'touch $ULYSS_ANN_PWNED'")


# ---------------------------------------------------------------- units are escaped

def test_info_shows_a_hostile_unit_as_data(tmp_path):
    path = hostile_unit_file(tmp_path / "unit.fits")
    result = cli_here("info", "-m", path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert HOSTILE_UNIT in result.stdout


@pytest.mark.gdl
def test_exported_component_with_hostile_unit_runs_no_command(tmp_path):
    path = hostile_unit_file(tmp_path / "unit.fits")
    out = tmp_path / "out"
    result = cli_here("gdl-export", "-m", path, "--name", "evilnet", "-o", out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    code = (out / "evilnet.pro").read_text()
    assert "(*cmp.para)[0].unit = 'K'' & spawn, ''touch $ULYSS_ANN_PWNED'' ;'" in code
    # The component is constructed (the unit's statements would run here) and its unit read back.
    printed = run_gdl("cmp = evilnet()\nprint, '<' + (*cmp.para)[0].unit + '>'\n"
                      "print, '<' + (*cmp.para)[2].name + '>'", folders=[out])
    assert f"<{HOSTILE_UNIT}>" in printed and "<Fe/H>" in printed
    # A guess outside the limits: the error message carries the unit verbatim, nothing runs.
    with pytest.raises(UlyssAnnError, match="outside the limits"):
        run_gdl("cmp = evilnet(TG=100)", folders=[out])
    assert_no_command_ran(tmp_path, out)


@pytest.mark.gdl
def test_odd_paths_and_file_names_reach_gdl_verbatim(tmp_path):
    """An apostrophe, a newline, ';' and non-ASCII in the file and folder names of an export."""
    source = tmp_path / "evil\n; spawn, 'touch $ULYSS_ANN_PWNED'\n.fits"
    Interpolator.read(example_interpolator_path()).write(source)
    out = tmp_path / "o'brien; & é"
    interp = Interpolator.read(source)
    generate_component(interp, "oddnet", out)
    header = (out / "oddnet.pro").read_text()
    assert ";                 interpolator evil\\n; spawn, 'touch $ULYSS_ANN_PWNED'\\n.fits" in header
    # The default MODEL_FILE is the folder's copy: GDL opens it through the escaped literal.
    printed = run_gdl("cmp = oddnet()\nprint, '<' + (*cmp.init_data).model + '>'\n"
                      "f = oddnet_spectrum([5000d, 2d, -1.5d])\nprint, n_elements(f)",
                      folders=[out])
    assert f"<{out / 'oddnet.fits'}>" in printed and "2099" in printed
    assert_no_command_ran(tmp_path)
    # The GDL_PATH line that gdl-export prints is quoted for the shell: pasted, it runs nothing.
    result = cli_here("gdl-export", "-m", source, "--name", "oddnet", "-o", out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.strip().startswith("export GDL_PATH="))
    shell = subprocess.run(["bash", "-c", line.strip() + '; printf %s "$GDL_PATH"'], capture_output=True, text=True)
    assert shell.stdout.startswith(f"+{out}:")
    assert_no_command_ran(tmp_path)
    # A folder GDL would expand is refused before anything is written.
    result = cli_here("gdl-export", "-m", source, "--name", "x", "-o", tmp_path / "a$HOME", cwd=tmp_path)
    assert result.returncode == 2 and "'$'" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "a$HOME").exists()


# ---------------------------------------------------------------- fits through the GDL engine

@pytest.mark.gdl
def test_gdl_fit_with_hostile_unit_odd_cache_and_save_fits_folder(tmp_path, monkeypatch):
    """fit --engine gdl: the hostile unit, a cache and a --save-fits folder with quotes, ';' and '&'."""
    model = hostile_unit_file(tmp_path / "unit.fits")
    interp = Interpolator.read(model)
    wave, flux, sigma = simulate_spectrum(interp, [5400.0, 3.2, -1.5], velocity=5.0, fwhm=2.0, snr=100.0, rng=3)
    star = tmp_path / "star o'hara; x & y.fits"
    write_muse_spectrum(star, wave, flux, sigma)
    saved = tmp_path / "fits 'n' ; & é"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache o'neil & é"))
    result = cli_here("fit", star, "--model", model, "--engine", "gdl", "--backend", "subprocess", "--workers", "0",
                     "--guess", "Teff=5400", "--guess", "Logg=3", "--guess", "Fe/H=-1.5", "--mdegree", "8",
                     "-o", tmp_path / "r.ecsv", "--save-fits", saved, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    row = Table.read(tmp_path / "r.ecsv")[0]
    assert row["status"] == "ok", row["status"]
    assert abs(row["Teff"] - 5400) < 60 and abs(row["Fe/H"] + 1.5) < 0.1
    assert (saved / "star o'hara; x & y_fit.fits").is_file() and (saved / "star o'hara; x & y.res").is_file()
    assert_no_command_ran(tmp_path)
    # A --save-fits folder GDL would expand is refused up front, in one line, before any fit.
    result = cli_here("fit", star, "--model", model, "--engine", "gdl", "--workers", "0",
                     "-o", tmp_path / "r2.ecsv", "--save-fits", tmp_path / "$HOME", cwd=tmp_path)
    assert result.returncode == 2 and "--save-fits" in result.stderr and "'$'" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "r2.ecsv").exists()
    np.testing.assert_equal(Table.read(tmp_path / "r.ecsv")["Teff"], row["Teff"])  # the finished result stays


@pytest.mark.gdl
def test_a_compressed_looking_model_name_is_never_run_by_readfits(tmp_path, monkeypatch):
    """astrolib's READFITS decompresses a name ending in .bz2/.Z/.fz through SPAWN: never given a name."""
    folder = tmp_path / "models"
    folder.mkdir()
    source = folder / "m;cd;touch PWNED;.fits.bz2"   # the shell would cd to $HOME and touch PWNED there
    shutil.copyfile(example_interpolator_path(), source)   # a plain FITS file under that name
    monkeypatch.setenv("HOME", str(tmp_path))
    out = tmp_path / "out"
    generate_component(Interpolator.read(source), "zipnet", out, copy_model=False)
    printed = run_gdl("f = zipnet_spectrum([5000d, 2d, -1.5d])\nprint, n_elements(f)", folders=[out])
    assert "2099" in printed
    assert_no_command_ran(tmp_path)
