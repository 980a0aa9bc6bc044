r"""Relative line-spread functions (LSF): ULySS's text files, and Gaussian ones from FWHMs.

A *relative* LSF is what must be applied to the model to give it the observation's
resolution. ULySS injects it into the model (``uly_spect_lsfconvol``; the file made by
``uly_lsf`` from a standard star, or written by hand). Its simple text format, read by
``uly_lsf_read`` with ``readcol`` (format ``D,D,D,D,I``), has one record per line::

    cz  sigma  h3  h4  wavelength

cz and σ in km/s, h3 and h4 Gauss–Hermite moments, the central wavelength in Å as an
integer (ULySS reads it as a 16-bit ``INT``, so below 32768 Å). Lines that are not
numbers (our ``#`` header) are skipped by ``readcol``.

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

import numpy as np
from astropy.table import Table

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.model.wavelength import C_KMS

__all__ = ["read_lsf", "write_lsf", "gaussian_lsf", "FWHM_TO_SIGMA"]

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


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
    table = Table([wave, cz, sigma, h3, h4], names=("wave", "cz", "sigma", "h3", "h4"))
    table["wave"].unit = "Angstrom"
    table["cz"].unit = table["sigma"].unit = "km/s"
    return table


def write_lsf(lsf, path, comment=None):
    """Write a relative LSF in ULySS's simple text format (``uly_lsf_read`` reads it)."""
    wave = np.asarray(lsf["wave"], dtype=float)
    if np.any(wave != np.round(wave)) or np.any(wave >= 32768) or np.any(wave <= 0):
        raise UlyssAnnError("LSF wavelengths must be whole Ångström in 1-32767 (ULySS reads them as INT)")
    with open(path, "w") as handle:
        handle.write("# relative LSF for ULySS (uly_lsf_read): cz [km/s]  sigma [km/s]  h3  h4  wavelength [A]\n")
        if comment:
            for line in str(comment).splitlines():
                handle.write(f"# {line}\n")
        for row in lsf:
            handle.write(f"{row['cz']:.6f} {row['sigma']:.6f} {row['h3']:.6f} {row['h4']:.6f} {int(row['wave'])}\n")


def read_lsf(path):
    """Read a relative LSF written in ULySS's simple text format.

    As ``readcol`` does, lines that are not five numbers are skipped, and the
    wavelength is truncated to an integer. Raises UlyssAnnError naming the file when it
    is missing or holds no record.
    """
    rows = []
    try:
        with open(path) as handle:
            for line in handle:
                fields = line.split()
                if len(fields) < 5:
                    continue
                try:
                    rows.append([float(f) for f in fields[:4]] + [float(int(float(fields[4])))])
                except ValueError:
                    continue
    except OSError as exc:
        raise UlyssAnnError(f"{path}: cannot read the LSF file ({exc.strerror}); write one with "
                            "`ulyss-ann lsf` or ULySS's uly_lsf") from None
    if not rows:
        raise UlyssAnnError(f"{path}: no LSF record (lines 'cz sigma h3 h4 wavelength') found")
    cz, sigma, h3, h4, wave = np.array(rows).T
    if np.any(sigma <= 0) or np.any(np.diff(wave) <= 0):
        raise UlyssAnnError(f"{path}: LSF records need sigma > 0 and increasing wavelengths")
    return _table(wave, cz, sigma, h3, h4)
