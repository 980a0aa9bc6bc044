"""Where and how a batch runs is one object: ``ulyss_ann.fit(..., execution=Execution(...))``.

The batch's keywords ``workers``, ``scheduler``, ``retries`` and ``dashboard`` stay (the other tests use
them); ``execution=`` gives the same four at once, checked when the Execution is made, before the
model, a spectrum or the output is touched. Fast: the bundled example network and spectrum, in this
process (``workers=0``, ``-j 0``).
"""

import dataclasses
import importlib.util

import numpy as np
import pytest

import ulyss_ann
from conftest import CLI_FAST, FAST, MODEL, cli_here
from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.spectra.examples import example_spectrum_path

#: an address is parsed by Dask's own parser, where Dask is installed
NEEDS_DASK = pytest.mark.skipif(importlib.util.find_spec("distributed") is None, reason="Dask is not installed")

#: columns that are the fit's answer (not the clock's)
ANSWER = ["id", "status", "Teff", "e_Teff", "Logg", "e_Logg", "Fe/H", "e_Fe/H", "cz", "e_cz", "sigma", "chi2"]


def test_an_execution_fits_as_the_keywords_do(tmp_path):
    spectrum = str(example_spectrum_path())
    by_keywords = ulyss_ann.fit([spectrum], MODEL, tmp_path / "a.ecsv", workers=0, **FAST)
    by_object = ulyss_ann.fit([spectrum], MODEL, tmp_path / "b.ecsv", execution=ulyss_ann.Execution(workers=0),
                              **FAST)
    assert list(by_object["status"]) == ["ok"]
    for column in ANSWER:
        assert column in by_object.colnames
        if by_object[column].dtype.kind == "f":
            np.testing.assert_array_equal(by_object[column], by_keywords[column])
        else:
            assert list(by_object[column]) == list(by_keywords[column])
    assert (tmp_path / "b.ecsv").is_file()


