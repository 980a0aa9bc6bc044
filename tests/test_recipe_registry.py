"""A training recipe defined only here, registered, works end to end: from Python, from the command line, in its help.

The 'linear' recipe: one logistic hidden layer of fixed random weights, the output layer
from a (ridge) least-squares solve on the training nodes — a random-feature network, the
start of the fast recipe without its Levenberg–Marquardt steps. It writes the interpolator
itself (``-o out.fits``), which says what a recipe owns: its options, its network file, its run.
"""


import numpy as np
import pytest

from conftest import example_grid, install_plugin, warnings_said
from ulyss_ann import Interpolator, UlyssAnnError
from ulyss_ann.model.network import ACTIVATIONS
from ulyss_ann.training.grid_network import TrainingRecord, holdout_split, interpolator_from_weights, standardise
from ulyss_ann.training.recipe import Recipe
from ulyss_ann.training import train as recipe_registry
from ulyss_ann.training.train import register_recipe, registered_recipes, train, unregister_recipe

HIDDEN = 60


class LinearRecipe(Recipe):
    name = "linear"
    description = "fixed random hidden layer, output layer by least squares (a test recipe)"
    defaults = {"ridge": 1e-8}
    network_suffix = ".fits"
    step_name = "solve"

    def add_options(self, group):
        group.add_argument("--ridge", type=float, default=1e-8, metavar="LAMBDA",
                           help="linear recipe: Tikhonov weight of the output layer's solve (1e-8)")

    def check(self, output, options):
        super().check(output, options)
        if options["ridge"] < 0:
            raise UlyssAnnError(f"--ridge {options['ridge']}: expected a weight >= 0")

    def run(self, grid, output, settings, seed, holdout, progress, grid_file, want_interpolator, ridge=1e-8):
        x = standardise(grid.params)
        fit_idx, test_idx = holdout_split(len(x), holdout, seed)
        rng = np.random.default_rng(seed)
        hidden = rng.normal(0, 1.5, (x.shape[1] + 1, settings["hidden"][0]))  # bias in row 0, as every layer
        activate = ACTIVATIONS["logistic"][0]
        features = np.hstack([np.ones((len(x), 1)), activate(x @ hidden[1:] + hidden[0])])
        a = features[fit_idx]
        output_layer = np.linalg.solve(a.T @ a + ridge * np.eye(a.shape[1]), a.T @ grid.flux[fit_idx])
        mse = [float(np.mean((features[i] @ output_layer - grid.flux[i]) ** 2)) for i in (fit_idx, test_idx)]
        record = TrainingRecord(self.name, settings["preset"], seed, 1, mse[0], holdout_mse=mse[1],
                                grid_file=grid_file)
        interp = interpolator_from_weights([hidden, output_layer], ["logistic", "linear"], grid, source=output,
                                           training=record)
        interp.write(output, overwrite=True)
        history = {"epoch": np.array([1]), "train_mse": np.array(mse[:1]), "holdout_mse": np.array(mse[1:])}
        return history, interp


@pytest.fixture
def linear_recipe():
    recipe = register_recipe(LinearRecipe())
    yield recipe
    unregister_recipe(recipe.name)


@pytest.fixture(scope="module")
def grid_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("grid") / "grid.fits"
    example_grid().save(path)
    return path


def assert_interpolates_the_grid(path, grid, ridge):
    interp = Interpolator.read(path)
    assert interp.architecture == [3, HIDDEN, grid.flux.shape[1]]
    assert interp.training_record["RECIPE"] == "linear"
    # the file computes what the recipe fitted: its own MSE, recorded in the file, on the training nodes
    fit_idx, test_idx = holdout_split(len(grid.params), 0.1, 0)
    mse = np.mean((interp.evaluate(grid.params[fit_idx]) - grid.flux[fit_idx]) ** 2)
    np.testing.assert_allclose(mse, interp.training_record["TRAINMSE"], rtol=1e-9)
    # and it interpolates: on nodes it never saw, an error far below the spread of the spectra
    held_out = np.mean((interp.evaluate(grid.params[test_idx]) - grid.flux[test_idx]) ** 2)
    assert held_out < 0.01 * np.mean(grid.flux.var(0)), (held_out, ridge)


