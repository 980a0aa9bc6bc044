"""``ulyss-ann lsf``: relative line-spread functions — measured from the data, smoothed, plotted, or Gaussian.

The ULySS workflow, with the network as the model: ``lsf measure`` (``uly_lsf``),
``lsf smooth`` (``uly_lsf_smooth``), ``lsf plot`` (``uly_lsf_plot``), then
``fit --lsf FILE`` (``LSF=``). ``lsf gaussian`` writes the LSF of an instrument's
nominal FWHM instead (``lsf --fwhm …`` is its older spelling). Errors are UlyssAnnError,
printed by ``main`` as one line.
"""

import argparse
import os

from ulyss_ann.cli.fit import add_medium_options, add_spectrum_options, fit_options, pairs, parse_floats
from ulyss_ann.cli.options import add_model_option, model_file
from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.figures import check_figure_path
from ulyss_ann.fitting.engines import engine_help, engine_names

ACTIONS = ("gaussian", "measure", "smooth", "plot")

MEASURE_DESCRIPTION = """\
Measure the relative LSF of spectra against the network, as ULySS's uly_lsf: the
network's best global fit of each spectrum (its options as in `fit`: --fix, --guess,
--mdegree, masks), then, with the atmospheric parameters held, the LOSVD (shift cz and
width sigma) fitted in chunks of --width A every --step A, each with its own
multiplicative polynomial of degree --chunk-mdegree. Several spectra of one
instrument are combined chunk by chunk (weighted mean; its error is the larger of the
formal one and the scatter between stars / sqrt(n)). cz is relative to each star's
velocity. Written in ULySS's simple tabular format (cz sigma h3 h4 wavelength, then
e_cz e_sigma), which uly_lsf_read (uly_lsf_plot, LSF=) and `fit --lsf` read. Smooth it
before injecting it: --smooth here, or `ulyss-ann lsf smooth`.

--engine native (default) fits with pPXF's analytic LOSVD (exact below a pixel, where
a relative LSF often is); --engine gdl runs ULySS's own uly_lsf with the generated
component (sampled LOSVD, 0.3 px floor; --moments 4 adds h3, h4).

--medium air|vacuum and --model-medium air|vacuum take the spectra's and the network's
wavelengths in that medium whatever their files say, as `fit` does, for the global fit
and every chunk alike."""


