"""Results of a batch fit: one row per spectrum, a durable journal, and the ECSV table.

**Journal.** Every finished fit (or failure) is appended as one JSON line to
``<output>.journal.jsonl`` and flushed to disk (``fsync``) at once, so a crash of
anything — a worker, GDL, the driver itself (``kill -9``) — loses no finished work.
A line cut by a crash is ignored on reading. ``--resume`` skips the spectra the
journal already holds; when the batch ends the table is rebuilt from the journal,
each spectrum once (its first complete row).

**Table** (ECSV, units in the column metadata). Columns: ``id``, ``file``, ``ra``,
``dec`` [deg], one column per network parameter and its error ``e_<name>`` (units of
the interpolator), ``cz``/``e_cz`` and ``sigma``/``e_sigma`` [km/s] (``cz`` is
relative to the wavelength scale of the file, as ULySS reports it), ``chi2``
(reduced; 0 when the spectrum has no errors, as ULySS does), ``rms`` (residual rms
relative to the mean model), ``snr``, ``node_distance``, ``n_guess``, ``n_converged`` (guesses ending
within 0.1 % of the best rms), ``n_pix`` (fitted), ``n_masked``, ``n_bad`` (bad
values found by the reader), ``lmin``/``lmax`` [Å], ``time`` [s], ``status``
(``ok`` or what went wrong), ``flag`` (quality, below), ``engine``, ``model`` and
``model_sha256``.

**Quality flag** — comma-separated, empty when nothing is wrong:
``bound:<name>`` a free parameter ended on its limit (the network's training range);
``sigma-floor`` the LOSVD width sits at ULySS's 0.3 px floor (its error is then 0);
``one-guess-converged`` of several guesses only the best reached its minimum;
``far-from-nodes`` the solution lies more than one mesh step from every training node
(a hole of the grid or beyond its edge: the network extrapolates), when the
interpolator carries its nodes (column ``node_distance``, in mesh steps).
"""

import json
import os

import numpy as np
from astropy.table import Table

__all__ = ["Journal", "MemoryJournal", "failure_row", "rows_to_table", "write_table"]

_UNITS = {"ra": "deg", "dec": "deg", "cz": "km/s", "e_cz": "km/s", "sigma": "km/s", "e_sigma": "km/s",
          "lmin": "Angstrom", "lmax": "Angstrom", "time": "s"}


def failure_row(key, spectrum, status, engine, model, sha):
    """A row for a spectrum that could not be fitted; ``status`` says why.

    ``key`` is the spectrum's key in the journal (its file, or ``memory:<id>``);
    ``spectrum``, when it could be read, gives its id, position and S/N.
    """
    if spectrum is not None:
        meta = spectrum.meta
        row = dict(id=meta["id"], ra=meta.get("ra", np.nan), dec=meta.get("dec", np.nan),
                   snr=meta.get("snr", np.nan), n_bad=spectrum.n_bad)
    else:
        row = dict(id=os.path.splitext(os.path.basename(key))[0].replace("memory:", ""))
    row.update(file=key, engine=engine, model=model, model_sha256=sha, status=status, flag="")
    return row


class Journal:
    """Append-only JSON-lines record of finished spectra, durable line by line."""

    def __init__(self, path):
        self.path = str(path)

    def read(self):
        """Rows recorded so far, keyed by spectrum file (first complete line wins)."""
        rows = {}
        if not os.path.exists(self.path):
            return rows
        with open(self.path) as handle:
            for line in handle:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a crash: that spectrum is simply redone
                rows.setdefault(row["file"], row)
        return rows

    def append(self, row):
        text = json.dumps({k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                           for k, v in row.items()}, default=float)
        with open(self.path, "a") as handle:
            handle.write(text + "\n")
            handle.flush()
            os.fsync(handle.fileno())


class MemoryJournal:
    """The journal of a batch kept in memory (``output=None``): same interface, nothing on disk."""

    path = None

    def __init__(self):
        self._rows = {}

    def read(self):
        return dict(self._rows)

    def append(self, row):
        self._rows.setdefault(row["file"], row)


def rows_to_table(rows, parameters):
    """An astropy Table with units from journal rows (missing values masked).

    ``parameters``: the network's (name, unit) pairs, in order.
    """
    names = ["id", "file", "ra", "dec"]
    for name, _ in parameters:
        names += [name, "e_" + name]
    names += ["cz", "e_cz", "sigma", "e_sigma", "chi2", "rms", "snr", "node_distance", "n_guess", "n_converged", "n_pix",
              "n_masked", "n_bad", "lmin", "lmax", "time", "status", "flag", "engine", "model", "model_sha256"]
    strings = {"id", "file", "status", "flag", "engine", "model", "model_sha256"}
    integers = {"n_guess", "n_converged", "n_pix", "n_masked", "n_bad"}
    columns = {}
    for name in names:
        raw = [row.get(name) for row in rows]
        if name in strings:
            columns[name] = [str(v) if v is not None else "" for v in raw]
        elif name in integers:
            columns[name] = np.ma.masked_array([v if v is not None else 0 for v in raw],
                                               mask=[v is None for v in raw], dtype=np.int64)
        else:
            columns[name] = np.ma.masked_invalid(np.array([np.nan if v is None else v for v in raw], float))
    table = Table(columns, names=names, masked=True)
    units = dict(_UNITS)
    for name, unit in parameters:
        units[name] = units["e_" + name] = unit or None
    for name, unit in units.items():
        if unit:
            table[name].unit = unit
    table["status"].description = "ok, or why the spectrum could not be fitted"
    table["flag"].description = "quality: bound:<param>, sigma-floor, one-guess-converged, far-from-nodes"
    table["rms"].description = "residual rms relative to the mean model"
    table["chi2"].description = "reduced chi2 (0 when the spectrum has no errors)"
    table["n_converged"].description = "guesses ending within 0.1 % of the best rms"
    table["node_distance"].description = "distance to the nearest training node, in mesh steps"
    return table


def write_table(table, path, meta=None):
    """Write the results as ECSV (or any astropy format the name implies), atomically."""
    import warnings

    table.meta.update(meta or {})
    tmp = str(path) + ".tmp"
    fmt = "ascii.ecsv" if str(path).endswith(".ecsv") else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 'dex' is no FITS unit; ECSV keeps it as a string
        table.write(tmp, format=fmt, overwrite=True)
    os.replace(tmp, path)
