"""Every source file a help text or a script's comment points to exists (files move; the pointers did not)."""

import re

import pytest

from conftest import PROJECT
from test_cli_grammar import subparsers
from ulyss_ann.cli.main import build_parser

# ulyss_ann/paper/ngc6397.py, scripts/demo, docs/cli.md: a path in the project, as a reader would type it
# (not the tail of another path: ~/.local/share/ulyss_ann/reference).
NAMED = re.compile(r"(?<![\w/$.~-])(?:ulyss_ann|scripts|docs)/[\w./-]*\w")


def help_texts():
    parser = build_parser()
    yield "ulyss-ann", parser.format_help()
    for path, sub in subparsers(parser):
        yield "ulyss-ann " + " ".join(path), sub.format_help()


@pytest.mark.parametrize("command,text", list(help_texts()), ids=lambda v: v if len(v) < 40 else "")
def test_the_files_a_help_text_names_exist(command, text):
    missing = [name for name in NAMED.findall(text.replace("\n", " ")) if not (PROJECT / name).exists()]
    assert not missing, f"{command} --help names {missing}"


@pytest.mark.parametrize("script", sorted(p.name for p in (PROJECT / "scripts").iterdir() if p.is_file()))
def test_the_files_a_script_comment_names_exist(script):
    comments = [line for line in (PROJECT / "scripts" / script).read_text(errors="replace").splitlines()
                if line.lstrip().startswith("#")]
    missing = [name for line in comments for name in NAMED.findall(line) if not (PROJECT / name).exists()]
    assert not missing, f"scripts/{script} names {missing}"