def add_lsf_parser(sub):
    lp = sub.add_parser("lsf", help="relative line-spread functions: measure, smooth, plot, or Gaussian",
                        formatter_class=argparse.RawDescriptionHelpFormatter, description="The ULySS workflow, with the network as the model: lsf measure (uly_lsf),\n"
                                    "lsf smooth (uly_lsf_smooth), lsf plot (uly_lsf_plot), then fit --lsf FILE\n"
                                    "(LSF=). lsf gaussian writes the LSF of an instrument's nominal FWHM instead\n"
                                    "(lsf --fwhm ... is its older spelling).",
                        epilog="examples:\n"
                               "  ulyss-ann lsf measure muse/*.fits -m gsl_ann_trial7.fits --fix Logg=phot.ecsv:logg "
                               "-o muse.lsf --plot muse_lsf.png\n"
                               "  ulyss-ann lsf smooth muse.lsf -o muse_smooth.lsf --degree 3\n"
                               "  ulyss-ann lsf plot muse.lsf muse_smooth.lsf -o lsf.png --fwhm 4750:2.82,7000:2.54\n"
                               "  ulyss-ann fit muse/*.fits -m gsl_ann_trial7.fits --lsf muse_smooth.lsf "
                               "--engine native --losvd analytic\n"
                               "  ulyss-ann lsf gaussian --fwhm 4750:2.82,7000:2.54 -m gsl_ann_trial7.fits -o nominal.lsf")
    actions = lp.add_subparsers(dest="action", metavar="ACTION")

    gp = actions.add_parser("gaussian", help="the LSF of a Gaussian instrument of nominal FWHM",
                            formatter_class=argparse.RawDescriptionHelpFormatter,
                            description="Write the relative LSF that takes a model of --model-fwhm to an instrument\n"
                                        "of Gaussian FWHM --fwhm (both in Angstrom): a Gaussian of\n"
                                        "sigma = c/lambda * sqrt(FWHM^2 - FWHM_model^2) / 2.3548 km/s every --step A\n"
                                        "over the model's range. The instrument's stated resolution may not be its\n"
                                        "real one: `lsf measure` tells.")
    gp.add_argument("--fwhm", required=True, metavar="FWHM|WAVE:FWHM,...",
                    help="the instrument's FWHM [A]: one value, or WAVE:FWHM points joined by straight lines "
                         "(extrapolated along the end segments)")
    _model_options(gp)
    gp.add_argument("--step", type=float, default=50.0, help="Angstrom between records (50)")
    gp.add_argument("-o", "--output", required=True, metavar="FILE", help="LSF text file to write")
    gp.set_defaults(run=_run_gaussian)

    mp = actions.add_parser("measure", help="measure the LSF of spectra against the network (uly_lsf)",
                            formatter_class=argparse.RawDescriptionHelpFormatter, description=MEASURE_DESCRIPTION)
    mp.add_argument("files", nargs="+", metavar="SPECTRUM", help="spectrum files (one instrument)")
    _model_options(mp)
    mp.add_argument("--width", type=float, default=200.0, help="chunk width, Angstrom (200)")
    mp.add_argument("--step", type=float, default=100.0, help="chunk step, Angstrom (100)")
    mp.add_argument("--chunk-mdegree", type=int, default=3, help="polynomial degree in each chunk (3)")
    mp.add_argument("--engine", default="native", choices=engine_names(),
                    help=engine_help("native", auto=False) + " (gdl: ULySS's own uly_lsf)")
    mp.add_argument("--losvd", choices=["analytic", "sampled"],
                    help="native engine's LOSVD: analytic (default) or ULySS's sampled Gaussian (the gdl "
                         "engine's)")
    mp.add_argument("--moments", type=int, default=2, choices=[2, 4], help="2: cz, sigma; 4: also h3, h4 (gdl)")
    mp.add_argument("--backend", default="auto", choices=["auto", "pygdl", "subprocess"], help="GDL bridge, with --engine gdl (default: auto)")
    add_spectrum_options(mp)
    add_medium_options(mp)  # as fit's, for the global fit and every chunk alike
    mp.add_argument("--smooth", metavar="polynomial:DEG|median:N",
                    help="write the LSF smoothed (a polynomial of degree DEG, or a running median of N chunks)")
    mp.add_argument("--per-star", metavar="DIR", help="also write each spectrum's own LSF into this folder")
    mp.add_argument("--plot", metavar="FILE.png", help="a figure of the LSF against wavelength")
    mp.add_argument("--fwhm", metavar="NOMINAL", help="the instrument's nominal FWHM (as `lsf gaussian`), drawn "
                                                     "on the figure for comparison")
    mp.add_argument("-o", "--output", required=True, metavar="FILE", help="LSF text file to write: the combined "
                                                                       "LSF (--per-star DIR gets each spectrum's)")
    mp.set_defaults(run=_run_measure)

    sp = actions.add_parser("smooth", help="smooth an LSF file in wavelength (uly_lsf_smooth)")
    sp.add_argument("input", metavar="LSF", help="LSF text file")
    sp.add_argument("--method", default="polynomial", choices=["polynomial", "median"],
                    help="a polynomial in wavelength (uly_lsf_smooth's; default) or a running median")
    sp.add_argument("--degree", type=int, help="polynomial degree (3, as uly_lsf_smooth)")
    sp.add_argument("--window", type=int, help="running median: chunks (odd, 3)")
    sp.add_argument("--plot", metavar="FILE.png", help="a figure of the LSF and its smoothed curve")
    sp.add_argument("-o", "--output", required=True, metavar="FILE", help="smoothed LSF text file to write")
    sp.set_defaults(run=_run_smooth)

    pp = actions.add_parser("plot", help="draw LSF files against wavelength (uly_lsf_plot)")
    pp.add_argument("inputs", nargs="+", metavar="LSF", help="one or two LSF files: the first as points (with its "
                                                            "errors), the second as a line (e.g. smoothed)")
    pp.add_argument("--fwhm", metavar="NOMINAL", help="the instrument's nominal FWHM, for comparison")
    _model_options(pp)
    pp.add_argument("-o", "--output", required=True, metavar="FILE", help="figure to write (png, pdf, svg)")
    pp.set_defaults(run=_run_plot)
    lp.set_defaults(run=lambda args: lp.print_help() or 0)


