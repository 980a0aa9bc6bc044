"""Parameter handling: names, shapes, NaN, and the trained bounds."""

import warnings

import numpy as np
import pytest

from conftest import make_network
from ulyss_ann import OutOfBoundsError, OutOfBoundsWarning, ParameterError


def test_inside_bounds_is_silent():
    interp = make_network()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        interp.evaluate([5000.0, 2.0, -1.5])
        interp.evaluate([[3500.0, 0.0, -3.0], [8000.0, 6.0, 0.0]])  # the bounds themselves


def test_outside_bounds_warns_and_names_the_parameter():
    interp = make_network()
    with pytest.warns(OutOfBoundsWarning, match=r"Teff = 9000 .*outside \[3500, 8000\] K"):
        flux = interp.evaluate([9000.0, 2.0, -1.5])
    assert np.all(np.isfinite(flux))  # still computed: a warning, not a refusal


def test_strict_refuses_outside_bounds():
    interp = make_network()
    with pytest.raises(OutOfBoundsError, match="Fe/H"):
        interp.evaluate([[5000.0, 2.0, -1.5], [5000.0, 2.0, 0.5]], strict=True)
    with pytest.raises(OutOfBoundsError, match="Logg"):
        interp.jacobian([5000.0, -0.5, -1.5], strict=True)


@pytest.mark.parametrize("bad, match", [
    ([5000.0, 2.0], r"shape \(2,\), expected \(3,\)"),
    ([[5000.0, 2.0, np.nan]], "NaN"),
    ({"Teff": 5000.0, "Logg": 2.0}, "missing parameter.*Fe/H"),
    ({"Teff": 5000.0, "Logg": 2.0, "Fe/H": -1.0, "Vrot": 3.0}, "unknown parameter 'Vrot'.*Teff, Logg, Fe/H"),
    (["a", "b", "c"], "must be numbers"),
])
def test_malformed_parameters(bad, match):
    with pytest.raises(ParameterError, match=match):
        make_network().evaluate(bad)
