"""The native engine: ULySS's stellar fit in NumPy/SciPy, with the network's analytic Jacobian.

It fits the model of the paper's Eq. 8,

    F(λ) = P_n(λ) × [G(v, σ) ⊗ f(p)](λ),

the way ``ulyss`` / ``uly_fit`` of ULySS 1.3.2 computes it for the driver of the GDL engine
(``ulyss_ann/gdl/pro/ulyss_ann_fit.pro``), so that a user can switch engines without changing their
science. Each convention below was read in the ULySS sources named, and checked against GDL runs
(``../shared/notes/ulyss-fit-numerics.md``):

1. **Cut** (``uly_spect_extract``): pixels ``floor((λ_min − λ₀)/Δ + 0.01)`` …
   ``ceil((λ_max − λ₀)/Δ − 0.01)`` of a linear or log-λ sampling are kept.
2. **Log-rebinning** (``uly_spect_logrebin``, ``xrebin``): without an imposed
   velocity scale, ``velscale = c · ln(λ_hi/λ_lo)/N`` over the outer pixel edges, and
   as many output pixels as input pixels. The flux is integrated (cumulative sum),
   a natural cubic spline of the integral is read at the new bin edges and
   differenced, then divided by the relative bin width ``flat = λ Δlnλ/Δλ``.
   Errors go through the same operation as err², are clamped below at the smallest
   good input error², and divided by √dof_factor when the output oversamples; the
   mask goes through it too and a pixel stays good where it comes out within 0.1 of 1.
3. **The model on the observation's grid** (the generated component's ``_init``): the output layer
   (bias + weights, 65 rows for trial 7) is log-rebinned once onto the observation's velocity scale,
   starting at the first output pixel inside the observed range; it is linear, so ``f(p) = b + h(p) W``
   on the log grid equals rebinning every evaluated spectrum. The observation is then cut to the
   model's range and the model starts ``voff = (ln λ₀_model − ln λ₀_obs)/Δ`` pixels from it.
4. **LOSVD** (``uly_fit_lin``): v and σ in pixels of the log grid
   (``v = ln(1 + cz/c)/Δ``); a Gaussian sampled at the integer offsets
   ``x = dx … −dx`` with ``dx = ceil(|voff| + |v| + 5σ)``, zero beyond 5σ,
   normalised to unit sum, σ floored at 0.1 px in the kernel, applied as IDL
   ``CONVOL(/EDGE_TRUNCATE)``: ``t_i = Σ_k f_{clip(i + k − dx)} K_k`` with
   ``K_k = G(dx − k − voff − v)``. Limits: cz ± 2000 km/s, σ ∈ [0.3 px, 1000 km/s];
   start cz = 0, σ = 1 px.
5. **Polynomial** (``uly_fit_lin_mulpol``): the Legendre polynomials
   ``P_k(x)``, ``x = 2i/N − 1``, k ≤ MDEGREE; ULySS's scalar weight followed by its
   ``mregress`` amounts to the weighted linear least-squares projection of the data
   onto ``{t · P_k}`` at every evaluation, ``c = argmin ‖(d − Σ c_k t P_k)/e‖²``.
   The best fit is rounded to float32, as ULySS keeps it.
6. **Residuals and χ²** (``uly_fitfunc``): ``r = (d − F)/e`` over the good pixels; ``χ² = Σr² / (N_good − n)``
   with ``n`` = free non-linear parameters + MDEGREE + 2 (uly_fit counts the kinematic moments and the
   component weight again). Without an error spectrum e = 1, χ² is reported as 0 and the errors are
   multiplied by √(Σr²/(N_good − n)).
7. **Errors** (MPFIT): ``sqrt(diag((JᵀJ)⁻¹))`` over the free parameters that are not pegged at a bound,
   times √dof_factor; a pegged parameter gets 0 (σ at its 0.3 px floor on MUSE data, ``sigma-floor``).

The non-linear fit is a projected Levenberg–Marquardt (:mod:`ulyss_ann.fitting.native_engine.lockstep`;
our own, not MPFIT: same model, bounds handled by pegging and clipping as MPFIT does,
but with the exact Jacobian of the projected residual and MPFIT's stopping tests run to
1e-7 rather than uly_fit's 1e-5, :data:`~ulyss_ann.fitting.native_engine.lockstep.FTOL` says why).
Why not ``scipy.optimize.least_squares``: it fits one problem at a time, where every guess of every
spectrum of a block (:meth:`NativeEngine.solve_many`: a survey's spectra on one grid) advances here in
lock-step through one batched evaluation per round (:mod:`~ulyss_ann.fitting.native_engine.block`, compiled
:mod:`~ulyss_ann.fitting.native_engine.kernels`), and its bounded ``trf`` keeps iterates strictly inside
the box, where ULySS pegs σ exactly on its 0.3 px floor and reports a zero error there. The Jacobian is
that of variable projection (Golub & Pereyra 1973): ``∂r/∂θ = −[P⊥ (∂B/∂θ) c + (B⁺)ᵀ (∂B/∂θ)ᵀ r]``
with ``B = [t P_k / e]``; ``∂t/∂p`` comes from the network's analytic Jacobian, ``∂t/∂v`` and
``∂t/∂σ`` from the derivative of the normalised kernel. The combinations of guesses (odometer order, first
parameter fastest) are searched as :mod:`~ulyss_ann.fitting.native_engine.start_search` says (``search``: the
two best starts, every guess where they do not settle it; ``all``: every guess, as ULySS) and the lowest χ²
wins, ties to the first.

``losvd="analytic"`` replaces the pixel-sampled Gaussian by the analytic Fourier transform of a Gaussian
(pPXF, Cappellari 2017) applied in Fourier space, accurate below ~1 px where the sampled kernel is not (at
σ = 0.3 px the sampled kernel is almost a delta: its variance is 0.008 px² instead of 0.09); it no longer
agrees with uly_fit there. Its σ floor is 0.01 px instead of 0.3: with a relative LSF injected (``lsf``) a
star's remaining broadening is near zero, and the sampled kernel pegged at 0.3 px cannot shift by a
fraction of a pixel (on a noise-free MUSE-like spectrum made with the injected LSF: cz off by 8 km/s and
[Fe/H] by 0.04 dex sampled, 0.1 km/s analytic).
"""