def spell_lsf_gaussian(argv):
    """``lsf --fwhm …`` (the spelling before ``lsf measure`` existed) as ``lsf gaussian --fwhm …``."""
    argv = list(argv)
    if argv[:1] == ["lsf"] and len(argv) > 1 and argv[1].startswith("-") and argv[1] not in ("-h", "--help"):
        argv.insert(1, "gaussian")
    return argv


def _model_options(parser):
    add_model_option(parser)
    parser.add_argument("--model-fwhm", type=float, metavar="FWHM",
                        help="the model's FWHM [A] (default: the model's FWHM card, else 2.0, the GSL networks')")


def _model(args):
    from ulyss_ann.model.interpolator import Interpolator

    interp = Interpolator.read(model_file(args))
    fwhm = args.model_fwhm
    if fwhm is None:
        fwhm = float(dict((c[0], c[1]) for c in interp.meta).get("FWHM", 2.0))
    return interp, fwhm


def fwhm_function(text):
    """'2.6' -> constant; '4750:2.82,7000:2.54' -> straight lines through the points."""
    import numpy as np

    if ":" not in text:
        value = parse_floats(text, "--fwhm")
        if len(value) != 1:
            raise UlyssAnnError(f"--fwhm {text!r}: one value, or WAVE:FWHM,WAVE:FWHM...")
        return value[0]
    points = sorted(parse_floats(p.replace(":", ","), "--fwhm") for p in text.split(","))
    if any(len(p) != 2 for p in points) or len(points) < 2:
        raise UlyssAnnError(f"--fwhm {text!r}: give at least two WAVE:FWHM points")
    wave, fwhm = np.array(points).T

    def fwhm_at(w):
        inside = np.interp(w, wave, fwhm)
        low = fwhm[0] + (w - wave[0]) * (fwhm[1] - fwhm[0]) / (wave[1] - wave[0])
        high = fwhm[-1] + (w - wave[-1]) * (fwhm[-1] - fwhm[-2]) / (wave[-1] - wave[-2])
        return np.where(w < wave[0], low, np.where(w > wave[-1], high, inside))
    return fwhm_at


def _nominal(text, interp, model_fwhm, step=50.0):
    import numpy as np

    from ulyss_ann.spectra.line_spread import gaussian_lsf

    wave = interp.wavelength.wavelength
    records = np.arange(np.floor(wave[0] / step) * step, wave[-1] + step, step)
    return gaussian_lsf(fwhm_function(text), model_fwhm, records)


def _run_gaussian(args):
    from ulyss_ann.spectra.line_spread import write_lsf

    interp, model_fwhm = _model(args)
    lsf = _nominal(args.fwhm, interp, model_fwhm, args.step)
    write_lsf(lsf, args.output, comment=f"instrument FWHM {args.fwhm} A, model FWHM {model_fwhm} A "
                                        f"({os.path.basename(interp.path or 'model')})")
    print(f"wrote {args.output}: {len(lsf)} records {lsf['wave'][0]:.0f}-{lsf['wave'][-1]:.0f} A, "
          f"sigma {lsf['sigma'].min():.1f}-{lsf['sigma'].max():.1f} km/s")
    return 0


def _smoothing(text):
    if not text:
        return None
    method, _, value = text.partition(":")
    if method not in ("polynomial", "median") or not value.isdigit():
        raise UlyssAnnError(f"--smooth {text!r}: polynomial:DEGREE or median:CHUNKS (e.g. polynomial:3)")
    return {"method": method, ("degree" if method == "polynomial" else "window"): int(value)}


