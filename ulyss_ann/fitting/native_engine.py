"""The native engine: ULySS's stellar fit in NumPy/SciPy, with the network's analytic Jacobian.

It fits the model of the paper's Eq. 8,

    F(λ) = P_n(λ) × [G(v, σ) ⊗ f(p)](λ),

the way ``ulyss`` / ``uly_fit`` of ULySS 1.3.2 computes it for the driver of the GDL
engine (``gdl/ulyss_ann_fit.pro``), so that a user can switch engines without
changing their science. Each convention below was read in the ULySS sources named,
and checked against GDL runs (``../shared/notes/ulyss-fit-numerics.md``):

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
3. **The model on the observation's grid** (the generated component's ``_init``):
   the output layer (bias + weights, 65 rows for trial 7) is log-rebinned once onto
   the observation's velocity scale, starting at the first output pixel inside the
   observed range; it is linear, so ``f(p) = b + h(p) W`` on the log grid equals
   rebinning every evaluated spectrum. The observation is then cut to the model's
   range and the model starts ``voff = (ln λ₀_model − ln λ₀_obs)/Δ`` pixels from it.
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
6. **Residuals and χ²** (``uly_fitfunc``): ``r = (d − F)/e`` over the good pixels;
   ``χ² = Σr² / (N_good − n)`` with ``n`` = free non-linear parameters +
   MDEGREE + 2 (uly_fit counts the kinematic moments and the component weight
   again). Without an error spectrum e = 1, χ² is reported as 0 and the errors are
   multiplied by √(Σr²/(N_good − n)).
7. **Errors** (MPFIT): ``sqrt(diag((JᵀJ)⁻¹))`` over the free parameters that are not
   pegged at a bound, times √dof_factor; a pegged parameter gets 0 (σ at its 0.3 px
   floor on MUSE data, ``sigma-floor`` in the table).

The non-linear fit is a projected Levenberg–Marquardt (:mod:`ulyss_ann.fitting.bounded_lm`;
our own, not MPFIT: same model, bounds handled by pegging and clipping as MPFIT does,
but with the exact Jacobian of the projected residual and run further than MPFIT's FTOL 1e-5, to 1e-7).
Why not ``scipy.optimize.least_squares``: it fits one problem at a time, where the six
guesses of a spectrum advance here in lock-step through one batched evaluation per
round (3× fewer NumPy calls than one LM per guess, measured on the MUSE star), and its bounded
``trf`` keeps iterates strictly inside the box, where ULySS pegs σ exactly on its
0.3 px floor and reports a zero error there. The Jacobian is that of variable projection (Golub & Pereyra 1973):
``∂r/∂θ = −[P⊥ (∂B/∂θ) c + (B⁺)ᵀ (∂B/∂θ)ᵀ r]`` with ``B = [t P_k / e]``; ``∂t/∂p``
comes from the network's analytic Jacobian, ``∂t/∂v`` and ``∂t/∂σ`` from the
derivative of the normalised kernel. Every combination of guesses gets a fit
(odometer order, first parameter fastest) and the lowest χ² wins, ties to the first.

``losvd="analytic"`` replaces the pixel-sampled Gaussian by the analytic Fourier
transform of a Gaussian (pPXF, Cappellari 2017) applied in Fourier space, accurate
below ~1 px where the sampled kernel is not (at σ = 0.3 px the sampled kernel is
almost a delta: its variance is 0.008 px² instead of 0.09); it no longer agrees with
uly_fit there. Its σ floor is 0.01 px instead of 0.3: with a relative LSF injected
(``lsf``) a star's remaining broadening is near zero, and the sampled kernel pegged at
0.3 px cannot shift by a fraction of a pixel (on a noise-free MUSE-like spectrum made with
the injected LSF: cz off by 8 km/s and [Fe/H] by 0.04 dex sampled, 0.1 km/s analytic).
"""

import functools

