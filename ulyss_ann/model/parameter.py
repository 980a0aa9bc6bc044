"""One input of an interpolator: name, unit, training bounds, derivative step, input scaling.

Names and units come from interpolator files, which travel between astronomers: they
are checked here, once, for every way a :class:`Parameter` is made (read from a file,
built by training, typed in a notebook), because they later become GDL code, table
columns and command-line keys.
"""

import re
from dataclasses import dataclass

from ulyss_ann.errors import ParameterError

__all__ = ["Parameter", "check_parameter_name", "check_parameter_unit", "PARAMETER_NAME"]

#: What a parameter name may be: a ULySS-style name (``Teff``, ``logg``, ``Fe/H``, ``[alpha/Fe]``).
#: Names become GDL code, table columns (``e_<name>``) and command-line keys, so they hold no
#: quote, space, separator or control character.
PARAMETER_NAME = re.compile(r"[A-Za-z\[(][A-Za-z0-9_/\[\]().+\-]{0,31}")


def check_parameter_name(name):
    """``None`` if ``name`` can be a parameter name, else why not (one phrase)."""
    if not isinstance(name, str) or PARAMETER_NAME.fullmatch(name) is None:
        return (f"parameter name {name!r} is not allowed: a name starts with a letter, '[' or '(' and "
                "holds at most 32 letters, digits and _ / [ ] ( ) . + - (e.g. Teff, logg, Fe/H)")
    return None


def check_parameter_unit(unit):
    """``None`` if ``unit`` can be a unit string (printable ASCII, as FITS), else why not."""
    if not isinstance(unit, str) or len(unit) > 68 or any(not 32 <= ord(c) < 127 for c in unit):
        return (f"parameter unit {unit!r} is not allowed: a unit is at most 68 printable ASCII "
                "characters (a FITS string), e.g. K, dex, km/s")
    return None


@dataclass(frozen=True)
class Parameter:
    """One input parameter of an interpolator (each argument is also the attribute of that name).

    Parameters
    ----------
    name : str
        As in the file (``Teff``, ``Logg``, ``Fe/H`` for the GSL networks).
    unit : str
        FITS-style unit string (``K``, ``dex``).
    low, high : float
        Bounds of the training grid, in ``unit``; outside them the network extrapolates.
    step : float
        Step for numerical derivatives, in ``unit`` (used by ULySS; our Jacobian is analytic).
    mean, scale : float
        Input standardisation ``x = (p - mean) / scale``, in the parameter's unit.

    Raises
    ------
    ParameterError
        When the name or the unit could not travel into GDL code, table columns and FITS
        (:func:`check_parameter_name`, :func:`check_parameter_unit`).

    Examples
    --------
    >>> Parameter("Teff", "K", low=3000.0, high=7000.0, step=20.0, mean=5000.0, scale=1000.0).name
    'Teff'
    """

    name: str
    unit: str
    low: float
    high: float
    step: float
    mean: float
    scale: float

    def __post_init__(self):
        problem = check_parameter_name(self.name) or check_parameter_unit(self.unit)
        if problem:
            raise ParameterError(problem)
