r"""The relative line-spread function measured from the data with the network, as ULySS's ``uly_lsf`` does.

A model's parameters are only as good as the match between its resolution and the
observation's, and that match varies with wavelength (MUSE: 2.82 Å FWHM at 4750 Å,
2.54 Å at 7000 Å) and across a field. :func:`measure_lsf` measures it:

1. the network's best global fit of the spectrum gives its atmospheric parameters
   (all of :func:`~ulyss_ann.fitting.api.fit_spectrum`'s options: ``fixed``, guesses,
   MDEGREE, masks);
2. with those held, the LOSVD (shift ``cz``, width ``sigma``) is fitted in successive
   chunks of ``width`` Å every ``step`` Å — ``uly_lsf``'s chunking, :func:`chunks` —
   each with its own low-degree multiplicative polynomial (``chunk_mdegree``, 3 by
   default: a 200 Å chunk needs far fewer terms than the whole spectrum's 20).

Each chunk gives the relative LSF at its centre: the Gaussian that takes the model to
the observation there, with its errors. ``cz`` is written *relative to the star's
global velocity* (the global fit's ``cz``), so that stars of different radial
velocities combine; ULySS's ``uly_lsf`` writes the chunk's absolute velocity, which is
the same thing for a standard star at rest. Several stars of one instrument are combined
by :func:`~ulyss_ann.fitting.lsf.combine.combine_lsf` (per chunk, a mean of σ² weighted by the
chunks' velocity errors, with the scatter between stars), and
smoothed in wavelength by :func:`~ulyss_ann.spectra.lsf_smooth.smooth_lsf`. The file is ULySS's simple tabular format
(:func:`~ulyss_ann.spectra.line_spread.write_lsf`), which ``uly_lsf_read`` — hence
``uly_lsf_plot`` and ``LSF=`` — and ``fit --lsf`` read.

The native engine measures with pPXF's analytic LOSVD by default (``losvd=None``: the first of the
engine's :attr:`~ulyss_ann.fitting.engine_traits.EngineTraits.losvd_kinds`, ``analytic`` for it):
a relative LSF is often narrower than a pixel, where ULySS's pixel-sampled kernel is
pegged at its 0.3 px floor and cannot follow. ``engine="gdl"`` runs ULySS's own
``uly_lsf`` with the generated component instead
(:func:`~ulyss_ann.fitting.gdl_engine.uly_lsf.measure_lsf_gdl`).
"""

from dataclasses import dataclass

from astropy.table import Table

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.spectra.line_spread import lsf_chunks
from ulyss_ann.spectra.lsf_smooth import lsf_records
from ulyss_ann.fitting.lsf.combine import with_lsf_units

__all__ = ["measure_lsf", "measure_lsf_many", "LSFMeasurement", "chunks", "CHUNK_MDEGREE"]

#: Degree of the multiplicative polynomial of each chunk (a 200 Å chunk of a 2500 Å spectrum
#: fitted with the paper's degree 20 carries ~2 of its degrees; one more for safety).
CHUNK_MDEGREE = 3
def chunks(lo, hi, width, step):
    """``uly_lsf``'s chunks of [lo, hi] as (start, end) pairs
    (:func:`~ulyss_ann.spectra.line_spread.lsf_chunks`); none → error."""
    found = lsf_chunks(lo, hi, width, step)
    if not len(found):
        raise UlyssAnnError(f"the fitted range {lo:.0f}-{hi:.0f} Å is narrower than one chunk of {width:g} Å: give "
                            "a smaller --width")
    return [(float(a), float(b)) for a, b in found]


@dataclass
class LSFMeasurement:
    """The LSF of one spectrum: ``table`` (one row per chunk) and ``fit``, the global fit.

    ``table`` columns: ``wmin``, ``wmax``, ``wave`` (centre) [Å], ``cz`` (relative to the
    star's velocity), ``e_cz``, ``sigma``, ``e_sigma`` [km/s], ``h3``, ``h4``, ``chi2``,
    ``n_pix``.
    """

    spectrum_id: str
    table: Table
    fit: object

    def records(self):
        """The table as LSF records (``wave`` rounded to whole Å, as ULySS's format wants)."""
        return lsf_records(self.table)


