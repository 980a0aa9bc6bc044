"""What both engines decide alike before a fit: the fitted range, the good pixels, the guesses, the checks.

:class:`FitPreparation` turns a spectrum and the fixed values into a :class:`PreparedFit`,
or says in one line why it cannot be fitted; :mod:`~ulyss_ann.fitting.core` hands it to
the engine.
"""

import functools
import warnings
from dataclasses import dataclass

import numpy as np

from ulyss_ann.errors import OversampledWarning, UlyssAnnError
from ulyss_ann.fitting.masks import DEFAULT_TELLURIC, TELLURIC_SETS, masked_bands
from ulyss_ann.model.limits import pixel_budget_problem
from ulyss_ann.model.wavelength import C_KMS
from ulyss_ann.spectra.spectrum_medium import spectrum_in_medium

__all__ = ["FitPreparation", "PreparedFit", "TELLURIC_BANDS", "PAPER_GUESSES", "MIN_OVERLAP",
           "MIN_DOF", "OVERSAMPLED", "MIN_COVERAGE"]

#: Telluric absorption bands masked by default in observed spectra [Å, air], as published (the
#: MUSE pipeline's; widened when masked: :mod:`~ulyss_ann.fitting.masks`).
TELLURIC_BANDS = TELLURIC_SETS[DEFAULT_TELLURIC]
#: The paper's guesses (Kumar, Prugniel & Singh §5): 3 x 2 starting points.
PAPER_GUESSES = {"teff": (5000.0, 5500.0, 6000.0), "fe/h": (-1.0, -1.5)}
#: The shortest fitted range [Å] worth a fit.
MIN_OVERLAP = 50.0
#: The least :attr:`PreparedFit.coverage` fitted at all (below: an ``error:`` row). Measured
#: (docs/fitting.md, "Coverage"): trial 7 on the MUSE star and 5 MILES stars cut to windows
#: of 6-15 % of its range moves Teff by a median 230-420 K and log g by 0.9-1.7 dex from
#: the full fit; below 5 % (the MUSE star relabelled to start at 7100 Å: 4 %) almost
#: everything fitted is a masked band's edge. Between this and
#: :data:`~ulyss_ann.fitting.quality.LOW_COVERAGE` the fit is flagged ``low-coverage``.
MIN_COVERAGE = 0.05
#: Degrees of freedom a fit must keep: good pixels beyond the unknowns (cz, σ, the free
#: parameters, the MDEGREE + 1 polynomial coefficients). With fewer, χ² and the errors
#: mean nothing, and Levenberg-Marquardt can reproduce the data with any parameters.
MIN_DOF = 10
#: A spectrum sampled this many times finer than the network is warned about (:meth:`FitPreparation.check_sampling`).
OVERSAMPLED = 8.0


@dataclass
class PreparedFit:
    """One spectrum ready for an engine: what to fit, from where, and how it is sampled.

    ``sampling`` is ULySS's: 0 linear in λ (``start``, ``step`` in Å), 1 linear in ln λ
    (in ln Å), 2 explicit wavelengths (``wave``). ``requested``: the range asked for
    (``wave_range``), of which [``lo``, ``hi``] is what the network and the spectrum cover.
    ``config``: the FitConfig it was prepared under, which the engine follows for this fit (its
    refits derive theirs from it): an engine shared by threads keeps its own untouched.
    """

    spectrum: object
    lo: float
    hi: float
    good: np.ndarray
    guesses: np.ndarray
    counts: np.ndarray
    fixed_flags: np.ndarray
    sampling: int
    start: float
    step: float
    wave: np.ndarray
    requested: tuple = None
    coverage: float = np.nan
    config: object = None


