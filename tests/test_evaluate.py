"""The evaluator against an independent, straightforward forward pass, and its Jacobian."""

import numpy as np
import pytest
from astropy.io import fits
from scipy.special import expit

from conftest import make_network, random_params, reference_file
from ulyss_ann import Interpolator


def plain_forward(p, weights, activations, mean, scale):
    """Textbook forward pass, one spectrum at a time, bias row separate (Eqs. 1-2 of the paper)."""
    funcs = {"logistic": lambda z: 1.0 / (1.0 + np.exp(-z)), "tanh": np.tanh,
             "relu": lambda z: np.where(z > 0, z, 0.0), "linear": lambda z: z}
    out = []
    for row in np.atleast_2d(p):
        h = (row - mean) / scale
        for w, a in zip(weights, activations):
            z = np.array([w[0, j] + sum(h[i] * w[i + 1, j] for i in range(len(h)))
                          for j in range(w.shape[1])])
            h = funcs[a](z)
        out.append(h)
    return np.array(out)


def scaling(interp):
    return (np.array([p.mean for p in interp.parameters]), np.array([p.scale for p in interp.parameters]))


@pytest.mark.parametrize("hidden, activations", [
    ((6,), ["logistic", "linear"]),
    ((5, 7), ["logistic", "logistic", "linear"]),
    ((4, 6, 5), ["tanh", "relu", "logistic", "linear"]),
    ((8, 3), ["relu", "tanh", "logistic"]),
])
def test_matches_plain_forward_pass(hidden, activations):
    interp = make_network(hidden, activations, seed=len(hidden))
    params = random_params(interp, 7)
    expected = plain_forward(params, interp.weights, interp.activations, *scaling(interp))
    batch = interp.evaluate(params)
    assert batch.shape == (7, interp.npix) and batch.dtype == np.float64
    np.testing.assert_allclose(batch, expected, rtol=1e-12, atol=1e-13)
    for row, exp in zip(params, expected):  # the single-spectrum path
        np.testing.assert_allclose(interp.evaluate(row), exp, rtol=1e-12, atol=1e-13)


def test_batches_larger_than_one_block_and_reused_output():
    interp = make_network((5, 7), npix=30)
    params = random_params(interp, 1300)  # several blocks of the chunked forward pass
    out = np.full((1300, 30), np.nan)
    result = interp.evaluate(params, out=out)
    assert result is out
    singles = np.array([interp.evaluate(p) for p in params[::97]])
    np.testing.assert_allclose(out[::97], singles, rtol=1e-13, atol=1e-14)


def test_four_parameters_and_mapping_input():
    interp = make_network((5,), npar=4)
    p = random_params(interp, 1)[0]
    by_name = interp.evaluate({"teff": p[0], "LOGG": p[1], "Fe/H": p[2], "alpha/fe": p[3]})
    np.testing.assert_array_equal(by_name, interp.evaluate(p))


@pytest.mark.parametrize("trial", [7, 8])
def test_authors_file_against_independent_reading(trial):
    """Our reader + evaluator against a forward pass from the raw HDUs (astropy only)."""
    path = reference_file(f"gsl_ann_trial{trial}.fits")
    with fits.open(path) as hdul:
        layers = sorted(((h.header["I_LAYER"], np.array(h.data, dtype=float)) for h in hdul))
        head = hdul[0].header
        mean = np.array([head[f"I_PR_B{n}"] for n in (1, 2, 3)])
        scale = np.array([head[f"I_PR_S{n}"] for n in (1, 2, 3)])
    interp = Interpolator.read(path)
    params = np.array([[5000.0, 2.0, -1.5], [3600.0, 0.5, -2.9], [7900.0, 5.5, -0.1], [5514.0, 3.2, -1.3]])
    x = (params - mean) / scale
    h = x
    for _, w in layers[:-1]:
        h = expit(h @ w[1:] + w[0])
    expected = h @ layers[-1][1][1:] + layers[-1][1][0]
    np.testing.assert_allclose(interp.evaluate(params), expected, rtol=1e-10, atol=0)
    np.testing.assert_allclose(interp.evaluate(params[0]), expected[0], rtol=1e-10, atol=0)
    assert interp.architecture == [3, 32, 64, 2099]
    np.testing.assert_allclose(interp.wavelength.wavelength[[0, -1]], [4762.23779296875, 7384.73779296875])


