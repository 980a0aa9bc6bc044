"""The relative LSF of a spectrum measured by ULySS's own ``uly_lsf`` in GDL, with the network's component.

:func:`measure_lsf_gdl` is the GDL side of ``ulyss-ann lsf measure`` (issue #17): the
spectrum is handed to ULySS as the GDL engine hands it (``uly_spect_alloc`` with the
flux, errors, good pixels and wavelengths our readers built), the network's generated
component has all its atmospheric parameters FIXED at the given values, and ULySS's
``uly_lsf`` fits a LOSVD (cz, σ; h3, h4 with ``kmoment=4``) in chunks of ``width`` Å
every ``step`` Å, each with its own ``mdegree`` multiplicative polynomial
(``ulyss_ann/gdl/pro/ulyss_ann_lsf.pro``). ``uly_lsf`` writes one ULySS solut block a chunk
(``uly_solut_twrite``) into a scratch folder; :func:`read_solut_lsf` reads it back.

The chunks are ``uly_lsf``'s: ``n = 0 … floor((hi - lo - width) / step)``,
``[lo + step·n, min(lo + step·n + width, hi)]``. ``uly_lsf`` chunks the range of the
log-rebinned spectrum it gets (the centres of its first and last pixels), so the GDL
routine hands it a spectrum log-rebinned with pixel centres at ``lo`` and ``hi``
exactly, at ULySS's own velocity scale for ``[lo, hi]`` adjusted by less than one part in
the number of pixels. ``[lo, hi]`` must lie inside the network's range by 1.5 pixels
(as the fits' range does), or ``uly_lsf`` would re-cut it to the model's range.

What is passed to ULySS: the flux, the errors, the good pixels of
:meth:`~ulyss_ann.fitting.preparation.FitPreparation.good_pixels` (the reader's, less the
telluric bands — by default not for simulated spectra — Na D and ``config.masks``),
the wavelength grid, ``MDEGREE``, ``KMOMENT``, ``/QUIET``, and the LSF file of
``config.lsf`` when set (then what is measured is the LSF left *beyond* that one). Not
passed: ``config.mdegree``, ``config.guesses``, ``config.wave_range`` (the caller's
``mdegree``, ``params``, ``lo``/``hi`` replace them), and ``uly_lsf``'s ``DG``, ``DL``,
``KFIX``, ``KPEN``, ``ADEGREE``, ``/CLEAN`` (ULySS's defaults apply: σ ≥ 0.3 pixel).
"""

import os

import numpy as np
from astropy.table import Table

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.fitting.preparation import FitPreparation
from ulyss_ann.fitting.engines import engine_class
from ulyss_ann.model.interpolator import Interpolator
from ulyss_ann.model.wavelength import C_KMS
from ulyss_ann.spectra.line_spread import lsf_chunks, read_solut_lsf

__all__ = ["measure_lsf_gdl", "read_lsf_ulyss", "LSF_COLUMNS"]

#: The columns of :func:`measure_lsf_gdl`'s table, in order.
LSF_COLUMNS = ("chunk", "wmin", "wmax", "wave", "cz", "e_cz", "sigma", "e_sigma", "h3", "e_h3", "h4", "e_h4", "chi2")



def _check(spectrum, interp, params, lo, hi, width, step, mdegree, kmoment):
    """One-line UlyssAnnError for input ULySS would not measure."""
    params = np.asarray(params, float).ravel()
    if params.size != interp.npar or not np.all(np.isfinite(params)):
        raise UlyssAnnError(f"{params.size} parameter values for the network's {interp.npar} "
                            f"({', '.join(interp.names)}); all finite")
    for value, p in zip(params, interp.parameters):
        if not p.low <= value <= p.high:
            raise UlyssAnnError(f"{p.name} = {value:g} {p.unit} outside the limits [{p.low:g}, {p.high:g}] "
                                "of the network".replace("  ", " "))
    if not (np.isfinite([lo, hi, width, step]).all() and width > 0 and step > 0):
        raise UlyssAnnError(f"LSF chunks need a width and a step > 0 Å (got {width}, {step})")
    if int(kmoment) != kmoment or kmoment not in (2, 3, 4):
        raise UlyssAnnError(f"kmoment must be 2 (cz, sigma), 3 or 4 (with h3, h4), not {kmoment}")
    if int(mdegree) != mdegree or mdegree < 0:
        raise UlyssAnnError(f"mdegree must be an integer >= 0, not {mdegree}")
    net = interp.wavelength.wavelength
    wave = np.asarray(spectrum.wavelength, float)
    margin = 1.5 * abs(net[1] - net[0])
    if lo < net[0] + margin or hi > net[-1] - margin:
        raise UlyssAnnError(f"LSF range {lo:.1f}-{hi:.1f} Å: must lie inside the network's {net[0]:.1f}-"
                            f"{net[-1]:.1f} Å by 1.5 pixels ({net[0] + margin:.1f}-{net[-1] - margin:.1f} Å)")
    if lo < wave[0] or hi > wave[-1]:
        raise UlyssAnnError(f"LSF range {lo:.1f}-{hi:.1f} Å: outside the spectrum's {wave[0]:.1f}-{wave[-1]:.1f} Å")
    if hi - lo < width:
        raise UlyssAnnError(f"LSF range {lo:.1f}-{hi:.1f} Å is narrower than one chunk ({width:g} Å)")
    return params


