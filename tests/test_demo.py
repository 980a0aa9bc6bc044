"""./scripts/demo, the first command of the README, as a newcomer runs it (the first leg only)."""

import os
import subprocess

import pytest

from conftest import PROJECT
from ulyss_ann.fitting.engines import gdl_ready
from ulyss_ann.gdl.ulyss_location import find_ulyss

pytestmark = pytest.mark.skipif(bool(os.environ.get("ULYSS_ANN_TEST_WHEEL")),
                                reason="the demo sets up and runs the checkout's .venv, which the first leg tests")


def test_the_demo_fits_each_engine_once_and_says_why_gdl_is_skipped(tmp_path):
    result = subprocess.run([str(PROJECT / "scripts" / "demo"), str(tmp_path / "out")], capture_output=True,
                            text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    fitted = [line for line in result.stdout.splitlines() if line.startswith("fitted:")]
    skipped = "the fit through GDL + ULySS is skipped: " in result.stdout
    if gdl_ready("auto"):
        assert [line.rsplit("(", 1)[1] for line in fitted] == ["gdl-subprocess)", "native)"], fitted
        assert not skipped
    else:  # a user's machine without GDL or ULySS: one native fit, and the reason for the missing one
        assert [line.rsplit("(", 1)[1] for line in fitted] == ["native)"], fitted
        assert skipped
        if find_ulyss() is None:   # which is missing, and the fix
            assert "skipped: ULySS not found" in result.stdout and "export ULYSS_DIR=" in result.stdout
    for name in ("spectrum.fits", "spectrum.png", "spectra.fits", "fit.png", "fit_native.ecsv"):
        assert (tmp_path / "out" / name).is_file(), name
