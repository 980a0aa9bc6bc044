"""``ulyss-ann fit``: many spectra through GDL + ULySS or the native engine (the batch driver's command line).

Part of the command line (:mod:`ulyss_ann.cli`); errors are UlyssAnnError, printed by
``main`` as one line.
"""

import argparse
import sys

from ulyss_ann.cli.options import add_dashboard_option, add_model_option, model_file
from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.fitting.engines import engine_choices, engine_help, engine_of_label
from ulyss_ann.fitting.engine_traits import SEARCHES

FIT_DESCRIPTION = """\
Fit spectra with an interpolator: the model of the paper's Eq. 8,
F = P_n x G(v, sigma) (x) f(Teff, logg, [Fe/H]), by Levenberg-Marquardt from every
combination of guesses, the best chi2 kept.

Two engines, one table: --engine gdl runs ULySS's own uly_fit in GDL with a component
generated for the network; --engine native runs the same model and fit in NumPy/SciPy
(analytic Jacobian through the network, no GDL needed; agrees with uly_fit to 0.75 K
and 0.0011 dex and is 43x faster per core: scripts/compare_engines, bench_native).
auto (default): gdl when GDL and ULySS are found, native otherwise; the engine column
says which ran.

Defaults are the paper's set-up: guesses Teff 5000/5500/6000 K x [Fe/H] -1/-1.5,
a multiplicative Legendre polynomial of degree 20, the network's wavelength range.
Observed spectra get the MUSE pipeline's telluric bands masked (--telluric muse: O2
6273-6320, O2 B 6864-6967, H2O 7164-7325, O2 A 7590-7700 A and redder, each widened by
+-30 km/s of barycentric correction; not simulated spectra, whose header says
SIMULATD = T); --telluric none or FILE (LO HI per line) changes it. --mask-ism masks
interstellar Na D and the DIBs 5780, 6284 A at rest +-50 km/s; --mask-nad 5885-5900 A. NaN/inf fluxes and zero or
negative errors are masked and counted (n_bad).

The broadening G is one Gaussian for the whole range. An instrument whose resolution
varies with wavelength (MUSE: 2.82 A FWHM at 4750 A, 2.54 A at 7000 A) can have its
relative LSF injected into the model first, as ULySS's LSF= does: --lsf FILE, a
ULySS LSF text file (`ulyss-ann lsf measure` or uly_lsf: measured from the data;
`ulyss-ann lsf gaussian`: from an instrument's nominal FWHM).
With it, use --engine native --losvd analytic: the LSF leaves almost no broadening to
sigma, and ULySS's sampled kernel, pegged at 0.3 px, cannot follow sub-pixel shifts.

Every finished spectrum is written at once to OUTPUT.journal.jsonl, each record with
its checksum, after the run's configuration: after a crash, rerun the same command with
--resume (a damaged record is reported and its spectrum fitted again; other options
than the run's are refused, with the differences listed). OUTPUT.lock keeps one run
per output. Every option is checked before any fit. Two files with the same name in
different folders get ids with their folder (night1/spec_001). Each file is read by the
reader that recognises its content (the list: --format), or by the one --format names."""