import re

import numpy as np

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.fitting.core import FitEngine
from ulyss_ann.fitting.native_engine.lockstep import BLOCK_SPECTRA
from ulyss_ann.fitting.native_engine.solutions import best_solution
from ulyss_ann.fitting.engine_traits import SEARCHES
from ulyss_ann.fitting.native_engine.start_search import ALL, fit_guesses
from ulyss_ann.fitting.native_engine.torch_block import (GPU_BLOCK_SPECTRA, TorchSpectralBlock, gpu_requested,
                                                         torch_device)
from ulyss_ann.fitting.resampling import refit_samples
from ulyss_ann.model.limits import max_pixels
from ulyss_ann.spectra.line_spread import read_lsf
from ulyss_ann.model.wavelength import C_KMS
from ulyss_ann.fitting.native_engine.numerics import (LogSpectrum, extract, extract_linear, guess_odometer, log_rebin,
                                                    lsf_convolve)

__all__ = ["NativeEngine", "ANALYTIC_SIGMA_FLOOR", "DEVICES"]

#: σ floor [px] of the analytic LOSVD. ULySS's 0.3 px floor exists because its sampled
#: kernel cannot represent less; the analytic one can, and with a relative LSF injected
#: (``--lsf``) a star's remaining broadening is near zero: a 0.3 px floor would add ~20 km/s.
ANALYTIC_SIGMA_FLOOR = 0.01

#: The ``device`` values: auto, cpu (NumPy and numba), torch-cpu (the GPU's code on the CPU), cuda, cuda:N.
DEVICES = r"auto|cpu|torch-cpu|cuda(:\d+)?"