def test_a_registered_recipe_trains_from_python(linear_recipe, grid_file, tmp_path):
    from ulyss_ann.spectra.grid import SpectralGrid

    grid = SpectralGrid.load(grid_file)
    history = train(grid, tmp_path / "lin.fits", hidden=(HIDDEN,), recipe="linear", ridge=1e-6, progress=False)
    assert list(history["epoch"]) == [1]
    assert_interpolates_the_grid(tmp_path / "lin.fits", grid, 1e-6)
    with pytest.raises(UlyssAnnError, match=r"lin\.keras: the network file must end in \.fits"):
        train(grid, tmp_path / "lin.keras", hidden=(HIDDEN,), recipe="linear")
    # another recipe's option is refused, not ignored, naming its recipe and this one's options
    with pytest.raises(UlyssAnnError, match="--time-limit is for the fast recipe; the linear one takes --ridge$"):
        train(grid, tmp_path / "lin.fits", hidden=(HIDDEN,), recipe="linear", time_limit=5)


def test_a_registered_recipe_trains_from_the_command_line(linear_recipe, grid_file, tmp_path, capsys):
    from ulyss_ann.cli.main import main
    from ulyss_ann.spectra.grid import SpectralGrid

    out = tmp_path / "cli.fits"
    assert main(["train", str(grid_file), "-o", str(out), "--recipe", "linear", "--ridge", "1e-6",
                 "--hidden", str(HIDDEN)]) == 0
    stdout = capsys.readouterr().out
    assert stdout.startswith("solve 1: training MSE") and f"wrote {out}\n" in stdout
    assert_interpolates_the_grid(out, SpectralGrid.load(grid_file), 1e-6)
    # its own checks, and another recipe's flag, are one line and exit 2 before the grid is read
    for options, message in ((["--ridge", "-1"], "--ridge -1.0: expected a weight >= 0"),
                             (["--resume"], "--resume is for the paper recipe; the linear one takes --ridge")):
        assert main(["train", str(tmp_path / "absent.fits"), "-o", str(out), "--recipe", "linear",
                     *options]) == 2
        assert capsys.readouterr().err == f"ulyss-ann: error: {message}\n"


