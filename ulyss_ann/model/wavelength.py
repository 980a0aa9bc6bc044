r"""Wavelength sampling of a network's output (or of a spectrum), as a FITS WCS.

Two samplings occur in ULySS files:

* **linear** — :math:`\lambda_i = \mathrm{CRVAL1} + (i + 1 - \mathrm{CRPIX1})\,\mathrm{CDELT1}`
  in Å, ``CTYPE1 = 'AWAV'`` (air) or ``'WAVE'`` (vacuum).  The authors' GSL
  networks use it: 2099 pixels of 1.25 Å from 4762.24 Å.
* **logarithmic** — ``CTYPE1 = 'AWAV-LOG'`` or ``'WAVE-LOG'``.  ULySS writes
  :math:`\ln(\lambda/\text{Å})` in CRVAL1 and CDELT1, so that
  :math:`\lambda_i = \exp(\mathrm{CRVAL1} + (i + 1 - \mathrm{CRPIX1})\,\mathrm{CDELT1})`
  (``uly_spect_read``; its heuristic: CRVAL1 between 4 and 9 is
  :math:`\ln\lambda`, below 4 is :math:`\log_{10}\lambda`).  The FITS standard
  (Greisen et al. 2006) instead puts the reference wavelength in Å in CRVAL1,
  :math:`\lambda = \mathrm{CRVAL1}\,\exp(w/\mathrm{CRVAL1})`; files with CRVAL1 > 9
  are read that way, through astropy.  We *write* the ULySS convention, since
  ULySS is the consumer.

Data products (model spectra, grids, best fits: :meth:`WavelengthGrid.data_cards`) also
say their unit so that astropy and specutils read them as they are: ``CUNIT1 =
'Angstrom'`` on a linear axis, and on a ULySS ln-λ axis, which no FITS reader but ULySS's
understands, a second, FITS-standard WCS (``CTYPE1A = 'AWAV-LOG'``, CRVAL1A in Å,
``CUNIT1A``): ``astropy.wcs.WCS(header, key="A")``. The interpolator files keep the
authors' cards exactly (:meth:`WavelengthGrid.header_cards`).

Linear and FITS-standard logarithmic axes are evaluated with
:class:`astropy.wcs.WCS`; the ULySS ln/log10 forms are not in the standard and are
evaluated here.  A header without CTYPE1 is read as ULySS reads it (air, and the
CRVAL1 heuristic above), which covers the MILES files.
"""

import functools
import warnings
from dataclasses import dataclass

import numpy as np

__all__ = ["WavelengthGrid", "C_KMS"]

#: The speed of light [km/s], as ULySS writes it (299792.458d): velocity scales of ln-λ grids.
C_KMS = 299792.458


