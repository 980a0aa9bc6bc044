"""The ``ulyss-ann`` command line.

Errors caused by input (files, parameters, options) print one line,
``ulyss-ann: error: …``, and exit with status 2; never a traceback.
"""

import argparse
import os
import sys
import warnings

import numpy as np

from . import __version__
from .errors import OutOfBoundsWarning, ParameterError, UlyssAnnError
from .example_data import example_interpolator_path

DESCRIPTION = """\
Neural-network spectral interpolators for ULySS (Kumar, Prugniel & Singh).

An interpolator is a trained network, stored in ULySS's perceptron FITS format,
that turns atmospheric parameters (Teff, log g, [Fe/H]) into a normalised
spectrum. This tool inspects such files and computes spectra from them.
"""

EPILOG = """\
workflow:
  ulyss-ann info MODEL                     what the network is: layers, parameters,
                                           bounds, scaling, wavelength range
  ulyss-ann eval MODEL --param Teff=5000 --param Logg=2 --param Fe/H=-1.5 \\
                 -o spec.fits --plot spec.png
                                           one model spectrum, as FITS and a figure
  ulyss-ann eval MODEL --table params.ecsv -o spectra.fits
                                           many spectra, one row of the table each
  ulyss-ann gdl-export MODEL --name gslann --install
                                           a ULySS component in GDL for this network:
                                           ulyss, spec, gslann(TG=5000, LG=2, ZG=-1.5)
  ulyss-ann grid surrogate -o gsl_surrogate.fits
                                           the stand-in grid (trial 8 at the GSL nodes)
  ulyss-ann train gsl_surrogate.fits --preset trial7 -o net.keras --export net.fits
                                           a network with the paper's recipe (Keras)
  ulyss-ann export net.h5 --grid gsl_surrogate.fits -o net.fits
                                           a Keras network -> an interpolator file
  ulyss-ann fit spectra/*.fits --model MODEL -o results.ecsv
                                           fit many spectra with ULySS (GDL), in
                                           parallel, resumable (--resume)

MODEL defaults to the example interpolator bundled with the package (a small
network fitted to the surrogate grid). The authors' published networks are
ULySS perceptron files too (e.g. gsl_ann_trial7.fits).

Run 'ulyss-ann COMMAND --help' for the options of each command.
"""


def _model_argument(parser):
    parser.add_argument("model", nargs="?", default=None, metavar="MODEL",
                        help="interpolator FITS file (ULySS perceptron format 0.0.3); "
                             "default: the bundled example interpolator")


