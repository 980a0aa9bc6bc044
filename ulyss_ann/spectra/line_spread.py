r"""Relative line-spread functions (LSF): ULySS's text files, and Gaussian ones from FWHMs.

A *relative* LSF is what must be applied to the model to give it the observation's
resolution. ULySS injects it into the model (``uly_spect_lsfconvol``; the file made by
``uly_lsf`` from a standard star, or written by hand). Its simple text format, read by
``uly_lsf_read`` with ``readcol`` (format ``D,D,D,D,I``), has one record per line::

    cz  sigma  h3  h4  wavelength

cz and σ in km/s, h3 and h4 Gauss–Hermite moments, the central wavelength in Å as an
integer (ULySS reads it as a 16-bit ``INT``, so below 32768 Å). Lines that are not
numbers (our ``#`` header) are skipped by ``readcol``; :func:`read_lsf` skips blank lines
and lines that do not begin with a number (comments, a header), and refuses, naming the
line, one that begins with a number but is not a record: ``readcol`` would drop it with
a message nobody reads, and the LSF would silently lose that wavelength.

For a Gaussian instrument of FWHM :math:`W_\mathrm{obs}(\lambda)` and a model of
:math:`W_\mathrm{model}` (Å), the relative LSF at λ is a Gaussian of

.. math:: \sigma_v(\lambda) = \frac{c}{\lambda}\,
          \frac{\sqrt{W_\mathrm{obs}^2 - W_\mathrm{model}^2}}{2\sqrt{2\ln 2}}
          \quad[\mathrm{km\,s^{-1}}],

the quadratic difference of the two widths (Gaussians add in variance).

Why it matters: ULySS fits one Gaussian broadening σ for the whole range. MUSE's
FWHM falls from 2.82 Å at 4750 Å to 2.54 Å at 7000 Å; relative to a 2 Å model that is
σ_v = 53 km/s at 4750 Å but 28 km/s at 7000 Å, which no single σ matches. The
mismatch shows up in the line depths, i.e. in [Fe/H] (see ``scripts/reproduce_paper``).
"""

import os
import re

import numpy as np

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.model.wavelength import C_KMS
from ulyss_ann.spectra.inputs import is_number

__all__ = ["read_lsf", "write_lsf", "gaussian_lsf", "lsf_chunks", "read_solut_lsf", "SOLUT_LSF_COLUMNS",
           "FWHM_TO_SIGMA"]

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
#: The columns of :func:`read_solut_lsf`.
SOLUT_LSF_COLUMNS = ("wmin", "wmax", "wave", "cz", "e_cz", "sigma", "e_sigma", "h3", "e_h3", "h4", "e_h4", "chi2")
_CARD = re.compile(r"^!\s*(WAVE_MIN|WAVE_MAX)\s*=\s*([-+0-9.EeDd]+)")


def lsf_chunks(lo, hi, width, step):
    """``uly_lsf``'s chunks of ``[lo, hi]`` [Å]: an (n, 2) array of [minWL, maxWL] (n may be 0).

    As ``uly_lsf``: ``n = floor((hi - lo - width) / step) + 1`` chunks starting at
    ``lo + step * k``, each ``width`` wide and cut at ``hi``.
    """
    if not (width > 0 and step > 0):
        raise UlyssAnnError(f"chunk width {width:g} Å and step {step:g} Å: both must be > 0")
    n = int(np.floor((hi - lo - width) / step)) + 1
    starts = lo + step * np.arange(max(n, 0))
    return np.column_stack([starts, np.minimum(starts + width, hi)])


def gaussian_lsf(fwhm_observed, fwhm_model, wavelengths):
    """The relative LSF taking a model of ``fwhm_model`` Å to an instrument of ``fwhm_observed``.

    Parameters
    ----------
    fwhm_observed : callable or float
        The instrument's FWHM [Å] as a function of wavelength [Å], or a constant.
    fwhm_model : float
        The model's FWHM [Å] (2 Å for the GSL networks of the paper).
    wavelengths : array
        Where to place the records [Å]; rounded to integers (ULySS's format).

    Returns
    -------
    astropy.table.Table with ``wave`` [Angstrom], ``cz``, ``sigma`` [km/s], ``h3``, ``h4``.
    """
    wave = np.unique(np.round(np.asarray(wavelengths, dtype=float)))
    fwhm = np.broadcast_to(fwhm_observed(wave) if callable(fwhm_observed) else float(fwhm_observed), wave.shape)
    if np.any(fwhm <= fwhm_model):
        worst = wave[np.argmin(fwhm)]
        raise UlyssAnnError(f"the instrument's FWHM ({fwhm.min():.3f} Å at {worst:.0f} Å) is not broader than the "
                            f"model's ({fwhm_model} Å): a relative LSF cannot sharpen the model")
    sigma = C_KMS / wave * np.sqrt(fwhm ** 2 - fwhm_model ** 2) * FWHM_TO_SIGMA
    return _table(wave, np.zeros_like(wave), sigma, np.zeros_like(wave), np.zeros_like(wave))


