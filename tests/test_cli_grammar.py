"""One grammar for every command: -m/--model (a file or a bundled name), -o FILE or DIR, grid KIND,
--dashboard; and every command line the README and docs/ show parses."""

import argparse
import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from conftest import PROJECT, cli_here
from ulyss_ann import Interpolator
from ulyss_ann.cli.main import build_parser
from ulyss_ann.cli.lsf import spell_lsf_gaussian
from ulyss_ann.errors import InterpolatorFileError
from ulyss_ann.spectra.examples import example_interpolator_path, example_spectrum_path, miles_interpolator_path


def run(*args, cwd=None, timeout=120, own_process=False):
    """A command in this process (conftest.cli_here), or in a Python of its own (``own_process``: Dask's
    workers and logging, which belong to a process)."""
    if not own_process:
        return cli_here(*args, cwd=cwd)
    return subprocess.run([sys.executable, "-m", "ulyss_ann.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, stdin=subprocess.DEVNULL)


def parse(*argv):
    return build_parser().parse_args(spell_lsf_gaussian([str(a) for a in argv]))


def one_error_line(result, *fragments):
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ulyss-ann: error:"), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def subparsers(parser, path=()):
    """(command path, parser) of every command and sub-command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield path + (name,), sub
                yield from subparsers(sub, path + (name,))


# ---- -m/--model ---------------------------------------------------------------------------------

WITH_MODEL = [
    ["info"], ["eval"], ["gdl-export"], ["fit", "s.fits"], ["selfinv", "--grid", "g.fits"],
    ["simulate", "ngc6397", "-o", "sim"], ["lsf", "gaussian", "--fwhm", "2.6", "-o", "n.lsf"],
    ["lsf", "--fwhm", "2.6", "-o", "n.lsf"], ["lsf", "measure", "s.fits", "-o", "m.lsf"],
    ["lsf", "plot", "m.lsf", "-o", "p.png"], ["grid", "surrogate"],
]


@pytest.mark.parametrize("command", WITH_MODEL, ids=lambda c: " ".join(c[:2]))
@pytest.mark.parametrize("spelling", ["-m", "--model"])
def test_every_command_with_a_model_takes_dash_m(command, spelling):
    assert parse(*command, spelling, "miles").model == "miles"


def test_every_model_option_is_spelled_dash_m_and_says_file_or_bundled_name():
    seen = []
    for path, parser in subparsers(build_parser()):
        for action in parser._actions:
            if action.dest == "model":
                seen.append(" ".join(path))
                assert action.option_strings == ["-m", "--model"], path
                assert action.metavar == "MODEL" and "file or bundled name (example, miles)" in action.help, path
    assert sorted(seen) == sorted(["info", "eval", "gdl-export", "fit", "chimap", "selfinv", "simulate",
                                   "lsf gaussian", "lsf measure", "lsf plot", "grid surrogate"])


def test_info_by_bundled_name():
    result = run("info", "-m", "miles")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert f"Interpolator   {miles_interpolator_path()}  (bundled: miles)" in result.stdout
    assert "MILES library" in result.stdout and "4300 px" in result.stdout


def test_info_without_a_model_lists_the_bundled_names():
    out = run("info").stdout
    assert "(bundled example)" in out
    assert re.search(r"^  example +a small network", out, re.M) and re.search(r"^  miles +trial 7", out, re.M)


def test_eval_by_bundled_name_computes_that_network(tmp_path):
    out = tmp_path / "s.fits"
    result = run("eval", "-m", "example", "-p", "Teff=5000", "-p", "Logg=2", "-p", "Fe/H=-1.5", "-o", out)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    expected = Interpolator.read(example_interpolator_path()).evaluate([5000.0, 2.0, -1.5])
    # the same network in another process: BLAS may sum in another order (seen: 7e-13 on 2 of 2099 pixels)
    np.testing.assert_allclose(fits.getdata(out), expected, rtol=1e-12, atol=0)


def test_an_existing_file_wins_over_a_bundled_name(tmp_path):
    shutil.copyfile(example_interpolator_path(), tmp_path / "miles")
    result = run("info", "-m", "miles", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Interpolator   miles\n" in result.stdout and "[3, 160, 320, 4300]" not in result.stdout


def test_a_folder_of_that_name_does_not_hide_a_bundled_network(tmp_path):
    (tmp_path / "miles").mkdir()  # as `grid miles DIR` makes them
    result = run("info", "-m", "miles", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "(bundled: miles)" in result.stdout and "[3, 160, 320, 4300]" in result.stdout


def test_a_missing_default_network_says_so_and_where_to_find_one(tmp_path):
    """grid surrogate and simulate default to the authors' trial 8 (ulyss_ann.spectra.reference_files);
    in an install without it the line says it was the default, not a path the user typed (more in
    test_reference_files.py)."""
    for command in (["grid", "surrogate", "-o", str(tmp_path / "g.fits")], ["simulate", "ngc6397", "-o", str(tmp_path)]):
        code = (f"import sys, ulyss_ann.spectra.reference_files as r; r.DEVELOPMENT_FOLDER = None; "
                f"from ulyss_ann.cli.main import main; sys.exit(main({command!r}))")
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                                cwd=tmp_path, env={**os.environ, "XDG_DATA_HOME": str(tmp_path),
                                                   "ULYSS_ANN_REFERENCE_DIR": str(tmp_path / "absent")})
        one_error_line(result, "the default", "gsl_ann_trial8.fits", "is in none of", "give -m FILE",
                       "github.com/niteshchandra039/ANN_spectral_Interpolator")


def test_the_python_side_takes_bundled_names():
    import ulyss_ann
    from ulyss_ann.fitting.fit_options import model_path

    assert Interpolator.read("miles").path == miles_interpolator_path()
    assert model_path("example") == example_interpolator_path()
    with pytest.raises(InterpolatorFileError, match=r"^nosuchnet: no such file, nor a bundled interpolator "
                                                    r"\(bundled: example, miles\)"):
        Interpolator.read("nosuchnet")
    table = ulyss_ann.fit([example_spectrum_path()], model="miles", output=None, workers=0, engine="native",
                          progress=False, mdegree=8, guesses={"Teff": [5400.0], "Logg": [3.0], "Fe/H": [-1.5]})
    assert table["model"][0] == "miles_trial7x5.fits" and table["status"][0] == "ok", table["status"][0]


@pytest.mark.parametrize("command", [["info"], ["eval", "-p", "Teff=5000", "-o", "x.fits"],
                                     ["fit", "s.fits", "-j", "0"], ["lsf", "gaussian", "--fwhm", "2.6", "-o", "n.lsf"],
                                     ["grid", "surrogate", "-o", "g.fits"]], ids=lambda c: c[0])
def test_an_unknown_model_is_one_line_naming_it_and_the_bundled_names(command, tmp_path):
    (tmp_path / "s.fits").write_text("not read: the model is refused first")
    line = one_error_line(run(*command, "-m", "nosuchnet", cwd=tmp_path), "nosuchnet", "bundled: example, miles")
    assert "no such file" in line


def test_the_positional_model_still_works_and_says_it_is_deprecated():
    result = run("info", miles_interpolator_path())
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [f"ulyss-ann: warning: MODEL as a positional argument is deprecated: "
                                          f"use -m {miles_interpolator_path()}"]
    assert result.stdout == run("info", "-m", miles_interpolator_path()).stdout
    assert parse("eval", "a.fits").deprecated_model == "a.fits" and parse("gdl-export", "a.fits").model is None


def test_the_positional_model_is_hidden_from_the_usage():
    for command in ("info", "eval", "gdl-export"):
        usage = run(command, "--help").stdout.split("\n\n")[0]
        assert "[-m MODEL]" in usage and re.search(r"\] \[?MODEL", usage) is None, usage


def test_a_model_given_twice_is_one_line(tmp_path):
    one_error_line(run("info", example_interpolator_path(), "-m", "miles"), "given twice", "-m MODEL")
    one_error_line(run("gdl-export", "example", "-m", "example", "-o", tmp_path / "c"), "given twice")
    one_error_line(run("eval", "example", "-m", "miles"), "given twice")  # said before "nothing to do"
    assert not (tmp_path / "c").exists()


# ---- -o, grid KIND --------------------------------------------------------------------------------

WRITES_A_FOLDER = {"gdl-export", "selfinv", "simulate", "ngc6397"}


def test_dash_o_is_a_file_or_a_folder_as_the_help_says():
    checked = []
    for path, parser in subparsers(build_parser()):
        for action in parser._actions:
            if "-o" in action.option_strings:
                command = " ".join(path)
                checked.append(command)
                kind = "DIR" if command in WRITES_A_FOLDER else "FILE"
                assert action.metavar == kind, (command, action.metavar)
                assert ("folder" in action.help) == (kind == "DIR"), (command, action.help)
    assert len(checked) == 16, checked


@pytest.mark.parametrize("kind, foreign", [
    ("surrogate", ["--teff-range", "--continuum-degree", "--params", "--wave", "--resolving-power", "--vacuum",
                   "MILES", "PHOENIX spectra"]),
    ("phoenix", ["--teff-range", "--continuum-degree", "--params", "--model", "--nodes", "MILES"]),
    ("miles", ["--wave", "--resolving-power", "--vacuum", "--model", "--nodes", "PHOENIX"]),
])
def test_each_grid_kind_has_only_its_own_options(kind, foreign):
    result = run("grid", kind, "--help")
    assert result.returncode == 0 and f"usage: ulyss-ann grid {kind}" in result.stdout
    for text in foreign:
        assert text not in result.stdout, f"grid {kind} --help shows {text}"
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
        parse("grid", kind, *(["x"] if kind != "surrogate" else []), foreign[0], "1")


def test_grid_invocations_of_before_still_parse():
    assert parse("grid", "surrogate", "-o", "f.fits").output == "f.fits"
    args = parse("grid", "miles", "../shared/data/miles", "--teff-range", "3000,9000", "-o", "f.fits")
    assert (args.kind, args.folder, args.teff_range) == ("miles", "../shared/data/miles", "3000,9000")
    args = parse("grid", "phoenix", "a.fits", "b.fits", "--wave", "w.fits", "-o", "f.fits")
    assert args.files == ["a.fits", "b.fits"] and args.wave == "w.fits"


# ---- --dashboard, --quiet -------------------------------------------------------------------------

FAST = ["--engine", "native", "--guess", "Teff=5400", "--guess", "Logg=3", "--guess", "Fe/H=-1.5", "--mdegree", "8"]


def test_dashboard_prints_the_link_and_quiet_prints_nothing_of_dask(tmp_path):
    import socket

    with contextlib.ExitStack() as stack:
        try:  # 8787 taken (here, or by another cluster already): Dask's "Port 8787 is already in use" stays unsaid
            taken = stack.enter_context(socket.create_server(("127.0.0.1", 8787)))
        except OSError:
            taken = None
        result = run("fit", example_spectrum_path(), "-m", "example", "-j", "1", "-o", tmp_path / "r.ecsv", *FAST,
                     "--quiet", "--dashboard", timeout=300, own_process=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # --quiet: no bar, no summary, no log line or warning of Dask's
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and lines[1] == f"wrote {tmp_path / 'r.ecsv'}", lines
    link = re.fullmatch(r"Dask dashboard: http://127\.0\.0\.1:(\d+)/status", lines[0])  # bokeh: the dask extra
    assert link, lines[0]
    assert taken is None or link.group(1) != "8787"  # the port it really took


def test_the_dashboard_is_served_while_the_batch_runs(tmp_path):
    from urllib.request import urlopen

    import ulyss_ann

    served = []  # the dashboard's own page (bokeh's, from the dask extra), not only /health
    ulyss_ann.fit([example_spectrum_path()], output=None, workers=1, engine="native", progress=False, mdegree=8,
                  guesses={"Teff": [5400.0], "Logg": [3.0], "Fe/H": [-1.5]},
                  dashboard=lambda link: served.append((link, urlopen(link, timeout=10).read().decode())))
    assert len(served) == 1 and re.fullmatch(r"http://127\.0\.0\.1:\d+/status", served[0][0])
    assert "Bokeh" in served[0][1] and "needs bokeh" not in served[0][1]  # the dashboard, not the plea for bokeh


def test_dashboard_without_dask_says_there_is_none(tmp_path):
    result = run("fit", example_spectrum_path(), "-j", "0", "-o", tmp_path / "r.ecsv", *FAST, "--quiet",
                 "--dashboard")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == ["ulyss-ann: warning: no Dask dashboard: this batch fits in this process, "
                                          "without Dask (workers 0)"]
    assert "dashboard" in parse("selfinv", "--grid", "g", "-m", "m", "--dashboard", "--quiet")


# ---- the documentation's command lines ---------------------------------------------------------

SHELL_OPERATORS = {"|", "||", "&&", ";", ">", ">>", "2>", "&", "2>&1"}


def documented_commands():
    """(file:line, argv) of every ulyss-ann command line in a console/bash/sh block of README.md and docs/*.md."""
    found = []
    for doc in [PROJECT / "README.md", *sorted((PROJECT / "docs").glob("*.md"))]:
        fence, logical, start = None, "", 0
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            stripped = line.strip()
            if stripped.startswith("```"):
                fence = None if fence is not None else stripped[3:].strip().lower()
                logical = ""
                continue
            if fence not in ("console", "bash", "sh", "shell"):
                continue
            if not logical:
                start = number
            logical += stripped[:-1] + " " if stripped.endswith("\\") else stripped
            if stripped.endswith("\\"):
                continue
            command, logical = logical.strip(), ""
            command = command[2:] if command.startswith("$ ") else command
            if command.startswith("ulyss-ann "):
                tokens = shlex.split(command, comments=True)[1:]
                cut = next((k for k, t in enumerate(tokens) if t in SHELL_OPERATORS), len(tokens))
                found.append((f"{doc.relative_to(PROJECT)}:{start}", tokens[:cut]))
    return found


def refused(commands):
    """'file:line: command' and argparse's complaint, for each command line the parser refuses."""
    bad = []
    for where, argv in commands:
        said = io.StringIO()
        try:
            with contextlib.redirect_stderr(said), contextlib.redirect_stdout(io.StringIO()):
                parse(*argv)
        except SystemExit as exc:
            if exc.code not in (0, None):  # --help and --version exit 0
                bad.append(f"{where}: ulyss-ann {shlex.join(argv)}\n    {said.getvalue().strip().splitlines()[-1]}")
    return bad


def test_documented_commands_parse():
    commands = documented_commands()
    assert len(commands) >= 10, commands  # the README shows the workflow: not vacuous
    bad = refused(commands)
    assert not bad, "documented commands the parser refuses:\n" + "\n".join(bad)


def test_the_documentation_scan_sees_a_bad_line(tmp_path, monkeypatch):
    """Not vacuous: continued lines are joined, and a command the parser refuses is reported with its line."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("```console\n$ ulyss-ann info -m example   # a comment\nwhat it prints\n"
                                        "```\n\n```python\nulyss-ann --not-shell\n```\n\n```bash\n"
                                        "ulyss-ann fit a.fits \\\n    --no-such-option | tee log\n```\n")
    monkeypatch.setattr(sys.modules[__name__], "PROJECT", Path(tmp_path))
    commands = documented_commands()
    assert [argv for _, argv in commands] == [["info", "-m", "example"], ["fit", "a.fits", "--no-such-option"]]
    bad = refused(commands)
    assert len(bad) == 1 and bad[0].startswith("README.md:11: ulyss-ann fit a.fits --no-such-option\n"), bad
    assert "unrecognized arguments: --no-such-option" in bad[0]
