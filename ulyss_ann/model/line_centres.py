"""Which medium a network's spectra are really on, measured from its strong lines.

A header can be wrong: the authors' trial 7 and 8 say ``CTYPE1 = 'AWAV'`` (air) over
PHOENIX wavelengths, which are vacuum ones (issue 26). :func:`measured_medium` evaluates
the network at a representative point (:func:`representative_point`: a solar-like dwarf,
5800 K / 4.4 / −0.5, when the network has those parameters and bounds, else the
training grid's mean), finds the centre of each strong line in its range (Hβ, the Mg b
triplet, Na D, Hα: :data:`STRONG_LINES`) as the vertex of the parabola through the
three pixels about the line's minimum, and compares them with the lines' air and vacuum
wavelengths. The medium whose median velocity offset is within :data:`MATCH_KMS` of
zero — and nearer zero than the other's by at least half the air-vacuum difference, with
most of the lines within :data:`MATCH_KMS` of it — is the one the network's pixels are on;
otherwise the measurement says nothing
(``medium`` None: too few lines, or a network too poor to place them).

Measured (``ulyss-ann info``): trial 7 and trial 8 +82.1 / +82.8 km/s from air and
−1.4 / −0.7 km/s from vacuum — vacuum, against their headers; the bundled ``miles``
network (trained on MILES, air) +1.7 from air, −81.3 from vacuum, and the bundled ``example``
(on air since it was rewritten: ulyss_ann/data/PROVENANCE.md) −0.5 from air, −84.0 from vacuum: air.
"""

from dataclasses import dataclass

import numpy as np

from ulyss_ann.model.medium import AIR, VACUUM, air_to_vacuum
from ulyss_ann.model.wavelength import C_KMS

__all__ = ["STRONG_LINES", "MATCH_KMS", "LineCentre", "MediumMeasurement", "representative_point",
           "line_centres", "measured_medium", "medium_check", "warn_if_lines_contradict"]

#: Strong lines of FGK stars and their air wavelengths [Å] (NIST; Moore's multiplet table for Mg b).
STRONG_LINES = (("Hβ", 4861.33), ("Mg b1", 5183.60), ("Mg b2", 5172.68), ("Mg b4", 5167.32),
                ("Na D2", 5889.95), ("Na D1", 5895.92), ("Hα", 6562.80))

#: A medium is the measured one when the lines' median offset from it is within this [km/s]: a tenth
#: of a 1.25 Å pixel at 5500 Å is 7 km/s; the air-vacuum difference is ≈ 83 km/s.
MATCH_KMS = 20.0

#: The solar-like dwarf at which the lines are measured, when the network has these parameters.
DWARF = {"teff": 5800.0, "logg": 4.4, "fe/h": -0.5}

#: Pixels searched on each side of the line's expected place (air and vacuum both inside).
_SEARCH_PIXELS = 3


@dataclass(frozen=True)
class LineCentre:
    """One line: its name, air and vacuum wavelengths [Å], the measured centre [Å] and its offsets [km/s]."""

    name: str
    air: float
    vacuum: float
    measured: float

    @property
    def from_air(self):
        return C_KMS * (self.measured / self.air - 1)

    @property
    def from_vacuum(self):
        return C_KMS * (self.measured / self.vacuum - 1)


@dataclass(frozen=True)
class MediumMeasurement:
    """What :func:`measured_medium` found: the medium (None: undecided), the median offsets [km/s]
    from air and from vacuum, the lines, and the parameters of the spectrum measured."""

    medium: str
    from_air: float
    from_vacuum: float
    lines: tuple
    point: dict

    def describe(self):
        """One line for people: ``+82.9 km/s from air, +0.1 from vacuum (5 lines: Hβ, …): vacuum``."""
        if not self.lines:
            return "no strong line (Hβ, Mg b, Na D, Hα) in its range: not measured"
        verdict = self.medium or "undecided"
        return (f"{self.from_air:+.1f} km/s from air, {self.from_vacuum:+.1f} from vacuum "
                f"({len(self.lines)} lines: {', '.join(line.name for line in self.lines)}): {verdict}")


def representative_point(interp):
    """The parameters (a dict name -> value) of the spectrum measured: the solar-like dwarf of
    :data:`DWARF` when the network has exactly those parameters and they lie in its bounds, else
    the training grid's mean (inside the bounds)."""
    names = {p.name.lower(): p for p in interp.parameters}
    if set(names) == set(DWARF) and all(p.low <= DWARF[key] <= p.high for key, p in names.items()):
        return {p.name: DWARF[p.name.lower()] for p in interp.parameters}
    return {p.name: float(np.clip(p.mean, p.low, p.high)) for p in interp.parameters}


def _vertex(flux, i):
    """Fractional pixel of the minimum of the parabola through pixels i-1, i, i+1."""
    left, centre, right = flux[i - 1], flux[i], flux[i + 1]
    curvature = left - 2 * centre + right
    return i + (0.5 * (left - right) / curvature if curvature > 0 else 0.0)


