"""The ``ulyss-ann`` command line.

Errors caused by input (files, parameters, options) print one line,
``ulyss-ann: error: …``, and exit with status 2; never a traceback.
"""

import argparse
import os
import sys
import warnings

import numpy as np

from ulyss_ann.version import __version__
from ulyss_ann.errors import ParameterError, UlyssAnnError, first_line
from ulyss_ann.cli.chimap import add_chimap_parser
from ulyss_ann.cli.fit import add_fit_parser
from ulyss_ann.cli.grids import add_grid_parsers
from ulyss_ann.cli.lsf import add_lsf_parser, spell_lsf_gaussian
from ulyss_ann.cli.options import add_model_option, given_model, model_file, take_positional_model
from ulyss_ann.cli.paper import add_paper_parsers
from ulyss_ann.cli.training import add_training_parsers
from ulyss_ann.fitting.batch.cluster import Terminated
from ulyss_ann.model.bundled import BUNDLED, bundled_name_of

DESCRIPTION = """\
Neural-network spectral interpolators for ULySS (Kumar, Prugniel & Singh).

An interpolator is a trained network, stored in ULySS's perceptron FITS format,
that turns atmospheric parameters (Teff, log g, [Fe/H]) into a normalised
spectrum. This tool inspects such files and computes spectra from them.
"""

EPILOG = """\
workflow:
  ulyss-ann info -m MODEL                  what the network is: layers, parameters,
                                           bounds, scaling, wavelength range
  ulyss-ann eval -m MODEL --param Teff=5000 --param Logg=2 --param Fe/H=-1.5 \\
                 -o spec.fits --plot spec.png
                                           one model spectrum, as FITS and a figure
  ulyss-ann eval -m MODEL --table params.ecsv -o spectra.fits
                                           many spectra, one row of the table each
  ulyss-ann gdl-export -m MODEL --name gslann --install
                                           a ULySS component in GDL for this network:
                                           ulyss, spec, gslann(TG=5000, LG=2, ZG=-1.5)
  ulyss-ann grid surrogate -o gsl_surrogate.fits
                                           the stand-in grid (trial 8 at the GSL nodes)
  ulyss-ann train gsl_surrogate.fits --preset trial7 -o net.keras --export net.fits
                                           a network with the paper's recipe (Keras)
  ulyss-ann export net.h5 --grid gsl_surrogate.fits -o net.fits
                                           a Keras network -> an interpolator file
  ulyss-ann fit spectra/*.fits -m MODEL -o results.ecsv
                                           fit many spectra with ULySS (GDL), in
                                           parallel, resumable (--resume)
  ulyss-ann chimap star.fits -m MODEL --x Teff=4500:6500:21 --y Logg=1:5:17 \\
                 -o map.fits --plot map.png
                                           a chi2 map, the other parameters fitted
                                           at each node (ULySS's uly_chimap)
  ulyss-ann selfinv --res fits.res --nodes gsl_nodes.txt
                                           self-inversion precision (Eq. 6, Table 3)

-m MODEL: an interpolator file, or a bundled one by name: example (the default: a
small network fitted to the surrogate grid) or miles (trained on the MILES library).
The authors' published networks are ULySS perceptron files too (gsl_ann_trial7.fits).
-o names the file a command writes, or the folder (DIR) where it writes several.

Run 'ulyss-ann COMMAND --help' for the options of each command.
"""