def test_a_registered_recipe_has_its_choice_and_its_group_in_the_help(linear_recipe, capsys):
    from ulyss_ann.cli.main import main

    with pytest.raises(SystemExit) as done:
        main(["train", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert "--recipe {paper,fast,linear}" in text
    groups = {section.splitlines()[0]: section for section in text.split("\n\n")[1:]}
    group = groups[f"--recipe linear: {LinearRecipe.description}:"]
    assert "--ridge LAMBDA" in group and "Tikhonov weight" in group
    # each built-in recipe's flags are in its own group, not in the others'
    assert "--time-limit" in groups["--recipe fast: VarPro + Levenberg-Marquardt:"] and "--time-limit" not in group
    assert "--resume" in groups["--recipe paper: Adam, batch 32 (Table 2):"]


def test_unregistered_it_is_gone_and_an_unknown_recipe_lists_those_registered(grid_file, tmp_path):
    from ulyss_ann.spectra.grid import SpectralGrid

    register_recipe(LinearRecipe())
    with pytest.raises(ValueError, match="registered already"):
        register_recipe(LinearRecipe())
    unregister_recipe("linear")
    assert list(registered_recipes()) == ["paper", "fast"]
    with pytest.raises(UlyssAnnError) as refused:
        train(SpectralGrid.load(grid_file), tmp_path / "n.keras", recipe="linear")
    assert str(refused.value) == "unknown recipe 'linear' (registered: paper, fast)"


def test_an_installed_package_registers_a_recipe_through_its_entry_point(grid_file, tmp_path, monkeypatch, capsys):
    from ulyss_ann.cli.main import main
    from ulyss_ann.spectra.grid import SpectralGrid

    install_plugin(tmp_path, monkeypatch, "linear_recipe_plugin", """\
        from test_recipe_registry import LinearRecipe


        class PluginRecipe(LinearRecipe):
            name = "plugged"
            description = "the tests' linear recipe, installed"
        """, "ulyss_ann.recipes", ["plugged = linear_recipe_plugin:PluginRecipe",
                                   "broken-plugin = linear_recipe_plugin_absent:Recipe"])
    try:
        # the broken one: one line naming it, and every other recipe still there
        assert warnings_said(recipe_registry.refresh_entry_points) == [[
            "training recipe 'broken-plugin = linear_recipe_plugin_absent:Recipe' (ulyss_ann.recipes) left out: "
            "ModuleNotFoundError: No module named 'linear_recipe_plugin_absent'; fix or uninstall the package "
            "that declares it"]]
        assert list(registered_recipes()) == ["paper", "fast", "plugged"]
        grid = SpectralGrid.load(grid_file)
        history = train(grid, tmp_path / "lin.fits", hidden=(HIDDEN,), recipe="plugged", ridge=1e-6,
                        progress=False)
        assert list(history["epoch"]) == [1]
        assert Interpolator.read(tmp_path / "lin.fits").training_record["RECIPE"] == "plugged"
        with pytest.raises(SystemExit):
            main(["train", "--help"])
        assert "--recipe {paper,fast,plugged}" in capsys.readouterr().out
    finally:
        unregister_recipe("plugged")


class ClashingRecipe(LinearRecipe):
    """A plug-in's mistake: a flag the fast recipe has already."""
    name = "clashing"
    defaults = {"patience": 5}

    def add_options(self, group):
        group.add_argument("--ridge-too", type=float, default=0.0)  # added before the clash: must not stay
        group.add_argument("--patience", type=int, default=5)


class FailingRecipe(LinearRecipe):
    name = "failing"

    def add_options(self, group):
        raise RuntimeError("the plug-in's own bug")


@pytest.mark.parametrize("bad, reason", [
    (ClashingRecipe, "argument --patience: conflicting option string: --patience"),
    (FailingRecipe, "the plug-in's own bug")])
def test_a_recipe_whose_options_cannot_be_added_is_left_out_with_one_warning(bad, reason, capsys):
    import warnings

    from conftest import cli_here
    from ulyss_ann.cli.main import main

    register_recipe(bad())
    register_recipe(LinearRecipe())  # after the bad one: its options still come in
    try:
        # every command still works: a recipe's flags are part of the one parser all commands share
        run = cli_here("info", "-m", "example")
        assert run.returncode == 0 and run.stdout.startswith("Interpolator")
        assert run.stderr == (f"ulyss-ann: warning: training recipe '{bad.name}' left out of 'ulyss-ann train': its "
                              f"options cannot be added ({reason}); rename them, or fix or uninstall the package "
                              "that declares it\n")
        # train keeps the others, the one registered after the bad one too, and none of the bad one's flags
        run = cli_here("train", "--help")
        assert run.returncode == 0 and "--recipe {paper,fast,linear}" in run.stdout
        assert "--ridge-too" not in run.stdout and bad.name not in run.stdout
        # main's one-line warnings are its own: the caller's way of showing them is back when it returns
        before = warnings.showwarning
        assert main(["info", "-m", "example"]) == 0
        assert warnings.showwarning is before
        assert capsys.readouterr().err.count("ulyss-ann: warning: ") == 1
    finally:
        unregister_recipe(bad.name)
        unregister_recipe(LinearRecipe.name)
