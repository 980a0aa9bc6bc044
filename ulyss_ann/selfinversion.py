r"""Self-inversion precision of an interpolator (the paper's §4.2–4.3, Eq. 6, Table 3).

Fitting every grid spectrum with the network and comparing the parameters found
with the node's gives, per parameter X (Eq. 6),

.. math::

    P_X = \sqrt{\frac{1}{N} \sum_{i=1}^{N} (X_{\mathrm{derived},i} - X_{\mathrm{actual},i})^2},

also quoted as a percentage of the grid's mean mesh step :math:`\bar\Delta_X` (the mean
spacing of the distinct node values of X: 112.5 K, 0.5 dex and 0.6 dex for the GSL
grid), :math:`P'_X = 100\,P_X / \bar\Delta_X`.

:func:`read_res` reads ULySS "solut" text files (``SOL_VERS`` 2, as ``ulyss`` writes
with ``FILE_OUT``): one header block and one data row per fit, the columns named by
the ``!cols:`` line (``<cmp>_Teff``, ``<cmp>_e_Teff``, …; the component prefix — of the
first component — is dropped here).
"""

import os

import numpy as np
from astropy.table import Table

from .errors import UlyssAnnError

__all__ = ["read_res", "precision", "mesh_steps", "selfinversion_from_res"]


def _strip_component(name):
    """'cmp8_Teff' -> 'Teff', 'ann-0a1b_e_Teff' -> 'e_Teff'; LOSVD columns (cz, e_cz, s_sig…) unchanged.

    ULySS component names hold no '_' (uly_cmp_name turns it into '-'), so the first '_'
    ends the prefix, except in the LOSVD error/status columns (e_, s_)."""
    head, sep, rest = name.partition("_")
    return rest if sep and rest and head not in ("e", "s", "g", "l") else name


def read_res(path):
    """The rows of a ULySS .res file as a Table (columns without the component prefix)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UlyssAnnError(f"{path}: no such file")
    columns, rows = None, []
    with open(path) as handle:
        for number, line in enumerate(handle, start=1):
            if line.startswith("!cols:"):
                names = line[6:].split()
                names = [_strip_component(n) for n in names]
                if columns is not None and names != columns:
                    raise UlyssAnnError(f"{path}, line {number}: the columns change between blocks")
                columns = names
            elif line.strip() and not line.startswith("!"):
                if columns is None:
                    raise UlyssAnnError(f"{path}, line {number}: a data row before any '!cols:' line "
                                        "(not a ULySS solut file)")
                try:
                    values = [float(v) for v in line.split()]
                except ValueError:
                    raise UlyssAnnError(f"{path}, line {number}: not numbers") from None
                if len(values) != len(columns):
                    raise UlyssAnnError(f"{path}, line {number}: {len(values)} values for {len(columns)} columns")
                rows.append(values)
    if not rows:
        raise UlyssAnnError(f"{path}: no solution row (expected a ULySS .res file, SOL_VERS 2)")
    return Table(rows=rows, names=columns)


def precision(derived, actual):
    """Eq. 6: root mean square of derived - actual, per column (N x npar arrays)."""
    derived, actual = np.atleast_2d(derived), np.atleast_2d(actual)
    return np.sqrt(np.mean((derived - actual) ** 2, axis=0))


def mesh_steps(nodes):
    """Mean spacing of the distinct values of each parameter of the nodes (N x npar)."""
    return np.array([np.mean(np.diff(np.unique(column))) for column in np.atleast_2d(nodes).T])


def selfinversion_from_res(res_file, nodes_file, names=("Teff", "Logg", "Fe/H")):
    """Table 3 figures from a .res file of fits of the grid spectra, in node order."""
    from .phoenix import read_node_list

    table = read_res(res_file)
    nodes = read_node_list(nodes_file)
    actual = np.array([[n["teff"], n["logg"], n["feh"]] for n in nodes])
    if len(table) != len(actual):
        raise UlyssAnnError(f"{res_file}: {len(table)} fits for {len(actual)} nodes in {nodes_file}")
    missing = [n for n in names if n not in table.colnames]
    if missing:
        raise UlyssAnnError(f"{res_file}: no column for {', '.join(missing)} (has {', '.join(table.colnames)})")
    derived = np.column_stack([table[n] for n in names])
    absolute = precision(derived, actual)
    steps = mesh_steps(actual)
    return {"names": list(names), "n": len(actual), "absolute": absolute, "mesh": steps,
            "percent": 100 * absolute / steps}