def measure_lsf(spectrum, model=None, *, width=200.0, step=100.0, chunk_mdegree=CHUNK_MDEGREE, engine="native",
                losvd=None, fixed=None, wave_range=None, moments=2, **options):
    """Measure the relative LSF of one spectrum against ``model`` (see the module's text).

    Parameters
    ----------
    spectrum : path, Spectrum, specutils spectrum or (wavelength, flux[, error])
        As for :func:`~ulyss_ann.fitting.api.fit_spectrum` (wavelengths in Å unless Quantities).
    model : path-like or Interpolator, optional
        The network: a file, a bundled name (``'example'``, the default, or ``'miles'``), or an Interpolator.
    width, step : float
        Chunk width and step [Å] (``uly_lsf``'s).
    chunk_mdegree : int
        Degree of each chunk's multiplicative polynomial.
    engine : str
        ``native`` (default), ``gdl`` (ULySS's ``uly_lsf`` in GDL), or another registered engine.
    losvd : str, optional
        Native engine: ``analytic`` (default, exact below a pixel) or ``sampled`` (ULySS's); None: the
        engine's own (the gdl engine's is ULySS's sampled kernel, and it refuses another).
    fixed : dict, optional
        Parameters held in the global fit (e.g. ``{"Logg": 4.2}``).
    wave_range : (float, float), optional
        Range to measure [Å] (default: the spectrum's overlap with the network).
    moments : int
        2 (cz, sigma) or 4 (also h3, h4: the GDL engine only).
    **options
        More options of the global fit (``guesses``, ``mdegree``, ``telluric``, ``masks``…). ``medium``
        ('air'/'vacuum': the spectrum's wavelengths, whatever its file says) and ``model_medium`` (the
        network's) hold for the chunks as for the global fit, as in :func:`~ulyss_ann.fitting.api.fit_spectrum`.

    Returns
    -------
    LSFMeasurement
        ``table``: one row per chunk fitted, ``wmin``, ``wmax``, ``wave`` (centre) [Å], ``cz``
        (relative to the global fit's), ``e_cz``, ``sigma``, ``e_sigma`` [km/s], ``h3``, ``h4``,
        ``chi2``, ``n_pix``; ``fit``: the global :class:`~ulyss_ann.fitting.result.FitResult`;
        ``records()``: the rows as ULySS's LSF file holds them.

    Raises
    ------
    UlyssAnnError
        One line, before any fit, for an option no spectrum can make right (a width or step
        not > 0, a width wider than the network, ``moments=4`` natively); after the global
        fit, when no chunk could be fitted.

    See Also
    --------
    ulyss_ann.fit_spectrum : the global fit.

    Examples
    --------
    >>> lsf = ulyss_ann.measure_lsf("star.fits", "gsl_ann_trial7.fits", width=300)   # doctest: +SKIP
    >>> lsf.table["wave", "sigma", "e_sigma"]                                         # doctest: +SKIP
    """
    from ulyss_ann.fitting.api import fit_spectrum
    from ulyss_ann.fitting.preparation import FitPreparation
    from ulyss_ann.fitting.engines import engine_class, engine_for
    from ulyss_ann.fitting.fit_options import make_config
    from ulyss_ann.spectra.inputs import as_spectrum
    from ulyss_ann.spectra.spectrum_medium import spectrum_in_medium

    path, interp, engine, losvd = _setup(model, engine, losvd, width, step, chunk_mdegree, moments, options)
    # format=: the reader forced; medium=: the file's wavelengths taken as air or vacuum, once, here, so that
    # every engine's chunk fits (ULySS's uly_lsf too) see the spectrum the global fit sees (the chunks' edges
    # come from the network's range as its header gives it: ≈1.6 Å off when its medium is converted, which a
    # 200 Å chunk does not feel)
    spectrum = spectrum_in_medium(as_spectrum(spectrum, format=options.get("format")), options.get("medium"))
    # The chunks see what the global fit saw: the same masks, the same injected LSF, if any, and the same
    # media (a chunk without them would sit ≈ 83 km/s from the global fit that has them).
    chunk_options = {k: options[k] for k in ("telluric", "mask_nad", "mask_ism", "masks", "backend", "lsf",
                                             "timeout", "medium", "model_medium") if k in options}
    fit = fit_spectrum(spectrum, interp, engine=engine, fixed=fixed, wave_range=wave_range, losvd=losvd, **options)
    held = dict(fit.params)
    config = make_config(path, interp, engine=engine, mdegree=chunk_mdegree, wave_range=wave_range, losvd=losvd,
                         **chunk_options)
    lo, hi = FitPreparation(config, interp).fit_range(spectrum)
    nominal = chunks(lo, hi, width, step)
    measurer = engine_class(engine).lsf_measurer()  # the engine's own way (uly_lsf), or chunk fits below
    if measurer is not None:
        found = measurer(spectrum, config, interp, [held[n] for n in interp.names], lo, hi, width, step,
                         chunk_mdegree, kmoment=moments)
        rows = [(int(r["chunk"]), r["cz"] - fit.cz, r["e_cz"], r["sigma"], r["e_sigma"], r["h3"], r["h4"],
                 r["chi2"], -1) for r in found]
    else:
        rows = []
        for k, (a, b) in enumerate(nominal):
            config.wave_range = (a, b)
            try:
                part = engine_for(config, interp).fit(spectrum, held)
            except UlyssAnnError:
                continue  # a chunk that cannot be fitted (masked, no signal): absent, as in uly_lsf
            rows.append((k, part.cz - fit.cz, part.e_cz, part.sigma, part.e_sigma, 0.0, 0.0, part.chi2, part.n_pix))
    if not rows:
        raise UlyssAnnError(f"{spectrum.meta.get('id', 'spectrum')}: no chunk of {width:g} Å could be fitted in "
                            f"{lo:.0f}-{hi:.0f} Å")
    table = Table(rows=rows, names=("chunk", "cz", "e_cz", "sigma", "e_sigma", "h3", "h4", "chi2", "n_pix"))
    # Each chunk by its nominal range and centre (uly_lsf's; ULySS's own centre is the
    # nearest pixel's, which differs between spectra and would keep stars' chunks apart).
    table.add_column([nominal[k][0] for k in table["chunk"]], name="wmin", index=1)
    table.add_column([nominal[k][1] for k in table["chunk"]], name="wmax", index=2)
    table.add_column(0.5 * (table["wmin"] + table["wmax"]), name="wave", index=3)
    return LSFMeasurement(str(spectrum.meta.get("id", "")), with_lsf_units(table), fit)


