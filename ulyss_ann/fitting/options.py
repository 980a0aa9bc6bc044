"""The options of a fit, checked before any work: the model, the configuration, fixed values.

Both ways in — :func:`~ulyss_ann.fitting.api.fit_spectrum` and
:func:`~ulyss_ann.fitting.batch.fit` — go through these, so that an unknown option, a
parameter the network does not have or a value that is not a number is refused the
same way, in one line, before a spectrum is touched.
"""

import os

import numpy as np

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.fitting.core import FitConfig, file_sha256
from ulyss_ann.model.interpolator import Interpolator

__all__ = ["make_config", "model_path", "FixedValues"]


def model_path(model):
    """The file of ``model``: a path, an Interpolator read from a file, or None for the bundled example."""
    from ulyss_ann.spectra.examples import example_interpolator_path

    if model is None:
        return example_interpolator_path()
    if isinstance(model, Interpolator):
        if model.path is None:
            raise UlyssAnnError("the interpolator must come from a file (Interpolator.read, or write it first)")
        return model.path
    return os.fspath(model)


def make_config(model, interp, **options):
    """A :class:`FitConfig` for ``model`` (read as ``interp``), every option checked up front.

    Unknown options, guesses of parameters the network does not have and guesses that
    are not numbers are refused in one line; the model's SHA-256 is computed here, once.
    """
    from dataclasses import fields

    known = {f.name for f in fields(FitConfig)} - {"model", "model_sha256"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise UlyssAnnError(f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: "
                            f"the fit takes {', '.join(sorted(known))}")
    guesses = {}
    for name, values in (options.get("guesses") or {}).items():
        name = interp.names[interp.parameter_index(name)]  # ParameterError names the parameters
        try:
            guesses[name] = [float(v) for v in np.atleast_1d(values)]
        except (TypeError, ValueError):
            raise UlyssAnnError(f"guesses of {name}: {values!r} are not numbers") from None
        if not guesses[name]:
            raise UlyssAnnError(f"guesses of {name}: none given; give at least one value")
    options["guesses"] = guesses or None
    options["masks"] = tuple(options.get("masks") or ())
    if options.get("lsf") is not None:
        options["lsf"] = os.path.abspath(options["lsf"])
    return FitConfig(model=os.path.abspath(model), model_sha256=file_sha256(model), **options)


class FixedValues:
    """Values of fixed parameters: a constant, or per spectrum from a table column.

    ``spec`` maps a parameter name to a number, to ``"table.ecsv:column"`` (the table's
    ``id`` column — else its first column — is matched to the spectrum id, the file
    name without extension), or to a dict {spectrum id: value}.
    """

    def __init__(self, spec, interp):
        self.constant, self.per_spectrum, self.source = {}, {}, {}
        for name, value in (spec or {}).items():
            name = interp.names[interp.parameter_index(name)]
            if isinstance(value, dict):
                self.per_spectrum[name] = {str(k): _number(v, name) for k, v in value.items()}
                self.source[name] = "a mapping"
            elif isinstance(value, str) and ":" in value and not _is_number(value):
                self.per_spectrum[name] = self._from_table(value)
                self.source[name] = value
            else:
                self.constant[name] = _number(value, name)

    @staticmethod
    def _from_table(spec):
        from astropy.table import Table

        path, _, column = spec.rpartition(":")
        if not os.path.exists(path):
            raise UlyssAnnError(f"{path}: no such table (from --fix …={spec})")
        try:
            table = Table.read(path)
        except Exception as exc:
            raise UlyssAnnError(f"{path}: cannot read as a table ({exc})") from None
        if column not in table.colnames:
            raise UlyssAnnError(f"{path}: no column '{column}' (has {', '.join(table.colnames)})")
        ids = table["id"] if "id" in table.colnames else table[table.colnames[0]]
        return {str(i): float(v) for i, v in zip(ids, table[column])}

    def for_spectrum(self, spectrum_id):
        """The fixed values of one spectrum, or a UlyssAnnError naming what is missing."""
        values = dict(self.constant)
        for name, table in self.per_spectrum.items():
            if spectrum_id not in table:
                raise UlyssAnnError(f"no fixed value of {name} for '{spectrum_id}' in {self.source[name]}")
            values[name] = table[spectrum_id]
        return values


def _number(value, name):
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UlyssAnnError(f"fixed value of {name}: {value!r} is not a number (--fix {name}=VALUE or "
                            f"{name}=TABLE:COLUMN)") from None


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True