@pytest.mark.parametrize("options, message", [
    (dict(workers=-1), "workers (-j) -1: give 0 (no Dask) or a positive number of processes"),
    (dict(workers=1.5), "workers (-j) 1.5: give 0"),
    (dict(workers=True), "workers (-j) True: give 0"),
    (dict(workers=2, scheduler="tcp://127.0.0.1:1"), "workers (-j) and scheduler (--scheduler)"),
    (dict(retries=-1), "retries -1: give a number of worker deaths >= 0"),
    (dict(retries="2"), "retries '2': give a number of worker deaths >= 0"),
    (dict(scheduler=8786), "scheduler (--scheduler) 8786: give the scheduler's address"),
    pytest.param(dict(scheduler="head node"), "scheduler (--scheduler) missing port number in address 'head node'",
                 marks=NEEDS_DASK),
    pytest.param(dict(scheduler="tls://head:port"), "scheduler (--scheduler) 'tls://head:port': invalid literal",
                 marks=NEEDS_DASK),
    pytest.param(dict(scheduler="TCP://127.0.0.1:9"), "scheduler (--scheduler) 'TCP://127.0.0.1:9': unknown address "
                 "scheme 'TCP'", marks=NEEDS_DASK),
    pytest.param(dict(scheduler="tcp://head:99999"), "scheduler (--scheduler) 'tcp://head:99999': port 99999 out of "
                 "range", marks=NEEDS_DASK),
    (dict(dashboard="yes"), "dashboard (--dashboard) 'yes': give True, False, or a function"),
])
def test_a_bad_execution_is_refused_in_one_line_before_anything_is_read_or_written(tmp_path, options, message):
    with pytest.raises(UlyssAnnError) as made:
        ulyss_ann.Execution(**options)
    assert message in str(made.value) and "\n" not in str(made.value)
    # through fit: refused before the model (missing here) or a spectrum is read, and nothing is written
    with pytest.raises(UlyssAnnError) as fitted:
        ulyss_ann.fit([str(tmp_path / "no-spectrum.fits")], str(tmp_path / "no-model.fits"), tmp_path / "r.ecsv",
                      **options)
    assert message in str(fitted.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("keyword, value", [("workers", 0), ("scheduler", "tcp://127.0.0.1:1"), ("retries", 5),
                                            ("dashboard", True)])
def test_execution_and_one_of_its_keywords_together_are_refused(tmp_path, keyword, value):
    with pytest.raises(UlyssAnnError) as refused:
        ulyss_ann.fit([str(example_spectrum_path())], str(tmp_path / "no-model.fits"), tmp_path / "r.ecsv",
                      execution=ulyss_ann.Execution(workers=0), **{keyword: value}, **FAST)
    said = str(refused.value)
    assert said.startswith(f"execution and {keyword} ({keyword}={value!r})") and "\n" not in said
    assert list(tmp_path.iterdir()) == []


def test_an_execution_that_is_not_one_is_refused(tmp_path):
    with pytest.raises(UlyssAnnError, match=r"^execution \{'workers': 0\}: give an Execution"):
        ulyss_ann.fit([str(example_spectrum_path())], MODEL, tmp_path / "r.ecsv", execution={"workers": 0}, **FAST)
    assert list(tmp_path.iterdir()) == []


def test_an_execution_is_immutable_and_its_repr_says_what_it_holds():
    here = ulyss_ann.Execution(workers=0)
    assert repr(here) == "Execution(workers=0, scheduler=None, retries=2, dashboard=False)"
    assert repr(ulyss_ann.Execution(scheduler="tls://head:8786", retries=4)) == \
        "Execution(workers=None, scheduler='tls://head:8786', retries=4, dashboard=False)"
    with pytest.raises(dataclasses.FrozenInstanceError):
        here.workers = 4
    assert here.in_process and not here.remote
    assert dataclasses.replace(here, retries=3) == ulyss_ann.Execution(workers=0, retries=3)


def test_the_command_line_builds_its_execution_with_retries(tmp_path):
    spectrum = str(example_spectrum_path())
    refused = cli_here("fit", spectrum, "-m", MODEL, "-o", tmp_path / "r.ecsv", "-j", "0", "--retries", "-1",
                       *CLI_FAST)
    assert refused.returncode == 2
    assert refused.stderr.strip() == "ulyss-ann: error: retries -1: give a number of worker deaths >= 0"
    assert list(tmp_path.iterdir()) == []
    done = cli_here("fit", spectrum, "-m", MODEL, "-o", tmp_path / "r.ecsv", "-j", "0", "--retries", "0", *CLI_FAST)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "r.ecsv").is_file()


def test_the_retries_reach_dask_from_python_and_from_the_command_line(tmp_path, monkeypatch):
    """Execution(retries=N) and --retries N are Dask's allowed-failures (the deaths of a worker a task may
    cause) in the batch's run; seen where the cluster would start, which stops here instead (no cluster)."""
    import dask

    from ulyss_ann.fitting.batch import cluster

    allowed = []

    def no_cluster(*args, **kwargs):
        allowed.append(dask.config.get("distributed.scheduler.allowed-failures"))
        raise UlyssAnnError("the test's stand-in for a cluster")

    monkeypatch.setattr(cluster, "local_cluster", no_cluster)
    spectrum = str(example_spectrum_path())
    with pytest.raises(UlyssAnnError, match="the test's stand-in for a cluster"):
        ulyss_ann.fit([spectrum], MODEL, tmp_path / "a.ecsv", execution=ulyss_ann.Execution(workers=1, retries=5),
                      **FAST)
    run = cli_here("fit", spectrum, "-m", MODEL, "-o", tmp_path / "b.ecsv", "-j", "1", "--retries", "7", *CLI_FAST)
    assert run.returncode == 2 and "the test's stand-in for a cluster" in run.stderr
    assert allowed == [5, 7]
