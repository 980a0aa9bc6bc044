"""The authors' reference files (trial 8, the GSL nodes) are found where a user puts them.

`grid surrogate` and `simulate ngc6397` default to the authors' trial-8 network. A user's install has
no ../shared beside the package: the file is looked for in $ULYSS_ANN_REFERENCE_DIR, the current
folder, ~/.local/share/ulyss_ann/reference, then (a development checkout only) ../shared/data/reference,
under our name or the authors' (toy_interpolator_v0.0.3_trial_8.fits). These tests take the development
checkout's folder away, so they say what a user without ../shared gets; they need no shared data
(the bundled example network stands in for trial 8) except the last, which skips without it.
"""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits

from conftest import make_network, reference_file
from ulyss_ann import Interpolator
from ulyss_ann.spectra.examples import example_interpolator_path

# `python -c` that runs the command line as a user's install would: no development checkout's folder.
AS_A_USER = ("import sys, ulyss_ann.spectra.reference_files as r; r.DEVELOPMENT_FOLDER = None; "
             "from ulyss_ann.cli.main import main; sys.exit(main(sys.argv[1:]))")


def as_user(*args, cwd, env_dir=None, data_home):
    env = {k: v for k, v in os.environ.items() if k != "ULYSS_ANN_REFERENCE_DIR"}
    env.update(XDG_DATA_HOME=str(data_home), HOME=str(data_home))  # the installed package, in either leg
    if env_dir is not None:
        env["ULYSS_ANN_REFERENCE_DIR"] = str(env_dir)
    return subprocess.run([sys.executable, "-c", AS_A_USER, *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120, stdin=subprocess.DEVNULL)


def folders(tmp_path):
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    return work, home


def test_the_authors_file_in_the_current_folder_under_their_name_is_the_default(tmp_path):
    work, home = folders(tmp_path)
    shutil.copyfile(example_interpolator_path(), work / "toy_interpolator_v0.0.3_trial_8.fits")
    result = as_user("grid", "surrogate", "-o", "g.fits", cwd=work, data_home=home)
    assert result.returncode == 0, result.stderr
    header = fits.getheader(work / "g.fits")
    assert header["SRC_NET"] == "toy_interpolator_v0.0.3_trial_8.fits"
    # no gsl_nodes.txt anywhere (the authors publish none): the bundled example's copy of the 2908 nodes
    assert header["SRC_NODE"].startswith("2908 GSL nodes of the bundled example")
    params = np.column_stack([fits.getdata(work / "g.fits", "PARAMS")[n] for n in ("Teff", "Logg", "Fe/H")])
    np.testing.assert_array_equal(params, Interpolator.read("example").nodes)


def test_the_environment_variable_comes_before_the_current_folder(tmp_path):
    work, home = folders(tmp_path)
    chosen = tmp_path / "reference"
    chosen.mkdir()
    shutil.copyfile(example_interpolator_path(), chosen / "gsl_ann_trial8.fits")   # 2099 px
    make_network(npix=40).write(work / "gsl_ann_trial8.fits")                      # 40 px: must not be used
    result = as_user("grid", "surrogate", "-o", "g.fits", cwd=work, env_dir=chosen, data_home=home)
    assert result.returncode == 0, result.stderr
    assert fits.getdata(work / "g.fits").shape == (2908, 2099)


def test_the_user_data_folder_serves_simulate_and_the_folder_is_said_once(tmp_path):
    work, home = folders(tmp_path)
    (home / "ulyss_ann" / "reference").mkdir(parents=True)
    shutil.copyfile(example_interpolator_path(), home / "ulyss_ann" / "reference" / "gsl_ann_trial8.fits")
    result = as_user("simulate", "ngc6397", "-o", "sim/", "--n-stars", 3, "--n-spectra", 3, cwd=work, data_home=home)
    assert result.returncode == 0, result.stderr
    assert "3 SIMULATED spectra of 3 stars to sim/ (" in result.stdout and "sim//" not in result.stdout
    assert "generated with gsl_ann_trial8.fits" in result.stdout
    assert fits.getheader(sorted((work / "sim").glob("ngc6397*.fits"))[0])["SIMULATD"]


def test_nowhere_is_one_line_naming_the_files_the_places_and_the_download(tmp_path):
    work, home = folders(tmp_path)
    for command in (["grid", "surrogate", "-o", "g.fits"], ["simulate", "ngc6397", "-o", "sim"]):
        result = as_user(*command, cwd=work, data_home=home)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("ulyss-ann: error: the default"), result.stderr
        for fragment in ("gsl_ann_trial8.fits or toy_interpolator_v0.0.3_trial_8.fits",
                         "$ULYSS_ANN_REFERENCE_DIR (unset)", f"the current folder {work}",
                         f"the user data folder {home / 'ulyss_ann' / 'reference'}", "give -m FILE",
                         "download trials/trial_8/toy_interpolator_v0.0.3_trial_8.fits of "
                         "https://github.com/niteshchandra039/ANN_spectral_Interpolator"):
            assert fragment in lines[0], lines[0]
        assert "shared" not in lines[0]   # no development checkout's folder for a user
    assert not (work / "g.fits").exists() and not (work / "sim").exists()


def test_a_missing_nodes_file_given_is_one_line(tmp_path):
    work, home = folders(tmp_path)
    result = as_user("grid", "surrogate", "-m", "example", "--nodes", "nodes.txt", "-o", "g.fits", cwd=work,
                     data_home=home)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "ulyss-ann: error: --nodes nodes.txt: no such file (a list of PHOENIX node names, one a line; "
        "leave --nodes out for the 2908 GSL nodes)"], result.stderr


def test_the_development_checkout_still_finds_the_shared_files(tmp_path, monkeypatch):
    """scripts/reproduce_paper runs `grid surrogate` with no -m: in the checkout, ../shared/data/reference."""
    from ulyss_ann.spectra import reference_files
    from ulyss_ann.model.reference_names import GSL_NODES, TRIAL8
    from ulyss_ann.spectra.reference_files import find_reference

    if reference_files.DEVELOPMENT_FOLDER is None:
        pytest.skip("ulyss_ann is installed from a wheel here (the wheel leg): no development checkout to look in")
    trial8, nodes = reference_file("gsl_ann_trial8.fits"), reference_file("gsl_nodes.txt")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ULYSS_ANN_REFERENCE_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert os.path.samefile(find_reference(TRIAL8), trial8)
    assert os.path.samefile(find_reference(GSL_NODES), nodes)