@dataclass(frozen=True)
class WavelengthGrid:
    """Regular wavelength sampling of ``npix`` pixels along FITS axis 1.

    Each argument is also the attribute of that name.

    Parameters
    ----------
    npix : int
        Number of pixels.
    crval, cdelt, crpix : float
        The WCS keywords as stored: Å for linear sampling; :math:`\\ln` Å for
        ULySS-style logarithmic sampling (``log=True``).
    log : bool
        Logarithmic sampling (constant velocity step) instead of linear.
    air : bool
        Air wavelengths (``AWAV``) if True, vacuum (``WAVE``) otherwise.

    See Also
    --------
    from_header : the sampling of a FITS header.

    Examples
    --------
    >>> WavelengthGrid(npix=2099, crval=4762.24, cdelt=1.25).wavelength[[0, -1]]
    array([4762.24, 7384.74])
    """

    npix: int
    crval: float
    cdelt: float
    crpix: float = 1.0
    log: bool = False
    air: bool = True

    @property
    def ctype(self):
        """The FITS CTYPE1 of this sampling."""
        return ("AWAV" if self.air else "WAVE") + ("-LOG" if self.log else "")

    @property
    def wavelength(self):
        """Pixel-centre wavelengths in Å, float64 array of length ``npix``."""
        w = self.crval + (np.arange(self.npix) + 1.0 - self.crpix) * self.cdelt
        if self.log:
            return np.exp(w)
        return _linear_wavelength(self).copy()

    @property
    def velocity_step(self):
        """Velocity step per pixel in km/s for log sampling (c Δlnλ), else None."""
        return 299792.458 * self.cdelt if self.log else None

    def header_cards(self):
        """The WCS as FITS cards, in the authors' order (as in the interpolator files).

        Returns
        -------
        list of (str, object, str or None)
            ``(keyword, value, comment)``: CRPIX1, CTYPE1, CRVAL1, CDELT1 (Å, or ln Å when ``log``).
        """
        # An integral CRPIX1 is written as an integer, as in the authors' files.
        crpix = int(self.crpix) if float(self.crpix).is_integer() else self.crpix
        if self.log:
            unit = "ln(wavelength/Angstrom)"
            return [
                ("CRPIX1", crpix, "Reference pixel"),
                ("CTYPE1", self.ctype, "Log-sampled " + ("air" if self.air else "vacuum") + " wavelength"),
                ("CRVAL1", self.crval, unit + " at reference pixel"),
                ("CDELT1", self.cdelt, "Step in " + unit),
            ]
        return [
            ("CRPIX1", crpix, None),
            ("CTYPE1", self.ctype, None),
            ("CRVAL1", self.crval, "Wavelength at first pixel \\AA"
             if self.crpix == 1 else "Wavelength at reference pixel \\AA"),
            ("CDELT1", self.cdelt, "Step size in \\AA"),
        ]

    def data_cards(self):
        """:meth:`header_cards` and the unit, for data products (see the module's text).

        Returns
        -------
        list of (str, object, str or None)
            ``(keyword, value, comment)``: :meth:`header_cards`, then ``CUNIT1`` on a linear
            axis, or an alternate FITS-standard WCS ``A`` (CRVAL1A, CDELT1A in Å) beside a ln-λ one.
        """
        cards = self.header_cards()
        if not self.log:
            return cards + [("CUNIT1", "Angstrom", "wavelength unit")]
        reference = float(np.exp(self.crval))  # FITS -LOG: λ = λr exp(w/λr), w = CDELT (p − CRPIX), all in Å
        return cards + [
            ("WCSNAMEA", "FITS-standard", "ULySS's axis as standard FITS WCS"),
            ("CTYPE1A", self.ctype, "Log-sampled " + ("air" if self.air else "vacuum") + " wavelength"),
            ("CRPIX1A", self.crpix, "Reference pixel"),
            ("CRVAL1A", reference, "[Angstrom] wavelength at the reference pixel"),
            ("CDELT1A", reference * self.cdelt, "[Angstrom] CRVAL1A x step in ln(wavelength)"),
            ("CUNIT1A", "Angstrom", "wavelength unit"),
        ]

    def describe(self):
        """One line for people: range, step, sampling and medium.

        Returns
        -------
        str
            E.g. ``4762.240–7384.740 Å, 2099 px, 1.25 Å per pixel (linear sampling), air wavelengths``.
        """
        lam = self.wavelength
        medium = "air" if self.air else "vacuum"
        if self.log:
            step = f"{self.velocity_step:.4g} km/s per pixel (log sampling)"
        else:
            step = f"{self.cdelt:g} Å per pixel (linear sampling)"
        return f"{lam[0]:.3f}–{lam[-1]:.3f} Å, {self.npix} px, {step}, {medium} wavelengths"

    @classmethod
    def from_header(cls, header, npix=None):
        """Read the axis-1 sampling from a FITS header.

        Parameters
        ----------
        header : astropy.io.fits.Header or mapping
            CRVAL1, CDELT1 (or CD1_1), optionally CRPIX1 (default 1) and CTYPE1 (default: as ULySS
            reads it, air, with its CRVAL1 heuristic for ln λ and log10 λ).
        npix : int, optional
            Number of pixels (default: NAXIS1).

        Returns
        -------
        WavelengthGrid
            A linear grid in Å, or a ln-λ grid (a log10 or FITS-standard -LOG axis converted).

        Raises
        ------
        KeyError
            Naming the missing keyword, when CRVAL1 or CDELT1/CD1_1 is absent.
        ValueError
            When CTYPE1 is not a wavelength axis this package understands, or CRVAL1, CRPIX1
            or the step (CDELT1/CD1_1) is not a finite number, or the step is not positive.
        """
        npix = int(header["NAXIS1"] if npix is None else npix)
        ctype = str(header.get("CTYPE1", "")).strip().upper()
        if "CRVAL1" not in header:
            raise KeyError("CRVAL1")
        step_key = "CDELT1" if "CDELT1" in header else "CD1_1" if "CD1_1" in header else None
        if step_key is None:
            raise KeyError("CDELT1")
        crval = _finite(header, "CRVAL1")
        crpix = _finite(header, "CRPIX1", 1.0)
        cdelt = _finite(header, step_key)
        if cdelt <= 0:
            # wcslib calls a zero step a singular matrix; a negative one makes wavelengths decrease
            raise ValueError(f"{step_key} = {header[step_key]!r}: the wavelength step must be positive "
                             "(Å per pixel, or ln Å per pixel on a -LOG axis)")
        if ctype and ctype[:4] not in ("AWAV", "WAVE"):
            raise ValueError(f"CTYPE1 = '{ctype}' is not a wavelength axis (expected AWAV or WAVE, "
                             "optionally with -LOG)")
        air = not ctype.startswith("WAVE")
        suffix = ctype[5:8] if len(ctype) > 4 else ""
        if suffix not in ("", "WAV", "LOG"):
            raise ValueError(f"CTYPE1 = '{ctype}': unsupported wavelength algorithm '{suffix}' "
                             "(expected linear or -LOG)")
        if suffix == "LOG" or (not ctype and crval < 9):
            if crval < 4:  # log10 (ULySS's heuristic, e.g. SDSS coefficients)
                crval, cdelt = crval * np.log(10.0), cdelt * np.log(10.0)
            if crval < 9:
                return cls(npix, crval, cdelt, crpix, log=True, air=air)
            # FITS-standard -LOG (CRVAL1 in Å): convert to the ln form exactly. A missing
            # CRPIX1 means pixel 1 here, as for ULySS (the FITS default would be 0).
            header = header.copy()
            header["CRPIX1"] = crpix
            lam = _astropy_wavelength(header, npix)
            step = np.log(lam[1] / lam[0]) if npix > 1 else 0.0
            return cls(npix, float(np.log(lam[0])), float(step), 1.0, log=True, air=air)
        return cls(npix, crval, cdelt, crpix, log=False, air=air)