def _build_parser():
    parser = argparse.ArgumentParser(prog="ulyss-ann", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"ulyss-ann {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    info = sub.add_parser("info", help="describe an interpolator file",
                          description="Describe an interpolator: format version, architecture, "
                                      "parameters with units, bounds and input scaling, wavelength "
                                      "range and sampling, air or vacuum, provenance.")
    _model_argument(info)
    info.set_defaults(run=_run_info)

    ev = sub.add_parser(
        "eval", help="compute model spectra from parameters",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Compute normalised model spectra with an interpolator.",
        epilog="output:\n"
               "  one spectrum   1-D FITS image with the wavelength WCS (ULySS reads it), the\n"
               "                 parameters in header cards P_NMi / P_VALi / P_UNi\n"
               "  --table        2-D FITS image, one spectrum per row, same WCS, and a table\n"
               "                 HDU 'PARAMS' with the parameters of each row (with units)\n\n"
               "Parameters outside the bounds the network was trained on give a warning\n"
               "(the network extrapolates there silently); --strict makes it an error.\n\n"
               "example:\n"
               "  ulyss-ann eval gsl_ann_trial7.fits --param Teff=5000 --param Logg=2 \\\n"
               "      --param Fe/H=-1.5 -o spec.fits --plot spec.png")
    _model_argument(ev)
    ev.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                    help="a parameter value, repeated for each parameter (names as 'info' lists "
                         "them, case-insensitive), e.g. --param Teff=5000")
    ev.add_argument("-t", "--table", metavar="FILE",
                    help="table (ECSV, FITS, CSV…) with one column per parameter; one spectrum per row")
    ev.add_argument("-o", "--output", metavar="FILE.fits", help="write the spectra to this FITS file")
    ev.add_argument("--plot", metavar="FILE.png", help="plot the spectra to this figure (PNG, PDF, SVG)")
    ev.add_argument("--strict", action="store_true",
                    help="refuse parameters outside the trained bounds instead of warning")
    ev.add_argument("--overwrite", action="store_true", help="replace existing output files")
    ev.set_defaults(run=_run_eval)

    gx = sub.add_parser(
        "gdl-export", help="generate a ULySS component (GDL code) for a network",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Generate GDL routines specialised to one network, so that ULySS fits with it:\n"
                    "  NAME.pro           cmp = NAME(TG=, LG=, ZG=, FIXPAR=, ...)  (like uly_tgm)\n"
                    "  NAME_init.pro      run by ulyss before a fit: rebins the output layer once\n"
                    "  NAME_eval.pro      the forward pass, unrolled for this network\n"
                    "  NAME_spectrum.pro  flux = NAME_spectrum([Teff, logg, feh]) on the network grid\n"
                    "plus NAME_evaldata.pro, the shared ulyss_ann_*.pro routines and a copy of MODEL\n"
                    "(NAME.fits), so the folder works on its own once on GDL_PATH.",
        epilog="example:\n"
               "  ulyss-ann gdl-export gsl_ann_trial7.fits --name gslann --install\n"
               "  # then, in gdl, with the GDL_PATH line it prints:\n"
               "  ulyss, 'star.fits', gslann(TG=[5000,5500,6000], LG=1.66, ZG=[-1,-1.5], FIXPAR=[0,1,0]), MDEGREE=20")
    _model_argument(gx)
    gx.add_argument("--name", help="GDL name of the component (default: from the file name, e.g. "
                                   "gsl_ann_trial7); letters, digits, '_'")
    where = gx.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", metavar="DIR", help="folder to write (default: ./NAME)")
    where.add_argument("--install", action="store_true",
                       help="write to $XDG_DATA_HOME/ulyss_ann/gdl/NAME (~/.local/share/...) and print "
                            "the GDL_PATH line to use it")
    gx.set_defaults(run=_run_gdl_export)
    _add_fit_parser(sub)
    _add_grid_parsers(sub)
    return parser


REFERENCE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data",
                         "reference")