import numpy as np
from numpy.polynomial import legendre

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.fitting.core import FitEngine, Solution
from ulyss_ann.fitting.bounded_lm import levenberg_marquardt
from ulyss_ann.spectra.lsf import read_lsf
from ulyss_ann.model.network import forward_with_jacobian
from ulyss_ann.fitting.numerics import (C_KMS, convolve_edge, extract, extract_linear, fourier_losvd, log_rebin, losvd_kernel,
                             lsf_convolve)

__all__ = ["NativeEngine", "ANALYTIC_SIGMA_FLOOR"]

#: σ floor [px] of the analytic LOSVD. ULySS's 0.3 px floor exists because its sampled
#: kernel cannot represent less; the analytic one can, and with a relative LSF injected
#: (``--lsf``) a star's remaining broadening is near zero: a 0.3 px floor would add ~20 km/s.
ANALYTIC_SIGMA_FLOOR = 0.01


# ----------------------------------------------------------------------------- the fitter
@functools.lru_cache(maxsize=4)
def _legendre_products(degree):
    """Coefficients a_klm of P_k P_l = Σ_m a_klm P_m, as a (2·degree + 1, (degree + 1)²) array."""
    out = np.zeros((2 * degree + 1, (degree + 1) ** 2))
    unit = np.eye(degree + 1)
    for k in range(degree + 1):
        for m in range(degree + 1):
            product = legendre.legmul(unit[k], unit[m])
            out[:product.size, k * (degree + 1) + m] = product
    return out


