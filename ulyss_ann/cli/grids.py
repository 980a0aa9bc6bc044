"""``ulyss-ann grid``: the spectral grids networks are trained on (surrogate, PHOENIX, MILES).

``train`` and ``export`` are in :mod:`ulyss_ann.cli.training`, ``selfinv`` in :mod:`ulyss_ann.cli.paper`.

Part of the command line (:mod:`ulyss_ann.cli`); errors are UlyssAnnError, printed by
``main`` as one line.
"""

import argparse
import os

from ulyss_ann.cli.fit import parse_floats
from ulyss_ann.cli.options import add_model_option, reference_model
from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.spectra.reference_files import ENV_VAR, find_reference
from ulyss_ann.model.reference_names import GSL_NODES, TRIAL8

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
