"""χ² maps and profiles, as ULySS's ``uly_chimap`` makes them, and the check for a flat χ² valley.

A χ² map holds two of the network's parameters fixed at the nodes of a grid and fits
everything else at each node (the other parameters from the usual guesses, cz, σ and
the polynomial), exactly as a fit with ``fixed=`` does; a profile does the same along one
parameter. All nodes go to the engine in one :meth:`~ulyss_ann.fitting.core.FitEngine.fit_many`
call: the native engine fits them together in lock-step (they share the spectrum's grid
and fixed flags), the GDL engine one ``uly_fit`` after another (slow: seconds a node).

What a node stores:

* ``chi2`` — the reduced χ² each fit reports (ULySS's map: ``solution.chisq``);
* ``sum_sq`` — Σr² over the fitted pixels, r = (data − fit)/σ (σ = 1 without errors):
  the reduced χ² of maps at different numbers of free parameters are not comparable, Σr² is;
* ``dchi2`` — Δχ² = (Σr² − Σr²_free) / ``noise_scale``, against the free fit of the same
  spectrum. ``noise_scale`` is the free fit's reduced χ² when above 1 (a spectrum the
  model does not fit to its noise counts its residual as noise, so that Δχ² = 1 is
  still about one standard error: the MUSE star's reduced χ² is ~15), and Σr²/dof
  without errors (MILES: ULySS reports χ² = 0 there and scales its errors the same way).
  A node below the free fit (Δχ² < 0) means the free fit stopped in a local minimum.

A χ² map is about χ²: the free fit and the nodes are fitted with MPFIT's errors
(``errors="formal"``, ``flat_check=False``) whatever ``errors`` says, since refits or flat
checks at every node would cost ``nsimul`` fits a node and change no χ².

cz and σ cannot be mapped yet: both engines always fit them (ULySS's ``KFIX`` is not
passed through), so only the network's parameters are axes.

The file (:meth:`ChiMap.write`) is FITS laid out as ``uly_chimap``'s, so that
``uly_chimap_read`` / ``uly_chimap_plot`` in GDL read it: HDU 0 the reduced χ² (NAXIS1 along x,
``CTYPE1``/``CUNIT1`` the x parameter's name and unit, the same for y), HDU 1 the x nodes,
HDU 2 the y nodes (absent for a profile), then ``SUMSQ`` and ``DCHI2`` images and the free
fit in header cards (``B_TEFF``… its values, ``E_TEFF``… their formal errors, ``CHI2FREE``,
``SUMSQFRE``, ``NOISESCL``).
"""

import os
from dataclasses import dataclass, field

import numpy as np

from ulyss_ann.errors import UlyssAnnError
# the computation with an engine already open, and the flat check, live where core can reach them (no cycle)
from ulyss_ann.fitting.valley import fit_nodes, noise_scale, scaled_error, sum_of_squares

__all__ = ["ChiMap", "chi2_map", "chi2_profile", "parse_axis"]



