"""``ulyss-ann chimap``: a χ² map over two parameters (or a profile along one), as ULySS's uly_chimap.

Part of the command line (:mod:`ulyss_ann.cli`); errors are UlyssAnnError, printed by
``main`` as one line. The computation is :mod:`ulyss_ann.fitting.chimap.map`.
"""

import argparse
import os

from ulyss_ann.cli.fit import add_engine_options, add_spectrum_options, fit_options, pairs
from ulyss_ann.cli.options import add_model_option, model_file
from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.fitting.engines import engine_choices, engine_help

CHIMAP_DESCRIPTION = """\
A chi2 map, as ULySS's uly_chimap makes it: two of the network's parameters are held
at the nodes of a grid (--x, --y) and everything else is fitted at each node (the other
parameter from the usual guesses, cz, sigma and the polynomial). With --x alone: a
profile along one parameter, and a check of its valley.

The file (-o, FITS) is laid out as uly_chimap writes it (uly_chimap_read reads it):
HDU 0 the reduced chi2 of each node (NAXIS1 along x), HDU 1 the x nodes, HDU 2 the y
nodes, then SUMSQ (the sum of squared residuals) and DCHI2: Delta chi2 against the free
fit, divided by its reduced chi2 when above 1 (by sum/dof without errors), so that
Delta chi2 = 1 is about one standard error even where the model does not fit to the
noise. The free fit's values and formal errors are header cards (B_TEFF, E_TEFF...).

A map of N nodes costs N + 1 fits. The native engine (the default here) fits the nodes
together: about 20 s for 500 nodes of a MUSE spectrum. --engine gdl makes one
uly_fit per node in GDL: seconds each, minutes for a map. cz and sigma cannot be
mapped (both engines always fit them)."""


def add_chimap_parser(sub):
    cp = sub.add_parser("chimap", help="chi2 map over two parameters, or a profile along one (uly_chimap)",
                        formatter_class=argparse.RawDescriptionHelpFormatter, description=CHIMAP_DESCRIPTION,
                        epilog="examples:\n"
                               "  ulyss-ann chimap star.fits -m gsl_ann_trial7.fits --x Teff=4500:6500:21 "
                               "--y Logg=1:5:17 \\\n      -o map.fits --plot map.png\n"
                               "  ulyss-ann chimap star.fits -m gsl_ann_trial7.fits --x Logg=0.5:5:19 --mask-ism "
                               "-o logg.fits\n\n"
                               "exit status: 0 written; 2 refused (a bad option, model, axis or output)")
    cp.add_argument("spectrum", metavar="SPECTRUM", help="the spectrum file")
    add_model_option(cp)
    cp.add_argument("--x", required=True, metavar="NAME=LO:HI:N",
                    help="the first parameter and its nodes: N from LO to HI, or NAME=V1,V2,… (increasing)")
    cp.add_argument("--y", metavar="NAME=LO:HI:N", help="the second parameter (without: a profile along --x)")
    cp.add_argument("-o", "--output", default="chimap.fits", metavar="FILE",
                    help="the map to write, FITS (default: chimap.fits)")
    cp.add_argument("--plot", metavar="FILE.png", help="a figure of the map (Delta chi2 contours, the free fit "
                                                        "marked) or of the profile")
    cp.add_argument("--overwrite", action="store_true", help="replace existing output files")
    add_spectrum_options(cp)
    cp.add_argument("--engine", default="native", choices=engine_choices(),
                    help=engine_help("native") + " (native: all nodes fitted together, fast; gdl: one uly_fit "
                                                 "after another, seconds a node)")
    add_engine_options(cp)
    cp.set_defaults(run=_run_chimap)


def _check_outputs(args):
    from ulyss_ann.figures import check_figure_path
    from ulyss_ann.fitting.fit_options import check_output_folder

    if not args.output.lower().endswith((".fits", ".fit", ".fits.gz")):
        raise UlyssAnnError(f"-o {args.output}: a chi2 map is written as FITS (uly_chimap's layout); end the name "
                            "in .fits")
    for path in filter(None, (args.output, args.plot)):
        if os.path.exists(path) and not args.overwrite:
            raise UlyssAnnError(f"{path}: exists; add --overwrite to replace it")
        check_output_folder(path)
    if args.plot:
        check_figure_path(args.plot, "--plot")


def _run_chimap(args):
    from ulyss_ann.figures import save_figure, value_with_error
    from ulyss_ann.fitting.quality import FLAT_VALLEY
    from ulyss_ann.fitting.chimap.map import chi2_map, chi2_profile, parse_axis
    from ulyss_ann.fitting.valley import flat_parameters

    x = parse_axis(args.x, "--x")
    y = parse_axis(args.y, "--y") if args.y else None
    _check_outputs(args)  # before any fit, not after
    if not os.path.isfile(args.spectrum):
        raise UlyssAnnError(f"{args.spectrum}: no such spectrum file")
    options = fit_options(args)
    fixed = pairs(args.fix, "--fix") or None
    model = model_file(args)
    if y is None:
        chimap = chi2_profile(args.spectrum, model, *x, engine=args.engine, fixed=fixed, **options)
    else:
        chimap = chi2_map(args.spectrum, model, x, y, engine=args.engine, fixed=fixed, **options)
    chimap.write(args.output, overwrite=args.overwrite)
    best = chimap.best
    nodes = chimap.dchi2.size
    free = ", ".join(f"{n} {value_with_error(best.params[n], best.errors[n])}" for n in chimap.names)
    least = ", ".join(f"{n} {v:g}" for n, v in chimap.best_node.items())
    print(f"wrote {args.output}: {nodes} nodes, {nodes - len(chimap.failures)} fitted; free fit {free} "
          f"(reduced chi2 {best.chi2:.4g}); least chi2 at {least}; Delta chi2 scaled by {chimap.noise_scale:.4g}")
    for failure in chimap.failures[:5]:
        print(f"ulyss-ann: warning: node {failure}")
    if y is None:
        flat = flat_parameters({chimap.x_name: chimap}, best)
        said = (f"{FLAT_VALLEY}: Delta chi2 stays low far beyond the formal error" if flat
                else "a valley as narrow as the formal error says")
        print(f"{chimap.x_name}: {said}")
    if args.plot:
        save_figure(chimap.plot(), args.plot)
        print(f"wrote {args.plot}")
    return 0
