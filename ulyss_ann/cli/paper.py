"""``ulyss-ann selfinv``, ``simulate ngc6397`` and ``ngc6397``: the paper's precision and cluster.

``selfinv``: the self-inversion precision of an interpolator (Eq. 6, Table 3); ``simulate``
and ``ngc6397``: the paper's cluster, simulated and analysed.

Part of the command line (:mod:`ulyss_ann.cli`); errors are UlyssAnnError, printed by
``main`` as one line.
"""

import argparse
import glob
import os

from ulyss_ann.cli.grids import REFERENCE_PLACES
from ulyss_ann.cli.options import add_dashboard_option, add_model_option, model_file, reference_model
from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.fitting.engines import engine_choices, engine_help
from ulyss_ann.model.reference_names import TRIAL8


def add_paper_parsers(sub):
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
    si.add_argument("--engine", default="auto", choices=engine_choices(), help=engine_help("auto"))
    si.add_argument("-j", "--workers", type=int, help="worker processes (default: one per core; 0: no Dask)")
    si.add_argument("-o", "--outdir", metavar="DIR", default="selfinv",
                    help="with --grid: folder to write the fits, the table and the maps to (selfinv)")
    si.add_argument("--quiet", action="store_true", help="with --grid: no progress bar or fit summary, "
                                                         "nothing of Dask's; only the precision table")
    add_dashboard_option(si)
    si.set_defaults(run=_run_selfinv)

    sm = sub.add_parser("simulate", help="simulate a MUSE sample of NGC 6397 (known parameters)",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Simulate the paper's NGC 6397 sample: 1587 MUSE-like spectra of 1063 stars above "
                                    "the turn-off\n(Teff 4500-6500 K, log g 1.0-4.2 along an old metal-poor isochrone), "
                                    "MUSE's LSF (2.82 A FWHM\nat 4750 A to 2.54 A at 7000 A), S/N 20-200, radial "
                                    "velocities, smooth continua, and the\npaper's [Fe/H] trend injected (-2.35 at the "
                                    "turn-off, -2.12 on the subgiant branch).\nWritten as MUSE/PampelMuse FITS with "
                                    "RA/Dec and SIM_* truth cards, plus truth.ecsv,\nphotometry.ecsv (log g to fix) "
                                    "and lsf.txt (the LSF given, for fit --lsf). Made with\nanother network than the one "
                                    "you fit with (default: the authors' trial 8; fit with\ntrial 7).\n\n"
                                    "--region-grid N also writes region_grid.fits: the generating network at N random\n"
                                    "points around the isochrone. A network trained on it (ulyss-ann train) is not the\n"
                                    "generator but reproduces it closely: fitting with it checks the pipeline alone.\n"
                                    "See ulyss_ann/paper/ngc6397.py.",
                        epilog="example:\n  ulyss-ann simulate ngc6397 -o sim/\n"
                               "  ulyss-ann fit sim/*.fits -m gsl_ann_trial7.fits --engine native "
                               "--fix Logg=sim/photometry.ecsv:logg -o sim_results.ecsv")
    sm.add_argument("what", choices=["ngc6397"], help="the sample to simulate")
    sm.add_argument("-o", "--outdir", required=True, metavar="DIR",
                    help="folder to write the spectra, truth.ecsv, photometry.ecsv and lsf.txt to")
    add_model_option(sm, what="generating network",
                     default_text=f"the authors' trial 8, {TRIAL8.name} or {TRIAL8.aliases[0]}, found in "
                                  f"{REFERENCE_PLACES}")
    sm.add_argument("--n-stars", type=int, default=1063, help="stars above the turn-off (default: 1063, the paper's)")
    sm.add_argument("--n-spectra", type=int, default=1587,
                    help="spectra of them, repeated visits included (default: 1587, the paper's)")
    sm.add_argument("--seed", type=int, default=6397, help="random seed of the sample and its noise (default: 6397)")
    sm.add_argument("--region-grid", type=int, metavar="N", help="also write region_grid.fits (N spectra)")
    sm.set_defaults(run=_run_simulate)

    an = sub.add_parser("ngc6397", help="the paper's cluster analysis of a results table (Table 4, Figs. 4-7)",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Analyse a results table of ulyss-ann fit as the paper does for NGC 6397: Table 4 "
                                    "(ECSV and a\nMarkdown excerpt), per-star parameters from repeated visits "
                                    "(stars.ecsv), Fig. 5\n(distributions), Fig. 6 (against --truth and/or "
                                    "--reference), Fig. 7 ([Fe/H] vs Teff in\n250 K bins), Fig. 4 for each "
                                    "--fit-file (from fit --save-fits).\n"
                                    "scripts/reproduce_paper adds report/summary.md beside the paper's numbers.",
                        epilog="example:\n  ulyss-ann ngc6397 sim_results.ecsv --truth sim/truth.ecsv "
                               "--fit-file fits/ngc6397id000000001jd2456865p1234f000_fit.fits -o report/")
    an.add_argument("results", metavar="RESULTS", help="results table of ulyss-ann fit")
    an.add_argument("-o", "--outdir", required=True, metavar="DIR", help="folder to write the report to")
    an.add_argument("--truth", metavar="FILE", help="truth.ecsv of a simulated sample")
    an.add_argument("--reference", metavar="FILE",
                    help="reference table (id, Teff, Fe/H) to compare with, as the paper's B22")
    an.add_argument("--reference-label", default="reference",
                    help="name of --reference in the figures and tables (default: reference)")
    an.add_argument("--fit-file", action="append", default=[], metavar="FILE",
                    help="a *_fit.fits of fit --save-fits (Fig. 4; repeatable, a quoted glob too)")
    an.set_defaults(run=_run_report)


