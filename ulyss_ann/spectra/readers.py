r"""Readers for the observed spectra users have, into one :class:`Spectrum`.

Each format is a reader of the registry (:mod:`~ulyss_ann.spectra.reader_registry`), in its own
module; a file is read by the reader of highest priority that identifies it from its content (never
from its name), or by the one ``format=`` / ``--format`` names:

* **apogee** (:mod:`~ulyss_ann.spectra.read_apogee`) — APOGEE apStar / aspcapStar: flux, error and
  mask in HDUs 1-3, a log10-λ WCS, vacuum wavelengths.
* **lamost-image** (:mod:`~ulyss_ann.spectra.read_lamost_image`) — a 2-D primary array whose rows
  are flux, inverse variance, wavelength (vacuum), and-mask, or-mask.
* **muse** (:mod:`~ulyss_ann.spectra.read_muse`) — MUSE / PampelMuse: 1-D flux in the primary HDU
  with a linear WCS, the 1-σ error in an extension ``SIGMA``; RA/Dec from ``RA``/``DEC`` (or
  ``HIERARCH STAR RA``).
* **fits-1d** (:mod:`~ulyss_ann.spectra.read_fits_1d`) — plain 1-D FITS with a linear or
  logarithmic WCS, with or without ``CTYPE1`` (MILES), an optional error extension (``ERROR``,
  ``ERR``, ``STAT`` as variance, ``IVAR`` as inverse variance).
* **table** (:mod:`~ulyss_ann.spectra.read_survey_table`) — SDSS / LAMOST binary tables (flux,
  inverse variance or error, wavelength or ``LOGLAM``, masks; vacuum).
* **text** (:mod:`~ulyss_ann.spectra.read_text`) — columns wavelength [Å], flux[, error],
  separated by spaces or commas, with an optional header line naming them.
* **specutils** (:mod:`~ulyss_ann.spectra.read_specutils`) — only when named: the file handed to
  specutils' own loaders (``specutils:LOADER`` names one).

Each may be compressed (:mod:`~ulyss_ann.spectra.compression`): gzip or bzip2 as a whole
(``.fits.gz``, ``.fits.bz2``, ``.txt.gz``; recognised from the content, as the format is), or
fpack's tile compression (``.fits.fz``, the image in HDU 1, its ``SIGMA`` compressed too).

The medium of the wavelengths is read from ``AIRORVAC``, ``VACUUM`` or ``CTYPE1``
(:mod:`~ulyss_ann.spectra.spectrum_medium`; ``Spectrum.medium`` and ``medium_source`` say which
and why). Vacuum wavelengths are converted to air with the IAU standard formula of Morton
(2000, ApJS 130, 403, Eq. 8, from Edlén 1966, as adopted by SDSS and VALD):

.. math::

    \lambda_\mathrm{air} = \lambda_\mathrm{vac} / n, \quad
    n = 1 + 8.34254\times10^{-5} + \frac{2.406147\times10^{-2}}{130 - s^2}
          + \frac{1.5998\times10^{-4}}{38.9 - s^2}, \quad s = 10^4/\lambda_\mathrm{vac}\ [\mu\mathrm{m}^{-1}].

Bad values are masked, never passed on: NaN or infinite flux, missing, zero,
negative or non-finite errors, pixels flagged by the file's mask. Their number is
kept in ``Spectrum.n_bad``.

Sizes are checked before any data is read (:mod:`ulyss_ann.model.limits`): a FITS file
whose headers declare more data than the file holds is truncated, one declaring more
pixels than the memory budget (``ULYSS_ANN_MAX_PIXELS``) is refused, and so is a text
file too long for that budget.
"""

import os

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.spectra import (read_apogee, read_fits_1d, read_lamost_image, read_muse,  # noqa: F401 - each
                               read_specutils, read_survey_table, read_text)  # registers its reader
from ulyss_ann.spectra.reader_registry import (FITS_SIGNATURE, SpectrumFile, SpectrumReadError, reader_named,
                                               registered_readers)

__all__ = ["read_spectrum", "check_format", "formats_help",
           "has_fits_signature"]


def has_fits_signature(path):
    """True when the file starts with a FITS primary header's ``SIMPLE  =`` card (else: text)."""
    with open(path, "rb") as handle:
        return handle.read(len(FITS_SIGNATURE)) == FITS_SIGNATURE


def check_format(name):
    """``name`` (a reader's, or ``NAME:OPTION``) as given, or None; an unknown one refused in one line
    listing the registered readers (UlyssAnnError)."""
    if name is None or name == "":
        return None
    if not isinstance(name, str):
        raise UlyssAnnError(f"format {name!r}: expected a reader's name, one of "
                            f"{', '.join(r.name for r in registered_readers())}")
    reader_named(name)
    base, sep, option = name.partition(":")
    return base.strip().lower() + (f":{option.strip()}" if sep else "")  # one spelling: the run's record compares it


def formats_help():
    """The registered readers, one ``NAME: description`` each, for the CLI's ``--format`` help."""
    return "; ".join(f"{reader.name}: {reader.description}" for reader in registered_readers())


def _no_reader(source):
    if source.is_fits:
        return f"{source.path}: no spectrum found (an empty primary HDU and no table)"
    return f"{source.path}: no reader identifies it; give --format NAME (readers: " + \
        ", ".join(r.name for r in registered_readers()) + ")"


def read_spectrum(path, format=None):  # noqa: A002 - the name astropy's and specutils' read take
    """Read an observed spectrum in any of the registered formats.

    Parameters
    ----------
    path : path-like
        The spectrum file (plain, gzip, bzip2 or fpack-compressed).
    format : str, optional
        The reader's name (``muse``, ``apogee``, ``specutils:LOADER``…: :func:`formats_help`); None
        (default): the reader of highest priority that identifies the file.

    Returns
    -------
    Spectrum
        Flux, 1-σ error (None without one), wavelengths [Å] in air (converted when the file's are in
        vacuum), good pixels; ``meta`` with ``id``, ``file``, ``format``, ``snr`` and what the file
        says (``ra``, ``dec`` [deg], the resolution).

    Raises
    ------
    SpectrumReadError
        One line naming the file and what is wrong (missing, corrupt, truncated,
        unknown layout, no usable pixel, not of the format forced).
    UlyssAnnError
        An unknown ``format`` (one line listing the registered readers).
    """
    path = os.fspath(path)
    forced = reader_named(format) if format else None  # an unknown name: said before the file is looked at
    if not os.path.isfile(path):
        raise SpectrumReadError(f"{path}: no such file")
    if os.path.getsize(path) == 0:
        raise SpectrumReadError(f"{path}: an empty file (0 bytes): nothing was written to it")
    source = SpectrumFile(path)
    if forced is not None:
        if forced.identifies and not forced.identify(source):
            claimed = next((r.name for r in registered_readers() if r.identifies and r.identify(source)), None)
            raise SpectrumReadError(f"{path}: not a {forced.name} file ({forced.description})"
                                    + (f"; it reads as {claimed}: drop --format or give --format {claimed}"
                                       if claimed else ""))
        return forced.read(source)
    for reader in registered_readers():
        if reader.identifies and reader.identify(source):
            return reader.read(source)
    raise SpectrumReadError(_no_reader(source))
