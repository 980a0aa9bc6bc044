"""A simulated NGC 6397 MUSE sample, to test the whole pipeline on a known answer.

Kumar, Prugniel & Singh fitted 1587 MUSE spectra of 1063 stars above the main-sequence
turn-off of NGC 6397 (Husser et al. 2016). :func:`simulate_cluster` makes a sample like
it, from a network *other* than the one used to fit (the authors' trial 8 generates;
trial 7 fits), so that the test is not circular.

The parametrisation (documented, not a stellar-evolution model):

* **Isochrone.** An old metal-poor isochrone drawn as a polyline in (Teff, log g)
  (:data:`ISOCHRONE`): red-giant branch from 4500 K / 1.0 up to its base near
  5300 K / 3.55, subgiant branch to the turn-off at 6400 K / 4.05, and the upper main
  sequence to log g 4.2 (the paper's limit). Stars are placed along it with a density
  rising towards the turn-off (``0.25 + s²`` in the path coordinate s ∈ [0, 1], as
  the luminosity function of a globular cluster), then given photometric-like scatter
  (40 K, 0.05 dex). The log g written to ``photometry.ecsv`` is the true one (the
  paper fixes log g at its photometric value).
* **Metallicity trend** (injected, the paper's finding): [Fe/H] = −2.12 on the
  subgiant and giant branches (Teff ≤ 5500 K), −2.35 at the turn-off
  (Teff ≥ 6250 K), linear in Teff between; no intrinsic scatter.
* **Visits.** 1063 stars, 1587 spectra: 524 extra visits given to random stars.
* **Spectra.** The network spectrum (2 Å FWHM) convolved to MUSE's LSF, FWHM falling
  linearly from 2.82 Å at 4750 Å to 2.54 Å at 7000 Å (:func:`sigma_muse`), Doppler-shifted
  by the star's radial velocity (cluster mean 18.5 km/s, dispersion 5 km/s) and sampled on
  MUSE's 1.25 Å grid (pixel phase of the real MUSE file) over 4765–7380 Å, all three at
  once and exactly, in Fourier space (:func:`~ulyss_ann.spectra.band_limited.observe`: the
  Gaussian's analytic transform at each pixel's σ, the shift as a phase; before issue #26 a
  sparse matrix of sampled Gaussians and a cubic spline, whose σ depended on the pixel
  phase by 0.3–0.5 km/s), multiplied by a smooth random continuum (a quadratic in λ: flux
  calibration and extinction), with Gaussian noise. S/N per pixel: log-normal around 40
  (giants ×1.5), cut at 20 (the paper's sample has S/N > 20) and 200.
* **Files.** MUSE/PampelMuse layout (flux + ``SIGMA``), named like the real ones
  (``ngc6397id<star>jd<date>f000.fits``, the star number before ``jd``), RA/Dec
  within 1′ of the cluster centre, ``SIMULATD = T`` and the truth in ``SIM_*`` cards;
  ``truth.ecsv`` (one row per spectrum, with units), ``photometry.ecsv`` and
  ``lsf.txt``, the LSF the spectra were given relative to the network's 2 Å (ULySS's
  format, for ``fit --lsf``).

**The region grid** (:func:`region_grid`, ``simulate ngc6397 --region-grid N``): the
generating network evaluated at N random points of the cluster's part of parameter space
(within ±300 K and ±0.4 dex of the isochrone, [Fe/H] −3 to −0.9). A network trained on it
reproduces the generator there to a training MSE of ~1e-9, so fitting with it checks the
pipeline — simulation, LSF, noise, continuum, the fit — with a network that is not the
generator yet carries almost none of its interpolation error. The networks trained on the
grid nodes (trial 7, or ours on the surrogate) differ from the generator by an RMS of
0.5–2·10⁻³ of the flux there, while 0.05 dex of [Fe/H] changes these metal-poor spectra by
only 3–7·10⁻⁴: their [Fe/H] offsets measure the networks, not the pipeline.
"""

import os

