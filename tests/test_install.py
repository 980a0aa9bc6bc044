"""The package installed from a wheel (not the source tree): its GDL routines and templates are package data,
found through importlib.resources wherever the wheel was installed."""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from conftest import PROJECT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """A wheel built from a copy of the source (the tree itself is left as it is); in the wheel leg, the
    wheel this leg's venv was installed from (scripts/setup_wheel_venv built it from a copy of the files
    git holds: built twice, it would be the same files)."""
    if os.environ.get("ULYSS_ANN_TEST_WHEEL"):
        (installed,) = (Path(sys.prefix) / "wheelhouse").glob("ulyss_ann-*.whl")
        return installed
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


@pytest.mark.skipif(not os.environ.get("ULYSS_ANN_TEST_WHEEL"), reason="the wheel leg of ./scripts/test only")
def test_the_wheel_leg_tests_the_installed_wheel_with_numpy_2():
    """scripts/test's second leg: the package, its GDL files and the tests' subprocesses all come from the
    installed wheel (never the checkout), with NumPy 2."""
    import numpy

    import ulyss_ann
    from ulyss_ann.gdl.component import resource_dir

    site = Path(sysconfig.get_paths()["purelib"])
    assert Path(ulyss_ann.__file__).is_relative_to(site)
    assert resource_dir("gdl").is_relative_to(site) and resource_dir("templates").is_relative_to(site)
    assert int(numpy.__version__.split(".")[0]) >= 2
    # what the tests' `python -m ulyss_ann.cli` import, run from the checkout
    child = subprocess.run([sys.executable, "-c", "import ulyss_ann; print(ulyss_ann.__file__)"],
                           capture_output=True, text=True, cwd=PROJECT, timeout=120)
    assert Path(child.stdout.strip()).is_relative_to(site), child.stdout + child.stderr


@pytest.mark.skipif(not os.environ.get("ULYSS_ANN_TEST_WHEEL"), reason="the wheel leg of ./scripts/test only")
def test_the_wheel_fits_the_muse_star_as_the_debian_venv_does(tmp_path):
    """#16's done-when: the MUSE star with trial 7, natively, from the wheel (NumPy 2) and from the Debian
    venv of scripts/setup (NumPy 1.x): the same answer (≤ 0.5 K, ≤ 0.001 dex)."""
    from astropy.table import Table

    from conftest import SHARED, reference_file

    debian = Path(os.environ.get("ULYSS_ANN_VENV", PROJECT / ".venv")) / "bin" / "python"
    assert debian.is_file(), f"{debian} absent: scripts/test sets it up before this leg"
    star = SHARED / "data" / "muse" / "ngc6397id000010554jd2456865p5826f000.fits"
    if not star.is_file():
        pytest.skip(f"{star} not found")
    rows = {}
    for label, python in (("wheel", sys.executable), ("debian", str(debian))):
        out = tmp_path / f"{label}.ecsv"
        result = subprocess.run([python, "-m", "ulyss_ann.cli", "fit", str(star), "-m",
                                 str(reference_file("gsl_ann_trial7.fits")), "--engine", "native", "-j", "0",
                                 "-o", str(out), "--quiet"], capture_output=True, text=True, timeout=600,
                                cwd=tmp_path, stdin=subprocess.DEVNULL)
        assert result.returncode == 0, result.stderr
        rows[label] = Table.read(out)[0]
    wheel, debian_row = rows["wheel"], rows["debian"]
    assert wheel["status"] == debian_row["status"] == "ok"
    assert abs(wheel["Teff"] - debian_row["Teff"]) <= 0.5
    assert abs(wheel["Logg"] - debian_row["Logg"]) <= 0.001 and abs(wheel["Fe/H"] - debian_row["Fe/H"]) <= 0.001