class _Problem:
    """One spectrum ready to fit: data, errors, good pixels, the model on its grid."""

    def __init__(self, fitter, rebinned, spec, mdegree, voff, have_noise, losvd):
        self.fitter, self.layers = fitter, fitter.hidden + [rebinned]
        self.spec, self.voff, self.have_noise, self.losvd = spec, voff, have_noise, losvd
        n = spec.npix
        self.legendre = legendre.legvander(2.0 * np.arange(n) / n - 1.0, mdegree)
        self.good = np.flatnonzero(spec.good)
        self.data = spec.data[self.good]
        self.noise = spec.err[self.good] if have_noise else np.ones(self.good.size)
        self.leg_good = np.ascontiguousarray(self.legendre[self.good])
        # P_k P_l = Σ_m a_klm P_m (m ≤ k + l): BᵀB = Lᵀ diag(w) L from 2K − 1 weighted sums
        self.leg_double = np.ascontiguousarray(legendre.legvander(2.0 * self.good / n - 1.0, 2 * mdegree))
        self.pair_coefficients = _legendre_products(mdegree)
        self.inv_noise = 1.0 / self.noise
        self.scaled_data = self.data * self.inv_noise

    def evaluate(self, theta, want_jac=True):
        """Residuals r (n_good,), best fit (n,), and ∂r/∂θ (n_good, 2 + npar) at one θ."""
        r, bestfit, jac = self.evaluate_many(np.asarray(theta, float)[None])
        return r[0], bestfit[0], jac[0]

    def _convolve(self, f, df, thetas):
        """[t, ∂t/∂v, ∂t/∂σ, ∂t/∂p…] as one (G, n, 3 + npar) array, for G parameter vectors."""
        stack = np.concatenate([f[:, :, None], df], axis=2)              # (G, n, 1 + npar)
        g_count, n, width = stack.shape
        out = np.empty((g_count, n, width + 2))
        for g, (v, s) in enumerate(thetas[:, :2]):
            if self.losvd == "analytic":
                conv, d_v, d_s = fourier_losvd(stack[g], v, s, self.voff)
                out[g, :, 0], out[g, :, 1], out[g, :, 2], out[g, :, 3:] = conv[:, 0], d_v[:, 0], d_s[:, 0], conv[:, 1:]
                continue
            _, kern, dk_dv, dk_ds = losvd_kernel(v, s, self.voff, n)
            conv = convolve_edge(stack[g], kern)
            out[g, :, 0], out[g, :, 3:] = conv[:, 0], conv[:, 1:]
            out[g, :, 1] = convolve_edge(stack[g, :, 0], dk_dv)
            out[g, :, 2] = convolve_edge(stack[g, :, 0], dk_ds)
        return out

    def evaluate_many(self, thetas):
        """Residuals (G, n_good), best fits (G, n) and Jacobians (G, n_good, 2 + npar) of G guesses."""
        net = self.fitter
        x = (thetas[:, 2:] - net.means) / net.scales
        f, df = forward_with_jacobian(x, net.dx_dp, self.layers, net.activations)
        n = self.spec.npix
        conv = self._convolve(f[:, :n], df[:, :n], thetas)
        t_full = conv[:, :, 0]
        good, inv, leg = self.good, self.inv_noise, self.leg_good
        scaled = conv[:, good] * inv[None, :, None]                  # everything divided by the errors
        tw, dt = scaled[:, :, 0], scaled[:, :, 1:]                   # B = diag(t/e) L; ∂(t/e)/∂θ
        # the (K × K) normal equations BᵀB = Lᵀ diag(tw²) L, from the precomputed products
        # L_ik L_il (Legendre columns are well conditioned; ULySS's mregress solves the same)
        normal = ((tw * tw) @ self.leg_double) @ self.pair_coefficients   # (G, K·K)
        chol = np.linalg.cholesky(normal.reshape(len(thetas), leg.shape[1], leg.shape[1]))
        y = self.scaled_data

        def solve(rhs):  # (BᵀB)⁻¹ rhs through the Cholesky factor, batched
            return np.linalg.solve(chol.transpose(0, 2, 1), np.linalg.solve(chol, rhs))

        coef = solve(((tw * y) @ leg)[:, :, None])[:, :, 0]          # (G, K)
        poly = coef @ self.legendre.T                                # (G, n)
        bestfit = (t_full * poly).astype(np.float32).astype(np.float64)   # ULySS keeps it in float32
        # LM works on the double-precision residual: the float32 rounding of the best fit
        # would add noise of ~1e-7 to χ², below which no step could be seen to improve it
        model_good = tw * poly[:, good]
        r = y[None] - model_good
        # Golub–Pereyra: ∂r/∂θ = −[P⊥ ∂B c + (B⁺)ᵀ ∂Bᵀ r], ∂B = diag(∂t/e) L, B⁺ = (BᵀB)⁻¹Bᵀ,
        # both projections in one solve: −[∂B c − B (BᵀB)⁻¹ (Bᵀ ∂B c − ∂Bᵀ r)], and
        # Bᵀ ∂B c − ∂Bᵀ r = Lᵀ [∂t/e ∘ (2 B c − y)]
        first = dt * poly[:, good, None]
        weighted = np.ascontiguousarray((dt * (2 * model_good - y[None])[:, :, None]).transpose(1, 0, 2))
        rhs = (leg.T @ weighted.reshape(len(good), -1)).reshape(leg.shape[1], len(thetas), -1).transpose(1, 0, 2)
        correction = solve(rhs)                                      # (G, K, npar + 2)
        back = (leg @ np.ascontiguousarray(correction.transpose(1, 0, 2)).reshape(leg.shape[1], -1))
        back = back.reshape(len(good), len(thetas), -1).transpose(1, 0, 2)
        return r, bestfit, tw[:, :, None] * back - first