def _setup(model, engine, losvd, width, step, chunk_mdegree, moments, options):
    """The model, the engine and the options that no spectrum can make right, checked once, before any fit."""
    import os

    from ulyss_ann.fitting.engines import engine_class, resolve_engine
    from ulyss_ann.fitting.fit_options import model_path
    from ulyss_ann.model.interpolator import Interpolator

    if not (width > 0 and step > 0):
        raise UlyssAnnError(f"width {width:g} Å and step {step:g} Å: both must be > 0")
    if not (int(chunk_mdegree) == chunk_mdegree and chunk_mdegree >= 0):
        raise UlyssAnnError(f"chunk mdegree {chunk_mdegree!r}: the degree of each chunk's polynomial, an integer "
                            ">= 0")
    if moments not in (2, 4):
        raise UlyssAnnError(f"moments {moments!r}: 2 (cz, sigma) or 4 (with h3, h4)")
    # auto, with no LOSVD asked: an engine with the analytic one (a relative LSF is often below a pixel)
    engine = resolve_engine(engine, options.get("backend", "auto"), losvd=losvd or "analytic")
    kind = engine_class(engine)
    kind.check_lsf_options(losvd, moments)  # e.g. h3, h4 natively, or the analytic LOSVD in uly_lsf
    losvd = losvd or kind.losvd_kinds[0]  # the engine's own: analytic natively, ULySS's sampled in GDL
    path = os.path.abspath(model_path(model))
    interp = model if isinstance(model, Interpolator) else Interpolator.read(path)
    net = interp.wavelength.wavelength
    if width > net[-1] - net[0]:
        raise UlyssAnnError(f"width {width:g} Å: wider than the network's range {net[0]:.0f}-{net[-1]:.0f} Å; "
                            "give a smaller --width (ULySS's uly_lsf: a few hundred Å)")
    return path, interp, engine, losvd


