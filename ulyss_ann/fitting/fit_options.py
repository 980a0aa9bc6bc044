"""The options of a fit, checked before any work: the model, the configuration, fixed values.

Both ways in — :func:`~ulyss_ann.fitting.api.fit_spectrum` and
:func:`~ulyss_ann.fitting.batch.driver.fit` — go through these, so that an unknown option, a
parameter the network does not have or a value that is not a number is refused the
same way, in one line, before a spectrum is touched.
"""

import os
import warnings

import numpy as np

from ulyss_ann.errors import UlyssAnnError, first_line
from ulyss_ann.fitting.core import FitConfig
from ulyss_ann.model.checksum import file_sha256
from ulyss_ann.fitting.masks import resolve_telluric
from ulyss_ann.fitting.preparation import MIN_OVERLAP
from ulyss_ann.model.bundled import bundled_path, interpolator_file
from ulyss_ann.model.interpolator import Interpolator
from ulyss_ann.model.limits import max_pixels
from ulyss_ann.model.line_centres import warn_if_lines_contradict
from ulyss_ann.model.medium import check_medium
from ulyss_ann.spectra.inputs import is_number
from ulyss_ann.spectra.line_spread import read_lsf
from ulyss_ann.spectra.readers import check_format

__all__ = ["make_config", "check_combination", "model_path", "writable_folder", "check_output_folder", "FixedValues"]


def model_path(model):
    """The file of ``model``: a path, a bundled name (``example``, ``miles``), an Interpolator read from a
    file, or None for the bundled example. A missing file that is no bundled name: one-line error."""
    if model is None:
        return bundled_path("example")
    if isinstance(model, Interpolator):
        if model.path is None:
            raise UlyssAnnError("the interpolator must come from a file (Interpolator.read, or write it first)")
        return model.path
    return interpolator_file(model)