def build_parser():
    """The `ulyss-ann` argument parser, every command and option (parsing runs nothing)."""
    parser = argparse.ArgumentParser(prog="ulyss-ann", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"ulyss-ann {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    info = sub.add_parser("info", help="describe an interpolator file",
                          description="Describe an interpolator: format version, architecture, "
                                      "parameters with units, bounds and input scaling, wavelength "
                                      "range and sampling, air or vacuum, provenance. Without -m: the "
                                      "bundled example, and the names of the bundled interpolators.")
    add_model_option(info, what="interpolator (ULySS perceptron file, format 0.0.3)", positional_too=True)
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
               "  ulyss-ann eval -m gsl_ann_trial7.fits --param Teff=5000 --param Logg=2 \\\n"
               "      --param Fe/H=-1.5 -o spec.fits --plot spec.png")
    add_model_option(ev, positional_too=True)
    ev.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                    help="a parameter value, repeated for each parameter (names as 'info' lists "
                         "them, case-insensitive), e.g. --param Teff=5000")
    ev.add_argument("-t", "--table", metavar="FILE",
                    help="table (ECSV, FITS, CSV…) with one column per parameter; one spectrum per row")
    ev.add_argument("-o", "--output", metavar="FILE", help="FITS file to write the spectra to (one file, "
                                                           "with --table too)")
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
               "  ulyss-ann gdl-export -m gsl_ann_trial7.fits --name gslann --install\n"
               "  # then, in gdl, with the GDL_PATH line it prints:\n"
               "  ulyss, 'star.fits', gslann(TG=[5000,5500,6000], LG=1.66, ZG=[-1,-1.5], FIXPAR=[0,1,0]), MDEGREE=20")
    add_model_option(gx, positional_too=True)
    gx.add_argument("--name", help="GDL name of the component (default: from the file name, e.g. "
                                   "gsl_ann_trial7); letters, digits, '_'")
    where = gx.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", metavar="DIR", help="folder to write the files to (default: ./NAME)")
    where.add_argument("--install", action="store_true",
                       help="write to $XDG_DATA_HOME/ulyss_ann/gdl/NAME (~/.local/share/...) and print "
                            "the GDL_PATH line to use it")
    gx.set_defaults(run=_run_gdl_export)
    add_fit_parser(sub)
    add_chimap_parser(sub)
    add_lsf_parser(sub)
    add_grid_parsers(sub)
    add_training_parsers(sub)
    add_paper_parsers(sub)
    return parser


def _load(args):
    from ulyss_ann.model.interpolator import Interpolator

    return Interpolator.read(model_file(args))


def _medium_lines(interp):
    """What info says of the network's medium: what fits take, the measured line centres, and a
    warning (also on stderr) when the lines contradict what fits take."""
    from ulyss_ann.model.line_centres import measured_medium, medium_check

    measurement = measured_medium(interp)
    note, warning = medium_check(interp, measurement)
    point = ", ".join(f"{name} {value:g}" for name, value in measurement.point.items())
    lines = [f"  medium       {note}", f"  line centres {measurement.describe()} (at {point})"]
    if warning:
        print(f"ulyss-ann: warning: {os.path.basename(str(interp.path))}: {warning}", file=sys.stderr)
        lines.append(f"  WARNING      {warning}")
    return lines


