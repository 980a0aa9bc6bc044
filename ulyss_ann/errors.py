"""Exceptions and warnings of ulyss_ann.

Every error a user can provoke with bad input derives from :class:`UlyssAnnError`;
the command line prints such errors as one line (no traceback) and exits with
status 2.  Messages name the file, the HDU or keyword at fault, and what was
expected, so that the fix is obvious without reading the code.
"""

__all__ = [
    "UlyssAnnError",
    "InterpolatorFileError",
    "ParameterError",
    "OutOfBoundsError",
    "OutOfBoundsWarning",
    "MachineryError",
    "OversampledWarning",
    "ModelMediumWarning",
    "first_line",
]


class UlyssAnnError(Exception):
    """Base class of the errors caused by user input (files, parameters, options)."""


class InterpolatorFileError(UlyssAnnError):
    """An interpolator (perceptron) FITS file is missing, unreadable or malformed.

    Parameters
    ----------
    path : str or path-like
        The file at fault.
    problem : str
        What is wrong, naming the HDU and keyword when there is one, and what was
        expected instead.
    """

    def __init__(self, path, problem):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class MachineryError(UlyssAnnError):
    """The machinery failed, not the spectrum: a GDL process died, hung or could not start.

    The batch driver records such a failure with the status ``failed: …`` (a spectrum's
    own problems are ``error: …``) and fits that spectrum again on ``--resume``.
    """


class ParameterError(UlyssAnnError):
    """Atmospheric parameters given to an interpolator are malformed (names, shape, NaN)."""


class OutOfBoundsError(ParameterError):
    """Parameters lie outside the bounds the network was trained on (strict mode)."""


class OutOfBoundsWarning(UserWarning):
    """Parameters lie outside the trained bounds: the network extrapolates there."""


class OversampledWarning(UserWarning):
    """A spectrum is sampled far finer than the network: its fit costs much more, for no gain."""


class ModelMediumWarning(UserWarning):
    """A network's strong lines contradict the wavelength medium its header states (fits are not converted)."""


def first_line(exc, width=None):
    """The first line of an exception's message (at most ``width`` characters), or its type's name
    when it has none: what a one-line error quotes of an error raised by another library."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line[:width] if width else line