def add_fit_parser(sub):
    fp = sub.add_parser("fit", help="fit many spectra (GDL + ULySS or native; parallel, resumable)",
                        formatter_class=argparse.RawDescriptionHelpFormatter, description=FIT_DESCRIPTION,
                        epilog="examples:\n"
                               "  ulyss-ann fit muse/*.fits -m gsl_ann_trial7.fits -o r.ecsv\n"
                               "  ulyss-ann fit muse/*.fits -m miles -o r_miles.ecsv   # a bundled network, by name\n"
                               "  ulyss-ann fit muse/*.fits -m M --fix Logg=photometry.ecsv:logg --plot r.png\n"
                               "  ulyss-ann lsf measure muse/*.fits -m M -o muse.lsf --plot lsf.png\n"
                               "  ulyss-ann fit muse/*.fits -m M --lsf muse.lsf --engine native --losvd analytic\n"
                               "  ulyss-ann fit muse/*.fits -m M -o r.ecsv --resume   # after a crash\n"
                               "  ulyss-ann fit big/*.fits -m M --scheduler tcp://head:8786 --dashboard\n\n"
                               "status column: ok; error: <why> (the spectrum: unreadable, no overlap, no signal,\n"
                               "  a fixed value missing; kept on --resume unless --retry-failed); failed: <why>\n"
                               "  (the machinery: a worker or GDL died or hung; --resume fits it again, 3 tries)\n\n"
                               "exit status:\n"
                               "  0  every spectrum fitted (status ok)\n"
                               "  1  some spectra not fitted: their rows say why (the table is written)\n"
                               "  2  refused before any fit (a bad option, model or output), or stopped because\n"
                               "     the journal could not be written (every row before is kept: --resume)\n"
                               "  3  no spectrum fitted (the table is written, each row says why)\n"
                               "  130  interrupted (Ctrl-C): finished spectra are in the journal; --resume\n"
                               "  143  stopped by SIGTERM (kill, a batch system's time limit): the same")
    fp.add_argument("files", nargs="+", metavar="SPECTRUM", help="spectrum files")
    add_model_option(fp)
    fp.add_argument("-o", "--output", default="results.ecsv", metavar="FILE",
                    help="results table to write (format from its extension, e.g. .ecsv; default: results.ecsv)")
    add_spectrum_options(fp)
    fp.add_argument("-j", "--workers", type=int,
                    help="worker processes (default: one per core, or none for a batch too small for a cluster to "
                         "pay; at most 4 per core; none with a GPU --device; 0: no Dask)")
    fp.add_argument("--scheduler", metavar="ADDRESS",
                    help="use an existing Dask cluster (tls://host:8786 or tcp://; TLS credentials from Dask's "
                         "configuration: distributed.comm.tls.*)")
    fp.add_argument("--retries", type=int, default=2, metavar="N",
                    help="worker deaths one task may cause before it is given up (default 2); a spectrum that "
                         "still kills its worker alone gets a 'failed: …' row, fitted again by --resume")
    fp.add_argument("--engine", default="auto", choices=engine_choices(), help=engine_help("auto"))
    add_engine_options(fp)
    fp.add_argument("--errors", default="formal", metavar="METHOD",
                    help="the errors reported: formal (default: MPFIT's, as ULySS), mc (ULySS's Monte-Carlo: the "
                         "scatter of --nsimul refits of the spectrum plus noise of its errors; the gdl engine runs "
                         "ULySS's NSIMUL) or total (docs/fitting.md); the table's errors column says which")
    fp.add_argument("--nsimul", type=int, metavar="N", help="refits per spectrum for --errors mc/total "
                                                            "(default 50, at least 5)")
    fp.add_argument("--seed", type=int, metavar="N", help="seed of the --errors perturbations (all but the gdl "
                                                          "engine's mc, ULySS's NSIMUL; default: fresh each run)")
    fp.add_argument("--no-flat-check", dest="flat_check", action="store_false",
                    help="with --errors mc|total, skip the chi2 profiles of the flat-valley check (~60 fits a "
                         "spectrum; by default they run); the rows then carry no flat-valley verdict")
    fp.add_argument("--resume", action="store_true",
                    help="continue a batch with the same options: skip spectra already done (failures of the "
                         "machinery are fitted again)")
    fp.add_argument("--retry-failed", action="store_true",
                    help="with --resume: fit again every spectrum whose row is not ok (errors, and "
                         "failures of the machinery given up)")
    fp.add_argument("--add-spectra", action="store_true",
                    help="with --resume: accept spectra that are not in the run yet and fit them into it")
    fp.add_argument("--overwrite", action="store_true", help="start afresh, replacing OUTPUT and its journal")
    fp.add_argument("--save-fits", metavar="DIR", help="folder to write each spectrum's best fit and residuals "
                                                       "to, as FITS")
    fp.add_argument("--plot", metavar="FILE.png", help="a figure: one spectrum's fit and residuals, or for several the distributions "
                                                        "of the fitted parameters")
    fp.add_argument("--quiet", action="store_true", help="no progress bar or summary, nothing of Dask's")
    add_dashboard_option(fp)
    fp.set_defaults(run=_run_fit)


