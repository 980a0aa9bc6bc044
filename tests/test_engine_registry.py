"""An engine defined only here, registered, works end to end: from Python, in a batch, from the command line,
and through an installed package's entry point; an unknown engine is refused in one line naming those registered.

The engine is small and honest: the model of the paper's Eq. 8 (the network, shifted by cz, broadened by a
Gaussian σ, times a Legendre polynomial solved linearly) fitted by ``scipy.optimize.least_squares`` on a
uniform ln-λ grid — none of the native engine's numerics. It declares nothing but its name, its help line
and a label of its own, so that the defaults of :class:`~ulyss_ann.fitting.engine_traits.EngineTraits` are
what every other module sees.
"""

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from numpy.polynomial import legendre
from scipy.ndimage import gaussian_filter1d
from scipy.optimize import least_squares

import ulyss_ann
from conftest import install_plugin, warnings_said
from ulyss_ann.cli.main import main
from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.fitting import engines
from ulyss_ann.fitting.core import FitEngine, Solution
from ulyss_ann.model.wavelength import C_KMS
from ulyss_ann.spectra.examples import example_spectrum_path

SPECTRUM = example_spectrum_path()
ONE_GUESS = {"Teff": [5400.0], "Logg": [3.0], "Fe/H": [-1.5]}


class LeastSquaresEngine(FitEngine):
    """Eq. 8 by scipy's least_squares, from the first guess of each parameter."""

    name = "lsq"
    summary = "scipy least_squares (the tests' engine)"

    @classmethod
    def label(cls, config):
        return "lsq-scipy"

    def __init__(self, config, interp=None):
        super().__init__(config, interp)
        self.name = self.label(config)  # the rows' engine column

    def solve(self, prepared):
        spectrum, config = prepared.spectrum, prepared.config or self.config
        lam = np.asarray(spectrum.wavelength, float)
        n = int(np.count_nonzero((lam >= prepared.lo) & (lam <= prepared.hi)))
        ln = np.linspace(np.log(prepared.lo), np.log(prepared.hi), n)  # the fit's ln-λ grid
        step = ln[1] - ln[0]
        on_grid = lambda values: np.interp(ln, np.log(lam), np.asarray(values, float))  # noqa: E731
        flux = on_grid(spectrum.flux)
        error = on_grid(spectrum.error) if spectrum.error is not None else np.ones(n)
        good = on_grid(prepared.good.astype(float)) > 0.999
        net = self.interp.wavelength.wavelength
        net_ln = np.arange(np.log(net[0]), np.log(net[-1]), step)
        polynomials = legendre.legvander(np.linspace(-1.0, 1.0, n), config.mdegree)
        free = prepared.fixed_flags == 0
        values = prepared.guesses[np.concatenate([[0], np.cumsum(prepared.counts)[:-1]])]

        def bestfit(theta):
            params = values.copy()
            params[free] = theta[:-2]
            cz, sigma = theta[-2:]
            model = gaussian_filter1d(np.interp(net_ln, np.log(net), self.interp.evaluate(params)),
                                      sigma / C_KMS / step)
            template = np.interp(ln - np.log1p(cz / C_KMS), net_ln, model)
            basis = template[:, None] * polynomials
            weights, *_ = np.linalg.lstsq(basis[good] / error[good, None], flux[good] / error[good], rcond=None)
            return basis @ weights

        def residual(theta):
            return ((flux - bestfit(theta)) / error)[good]

        limits = np.array([[p.low, p.high] for p in self.interp.parameters])[free]
        start = np.concatenate([values[free], [0.0, 50.0]])
        fit = least_squares(residual, start, bounds=(np.r_[limits[:, 0], -2000.0, 1.0],
                                                     np.r_[limits[:, 1], 2000.0, 1000.0]), x_scale="jac")
        dof = np.count_nonzero(good) - len(start) - config.mdegree - 1
        chi2 = float(np.sum(fit.fun ** 2) / dof)
        errors_free = np.sqrt(np.diag(np.linalg.pinv(fit.jac.T @ fit.jac)))
        params, errors = values.copy(), np.zeros_like(values)
        params[free], errors[free] = fit.x[:-2], errors_free[:-2]
        best = bestfit(fit.x)
        return Solution(n_guess=1, best_guess=0, n_converged=int(fit.success), chi2=chi2,
                        rms=float(np.std((flux - best)[good]) / np.mean(flux[good])), n_pix=int(np.count_nonzero(good)),
                        cz=fit.x[-2], e_cz=errors_free[-2], sigma=fit.x[-1], e_sigma=errors_free[-1], values=params,
                        errors=errors, status=np.where(free, 0, 1), ln_start=ln[0], ln_step=step, flux=flux,
                        bestfit=best, mask=good, error=error if spectrum.error is not None else None)