@pytest.mark.parametrize("activations", [["logistic", "logistic", "linear"], ["tanh", "logistic", "tanh"]])
def test_jacobian_against_finite_differences(activations):
    interp = make_network((5, 7), activations)
    params = random_params(interp, 5, seed=3)
    flux, jac = interp.evaluate_with_jacobian(params)
    assert jac.shape == (5, interp.npix, 3)
    np.testing.assert_array_equal(flux, interp.evaluate(params))
    for i, par in enumerate(interp.parameters):
        step = 1e-5 * par.scale
        dp = np.zeros(3)
        dp[i] = step
        numeric = (interp.evaluate(params + dp) - interp.evaluate(params - dp)) / (2 * step)
        # Central differences are exact to O(step^2) ~ 1e-10 relative, well above rounding here.
        np.testing.assert_allclose(jac[:, :, i], numeric, rtol=1e-6, atol=1e-8 * np.abs(numeric).max())


def test_jacobian_single_equals_batched_rows():
    interp = make_network((5, 7))
    params = random_params(interp, 4)
    jac = interp.jacobian(params)
    for row, j in zip(params, jac):
        np.testing.assert_allclose(interp.jacobian(row), j, rtol=1e-13, atol=1e-15)


def test_jacobian_of_authors_network():
    path = reference_file("gsl_ann_trial7.fits")
    interp = Interpolator.read(path)
    p = np.array([5000.0, 2.0, -1.5])
    jac = interp.jacobian(p)
    for i, step in enumerate([0.05, 1e-4, 1e-4]):
        dp = np.zeros(3)
        dp[i] = step
        numeric = (interp.evaluate(p + dp) - interp.evaluate(p - dp)) / (2 * step)
        np.testing.assert_allclose(jac[:, i], numeric, rtol=1e-5, atol=1e-7 * np.abs(numeric).max())