@dataclass(repr=False, eq=False)
class ChiMap:
    """χ² over a grid of one (a profile) or two fixed parameters, the others optimised at each node.

    Attributes
    ----------
    x_name, y_name : str
        The parameters on the axes, as the network names them (``y_name`` None for a profile).
    x, y : ndarray
        Their node values (``y`` None for a profile).
    chi2, sum_sq, dchi2 : ndarray
        Per node (shape ``(len(y), len(x))``, or ``(len(x),)``): reduced χ², Σr², Δχ² (see
        the module). NaN where a node's fit failed (:attr:`failures`).
    best : FitResult
        The free fit of the same spectrum with the same options.
    noise_scale : float
        What Δχ² is divided by (1 for a spectrum fitted to its noise).
    units : dict
        Parameter name -> unit.
    failures : list of str
        ``"x=…, y=…: why"`` for each node whose fit failed.
    """

    x_name: str
    x: np.ndarray
    y_name: str
    y: np.ndarray
    chi2: np.ndarray
    sum_sq: np.ndarray
    dchi2: np.ndarray
    best: object
    noise_scale: float
    units: dict
    failures: list = field(default_factory=list)

    @property
    def names(self):
        return (self.x_name,) if self.y_name is None else (self.x_name, self.y_name)

    @property
    def scaled_errors(self):
        """The free fit's errors of the axes' parameters, scaled as Δχ² is (:func:`scaled_error`)."""
        return {name: scaled_error(self.best, name, self.noise_scale) for name in self.names}

    @property
    def best_node(self):
        """The node of least Σr², as ``{name: value}`` (NaN nodes ignored)."""
        if np.all(np.isnan(self.sum_sq)):
            raise UlyssAnnError("every node's fit failed: " + "; ".join(self.failures[:3]))
        index = np.unravel_index(np.nanargmin(self.sum_sq), self.sum_sq.shape)
        if self.y_name is None:
            return {self.x_name: float(self.x[index[0]])}
        return {self.x_name: float(self.x[index[1]]), self.y_name: float(self.y[index[0]])}

    def plot(self, figure=None):
        """A figure (matplotlib's object API): Δχ² contours with the free fit marked, or the profile."""
        from ulyss_ann.fitting.chimap.figure import plot_chimap

        return plot_chimap(self, figure)

    def write(self, path, overwrite=False):
        """Write the map as FITS, in ``uly_chimap``'s layout (see the module); returns ``path``."""
        from astropy.io import fits

        from ulyss_ann.fitting.result_fits import header_text
        from ulyss_ann.fitting.safe_files import write_beside

        if not str(path).lower().endswith((".fits", ".fit", ".fits.gz")):
            raise UlyssAnnError(f"{path}: a χ² map is written as FITS (uly_chimap's layout); end the name in .fits")
        if os.path.exists(path) and not overwrite:
            raise UlyssAnnError(f"{path}: exists; add --overwrite (overwrite=True) to replace it")
        primary = fits.PrimaryHDU(np.asarray(self.chi2, np.float64))
        header = primary.header
        for axis, (name, nodes) in enumerate(((self.x_name, self.x), (self.y_name, self.y)), start=1):
            if name is None:
                continue
            header[f"CTYPE{axis}"] = header_text(name)
            if self.units.get(name):
                header[f"CUNIT{axis}"] = header_text(self.units[name])
        header["BUNIT"] = ("", "reduced chi2 of the fit at each node")
        best = self.best
        for name, value in best.params.items():
            key = _card(name)
            header[f"B_{key}"] = (value, f"free fit's {name}")
            header[f"E_{key}"] = (best.formal_errors[name], "its formal error")  # a given free fit's may be mc
        header["CHI2FREE"] = (best.chi2, "reduced chi2 of the free fit")
        header["SUMSQFRE"] = (sum_of_squares(best), "sum of squared residuals of the free fit")
        header["NOISESCL"] = (self.noise_scale, "DCHI2 = (SUMSQ - SUMSQFRE) / NOISESCL")
        header["SPECTRUM"] = header_text(best.spectrum_id)
        header["MODEL"] = header_text(best.model)
        header["ENGINE"] = header_text(best.engine)
        hdus = [primary, fits.ImageHDU(np.asarray(self.x, np.float64), name="XNODE")]
        if self.y is not None:
            hdus.append(fits.ImageHDU(np.asarray(self.y, np.float64), name="YNODE"))
        hdus += [fits.ImageHDU(np.asarray(self.sum_sq, np.float64), name="SUMSQ"),
                 fits.ImageHDU(np.asarray(self.dchi2, np.float64), name="DCHI2")]
        try:
            write_beside(path, lambda temporary: fits.HDUList(hdus).writeto(temporary), option="-o")
        except OSError as exc:
            raise UlyssAnnError(f"{path}: cannot write ({exc.strerror or exc})") from None
        return path

    def __repr__(self):
        nodes = "x".join(str(len(v)) for v in (self.x, self.y) if v is not None)
        best = ", ".join(f"{k}={v:g}" for k, v in self.best_node.items()) if np.any(np.isfinite(self.sum_sq)) else "-"
        return (f"<ChiMap {' x '.join(self.names)} ({nodes} nodes) of {self.best.spectrum_id}: least χ² at "
                f"{best}, noise scale {self.noise_scale:.3g}, {len(self.failures)} failed>")


def _card(name):
    """A parameter name as a FITS keyword tail (Fe/H -> FE_H)."""
    return "".join(c if c.isalnum() else "_" for c in name.upper())[:4]


def parse_axis(text, option):
    """``NAME=LO:HI:N`` (N nodes from LO to HI) or ``NAME=V1,V2,…`` as ``(name, values)``; one line if malformed."""
    name, sep, spec = str(text).partition("=")
    if not sep or not name.strip() or not spec.strip():
        raise UlyssAnnError(f"{option} {text!r}: expected NAME=LO:HI:N (e.g. {option} Teff=4500:6500:21) "
                            "or NAME=V1,V2,…")
    try:
        if ":" in spec:
            lo, hi, n = spec.split(":")
            lo, hi, count = float(lo), float(hi), float(n)
            if not (count >= 2 and count.is_integer()):
                raise UlyssAnnError(f"{option} {text!r}: N = {n.strip()} nodes; give an integer of 2 or more")
            values = np.linspace(lo, hi, int(count))
        else:
            values = np.array([float(v) for v in spec.split(",")])
    except ValueError:
        raise UlyssAnnError(f"{option} {text!r}: expected NAME=LO:HI:N with numbers LO, HI and an integer N, "
                            "or NAME=V1,V2,…") from None
    return name.strip(), values