@pytest.fixture
def registered():
    """The tests' engine, registered for one test (and its open engines closed after)."""
    engines.register_engine(LeastSquaresEngine)
    yield LeastSquaresEngine
    engines.unregister_engine(LeastSquaresEngine.name)


def truth():
    header = fits.getheader(SPECTRUM)
    return {"Teff": header["SIM_TEFF"], "Logg": header["SIM_LOGG"], "Fe/H": header["SIM_FEH"], "cz": header["SIM_VRAD"]}


def assert_sensible(params, cz):
    """Near the simulated star (trial 8's spectrum fitted with the example network: the native engine finds
    Teff 5496 K, log g 3.67, [Fe/H] -2.09, cz 20.0 km/s from the paper's guesses)."""
    true = truth()
    assert abs(params["Teff"] - true["Teff"]) < 150
    assert abs(params["Logg"] - true["Logg"]) < 0.4
    assert abs(params["Fe/H"] - true["Fe/H"]) < 0.2
    assert abs(cz - true["cz"]) < 5


def test_an_engine_registered_in_the_tests_fits_one_spectrum_from_python(registered):
    result = ulyss_ann.fit_spectrum(SPECTRUM, model="example", engine="lsq", mdegree=8, guesses=ONE_GUESS)
    assert result.engine == "lsq-scipy" and result.n_pix > 1500
    assert_sensible(result.params, result.cz)
    assert all(0 < result.errors[name] < 1e3 for name in result.params)
    assert 0.3 < result.chi2 < 3  # the simulated noise is the spectrum's error column


def test_a_batch_with_the_tests_engine_writes_its_label_and_record(registered, tmp_path):
    table = ulyss_ann.fit([SPECTRUM], "example", tmp_path / "r.ecsv", engine="lsq", workers=0, progress=False,
                          mdegree=8, guesses=ONE_GUESS)
    written = Table.read(tmp_path / "r.ecsv")
    assert list(written["status"]) == ["ok"] and list(written["engine"]) == ["lsq-scipy"]
    assert written.meta["engine"] == "lsq" and written.meta["software"] == "ulyss_ann (lsq engine)"
    assert written.meta["backend"] is None and written.meta["losvd"] is None  # options it does not take
    assert_sensible({name: table[name][0] for name in ("Teff", "Logg", "Fe/H")}, table["cz"][0])


def test_the_command_line_fits_with_the_tests_engine(registered, tmp_path, capsys):
    out = tmp_path / "cli.ecsv"
    status = main(["fit", SPECTRUM, "-m", "example", "--engine", "lsq", "-j", "0", "-o", str(out), "--quiet",
                   "--mdegree", "8", "--guess", "Teff=5400", "--guess", "Logg=3", "--guess", "Fe/H=-1.5"])
    assert status == 0, capsys.readouterr().err
    row = Table.read(out)[0]
    assert row["status"] == "ok" and row["engine"] == "lsq-scipy"
    assert_sensible({name: row[name] for name in ("Teff", "Logg", "Fe/H")}, row["cz"])


def test_the_tests_engine_refuses_the_options_it_does_not_take_in_one_line(registered):
    with pytest.raises(UlyssAnnError, match=r"^losvd \(--losvd\) analytic: the lsq engine does not take it \(drop "
                                            r"--losvd, or use an engine that does\)$"):
        ulyss_ann.fit_spectrum(SPECTRUM, engine="lsq", losvd="analytic")
    with pytest.raises(UlyssAnnError, match=r"^backend \(--backend\) pygdl: the lsq engine does not take it"):
        ulyss_ann.fit_spectrum(SPECTRUM, engine="lsq", backend="pygdl")
    assert engines.resolve_engine("auto", remote=True) in ("gdl", "native")  # auto never takes it


def test_an_unknown_engine_is_refused_in_one_line_naming_the_registered_ones(registered):
    with pytest.raises(UlyssAnnError) as caught:
        ulyss_ann.fit_spectrum(SPECTRUM, engine="jax")
    assert str(caught.value) == "engine 'jax': choose auto, gdl, lsq, native"
    with pytest.raises(UlyssAnnError, match="^engine 'jax': choose auto, gdl, lsq, native$"):
        ulyss_ann.fit([SPECTRUM], "example", None, engine="jax", workers=0, progress=False)


