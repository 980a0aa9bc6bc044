"""The progress bar of every long command: tqdm on a terminal, one final line in a log.

A tqdm bar redraws itself with carriage returns. On a terminal that is one line that
moves; in a log file (stderr redirected, a batch system's output) every redraw stays, and
tqdm's ``close`` draws the last state once more, so a log shows the final line twice. In a
log, :func:`progress_bar` therefore writes a plain line at most every
:data:`LOG_INTERVAL_S` seconds while it runs (an hours-long batch on a cluster's queue still
says how far it got) and the final state once, when the bar closes. Here, in ``spectra``, because it is the lowest layer that reads many
files; ``training``, ``fitting`` and ``paper`` use it too.
"""

import sys
import time

__all__ = ["progress_bar", "LOG_INTERVAL_S"]

#: Seconds between two lines of a progress bar written to a log (not a terminal).
LOG_INTERVAL_S = 60.0


def progress_bar(iterable=None, *, enabled=True, **options):
    """A tqdm bar over ``iterable`` (or with ``total=``), hidden when not ``enabled``; tqdm's ``options``.

    When its stream (``file``, default stderr) is not a terminal, the bar writes one line,
    its final state, when it closes (at the end of the iteration, or ``close``/``with``).
    """
    from tqdm import tqdm

    if not enabled:
        return tqdm(iterable, disable=True, **options)
    stream = options.get("file") or sys.stderr
    if _is_terminal(stream):
        return tqdm(iterable, **options)
    return _final_line_bar()(iterable, **options)


def _is_terminal(stream):
    # A notebook's stderr (ipykernel's OutStream) says it is no tty, but redraws a bar in place
    # as a terminal does: there the live bar, not a log's lines.
    if type(stream).__module__.startswith("ipykernel"):
        return True
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


_FINAL_LINE_BAR = []


def _final_line_bar():
    """The tqdm subclass that draws only when it closes (made on first use: tqdm stays unimported)."""
    if not _FINAL_LINE_BAR:
        from tqdm import tqdm

        class FinalLineBar(tqdm):
            def __init__(self, *args, **kwargs):
                self._closing = False  # before tqdm's __init__, which draws the first state
                self._logged = time.monotonic()
                super().__init__(*args, **kwargs)

            def display(self, msg=None, pos=None):
                if self._closing:
                    return super().display(msg, pos)
                if time.monotonic() - self._logged >= LOG_INTERVAL_S:  # a plain line, kept by the log
                    self._logged = time.monotonic()
                    self.fp.write(f"{self}\n")
                    self.fp.flush()
                return True

            def clear(self, nolock=False):
                pass  # nothing drawn to clear (tqdm.write clears the bars around a message)

            def close(self):
                self._closing = True
                super().close()

        _FINAL_LINE_BAR.append(FinalLineBar)
    return _FINAL_LINE_BAR[0]