def _checked_axis(interp, axis, what):
    """``(name, values)`` checked against the network: a parameter of it, two or more increasing values
    inside its training bounds; the name as the network spells it."""
    try:
        name, values = axis
    except (TypeError, ValueError):
        raise UlyssAnnError(f"{what}: give (name, values), e.g. ('Teff', [4500, 5000, 5500])") from None
    if str(name).lower() in ("cz", "sigma"):
        raise UlyssAnnError(f"{what} {name}: both engines always fit cz and sigma, so they cannot be mapped yet; "
                            f"map the network's parameters ({', '.join(interp.names)})")
    parameter = interp.parameters[interp.parameter_index(str(name))]  # ParameterError names the parameters
    try:
        values = np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError):
        raise UlyssAnnError(f"{what} {parameter.name}: the values are not numbers") from None
    if values.size < 2 or not np.all(np.isfinite(values)) or np.any(np.diff(values) <= 0):
        raise UlyssAnnError(f"{what} {parameter.name}: give 2 or more finite values in increasing order")
    if values[0] < parameter.low or values[-1] > parameter.high:
        raise UlyssAnnError(f"{what} {parameter.name} = {values[0]:g}…{values[-1]:g}: outside the network's "
                            f"training bounds [{parameter.low:g}, {parameter.high:g}] {parameter.unit}; "
                            "map inside them")
    return parameter.name, values


def _setup(spectrum, model, engine, fixed, options):
    """The call's FitConfig, the engine, network, spectrum and base fixed values, every option checked as
    fit_spectrum does."""
    from ulyss_ann.fitting.api import configured_call

    if options.get("save_fits"):
        raise UlyssAnnError("save_fits (--save-fits): a χ² map fits the spectrum at every node; it saves no "
                            "best fits (fit the spectrum for that)")
    return configured_call(spectrum, model, engine, fixed, options)


def _compute(spectrum, model, axes, engine, fixed, options, free_fit=None):
    # about χ²: no refits nor flat checks at the free fit or any node (each would cost nsimul fits more)
    options = dict(options, errors="formal", flat_check=False)
    config, fitter, interp, spectrum, base = _setup(spectrum, model, engine, fixed, options)
    axes = [_checked_axis(interp, axis, what) for axis, what in zip(axes, ("x", "y"))]
    names = [name for name, _ in axes]
    if len(set(names)) < len(names):
        raise UlyssAnnError(f"x and y are both {names[0]}: map two different parameters")
    clash = sorted(set(names) & set(base))
    if clash:
        raise UlyssAnnError(f"{clash[0]}: both fixed and mapped; drop --fix {clash[0]}=… or map another parameter")
    # the free fit: the reference of Δχ², and the errors of the flat check (given: one fit fewer)
    # this call's options, passed on: another thread may give the shared engine its own meanwhile
    best = free_fit if free_fit is not None else fitter.fit(spectrum, base, config=config)
    grids = np.meshgrid(*[values for _, values in reversed(axes)], indexing="ij")  # (ny, nx): y slowest
    points = np.column_stack([g.ravel() for g in grids])[:, ::-1]                 # columns x[, y]
    chi2, sum_sq, failures = fit_nodes(fitter, spectrum, base, names, points, config=config)
    shape = grids[0].shape
    scale = noise_scale(best, config.mdegree)
    x_name, x = axes[0]
    y_name, y = axes[1] if len(axes) > 1 else (None, None)
    return ChiMap(x_name=x_name, x=x, y_name=y_name, y=y, chi2=chi2.reshape(shape), sum_sq=sum_sq.reshape(shape),
                  dchi2=((sum_sq - sum_of_squares(best)) / scale).reshape(shape), best=best, noise_scale=scale,
                  units={p.name: p.unit for p in interp.parameters}, failures=failures)


def chi2_map(spectrum, model=None, x=None, y=None, *, engine="auto", fixed=None, **options):
    """χ² over a grid of two parameters, the others optimised at each node (``uly_chimap``); a :class:`ChiMap`.

    Parameters
    ----------
    spectrum : path, Spectrum, specutils spectrum, or (wavelength, flux[, error])
        As :func:`~ulyss_ann.fitting.api.fit_spectrum` takes it.
    model : path-like, bundled name or Interpolator
    x, y : (name, values)
        The parameters mapped and their nodes, increasing, inside the network's bounds,
        e.g. ``x=("Teff", np.linspace(4500, 6500, 21))``.
    engine, fixed, **options
        As :func:`~ulyss_ann.fitting.api.fit_spectrum` (``fixed`` may hold the parameters not mapped).
        The GDL engine makes one uly_fit per node (seconds each); the native one fits the nodes together.

    A map of N nodes costs N + 1 fits (the free fit is the reference of Δχ²).
    """
    if x is None or y is None:
        raise UlyssAnnError("a χ² map needs two axes, x=(name, values) and y=(name, values) "
                            "(chi2_profile: one)")
    return _compute(spectrum, model, [x, y], engine, fixed, options)


def chi2_profile(spectrum, model=None, name=None, values=None, *, engine="auto", fixed=None, free_fit=None,
                 **options):
    """χ² along one parameter held at ``values``, the others optimised (the 1-D :func:`chi2_map`); a ChiMap
    with ``y`` None. N nodes cost N + 1 fits, or N given ``free_fit``: the FitResult of this spectrum
    with these very options (the reference of Δχ²; not checked to be one)."""
    return _compute(spectrum, model, [(name, values)], engine, fixed, options, free_fit)
