"""The masked bands of a fit: telluric sets by name or from a file, and the interstellar lines.

**Telluric sets** (:data:`TELLURIC_SETS`), in the observer's frame (the spectrum's own
wavelengths, air):

* ``muse`` (the default): the telluric regions of the MUSE pipeline, over which
  ``muse_standard`` derives its telluric correction (MUSE Pipeline User Manual,
  ESO-293336; ``muse_standard`` / ``muse_scipost``): O₂ γ 6273–6320, O₂ B 6864–6967,
  H₂O 7164–7325, O₂ A 7590–7700, H₂O 8131–8345, 8952–9028 and 9274–9770 Å. The old
  O₂ B mask (6860–6890 Å) left 6890–6920 Å in the fit, where the MUSE star of the
  shared data absorbs by 4–13 % (5–18σ).
* ``none``: no telluric mask.

Each band of a named set is widened by :data:`BARYCENTRIC_KMS` (±30 km/s) on both sides:
telluric lines sit still in the telescope's frame, and a spectrum corrected to the
barycentre (the MUSE pipeline's default) carries them shifted by the Earth's orbital
velocity projected on the line of sight, at most ±29.8 km/s. A file's bands
(:func:`read_band_file`) are masked as written: they are the user's.

A spectrum shifted to its star's rest frame (the MILES library) carries its tellurics
shifted by minus the star's velocity, which no fixed set follows: mask them with a FILE.

**Interstellar masks** (``mask_ism``, :data:`ISM_LINES`): Na D (5889.95, 5895.92 Å) and
the diffuse interstellar bands at 5780.5 and 6283.8 Å, each its half-width (measured on
the residuals of the MUSE star: docs/fitting.md) plus the interstellar gas's velocity
range, assumed to be the rest frame ±:data:`ISM_KMS` (50 km/s: local gas of a
Galactic line of sight; not the star's velocity).

``mask_nad`` (older, kept) masks 5885–5900 Å as written: the interstellar Na D lines and
a star's own Na D near rest (|cz| ≲ 250 km/s) alike.
"""

import os
from dataclasses import dataclass

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.model.wavelength import C_KMS

__all__ = ["TelluricMask", "TELLURIC_SETS", "DEFAULT_TELLURIC", "BARYCENTRIC_KMS", "ISM_KMS", "ISM_LINES",
           "NA_D_BAND", "resolve_telluric", "telluric_record", "read_band_file", "widened", "ism_bands", "masked_bands"]

#: The barycentric correction's range [km/s]: the Earth's orbital velocity (29.8 km/s), rounded up.
BARYCENTRIC_KMS = 30.0
#: The interstellar gas's velocity range about rest [km/s], for a Galactic line of sight.
ISM_KMS = 50.0

#: Telluric bands of the MUSE pipeline's telluric correction [Å, air, observer's frame], as published.
MUSE_BANDS = ((6273.0, 6320.0, "O2 gamma"), (6864.0, 6967.0, "O2 B"), (7164.0, 7325.0, "H2O"),
              (7590.0, 7700.0, "O2 A"), (8131.0, 8345.0, "H2O"), (8952.0, 9028.0, "H2O"),
              (9274.0, 9770.0, "H2O"))
#: The named telluric sets.
TELLURIC_SETS = {"muse": MUSE_BANDS, "none": ()}
#: The set masked in observed spectra unless told otherwise.
DEFAULT_TELLURIC = "muse"

#: Interstellar lines [Å, air, rest] and the half-width masked about each before the velocity range
#: [Å]: about one MUSE/MILES FWHM (2.5-2.8 Å) for the unresolved Na D lines, where a line's depth has
#: fallen to ~6 %; the DIBs' own widths (FWHM 2.1 and ~4.5 Å) broadened by the same.
ISM_LINES = ((5889.95, 2.5, "Na I D2"), (5895.92, 2.5, "Na I D1"), (5780.5, 3.0, "DIB 5780"),
             (6283.8, 5.0, "DIB 6284"))
#: The older ``mask_nad`` band [Å, observer's frame].
NA_D_BAND = (5885.0, 5900.0, "Na D")