def test_a_name_cannot_be_registered_twice_and_unregistering_forgets_it(registered):
    class Impostor(LeastSquaresEngine):
        pass

    with pytest.raises(UlyssAnnError, match="engine 'lsq' is registered already"):
        engines.register_engine(Impostor)
    engines.unregister_engine("lsq")
    assert "lsq" not in engines.engine_names()
    with pytest.raises(UlyssAnnError, match="^engine 'lsq': choose auto, gdl, native$"):
        engines.engine_class("lsq")


def test_an_installed_package_registers_an_engine_through_its_entry_point(tmp_path, monkeypatch):
    install_plugin(tmp_path, monkeypatch, "lsq_plugin", """\
        from test_engine_registry import LeastSquaresEngine


        class PluginEngine(LeastSquaresEngine):
            name = "lsq-plugin"
            summary = "the tests' engine, installed"
        """, "ulyss_ann.engines", ["lsq-plugin = lsq_plugin:PluginEngine"])
    engines.refresh_entry_points()
    try:
        assert "lsq-plugin" in engines.engine_names() and engines.engine_reachable("lsq-plugin")  # workers see it
        result = ulyss_ann.fit_spectrum(SPECTRUM, model="example", engine="lsq-plugin", mdegree=8,
                                        guesses=ONE_GUESS)
        assert engines.engine_class("lsq-plugin").__name__ == "PluginEngine" and result.engine == "lsq-scipy"
        assert_sensible(result.params, result.cz)
    finally:
        engines.unregister_engine("lsq-plugin")


def test_an_engine_plugin_that_does_not_load_leaves_auto_and_the_labels_working(tmp_path, monkeypatch):
    install_plugin(tmp_path, monkeypatch, "bad_eng", "", "ulyss_ann.engines", ["aaa = bad_eng:Nope"])
    try:
        said = warnings_said(lambda: engines.refresh_entry_points() or [engines.resolve_engine("auto"),
                                                                         engines.engine_of_label("native")])
        # one warning naming it, once: a second pass says nothing more
        assert said == [["engine 'aaa': bad_eng:Nope does not load (AttributeError: module 'bad_eng' has no attribute "
                         "'Nope'); left out until it loads (fix or uninstall the package that declares it)"]]
        assert warnings_said(lambda: engines.resolve_engine("auto")) == []
        assert engines.resolve_engine("auto") in ("gdl", "native") and engines.engine_of_label("native") == "native"
        with pytest.raises(UlyssAnnError, match=r"^engine 'aaa': bad_eng:Nope does not load \(AttributeError: "):
            engines.engine_class("aaa")  # asked for by name: its one line
    finally:
        engines.unregister_engine("aaa")


def test_an_entry_point_named_auto_is_one_warning_and_left_out(tmp_path, monkeypatch):
    install_plugin(tmp_path, monkeypatch, "auto_eng", "", "ulyss_ann.engines", ["auto = auto_eng:Auto"])
    try:
        assert warnings_said(engines.refresh_entry_points) == [[
            "engine 'auto = auto_eng:Auto' (ulyss_ann.engines) left out: UlyssAnnError: engine name 'auto' is taken "
            "by the registry's own choice; name the engine otherwise; fix or uninstall the package that declares it"]]
        assert engines.engine_choices().count("auto") == 1 and "auto" not in engines.engine_names()
    finally:
        engines.unregister_engine("auto")  # (nothing, unless it got in)


def test_a_label_is_the_engine_named_exactly_else_the_longest_name_that_owns_it():
    class NativeJax(FitEngine):
        name = "native-jax"  # "native-…" labels are the native engine's too: the longer name wins

    engines.register_engine(NativeJax)
    try:
        assert [engines.engine_of_label(label) for label in ("native", "native-jax", "native-jax-gpu", "native-x")] \
            == ["native", "native-jax", "native-jax", "native"]
    finally:
        engines.unregister_engine("native-jax")


def test_an_engine_registered_in_this_session_alone_is_refused_for_dask_workers(registered, tmp_path):
    assert not engines.engine_reachable("lsq") and engines.engine_reachable("native")
    assert engines.engine_reachable("gdl")
    message = ("the engine 'lsq' is registered in this session only, which Dask's workers cannot see: fit with "
               "workers=0 (-j 0), or register it through an entry point (ulyss_ann.engines)")
    with pytest.raises(UlyssAnnError) as refused:
        ulyss_ann.fit([SPECTRUM], "example", tmp_path / "r.ecsv", engine="lsq", workers=2, progress=False)
    assert str(refused.value) == message and not list(tmp_path.iterdir())  # before any cluster, journal or table