def _run_measure(args):
    from ulyss_ann.fitting.lsf.combine import combine_lsf
    from ulyss_ann.fitting.lsf.measure import measure_lsf_many
    from ulyss_ann.fitting.fit_options import writable_folder
    from ulyss_ann.spectra.lsf_smooth import lsf_records, sigma_floor_for, smooth_lsf
    from ulyss_ann.spectra.line_spread import write_lsf

    interp, model_fwhm = _model(args)
    smoothing = _smoothing(args.smooth)
    if args.plot:
        check_figure_path(args.plot, "--plot")
    writable_folder(os.path.dirname(os.path.abspath(args.output)), "-o")  # before the fits, not after
    if args.per_star:
        writable_folder(args.per_star, "--per-star")
    nominal = _nominal(args.fwhm, interp, model_fwhm) if args.fwhm else None
    options = fit_options(args)
    options.pop("losvd", None)  # given below, for the chunks and the global fit alike
    measured = measure_lsf_many(args.files, interp, width=args.width, step=args.step,
                                chunk_mdegree=args.chunk_mdegree, engine=args.engine,
                                losvd=args.losvd,  # None: the engine's own (analytic natively, sampled in GDL)
                                moments=args.moments, fixed=pairs(args.fix, "--fix") or None, **options)
    combined = combine_lsf(measured)
    floor = sigma_floor_for(measured)  # 5 % of a pixel at least: see lsf_records
    smoothed = smooth_lsf(combined, sigma_floor=floor, **smoothing) if smoothing else None
    written = smoothed if smoothed is not None else combined
    header = (f"measured by ulyss-ann lsf measure ({args.engine}) against {os.path.basename(interp.path)}: "
              f"{len(measured)} spectra, chunks {args.width:g} A every {args.step:g} A"
              + (f", smoothed ({args.smooth})" if smoothing else ""))
    records = lsf_records(written, floor)
    write_lsf(records, args.output, comment=header + f"; sigma >= {floor:.1f} km/s")
    if args.per_star:
        for measurement in measured:
            stem = measurement.spectrum_id.replace(os.sep, "_") or "spectrum"
            write_lsf(lsf_records(measurement.table, floor), os.path.join(args.per_star, f"{stem}.lsf"),
                      comment=f"{measurement.spectrum_id}: {measurement.fit.summary().splitlines()[0]}")
    print(f"wrote {args.output}: {len(records)} chunks {records['wave'][0]:.0f}-{records['wave'][-1]:.0f} A from "
          f"{len(measured)} spectra; sigma {min(records['sigma']):.1f}-{max(records['sigma']):.1f} km/s, "
          f"cz {min(records['cz']):.1f}-{max(records['cz']):.1f} km/s")
    if args.plot:
        _save(measured, combined, smoothed, nominal, args.plot)
    return 0


def _run_smooth(args):
    from ulyss_ann.spectra.lsf_smooth import lsf_records, smooth_lsf
    from ulyss_ann.spectra.line_spread import read_lsf, write_lsf

    unused = "--window" if args.method == "polynomial" and args.window is not None else \
        "--degree" if args.method == "median" and args.degree is not None else None
    if unused:
        raise UlyssAnnError(f"{unused} does nothing with --method {args.method} (--degree: polynomial, "
                            "--window: median)")
    if args.plot:
        check_figure_path(args.plot, "--plot")
    degree, window = args.degree if args.degree is not None else 3, args.window if args.window is not None else 3
    lsf = read_lsf(args.input)
    smoothed = smooth_lsf(lsf, method=args.method, degree=degree, window=window)
    how = f"polynomial of degree {degree}" if args.method == "polynomial" else f"median of {window}"
    write_lsf(lsf_records(smoothed), args.output, comment=f"{args.input} smoothed ({how})")
    print(f"wrote {args.output}: {len(smoothed)} records, sigma {min(smoothed['sigma']):.1f}-"
          f"{max(smoothed['sigma']):.1f} km/s")
    if args.plot:
        _save((), lsf, smoothed, None, args.plot)
    return 0


def _run_plot(args):
    from ulyss_ann.spectra.line_spread import read_lsf

    if len(args.inputs) > 2:
        raise UlyssAnnError(f"lsf plot: {len(args.inputs)} files given; one or two (measured, then smoothed)")
    check_figure_path(args.output, "-o")
    tables = [read_lsf(path) for path in args.inputs]
    nominal = None
    if args.fwhm:
        interp, model_fwhm = _model(args)
        nominal = _nominal(args.fwhm, interp, model_fwhm)
    _save((), tables[0], tables[1] if len(tables) > 1 else None, nominal, args.output)
    return 0


def _save(measured, combined, smoothed, nominal, path):
    from ulyss_ann.figures import save_figure
    from ulyss_ann.fitting.result_figure import plot_lsf

    save_figure(plot_lsf(measured, combined, smoothed, nominal), path)
    print(f"wrote {path}")
