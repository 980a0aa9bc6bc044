"""The error options in a batch: ``--resume`` refuses another --errors, --nsimul or --medium (rows of 50 and
of 5 refits never mix; --seed is no part of the run), and ``--no-flat-check`` / ``flat_check=False``."""

import pytest
from astropy.table import Table

from conftest import CLI_FAST, FAST, MODEL, TRUTH, cli_here, journal_of, simulated_batch
from ulyss_ann.fitting.batch.driver import fit
from ulyss_ann.fitting.resampling import DEFAULT_NSIMUL, MIN_NSIMUL
from ulyss_ann.fitting.batch.run import run_differences

MC_FAST = ["--errors", "mc", "--nsimul", str(MIN_NSIMUL), "--seed", "1"]


@pytest.fixture(scope="module")
def spectra(tmp_path_factory):
    return simulated_batch(tmp_path_factory.mktemp("spectra"), TRUTH[:2], lambda i: 10.0 * i)


def refused_resume(spectra, out, *options):
    """``--resume`` of ``out`` with ``options``: the one error line (the journal left as it was)."""
    before = open(journal_of(out).path, "rb").read()
    refused = cli_here("fit", *spectra, "-j", "0", "-o", out, *CLI_FAST, *options, "--resume")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    errors = [line for line in refused.stderr.splitlines() if line.startswith("ulyss-ann: error:")]
    assert len(errors) == 1 and "--resume with another configuration" in errors[0]
    assert open(journal_of(out).path, "rb").read() == before
    return errors[0]


@pytest.mark.parametrize("change, listed", [
    (["--errors", "total"], 'errors: "formal" in the journal, "total" now'),
    (["--medium", "vacuum"], 'medium: null in the journal, "vacuum" now'),
])
def test_resume_with_other_errors_or_medium_is_refused(spectra, tmp_path, change, listed):
    out = tmp_path / "r.ecsv"
    assert cli_here("fit", spectra[0], "-j", "0", "-o", out, *CLI_FAST).returncode == 0
    assert listed in refused_resume(spectra[:1], out, *change)


def test_no_flat_check_in_the_cli_and_resume_with_another_nsimul_is_refused(spectra, tmp_path):
    out = tmp_path / "r.ecsv"
    done = cli_here("fit", *spectra, "-j", "0", "-o", out, *CLI_FAST, *MC_FAST, "--no-flat-check")
    assert done.returncode == 0, done.stderr
    table = Table.read(out)
    assert table.meta["flat_check"] is False and list(table["errors"]) == ["mc", "mc"]
    assert not any("flat-valley" in str(flags) for flags in table["flag"])
    line = refused_resume(spectra, out, *MC_FAST[:2], "--nsimul", str(MIN_NSIMUL + 1), "--no-flat-check")
    assert f"nsimul: {MIN_NSIMUL} in the journal, {MIN_NSIMUL + 1} now" in line
    # another seed is the same run: the finished rows are kept
    again = cli_here("fit", *spectra, "-j", "0", "-o", out, *CLI_FAST, *MC_FAST[:4], "--seed", "2", "--no-flat-check",
                "--resume")
    assert again.returncode == 0, again.stderr


def test_batch_fit_takes_flat_check(spectra, tmp_path):
    table = fit(spectra[:1], MODEL, tmp_path / "r.ecsv", workers=0, errors="mc", nsimul=MIN_NSIMUL, seed=1,
                flat_check=False, **FAST)
    assert table.meta["flat_check"] is False and table["errors"][0] == "mc"
    assert "flat-valley" not in str(table["flag"][0])


def test_nsimul_compared_as_the_refits_each_spectrum_gets():
    """None is the default; with MPFIT's errors (an earlier version's record has no ``errors``) it is no refits."""
    mc = {"errors": "mc", "nsimul": None}
    assert run_differences(mc, dict(mc, nsimul=DEFAULT_NSIMUL)) == []
    assert run_differences(mc, dict(mc, nsimul=DEFAULT_NSIMUL + 1)) != []
    assert run_differences({}, {"errors": "formal", "nsimul": 7}) == []
    assert run_differences({"errors": "total", "nsimul": 7}, {"errors": "total", "nsimul": 7, "seed": 3}) == []
