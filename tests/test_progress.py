"""Progress bars in a log: one final line, not every redraw and not the last line twice.

A tqdm bar redraws with carriage returns; redirected to a file, each redraw stays and tqdm's
close draws the final state again. Here stderr goes to a file, as a batch system's log."""

import io
import subprocess
import sys

from ulyss_ann.spectra.examples import example_spectrum_path
from ulyss_ann.spectra.progress import progress_bar


def bar_lines(text, label):
    """The lines of the log that are a state of the bar ``label`` (a carriage return ends a line too)."""
    return [line for line in text.replace("\r", "\n").split("\n") if line.startswith(label)]


def logged(tmp_path, *args):
    log = tmp_path / "stderr.log"
    with open(log, "w") as stderr:
        result = subprocess.run([sys.executable, "-m", "ulyss_ann.cli", *map(str, args)], stdout=subprocess.PIPE,
                                stderr=stderr, text=True, cwd=tmp_path, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, log.read_text()
    return log.read_text(encoding="utf-8")


def test_a_fit_logs_its_bar_once(tmp_path):
    log = logged(tmp_path, "fit", example_spectrum_path(), "-j", "0", "--engine", "native", "--mdegree", "8",
                 "--guess", "Teff=5400", "--guess", "Logg=3", "--guess", "Fe/H=-1.5", "-o", "r.ecsv")
    lines = bar_lines(log, "fitting:")
    assert len(lines) == 1 and lines[0].startswith("fitting: 100%") and "1/1" in lines[0], log


def test_simulate_logs_only_its_final_state(tmp_path):
    log = logged(tmp_path, "simulate", "ngc6397", "-m", "example", "--n-stars", 20, "--n-spectra", 25, "-o", "sim")
    lines = bar_lines(log, "simulating:")
    assert len(lines) == 1 and lines[0].startswith("simulating: 100%") and "25/25" in lines[0], log


def test_the_helper_in_a_log_and_switched_off():
    stream = io.StringIO()   # not a terminal
    for _ in progress_bar(range(7), desc="reading", file=stream):
        pass
    lines = bar_lines(stream.getvalue(), "reading:")
    assert len(lines) == 1 and "7/7" in lines[0] and stream.getvalue().endswith("\n")
    quiet = io.StringIO()
    with progress_bar(total=3, desc="quiet", file=quiet, enabled=False) as bar:
        bar.update(3)
    assert quiet.getvalue() == ""


def test_a_long_run_in_a_log_says_how_far_it_got_every_interval(monkeypatch):
    import ulyss_ann.spectra.progress as progress

    monkeypatch.setattr(progress, "LOG_INTERVAL_S", 0.0)   # every state is due: a long run, compressed
    stream = io.StringIO()
    with progress_bar(total=3, desc="long", file=stream, mininterval=0, miniters=1) as bar:
        for _ in range(3):
            bar.update(1)
    text = stream.getvalue()
    states = bar_lines(text, "long:")
    assert any("1/3" in line for line in states) and any("2/3" in line for line in states), text
    assert "\r" not in text.split("3/3")[0]   # the lines while it runs are plain lines, kept by a log


def test_a_notebook_gets_the_live_bar_though_its_stream_is_no_tty():
    # ipykernel's OutStream says isatty() False (not installed here: a class from that module)
    OutStream = type("OutStream", (io.StringIO,), {"__module__": "ipykernel.iostream"})
    stream = OutStream()
    for _ in progress_bar(range(3), desc="cell", file=stream, mininterval=0, miniters=1):
        pass
    assert "\r" in stream.getvalue() and len(bar_lines(stream.getvalue(), "cell:")) > 1   # redrawn in place