def measure_lsf_gdl(spectrum, config, interp, params, lo, hi, width, step, mdegree, kmoment=2):
    """Measure the relative LSF of ``spectrum`` against the network with ULySS's ``uly_lsf`` in GDL.

    Parameters
    ----------
    spectrum : Spectrum
        The observation (a reader's :class:`~ulyss_ann.spectra.spectrum.Spectrum`).
    config : FitConfig
        ``model``, ``model_sha256``, ``backend``, ``timeout``, the masks (``telluric``,
        ``mask_nad``, ``masks``) and ``lsf`` (injected into the model when set) are used.
    interp : Interpolator or None
        The network (read from ``config.model`` when None).
    params : sequence of float
        Atmospheric parameters in network order, all held FIXED.
    lo, hi : float
        The range chunked [Å], inside the network's by 1.5 pixels and inside the spectrum.
    width, step : float
        Chunk width and step between chunk starts [Å] (``uly_lsf``'s <width>, <step>).
    mdegree : int
        Degree of each chunk's multiplicative Legendre polynomial.
    kmoment : int
        2: cz and σ; 4: also h3 and h4.

    Returns
    -------
    astropy.table.Table, one row per chunk ULySS fitted (a chunk it could not fit is
    absent): ``chunk`` (the index n of ``uly_lsf``'s loop), ``wmin``, ``wmax`` (the
    fitted range as ULySS reports it, ``WAVE_MIN``/``WAVE_MAX``), ``wave`` (their mean,
    as ``uly_lsf_read``) [Angstrom], ``cz``, ``e_cz``, ``sigma``, ``e_sigma`` [km/s]
    (cz absolute, the star's velocity included), ``h3``, ``e_h3``, ``h4``, ``e_h4``
    (0 with kmoment 2), ``chi2`` (reduced). ``meta``: ``velscale`` [km/s/pixel],
    ``n_chunks`` (chunks tried), ``failed`` (chunks ULySS could not fit), ``stale`` (repeats
    uly_lsf wrote after a failed chunk, skipped: see :func:`read_solut_lsf`), ``range`` (the
    centres of the first and last pixels handed to uly_lsf [Å]), ``kmoment``, ``mdegree``.

    Raises
    ------
    UlyssAnnError
        Bad input, or GDL stopped on an error (its message, in one line).
    MachineryError
        The gdl process died or hung.
    """
    if interp is None:
        interp = Interpolator.read(config.model)
    params = _check(spectrum, interp, params, float(lo), float(hi), float(width), float(step), mdegree, kmoment)
    lo, hi, width, step = float(lo), float(hi), float(width), float(step)
    # the GDL engine through the registry: it names this function as its LSF measurement (no import cycle)
    engine = engine_class("gdl")(config, interp)  # the component (generated once, cached), a scratch folder, a session
    try:
        good = FitPreparation(config, interp).good_pixels(spectrum)
        grid = spectrum.grid
        if grid is not None:
            sampling = 1 if grid.log else 0
            start, pixel, wave = grid.crval + (1.0 - grid.crpix) * grid.cdelt, grid.cdelt, np.array([0.0])
        else:
            sampling, start, pixel, wave = 2, 0.0, 0.0, np.asarray(spectrum.wavelength, float)
        error = spectrum.error if spectrum.error is not None else np.array([-1.0])
        out = str(engine.scratch / "lsf.res")  # a plain name: GDL expands some characters
        if os.path.exists(out):
            os.remove(out)  # uly_solut_twrite appends (uly_lsf deletes it too)
        args = ("ulyss_ann_lsf", engine.component, str(engine.folder / f"{engine.component}.fits"),
                np.asarray(spectrum.flux, float), np.asarray(error, float), good.astype(np.int32), wave,
                int(sampling), float(start), float(pixel), params, lo, hi, width, step, int(mdegree),
                int(kmoment), out, engine.lsf_copy())
        value, printed = engine.session.call_capturing(*args)
        if isinstance(value, str):
            raise UlyssAnnError("GDL: " + " ".join(value.split())[:600])
        said = [line.strip() for line in printed if line.startswith("% ") and "initialization failed" in line]
        if said:
            raise UlyssAnnError("GDL: " + said[0][2:])
        table = read_solut_lsf(out)
    finally:
        engine.close()
    n_chunks, velscale, first, last = (float(v) for v in np.atleast_1d(value)[:4])
    chunks = lsf_chunks(lo, hi, width, step)
    if int(n_chunks) != len(chunks):  # the GDL routine makes sure of it; never expected
        raise UlyssAnnError(f"uly_lsf made {int(n_chunks)} chunks of {lo:g}-{hi:g} Å, expected {len(chunks)}")
    # A fitted range starts within a pixel of its chunk's start (ULySS keeps whole pixels):
    # checked, so that a uly_lsf that cut another range than [lo, hi] cannot pass unseen.
    index = np.rint((np.asarray(table["wmin"], float) - lo) / step).astype(int)
    pixel_angstrom = hi * velscale / C_KMS
    expected = chunks[np.clip(index, 0, len(chunks) - 1)] if len(table) else np.empty((0, 2))
    off = np.abs(np.column_stack([table["wmin"], table["wmax"]]) - expected) if len(table) else np.zeros((0, 2))
    if np.any(index < 0) or np.any(index >= len(chunks)) or np.any(off > 1.5 * pixel_angstrom):
        raise UlyssAnnError(f"uly_lsf fitted chunks off uly_lsf's own chunking of {lo:g}-{hi:g} Å "
                            f"(up to {off.max():.1f} Å): not an LSF of this range")
    table.add_column(index, name="chunk", index=0)
    table.meta.update(velscale=velscale, n_chunks=len(chunks), failed=len(chunks) - len(table),
                      range=(first, last), kmoment=int(kmoment), mdegree=int(mdegree))
    return table


