"""A :class:`~ulyss_ann.fitting.result.FitResult`'s plain fields: from what an engine returns, and as a table row.

Both engines end a fit with a :class:`~ulyss_ann.fitting.core.Solution` (numbers and arrays as
the engine computed them: numpy scalars, ULySS's status codes, the log-rebinned arrays) for a
spectrum prepared by :mod:`~ulyss_ann.fitting.preparation`. :func:`result_fields` turns the two,
with the interpolator and the run's provenance, into the plain Python values a result holds, so
that a result reads alike whichever engine made it. The result itself is built by
:meth:`FitResult.from_solution <ulyss_ann.fitting.result.FitResult.from_solution>`, which this
module does not import (the result imports it). :func:`result_row` goes the other way: a result's
numbers as one row of the results table (:mod:`~ulyss_ann.fitting.table`), for ``FitResult.row``.
"""

import os

import numpy as np

from ulyss_ann.fitting.quality import quality_flags
from ulyss_ann.spectra.spectrum_medium import medium_note

__all__ = ["STATUS_NAMES", "result_fields", "result_row"]

#: Per-parameter status, as ULySS codes it (uly_fit: 0 free, 1 fixed, 2/3 pegged at a limit).
STATUS_NAMES = {0: "free", 1: "fixed", 2: "low", 3: "high"}


def result_fields(solution, prepared, interp, engine, model, model_sha256, seconds):
    """The keyword arguments of a FitResult for an engine's solution (see ``FitResult.from_solution``)."""
    names = interp.names
    values = [float(v) for v in solution.values]
    distance = interp.node_distance(values)
    n = len(solution.flux)
    spectrum = prepared.spectrum
    meta = {key: spectrum.meta.get(key, np.nan) for key in ("file", "ra", "dec", "snr")}
    meta["n_bad"] = spectrum.n_bad
    return dict(params=dict(zip(names, values)), errors=dict(zip(names, (float(e) for e in solution.errors))),
                units={p.name: p.unit for p in interp.parameters},
                status={name: STATUS_NAMES.get(int(s), str(int(s))) for name, s in zip(names, solution.status)},
                cz=float(solution.cz), e_cz=float(solution.e_cz), sigma=float(solution.sigma),
                e_sigma=float(solution.e_sigma), chi2=float(solution.chi2), rms=float(solution.rms),
                wavelength=np.exp(solution.ln_start + np.arange(n) * solution.ln_step),
                flux=np.asarray(solution.flux, float), bestfit=np.asarray(solution.bestfit, float),
                mask=np.asarray(solution.mask, bool),
                error=None if solution.error is None else np.asarray(solution.error, float),
                ln_start=float(solution.ln_start), ln_step=float(solution.ln_step),
                n_guess=int(solution.n_guess), best_guess=int(solution.best_guess),
                n_converged=int(solution.n_converged), n_pix=int(solution.n_pix),
                n_masked=int(np.count_nonzero(~prepared.good)), lmin=float(prepared.lo), lmax=float(prepared.hi),
                requested_range=None if prepared.requested is None else tuple(map(float, prepared.requested)),
                node_distance=None if distance is None else float(distance),
                coverage=float(getattr(prepared, "coverage", np.nan)), engine=engine,
                model=os.path.basename(str(model)), model_sha256=model_sha256,
                model_medium=interp.medium_conversion or interp.medium, medium=medium_note(spectrum),
                surrogate=bool(interp.is_surrogate), time=float(seconds),
                spectrum_id=str(spectrum.meta.get("id", "")), meta=meta,
                dof_factor=float(getattr(solution, "dof_factor", 1.0)))


def result_row(result):
    """A result as one row of the batch table, column name -> value (see ``FitResult.row``)."""
    from ulyss_ann.fitting.table import as_number  # astropy.table: loaded when a table is made

    meta, misfit = result.meta, result.misfit
    row = dict(id=result.spectrum_id, file=meta.get("file"), ra=as_number(meta.get("ra"), "deg"),
               dec=as_number(meta.get("dec"), "deg"), snr=as_number(meta.get("snr")), n_bad=meta.get("n_bad"))
    for name in result.params:
        row[name], row["e_" + name] = result.params[name], result.errors[name]
    row.update(cz=result.cz, e_cz=result.e_cz, sigma=result.sigma, e_sigma=result.e_sigma, chi2=result.chi2,
               rms=result.rms, misfit=misfit, n_guess=result.n_guess, n_converged=result.n_converged,
               n_pix=result.n_pix, n_masked=result.n_masked, lmin=result.lmin, lmax=result.lmax,
               coverage=result.coverage, time=result.time, status="ok", flag=",".join(quality_flags(result, misfit)),
               errors=result.error_method, engine=result.engine, model=result.model,
               model_sha256=result.model_sha256, model_medium=result.model_medium, medium=result.medium)
    if result.node_distance is not None:
        row["node_distance"] = result.node_distance
    return row
