"""The GDL component cache repairs itself, and a GDL that halts never ends a batch with status 0 (#24, item 5).

The audit's case: after one GDL fit, delete the cached interpolator copy
(``cache/ulyss_ann/components/*/ann_*.fits``) and fit again. The in-process bridge
(python3-gdl, ``-j 0 --backend pygdl``) ended with status 0 and no table: GDL halted
at its prompt, read the closed stdin and exited the Python process; the subprocess
bridge gave an ``error`` row, kept on --resume. Now the cache is checked against its
manifest and regenerated, a component damaged during a run gives a ``failed`` row
(then is regenerated), GDL's own routines hand every error to the fit's CATCH, and a
GDL halt ends the process with status 2 and one line.

Real GDL and the real ULySS; the authors' trial 7 and the MUSE star, as the audit. Each
test uses its own XDG_CACHE_HOME.
"""

import glob
import os
import subprocess
import sys

import pytest
from astropy.table import Table

from conftest import SHARED, cli, reference_file
from ulyss_ann import Interpolator, UlyssAnnError
from ulyss_ann.model.checksum import file_sha256
from ulyss_ann.gdl.component_cache import MANIFEST, cached_component, component_problem
from ulyss_ann.gdl.pygdl_halt import HALT_EXIT_STATUS, HALT_MESSAGE
from ulyss_ann.spectra.examples import example_interpolator_path

MUSE = SHARED / "data" / "muse" / "ngc6397id000010554jd2456865p5826f000.fits"
BACKENDS = [pytest.param("pygdl", marks=pytest.mark.pygdl), "subprocess"]


def _star():
    if not MUSE.is_file():
        pytest.skip(f"{MUSE} not found: the shared data live in ../shared/data beside the project")
    return MUSE


def _component_folder(cache):
    (folder,) = glob.glob(str(cache / "ulyss_ann" / "components" / "ann_*"))
    return folder


# ------------------------------------------------------------------ the manifest (no GDL)