def measure_lsf_many(spectra, model=None, *, wave_range=None, fixed=None, **options):
    """The LSF of each spectrum on common chunks (the range all of them cover), for
    :func:`~ulyss_ann.fitting.lsf.combine.combine_lsf`.

    Every option is checked once, before any fit (one UlyssAnnError): the chunking, the
    engine, the fit's options (guesses, fixed values, MDEGREE, masks), a common range
    narrower than one chunk (naming the spectrum that narrows it). A spectrum that cannot
    be measured (no overlap with the network, no chunk fitted) is skipped with a warning
    naming it; none left → UlyssAnnError.
    """
    import warnings

    from ulyss_ann.fitting.core import FitConfig
    from ulyss_ann.fitting.preparation import FitPreparation
    from ulyss_ann.fitting.engines import require_engine
    from ulyss_ann.fitting.fit_options import FixedValues, check_combination, make_config
    from ulyss_ann.spectra.inputs import as_spectrum
    from ulyss_ann.spectra.spectrum_medium import spectrum_in_medium

    width, step = options.get("width", 200.0), options.get("step", 100.0)
    path, interp, engine, losvd = _setup(model, options.get("engine", "native"), options.get("losvd"),
                                         width, step, options.get("chunk_mdegree", CHUNK_MDEGREE),
                                         options.get("moments", 2), options)
    fit_options = {k: v for k, v in options.items() if k not in ("width", "step", "chunk_mdegree", "engine",
                                                                 "losvd", "moments")}
    config = make_config(path, interp, engine=engine, wave_range=wave_range, losvd=losvd, **fit_options)
    check_combination(config, FixedValues(fixed, interp))
    require_engine(engine, options.get("backend", "auto"))  # after the options, refused on any machine
    spectra = [spectrum_in_medium(as_spectrum(s, format=config.format), config.medium)  # --format, --medium
               for s in (spectra if isinstance(spectra, (list, tuple)) else [spectra])]
    preparation = FitPreparation(FitConfig(model=path, wave_range=wave_range), interp)
    usable = []
    for spectrum in spectra:
        lo, hi = preparation.fit_range(spectrum)
        if hi - lo < width:
            warnings.warn(f"{spectrum.meta.get('id', 'spectrum')}: no LSF (it covers {lo:.0f}-{hi:.0f} Å of the "
                          f"network, less than one chunk of {width:g} Å)", UserWarning, stacklevel=2)
        else:
            usable.append((spectrum, lo, hi))
    if not usable:
        raise UlyssAnnError(f"no spectrum covers one chunk of {width:g} Å of the network")
    common = (max(lo for _, lo, _ in usable), min(hi for _, _, hi in usable))
    if common[1] - common[0] < width:
        narrowest = min(usable, key=lambda u: u[2] - u[1])[0]
        raise UlyssAnnError(f"the range all spectra cover, {common[0]:.0f}-{common[1]:.0f} Å, is narrower than one "
                            f"chunk of {width:g} Å (e.g. {narrowest.meta.get('id', 'a spectrum')} covers less): "
                            "measure those spectra apart, or give a smaller --width")
    measured = []
    for spectrum, _, _ in usable:
        try:
            measured.append(measure_lsf(spectrum, interp, wave_range=common, fixed=fixed, **options))
        except UlyssAnnError as exc:
            warnings.warn(f"{spectrum.meta.get('id', 'spectrum')}: no LSF ({exc})", UserWarning, stacklevel=2)
    if not measured:
        raise UlyssAnnError("no spectrum gave an LSF")
    return measured