import numpy as np
from astropy.table import Table
from scipy import sparse
from scipy.interpolate import CubicSpline

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.model.interpolator import Interpolator
from ulyss_ann.spectra.line_spread import gaussian_lsf, write_lsf
from ulyss_ann.spectra.band_limited import observe
from ulyss_ann.spectra.simulate import write_muse_spectrum
from ulyss_ann.model.wavelength import C_KMS

__all__ = ["ISOCHRONE", "isochrone", "injected_feh", "simulate_cluster", "lsf_matrix", "shift_and_resample",
           "region_grid", "sigma_muse"]

#: (Teff [K], log g) vertices of the isochrone polyline, giant branch first.
ISOCHRONE = np.array([(4500, 1.0), (4800, 1.9), (5000, 2.6), (5150, 3.2), (5300, 3.55), (5700, 3.70),
                      (6100, 3.85), (6400, 4.05), (6300, 4.20)], dtype=float)
CENTRE = (265.17538, -53.67433)   # NGC 6397 (Harris 2010), degrees
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


def isochrone(s):
    """(Teff, log g) at path coordinate s ∈ [0, 1] (0: top of the giant branch)."""
    seg = np.r_[0, np.cumsum(np.hypot(np.diff(ISOCHRONE[:, 0]) / 1000, np.diff(ISOCHRONE[:, 1])))]
    seg /= seg[-1]
    return np.interp(s, seg, ISOCHRONE[:, 0]), np.interp(s, seg, ISOCHRONE[:, 1])


def injected_feh(teff):
    """The injected trend: −2.12 at Teff ≤ 5500 K, −2.35 at Teff ≥ 6250 K, linear between."""
    return np.interp(teff, [5500.0, 6250.0], [-2.12, -2.35])


def fwhm_muse(wave):
    """MUSE's LSF FWHM [Å]: 2.82 Å at 4750 Å to 2.54 Å at 7000 Å, linear (extrapolated beyond)."""
    return 2.82 + (wave - 4750.0) * (2.54 - 2.82) / (7000.0 - 4750.0)


def sigma_muse(wave, fwhm_model=2.0):
    """σ [Å] of the Gaussian taking a model of ``fwhm_model`` Å to MUSE's LSF at ``wave`` (widths add in variance)."""
    return np.sqrt(fwhm_muse(wave) ** 2 - fwhm_model ** 2) / FWHM_PER_SIGMA


def lsf_matrix(wave, fwhm_model=2.0):
    """Sparse matrix taking a spectrum at ``fwhm_model`` to MUSE's LSF (row-normalised Gaussians).

    Approximate (a Gaussian sampled at whole pixels has the right variance, not the right
    shape); :func:`simulate_cluster` broadens exactly instead
    (:func:`~ulyss_ann.spectra.band_limited.observe` with :func:`sigma_muse`).

    The extra broadening σ(λ) = √(FWHM² − FWHM_model²)/2.3548 is ~0.5 px: a Gaussian
    sampled at whole pixels with that σ has a smaller variance than σ² (−8 % at 0.53 px),
    so each row's sampling width is adjusted until its discrete variance is σ² exactly.
    """
    step = wave[1] - wave[0]
    sigma = np.sqrt(np.maximum(fwhm_muse(wave) ** 2 - fwhm_model ** 2, 1e-6)) / 2.3548 / step   # pixels
    half = int(np.ceil(5 * sigma.max())) + 1
    offsets = np.arange(-half, half + 1, dtype=float)
    width = sigma.copy()
    for _ in range(30):   # fixed point: width ← width · σ / √(discrete variance)
        g = np.exp(-0.5 * (offsets[None] / width[:, None]) ** 2)
        width *= sigma / np.sqrt(np.sum(g * offsets ** 2, axis=1) / g.sum(axis=1))
    rows = np.repeat(np.arange(wave.size), offsets.size)
    cols = np.clip(rows + np.tile(offsets.astype(int), wave.size), 0, wave.size - 1)
    weights = np.exp(-0.5 * (np.tile(offsets, wave.size) / np.repeat(width, offsets.size)) ** 2)
    matrix = sparse.csr_matrix((weights, (rows, cols)), shape=(wave.size, wave.size))
    return sparse.diags(1.0 / np.asarray(matrix.sum(axis=1)).ravel()) @ matrix


