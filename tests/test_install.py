"""The package installed from a wheel (not the source tree): its GDL routines and templates are package data,
found through importlib.resources wherever the wheel was installed."""

import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest

from conftest import PROJECT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """A wheel built from a copy of the source (the tree itself is left as it is)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "setup.cfg", "README.md", "LICENSE"):
        shutil.copy(PROJECT / name, source / name)
    shutil.copytree(PROJECT / "ulyss_ann", source / "ulyss_ann", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",  # pyproject.toml's build tools
                            "-w", str(out), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    return next(out.glob("ulyss_ann-*.whl"))


def test_the_wheel_carries_the_gdl_routines_and_templates_as_package_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    pros = {n.rsplit("/", 1)[1] for n in names if n.startswith("ulyss_ann/gdl/pro/") and n.endswith(".pro")}
    templates = [n for n in names if n.startswith("ulyss_ann/gdl/templates/") and n.endswith(".j2")]
    assert {"ulyss_ann_fit.pro", "ulyss_ann_lsf.pro", "ulyss_ann_read_network.pro"} <= pros and templates
    assert pros == {p.name for p in (PROJECT / "ulyss_ann" / "gdl" / "pro").glob("*.pro")}
    assert not [n for n in names if ".data/data/share/" in n]  # nothing installed beside the package
    assert [n for n in names if ".dist-info/" in n and n.endswith("LICENSE")]  # the GPL travels with it


def test_an_installed_wheel_finds_its_gdl_files_where_it_was_installed(wheel, tmp_path):
    target = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                                str(wheel)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    # -S: no .pth files, so not this checkout's editable install; the dependencies from this venv
    code = ("from ulyss_ann.gdl.component import resource_dir; "
            "print(resource_dir('gdl')); print(resource_dir('templates'))")
    paths = f"{target}:{sysconfig.get_paths()['purelib']}"
    result = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=120,
                            env={"PYTHONPATH": paths, "PATH": "/usr/bin:/bin"}, cwd=tmp_path)  # not the checkout
    assert result.returncode == 0, result.stderr
    gdl, templates = result.stdout.split()
    assert gdl == str(target / "ulyss_ann" / "gdl" / "pro")
    assert templates == str(target / "ulyss_ann" / "gdl" / "templates")