def _add_grid_parsers(sub):
    gp = sub.add_parser("grid", help="make a spectral grid (the surrogate grid)",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Make a spectral grid: one FITS file with the spectra (image HDU FLUX, "
                                    "wavelength WCS) and their parameters (table HDU PARAMS, with units).\n\n"
                                    "surrogate: the authors' trial-8 network evaluated at the 2908 GSL nodes, the\n"
                                    "stand-in for the Goettingen spectra, which cannot be downloaded here. It says\n"
                                    "SURROGAT = T, and so does everything made from it.\n\n"
                                    "phoenix FILES: Goettingen/PHOENIX spectra (HiRes FITS with --wave, R=10000\n"
                                    "FITS with a log WCS, or two-column text), converted to air and preprocessed as\n"
                                    "the paper (2 A FWHM, 1.25 A bins over 4762.25-7384.75 A, median 1).",
                        epilog="examples:\n  ulyss-ann grid surrogate -o gsl_surrogate.fits\n"
                               "  ulyss-ann grid phoenix lte*.fits --wave WAVE_PHOENIX-ACES-AGSS-COND-2011.fits -o gsl.fits")
    gp.add_argument("kind", choices=["surrogate", "phoenix"], help="which grid")
    gp.add_argument("files", nargs="*", metavar="FILE", help="PHOENIX spectra (for phoenix)")
    gp.add_argument("--wave", help="WAVE_PHOENIX-ACES-AGSS-COND-2011.fits, for HiRes FITS files")
    gp.add_argument("--resolving-power", type=float,
                    help="exact lambda-dependent degradation for input of this R (e.g. 10000); "
                         "default: the paper's constant kernel from 0.6 A")
    gp.add_argument("--vacuum", action="store_true", help="keep vacuum wavelengths (default: convert to air)")
    gp.add_argument("-o", "--output", default="gsl_surrogate.fits", help="grid file (gsl_surrogate.fits)")
    gp.add_argument("--model", default=os.path.join(REFERENCE, "gsl_ann_trial8.fits"),
                    help="network to evaluate (default: the authors' trial 8 in ../shared/data/reference)")
    gp.add_argument("--nodes", default=os.path.join(REFERENCE, "gsl_nodes.txt"),
                    help="PHOENIX node names, one a line (default: the authors' gsl_nodes.txt)")
    gp.add_argument("--overwrite", action="store_true")
    gp.set_defaults(run=_run_grid)

    ex = sub.add_parser("export", help="write a Keras network as a ULySS interpolator file",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Export a saved Keras network (tf.keras 2 .h5 or Keras 3 .keras; Dense "
                                    "layers) to the ULySS\nperceptron format 0.0.3. The grid it was trained on "
                                    "gives the rest: the input scaling\n(mean and standard deviation of each "
                                    "parameter), bounds, names, units, wavelengths,\nand the training nodes "
                                    "(table HDU NODES).",
                        epilog="example:\n  ulyss-ann export gsl_ann_trial8.keras2.h5 --grid gsl_surrogate.fits "
                               "-o trial8.fits")
    ex.add_argument("network", help="saved Keras model (.h5 or .keras)")
    ex.add_argument("--grid", required=True, help="the spectral grid it was trained on")
    ex.add_argument("-o", "--output", required=True, help="interpolator FITS file to write")
    ex.add_argument("--overwrite", action="store_true")
    ex.set_defaults(run=_run_export)

    from .training import PRESETS

    tr = sub.add_parser("train", help="train a network on a grid (the paper's recipe, Keras)",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Train a Keras network on a spectral grid with the paper's recipe: logistic "
                                    "hidden layers,\nlinear output, standardised inputs, Glorot-normal weights, "
                                    "Adam (lr 1e-3), batches of 32,\nMSE, float64. Presets trial0..trial8 are "
                                    "Table 2 (trials 0-4 stop early, patience 50).\n"
                                    "A hold-out of nodes (10 %) is scored beside the training MSE; the loss goes "
                                    "to NET.loss.csv\nand NET.loss.png; every epoch is checkpointed and "
                                    "--resume continues exactly.",
                        epilog="example:\n  ulyss-ann train gsl_surrogate.fits --preset trial7 --epochs 2000 "
                               "-o net.keras --export net.fits")
    tr.add_argument("grid", help="spectral grid file (ulyss-ann grid ...)")
    tr.add_argument("-o", "--output", required=True, help="network file to write (.keras)")
    tr.add_argument("--preset", default="trial7", choices=sorted(PRESETS), help="Table 2 trial (trial7)")
    tr.add_argument("--epochs", type=int, help="epoch budget (overrides the preset's)")
    tr.add_argument("--hidden", help="hidden layer widths, e.g. 32,64 (overrides the preset's)")
    tr.add_argument("--seed", type=int, default=0, help="random seed (weights, hold-out, batches)")
    tr.add_argument("--holdout", type=float, default=0.1, help="fraction of nodes held out (0.1)")
    tr.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    tr.add_argument("--export", metavar="INTERP.fits", help="also write the interpolator file")
    tr.set_defaults(run=_run_train)

    si = sub.add_parser("selfinv", help="self-inversion precision (the paper's Eq. 6, Table 3)",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Precision of an interpolator from fits of its own grid spectra: per "
                                    "parameter, the rms of\n(derived - node value) over the grid (Eq. 6), "
                                    "and as a percentage of the grid's mean mesh step.\n"
                                    "--res reads ULySS .res (solut) files, one fit per node, in node order.",
                        epilog="example:\n  ulyss-ann selfinv --res selfinversion_trial7.res --nodes gsl_nodes.txt")
    si.add_argument("--res", required=True, help="ULySS .res file of the fits, in node order")
    si.add_argument("--nodes", required=True, help="node list (PHOENIX names, one a line)")
    si.set_defaults(run=_run_selfinv)


def _run_grid(args):
    from .spectral_grid import surrogate_grid

    if args.kind == "phoenix":
        from .grid_readers import phoenix_grid

        if not args.files:
            raise UlyssAnnError("grid phoenix: give the PHOENIX files")
        grid = phoenix_grid(args.files, wave_file=args.wave, air=not args.vacuum,
                            resolving_power=args.resolving_power, progress=True)
        grid.save(args.output, overwrite=args.overwrite)
        print(f"wrote {args.output}: {len(grid.flux)} spectra x {grid.wavelength.npix} px, "
              f"parameters {', '.join(grid.names)}")
        return 0
    for path, what in ((args.model, "--model"), (args.nodes, "--nodes")):
        if not os.path.isfile(path):
            raise UlyssAnnError(f"{path}: no such file (give {what}; the authors' files are in "
                                "../shared/data/reference of the development set-up)")
    grid = surrogate_grid(args.model, args.nodes)
    grid.save(args.output, overwrite=args.overwrite)
    print(f"wrote {args.output}: SURROGATE grid of {len(grid.flux)} spectra x {grid.wavelength.npix} px, "
          f"parameters {', '.join(grid.names)}")
    return 0


def _run_train(args):
    from .spectral_grid import SpectralGrid
    from .training import train

    hidden = _floats(args.hidden, "--hidden") if args.hidden else None
    if not 0 <= args.holdout < 1:
        raise UlyssAnnError(f"--holdout {args.holdout}: expected a fraction in [0, 1)")
    history = train(SpectralGrid.load(args.grid), args.output, preset=args.preset, hidden=hidden,
                    epochs=args.epochs, seed=args.seed, holdout=args.holdout, resume=args.resume,
                    export=args.export)
    if len(history["epoch"]):
        print(f"epoch {history['epoch'][-1]}: training MSE {history['train_mse'][-1]:.3e}, "
              f"held-out MSE {history['holdout_mse'][-1]:.3e}")
    print(f"wrote {args.output} (loss: {args.output}.loss.csv, .loss.png)"
          + (f" and {args.export}" if args.export else ""))
    return 0


def _run_selfinv(args):
    from .selfinversion import selfinversion_from_res

    result = selfinversion_from_res(args.res, args.nodes)
    units = {"Teff": "K", "Logg": "dex", "Fe/H": "dex"}
    print(f"self-inversion of {result['n']} nodes ({os.path.basename(args.res)}), Eq. 6:")
    print(f"  {'parameter':<10} {'P (absolute)':>14} {'mesh step':>12} {'P (% of step)':>14}")
    for name, p, step, pct in zip(result["names"], result["absolute"], result["mesh"], result["percent"]):
        value = f"{p:.1f}" if p >= 1 else f"{p:.3f}"
        print(f"  {name:<10} {value:>10} {units.get(name, ''):<3} {step:>8.4g} {units.get(name, ''):<3} {pct:>13.1f}")
    return 0


def _run_export(args):
    from .keras_export import interpolator_from_keras
    from .spectral_grid import SpectralGrid

    interp = interpolator_from_keras(args.network, SpectralGrid.load(args.grid))
    interp.write(args.output, overwrite=args.overwrite)
    print(f"wrote {args.output}: architecture {interp.architecture}"
          + (" (SURROGATE: trained on the surrogate grid)" if interp.is_surrogate else ""))
    return 0


FIT_DESCRIPTION = """\
Fit spectra with an interpolator through ULySS in GDL: the model of the paper's
Eq. 8, F = P_n x G(v, sigma) (x) f(Teff, logg, [Fe/H]), by Levenberg-Marquardt from
every combination of guesses, the best chi2 kept.

Defaults are the paper's set-up: guesses Teff 5000/5500/6000 K x [Fe/H] -1/-1.5,
a multiplicative Legendre polynomial of degree 20, the network's wavelength range.
Observed spectra get the telluric bands masked (O2 B 6860-6890 A, H2O 7160-7330 A,
O2 A 7590-7700 A; not simulated spectra, whose header says SIMULATD = T);
--mask-nad also masks interstellar Na D (5885-5900 A). NaN/inf fluxes and zero or
negative errors are masked and counted (n_bad).

Every finished spectrum is written at once to OUTPUT.journal.jsonl: after a crash,
rerun with --resume. Readers: MUSE/PampelMuse (flux + SIGMA), SDSS/LAMOST tables and
LAMOST images (vacuum -> air), plain 1-D FITS (linear or log WCS), text columns."""


def _add_fit_parser(sub):
    fp = sub.add_parser("fit", help="fit many spectra (GDL + ULySS, parallel, resumable)",
                        formatter_class=argparse.RawDescriptionHelpFormatter, description=FIT_DESCRIPTION,
                        epilog="examples:\n"
                               "  ulyss-ann fit muse/*.fits --model gsl_ann_trial7.fits -o r.ecsv\n"
                               "  ulyss-ann fit muse/*.fits --model M --fix Logg=photometry.ecsv:logg --plot r.png\n"
                               "  ulyss-ann fit muse/*.fits --model M -o r.ecsv --resume   # after a crash\n"
                               "  ulyss-ann fit big/*.fits --model M --scheduler tcp://head:8786")
    fp.add_argument("files", nargs="+", metavar="SPECTRUM", help="spectrum files")
    fp.add_argument("-m", "--model", help="interpolator FITS file (default: the bundled example)")
    fp.add_argument("-o", "--output", default="results.ecsv", help="results table (default: results.ecsv)")
    fp.add_argument("--guess", action="append", default=[], metavar="NAME=V1,V2",
                    help="starting values of a parameter, e.g. --guess Teff=4800,5400 (repeatable)")
    fp.add_argument("--fix", action="append", default=[], metavar="NAME=VALUE|TABLE:COLUMN",
                    help="fix a parameter: a value (--fix Logg=2.5) or per spectrum from a table whose "
                         "'id' column holds the file names without extension (--fix Logg=phot.ecsv:logg)")
    fp.add_argument("--mdegree", type=int, default=20, help="degree of the multiplicative polynomial (20)")
    fp.add_argument("--range", metavar="LMIN,LMAX", help="wavelength range to fit, Angstrom")
    fp.add_argument("--mask", action="append", default=[], metavar="LO,HI", help="mask a range, Angstrom")
    fp.add_argument("--no-telluric-mask", action="store_true", help="do not mask the telluric bands")
    fp.add_argument("--mask-nad", action="store_true", help="mask interstellar Na D")
    fp.add_argument("-j", "--workers", type=int, help="worker processes (default: one per core; 0: no Dask)")
    fp.add_argument("--scheduler", metavar="ADDRESS", help="use an existing Dask cluster (tcp://host:8786)")
    fp.add_argument("--engine", default="auto", choices=["auto", "gdl"], help="fitting engine (gdl)")
    fp.add_argument("--backend", default="auto", choices=["auto", "pygdl", "subprocess"],
                    help="how Python talks to GDL (auto: a gdl subprocess if installed, else import GDL)")
    fp.add_argument("--resume", action="store_true", help="continue a batch: skip spectra already done")
    fp.add_argument("--overwrite", action="store_true", help="start afresh, replacing OUTPUT and its journal")
    fp.add_argument("--save-fits", metavar="DIR", help="write each spectrum's best fit and residuals as FITS")
    fp.add_argument("--plot", metavar="FILE.png", help="one-page figure of the parameter distributions")
    fp.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    fp.set_defaults(run=_run_fit)


def _pairs(items, option, numbers=True):
    result = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not value:
            raise UlyssAnnError(f"{option} {item!r}: expected NAME=VALUE")
        result[name.strip()] = value.strip()
    return result


def _floats(text, option):
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise UlyssAnnError(f"{option} {text!r}: expected numbers separated by commas") from None


def _run_fit(args):
    from .batch import fit

    guesses = {k: _floats(v, "--guess") for k, v in _pairs(args.guess, "--guess").items()}
    fixed = _pairs(args.fix, "--fix")
    wave_range = None
    if args.range:
        wave_range = _floats(args.range, "--range")
        if len(wave_range) != 2 or wave_range[0] >= wave_range[1]:
            raise UlyssAnnError(f"--range {args.range!r}: expected LMIN,LMAX with LMIN < LMAX")
    masks = []
    for item in args.mask:
        band = _floats(item, "--mask")
        if len(band) != 2:
            raise UlyssAnnError(f"--mask {item!r}: expected LO,HI")
        masks.append(tuple(band))
    model = args.model or example_interpolator_path()
    table = fit(args.files, model, args.output, guesses=guesses or None, fixed=fixed or None,
                mdegree=args.mdegree, wave_range=wave_range, telluric=False if args.no_telluric_mask else None,
                mask_nad=args.mask_nad, masks=masks, workers=args.workers, scheduler=args.scheduler,
                resume=args.resume, overwrite=args.overwrite, backend=args.backend, engine=args.engine,
                progress=not args.quiet, save_fits=args.save_fits)
    print(f"wrote {args.output}")
    if args.plot:
        from .interpolator import Interpolator
        from .plotting import plot_fit_results

        plot_fit_results(args.plot, table, Interpolator.read(model))
        print(f"wrote {args.plot}")
    return 0


def _load(model):
    from .interpolator import Interpolator

    return Interpolator.read(model or example_interpolator_path())


def _run_info(args):
    interp = _load(args.model)
    hidden = ", ".join(interp.activations[:-1]) or "none"
    lines = [
        f"Interpolator   {interp.path}" + ("  (bundled example)" if args.model is None else ""),
        f"  format       ULySS perceptron file, version {interp.format_version}",
        f"  architecture {interp.architecture}  ({interp.n_weights:,} weights and biases; "
        f"hidden: {hidden}; output: {interp.activations[-1]})",
        f"  wavelength   {interp.wavelength.describe()}",
        "  input scaling linscale: x = (p - mean) / std",
        "  parameters",
        f"    {'name':<8} {'unit':<5} {'low':>9} {'high':>9} {'step':>8} {'mean':>12} {'std':>12}",
    ]
    for p in interp.parameters:
        lines.append(f"    {p.name:<8} {p.unit:<5} {p.low:>9g} {p.high:>9g} {p.step:>8g} "
                     f"{p.mean:>12.6g} {p.scale:>12.6g}")
    if interp.meta:
        lines.append("  provenance")
        for key, value, comment in interp.meta:
            text = f"{key} = {value!r}" if key not in ("HISTORY", "COMMENT", "") else f"{key} {value}"
            lines.append(f"    {text}" + (f"  / {comment}" if comment else ""))
    if interp.is_surrogate:
        lines.append("  NOTE: trained on the SURROGATE grid (the authors' trial-8 network at the "
                     "GSL nodes), not on the real Göttingen spectra")
    print("\n".join(lines))
    return 0


def _parse_params(interp, items):
    values = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise ParameterError(f"--param {item!r}: expected NAME=VALUE, e.g. --param Teff=5000")
        try:
            values[interp.names[interp.parameter_index(name.strip())]] = float(value)
        except ValueError:
            raise ParameterError(f"--param {item!r}: '{value}' is not a number") from None
    return interp.as_array(values)


def _read_table(interp, path):
    from astropy.table import Table

    if not os.path.exists(path):
        raise UlyssAnnError(f"{path}: no such file (--table expects a table of parameters)")
    try:
        table = Table.read(path)
    except Exception as exc:  # astropy raises many kinds for unreadable tables
        raise UlyssAnnError(f"{path}: cannot read as a table ({exc}); expected ECSV, FITS or CSV "
                            f"with columns {', '.join(interp.names)}") from None
    columns = {c.lower(): c for c in table.colnames}
    missing = [n for n in interp.names if n.lower() not in columns]
    if missing:
        raise UlyssAnnError(f"{path}: missing column(s) {', '.join(missing)}; has "
                            f"{', '.join(table.colnames) or 'none'}")
    if len(table) == 0:
        raise UlyssAnnError(f"{path}: the table has no rows")
    try:
        return interp.as_array({n: np.asarray(table[columns[n.lower()]], dtype=float)
                                for n in interp.names})
    except ParameterError as exc:
        raise UlyssAnnError(f"{path}: {exc}") from None


def _run_eval(args):
    if not args.output and not args.plot:
        raise UlyssAnnError("nothing to do: give -o FILE.fits and/or --plot FILE.png")
    if args.param and args.table:
        raise UlyssAnnError("give either --param values or --table, not both")
    for path in (args.output, args.plot):
        if path and os.path.exists(path) and not args.overwrite:
            raise UlyssAnnError(f"{path}: exists; add --overwrite to replace it")
    interp = _load(args.model)
    if args.table:
        params = _read_table(interp, args.table)
    elif args.param:
        params = _parse_params(interp, args.param)
    else:
        raise ParameterError(f"no parameters: give --param for each of {', '.join(interp.names)} "
                             "(e.g. --param Teff=5000) or --table FILE")
    flux = interp.evaluate(params, strict=args.strict)
    if args.output:
        from .spectrum_file import write_model_spectra

        write_model_spectra(args.output, interp, params, flux, overwrite=args.overwrite)
        count = "1 spectrum" if params.ndim == 1 else f"{len(params)} spectra"
        print(f"wrote {args.output}: {count}, {interp.wavelength.describe()}")
    if args.plot:
        from .plotting import plot_model_spectra

        plot_model_spectra(args.plot, interp, params, flux)
        print(f"wrote {args.plot}")
    return 0


def _run_gdl_export(args):
    import re

    from .gdl_export import default_install_dir, generate_component
    from .gdl_process import SYSTEM_LIBRARIES
    from .ulyss_location import find_ulyss

    interp = _load(args.model)
    stem = os.path.splitext(os.path.basename(interp.path))[0]
    name = (args.name or re.sub(r"[^A-Za-z0-9_]", "_", stem)).lower()
    outdir = default_install_dir(name) if args.install else (args.output or name)
    files = generate_component(interp, name, outdir)
    print(f"wrote {len(files)} files to {os.path.abspath(outdir)}:")
    print("  " + " ".join(f.name for f in files))
    ulyss = find_ulyss()
    root = str(ulyss) if ulyss else "<ULySS folder>"
    path = ":".join([f"+{os.path.abspath(outdir)}", f"+{root}/pgm", f"+{root}/dep", *SYSTEM_LIBRARIES])
    guesses = "TG=[5000,5500,6000], LG=1.66, ZG=[-1,-1.5], FIXPAR=[0,1,0]"
    if [n.lower() for n in interp.names] != ["teff", "logg", "fe/h"]:
        guesses = "FIXPAR=[0]"
    print("\nto use it in GDL:")
    print(f'  export GDL_PATH="{path}"')
    print("  gdl")
    print(f"  GDL> common uly_path, uly_root & uly_root = '{root}'")
    print(f"  GDL> ulyss, 'star.fits', {name}({guesses}), MDEGREE=20, /QUIET, SOLUTION=sol")
    if ulyss is None:
        print("\n(ULySS was not found: put its folder in place of <ULySS folder>; "
              "python -m ulyss_ann.ulyss_location says where it looks)")
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None):
    kind = "warning" if category is OutOfBoundsWarning else category.__name__
    print(f"ulyss-ann: {kind}: {message}", file=sys.stderr)


def main(argv=None):
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    warnings.showwarning = _show_warning
    try:
        return args.run(args)
    except UlyssAnnError as exc:
        print(f"ulyss-ann: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ulyss-ann: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