# --------------------------------------------------------------------- astropy Quantities as parameters
def test_quantities_are_converted_to_the_parameter_units():
    import astropy.units as u

    interp = make_network((5, 7))
    p = np.array([5000.0, 2.0, -1.5])
    expected = interp.evaluate(p)
    assert "_astropy_units" not in interp.__dict__  # plain numbers never take the Quantity path
    for given in ([5000 * u.K, 2 * u.dex, -1.5 * u.dex],
                  [5 * u.kK, u.Quantity(2, u.dex), u.Dex(-1.5)],          # a plain dex Quantity and a LogQuantity
                  [(5000 - 273.15) * u.deg_C, 2.0, -1.5 * u.dex],         # temperature scales; plain numbers beside
                  [5000 * u.K, 2 * u.dex(u.cm / u.s ** 2), -1.5 * u.dex],  # log g with its physical unit
                  {"teff": 5 * u.kK, "LOGG": 2 * u.dex, "Fe/H": -1.5}):
        np.testing.assert_allclose(interp.evaluate(given), expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(interp.jacobian([5 * u.kK, 2 * u.dex, -1.5 * u.dex]), interp.jacobian(p),
                               rtol=1e-12, atol=1e-14)


def test_quantity_arrays_per_parameter_and_rows():
    import astropy.units as u

    interp = make_network((5, 7))
    params = random_params(interp, 4)
    expected = interp.evaluate(params)
    columns = [params[:, 0] / 1000 * u.kK, params[:, 1] * u.dex, params[:, 2] * u.dex]
    np.testing.assert_allclose(interp.evaluate(columns), expected, rtol=1e-12, atol=1e-14)
    rows = [[t * u.K, g * u.dex, z * u.dex] for t, g, z in params]
    np.testing.assert_allclose(interp.evaluate(rows), expected, rtol=1e-12, atol=1e-14)
    flux, jac = interp.evaluate_with_jacobian(columns)
    np.testing.assert_allclose(jac, interp.jacobian(params), rtol=1e-12, atol=1e-14)
    # a scalar beside arrays broadcasts, as in the mapping form
    mixed = interp.evaluate([params[:, 0] * u.K, 2.5 * u.dex, params[:, 2] * u.dex])
    np.testing.assert_allclose(mixed, interp.evaluate(np.column_stack([params[:, 0], np.full(4, 2.5), params[:, 2]])),
                               rtol=1e-12, atol=1e-14)


def test_incompatible_units_are_one_line_parameter_errors():
    import astropy.units as u

    from ulyss_ann import ParameterError

    interp = make_network((5, 7))
    cases = [([5000 * u.km, 2 * u.dex, -1.5 * u.dex], ("Teff", "km", "K")),
             ([5000 * u.K, 2 * u.K, -1.5 * u.dex], ("Logg", "dex")),
             ([5000 * u.K, 2 * u.dex, u.Quantity(-1.5)], ("Fe/H", "dimensionless")),  # not a log quantity
             ({"Teff": 5000, "Logg": 2 * u.s, "Fe/H": -1.5}, ("Logg", "s")),
             (np.array([5000.0, 2.0, -1.5]) * u.K, ("Logg",)),                         # one unit for all
             ([5000 * u.K, 2 * u.dex], ("2 values", "Teff, Logg, Fe/H"))]
    for given, words in cases:
        with pytest.raises(ParameterError) as excinfo:
            interp.evaluate(given)
        message = str(excinfo.value)
        assert "\n" not in message and all(w in message for w in words), message
    with pytest.raises(ParameterError):
        interp.jacobian([5000 * u.km, 2 * u.dex, -1.5 * u.dex])


def test_quantity_for_a_unit_astropy_does_not_know():
    import astropy.units as u

    from ulyss_ann import Parameter, ParameterError

    base = make_network((5,))
    odd = Parameter("Fe/H", "[solar]", -3.0, 0.0, 0.003, -1.5, 0.75)
    interp = Interpolator((*base.parameters[:2], odd), base.weights, base.activations, base.wavelength)
    np.testing.assert_array_equal(interp.evaluate([5000.0, 2.0, -1.5]), base.evaluate([5000.0, 2.0, -1.5]))
    np.testing.assert_array_equal(interp.evaluate([5 * u.kK, 2 * u.dex, -1.5]), base.evaluate([5000.0, 2.0, -1.5]))
    with pytest.raises(ParameterError, match=r"\[solar\].*plain number"):
        interp.evaluate([5000 * u.K, 2 * u.dex, -1.5 * u.dex])


# --------------------------------------------------------------------- repr
def test_repr_is_a_one_line_summary(network_file):
    path, interp = network_file
    read = Interpolator.read(path)
    text = repr(read)
    assert "\n" not in text and len(text) < 200, text
    assert text == ("<Interpolator small.fits: Teff [K], Logg [dex], Fe/H [dex] -> 40 px 4762.2-4811.0 Å, "
                    "architecture [3, 5, 7, 40]>")
    assert repr(interp).startswith("<Interpolator (in memory): ")
    assert "weights" not in text and "array(" not in text


def test_repr_of_the_example_and_authors_networks():
    from ulyss_ann import example_interpolator

    assert repr(example_interpolator()).endswith("architecture [3, 16, 32, 2099], surrogate>")
    path = reference_file("gsl_ann_trial7.fits")
    assert repr(Interpolator.read(path)) == ("<Interpolator gsl_ann_trial7.fits: Teff [K], Logg [dex], Fe/H [dex] "
                                             "-> 2099 px 4762.2-7384.7 Å, architecture [3, 32, 64, 2099]>")