def _run_info(args):
    given = given_model(args)
    interp = _load(args)
    hidden = ", ".join(interp.activations[:-1]) or "none"
    bundled = bundled_name_of(interp.path)
    lines = [
        f"Interpolator   {interp.path}" + ("  (bundled example)" if given is None else
                                           f"  (bundled: {bundled})" if bundled else ""),
        f"  format       ULySS perceptron file, version {interp.format_version}",
        f"  architecture {interp.architecture}  ({interp.n_weights:,} weights and biases; "
        f"hidden: {hidden}; output: {interp.activations[-1]})",
        f"  wavelength   {interp.wavelength.describe()}",
        *_medium_lines(interp),
        "  input scaling linscale: x = (p - mean) / std" if interp.inputs.perceptron else
        f"  input map    {interp.input_map}: ULySS's TGM polynomial terms, then one linear layer (native engine only)",
        "  parameters",
        f"    {'name':<8} {'unit':<5} {'low':>9} {'high':>9} {'step':>8} {'mean':>12} {'std':>12}",
    ]
    for p in interp.parameters:
        lines.append(f"    {p.name:<8} {p.unit:<5} {p.low:>9g} {p.high:>9g} {p.step:>8g} "
                     f"{p.mean:>12.6g} {p.scale:>12.6g}")
    record = interp.training_record
    if "RECIPE" in record:  # trained here (train --export): how, and how well on the nodes it never fitted
        mse = [f"{_number(record[key])} {what}" for key, what in (("TRAINMSE", "training"), ("VALMSE", "validation"),
                                                             ("HOLDMSE", "held-out")) if key in record]
        members = {key: value for key, value, _ in interp.meta}.get("NMEMBERS")   # an ensemble (train_miles)
        how = (f"the mean of {members} networks, seeds {record.get('SEED', 0)}..{record.get('SEED', 0) + members - 1}"
               if members else f"seed {record.get('SEED', '?')}, step {record.get('STEP', '?')}; MSE " + ", ".join(mse))
        lines.append(f"  training     {record['RECIPE']} recipe, preset {record.get('PRESET', '?')}, {how}"
                     + (f"; {record['NEXCLUDE']} training stars left out as outliers" if "NEXCLUDE" in record else ""))
    scores = {key: value for key, value, _ in interp.meta if key.startswith("CV")}
    if scores:   # scripts/crossval_miles's robust σ of this recipe's fits of held-out stars (docs/training.md)
        lines.append(f"  cross-validated ({scores.get('CVSTARS', '?')} held-out stars, {scores.get('CVFOLDS', '?')} "
                     f"folds): robust sigma of the fitted - catalogue values, FGK: Teff {scores.get('CVFGKT', '?')} K, "
                     f"log g {scores.get('CVFGKG', '?')}, [Fe/H] {scores.get('CVFGKZ', '?')}; all: Teff "
                     f"{scores.get('CVALLT', '?')} K, log g {scores.get('CVALLG', '?')}, [Fe/H] {scores.get('CVALLZ', '?')}")
    if interp.meta:
        lines.append("  provenance")
        for key, value, comment in interp.meta:
            text = f"{key} = {value!r}" if key not in ("HISTORY", "COMMENT", "") else f"{key} {value}"
            lines.append(f"    {text}" + (f"  / {comment}" if comment else ""))
    if interp.is_surrogate:
        lines.append("  NOTE: trained on the SURROGATE grid (the authors' trial-8 network at the "
                     "GSL nodes), not on the real Göttingen spectra")
    elif interp.scaling_from_surrogate:
        lines.append("  NOTE: weights exported from a network made elsewhere; only the input scaling and "
                     "wavelengths come from the SURROGATE grid (the weights are not trained on it)")
    if given is None:
        lines.append("bundled interpolators (ulyss-ann info -m NAME; -m NAME in every command):")
        lines += [f"  {name:<8} {text}" for name, (_, text) in BUNDLED.items()]
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
    from astropy.io.registry import IORegistryError

    try:
        try:
            table = Table.read(path)
        except IORegistryError:  # no format known by its name (e.g. params.txt): text columns, as ascii reads them
            table = Table.read(path, format="ascii")
    except Exception as exc:  # astropy raises many kinds for unreadable tables
        raise UlyssAnnError(f"{path}: cannot read as a table ({first_line(exc)}); expected ECSV, FITS, CSV or text "
                            f"columns under a header line {' '.join(interp.names)}") from None
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

#: The names ``eval -o`` accepts: astropy writes FITS under these (gzip-compressed for .gz).
EVAL_SUFFIXES = (".fits", ".fit", ".fits.gz")


def _run_eval(args):
    if not args.output and not args.plot:
        raise UlyssAnnError("nothing to do: give -o FILE.fits and/or --plot FILE.png")
    if args.param and args.table:
        raise UlyssAnnError("give either --param values or --table, not both")
    from ulyss_ann.fitting.fit_options import check_output_folder

    # eval writes FITS whatever the name says: a spectra.txt would be FITS under a text name
    if args.output and not args.output.lower().endswith(EVAL_SUFFIXES):
        raise UlyssAnnError(f"{args.output}: eval writes the spectra as FITS; end the name in "
                            f"{', '.join(EVAL_SUFFIXES)} (e.g. spectra.fits)")
    for path in (args.output, args.plot):
        if path and os.path.exists(path) and not args.overwrite:
            raise UlyssAnnError(f"{path}: exists; add --overwrite to replace it")
        if path:
            check_output_folder(path)  # before the network is read, not at the write
    interp = _load(args)
    if args.table:
        params = _read_table(interp, args.table)
    elif args.param:
        params = _parse_params(interp, args.param)
    else:
        raise ParameterError(f"no parameters: give --param for each of {', '.join(interp.names)} "
                             "(e.g. --param Teff=5000) or --table FILE")
    flux = interp.evaluate(params, strict=args.strict)
    if args.output:
        from ulyss_ann.spectra.model_files import write_model_spectra

        write_model_spectra(args.output, interp, params, flux, overwrite=args.overwrite)
        count = "1 spectrum" if params.ndim == 1 or len(params) == 1 else f"{len(params)} spectra"
        print(f"wrote {args.output}: {count}, {interp.wavelength.describe()}")
    if args.plot:
        from ulyss_ann.figures import save_figure
        from ulyss_ann.fitting.result_figure import plot_model_spectra

        save_figure(plot_model_spectra(interp, params, flux), args.plot, dpi=120)
        print(f"wrote {args.plot}")
    return 0