class FitPreparation:
    """What both engines decide alike: the fitted range, the masks, the guesses, the checks."""

    def __init__(self, config, interp):
        self.config, self.interp = config, interp

    @functools.cached_property
    def _net(self):
        """The network's wavelengths [Å]: made once for the spectra this preparation takes (a block's)."""
        return self.interp.wavelength.wavelength

    @functools.cached_property
    def _net_step(self):
        """The network's median velocity step [km/s] (:meth:`check_sampling`), once."""
        return C_KMS * np.median(np.diff(np.log(self._net)))

    def guesses_for(self, fixed):
        """Flat guesses, counts and fixed flags for one spectrum, in network order."""
        guesses, counts, flags = [], [], []
        user = {k.lower(): v for k, v in (self.config.guesses or {}).items()}
        for p in self.interp.parameters:
            key = p.name.lower()
            if key in fixed:
                values, flag = [fixed[key]], 1
            elif key in user:
                values, flag = user[key], 0
            else:
                values, flag = PAPER_GUESSES.get(key, (p.mean,)), 0
            values = [float(v) for v in np.atleast_1d(values)]
            guesses += values
            counts.append(len(values))
            flags.append(flag)
        return np.array(guesses), np.array(counts, np.int32), np.array(flags, np.int32)

    def fit_range(self, spectrum):
        """The fitted range [Å]: the requested one, inside the network's by 1.5 pixels.

        The margin keeps the first ln-λ pixel of the cut, rebinned observation inside the
        network's range, so that the component's model starts exactly on it (ULySS's
        ``voff`` = 0). Otherwise the component starts a fraction of a pixel later, and
        ULySS renders that offset through its pixel-sampled LOSVD, which at σ ≈ 0.3 px
        cannot shift by a fraction of a pixel: fits of the network's own spectra then
        came out 12 km/s off in cz (0.2 px) with biased Teff and log g, in both engines.
        """
        net = self._net
        wave = np.asarray(spectrum.wavelength, float)
        margin = 1.5 * max(abs(net[1] - net[0]), abs(wave[1] - wave[0]), abs(wave[-1] - wave[-2]))
        lo, hi = self.config.wave_range or (net[0], net[-1])
        lo = max(lo, net[0] + margin, wave[0])
        hi = min(hi, net[-1] - margin, wave[-1])
        return lo, hi

    def good_pixels(self, spectrum):
        """The reader's good pixels less the masked bands (telluric, Na D, the user's)."""
        good = spectrum.good.copy()
        # one list of bands for both engines: the GDL engine hands ULySS this very good-pixel vector
        bands = masked_bands(self.config, simulated=spectrum.meta.get("simulated", False))
        for a, b in bands:
            good &= ~((spectrum.wavelength >= a) & (spectrum.wavelength <= b))
        return good

    def check_signal(self, spectrum, good, lo, hi, flags):
        """UlyssAnnError unless the good pixels of [lo, hi] hold a signal worth fitting.

        Both engines would otherwise "fit" nothing: an all-zero or constant spectrum
        leaves the parameters at their guesses (χ² 0 natively, no solution in ULySS), and
        too few pixels let the polynomial absorb anything. Said here, before either
        engine runs, so that both give the same reason.
        """
        wave = np.asarray(spectrum.wavelength, float)
        inside = (wave >= lo) & (wave <= hi)
        n_in = int(np.count_nonzero(inside))
        use = inside & good
        n_good = int(np.count_nonzero(use))
        unknowns = 2 + int(np.count_nonzero(flags == 0)) + self.config.mdegree + 1
        if n_good < unknowns + MIN_DOF:
            bad = int(np.count_nonzero(inside & ~spectrum.good))
            banded = int(np.count_nonzero(inside & spectrum.good & ~good))
            raise UlyssAnnError(f"no usable pixels: {n_good} good of {n_in} in {lo:.0f}-{hi:.0f} Å "
                                f"({bad} bad values (NaN/inf flux, bad errors, the input mask), {banded} in "
                                f"masked bands); a fit of {unknowns} unknowns (MDEGREE {self.config.mdegree}) "
                                f"needs at least {unknowns + MIN_DOF}")
        flux = np.asarray(spectrum.flux, float)[use]
        if np.ptp(flux) <= 1e-12 * np.max(np.abs(flux)):  # exactly constant, up to rounding
            raise UlyssAnnError(f"no signal: the flux is {flux[0]:.6g} at all {n_good} fitted pixels "
                                f"({lo:.0f}-{hi:.0f} Å)")

    def coverage(self, spectrum, good, lo, hi):
        """The fraction of the network's wavelength range that the unmasked pixels of [lo, hi] cover.

        Each good pixel counts its own width (so sampling does not matter); masked bands,
        bad values and the parts outside the network or the spectrum do not count. The
        network's full range is the reference, not the range asked for: a fit's parameters
        rest on the lines it sees, and a short range sees few (:data:`MIN_COVERAGE`).
        """
        wave = np.asarray(spectrum.wavelength, float)
        width = np.zeros(wave.size)
        if wave.size > 1:  # np.gradient's steps, written out (its Python took a third of this)
            width[1:-1] = (wave[2:] - wave[:-2]) / 2.0
            width[0], width[-1] = wave[1] - wave[0], wave[-1] - wave[-2]
            width = np.abs(width)
        use = good & (wave >= lo) & (wave <= hi)
        net = self._net
        return float(min(1.0, np.sum(width[use]) / (net[-1] - net[0])))

    def check_coverage(self, coverage, lo, hi):
        """UlyssAnnError when the unmasked pixels cover less than :data:`MIN_COVERAGE` of the network."""
        if coverage < MIN_COVERAGE:
            net = self._net
            span = net[-1] - net[0]
            raise UlyssAnnError(f"coverage {100 * coverage:.1f} %: the unmasked pixels of the fitted "
                                f"{lo:.0f}-{hi:.0f} Å cover {coverage * span:.0f} Å of the network's {net[0]:.0f}-{net[-1]:.0f} Å, "
                                f"below the {100 * MIN_COVERAGE:g} % that a fit needs (docs/fitting.md, Coverage); "
                                "fit a spectrum or --range that overlaps the network more, or mask fewer bands")

    def check_sampling(self, spectrum, lo, hi):
        """Warn (:class:`~ulyss_ann.errors.OversampledWarning`) when the spectrum is sampled far finer than the network.

        Both engines fit on the spectrum's own velocity step (ULySS log-rebins at it), so
        the cost grows with the pixel count while the network, at its own resolution, has
        nothing more to say: a 200 000-pixel echelle spectrum costs ~50 MUSE fits natively
        and minutes in ULySS. Warned, not rebinned, so that what is fitted stays what
        ULySS would fit; the fix is to rebin it to the network's step first.
        """
        wave = np.asarray(spectrum.wavelength, float)
        inside = wave[(wave >= lo) & (wave <= hi)]
        net_step, steps = self._net_step, np.diff(np.log(inside))
        if steps.size and C_KMS * steps.min() * OVERSAMPLED >= net_step:
            return  # no step is that fine, so neither is their median (a sort per spectrum spared)
        step = C_KMS * np.median(steps)
        if step * OVERSAMPLED < net_step:
            warnings.warn(f"{spectrum.meta.get('id', 'spectrum')}: {inside.size} pixels in {lo:.0f}-{hi:.0f} Å, "
                          f"{net_step / step:.0f} times finer than the network's sampling ({net_step:.0f} km/s "
                          f"per pixel): its fit costs ~{net_step / step:.0f} times more than at that step, for no "
                          "gain; rebin it to the network's step first (e.g. specutils' "
                          "FluxConservingResampler)", OversampledWarning, stacklevel=2)

    def prepare(self, spectrum, fixed=None):
        """A :class:`PreparedFit`, or UlyssAnnError saying why this spectrum cannot be fitted."""
        fixed = {k.lower(): float(v) for k, v in (fixed or {}).items()}
        spectrum = spectrum_in_medium(spectrum, self.config.medium)  # --medium: before any wavelength is used
        # Before anything grows with the pixels: both engines' memory does (ulyss_ann.model.limits)
        problem = pixel_budget_problem(np.size(spectrum.flux))
        if problem:
            raise UlyssAnnError(f"a {problem}")
        lo, hi = self.fit_range(spectrum)
        if hi - lo < MIN_OVERLAP:
            net = self._net
            first, last = spectrum.wavelength[0], spectrum.wavelength[-1]
            # Wavelengths in nm (or Å read as nm, e.g. a wrong CUNIT1) miss the network by a factor 10: say so
            hints = ((10.0, " (are its wavelengths in nm? give them in Å)"),
                     (0.1, " (are its wavelengths in Å but labelled nm? give them in Å)"))
            hint = next((hint for factor, hint in hints
                         if min(last * factor, net[-1]) - max(first * factor, net[0]) >= MIN_OVERLAP), "")
            raise UlyssAnnError(f"no overlap: spectrum {first:.1f}-{last:.1f} Å, network {net[0]:.1f}-{net[-1]:.1f} Å"
                                f"{hint}")
        guesses, counts, flags = self.guesses_for(fixed)
        offsets = np.concatenate([[0], np.cumsum(counts)]).tolist()
        for i, p in enumerate(self.interp.parameters):
            values = guesses[offsets[i]:offsets[i + 1]]
            if any(v < p.low or v > p.high for v in values.tolist()):  # a few numbers: Python's tests
                shown = f"{', '.join(f'{v:g}' for v in values)} {p.unit}".rstrip()
                what = "fixed value" if flags[i] == 1 else "guess"
                raise UlyssAnnError(f"{what} {p.name} = {shown} outside the limits "
                                    f"[{p.low:g}, {p.high:g}] of {self.config.model}")
        grid = spectrum.grid
        if grid is not None:
            sampling = 1 if grid.log else 0
            start, step, wave = grid.crval + (1.0 - grid.crpix) * grid.cdelt, grid.cdelt, None
        else:
            sampling, start, step, wave = 2, 0.0, 0.0, np.asarray(spectrum.wavelength, float)
        good = self.good_pixels(spectrum)
        self.check_signal(spectrum, good, lo, hi, flags)
        coverage = self.coverage(spectrum, good, lo, hi)
        if not all(flag == 1 for flag in flags):  # with every parameter held (the LSF's chunks) only the LOSVD fits
            self.check_coverage(coverage, lo, hi)
        self.check_sampling(spectrum, lo, hi)
        return PreparedFit(spectrum, lo, hi, good, guesses, counts, flags, sampling, start, step, wave,
                           requested=self.config.wave_range, coverage=coverage, config=self.config)