@dataclass(frozen=True)
class TelluricMask:
    """A resolved telluric choice: its name (a set's, or a file's absolute path) and its bands [Å], widened."""

    name: str
    bands: tuple

    def record(self):
        """As the run's record keeps it: a change of set or of a file's bands is another run."""
        return {"set": self.name, "bands": [[round(lo, 3), round(hi, 3)] for lo, hi in self.bands]}


def telluric_record(choice):
    """The telluric choice as the run's record keeps it (the bands resolved: --resume sees a changed set)."""
    resolved = resolve_telluric(choice)
    if resolved is None:
        default = resolve_telluric(DEFAULT_TELLURIC).record()
        return {**default, "set": f"{DEFAULT_TELLURIC}, except in simulated spectra"}
    return resolved.record()


def widened(band, kms=BARYCENTRIC_KMS):
    """``band`` (lo, hi) [Å] widened by ±``kms`` (a Doppler shift of each edge outwards)."""
    lo, hi = band[:2]
    return (lo * (1.0 - kms / C_KMS), hi * (1.0 + kms / C_KMS))


def read_band_file(path):
    """Bands [Å] from a text file: two columns LO HI per line, ``#`` comments; one-line UlyssAnnError if malformed."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise UlyssAnnError(f"--telluric {path}: cannot read it ({reason}); give muse, none or a text file "
                            "of bands, LO HI in Angstrom per line") from None
    bands = []
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        fields = text.replace(",", " ").split()
        try:
            lo, hi = (float(v) for v in fields)
        except ValueError:
            raise UlyssAnnError(f"--telluric {path}, line {number}: {line.strip()!r}: expected two wavelengths "
                                "LO HI in Angstrom") from None
        if not (lo < hi and lo > 0 and hi < float("inf")):
            raise UlyssAnnError(f"--telluric {path}, line {number}: {lo:g} {hi:g}: give LO < HI, in Angstrom")
        bands.append((lo, hi))
    if not bands:
        raise UlyssAnnError(f"--telluric {path}: no bands in it; give LO HI per line (or --telluric none)")
    return tuple(bands)


def resolve_telluric(choice):
    """A :class:`TelluricMask` for ``choice``, or None (the default set, except for simulated spectra).

    ``choice``: None (automatic), True (the default set), False (none), a set's name, a
    file of bands, or a :class:`TelluricMask` already resolved.
    """
    if choice is None or isinstance(choice, TelluricMask):
        return choice
    if isinstance(choice, bool) or type(choice).__name__ == "bool_":  # numpy booleans too
        choice = DEFAULT_TELLURIC if choice else "none"
    if not isinstance(choice, (str, os.PathLike)):
        raise UlyssAnnError(f"telluric (--telluric) {choice!r}: give {', '.join(TELLURIC_SETS)}, a file of "
                            "bands (LO HI per line), True or False")
    name = os.fspath(choice)
    if name.lower() in TELLURIC_SETS:
        name = name.lower()
        return TelluricMask(name, tuple(widened(b) for b in TELLURIC_SETS[name]))
    if not os.path.isfile(name):
        raise UlyssAnnError(f"telluric (--telluric) {name!r}: neither a set ({', '.join(TELLURIC_SETS)}) nor a "
                            "file; give one of those, or a text file of bands, LO HI in Angstrom per line")
    path = os.path.abspath(name)
    return TelluricMask(path, read_band_file(path))


def ism_bands():
    """The interstellar masks [Å], observer's frame: each line ± its half-width ± the gas's velocity range."""
    return tuple(widened((centre - half, centre + half), ISM_KMS) for centre, half, _ in ISM_LINES)


def masked_bands(config, simulated):
    """Every band masked in one spectrum's fit [Å]: telluric, Na D, interstellar, the user's.

    ``simulated``: a grid spectrum (``SIMULATD = T``), which has no telluric bands: the
    automatic choice (``telluric`` None) masks none in it.
    """
    bands = [tuple(m) for m in config.masks]
    telluric = resolve_telluric(config.telluric)
    if telluric is None and not simulated:
        telluric = resolve_telluric(DEFAULT_TELLURIC)
    if telluric is not None:
        bands += list(telluric.bands)
    if config.mask_nad:
        bands.append(NA_D_BAND[:2])
    if getattr(config, "mask_ism", False):
        bands += list(ism_bands())
    return bands
