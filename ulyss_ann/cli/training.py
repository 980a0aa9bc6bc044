"""``ulyss-ann train`` and ``export``: networks from grids, and Keras networks as interpolator files.

``train``'s recipes and their option groups come from the registry of
:mod:`ulyss_ann.training.train`: a recipe registered there gets its ``--recipe`` choice
and its own group of flags here. Part of the command line (:mod:`ulyss_ann.cli`); errors
are UlyssAnnError, printed by ``main`` as one line.
"""

import argparse
import os
import sys
import warnings

from ulyss_ann.cli.fit import parse_floats
from ulyss_ann.errors import first_line


def add_training_parsers(sub):
    ex = sub.add_parser("export", help="write a Keras network as a ULySS interpolator file",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Export a saved Keras network (tf.keras 2 .h5 or Keras 3 .keras; Dense "
                                    "layers) to the ULySS\nperceptron format 0.0.3. The grid it was trained on "
                                    "gives the rest: the input scaling\n(mean and standard deviation of each "
                                    "parameter), bounds, names, units, wavelengths,\nand the training nodes "
                                    "(table HDU NODES).\nIts provenance names the network (NETFILE) and the grid "
                                    "(SCALGRID): the weights\nare the network's, so a surrogate grid makes no "
                                    "SURROGATE file (only train --export does).",
                        epilog="example:\n  ulyss-ann export gsl_ann_trial8.keras2.h5 --grid gsl_surrogate.fits "
                               "-o trial8.fits")
    ex.add_argument("network", metavar="NETWORK", help="saved Keras model (.h5 or .keras)")
    ex.add_argument("--grid", required=True, metavar="FILE", help="the spectral grid it was trained on")
    ex.add_argument("-o", "--output", required=True, metavar="FILE", help="interpolator FITS file to write")
    ex.add_argument("--overwrite", action="store_true", help="replace an existing interpolator file")
    ex.set_defaults(run=_run_export)

    from ulyss_ann.training.keras_recipe import PRESETS
    from ulyss_ann.training.train import DEFAULT_RECIPE, registered_recipes

    recipes = registered_recipes()
    tr = sub.add_parser("train", help="train a network on a grid (the paper's recipe or the fast one)",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Train a Keras network on a spectral grid with the paper's recipe: logistic "
                                    "hidden layers,\nlinear output, standardised inputs, Glorot-normal weights, "
                                    "Adam (lr 1e-3), batches of 32,\nMSE, float64. Presets trial0..trial8 are "
                                    "Table 2 (trials 0-4 stop early, patience 50).\n"
                                    "A hold-out of nodes (10 %) is scored beside the training MSE; the loss goes "
                                    "to NET.loss.csv\nand NET.loss.png; every epoch is checkpointed and "
                                    "--resume continues exactly.\n\n"
                                    "--recipe fast: variable projection + Levenberg-Marquardt (the output layer "
                                    "solved exactly\nat every step), for --time-limit seconds or until "
                                    "--target-mse; the preset gives\nthe architecture (1 or 2 hidden layers). "
                                    "Trial 7's MSE 8.12e-6 takes 20-40 s on a 2-core\nCPU (scripts/bench_train) "
                                    "where Adam needs 1e5 epochs.",
                        epilog="examples:\n  ulyss-ann train gsl_surrogate.fits --preset trial7 --epochs 2000 "
                               "-o net.keras --export net.fits\n"
                               "  ulyss-ann train gsl_surrogate.fits --recipe fast --preset trial7 --time-limit 300 "
                               "-o net.keras --export net.fits")
    tr.add_argument("grid", metavar="GRID", help="spectral grid file (ulyss-ann grid ...)")
    tr.add_argument("-o", "--output", required=True, metavar="FILE",
                    help="network file to write (.keras); its loss goes beside it (FILE.loss.csv, FILE.loss.png)")
    tr.add_argument("--preset", default="trial7", choices=sorted(PRESETS), help="Table 2 trial (trial7)")
    tr.add_argument("--hidden", help="hidden layer widths, e.g. 32,64 (overrides the preset's)")
    tr.add_argument("--seed", type=int, default=0, help="random seed of the weights, hold-out and batches (0)")
    tr.add_argument("--holdout", type=float, default=0.1, help="fraction of nodes held out (0.1)")
    recipe_choice = tr.add_argument("--recipe", default=DEFAULT_RECIPE)  # its choices: the recipes kept below
    tr.add_argument("--export", metavar="FILE", help="also write the interpolator file FILE (.fits)")
    for name, recipe in list(recipes.items()):
        if not _options_fit(tr, name, recipe):
            del recipes[name]  # its --recipe choice too; train() from Python still has it
            continue
        recipe.add_options(tr.add_argument_group(f"--recipe {name}: {recipe.description}"))
    # --recipe offers those whose options the parser holds
    recipe_choice.choices = tuple(recipes)
    recipe_choice.help = "; ".join(f"{name}: {recipe.description}" for name, recipe in recipes.items())
    # each recipe flag's default, to tell a flag given on the command line from one left out
    flags = {keyword: tr.get_default(keyword) for recipe in recipes.values() for keyword in recipe.defaults}
    tr.set_defaults(run=_run_train, recipe_flag_defaults=flags)


def _options_fit(parser, name, recipe):
    """Whether ``recipe``'s options can join ``parser`` (``train``'s, holding the options so far); if not, one
    warning naming it.

    Tried on a copy first: argparse cannot take back the flags a recipe added before one that clashes
    (another recipe's ``--patience``, a subclass's inherited flags) or before its ``add_options`` failed,
    and a plug-in's mistake must leave out its own recipe only, not every command of ``ulyss-ann``.
    """
    trial = argparse.ArgumentParser(parents=[parser], add_help=False)
    try:
        recipe.add_options(trial.add_argument_group(name))
    except Exception as exc:  # a plug-in's add_options may raise anything; argparse.ArgumentError for a clash
        warnings.warn(f"training recipe '{name}' left out of 'ulyss-ann train': its options cannot be added "
                      f"({first_line(exc, 160)}); rename them, or fix or uninstall the package that declares it",
                      stacklevel=2)
        return False
    return True


def recipe_options(args):
    """The keywords of ``train`` that ``args`` gives: every flag of the recipe chosen, and those of other
    recipes given on the command line (which ``train`` refuses, rather than let them change nothing)."""
    from ulyss_ann.training.train import recipe_named, registered_recipes

    chosen = recipe_named(args.recipe)
    options = {k: getattr(args, k) for k in chosen.defaults if hasattr(args, k)}
    for recipe in registered_recipes().values():
        for keyword in recipe.defaults:
            if (keyword not in options and hasattr(args, keyword)
                    and getattr(args, keyword) != args.recipe_flag_defaults.get(keyword)):
                options[keyword] = getattr(args, keyword)
    return chosen, options


def _run_train(args):
    from ulyss_ann.spectra.grid import SpectralGrid
    from ulyss_ann.training.train import check_training, train

    hidden = parse_floats(args.hidden, "--hidden") if args.hidden else None
    recipe, options = recipe_options(args)
    check_training(args.output, args.recipe, args.preset, args.holdout, **options)  # before the grid is read
    history = train(SpectralGrid.load(args.grid), args.output, preset=args.preset, hidden=hidden, seed=args.seed,
                    holdout=args.holdout, export=args.export, recipe=args.recipe, grid_file=args.grid, **options)
    if len(history["epoch"]):
        what = recipe.step_name
        k = history.get("kept", -1)
        print(f"{what} {history['epoch'][k]}{' (lowest validation MSE, kept)' if 'kept' in history else ''}: "
              f"training MSE {history['train_mse'][k]:.3e}, held-out MSE {history['holdout_mse'][k]:.3e}")
        if history.get("kept", -1) == 0:
            # Step 1 is the start (random hidden layers, exact output layer): say so, rather than
            # let "step 1" pass for a trained network.
            # On MILES 4000-6000 K (~400 training stars) that start scores as well on held-out stars as
            # any later step, which fit the stars' noise; --validation 0 made it 10x worse in 30 steps.
            print("warning: no Levenberg-Marquardt step lowered the validation MSE; the kept weights are the "
                  "initial ones (random hidden layers, least-squares output layer). On a small noisy grid that "
                  "start can be the best this network does (docs/training.md); more stars or another --seed "
                  "may train further", file=sys.stderr)
    if len(history.get("excluded", ())):
        _print_excluded(SpectralGrid.load(args.grid), history["excluded"], options.get("clip_stars"))
    loss = f" (loss: {args.output}.loss.csv, .loss.png)" if os.path.exists(args.output + ".loss.csv") else ""
    print(f"wrote {args.output}{loss}" + (f" and {args.export}" if args.export else ""))
    return 0


def _print_excluded(grid, rows, clip):
    """Name the training stars that robust training left out: grid row and parameters."""
    stars = "; ".join(f"row {row} (" + ", ".join(f"{name} {value:.4g}" for name, value in zip(grid.names, grid.params[row]))
                      + ")" for row in rows)
    print(f"excluded {len(rows)} training stars as outliers (--clip-stars {clip:g}; NEXCLUDE in the file): {stars}")


def _run_export(args):
    from ulyss_ann.training.keras_io import interpolator_from_keras
    from ulyss_ann.spectra.grid import SpectralGrid

    grid = SpectralGrid.load(args.grid)
    interp = interpolator_from_keras(args.network, grid, grid_file=args.grid)
    interp.write(args.output, overwrite=args.overwrite)
    # The weights are the Keras file's: the grid gives the scaling and wavelengths, not the
    # training, so a surrogate grid makes no SURROGATE network (provenance_cards).
    print(f"wrote {args.output}: architecture {interp.architecture}, weights of "
          f"{os.path.basename(args.network)}, input scaling and wavelengths of {os.path.basename(args.grid)}"
          + (" (the surrogate grid)" if grid.is_surrogate else ""))
    return 0