@pytest.fixture
def example_component(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    model = example_interpolator_path()
    interp = Interpolator.read(model)
    sha = file_sha256(model)
    name, folder = cached_component(interp, sha)
    return interp, sha, name, folder


def test_the_manifest_lists_every_file_and_detects_each_kind_of_damage(example_component):
    interp, sha, name, folder = example_component
    listed = sorted(line.split("  ", 1)[1] for line in (folder / MANIFEST).read_text().splitlines())
    assert listed == sorted(p.name for p in folder.iterdir() if p.name != MANIFEST)
    assert f"{name}.fits" in listed and f"{name}_eval.pro" in listed
    assert component_problem(folder) is None

    evaluation = folder / f"{name}_eval.pro"
    original = evaluation.read_bytes()
    evaluation.write_bytes(original[:100] + bytes([original[100] ^ 1]) + original[101:])  # one bit
    assert component_problem(folder) == f"{name}_eval.pro has changed (its SHA-256 differs from the manifest's)"
    evaluation.write_bytes(original)
    assert component_problem(folder) is None

    (folder / "strlen.pro").write_text("function strlen, x\nreturn, 0\nend\n")  # GDL would compile it
    assert "strlen.pro, which the manifest does not list" in component_problem(folder)
    (folder / "strlen.pro").unlink()

    (folder / f"{name}.fits").unlink()
    assert component_problem(folder) == f"{name}.fits is missing"
    (folder / MANIFEST).unlink()
    assert "no manifest" in component_problem(folder)


def test_a_damaged_component_is_regenerated_whole(example_component):
    interp, sha, name, folder = example_component
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    (folder / f"{name}.fits").unlink()
    (folder / f"{name}_eval.pro").write_text("garbage")
    assert cached_component(interp, sha) == (name, folder)
    assert component_problem(folder) is None
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert [p.name for p in folder.parent.iterdir() if p.is_dir()] == [folder.name]  # nothing left aside


# ------------------------------------------------------------------ real fits

@pytest.mark.first_leg  # machinery: killed, resumed, repaired (docs/development.md)
@pytest.mark.gdl
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_fit_after_the_cached_interpolator_copy_was_deleted_repairs_the_cache(tmp_path, backend):
    """The audit's case: rc 0 with no table (pygdl) or an `error` row (subprocess) before."""
    star, model = _star(), reference_file("gsl_ann_trial7.fits")
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    # one guess (the cache is the subject, not ULySS's search over the paper's six)
    args = ["fit", star, "-m", model, "--fix", "Logg=2", "--guess", "Teff=5400", "--guess", "Fe/H=-1.8", "-j", "0",
            "--engine", "gdl", "--backend", backend, "--quiet"]
    first = cli(*args, "-o", tmp_path / "a.ecsv", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    folder = _component_folder(tmp_path / "cache")
    for copy in glob.glob(os.path.join(folder, "ann_*.fits")):
        os.remove(copy)

    again = cli(*args, "-o", tmp_path / "c.ecsv", env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    a, c = Table.read(tmp_path / "a.ecsv"), Table.read(tmp_path / "c.ecsv")
    assert list(c["status"]) == ["ok"] and c["engine"][0] == f"gdl-{backend}"
    assert c["Teff"][0] == a["Teff"][0] and c["Fe/H"][0] == a["Fe/H"][0]
    assert component_problem(folder) is None


_DAMAGED_DURING_THE_RUN = """
import glob, os
from ulyss_ann import Interpolator
from ulyss_ann.errors import MachineryError
from ulyss_ann.fitting.gdl_engine.engine import GDLEngine
from ulyss_ann.fitting.fit_options import make_config
from ulyss_ann.spectra.readers import read_spectrum

interp = Interpolator.read({model!r})
spectrum = read_spectrum({star!r})
config = make_config({model!r}, interp, engine="gdl", backend={backend!r},
                     guesses={{"Teff": [5400.0], "Fe/H": [-1.8]}})  # one guess: the cache is the subject
with GDLEngine(config, interp) as engine:
    (copy,) = glob.glob(str(engine.folder / "ann_*.fits"))
    os.remove(copy)
    try:
        engine.fit(spectrum, {{"Logg": 2.0}})
    except MachineryError as exc:
        print("FAILED-ROW:", exc)
    print("NEXT:", engine.fit(spectrum, {{"Logg": 2.0}}).row()["status"])
"""


@pytest.mark.first_leg  # machinery: killed, resumed, repaired (docs/development.md)
@pytest.mark.gdl
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_component_damaged_during_a_run_gives_a_failed_row_then_is_regenerated(tmp_path, backend):
    """GDL's error about the missing copy halted python3-gdl (status 0, nothing printed after) and
    was an `error` row (kept on --resume) with the subprocess bridge."""
    star, model = _star(), reference_file("gsl_ann_trial7.fits")
    code = _DAMAGED_DURING_THE_RUN.format(model=str(model), star=str(star), backend=backend)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                            stdin=subprocess.DEVNULL, env=dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache")))
    assert result.returncode == 0, result.stderr[-2000:]
    failed, = [line for line in result.stdout.splitlines() if line.startswith("FAILED-ROW:")]
    assert "was damaged (ann_" in failed and ".fits is missing) and has been regenerated" in failed
    assert "interpolator file not found" in failed  # GDL's own words
    assert "NEXT: ok" in result.stdout.splitlines()


# ------------------------------------------------------------------ a GDL halt (python3-gdl)

_HALTING = {
    # ON_ERROR, 2 hands the error to T_MIDDLE, which has no ON_ERROR: GDL 1.0.1 halts there,
    # below T_CATCHER's CATCH (the pattern of ulyss_ann_use_component before the fix).
    "t_catcher.pro": "function t_catcher\ncompile_opt idl2\ncatch, status\nif status ne 0 then begin\n"
                     "   catch, /CANCEL\n   return, 'caught'\nendif\nt_middle\nreturn, 'no error'\nend\n",
    "t_middle.pro": "pro t_middle\ncompile_opt idl2\nx = t_failing()\nend\n",
    "t_failing.pro": "function t_failing\ncompile_opt idl2\non_error, 2\nmessage, 'boom'\nreturn, 1\nend\n",
}

_CALL_HALTING = """
from ulyss_ann.gdl.session import PyGDLSession
session = PyGDLSession([{folder!r}])
print("BEFORE", flush=True)
session.call("t_catcher")
print("AFTER", flush=True)
"""


@pytest.mark.pygdl
@pytest.mark.parametrize("stdin", ["at-its-end", "open-pipe", "closed"])
def test_a_gdl_halt_in_python3_gdl_ends_the_process_with_status_2_and_a_line(tmp_path, stdin):
    """Before: status 0 and nothing said (stdin at its end), or a process waiting for ever at GDL's
    prompt (stdin an open pipe, as a terminal). With no stdin at all (``<&-``), the guard's own pipe
    must not become fd 0."""
    for name, text in _HALTING.items():
        (tmp_path / name).write_text(text)
    code = ("import os; os.close(0)\n" if stdin == "closed" else "") + _CALL_HALTING.format(folder=str(tmp_path))
    with open(tmp_path / "out", "w") as out, open(tmp_path / "err", "w") as err:
        # an open stdin pipe is never written to nor closed, as a terminal nobody types in
        child = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, stdout=out, stderr=err,
                                 stdin=subprocess.PIPE if stdin == "open-pipe" else subprocess.DEVNULL)
        try:
            child.wait(timeout=120)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            pytest.fail("the process waited at GDL's prompt for its standard input")
        finally:
            if child.stdin:
                child.stdin.close()
    out, err = (tmp_path / "out").read_text(), (tmp_path / "err").read_text()
    assert child.returncode == HALT_EXIT_STATUS == 2, err[-2000:]
    assert out.splitlines() == ["BEFORE"]
    assert err.splitlines()[-1] == HALT_MESSAGE
    assert "Execution halted at: T_MIDDLE" in err  # GDL's own account, kept



@pytest.mark.parametrize("how", ["writable by others", "another user's"])
def test_a_component_cache_others_can_write_is_refused_before_gdl_runs_its_code(tmp_path, monkeypatch, how):
    """The manifest catches damage, not intent: a cache another user can write is refused in one line."""
    from ulyss_ann.gdl.component_cache import cache_dir, check_cache_owner

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    check_cache_owner()  # nothing there yet: nothing to refuse
    components = cache_dir()
    components.mkdir(parents=True, mode=0o700)
    check_cache_owner()  # this user's, private: accepted
    if how == "writable by others":
        components.chmod(0o777)
    elif os.geteuid() == 0:
        os.chown(components, 65534, 65534)
    else:
        pytest.skip("giving a folder to another user needs root")
    with pytest.raises(UlyssAnnError) as info:
        check_cache_owner()
    text = str(info.value)
    assert "\n" not in text and str(components) in text and "XDG_CACHE_HOME" in text