def make_config(model, interp, **options):
    """A :class:`FitConfig` for ``model`` (read as ``interp``), every option checked up front.

    Refused in one line, before a spectrum is touched: unknown options; guesses of
    parameters the network does not have, not numbers, or outside its bounds; a
    negative MDEGREE; a range, or masks, that are not two increasing numbers, or a range
    outside the network's; options that do nothing with the engine (``losvd`` or a GPU
    ``device`` with the GDL engine, a GDL ``backend`` with the native one); an unknown
    ``device``, or a GPU one with the analytic LOSVD; a ``save_fits`` folder that
    cannot be written. The model's SHA-256 is computed here, once.
    """
    from dataclasses import fields

    known = {f.name for f in fields(FitConfig)} - {"model", "model_sha256"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise UlyssAnnError(f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: "
                            f"the fit takes {', '.join(sorted(known))}")
    max_pixels()  # a malformed ULYSS_ANN_MAX_PIXELS is the run's mistake, not an error row of each spectrum
    options["guesses"] = _guesses(options.get("guesses"), interp, model) or None
    options["mdegree"] = _mdegree(options.get("mdegree", 20))
    options["masks"] = tuple(_band(m, "mask") for m in (options.get("masks") or ()))
    if options.get("wave_range") is not None:
        options["wave_range"] = _fit_range(options["wave_range"], interp, model)
    # a set's name or a file resolved now, once: a malformed file is refused here, in one line
    options["telluric"] = resolve_telluric(options.get("telluric"))
    for flag in ("mask_nad", "mask_ism", "flat_check"):
        if flag in options:
            options[flag] = bool(options[flag])  # numpy booleans too: the run's record is JSON
    _check_engine_options(options)
    _check_error_options(options)
    options["model_medium"] = check_medium(options.get("model_medium"), "model_medium (--model-medium)")
    options["medium"] = check_medium(options.get("medium"), "medium (--medium)")
    options["format"] = check_format(options.get("format"))  # an unknown reader: refused before any file is read
    if options.get("lsf") is not None:
        options["lsf"] = os.path.abspath(options["lsf"])
        read_lsf(options["lsf"])  # a bad LSF file is refused now, in one line, not in each spectrum's fit
        if options.get("losvd", "sampled") == "sampled":  # the gdl engine's too: it has no other
            warnings.warn("lsf (--lsf) with ULySS's sampled LOSVD (the gdl engine, or --losvd sampled): once the "
                          "LSF takes the broadening, sigma is pegged at the kernel's 0.3 px floor and cz comes out "
                          "biased beyond its error (+5 to +9 km/s ± 0.9 on simulated MUSE spectra); fit with "
                          "--engine native --losvd analytic", UserWarning, stacklevel=3)
    if options.get("save_fits"):
        options["save_fits"] = writable_folder(options["save_fits"], "save_fits (--save-fits)")
    sha256 = file_sha256(model)
    # here, where every fit's options are checked once (not per spectrum, not on Dask's workers): a warning
    # when the network's lines contradict the medium its header states (ulyss_ann.model.line_centres)
    warn_if_lines_contradict(interp, sha256, options["model_medium"])
    return FitConfig(model=os.path.abspath(model), model_sha256=sha256, **options)


def _check_error_options(options):
    """``errors`` one of ERROR_METHODS, ``nsimul`` an integer >= MIN_NSIMUL, ``seed`` an integer >= 0."""
    from ulyss_ann.fitting.resampling import ERROR_METHODS, MIN_NSIMUL

    method = options.get("errors", "formal")
    if method not in ERROR_METHODS:
        raise UlyssAnnError(f"errors (--errors) {method!r}: choose {', '.join(sorted(ERROR_METHODS))}")
    for name, least in (("nsimul", MIN_NSIMUL), ("seed", 0)):
        value = options.get(name)
        if value is None:
            continue
        integral = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
        if not integral or value < least:
            what = "the refits per spectrum" if name == "nsimul" else "the perturbations' seed"
            raise UlyssAnnError(f"{name} (--{name}) {value!r}: give {what}, an integer >= {least}")
        options[name] = int(value)


def check_combination(config, fixed_values):
    """Refuse options that contradict each other: guesses of a parameter that is fixed."""
    both = sorted(set(config.guesses or {}) & set(fixed_values.names))
    if both:
        raise UlyssAnnError(f"{', '.join(both)}: both guessed and fixed; a fixed parameter takes no guesses "
                            f"(drop --guess {both[0]}=… or --fix {both[0]}=…)")


def _in_bounds(parameter, values, what, model):
    """UlyssAnnError unless every value lies within the parameter's training bounds."""
    values = [float(v) for v in np.atleast_1d(values)]
    if any(not np.isfinite(v) or v < parameter.low or v > parameter.high for v in values):
        shown = f"{', '.join(f'{v:g}' for v in values)} {parameter.unit}".rstrip()
        raise UlyssAnnError(f"{what} {parameter.name} = {shown} outside the limits [{parameter.low:g}, "
                            f"{parameter.high:g}] of {os.path.basename(str(model))}")


def _guesses(given, interp, model):
    guesses = {}
    for name, values in (given or {}).items():
        name = interp.names[interp.parameter_index(name)]  # ParameterError names the parameters
        try:
            guesses[name] = [float(v) for v in np.atleast_1d(values)]
        except (TypeError, ValueError):
            raise UlyssAnnError(f"guesses of {name}: {values!r} are not numbers") from None
        if not guesses[name]:
            raise UlyssAnnError(f"guesses of {name}: none given; give at least one value")
        _in_bounds(interp.parameters[interp.parameter_index(name)], guesses[name], "guess", model)
    return guesses


def _mdegree(value):
    integral = isinstance(value, (int, np.integer)) or (isinstance(value, (float, np.floating))
                                                        and float(value).is_integer())
    if isinstance(value, (bool, np.bool_)) or not integral or value < 0:
        raise UlyssAnnError(f"mdegree (--mdegree) {value!r}: give the degree of the multiplicative polynomial, "
                            "an integer >= 0 (the paper's 20; 0: a constant scale)")
    return int(value)


def _band(band, what):
    try:
        lo, hi = (float(v) for v in band)
    except (TypeError, ValueError):
        raise UlyssAnnError(f"{what} {band!r}: give two wavelengths in Angstrom, LO,HI") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise UlyssAnnError(f"{what} {lo:g},{hi:g}: give LO,HI with LO < HI, in Angstrom")
    return (lo, hi)


def _fit_range(wave_range, interp, model):
    lo, hi = _band(wave_range, "wave_range (--range)")
    net = interp.wavelength.wavelength
    if min(hi, net[-1]) - max(lo, net[0]) < MIN_OVERLAP:
        raise UlyssAnnError(f"wave_range (--range) {lo:g}-{hi:g} Å: the network {os.path.basename(str(model))} covers "
                            f"{net[0]:.1f}-{net[-1]:.1f} Å; give a range that overlaps it by {MIN_OVERLAP:g} Å "
                            "or more")
    return (lo, hi)


def _check_engine_options(options):
    """The engine's own checks of the options only some engines take (losvd, device, backend…)."""
    from ulyss_ann.fitting.engines import engine_class

    engine_class(options.get("engine", "gdl")).check_options(options)


def writable_folder(folder, what):
    """``folder`` made if need be and checked writable (its absolute path), or a one-line UlyssAnnError naming ``what``."""
    folder = os.path.abspath(os.fspath(folder))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise UlyssAnnError(f"{what} {folder}: cannot create it ({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK):
        raise UlyssAnnError(f"{what} {folder}: not writable")
    return folder


def check_output_folder(path):
    """Refuse, in one line, a file ``path`` whose folder is not there or not writable: before the work, not after.

    Not made on the user's behalf (unlike :func:`writable_folder`'s folders of many files): a mistyped
    folder in one file's name is more likely than a wish for a new one.
    """
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    if not os.path.isdir(folder):
        raise UlyssAnnError(f"{path}: its folder {folder} does not exist; create it, or give another name")
    if not os.access(folder, os.W_OK):
        raise UlyssAnnError(f"{path}: its folder {folder} is not writable")


class FixedValues:
    """Values of fixed parameters: a constant, or per spectrum from a table column.

    ``spec`` maps a parameter name to a number, to ``"table.ecsv:column"`` (the table's
    ``id`` column — else its first column — is matched to the spectrum id, the file
    name without extension; a column with a unit is converted to the parameter's, log g
    in m/s2 or dex(m/s2) to dex(cm/s2), and one that does not convert is refused), or to
    a dict {spectrum id: value}. A parameter named twice (``Logg`` and ``logg``) is refused. Constants outside the
    network's bounds are refused here; a per-spectrum value outside them, missing, or
    ambiguous (the id twice in the table with different values; or two inputs with the
    same file name, whose ids then carry their folder, and a table that has the bare
    name) makes that spectrum's row an error naming the table.
    """

    def __init__(self, spec, interp):
        self.interp = interp
        self.constant, self.per_spectrum, self.source, self._described = {}, {}, {}, {}
        given = {}
        for name, value in (spec or {}).items():
            key, name = name, interp.names[interp.parameter_index(name)]
            if name in given:
                raise UlyssAnnError(f"{name} fixed twice ({given[name]!r} and {key!r}): fix each parameter once")
            given[name] = key
            if isinstance(value, dict):
                self.per_spectrum[name] = {str(k): [_number(v, name)] for k, v in value.items()}
                self.source[name] = "the mapping given"
                self._described[name] = {"mapping_sha256": _digest(sorted(value.items(), key=str))}
            elif isinstance(value, str) and ":" in value and not is_number(value):
                self.per_spectrum[name], self._described[name] = self._from_table(value, name)
                self.source[name] = value
            else:
                self.constant[name] = _number(value, name)
                _in_bounds(interp.parameters[interp.parameter_index(name)], self.constant[name], "fixed value",
                           interp.path or "the network")
                self._described[name] = {"value": self.constant[name]}

    @property
    def names(self):
        """The fixed parameters, as the network names them."""
        return list(self.constant) + list(self.per_spectrum)

    def describe(self):
        """What is fixed and from where, for the run's record (tables by path, column and SHA-256)."""
        return dict(sorted(self._described.items())) or None

    def _from_table(self, spec, name):
        from astropy.table import Table

        path, _, column = spec.rpartition(":")
        if not os.path.isfile(path):
            raise UlyssAnnError(f"{path}: no such table (from --fix …={spec})")
        from astropy.io.registry import IORegistryError

        try:
            table = Table.read(path)
        except Exception as exc:  # astropy raises many kinds; an unknown format's lists every format astropy has
            reason = ("astropy cannot tell its format from its name or contents" if isinstance(exc, IORegistryError)
                      else first_line(exc))
            example = os.path.splitext(os.path.basename(path))[0] + ".ecsv"
            raise UlyssAnnError(f"{path}: cannot read as a table ({reason}); give an ECSV, CSV or FITS table with "
                                f"an id column, e.g. {example}") from None
        if column not in table.colnames:
            raise UlyssAnnError(f"{path}: no column '{column}' (has {', '.join(table.colnames)})")
        ids = table["id"] if "id" in table.colnames else table[table.colnames[0]]
        numbers = _column_in_unit(table[column], self.interp, name, f"{path}: column '{column}'")
        values = {}
        for ident, number in zip(ids, numbers):
            values.setdefault(str(ident), []).append(float(number))
        described = {"table": os.path.abspath(path), "column": column, "sha256": file_sha256(path)}
        return values, described

    def for_spectrum(self, spectrum_id, name_in_file=None):
        """The fixed values of one spectrum, or a UlyssAnnError naming what is missing or wrong.

        ``name_in_file``: the file name without extension, when the spectrum's id also
        carries its folder (two inputs had that name).
        """
        values = dict(self.constant)
        for name, table in self.per_spectrum.items():
            source = self.source[name]
            found = table.get(spectrum_id)
            if found is None and name_in_file is not None and name_in_file in table:
                raise UlyssAnnError(f"'{name_in_file}' in {source} is ambiguous: several inputs have that file name; "
                                    f"give this one its id '{spectrum_id}' in the table")
            if found is None:
                raise UlyssAnnError(f"no fixed value of {name} for '{spectrum_id}' in {source}")
            if np.unique(found).size > 1:  # NaN cells count as one value (numpy >= 1.21)
                raise UlyssAnnError(f"'{spectrum_id}' is {len(found)} times in {source} with different values "
                                    f"({', '.join(f'{v:g}' for v in found)}): keep one")
            parameter = self.interp.parameters[self.interp.parameter_index(name)]
            _in_bounds(parameter, found[0], f"fixed value (from {source}) for '{spectrum_id}':",
                       self.interp.path or "the network")
            values[name] = found[0]
        return values


def _column_in_unit(column, interp, name, where):
    """A table column's values as numbers in parameter ``name``'s unit (NaN for masked or text cells,
    refused for their spectrum only); a column with a unit is converted, or refused naming ``where``."""
    from ulyss_ann.model.parameter_values import ParameterValues

    numbers = []
    for value in column:
        try:
            numbers.append(float(value))
        except (TypeError, ValueError):
            numbers.append(float("nan"))  # a masked or text cell
    numbers = np.array(numbers, dtype=float)
    if column.unit is None:
        return numbers  # no unit: the parameter's, as a number on the command line
    unit = _catalogue_unit(column.unit)
    if unit is None:  # a unit astropy does not know
        raise UlyssAnnError(f"{where}: unit '{column.unit}' is not one astropy knows; give the column "
                            f"in {name}'s unit, or without a unit")
    quantity = numbers * unit  # function units (dex(cm/s2)) too
    try:
        with np.errstate(invalid="ignore", divide="ignore"):  # log g of a negative acceleration: NaN, refused later
            return ParameterValues(interp.parameters).in_unit(name, quantity)
    except UlyssAnnError as exc:
        raise UlyssAnnError(f"{where}: {exc}") from None


def _catalogue_unit(unit):
    """An astropy unit for a column's unit, or None: what astropy reads itself, and the logarithmic
    units of catalogues that it reads as unknown — CDS/VizieR's ``[cm/s2]`` and ``[Sun]`` (dex of),
    and ``log(cm.s**-2)`` or ``log10(cm/s2)`` (Gaia's and others' spelling of dex)."""
    import re

    import astropy.units as u

    if not isinstance(unit, u.UnrecognizedUnit):
        return unit
    text = str(unit).strip()
    try:
        return u.Unit(text, format="cds")  # [X] is dex(X) there
    except ValueError:
        pass
    logarithm = re.fullmatch(r"log(?:10)?\((.+)\)", text)
    if logarithm:
        for style in ("generic", "cds"):
            try:
                return u.dex(u.Unit(logarithm.group(1), format=style))
            except ValueError:
                continue
    return None


def _digest(value):
    import hashlib
    import json

    return hashlib.sha256(json.dumps(value, default=str).encode()).hexdigest()


def _number(value, name):
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UlyssAnnError(f"fixed value of {name}: {value!r} is not a number (--fix {name}=VALUE or "
                            f"{name}=TABLE:COLUMN)") from None