def _run_gdl_export(args):
    import re

    import shlex

    from ulyss_ann.gdl.component import default_install_dir, generate_component
    from ulyss_ann.gdl.literals import check_gdl_path, gdl_string
    from ulyss_ann.gdl.process import SYSTEM_LIBRARIES
    from ulyss_ann.gdl.reserved_names import check_component_name
    from ulyss_ann.gdl.ulyss_location import find_ulyss

    # the component meets spectra on air wavelengths, as the batch's does (a vacuum network's axis converted)
    interp = _load(args).in_medium("air")
    stem = os.path.splitext(os.path.basename(interp.path))[0]
    name = (args.name or re.sub(r"[^A-Za-z0-9_]", "_", stem)).lower()
    if not args.name and not re.match(r"[A-Za-z]", name):
        name = "ann_" + name  # a GDL name starts with a letter
    what = "--name" if args.name else "the component name (from the file's; give another with --name)"
    check_component_name(name, what, SYSTEM_LIBRARIES)  # nor a routine of GDL's libraries on this machine
    outdir = default_install_dir(name) if args.install else (args.output or name)
    check_gdl_path(os.path.abspath(outdir), "--output" if args.output else "the output folder", search_path=True)
    files = generate_component(interp, name, outdir)
    print(f"wrote {len(files)} files to {os.path.abspath(outdir)}:")
    print("  " + " ".join(f.name for f in files))
    ulyss = find_ulyss()
    component = f"+{os.path.abspath(outdir)}"
    if ulyss:
        # Quoted for the shell and for GDL: a folder name is pasted, never run.
        path = shlex.quote(":".join([component, f"+{ulyss}/pgm", f"+{ulyss}/dep", *SYSTEM_LIBRARIES]))
        root = gdl_string(str(ulyss))
    else:  # the line still pastes: the shell fills in the ULYSS_DIR the user sets (the README's form)
        path = (shlex.quote(component + ":") + '"+$ULYSS_DIR/pgm:+$ULYSS_DIR/dep:"'
                + shlex.quote(":".join(SYSTEM_LIBRARIES)))
        root = "getenv('ULYSS_DIR')"
    guesses = "TG=[5000,5500,6000], LG=1.66, ZG=[-1,-1.5], FIXPAR=[0,1,0]"
    if [n.lower() for n in interp.names] != ["teff", "logg", "fe/h"]:
        guesses = "FIXPAR=[0]"
    print("\nto use it in GDL:")
    if ulyss is None:
        print("  export ULYSS_DIR=/path/to/ulyss   # ULySS was not found here (python -m "
              "ulyss_ann.gdl.ulyss_location says where it looks)")
    print(f"  export GDL_PATH={path}")
    print("  gdl")
    print(f"  GDL> common uly_path, uly_root & uly_root = {root}")
    print(f"  GDL> ulyss, 'star.fits', {name}({guesses}), MDEGREE=20, /QUIET, SOLUTION=sol")
    return 0


def _number(value):
    """An MSE card as a number, or as written when another tool wrote text there."""
    return f"{value:.3e}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    kind = "warning" if issubclass(category, UserWarning) else category.__name__
    print(f"ulyss-ann: {kind}: {message}", file=sys.stderr)


def main(argv=None):
    # Warnings are one line from the start: building the parser reads the plug-ins' entry points, and a
    # broken one is a warning. Scoped, so that a caller's (a test's, a notebook's) own is back on return.
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        return _main(argv)


def _main(argv):
    try:
        parser = build_parser()  # in here: a plug-in that fails while the parser is built is one line too
        args = parser.parse_args(spell_lsf_gaussian(sys.argv[1:] if argv is None else argv))
        if args.command is None:
            parser.print_help()
            return 0
        take_positional_model(args)  # said (or refused, given twice) before anything else
        status = args.run(args)
        sys.stdout.flush()  # here, not at exit, so that a closed pipe is caught below
        return status
    except UlyssAnnError as exc:
        print(f"ulyss-ann: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        if isinstance(exc, Terminated):  # SIGTERM in a batch (selfinv's), which `fit` says in its own line
            print("ulyss-ann: stopped by SIGTERM", file=sys.stderr)
            return 143
        print("ulyss-ann: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`ulyss-ann info | head`): stop quietly, as cat does; stdout
        # is pointed at /dev/null so that Python's flush at exit does not complain again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