def shift_and_resample(wave_out, wave, flux, velocity):
    """``flux`` (on ``wave``) Doppler-shifted by ``velocity`` [km/s] and sampled at ``wave_out``.

    λ → λ(1 + v/c), then a not-a-knot cubic spline: on lines of σ ≈ 0.9 px (MUSE's LSF on
    its 1.25 Å pixels) it keeps their width (second moment) to 1e-4 px², where linear
    interpolation adds f(1 − f) px² at a pixel phase f — up to 0.25 px², i.e. up to 30 km/s
    of extra broadening that the stated LSF would not include (a test checks both). The
    spline is not exact either (a few 1e-4 of the flux, depending on the phase);
    :func:`~ulyss_ann.spectra.band_limited.observe` is, and :func:`simulate_cluster` uses it.
    """
    return CubicSpline(wave * (1 + velocity / C_KMS), flux)(wave_out)


def _sample_stars(n_stars, rng):
    s = np.empty(0)
    while s.size < n_stars:   # density 0.25 + s² by rejection
        trial = rng.uniform(0, 1, 4 * n_stars)
        s = np.r_[s, trial[rng.uniform(0, 1.25, trial.size) < 0.25 + trial ** 2]]
    teff, logg = isochrone(s[:n_stars])
    teff = teff + rng.normal(0, 40, n_stars)
    logg = np.clip(logg + rng.normal(0, 0.05, n_stars), 0.9, 4.2)
    return teff, logg, injected_feh(teff)


