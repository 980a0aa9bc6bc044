r"""Self-inversion precision of an interpolator (the paper's §4.2–4.3, Eq. 6, Table 3).

Fitting every grid spectrum with the network and comparing the parameters found
with the node's gives, per parameter X (Eq. 6),

.. math::

    P_X = \sqrt{\frac{1}{N} \sum_{i=1}^{N} (X_{\mathrm{derived},i} - X_{\mathrm{actual},i})^2},

also quoted as a percentage of the grid's mean mesh step :math:`\bar\Delta_X` (the mean
spacing of the distinct node values of X: 112.5 K, 0.5 dex and 0.6 dex for the GSL
grid), :math:`P'_X = 100\,P_X / \bar\Delta_X`.

The figures (:func:`plot_selfinversion_maps`, :func:`plot_precision_vs_mse`, Fig. 3) are
returned as ``matplotlib.figure.Figure`` objects; the backend is never changed.

:func:`read_res` reads ULySS "solut" text files (``SOL_VERS`` 2, as ``ulyss`` writes
with ``FILE_OUT``): one header block and one data row per fit, the columns named by
the ``!cols:`` line (``<cmp>_Teff``, ``<cmp>_e_Teff``, …; the component prefix — of the
first component — is dropped here).
"""

import os

import numpy as np
from astropy.table import Table

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.figures import new_figure, save_figure

__all__ = ["read_res", "precision", "mesh_steps", "selfinversion_from_res", "selfinversion_from_grid",
           "plot_selfinversion_maps", "plot_precision_vs_mse"]


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
    from ulyss_ann.spectra.phoenix import read_node_list

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


def write_grid_spectra(grid, folder):
    """Each grid spectrum as a 1-D FITS file (linear WCS, no error: the paper's noise-free fits)."""
    from astropy.io import fits

    os.makedirs(folder, exist_ok=True)
    paths = []
    cards = grid.wavelength.data_cards()
    for k, flux in enumerate(grid.flux):
        path = os.path.join(folder, f"node{k:05d}.fits")
        if not os.path.exists(path):
            hdu = fits.PrimaryHDU(np.asarray(flux, np.float64))
            for key, value, comment in cards:
                hdu.header[key] = (value, comment)
            hdu.header["SIMULATD"] = (True, "a grid spectrum (no telluric bands)")
            hdu.writeto(path)
        paths.append(path)
    return paths


#: Guesses spanning a GSL-like grid (3500–8000 K, log g 0–6): 12 starting points.
GRID_GUESSES = {"Teff": (4000.0, 5500.0, 7000.0), "Logg": (1.0, 3.5), "Fe/H": (-1.0, -2.0)}


def selfinversion_from_grid(grid, model, outdir, engine="auto", workers=None, progress=True, guesses=None,
                            dashboard=False):
    """Fit every grid spectrum with ``model`` (all parameters free), then Eq. 6 and residual maps.

    The fits go through :func:`ulyss_ann.fitting.batch.driver.fit` (resumable: ``outdir/selfinv.ecsv``),
    noise-free, MDEGREE 20, every guess fitted to its end (``search="all"``, ULySS's way). Guesses:
    :data:`GRID_GUESSES` — the whole grid is inverted, and
    the paper's NGC 6397 guesses (Teff 5000–6000 K, log g at the grid mean) leave the
    giants at log g 0 of 5000–5500 K in a local minimum near log g 2.5 (measured: 154 of
    the 2908 nodes off by more than 0.5 dex, which then dominate Eq. 6's rms).
    ``model``: a file or a bundled name; ``dashboard``: as :func:`~ulyss_ann.fitting.batch.driver.fit`'s.
    Returns the Table 3 figures and writes ``selfinv_maps.png``.
    """
    from ulyss_ann.fitting.batch.driver import fit
    from ulyss_ann.fitting.batch.resume import RunMismatchError

    names = list(grid.names)
    paths = write_grid_spectra(grid, os.path.join(outdir, "grid_spectra"))
    output = os.path.join(outdir, "selfinv.ecsv")
    # search "all": every guess to its end, as ULySS and the paper (the grid's giants have local minima)
    options = dict(telluric=False, engine=engine, workers=workers, progress=progress,
                   guesses=guesses or GRID_GUESSES, dashboard=dashboard, search="all")
    try:  # the fits of an earlier run of the same set-up are kept; another set-up starts again
        resume = os.path.exists(output + ".journal.jsonl")
        table = fit(paths, model, output, resume=resume, overwrite=not resume, **options)
    except RunMismatchError as exc:
        if progress:
            print(f"starting the fits again: {exc}")
        table = fit(paths, model, output, overwrite=True, **options)
    ok = np.asarray(table["status"] == "ok")
    derived = np.column_stack([np.asarray(table[n], float) for n in names])[ok]
    actual = grid.params[ok]
    absolute = precision(derived, actual)
    steps = mesh_steps(grid.params)
    save_figure(plot_selfinversion_maps(actual, derived - actual, names, model, grid.is_surrogate),
                os.path.join(outdir, "selfinv_maps.png"))
    return {"names": names, "n": int(ok.sum()), "failed": int((~ok).sum()), "absolute": absolute, "mesh": steps,
            "percent": 100 * absolute / steps, "engine": str(table["engine"][0]) if len(table) else engine}