def add_medium_options(parser):
    """--model-medium and --medium: the media of the network's and the spectra's wavelengths, whatever their
    files say (fit, chimap, lsf measure)."""
    parser.add_argument("--model-medium", choices=["air", "vacuum"], dest="model_medium",
                        help="the model's wavelengths are in air or vacuum, whatever its file says (default: the "
                             "file's CTYPE1/AIRORVAC/VACUUM; the authors' trial 7 and 8 are recognised as vacuum); "
                             "the fit converts the model's axis to the spectra's medium (air)")
    parser.add_argument("--medium", choices=["air", "vacuum"],
                        help="the spectra's wavelengths are in air or vacuum, whatever their files say (default: "
                             "each file's AIRORVAC/VACUUM/CTYPE1, SDSS and LAMOST vacuum, else air); vacuum "
                             "spectra are converted to air before the fit (fit's table has a medium column saying "
                             "which and why)")


def add_engine_options(parser):
    """The options of how a network is fitted that every fitting command shares (fit, chimap)."""
    parser.add_argument("--losvd", default="sampled", choices=["sampled", "analytic"],
                        help="native engine: ULySS's pixel-sampled Gaussian (default, agrees with uly_fit) or "
                             "pPXF's analytic Fourier form (exact below 1 px)")
    add_medium_options(parser)
    parser.add_argument("--device", default="auto", metavar="DEVICE",
                        help="native engine: auto (default: a GPU through torch if there is one, else cpu), cpu "
                             "(NumPy), cuda, cuda:N, or torch-cpu (the GPU's code on the CPU, to check it)")
    parser.add_argument("--search", default="auto", choices=list(SEARCHES),
                        help="native engine: which guesses are fitted; auto (default) is adaptive: the two of "
                             "lowest starting chi2 first, every guess where they do not settle it; all: every "
                             "guess to its end, as ULySS (the gdl engine's only search)")
    parser.add_argument("--lsf", metavar="FILE", help="relative LSF injected into the model (ULySS's text format; "
                                                      "see `ulyss-ann lsf`)")
    parser.add_argument("--backend", default="auto", choices=["auto", "pygdl", "subprocess"],
                        help="how Python talks to GDL (auto: a gdl subprocess if installed, else import GDL)")


def add_spectrum_options(parser):
    """The options of how a spectrum is fitted (guesses, fixed values, polynomial, range, masks)."""
    parser.add_argument("--guess", action="append", default=[], metavar="NAME=V1,V2",
                        help="starting values of a parameter, e.g. --guess Teff=4800,5400 (repeatable)")
    parser.add_argument("--fix", action="append", default=[], metavar="NAME=VALUE|TABLE:COLUMN",
                        help="fix a parameter: a value (--fix Logg=2.5) or per spectrum from a table (ECSV, "
                             "CSV or FITS) whose 'id' column (else its first column) holds the file names "
                             "without extension (--fix Logg=phot.ecsv:logg)")
    parser.add_argument("--mdegree", type=int, default=20, help="degree of the multiplicative polynomial (20)")
    parser.add_argument("--range", metavar="LMIN,LMAX", help="wavelength range to fit, Angstrom")
    parser.add_argument("--mask", action="append", default=[], metavar="LO,HI", help="mask a range, Angstrom")
    parser.add_argument("--telluric", metavar="muse|none|FILE",
                        help="telluric bands to mask: muse (the MUSE pipeline's, the default for observed "
                             "spectra), none, or a text file of bands, LO HI [Angstrom] per line, # comments")
    parser.add_argument("--no-telluric-mask", action="store_true", help="the same as --telluric none")
    parser.add_argument("--mask-nad", action="store_true", help="mask 5885-5900 Angstrom (Na D, interstellar "
                                                                "or a star's own near rest)")
    parser.add_argument("--mask-ism", action="store_true", help="mask the interstellar lines: Na D and the DIBs "
                                                                "5780, 6284 Angstrom, at rest +-50 km/s")
    from ulyss_ann.spectra.readers import formats_help  # the registry's readers, those of plug-ins too

    parser.add_argument("--format", metavar="NAME",
                        help="read every spectrum file with this reader instead of the one its content picks "
                             f"(default: each file's own). The readers: {formats_help()}")