def simulate_cluster(model, outdir, n_stars=1063, n_spectra=1587, seed=6397, progress=False, noise=True):
    """Write the simulated sample to ``outdir``; return the truth table (one row per spectrum).

    ``noise=False`` writes the same sample without its noise (the same random draws, the
    same ``SIGMA``): a check of the simulation and of a measurement free of noise.
    """
    from ulyss_ann.spectra.progress import progress_bar

    if n_spectra < n_stars:
        raise UlyssAnnError(f"{n_spectra} spectra for {n_stars} stars: every star needs at least one")
    interp = Interpolator.read(model)
    if interp.names[:3] != ("Teff", "Logg", "Fe/H"):
        raise UlyssAnnError(f"{model}: a (Teff, Logg, Fe/H) network is needed, not {interp.names}")
    os.makedirs(outdir, exist_ok=True)
    rng = np.random.default_rng(seed)
    teff, logg, feh = _sample_stars(n_stars, rng)
    outside = (logg < interp.parameters[1].low) | (teff < interp.parameters[0].low)
    if outside.any():
        raise UlyssAnnError(f"{model}: {outside.sum()} stars fall outside the network's bounds")
    star_rv = 18.5 + rng.normal(0, 5.0, n_stars)
    ra = CENTRE[0] + rng.uniform(-1, 1, n_stars) / 60 / np.cos(np.radians(CENTRE[1]))
    dec = CENTRE[1] + rng.uniform(-1, 1, n_stars) / 60
    star_of = np.r_[np.arange(n_stars), rng.choice(n_stars, n_spectra - n_stars)]
    star_of.sort()
    wave = interp.in_medium("air").wavelength.wavelength  # MUSE's axis is air; the authors' networks are vacuum
    muse = 4749.753 + 1.25 * np.arange(3680)
    muse = muse[(muse >= 4765) & (muse <= 7380)]
    x = (muse - muse.mean()) / (muse[-1] - muse[0]) * 2
    spectra = interp.evaluate(np.column_stack([teff, logg, feh])).T   # (npix, n_stars), the network's 2 Å
    rows, visit = [], {}
    for k in progress_bar(range(n_spectra), desc="simulating", unit="spectrum", enabled=progress):
        i = star_of[k]
        visit[i] = visit.get(i, -1) + 1
        snr = float(np.clip(np.exp(rng.normal(np.log(40), 0.5)) * (1.5 if logg[i] < 3 else 1.0), 20, 200))
        shifted = observe(muse, wave, spectra[:, i], star_rv[i], sigma_muse)
        continuum = 1e3 * (1 + rng.normal(0, 0.15) * x + rng.normal(0, 0.08) * (1.5 * x ** 2 - 0.5))
        flux = shifted * continuum
        sigma = np.abs(flux) / snr
        draws = rng.normal(0, 1, flux.size)   # drawn without noise too: the rest of the sample stays the same
        if noise:
            flux = flux + draws * sigma
        jd = 2456865 + visit[i]
        name = f"ngc6397id{i + 1:09d}jd{jd}p{rng.integers(1000, 9999)}f000"
        truth = {"SIM_TEFF": (float(teff[i]), "[K] true Teff"), "SIM_LOGG": (float(logg[i]), "[dex] true log g"),
                 "SIM_FEH": (float(feh[i]), "[dex] true [Fe/H] (injected trend)"),
                 "SIM_VRAD": (float(star_rv[i]), "[km/s] true radial velocity"),
                 "SIM_SNR": (snr, "S/N per pixel"), "SIM_NET": (os.path.basename(model), "generating network"),
                 "RA": (float(ra[i]), "[deg]"), "DEC": (float(dec[i]), "[deg]"), "MJD-OBS": (jd - 2400000.5, "")}
        write_muse_spectrum(os.path.join(outdir, name + ".fits"), muse, flux, sigma, truth=truth)
        rows.append((name, i + 1, ra[i], dec[i], teff[i], logg[i], feh[i], star_rv[i], snr))
    table = Table(rows=rows, names=("id", "star", "ra", "dec", "Teff", "Logg", "Fe/H", "cz", "snr"),
                  units=(None, None, "deg", "deg", "K", "dex", "dex", "km/s", None))
    table.meta["comment"] = [f"SIMULATED NGC 6397 sample from {os.path.basename(model)} (see ulyss_ann.paper.ngc6397)"]
    table.write(os.path.join(outdir, "truth.ecsv"), overwrite=True)
    phot = Table([table["id"], table["Logg"]], names=("id", "logg"))
    phot["logg"].unit = "dex"
    phot.write(os.path.join(outdir, "photometry.ecsv"), overwrite=True)
    write_lsf(gaussian_lsf(fwhm_muse, 2.0, np.arange(4700, 7451, 50)), os.path.join(outdir, "lsf.txt"),
              comment="the simulated MUSE LSF relative to the generating network (2 A FWHM)")
    return table


def region_grid(model, n=3000, seed=6398):
    """The generating network at ``n`` random points of the cluster's region (see the module doc).

    Returns a :class:`~ulyss_ann.spectra.grid.SpectralGrid` marked SURROGATE, saying which
    network and region made it.
    """
    from ulyss_ann.spectra.grid import SpectralGrid

    interp = Interpolator.read(model)
    rng = np.random.default_rng(seed)
    teff, logg = isochrone(rng.random(n))
    params = np.column_stack([teff + rng.uniform(-300, 300, n), np.clip(logg + rng.uniform(-0.4, 0.4, n), 0.6, 4.8),
                              rng.uniform(-3.0, -0.9, n)])
    meta = (("SURROGAT", True, "not real GSL spectra"),
            ("SRC_NET", os.path.basename(model), "network evaluated"),
            ("REGION", "NGC 6397 isochrone +-300 K +-0.4 dex, [Fe/H] -3..-0.9", "where (ulyss_ann.paper.ngc6397)"),
            ("HISTORY", "Region grid of ulyss_ann: the generating network of the simulated NGC 6397", ""),
            ("HISTORY", "sample at random points of its region, for a check of the pipeline.", ""))
    return SpectralGrid.from_network(interp, params, meta)
