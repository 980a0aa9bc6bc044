"""The README's GDL session, pasted as a user would: ulyss-ann gdl-export --install, then gdl."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PROJECT, SHARED, reference_file
from ulyss_ann.gdl.ulyss_location import find_ulyss

MUSE = SHARED / "data" / "muse" / "ngc6397id000010554jd2456865p5826f000.fits"


def readme_session():
    text = (PROJECT / "README.md").read_text()
    block = text.split("<!-- gdl-session")[1].split("```console\n")[1].split("```")[0]
    return block.splitlines()


@pytest.mark.skipif(shutil.which("gdl") is None, reason="gdl not installed (./scripts/setup installs it)")
@pytest.mark.skipif(find_ulyss() is None, reason="ULySS not found (set ULYSS_DIR)")
def test_readme_gdl_session_works_when_pasted(tmp_path):
    model = reference_file("gsl_ann_trial7.fits")
    if not MUSE.is_file():
        pytest.skip(f"{MUSE} not found")
    shell, gdl_lines = [], []
    for line in readme_session():
        line = line.replace("gsl_ann_trial7.fits", str(model)).replace("'star.fits'", f"'{MUSE}'")
        if line.startswith("GDL> "):
            gdl_lines.append(line[5:])
        elif line == "$ gdl":
            shell.append("gdl <<'EOF'")
            shell.append("@@GDL@@")
            shell.append("EOF")
        elif line.startswith("$ "):
            shell.append(line[2:])
    gdl_lines += ["print, 'FLUXLEN', n_elements(flux), min(wave), max(wave)", "exit"]
    script = "\n".join(shell).replace("@@GDL@@", "\n".join(gdl_lines))
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_DATA_HOME", "GDL_PATH")}
    env.update(HOME=str(tmp_path), ULYSS_DIR=str(find_ulyss()),
               PATH=str(Path(sys.executable).parent) + os.pathsep + env["PATH"])
    result = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300, stdin=subprocess.DEVNULL)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "% Execution halted" not in out and "not found" not in out.lower(), out
    assert (tmp_path / ".local" / "share" / "ulyss_ann" / "gdl" / "gslann" / "gslann.pro").is_file()
    teff = float(re.search(r"^Teff\s+:\s+([\d.]+)", out, re.M).group(1))
    feh = float(re.search(r"^Fe/H\s+:\s+(-?[\d.]+)", out, re.M).group(1))
    assert 5000 < teff < 5700 and -2.5 < feh < -1.7, out
    fluxlen = re.search(r"FLUXLEN\s+(\d+)\s+([\d.]+)\s+([\d.]+)", out)
    assert int(fluxlen.group(1)) == 2099 and float(fluxlen.group(2)) == pytest.approx(4762.24, abs=0.01)