def pairs(items, option):
    """NAME=VALUE options as a dict; a name given twice (names are matched case-insensitively) is refused,
    not silently the last one."""
    result, seen = {}, {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not value:
            raise UlyssAnnError(f"{option} {item!r}: expected NAME=VALUE")
        name = name.strip()
        if name.lower() in seen:
            raise UlyssAnnError(f"{option} {seen[name.lower()]!r} and {item!r}: {name} given twice; give it once "
                                f"({'several guesses: NAME=V1,V2' if option == '--guess' else 'one value'})")
        seen[name.lower()] = item
        result[name] = value.strip()
    return result


def parse_floats(text, option):
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise UlyssAnnError(f"{option} {text!r}: expected numbers separated by commas") from None


def fit_options(args):
    """The fit options of the command line, as keyword arguments of fit and fit_spectrum."""
    guesses = {k: parse_floats(v, "--guess") for k, v in pairs(args.guess, "--guess").items()}
    wave_range = None
    if args.range:
        wave_range = parse_floats(args.range, "--range")
        if len(wave_range) != 2 or wave_range[0] >= wave_range[1]:
            raise UlyssAnnError(f"--range {args.range!r}: expected LMIN,LMAX with LMIN < LMAX")
    masks = []
    for item in args.mask:
        band = parse_floats(item, "--mask")
        if len(band) != 2:
            raise UlyssAnnError(f"--mask {item!r}: expected LO,HI")
        masks.append(tuple(band))
    options = dict(guesses=guesses or None, mdegree=args.mdegree, wave_range=wave_range,
                   telluric=_telluric(args), mask_nad=args.mask_nad, mask_ism=args.mask_ism, masks=masks,
                   backend=args.backend)
    options.update({name: getattr(args, name) for name in ("losvd", "lsf", "device", "search", "model_medium", "medium", "format",
                                                              "errors", "nsimul", "seed", "flat_check")
                    if hasattr(args, name)})
    return options


def _telluric(args):
    """--telluric, or --no-telluric-mask (older, kept): None lets the fit choose (the default set, not in
    simulated spectra)."""
    if args.no_telluric_mask and args.telluric not in (None, "none"):
        raise UlyssAnnError(f"--no-telluric-mask and --telluric {args.telluric}: give one of them")
    return "none" if args.no_telluric_mask else args.telluric


def _run_fit(args):
    from ulyss_ann.fitting.batch.driver import fit
    from ulyss_ann.fitting.batch.cluster import Terminated
    from ulyss_ann.fitting.batch.execution import Execution

    options = fit_options(args)
    fixed = pairs(args.fix, "--fix")
    # where and how the batch runs: checked (one line) before the model or any spectrum is read
    execution = Execution(workers=args.workers, scheduler=args.scheduler, retries=args.retries,
                          dashboard=args.dashboard)
    model = model_file(args)
    if args.plot:
        from ulyss_ann.figures import check_figure_path

        check_figure_path(args.plot, "--plot")  # before the fits, not after
    from ulyss_ann.fitting.batch.session_cluster import close_cluster

    try:
        # the summary, not the table (~1.5 KB a spectrum less: the table is in the file), unless --plot draws it
        result = fit(args.files, model, args.output, fixed=fixed or None, execution=execution,
                     resume=args.resume, overwrite=args.overwrite, engine=args.engine,
                     progress=not args.quiet, save_fits=args.save_fits, retry_failed=args.retry_failed,
                     add_spectra=args.add_spectra, return_table=bool(args.plot), **options)
        close_cluster()  # one batch per command: its cluster goes now, not at the interpreter's exit
    except Terminated:  # before KeyboardInterrupt, of which it is one
        print(f"ulyss-ann: stopped by SIGTERM: the spectra finished are in {args.output}.journal.jsonl; "
              "run the same command with --resume to go on", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"ulyss-ann: interrupted: the spectra finished are in {args.output}.journal.jsonl; "
              "run the same command with --resume to go on", file=sys.stderr)
        return 130
    print(f"wrote {args.output}")
    summary = result
    if args.plot:
        from ulyss_ann.fitting.batch.results import BatchSummary

        summary = BatchSummary()
        summary.add(result, ["lmin", "lmax"])
    warn_range_cut(options["wave_range"], summary)
    if args.plot:
        _plot(args, result, model, options, fixed)
    return exit_status(summary)


def warn_range_cut(wave_range, summary):
    """One line on stderr when --range was fitted only in part (the network or the spectra cover less).

    Each row's ``lmin``, ``lmax`` say what was fitted; this line says that it is not what was
    asked for, which a user reading only the medians would not see. ``summary``: the batch's
    :class:`~ulyss_ann.fitting.batch.results.BatchSummary`.
    """
    if wave_range is None:
        return
    import numpy as np

    lo, hi = wave_range
    cut, spectra, least, most = 0, 0, np.inf, -np.inf  # a block of rows at a time: a survey's in little memory
    for lmin, lmax in zip(summary.chunks("lmin"), summary.chunks("lmax")):
        short = (lmin > lo) | (lmax < hi)
        spectra, cut = spectra + short.size, cut + int(np.count_nonzero(short))
        if short.any():
            least, most = min(least, np.min(lmin[short])), max(most, np.max(lmax[short]))
    if not cut:
        return
    fitted = f"{least:.0f}-{most:.0f} Å"
    if spectra == 1:
        said = f"fitted {fitted} only, the part that the network and the spectrum cover"
    else:
        said = (f"{cut} of the {spectra} spectra fitted on less, within {fitted}: the part "
                "that the network and each spectrum cover")
    print(f"ulyss-ann: warning: --range {lo:g},{hi:g}: {said} (lmin, lmax in the table)", file=sys.stderr)


def exit_status(summary):
    """0 when every spectrum is ok, 3 when none is, 1 in between (see the epilog of ``fit --help``);
    ``summary``: the batch's :class:`~ulyss_ann.fitting.batch.results.BatchSummary`."""
    return 0 if summary.fitted == summary.spectra else 3 if summary.fitted == 0 else 1


def _plot(args, table, model, options, fixed):
    """--plot: one spectrum's fit and residuals; for several, the histograms of the batch."""
    from ulyss_ann.figures import save_figure
    from ulyss_ann.fitting.result_figure import plot_fit_results
    from ulyss_ann.model.interpolator import Interpolator

    interp = Interpolator.read(model)
    if len(table) == 1 and table["status"][0] != "ok":
        print(f"ulyss-ann: no figure: the spectrum was not fitted ({table['status'][0]})", file=sys.stderr)
        return
    if len(table) == 1:
        from ulyss_ann.fitting.api import fit_spectrum
        from ulyss_ann.fitting.fit_options import FixedValues

        # The table keeps numbers, not arrays: the one fit is made again in memory, with the
        # same engine and options (deterministic: the same solution), and draws itself.
        values = FixedValues(fixed or None, interp).for_spectrum(str(table["id"][0]))
        engine = engine_of_label(table["engine"][0])  # gdl-subprocess -> gdl
        figure = fit_spectrum(args.files[0], model, engine=engine, fixed=values, **options).plot()
    else:
        figure = plot_fit_results(table, interp)
    save_figure(figure, args.plot)
    print(f"wrote {args.plot}")