def line_centres(interp, params=None):
    """The measured :class:`LineCentre` of each of :data:`STRONG_LINES` in the network's range.

    ``params``: a dict of the parameters (default :func:`representative_point`). The
    centres are on the network's axis as it is (``interp.wavelength``: what its header
    says, or the axis :meth:`~ulyss_ann.model.interpolator.Interpolator.in_medium` made).
    A line whose minimum falls on the search window's edge (no line there) is left out.
    """
    params = representative_point(interp) if params is None else params
    flux = np.asarray(interp.evaluate(interp.as_array(params)), float).ravel()
    grid = interp.wavelength
    lam = grid.wavelength
    pixels = np.arange(lam.size, dtype=float)
    found = []
    for name, air in STRONG_LINES:
        vacuum = float(air_to_vacuum(air))
        lo, hi = np.interp([air, vacuum], lam, pixels, left=np.nan, right=np.nan)
        if not (np.isfinite(lo) and np.isfinite(hi)):
            continue
        first, last = int(np.floor(lo)) - _SEARCH_PIXELS, int(np.ceil(hi)) + _SEARCH_PIXELS
        if first < 1 or last > lam.size - 2:
            continue
        i = first + int(np.argmin(flux[first:last + 1]))
        if i in (first, last):
            continue  # the window's edge: no minimum inside
        centre = _vertex(flux, i)
        measured = float(np.interp(centre, pixels, np.log(lam)) if grid.log else np.interp(centre, pixels, lam))
        found.append(LineCentre(name, air, vacuum, float(np.exp(measured)) if grid.log else measured))
    return found


def measured_medium(interp, params=None):
    """A :class:`MediumMeasurement`: which medium the network's spectra are on, from its strong lines."""
    params = representative_point(interp) if params is None else params
    lines = tuple(line_centres(interp, params))
    if not lines:
        return MediumMeasurement(None, np.nan, np.nan, (), params)
    from_air = float(np.median([line.from_air for line in lines]))
    from_vacuum = float(np.median([line.from_vacuum for line in lines]))
    separation = abs(from_air - from_vacuum)  # ≈ 83 km/s: the air-vacuum difference
    medium = None
    if len(lines) >= 2:
        for candidate, offset, other in ((AIR, from_air, from_vacuum), (VACUUM, from_vacuum, from_air)):
            # most lines there, not a median that chance put there: a network without real lines (random
            # weights, a failed training) has minima scattered over the windows, whose median falls within
            # MATCH_KMS of one medium one time in four (tests/test_medium_warning.py), and fits warn on it
            agreeing = sum(abs(line.from_air if candidate == AIR else line.from_vacuum) <= MATCH_KMS
                           for line in lines)
            if abs(offset) <= MATCH_KMS and abs(other) - abs(offset) >= separation / 2 and 2 * agreeing > len(lines):
                medium = candidate
    return MediumMeasurement(medium, from_air, from_vacuum, lines, params)



def medium_check(interp, measurement=None):
    """(note, warning) on a network's medium: what fits take it as and why, checked against what its
    lines say; ``warning`` (None when they agree or the lines say nothing) says what to do when they
    disagree. ``measurement``: a :class:`MediumMeasurement` (default: measured now)."""
    from ulyss_ann.model.medium import reason_in_brief

    measurement = measured_medium(interp) if measurement is None else measurement
    header = AIR if interp.wavelength.air else VACUUM
    taken = interp.medium or header
    why = reason_in_brief(interp.medium_source or "")
    if measurement.medium is None:
        return f"{taken} ({why}); its lines do not say which", None
    if measurement.medium != taken:
        offset = abs(measurement.from_air - measurement.from_vacuum)
        lines = measurement.medium
        said = {AIR: measurement.from_air, VACUUM: measurement.from_vacuum}
        return (f"{taken} ({why}), but its lines are on {lines} wavelengths",
                f"its lines are on {lines} wavelengths but fits take it as {taken} ({why}): they sit "
                f"{said[taken]:+.1f} km/s from {taken}, {said[lines]:+.1f} from {lines}, so cz would be off by "
                f"≈ {offset:.0f} km/s; fit with --model-medium {lines} (model_medium='{lines}' in Python) if its "
                "lines are right")
    if taken != header:
        return f"{taken} ({why}), as its lines confirm; its header says {header}", None
    return f"{taken} ({why}), as its lines confirm", None


#: Networks whose lines were checked against their header in this process (by SHA-256 and axis): a batch, a
#: loop of fit_spectrum calls, an LSF's chunks all build their configuration from the same network.
_CHECKED = set()


def warn_if_lines_contradict(interp, sha256, override=None):
    """Warn once (a :class:`~ulyss_ann.errors.ModelMediumWarning`) when the strong lines of the network
    about to be fitted contradict the medium its header states; return the warning's text, or None.

    Fits take a network's medium from its header unless the user gave one (``override``:
    ``model_medium=``, ``--model-medium``) or the file is one of the authors' recognised ones: only
    the header's say is checked, since a user's choice is theirs and a recognised file was measured.
    The lines are measured once per network and process (``sha256``, the file's): one evaluation
    of the network, a few milliseconds, made where the fit's options are checked, not per spectrum
    nor on Dask's workers. Nothing is converted: a heuristic must not move cz by 83 km/s unasked.
    """
    import os
    import warnings

    from ulyss_ann.errors import ModelMediumWarning
    from ulyss_ann.model.medium import stated_by_header

    if override is not None or not stated_by_header(interp.medium_source):
        return None
    # the file and the axis measured (a WavelengthGrid, hashable): an Interpolator passed in converted
    # already is another question
    key = (sha256, interp.medium, interp.wavelength)
    if key in _CHECKED:
        return None
    _CHECKED.add(key)
    _, warning = medium_check(interp)
    if warning is None:
        return None
    text = f"{os.path.basename(str(interp.path))}: {warning}"
    warnings.warn(text, ModelMediumWarning, stacklevel=3)
    return text