class NativeEngine(FitEngine):
    """The native engine: ULySS's fit of one spectrum in NumPy/SciPy (see the module's text)."""

    name = "native"

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
        self.dx_dp = np.diag(1.0 / self.scales)
        self.lsf = read_lsf(config.lsf) if config.lsf else None

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
        lamrange = spec.wavelength[[0, -1]]
        rebinned, cmp_start, cmp_npix = self._model_on_grid(velscale, lamrange)
        model_range = np.exp(cmp_start + np.array([0.5, cmp_npix - 1.5]) * spec.step)
        spec = extract(spec, model_range)
        if cmp_npix < spec.npix:
            raise UlyssAnnError(f"the model ({cmp_npix} px) is shorter than the observation ({spec.npix} px)")
        voff = (cmp_start - spec.start) / spec.step
        return spec, rebinned, voff, velscale

    # --------------------------------------------------------------- the fit
    def solve(self, prepared):
        """Fit one prepared spectrum: every guess combination in lock-step, the best χ² kept."""
        flags = prepared.fixed_flags
        spec, rebinned, voff, velscale = self.rebinned_observation(prepared)
        problem = _Problem(self, rebinned, spec, self.config.mdegree, voff,
                           spec.err is not None, self.losvd)
        step = spec.step
        floor = 0.3 if self.losvd == "sampled" else ANALYTIC_SIGMA_FLOOR   # pixels
        kin_lo = np.array([np.log(1 - 2000 / C_KMS), np.log(1 + floor * velscale / C_KMS)]) / step
        kin_hi = np.array([np.log(1 + 2000 / C_KMS), np.log(1 + 1000 / C_KMS)]) / step
        lower = np.concatenate([kin_lo, self.limits[:, 0]])
        upper = np.concatenate([kin_hi, self.limits[:, 1]])
        free = np.concatenate([[True, True], flags == 0])
        kin0 = np.array([0.0, np.log(1 + velscale / C_KMS) / step])
        nodes = _odometer(prepared.guesses, prepared.counts)
        starts = np.column_stack([np.tile(kin0, (len(nodes), 1)), nodes])
        try:
            results = levenberg_marquardt(problem, starts, lower, upper, free)
        except np.linalg.LinAlgError:
            # The polynomial's normal matrix is singular: the good pixels bunch in too small
            # a part of the fitted range for MDEGREE + 1 Legendre coefficients over all of it.
            gp = problem.good
            span = np.exp(spec.start + np.array([gp[0], gp[-1]]) * step)
            raise UlyssAnnError(f"degenerate fit: the {gp.size} good pixels lie in {span[0]:.0f}-{span[1]:.0f} Å "
                                f"of the fitted {prepared.lo:.0f}-{prepared.hi:.0f} Å, too little for MDEGREE "
                                f"{self.config.mdegree}; fit that range (--range) or lower --mdegree") from None
        npar_count = int(free.sum()) + self.config.mdegree + 2
        ngood = problem.good.size
        rms = np.array([np.sqrt(np.mean((problem.data - r["bestfit"][problem.good]) ** 2))
                        / np.mean(r["bestfit"][problem.good]) for r in results])
        # χ² from the float32 best fit, as uly_fit computes it
        chisq = np.array([np.sum(((problem.data - r["bestfit"][problem.good]) / problem.noise) ** 2)
                          / (ngood - npar_count) for r in results])
        crit = chisq if problem.have_noise else rms
        # ties to the first, as ULySS; guesses that reached the same minimum differ in χ²
        # only by the stopping tolerance (1e-7 relative), so "the same" is within 1e-6
        best = int(np.flatnonzero(crit <= crit.min() * (1 + 1e-6))[0])
        res = results[best]
        theta, error = res["theta"], res["error"] * np.sqrt(spec.dof_factor)
        chi2 = chisq[best]
        if not problem.have_noise:
            error = error * np.sqrt(chi2)
            chi2 = 0.0
        values = theta[2:]
        status = np.where(flags != 0, 1, np.where(values <= self.limits[:, 0], 2,
                                                  np.where(values >= self.limits[:, 1], 3, 0)))
        mask = np.zeros(spec.npix, bool)
        mask[problem.good] = True
        return Solution(n_guess=len(results), best_guess=best, n_converged=int(np.sum(rms <= rms[best] * 1.001)),
                        chi2=chi2, rms=rms[best], n_pix=ngood,
                        cz=C_KMS * (np.exp(step * theta[0]) - 1), e_cz=error[0] * velscale,
                        sigma=C_KMS * (np.exp(step * theta[1]) - 1), e_sigma=error[1] * velscale,
                        values=values, errors=error[2:], status=status, ln_start=spec.start, ln_step=spec.step,
                        flux=spec.data, bestfit=res["bestfit"], mask=mask, error=spec.err)


def _odometer(guesses, counts):
    """Every combination of guesses, first parameter fastest (ULySS's node order)."""
    per_param = np.split(np.asarray(guesses, float), np.cumsum(counts)[:-1])
    grids = np.meshgrid(*per_param, indexing="ij")
    return np.column_stack([g.ravel(order="F") for g in grids])