def _table(wave, cz, sigma, h3, h4):
    from astropy.table import Table  # here: 0.2 s of import that a fit without an LSF file never needs

    table = Table([wave, cz, sigma, h3, h4], names=("wave", "cz", "sigma", "h3", "h4"))
    table["wave"].unit = "Angstrom"
    table["cz"].unit = table["sigma"].unit = "km/s"
    return table


def write_lsf(lsf, path, comment=None):
    """Write a relative LSF in ULySS's simple text format (``uly_lsf_read`` reads it).

    When ``lsf`` has the errors ``e_cz`` and ``e_sigma`` (a measured LSF), they follow as
    a sixth and seventh column: ``readcol`` reads the first five and ignores them.
    """
    wave = np.asarray(lsf["wave"], dtype=float)
    if np.any(wave != np.round(wave)) or np.any(wave >= 32768) or np.any(wave <= 0):
        raise UlyssAnnError("LSF wavelengths must be whole Ångström in 1-32767 (ULySS reads them as INT)")
    errors = "e_cz" in lsf.colnames and "e_sigma" in lsf.colnames
    try:
        with open(path, "w") as handle:
            handle.write("# relative LSF for ULySS (uly_lsf_read): cz [km/s]  sigma [km/s]  h3  h4  wavelength [A]"
                         + ("  e_cz  e_sigma [km/s]" if errors else "") + "\n")
            if comment:
                for line in str(comment).splitlines():
                    handle.write(f"# {line}\n")
            for row in lsf:
                line = f"{row['cz']:.6f} {row['sigma']:.6f} {row['h3']:.6f} {row['h4']:.6f} {int(row['wave'])}"
                if errors:
                    line += f" {row['e_cz']:.6f} {row['e_sigma']:.6f}"
                handle.write(line + "\n")
    except OSError as exc:
        raise UlyssAnnError(f"{path}: cannot write the LSF file ({exc.strerror or exc})") from None


def read_lsf(path):
    """Read a relative LSF: ULySS's simple text format, or the solut file ``uly_lsf`` writes.

    As ``uly_lsf_read`` does: a solut file (``!BEGIN`` blocks) gives each chunk's LOSVD at
    (WAVE_MIN + WAVE_MAX) / 2 (:func:`read_solut_lsf`); otherwise, as ``readcol``,
    blank lines and lines that do not begin with a number are skipped, and the wavelength
    is truncated to an integer. Raises UlyssAnnError naming the file (and the line) when
    it is missing, not text, holds no record, a line beginning with a number that is not
    a record, or a value that is not finite.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError as exc:
        raise UlyssAnnError(f"{path}: cannot read the LSF file ({exc.strerror}); write one with "
                            "`ulyss-ann lsf` or ULySS's uly_lsf") from None
    if b"\0" in head:
        raise UlyssAnnError(f"{path}: a binary file, not an LSF (ULySS's text format: lines "
                            "'cz sigma h3 h4 wavelength'); write one with `ulyss-ann lsf` or ULySS's uly_lsf")
    if head.lstrip().startswith(b"!BEGIN"):
        chunks = _text_lines(path, read_solut_lsf)
        if not len(chunks):
            raise UlyssAnnError(f"{path}: a uly_lsf file without any chunk fitted")
        values = np.column_stack([np.asarray(chunks[c], float) for c in ("wave", "cz", "sigma", "h3", "h4")])
        if not np.all(np.isfinite(values)):
            raise UlyssAnnError(f"{path}: NaN or infinite values in the fitted chunks of this uly_lsf file")
        table = _table(np.asarray(chunks["wave"], float), chunks["cz"], chunks["sigma"], chunks["h3"], chunks["h4"])
        table["e_cz"], table["e_sigma"] = chunks["e_cz"], chunks["e_sigma"]
        return table
    rows = _text_lines(path, _records)
    if not rows:
        raise UlyssAnnError(f"{path}: no LSF record (lines 'cz sigma h3 h4 wavelength') found")
    cz, sigma, h3, h4, wave, e_cz, e_sigma = np.array(rows).T
    if np.any(sigma <= 0) or np.any(np.diff(wave) <= 0):
        raise UlyssAnnError(f"{path}: LSF records need sigma > 0 and increasing wavelengths")
    table = _table(wave, cz, sigma, h3, h4)
    if np.all(np.isfinite(e_cz)) and np.all(np.isfinite(e_sigma)):  # a measured LSF: its errors
        table["e_cz"], table["e_sigma"] = e_cz, e_sigma
        table["e_cz"].unit = table["e_sigma"].unit = "km/s"
    return table


def _text_lines(path, read):
    """``read(path)``, with a file that is not text (or cannot be read) refused in one line."""
    try:
        return read(path)
    except UnicodeDecodeError:
        raise UlyssAnnError(f"{path}: not a text file, not an LSF (ULySS's text format: lines "
                            "'cz sigma h3 h4 wavelength')") from None
    except OSError as exc:
        raise UlyssAnnError(f"{path}: cannot read the LSF file ({exc.strerror}); write one with "
                            "`ulyss-ann lsf` or ULySS's uly_lsf") from None


def _records(path):
    """The records of a text LSF: [cz, sigma, h3, h4, wave, e_cz, e_sigma] (the errors NaN when absent)."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields or not is_number(fields[0]):
                continue  # a blank line, a comment or a header, as readcol skips them
            try:
                if len(fields) < 5:
                    raise ValueError
                row = [float(f) for f in fields[:4]] + [float(int(float(fields[4])))]
                extra = [float(f) for f in fields[5:7]] if len(fields) >= 7 else [np.nan, np.nan]
            except (ValueError, OverflowError):
                raise UlyssAnnError(f"{path}, line {number}: {line.strip()[:60]!r} is not an LSF record "
                                    "(cz sigma h3 h4 wavelength: five numbers)") from None
            if not np.all(np.isfinite(row)):
                raise UlyssAnnError(f"{path}, line {number}: {line.strip()[:60]!r}: NaN or infinite values in an "
                                    "LSF record")
            rows.append(row + extra)
    return rows