class NativeEngine(FitEngine):
    """The native engine: ULySS's fit of one spectrum in NumPy/SciPy (see the module's text)."""

    name = "native"
    summary = "the same fit in NumPy, no GDL needed"
    software = "native NumPy/SciPy fitter"
    options = ("losvd", "device", "search")
    auto_priority = 10  # what auto takes where GDL and ULySS are not here, and for what only it does
    losvd_kinds = ("analytic", "sampled")  # the first: what lsf measure uses unless told (exact below a pixel)
    seconds_per_spectrum = 0.03  # 15 ms (example model) to 30 ms (trial 7, MUSE) here, reading included

    @classmethod
    def check_options(cls, options):
        losvd, device = options.get("losvd", "sampled"), options.get("device", "auto")
        if options.get("backend", "auto") != "auto":
            raise UlyssAnnError(f"backend (--backend) {options['backend']}: says how to talk to GDL, which the native "
                                "engine does not use (use --engine gdl, or drop --backend)")
        if losvd not in ("sampled", "analytic"):
            raise UlyssAnnError(f"losvd {losvd!r}: choose sampled or analytic")
        if options.get("search", "auto") not in SEARCHES:
            raise UlyssAnnError(f"search (--search) {options['search']!r}: choose {', '.join(SEARCHES)}")
        if not isinstance(device, str) or not re.fullmatch(DEVICES, device):
            raise UlyssAnnError(f"device (--device) {device!r}: choose auto, cpu, cuda, cuda:N or torch-cpu")
        if device not in ("auto", "cpu") and losvd == "analytic":
            raise UlyssAnnError(f"device (--device) {device}: the torch path has ULySS's sampled LOSVD only "
                                "(drop --losvd analytic, or use --device cpu)")
        super().check_options(options)

    @classmethod
    def search(cls, config):
        return ALL if config.search == ALL else "adaptive"

    @classmethod
    def block_size(cls, config):
        """A block of spectra in lock-step: :data:`~ulyss_ann.fitting.native_engine.lockstep.BLOCK_SPECTRA` on the CPU,
        :data:`~ulyss_ann.fitting.native_engine.torch_block.GPU_BLOCK_SPECTRA` on a GPU (torch not imported)."""
        return GPU_BLOCK_SPECTRA if gpu_requested(config.device, config.losvd) else BLOCK_SPECTRA

    @classmethod
    def batch_workers(cls, config, workers, remote):
        if remote or config.device == "cpu":
            return workers
        try:
            torch_device(config.device)  # no torch, or no GPU here: said before any work
        except ValueError as exc:
            raise UlyssAnnError(str(exc)) from None
        if workers is None and gpu_requested(config.device, config.losvd):
            return 0  # one GPU: this process feeds it (workers would each hold a CUDA context on it)
        return workers

    @classmethod
    def batch_notice(cls, config):
        from ulyss_ann.fitting.native_engine.kernels import compilation_notice  # numba: only where it is needed

        return None if gpu_requested(config.device, config.losvd) else compilation_notice()

    @classmethod
    def hushed(cls):
        from ulyss_ann.fitting.native_engine.notice import hushed  # not the kernels: no numba for nothing to fit

        return hushed()

    @classmethod
    def check_lsf_options(cls, losvd, moments):
        if moments == 4:
            raise UlyssAnnError("moments 4 (h3, h4): the native engine fits a Gaussian LOSVD only; use --engine gdl "
                                "(ULySS's uly_lsf with KMOMENT=4)")
        super().check_lsf_options(losvd, moments)

    def __init__(self, config, interp=None):
        if config.losvd not in ("sampled", "analytic"):
            raise UlyssAnnError(f"losvd '{config.losvd}': sampled (ULySS's) or analytic (pPXF's)")
        super().__init__(config, interp)
        self.losvd = config.losvd
        self._cache = {}
        interp = self.interp
        self.means = np.array([p.mean for p in interp.parameters])
        self.scales = np.array([p.scale for p in interp.parameters])
        self.limits = np.array([[p.low, p.high] for p in interp.parameters])
        self.activations = list(interp.activations)
        self.hidden = list(interp.weights[:-1])       # the output layer is rebinned per grid
        self.inputs = interp.inputs.apply_with_jacobian   # x and ∂x/∂p of the first layer (the block's)
        self.lsf = read_lsf(config.lsf) if config.lsf else None
        if not interp.inputs.perceptron and config.device not in ("auto", "cpu"):
            raise UlyssAnnError(f"device {config.device}: the torch path knows networks only, not the "
                                f"{interp.input_map} input map of {interp.path or 'this model'} (use --device cpu)")
        try:  # the analytic LOSVD has no torch form (gpu_requested says the same to the batch), nor a TGM model
            gpu = config.losvd != "analytic" and interp.inputs.perceptron
            self.device = torch_device(config.device) if gpu else None
        except ValueError as exc:
            raise UlyssAnnError(str(exc)) from None
        self.block_spectra = BLOCK_SPECTRA if self.device is None else GPU_BLOCK_SPECTRA

    # --------------------------------------------------------------- preparation
    def _model_on_grid(self, velscale, lamrange):
        """The output layer log-rebinned onto the observation's grid (cached per grid)."""
        key = (round(velscale, 12), round(lamrange[0], 9), round(lamrange[1], 9))
        if key not in self._cache:
            net = self.interp.wavelength
            netrange = net.wavelength[[0, -1]]
            wr = (max(lamrange[0], netrange[0]), min(lamrange[1], netrange[1]))
            if wr[0] >= wr[1]:
                raise UlyssAnnError(f"the spectrum ({lamrange[0]:.1f}-{lamrange[1]:.1f} Å) does not overlap the "
                                    f"network range ({netrange[0]:.1f}-{netrange[1]:.1f} Å)")
            start = net.crval + (1.0 - net.crpix) * net.cdelt
            layer = self.interp.weights[-1].T                       # (npix, 65): bias + weights as columns
            spec, _ = log_rebin(layer, None, np.ones(net.npix, bool), 1 if net.log else 0, start, net.cdelt,
                                velscale=velscale, waverange=wr)
            data = spec.data
            if self.lsf is not None:  # the relative LSF, injected once into the (linear) layer
                data = lsf_convolve(data, self.lsf, spec.start, spec.step)
            self._cache[key] = (np.ascontiguousarray(data.T), spec.start, spec.npix)
            if len(self._cache) > 8:
                self._cache.pop(next(iter(self._cache)))
        return self._cache[key]

    def rebinned_observation(self, prepared):
        """The observation cut, log-rebinned and cut again to the model: (spec, model layer, voff, velscale)."""
        flux = np.asarray(prepared.spectrum.flux, dtype=np.float64)
        err = prepared.spectrum.error
        err = None if err is None else np.asarray(err, dtype=np.float64)
        flux, err, good, start, wave = extract_linear(flux, err, prepared.good, prepared.sampling, prepared.start,
                                                      prepared.step, prepared.wave, (prepared.lo, prepared.hi))
        if np.count_nonzero(good) < 10:
            raise UlyssAnnError("fewer than 10 usable pixels")
        # NaN flux or errors on good pixels are masked (uly_fit); they must not reach the spline
        bad = ~np.isfinite(flux) | (np.zeros_like(flux, bool) if err is None else ~np.isfinite(err))
        good = good & ~bad
        flux = np.where(np.isfinite(flux), flux, 0.0)
        if err is not None:
            err = np.where(np.isfinite(err), err, np.nanmax(err[good]) if np.any(good) else 1.0)
        spec, velscale = log_rebin(flux, err, good, prepared.sampling, start, prepared.step, wave)
        if spec.err is not None:  # ulyss: non-positive errors on good pixels take the smallest positive one
            gp = spec.good
            bad_err = gp & (spec.err <= 0)
            if np.all(spec.err[gp] <= 0):
                raise UlyssAnnError("the noise is negative or null")
            spec.err[bad_err] = np.min(spec.err[gp & (spec.err > 0)])
        lamrange = np.exp(spec.start + spec.step * np.array([0, spec.npix - 1]))  # spec.wavelength's ends
        rebinned, cmp_start, cmp_npix = self._model_on_grid(velscale, lamrange)
        model_range = np.exp(cmp_start + np.array([0.5, cmp_npix - 1.5]) * spec.step)
        spec = extract(spec, model_range)
        if cmp_npix < spec.npix:
            raise UlyssAnnError(f"the model ({cmp_npix} px) is shorter than the observation ({spec.npix} px)")
        voff = (cmp_start - spec.start) / spec.step
        return spec, rebinned, voff, velscale

    # --------------------------------------------------------------- the fit
    def solve(self, prepared):
        """Fit one prepared spectrum: its guess combinations in lock-step (as ``search`` says), the best χ² kept."""
        outcome = self.solve_many([prepared])[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def solve_many(self, prepared_fits):
        """Fit prepared spectra in blocks of the same grid; a Solution or the UlyssAnnError of each, in order.

        Spectra that share their fitted ln-λ grid and their fixed parameters (a survey's)
        are fitted together, the guesses of every spectrum (as ``search`` says) in lock-step
        (:class:`~ulyss_ann.fitting.native_engine.block.SpectralBlock`, :mod:`~ulyss_ann.fitting.native_engine.start_search`);
        a spectrum with a grid of its own is a block of one. Each spectrum's answer is the
        one it gets alone.
        """
        outcomes = [None] * len(prepared_fits)
        blocks, layers = {}, {}
        for i, prepared in enumerate(prepared_fits):
            try:
                spec, layer, voff, _ = self.rebinned_observation(prepared)
            except UlyssAnnError as exc:
                outcomes[i] = exc
                continue
            key = (spec.start, spec.step, spec.npix, voff, id(layer), tuple(prepared.fixed_flags))
            layers[key] = layer
            blocks.setdefault(key, []).append((i, spec))
        for key, members in blocks.items():
            size = self._block_size(key[2])
            for first in range(0, len(members), size):
                chunk = members[first:first + size]
                try:
                    solutions = self._solve_block([prepared_fits[i] for i, _ in chunk], [s for _, s in chunk],
                                                  layers[key], key[3])
                except np.linalg.LinAlgError:
                    if len(chunk) == 1:
                        outcomes[chunk[0][0]] = _degenerate(prepared_fits[chunk[0][0]], chunk[0][1], self.config)
                        continue
                    # one spectrum's polynomial is singular: fit each alone, so that only it fails
                    solutions = [self._solve_one_of(prepared_fits[i], s, layers[key], key[3]) for i, s in chunk]
                for (i, _), solution in zip(chunk, solutions):
                    outcomes[i] = solution
        return outcomes

    def _block_size(self, npix):
        """Spectra of ``npix`` pixels per lock-step block. On the CPU, a block's memory grows with
        its pixels as one spectrum's does (:mod:`~ulyss_ann.model.limits`): together they keep to
        the pixel budget of one spectrum (a block of 32 spectra of 10⁵ pixels would need 8 GB)."""
        if self.device is not None:
            return self.block_spectra
        return max(1, min(self.block_spectra, max_pixels() // max(int(npix), 1)))

    def _solve_one_of(self, prepared, spec, layer, voff):
        try:
            return self._solve_block([prepared], [spec], layer, voff)[0]
        except np.linalg.LinAlgError:
            return _degenerate(prepared, spec, self.config)

    def refit(self, prepared, result, fluxes):
        """The n perturbed copies of one spectrum fitted together, in lock-step blocks, each from the
        best solution (cz, σ and the parameters); name -> array of the refitted values."""
        spec, layer, voff, _ = self.rebinned_observation(prepared)
        if len(result.flux) != spec.npix:  # the same grid as the best fit's, by construction
            raise UlyssAnnError(f"refit: {len(result.flux)} fitted pixels, {spec.npix} on the grid")
        step = spec.step
        start = np.concatenate([np.log1p(np.array([result.cz, result.sigma]) / C_KMS) / step,
                                [result.params[name] for name in self.interp.names]])
        copies = [LogSpectrum(np.asarray(flux, float), spec.err, spec.good, spec.start, step, spec.dof_factor)
                  for flux in fluxes]
        solutions = []
        size = self._block_size(spec.npix)
        for first in range(0, len(copies), size):
            chunk = copies[first:first + size]
            try:
                solutions += self._solve_block([prepared] * len(chunk), chunk, layer, voff, start=start)
            except np.linalg.LinAlgError:
                continue  # a singular polynomial: those copies give no sample
        return refit_samples(self.interp.names, [s.values for s in solutions], [s.cz for s in solutions],
                             [s.sigma for s in solutions])

    def _solve_block(self, prepared_fits, specs, layer, voff, start=None):
        """Fit S spectra on one grid; their Solutions (LinAlgError when a polynomial is singular).

        ``start``: one starting point (v, σ in pixels, the parameters) for every spectrum instead
        of the odometer of their guesses (the refits of :meth:`refit`)."""
        spec0, flags = specs[0], prepared_fits[0].fixed_flags
        step, velscale = spec0.step, C_KMS * spec0.step
        data = np.zeros((len(specs), spec0.npix))
        weights = np.zeros_like(data)
        for k, spec in enumerate(specs):
            data[k] = spec.data
            if spec.err is None:
                weights[k] = spec.good
            else:  # bad pixels may hold a zero error: never divided by
                np.divide(1.0, spec.err, out=weights[k], where=spec.good)
        free = np.concatenate([[True, True], flags == 0])
        if self.device is None:
            from ulyss_ann.fitting.native_engine.block import SpectralBlock  # numba: loaded when a block is fitted

            block = SpectralBlock(self, layer, data, weights, self.config.mdegree, voff, self.losvd, free)
        else:
            block = TorchSpectralBlock(self, layer, data, weights, self.config.mdegree, voff, self.losvd, free,
                                       self.device)
        floor = 0.3 if self.losvd == "sampled" else ANALYTIC_SIGMA_FLOOR   # pixels
        kin_lo = np.array([np.log(1 - 2000 / C_KMS), np.log(1 + floor * velscale / C_KMS)]) / step
        kin_hi = np.array([np.log(1 + 2000 / C_KMS), np.log(1 + 1000 / C_KMS)]) / step
        lower = np.concatenate([kin_lo, self.limits[:, 0]])
        upper = np.concatenate([kin_hi, self.limits[:, 1]])
        kin0 = np.array([0.0, np.log(1 + velscale / C_KMS) / step])
        starts, owners = [], []
        for k, prepared in enumerate(prepared_fits):
            if start is not None:
                starts.append(np.clip(start, lower, upper)[None, :])
                owners.append(k)
                continue
            nodes = guess_odometer(prepared.guesses, prepared.counts)
            starts.append(np.column_stack([np.tile(kin0, (len(nodes), 1)), nodes]))
            owners += [k] * len(nodes)
        owners = np.array(owners)
        search = (prepared_fits[0].config or self.config).search
        fits = fit_guesses(block.evaluate, np.concatenate(starts), owners, lower, upper, free, search,
                           host=None if self.device is None else block.host, chi2=getattr(block, "chi2", None))
        return [best_solution(prepared, spec, fits, np.flatnonzero(owners == k), free, self.config.mdegree,
                              self.limits) for k, (prepared, spec) in enumerate(zip(prepared_fits, specs))]


def _degenerate(prepared, spec, config):
    """The polynomial's normal matrix is singular: the good pixels bunch in too small a
    part of the fitted range for MDEGREE + 1 Legendre coefficients over all of it."""
    good = np.flatnonzero(spec.good)
    span = np.exp(spec.start + np.array([good[0], good[-1]]) * spec.step)
    return UlyssAnnError(f"degenerate fit: the {good.size} good pixels lie in {span[0]:.0f}-{span[1]:.0f} Å "
                         f"of the fitted {prepared.lo:.0f}-{prepared.hi:.0f} Å, too little for MDEGREE "
                         f"{config.mdegree}; fit that range (--range) or lower --mdegree")
