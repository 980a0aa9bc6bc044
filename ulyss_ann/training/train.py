"""Training a network on a SpectralGrid: :func:`train`, and the registry of recipes it dispatches to.

The recipes (:class:`~ulyss_ann.training.recipe.Recipe`) are registered by name: the
paper's (``paper``, :class:`~ulyss_ann.training.keras_recipe.PaperRecipe`: Adam on Keras,
which it imports only when it runs) and the fast one (``fast``,
:class:`~ulyss_ann.training.fast_training.FastRecipe`: NumPy only). Another is one class
and one :func:`register_recipe` call; the command line's ``train --recipe`` and its option
groups are made from this registry. An installed package registers its recipes through the
entry-point group ``ulyss_ann.recipes`` (``name = "package.module:RecipeClass"``), read on the
first lookup (never at import), so that every process sees them, not only the one that
registered them; one that does not load is said in one line and left out.
"""

import os

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.figures import save_figure
from ulyss_ann.registry import Registry
from ulyss_ann.training.fast_training import FastRecipe
from ulyss_ann.training.keras_recipe import PRESETS, PaperRecipe, plot_loss
from ulyss_ann.training.recipe import Recipe, option_flag

__all__ = ["train", "check_training", "register_recipe", "unregister_recipe", "recipe_named", "registered_recipes",
           "refresh_entry_points", "DEFAULT_RECIPE", "ENTRY_POINT_GROUP"]

#: The recipe of ``train`` and ``ulyss-ann train`` when none is named: the paper's.
DEFAULT_RECIPE = "paper"

#: The entry-point group through which installed packages register training recipes.
ENTRY_POINT_GROUP = "ulyss_ann.recipes"

def _checked_recipe(recipe, name):
    """``recipe`` (a Recipe, or its class from an entry point: made an instance), refused in one line when it is
    none, has no name or (registered as ``name``) another name."""
    if isinstance(recipe, type) and issubclass(recipe, Recipe):
        recipe = recipe()
    if not isinstance(recipe, Recipe) or not recipe.name:
        raise TypeError(f"{recipe!r}: a recipe is an instance of a Recipe subclass with a name")
    if name is not None and recipe.name != name:
        raise ValueError(f"it names the recipe {recipe.name!r}: the entry point's name must be the recipe's")
    return recipe


# name -> recipe, in the order registered (the CLI's --recipe choices and help groups follow it)
_RECIPES = Registry("training recipe", ENTRY_POINT_GROUP, check=_checked_recipe, load_entry_points=True,
                    unknown=lambda name: f"unknown recipe '{name}' (registered: {', '.join(_RECIPES)})")


def register_recipe(recipe):
    """Make ``recipe`` (a :class:`~ulyss_ann.training.recipe.Recipe` instance) known by its name; returns it.

    A name already taken is refused: unregister the old recipe first.
    """
    return _RECIPES.register(recipe)


def unregister_recipe(name):
    """Forget the recipe ``name`` (what a test that registered one does when it is done)."""
    _RECIPES.unregister(name)


def refresh_entry_points():
    """Read the entry points of the installed packages again (a package installed in a running session)."""
    _RECIPES.refresh_entry_points()


def registered_recipes():
    """The registered recipes, by name, in the order they were registered (installed packages' last)."""
    return {name: _RECIPES.get(name) for name in _RECIPES}


def recipe_named(name):
    """The recipe registered as ``name``, or a one-line UlyssAnnError naming those registered."""
    return _RECIPES.get(name)


register_recipe(PaperRecipe())
register_recipe(FastRecipe())


def check_training(output, recipe=DEFAULT_RECIPE, preset="trial7", holdout=0.1, **options):
    """Everything about a training run that can be refused before the grid is read: ``(recipe, options)``.

    ``options``: the recipe's own keywords; those left out take its defaults. A keyword of
    another recipe is refused in one line, not ignored (it would change nothing).
    """
    chosen = recipe_named(recipe)
    if preset not in PRESETS:
        raise UlyssAnnError(f"unknown preset '{preset}' (known: {', '.join(PRESETS)})")
    if not 0 <= holdout < 1:
        raise UlyssAnnError(f"--holdout {holdout}: expected a fraction in [0, 1)")
    for keyword in options:
        if keyword in chosen.defaults:
            continue
        owners = [r.name for r in registered_recipes().values() if keyword in r.defaults]
        own = ", ".join(map(option_flag, chosen.defaults)) or "no options of its own"
        if owners:
            raise UlyssAnnError(f"{option_flag(keyword)} is for the {' and '.join(owners)} recipe; the "
                                f"{chosen.name} one takes {own}")
        raise UlyssAnnError(f"{option_flag(keyword)}: no recipe takes this option; the {chosen.name} one takes {own}")
    options = {**chosen.defaults, **options}
    chosen.check(os.fspath(output), options)
    return chosen, options


def train(grid, output, preset="trial7", hidden=None, seed=0, holdout=0.1, progress=True, export=None,
          recipe=DEFAULT_RECIPE, grid_file=None, **options):
    """Train a network on ``grid`` (SpectralGrid) with a registered recipe and save it as ``output``.

    ``recipe``: ``paper`` (Adam, batches of ``batch_size`` 32, the preset's ``epochs``,
    ``resume``; writes ``<output>.state.json``, its checkpoint) or ``fast`` (VarPro +
    Levenberg–Marquardt for ``time_limit`` seconds or until ``target_mse``, early stopping on
    a ``validation`` fraction with ``patience``, ``clip_stars``, ``max_steps``,
    ``validation_trim``: :class:`~ulyss_ann.training.fast_training.FastRecipe`), or any
    other registered (:func:`register_recipe`); ``options``: that recipe's keywords.
    ``preset``: the paper's Table 2 trial (architecture, epoch budget); ``hidden``: hidden
    layer widths instead of the preset's. A ``holdout`` fraction of the nodes is never
    fitted, scored beside the training MSE (an honest estimate of the interpolation error).

    Writes ``output`` (.keras for both built-in recipes), ``<output>.loss.csv`` and
    ``<output>.loss.png`` (Fig. 2 style), and with ``export`` the interpolator file, whose
    HDU 0 records the training (:class:`~ulyss_ann.training.grid_network.TrainingRecord`;
    ``grid_file`` names the grid there) and, from a surrogate grid, ``SURROGAT``. Returns
    the loss history as a dict of arrays (``epoch``, ``train_mse``, ``holdout_mse``…).
    """
    chosen, options = check_training(output, recipe, preset, holdout, **options)
    output = os.fspath(output)
    settings = dict(PRESETS[preset], preset=preset)
    if hidden:
        settings.update(hidden=tuple(int(h) for h in hidden), preset="custom")
    history, interpolator = chosen.run(grid, output, settings, seed, holdout, progress, grid_file,
                                       want_interpolator=bool(export), **options)
    if os.path.exists(output + ".loss.csv"):
        figure = plot_loss(output + ".loss.csv", chosen.loss_title(preset), grid.is_surrogate,
                           xlabel=chosen.step_label)
        if figure is not None:
            save_figure(figure, output + ".loss.png")
    if export:
        interpolator.write(export, overwrite=True)
    return history
