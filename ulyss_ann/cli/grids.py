"""``ulyss-ann grid``, ``train``, ``export`` and ``selfinv``: grids, networks, precision.

Part of the command line (:mod:`ulyss_ann.cli`); errors are UlyssAnnError, printed by
``main`` as one line.
"""

import argparse
import os
import sys

from ulyss_ann.cli.fit import parse_floats
from ulyss_ann.cli.options import add_dashboard_option, add_model_option, model_file, reference_model
from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.spectra.reference_files import ENV_VAR, GSL_NODES, TRIAL8, find_reference

# Where the defaults among the authors' files are looked for, for the help texts (the order:
# ulyss_ann/spectra/reference_files.py).
REFERENCE_PLACES = f"${ENV_VAR}, the current folder, ~/.local/share/ulyss_ann/reference"


def add_grid_parsers(sub):
    gp = sub.add_parser("grid", help="make a spectral grid: surrogate, phoenix or miles",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Make a spectral grid: one FITS file with the spectra (image HDU FLUX, "
                                    "wavelength WCS)\nand their parameters (table HDU PARAMS, with units). "
                                    "Three kinds, each with its own options (ulyss-ann grid KIND --help).",
                        epilog="examples:\n  ulyss-ann grid surrogate -o gsl_surrogate.fits\n"
                               "  ulyss-ann grid phoenix lte*.fits --wave WAVE_PHOENIX-ACES-AGSS-COND-2011.fits -o gsl.fits\n"
                               "  ulyss-ann grid miles ../shared/data/miles --teff-range 3000,9000 -o miles_grid.fits")
    kinds = gp.add_subparsers(dest="kind", metavar="KIND", required=True)

    su = kinds.add_parser("surrogate", help="the authors' trial-8 network at the 2908 GSL nodes",
                          formatter_class=argparse.RawDescriptionHelpFormatter,
                          description="The surrogate grid: a network (the authors' trial 8) evaluated at the 2908 GSL "
                                      "nodes, the\nstand-in for the Goettingen spectra, which cannot be downloaded "
                                      "here. It says\nSURROGAT = T, and so does every network trained on it.",
                          epilog="example:\n  ulyss-ann grid surrogate -o gsl_surrogate.fits")
    add_model_option(su, what="network to evaluate",
                     default_text=f"the authors' trial 8, {TRIAL8.name} or {TRIAL8.aliases[0]}, found in "
                                  f"{REFERENCE_PLACES}")
    su.add_argument("--nodes", metavar="FILE",
                    help=f"PHOENIX node names, one a line (default: the authors' {GSL_NODES.name} where -m's "
                         "default is looked for, else the same 2908 GSL nodes as carried by the bundled example "
                         "network)")
    _grid_output(su, "gsl_surrogate.fits")
    su.set_defaults(run=_run_surrogate)

    ph = kinds.add_parser("phoenix", help="Goettingen/PHOENIX spectra, preprocessed as the paper",
                          formatter_class=argparse.RawDescriptionHelpFormatter,
                          description="Goettingen/PHOENIX spectra (HiRes FITS with --wave, R=10000 FITS with a log "
                                      "WCS, or\ntwo-column text), converted to air and preprocessed as the paper "
                                      "(2 A FWHM, 1.25 A\nbins over 4762.25-7384.75 A, median 1).",
                          epilog="example:\n  ulyss-ann grid phoenix lte*.fits --wave "
                                 "WAVE_PHOENIX-ACES-AGSS-COND-2011.fits -o gsl.fits")
    ph.add_argument("files", nargs="+", metavar="FILE", help="PHOENIX spectra")
    ph.add_argument("--wave", metavar="FILE", help="WAVE_PHOENIX-ACES-AGSS-COND-2011.fits, for HiRes FITS files")
    ph.add_argument("--resolving-power", type=float,
                    help="exact lambda-dependent degradation for input of this R (e.g. 10000); "
                         "default: the paper's constant kernel from 0.6 A")
    ph.add_argument("--vacuum", action="store_true", help="keep vacuum wavelengths (default: convert to air)")
    _grid_output(ph, "phoenix_grid.fits")
    ph.set_defaults(run=_run_phoenix)

    mi = kinds.add_parser("miles", help="the MILES library, continuum-normalised",
                          formatter_class=argparse.RawDescriptionHelpFormatter,
                          description="The MILES library (MILES_res2.50_star_m*.fits and params.csv in DIR), each "
                                      "star divided by\nits pseudo-continuum (Legendre upper envelope, "
                                      "--continuum-degree) and its median:\nreddening and flux-calibration errors "
                                      "removed, as ULySS's MILES interpolator does.",
                          epilog="example:\n  ulyss-ann grid miles ../shared/data/miles --teff-range 3000,9000 "
                                 "-o miles_grid.fits")
    mi.add_argument("folder", metavar="DIR", help="the folder of the MILES FITS files (and of params.csv)")
    mi.add_argument("--params", metavar="FILE", help="parameter table (default: DIR/params.csv)")
    mi.add_argument("--continuum-degree", type=int, default=6,
                    help="Legendre degree of the pseudo-continuum (6)")
    mi.add_argument("--teff-range", metavar="LOW,HIGH", help="keep stars with LOW <= Teff <= HIGH, e.g. 3000,9000 "
                                                            "(default: all)")
    _grid_output(mi, "miles_grid.fits")
    mi.set_defaults(run=_run_miles)

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
    from ulyss_ann.training.outlier_stars import CLIP_STARS, TRIM

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
    tr.add_argument("--epochs", type=int, help="epoch budget (overrides the preset's)")
    tr.add_argument("--hidden", help="hidden layer widths, e.g. 32,64 (overrides the preset's)")
    tr.add_argument("--seed", type=int, default=0, help="random seed of the weights, hold-out and batches (0)")
    tr.add_argument("--holdout", type=float, default=0.1, help="fraction of nodes held out (0.1)")
    tr.add_argument("--resume", action="store_true", help="continue from the last checkpoint (paper recipe)")
    tr.add_argument("--recipe", choices=("paper", "fast"), default="paper",
                    help="paper: Adam, batch 32 (Table 2); fast: VarPro + Levenberg-Marquardt")
    tr.add_argument("--time-limit", type=float, default=120.0, metavar="SECONDS",
                    help="fast recipe: seconds to train (120)")
    tr.add_argument("--target-mse", type=float, help="fast recipe: stop at this training MSE")
    tr.add_argument("--validation", type=float, default=0.1,
                    help="fast recipe: fraction of the training nodes kept for early stopping (0.1; 0 = off)")
    tr.add_argument("--patience", type=int, default=20,
                    help="fast recipe: steps without a better validation MSE before stopping (20)")
    tr.add_argument("--max-steps", type=int, metavar="N",
                    help="fast recipe: stop after N Levenberg-Marquardt steps (reproducible, unlike --time-limit)")
    tr.add_argument("--clip-stars", type=float, default=CLIP_STARS, metavar="SIGMA",
                    help="fast recipe: robust training; a training star whose MSE stands SIGMA robust standard "
                         "deviations above the rest and above its neighbours' is left out of the fit, and named "
                         f"(e.g. 3; default {CLIP_STARS:g} = off)")
    tr.add_argument("--validation-trim", type=float, default=TRIM, metavar="FRACTION",
                    help="fast recipe: early stopping scores the validation stars without this fraction, the "
                         f"worst, so that 2-3 bad stars do not decide ({TRIM:g}; 0 = plain mean)")
    tr.add_argument("--export", metavar="FILE", help="also write the interpolator file FILE (.fits)")
    tr.set_defaults(run=_run_train)

    si = sub.add_parser("selfinv", help="self-inversion precision (the paper's Eq. 6, Table 3)",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Precision of an interpolator from fits of its own grid spectra: per "
                                    "parameter, the rms of\n(derived - node value) over the grid (Eq. 6), "
                                    "and as a percentage of the grid's mean mesh step.\n"
                                    "--res reads ULySS .res (solut) files, one fit per node, in node order;\n"
                                    "--grid GRID -m MODEL fits every grid spectrum with MODEL (all parameters free, "
                                    "12\nguesses spanning the grid, no noise) through the batch driver (Dask), and "
                                    "maps the\nresiduals: the folder -o DIR gets the fits, the table and the maps.",
                        epilog="examples:\n  ulyss-ann selfinv --res selfinversion_trial7.res --nodes gsl_nodes.txt\n"
                               "  ulyss-ann selfinv --grid gsl_surrogate.fits -m gsl_ann_trial7.fits "
                               "--engine native -o selfinv/")
    si.add_argument("--res", metavar="FILE", help="ULySS .res file of the fits, in node order")
    si.add_argument("--nodes", metavar="FILE", help="node list (PHOENIX names, one a line), with --res")
    si.add_argument("--grid", metavar="FILE", help="spectral grid whose spectra are fitted (with -m)")
    add_model_option(si, default_text=None, what="interpolator to invert, with --grid")
    si.add_argument("--engine", default="auto", choices=["auto", "gdl", "native"], help="fitting engine (auto)")
    si.add_argument("-j", "--workers", type=int, help="worker processes (default: one per core; 0: no Dask)")
    si.add_argument("-o", "--outdir", metavar="DIR", default="selfinv",
                    help="with --grid: folder to write the fits, the table and the maps to (selfinv)")
    si.add_argument("--quiet", action="store_true", help="with --grid: no progress bar or fit summary, "
                                                         "nothing of Dask's; only the precision table")
    add_dashboard_option(si)
    si.set_defaults(run=_run_selfinv)


def _grid_output(parser, default):
    parser.add_argument("-o", "--output", default=default, metavar="FILE", help=f"grid file to write ({default})")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing grid file")


def _run_surrogate(args):
    from ulyss_ann.spectra.grid import surrogate_grid

    model = reference_model(args, TRIAL8, "network")
    nodes = args.nodes
    if nodes is None:
        nodes = find_reference(GSL_NODES)  # None: the bundled example's copy of the same nodes
    elif not os.path.isfile(nodes):
        raise UlyssAnnError(f"--nodes {nodes}: no such file (a list of PHOENIX node names, one a line; "
                            "leave --nodes out for the 2908 GSL nodes)")
    grid = surrogate_grid(model, nodes)
    grid.save(args.output, overwrite=args.overwrite)
    print(f"wrote {args.output}: SURROGATE grid of {len(grid.flux)} spectra x {grid.wavelength.npix} px, "
          f"parameters {', '.join(grid.names)}")
    return 0


def _run_phoenix(args):
    from ulyss_ann.spectra.grid_readers import phoenix_grid

    grid = phoenix_grid(args.files, wave_file=args.wave, air=not args.vacuum,
                        resolving_power=args.resolving_power, progress=True)
    grid.save(args.output, overwrite=args.overwrite)
    print(f"wrote {args.output}: {len(grid.flux)} spectra x {grid.wavelength.npix} px, "
          f"parameters {', '.join(grid.names)}")
    return 0


def _run_miles(args):
    from ulyss_ann.spectra.miles import miles_grid

    if not os.path.isdir(args.folder):
        raise UlyssAnnError(f"grid miles {args.folder}: not a folder; give the one folder of the MILES FITS files "
                            "(and its params.csv)")
    teff = parse_floats(args.teff_range, "--teff-range") if args.teff_range else None
    grid, skipped = miles_grid(args.folder, args.params, args.continuum_degree, teff, progress=True)
    grid.save(args.output, overwrite=args.overwrite)
    print(f"wrote {args.output}: MILES grid of {len(grid.flux)} stars x {grid.wavelength.npix} px "
          f"({len(skipped)} left out for bad flux: {', '.join(s.split()[0] for s in skipped[:5])}"
          f"{' ...' if len(skipped) > 5 else ''})")
    return 0


def _run_train(args):
    from ulyss_ann.spectra.grid import SpectralGrid
    from ulyss_ann.training.keras_recipe import train

    hidden = parse_floats(args.hidden, "--hidden") if args.hidden else None
    if not 0 <= args.holdout < 1:
        raise UlyssAnnError(f"--holdout {args.holdout}: expected a fraction in [0, 1)")
    if not 0 <= args.validation_trim < 1:
        raise UlyssAnnError(f"--validation-trim {args.validation_trim}: expected a fraction in [0, 1)")
    if args.clip_stars < 0 or (args.max_steps is not None and args.max_steps < 1):
        raise UlyssAnnError("--clip-stars must be >= 0 (0 = off) and --max-steps >= 1")
    history = train(SpectralGrid.load(args.grid), args.output, preset=args.preset, hidden=hidden,
                    epochs=args.epochs, seed=args.seed, holdout=args.holdout, resume=args.resume,
                    export=args.export, recipe=args.recipe, time_limit=args.time_limit,
                    target_mse=args.target_mse, validation=args.validation, patience=args.patience,
                    grid_file=args.grid, clip_stars=args.clip_stars, max_steps=args.max_steps,
                    validation_trim=args.validation_trim)
    if len(history["epoch"]):
        what = "step" if args.recipe == "fast" else "epoch"
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
        _print_excluded(SpectralGrid.load(args.grid), history["excluded"], args.clip_stars)
    print(f"wrote {args.output} (loss: {args.output}.loss.csv, .loss.png)"
          + (f" and {args.export}" if args.export else ""))
    return 0


def _run_selfinv(args):
    from ulyss_ann.paper.selfinversion import selfinversion_from_grid, selfinversion_from_res

    if args.grid and args.model:
        from ulyss_ann.spectra.grid import SpectralGrid

        model = model_file(args)
        result = selfinversion_from_grid(SpectralGrid.load(args.grid), model, args.outdir, args.engine,
                                         args.workers, progress=not args.quiet, dashboard=args.dashboard)
        source = f"{os.path.basename(model)} on {os.path.basename(args.grid)}, engine {result['engine']}"
    elif args.res and args.nodes:
        if args.dashboard:
            import warnings

            warnings.warn("--dashboard: --res fits nothing, so no Dask cluster starts (--grid does)")
        result = selfinversion_from_res(args.res, args.nodes)
        source = os.path.basename(args.res)
    else:
        raise UlyssAnnError("selfinv: give --res FILE --nodes FILE, or --grid GRID -m MODEL")
    units = {"Teff": "K", "Logg": "dex", "Fe/H": "dex"}
    print(f"self-inversion of {result['n']} nodes ({source}), Eq. 6:")
    print(f"  {'parameter':<10} {'P (absolute)':>14} {'mesh step':>12} {'P (% of step)':>14}")
    for name, p, step, pct in zip(result["names"], result["absolute"], result["mesh"], result["percent"]):
        value = f"{p:.1f}" if p >= 1 else f"{p:.3f}"
        print(f"  {name:<10} {value:>10} {units.get(name, ''):<3} {step:>8.4g} {units.get(name, ''):<3} {pct:>13.1f}")
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