def as_folder(path):
    """``path`` as a folder is written in a message: one trailing slash, however it was typed (sim, sim/)."""
    return os.path.join(os.path.normpath(path), "")


def _run_simulate(args):
    from ulyss_ann.paper.ngc6397 import simulate_cluster

    args.model = reference_model(args, TRIAL8, "generating network")
    table = simulate_cluster(args.model, args.outdir, args.n_stars, args.n_spectra, args.seed, progress=True)
    print(f"wrote {len(table)} SIMULATED spectra of {len(set(table['star']))} stars to {as_folder(args.outdir)} "
          f"(truth.ecsv, photometry.ecsv, lsf.txt), generated with {os.path.basename(args.model)}")
    if args.region_grid:
        from ulyss_ann.paper.ngc6397 import region_grid

        path = os.path.join(args.outdir, "region_grid.fits")
        region_grid(args.model, args.region_grid).save(path, overwrite=True)
        print(f"wrote {path}: {os.path.basename(args.model)} at {args.region_grid} points of the "
              "cluster's region (SURROGATE)")
    return 0


def _run_report(args):
    from ulyss_ann.paper.cluster_report import make_report

    files = [f for pattern in args.fit_file for f in (glob.glob(pattern) or [pattern])]
    numbers = make_report(args.results, args.outdir, args.truth, args.reference, args.reference_label, files)
    (to, sgb, diff) = numbers["to_sgb"]
    print(f"{numbers['n_ok']} of {numbers['n_spectra']} spectra fitted, {numbers['n_stars']} stars "
          f"({numbers['n_repeated']} observed more than once)")
    print(f"<[Fe/H]> = {numbers['mean_feh'][0]:.3f} ± {numbers['mean_feh'][1]:.3f} dex; "
          f"TO {to[0]:.3f} ± {to[1]:.3f} ({to[2]}), sGB {sgb[0]:.3f} ± {sgb[1]:.3f} ({sgb[2]}), sGB − TO {diff:+.3f} dex")
    for key in ("truth", "reference"):
        if key in numbers:
            t, f = numbers[key]["Teff"], numbers[key]["Fe/H"]
            print(f"against {key}: ΔTeff {t[0]:+.1f} ± {t[1]:.1f} K, Δ[Fe/H] {f[0]:+.3f} ± {f[1]:.3f} dex")
    print(f"wrote {as_folder(args.outdir)}: {', '.join(sorted(os.listdir(args.outdir)))}")
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
