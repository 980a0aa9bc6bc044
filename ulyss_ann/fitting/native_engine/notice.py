"""Whether this process still has to say that the native engine's kernels compile: said once, not within a
quiet batch (``--quiet``, ``progress=False``). Apart from :mod:`~ulyss_ann.fitting.native_engine.kernels`
so that a quiet batch with nothing to fit (a resume of a finished run) never loads numba (~55 MB of the
driver's memory, ``scripts/bench_survey --driver-rows``)."""

from contextlib import contextmanager

__all__ = ["hushed", "pending", "said"]

_said = False  # a notice said, or a quiet batch running, in this process


def pending():
    """True while no notice has been said in this process and no quiet batch is running."""
    return not _said


def said():
    """The notice has been said: not again in this process."""
    global _said
    _said = True


@contextmanager
def hushed():
    """Within it, this process announces no compilation (a quiet batch); after it, as before (a later fit
    that compiles says so)."""
    global _said
    before, _said = _said, True
    try:
        yield
    finally:
        _said = before