def read_solut_lsf(path):
    """The chunks of a ULySS solut file written by ``uly_lsf`` (``uly_solut_twrite``), as a Table.

    Each block has a header (``!WAVE_MIN=``, ``!WAVE_MAX=`` cards: the fitted range),
    a ``!cols:`` line, a ``!unts:`` line and a line of values. Returned: ``wmin``,
    ``wmax``, ``wave`` = (WAVE_MIN + WAVE_MAX) / 2 (as ``uly_lsf_read`` computes it),
    ``cz``, ``e_cz``, ``sigma``, ``e_sigma``, ``h3``, ``e_h3``, ``h4``, ``e_h4`` (0 where
    not fitted), ``chi2``. Values are found by column name, and the LOSVD columns come
    before the component's, so parameter names are never parsed. A missing file means
    no chunk was fitted (empty table).

    A block without WAVE_MIN/WAVE_MAX is skipped (counted in ``meta['stale']``): when a
    chunk's fit fails after an earlier one succeeded, ``uly_lsf`` (ULySS 1.3.2) writes the
    previous chunk's solution again, its pointers already freed (``sol`` is never reset
    in its loop; only a failure of the first chunk reaches its 'hum ... what do we do
    when a fit failed?'), so that block repeats numbers of another chunk and has no range.
    """
    rows, block, columns, stale = [], {}, None, 0
    if os.path.isfile(path):
        with open(path) as handle:
            for number, line in enumerate(handle, start=1):
                card = _CARD.match(line)
                if line.startswith("!BEGIN"):
                    block, columns = {}, None
                elif card:
                    block[card.group(1)] = float(card.group(2).replace("D", "E").replace("d", "e"))
                elif line.startswith("!cols:"):
                    columns = line[6:].split()
                elif line.strip() and not line.startswith("!"):
                    if columns is None:
                        raise UlyssAnnError(f"{path}, line {number}: a value line before its '!cols:' line; "
                                            "not a uly_lsf output")
                    if "WAVE_MIN" not in block or "WAVE_MAX" not in block:
                        stale += 1
                        columns = None
                        continue
                    values = line.split()

                    def value(name):
                        if name not in columns:
                            return 0.0
                        try:
                            return float(values[columns.index(name)])
                        except (IndexError, ValueError):
                            raise UlyssAnnError(f"{path}, line {number}: no number for {name}") from None

                    wmin, wmax = block["WAVE_MIN"], block["WAVE_MAX"]
                    rows.append([wmin, wmax, (wmin + wmax) / 2, value("cz"), value("e_cz"), value("sig"),
                                 value("e_sig"), value("h3"), value("e_h3"), value("h4"), value("e_h4"),
                                 value("chisq")])
                    columns = None
    names = SOLUT_LSF_COLUMNS
    from astropy.table import Table

    table = Table(rows=rows, names=names) if rows else Table(names=names, dtype=[float] * len(names))
    for name in ("wmin", "wmax", "wave"):
        table[name].unit = "Angstrom"
    for name in ("cz", "e_cz", "sigma", "e_sigma"):
        table[name].unit = "km/s"
    table.meta["stale"] = stale
    return table