def _finite(header, key, default=None):
    """A WCS keyword's value as a finite float, or ValueError naming the keyword."""
    value = header.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not np.isfinite(number):
        raise ValueError(f"{key} = {value!r}: expected a finite number")
    return number


@functools.lru_cache(maxsize=64)
def _linear_wavelength(grid):
    """A linear grid's wavelengths, once per grid (a survey's files share one).

    wcslib's own arithmetic for a linear axis without PC matrix or unit, λ = CRVAL1 + CDELT1 ((p + 1) − CRPIX1),
    in its order of operations: the same float64 values, bit for bit, as astropy's ``WCS.pixel_to_world_values``
    (tests/test_fits_wcs.py checks it on random grids), without importing astropy.wcs, which costs an
    interactive session's first fit 0.1 s.
    """
    return grid.crval + grid.cdelt * ((np.arange(grid.npix) + 1.0) - grid.crpix)


def _astropy_wavelength(header, npix):
    """Axis-1 wavelengths [Å] of pixels 0..npix-1 through astropy's WCS."""
    # imported here: astropy.wcs brings astropy.coordinates and astropy.table (0.45 s of every process's start,
    # every CLI command and Dask worker), and only a grid's wavelengths need it, once per grid
    from astropy.wcs import WCS, FITSFixedWarning

    with warnings.catch_warnings():
        # No CUNIT1 in ULySS files: wcslib assumes SI and says so; values are Å regardless.
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs = WCS(header, naxis=[1])
    values = np.asarray(wcs.pixel_to_world_values(np.arange(npix, dtype=float)), dtype=float)
    unit = wcs.wcs.cunit[0]
    if header.get("CUNIT1") and unit:  # a stated unit: wcslib turned it into metres
        values = (values * unit).to_value("Angstrom")
    return values
