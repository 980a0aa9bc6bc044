"""The results table's format comes from its name by astropy's registry, its writer checked before the fits.

A name astropy knows but whose writer needs a package that is not installed (``.parquet``:
pyarrow; ``.hdf5``: h5py) is refused in one line naming ``-o``, the package and the fix,
before any spectrum is fitted: never after the fits, where the finished batch would only be
in its journal. The package is hidden here (``sys.modules[name] = None`` makes its import
fail) so that the test says the same whether or not it is installed.
"""

import os
import sys

import pytest

from conftest import CLI_FAST, FAST, MODEL, TRUTH, simulated_batch
from ulyss_ann import UlyssAnnError
from ulyss_ann.fitting.table import table_format


@pytest.fixture(scope="module")
def spectrum(tmp_path_factory):
    return simulated_batch(tmp_path_factory.mktemp("spectra"), TRUTH[:1], lambda i: 0.0)


@pytest.mark.parametrize("name, package", [("r.parquet", "pyarrow"), ("r.hdf5", "h5py")])
def test_a_writer_whose_package_is_missing_is_refused_before_the_fits(spectrum, tmp_path, monkeypatch, name,
                                                                      package):
    from ulyss_ann.fitting.batch.driver import fit

    monkeypatch.setitem(sys.modules, package, None)
    with pytest.raises(UlyssAnnError) as refused:
        fit(spectrum, MODEL, tmp_path / name, workers=0, **FAST)
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"output (-o) {tmp_path / name}: ")
    assert package in message and "end the name in .ecsv" in message
    assert os.listdir(tmp_path) == []  # no journal: nothing was fitted


def test_the_command_line_says_it_in_one_line_fits_nothing_and_lets_working_writers_pass(spectrum, tmp_path,
                                                                                          monkeypatch, capsys):
    from ulyss_ann.cli.main import main

    monkeypatch.setitem(sys.modules, "pyarrow", None)
    out = tmp_path / "r.parquet"
    assert main(["fit", *spectrum, "-m", MODEL, "-o", str(out), "-j", "0", *CLI_FAST]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ulyss-ann: error: output (-o) {out}: astropy's parquet writer cannot run here (pyarrow ")
    assert err.count("\n") == 1 and os.listdir(tmp_path) == []
    # and the writers that run here pass the check
    assert [table_format(name) for name in ("r.ecsv", "r.fits", "r.csv")] == ["ascii.ecsv", "fits", "ascii.csv"]