#: A GDL function around ULySS's ``uly_lsf_read`` (in uly_lsf_plot.pro), whose structure the
#: python3-gdl bridge cannot return: [n, v, sig, h3, h4, centrWL] as one vector.
_READER = """\
function ulyss_ann_lsf_read_file, file
compile_opt idl2
catch, status
if status ne 0 then begin
   catch, /CANCEL
   return, 'ULYSS_ANN_LSF_READ_FILE: ' + !error_state.msg
endif
resolve_routine, 'uly_lsf_plot', /EITHER
lsf = uly_lsf_read(file)
catch, /CANCEL
return, [double(n_elements(lsf.v)), double(lsf.v), double(lsf.sig), double(lsf.h3), double(lsf.h4), $
         double(lsf.centrwl)]
end
"""


def read_lsf_ulyss(path, backend="auto", timeout=120):
    """Read an LSF file with ULySS's own reader, ``uly_lsf_read``, in GDL (what ``uly_lsf_plot``
    and a component's ``LSF=`` read; ``uly_lsf_smooth`` reads solut files only).

    ``uly_lsf_read`` takes a ULySS solut file (``uly_lsf``'s output: ``wave`` is then
    (WAVE_MIN + WAVE_MAX) / 2) and otherwise falls back to ``readcol, …, F='D,D,D,D,I'``
    for the simple tabular format of :func:`~ulyss_ann.spectra.line_spread.write_lsf`: the first
    five columns, the wavelength as a 16-bit integer. Returns a Table ``wave``
    [Angstrom], ``cz``, ``sigma`` [km/s], ``h3``, ``h4``, as ULySS read them.
    The file is copied under a plain name first (GDL expands characters in file names).
    """
    import shutil
    import tempfile
    from pathlib import Path

    from ulyss_ann.gdl.literals import check_gdl_path
    from ulyss_ann.gdl.session import open_session

    scratch = Path(check_gdl_path(tempfile.mkdtemp(prefix="ulyss_ann_lsfread_"),
                                  "the temporary folder (set TMPDIR to a plain path)", search_path=True))
    try:
        try:
            shutil.copyfile(path, scratch / "lsf.txt")
        except OSError as exc:
            raise UlyssAnnError(f"{path}: cannot read the LSF file ({exc.strerror})") from None
        (scratch / "ulyss_ann_lsf_read_file.pro").write_text(_READER)
        with open_session([scratch], backend=backend, timeout=timeout) as session:
            value, _ = session.call_capturing("ulyss_ann_lsf_read_file", str(scratch / "lsf.txt"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if isinstance(value, str):
        raise UlyssAnnError(f"{path}: ULySS's uly_lsf_read failed: " + " ".join(value.split())[:400])
    n = int(value[0])
    v, sig, h3, h4, wave = np.asarray(value[1:], float).reshape(5, n)
    table = Table([wave, v, sig, h3, h4], names=("wave", "cz", "sigma", "h3", "h4"))
    table["wave"].unit = "Angstrom"
    table["cz"].unit = table["sigma"].unit = "km/s"
    return table
