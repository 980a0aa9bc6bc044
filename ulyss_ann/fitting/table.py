"""The results table of a batch: one row per spectrum, columns with units, written atomically.

**Columns** (ECSV, units in the column metadata): ``id``, ``file``, ``ra``, ``dec``
[deg], one column per network parameter and its error ``e_<name>`` (units of the
interpolator), ``cz``/``e_cz`` and ``sigma``/``e_sigma`` [km/s] (``cz`` is relative to
the wavelength scale of the file, as ULySS reports it), ``chi2`` (reduced; 0 when the
spectrum has no errors, as ULySS does), ``rms`` (residual rms relative to the mean
model), ``misfit`` (that rms over the noise expected: ~1 for a fit as good as the data,
:attr:`~ulyss_ann.fitting.result.FitResult.misfit`), ``snr``, ``node_distance`` (the
distance to the nearest training node in the grid's own local node spacing: > 1 is a
hole or beyond the grid's edge), ``n_guess``, ``n_converged`` (guesses ending within
0.1 % of the best rms), ``n_pix`` (fitted), ``n_masked``, ``n_bad`` (bad values found by
the reader), ``lmin``/``lmax`` [Å], ``time`` [s], ``status``, ``flag`` (quality, see
:attr:`~ulyss_ann.fitting.result.FitResult.flags`), ``engine``, ``model`` and
``model_sha256``.

**Status**: ``ok``; ``error: <why>`` when the spectrum (or its options) cannot be
fitted — unreadable, no overlap, no signal, a fixed value missing — which stays so on
``--resume`` unless ``--retry-failed``; ``failed: <why>`` when the machinery failed
(a worker or GDL died or hung): ``--resume`` fits it again (three tries in all).

The table's metadata is the run's record (:mod:`ulyss_ann.fitting.run`): model and its
SHA-256, engine, options, package version.
"""

import os
import warnings

import numpy as np
from astropy.table import Table

from ulyss_ann.errors import UlyssAnnError

__all__ = ["rows_to_table", "write_table", "COLUMN_UNITS"]

#: Units of the columns that are not network parameters.
COLUMN_UNITS = {"ra": "deg", "dec": "deg", "cz": "km/s", "e_cz": "km/s", "sigma": "km/s", "e_sigma": "km/s",
                "lmin": "Angstrom", "lmax": "Angstrom", "time": "s"}

_STRINGS = {"id", "file", "status", "flag", "engine", "model", "model_sha256"}
_INTEGERS = {"n_guess", "n_converged", "n_pix", "n_masked", "n_bad"}
_DESCRIPTIONS = {
    "status": "ok; error: <why> (the spectrum); failed: <why> (the machinery, retried on resume)",
    "flag": "quality: bound:<param>, sigma-floor, one-guess-converged, far-from-nodes, poor-fit",
    "rms": "residual rms relative to the mean model",
    "chi2": "reduced chi2 (0 when the spectrum has no errors)",
    "n_converged": "guesses ending within 0.1 % of the best rms",
    "node_distance": "distance to the nearest training node, in units of the grid's local node spacing "
                     "(> 1: a hole or beyond the grid's edge)",
    "misfit": "residual rms over the noise expected (~1: as good as the data; poor-fit above 5)",
}


def rows_to_table(rows, parameters):
    """An astropy Table with units from journal rows (missing values masked).

    ``parameters``: the network's (name, unit) pairs, in order.
    """
    names = ["id", "file", "ra", "dec"]
    for name, _ in parameters:
        names += [name, "e_" + name]
    names += ["cz", "e_cz", "sigma", "e_sigma", "chi2", "rms", "misfit", "snr", "node_distance", "n_guess",
              "n_converged", "n_pix", "n_masked", "n_bad", "lmin", "lmax", "time", "status", "flag", "engine",
              "model", "model_sha256"]
    columns = {}
    for name in names:
        raw = [row.get(name) for row in rows]
        if name in _STRINGS:
            columns[name] = [str(v) if v is not None else "" for v in raw]
        elif name in _INTEGERS:
            columns[name] = np.ma.masked_array([v if v is not None else 0 for v in raw],
                                               mask=[v is None for v in raw], dtype=np.int64)
        else:
            columns[name] = np.ma.masked_invalid(np.array([np.nan if v is None else v for v in raw], float))
    table = Table(columns, names=names, masked=True)
    units = dict(COLUMN_UNITS)
    for name, unit in parameters:
        units[name] = units["e_" + name] = unit or None
    for name, unit in units.items():
        if unit:
            table[name].unit = unit
    for name, text in _DESCRIPTIONS.items():
        table[name].description = text
    return table


def write_table(table, path, meta=None):
    """Write the results as ECSV (or any astropy format the name implies), atomically.

    The table goes to a temporary file beside ``path``, renamed over it when complete:
    a crash or a full disk never leaves half a table under the final name, and the
    temporary file is removed when the write fails (UlyssAnnError, one line).
    """
    table.meta.update(meta or {})
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    fmt = "ascii.ecsv" if path.endswith(".ecsv") else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # 'dex' is no FITS unit; ECSV keeps it as a string
            table.write(tmp, format=fmt, overwrite=True)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise UlyssAnnError(f"{path}: cannot write the table ({exc.strerror or exc}); every row is in the "
                            f"journal: make room and run again with --resume (nothing is fitted again)") from None