#: A third parameter with at most this many distinct node values is a lattice of layers (GSL: 6 [Fe/H]);
#: with more (an irregular grid such as MILES), its nodes are split into :data:`IRREGULAR_LAYERS` quantile bins.
MOST_LAYERS = 10
IRREGULAR_LAYERS = 4


def node_layers(values):
    """The nodes split by their third parameter: (lower, upper) bounds of each layer, lowest first.

    A lattice (at most :data:`MOST_LAYERS` distinct values) gives one layer per value (lower = upper);
    otherwise :data:`IRREGULAR_LAYERS` bins of about equal counts, each node in exactly one.
    """
    values = np.asarray(values, float)
    distinct = np.unique(values[np.isfinite(values)])
    if len(distinct) <= MOST_LAYERS:
        return [(v, v) for v in distinct]
    # quantiles of the nodes, not of the distinct values: MILES repeats [Fe/H] values
    edges = np.unique(np.quantile(values[np.isfinite(values)], np.linspace(0, 1, IRREGULAR_LAYERS + 1)))
    return list(zip(edges[:-1], edges[1:]))


def _in_layer(values, layer, last):
    low, high = layer
    if low == high:  # a lattice's layer: that value
        return values == low
    return (values >= low) & ((values <= high) if last else (values < high))


def plot_selfinversion_maps(actual, residual, names, model, surrogate=False, figure=None):
    """Maps of the self-inversion residuals over the grid: one row per layer of the third parameter
    ([Fe/H]), one column per parameter.

    Drawn on one panel, the nodes of every [Fe/H] layer sit at the same (Teff, log g) and hide each
    other; here each layer has its own row (:func:`node_layers`), on the same axes and, per
    parameter, the same colour scale. ``actual``: the node parameters (N x npar, Teff and log g
    first); ``residual``: derived − node (N x npar); ``model``: the interpolator's path (its name is
    the title). Returns the ``matplotlib.figure.Figure`` (``figure=``: draw into this one).
    """
    actual, residual = np.atleast_2d(actual), np.atleast_2d(residual)
    units = {"Teff": "K", "Logg": "dex", "Fe/H": "dex"}
    layers = node_layers(actual[:, 2]) if actual.shape[1] > 2 else [(None, None)]
    fig = new_figure(figure, figsize=(4.2 * len(names) + 1.0, 2.9 * len(layers) + 0.8))
    axes = np.array(fig.subplots(len(layers), len(names), sharex=True, sharey=True, squeeze=False))
    for k, name in enumerate(names):
        limit = np.nanpercentile(np.abs(residual[:, k]), 98) or 1.0
        for row, layer in enumerate(layers):
            ax = axes[row, k]
            inside = (np.ones(len(actual), bool) if layer[0] is None
                      else _in_layer(actual[:, 2], layer, row == len(layers) - 1))
            art = ax.scatter(actual[inside, 0], actual[inside, 1], c=residual[inside, k], s=10, cmap="coolwarm",
                             vmin=-limit, vmax=limit)
            if layer[0] is not None:
                what = (f"{names[2]} = {layer[0]:+.2f}" if layer[0] == layer[1]
                        else f"{layer[0]:+.2f} ≤ {names[2]} {'≤' if row == len(layers) - 1 else '<'} {layer[1]:+.2f}")
                ax.set_title(f"{what}: derived − node {name}", fontsize=8)
            if row == len(layers) - 1:
                ax.set_xlabel("T$_{eff}$ of the node (K)")
            if k == 0:
                ax.set_ylabel("log g of the node (dex)")
        fig.colorbar(art, ax=axes[:, k], label=f"derived − node {name} ({units.get(name, '')})", shrink=0.6)
    axes[0, 0].invert_xaxis()  # shared: every panel the HR-diagram way
    axes[0, 0].invert_yaxis()
    fig.suptitle(f"self-inversion of {os.path.basename(model)}" + (" on the SURROGATE grid" if surrogate else ""),
                 fontsize=10)
    return fig


def plot_precision_vs_mse(points, *, title="Self-inversion precision against the network's MSE (Fig. 3)",
                          figure=None):
    """Fig. 3 of the paper: Eq. 6 precision (% of the mesh step) of each network against its MSE.

    ``points``: sequence of (label, mse, percent) with ``percent`` = the three precisions
    (Teff, log g, [Fe/H]) as percentages of the mean mesh step. Returns the Figure
    (save it with :func:`ulyss_ann.figures.save_figure`).
    """
    fig = new_figure(figure, figsize=(7, 4.6))
    ax = fig.subplots()
    for k, (name, marker) in enumerate((("T$_{eff}$", "o"), ("log g", "s"), ("[Fe/H]", "^"))):
        x = [p[1] for p in points]
        y = [p[2][k] for p in points]
        ax.plot(x, y, marker=marker, ls="", ms=7, color=f"C{k}", label=name)
    for label, mse, percent in points:
        ax.annotate(label, (mse, max(percent)), textcoords="offset points", xytext=(6, 6), fontsize=8, ha="left")
    ax.set_xscale("log")
    ax.margins(x=0.6, y=0.15)
    ax.set_xlabel("minimum MSE of the network (normalised flux²)")
    ax.set_ylabel("precision P (% of the mean mesh step)")
    ax.set_title(title, fontsize=10)
    ax.legend()
    return fig
