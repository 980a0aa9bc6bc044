"""What a training recipe is: the base class every recipe derives from.

A recipe turns a SpectralGrid into a network: the paper's (Adam on Keras,
:class:`~ulyss_ann.training.keras_recipe.PaperRecipe`) and the fast one (VarPro +
Levenberg–Marquardt in NumPy, :class:`~ulyss_ann.training.fast_training.FastRecipe`).
What all recipes share — the grid, the architecture (``preset``, ``hidden``), ``seed``,
``holdout``, the loss figure and ``export`` — is :func:`ulyss_ann.training.train.train`'s;
a recipe brings its own options (keywords in Python, an argparse group on the command
line, both from the one declaration here) and its run. Register one with
:func:`ulyss_ann.training.train.register_recipe`; docs/development.md walks through one.
"""

import os

from ulyss_ann.errors import UlyssAnnError

__all__ = ["Recipe", "option_flag"]


def option_flag(keyword):
    """The command-line flag of a recipe's keyword: ``time_limit`` → ``--time-limit``."""
    return "--" + keyword.replace("_", "-")


class Recipe:
    """A training recipe: its name, its options, its run.

    Subclasses set:

    name : str
        What ``--recipe`` and ``train(recipe=…)`` call it.
    description : str
        One line, for ``--recipe``'s help and the title of its option group.
    defaults : dict
        Its own keyword options and their defaults (the Python API); each flag that
        :meth:`add_options` adds has one of these keywords as its ``dest``.
    network_suffix : str
        What the network file ``output`` must end in ('' for any name).
    step_name, step_label : str
        What a row of its loss history counts: the word of the command line's summary
        line (``epoch``, ``step``) and the x-axis label of the loss figure.

    and implement :meth:`run`; :meth:`add_options` and :meth:`check` when they have options.
    """

    name = None
    description = ""
    defaults = {}
    network_suffix = ".keras"
    step_name = "epoch"
    step_label = "epoch"

    def add_options(self, group):
        """Add this recipe's command-line options to ``group`` (an argparse argument group)."""

    def check(self, output, options):
        """Refuse, in one line, an output name or option value this recipe cannot run with (before any work).

        ``options``: every keyword of :attr:`defaults`, filled in.
        """
        output = os.fspath(output)
        if self.network_suffix and not output.endswith(self.network_suffix):
            raise UlyssAnnError(f"{output}: the network file must end in {self.network_suffix}")

    def loss_title(self, preset):
        """The title of the loss figure for a run of ``preset``."""
        return f"{preset}, {self.name} recipe"

    def run(self, grid, output, settings, seed, holdout, progress, grid_file, want_interpolator, **options):
        """Train on ``grid`` and write the network ``output``; return ``(history, interpolator)``.

        ``settings``: the architecture, ``preset`` (its name, ``custom`` when ``hidden`` was
        given), ``hidden`` (the widths of the hidden layers) and the preset's ``epochs`` and
        ``patience``; ``options``: this recipe's keywords. ``history``: the loss history, a dict
        of arrays with at least ``epoch``, ``train_mse`` and ``holdout_mse`` (``kept``: the
        index of the row whose weights are kept, when not the last; ``excluded``: grid rows
        left out). Write the loss as ``<output>.loss.csv`` (columns ``epoch``, ``train_mse``,
        ``holdout_mse``…) for the loss figure. ``interpolator``: the
        :class:`~ulyss_ann.model.interpolator.Interpolator` of the network, or None when
        ``want_interpolator`` is false and making it costs something.
        """
        raise NotImplementedError(f"the {self.name} recipe does not say how it trains")
