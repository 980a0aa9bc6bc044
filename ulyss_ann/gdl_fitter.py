"""One spectrum fitted by ULySS in GDL with a generated component: the GDL engine of ``fit``.

The fit is ULySS's own (``ulyss`` with ``/ALL_SOLUTIONS``, through ``gdl/ulyss_ann_fit.pro``):
the spectrum that our readers built (flux, error, mask, wavelengths) is handed to
ULySS through ``uly_spect_alloc`` — not a file name, because ``uly_spect_read``
ignores the MUSE ``SIGMA`` extension — and cut to the fitted range with
``uly_spect_extract``. ULySS log-rebins it and fits the model of the paper's Eq. 8,
``F = P_n × G(v, σ) ⊗ f(p)``: every combination of guesses gets a Levenberg-Marquardt
fit (MPFIT) and the lowest χ² wins.

Default masks, inside the fitted range, for observed spectra (not for simulated
ones, whose header says ``SIMULATD = T``): the telluric O₂ B band 6860–6890 Å, H₂O
7160–7330 Å and O₂ A band 7590–7700 Å; optionally interstellar Na D 5885–5900 Å.
"""

import hashlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UlyssAnnError
from .gdl_export import generate_component
from .gdl_literals import check_gdl_path
from .interpolator import Interpolator

__all__ = ["FitConfig", "FitPreparation", "GDLFitter", "TELLURIC_BANDS", "NA_D_BAND", "file_sha256",
           "check_gdl_paths"]

#: Telluric absorption bands masked by default in observed spectra [Å, air].
TELLURIC_BANDS = ((6860.0, 6890.0, "O2 B band"), (7160.0, 7330.0, "H2O"), (7590.0, 7700.0, "O2 A band"))
#: Interstellar sodium doublet, masked on request (--mask-nad).
NA_D_BAND = (5885.0, 5900.0, "Na D")

#: The paper's guesses (Kumar, Prugniel & Singh §5): 3 x 2 starting points.
PAPER_GUESSES = {"teff": (5000.0, 5500.0, 6000.0), "fe/h": (-1.0, -1.5)}


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class FitConfig:
    """How to fit: model, guesses, fixed parameters, polynomial, range and masks.

    Attributes
    ----------
    model : str
        Interpolator file.
    guesses : dict, optional
        Parameter name -> sequence of starting values. Default: the paper's
        (Teff 5000/5500/6000 K, [Fe/H] -1/-1.5) where the names match, the
        training-grid mean otherwise.
    fixed : dict, optional
        Parameter name -> value, or name -> {spectrum id: value} (a value per
        spectrum, the paper's photometric log g); fixed parameters are not fitted.
    mdegree : int
        Degree of the multiplicative Legendre polynomial (paper: 20).
    wave_range : (float, float), optional
        Fitted range in Å (default: the network's range).
    telluric : bool or None
        Mask the telluric bands; None: yes, except for simulated spectra.
    mask_nad : bool
        Also mask interstellar Na D.
    masks : sequence of (lo, hi)
        More ranges to mask, Å.
    backend : str
        GDL session backend: ``auto``, ``pygdl`` or ``subprocess``.
    recycle_after : int
        Restart a subprocess GDL after this many fits (GDL's built-ins leak).
    engine : str
        ``gdl`` (ULySS in GDL) or ``native`` (:mod:`ulyss_ann.native_fitter`).
    losvd : str
        Native engine: ``sampled`` (ULySS's pixel-sampled Gaussian, the default, for
        agreement) or ``analytic`` (pPXF's Fourier form, exact below a pixel).
    lsf : str, optional
        A relative LSF file (ULySS's text format, :mod:`ulyss_ann.lsf`) injected into
        the model before the fit, as ULySS's ``LSF=`` does: the instrument's
        wavelength-dependent broadening beyond the model's, so that the fitted σ only
        has to absorb what is left.
    save_fits : str, optional
        Folder where each spectrum's best fit is written: ``<id>_fit.fits`` (data,
        best fit, residual, mask on the fitted log-lambda grid) and ``<id>.res``
        (ULySS's solut text, for its own tools).
    """

    model: str
    guesses: dict = None
    fixed: dict = None
    mdegree: int = 20
    wave_range: tuple = None
    telluric: bool = None
    mask_nad: bool = False
    masks: tuple = ()
    backend: str = "auto"
    timeout: float = 600.0
    recycle_after: int = 100
    save_fits: str = None
    engine: str = "gdl"
    losvd: str = "sampled"
    lsf: str = None


def _code_version():
    """A digest of the GDL code and templates of this installation (the cache key's second half)."""
    from .gdl_export import resource_dir

    digest = hashlib.sha256()
    for kind, pattern in (("gdl", "*.pro"), ("templates", "*.j2")):
        for path in sorted(resource_dir(kind).glob(pattern)):
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:10]


def _component_cache():
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ulyss_ann" / "components"


def check_gdl_paths(config):
    """Refuse, before any fit, a path of ``config`` that GDL would not open as written."""
    if config.save_fits:
        check_gdl_path(os.path.abspath(config.save_fits), "--save-fits")
    if config.lsf:
        check_gdl_path(os.path.abspath(config.lsf), "--lsf")
    check_gdl_path(_component_cache(), "the component cache (set XDG_CACHE_HOME to change it)", search_path=True)


def _component_folder(interp, sha):
    """Generate (once per model and code version, shared by all workers) the component in the cache."""
    base = _component_cache()
    name = "ann_" + sha[:12]
    folder = base / f"{name}_{_code_version()}"  # new code never meets old generated files
    if not (folder / f"{name}_eval.pro").is_file():
        base.mkdir(parents=True, exist_ok=True)
        # Written aside, then published atomically: concurrent workers never see a
        # half-written folder.
        scratch = Path(tempfile.mkdtemp(prefix=name + ".", dir=base))
        generate_component(interp, name, scratch, final_dir=folder)
        try:
            os.rename(scratch, folder)
        except OSError:  # another worker got there first
            shutil.rmtree(scratch, ignore_errors=True)
    return name, folder


class FitPreparation:
    """What both engines decide alike: the fitted range, the masks and the guesses."""

    def __init__(self, config, interp):
        self.config, self.interp = config, interp

    def guesses_for(self, fixed):
        """Flat guesses, counts and fixed flags for one spectrum, in network order."""
        guesses, counts, flags = [], [], []
        user = {k.lower(): v for k, v in (self.config.guesses or {}).items()}
        for p in self.interp.parameters:
            key = p.name.lower()
            if key in fixed:
                values, flag = [fixed[key]], 1
            else:
                values = user.get(key) or PAPER_GUESSES.get(key) or (p.mean,)
                flag = 0
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
        net = self.interp.wavelength.wavelength
        wave = np.asarray(spectrum.wavelength, float)
        margin = 1.5 * max(abs(net[1] - net[0]), abs(wave[1] - wave[0]), abs(wave[-1] - wave[-2]))
        lo, hi = self.config.wave_range or (net[0], net[-1])
        lo = max(lo, net[0] + margin, wave[0])
        hi = min(hi, net[-1] - margin, wave[-1])
        return lo, hi

    def good_pixels(self, spectrum):
        good = spectrum.good.copy()
        bands = list(self.config.masks)
        telluric = self.config.telluric
        if telluric is None:
            telluric = not spectrum.meta.get("simulated", False)
        if telluric:
            bands += [b[:2] for b in TELLURIC_BANDS]
        if self.config.mask_nad:
            bands.append(NA_D_BAND[:2])
        for a, b in bands:
            good &= ~((spectrum.wavelength >= a) & (spectrum.wavelength <= b))
        return good


class GDLFitter(FitPreparation):
    """Fits spectra one by one in one GDL session (one per worker process)."""

    def __init__(self, config):
        from .gdl_session import open_session

        check_gdl_paths(config)
        super().__init__(config, Interpolator.read(config.model))
        self.sha = file_sha256(config.model)
        self.name, self.folder = _component_folder(self.interp, self.sha)
        self.session = open_session([self.folder], backend=config.backend, timeout=config.timeout)
        self.engine = f"gdl-{self.session.backend}"
        self.fits = 0

    def close(self):
        self.session.close()

    # ------------------------------------------------------------ the fit
    def fit(self, spectrum, fixed=None):
        """Fit one :class:`~ulyss_ann.spectrum_readers.Spectrum`; return the fitted values.

        Raises UlyssAnnError (no overlap, out-of-bound fixed values, GDL errors),
        which the batch driver turns into the row's status.
        """
        fixed = {k.lower(): float(v) for k, v in (fixed or {}).items()}
        lo, hi = self.fit_range(spectrum)
        if hi - lo < 50.0:
            net = self.interp.wavelength.wavelength
            raise UlyssAnnError(f"no overlap: spectrum {spectrum.wavelength[0]:.1f}-{spectrum.wavelength[-1]:.1f} Å, "
                                f"network {net[0]:.1f}-{net[-1]:.1f} Å")
        good = self.good_pixels(spectrum)
        guesses, counts, flags = self.guesses_for(fixed)
        grid = spectrum.grid
        if grid is not None:
            sampling = 1 if grid.log else 0
            start = grid.crval + (1.0 - grid.crpix) * grid.cdelt
            step, wave = grid.cdelt, np.array([0.0])
        else:
            sampling, start, step, wave = 2, 0.0, 0.0, spectrum.wavelength
        error = spectrum.error if spectrum.error is not None else np.array([-1.0])
        res_file = " "
        if self.config.save_fits:
            os.makedirs(self.config.save_fits, exist_ok=True)
            res_file = os.path.join(os.path.abspath(self.config.save_fits), f"{spectrum.meta.get('id')}.res")
            check_gdl_path(res_file, "the ULySS .res file of this spectrum")
            if os.path.exists(res_file):
                os.remove(res_file)  # uly_solut_twrite appends
        started = time.perf_counter()
        result = self.session.call("ulyss_ann_fit", self.name, str(self.folder / f"{self.name}.fits"),
                                   spectrum.flux, error, good.astype(np.int32), wave, int(sampling),
                                   float(start), float(step), guesses, counts, flags, float(lo), float(hi),
                                   int(self.config.mdegree), res_file,
                                   os.path.abspath(self.config.lsf) if self.config.lsf else " ")
        elapsed = time.perf_counter() - started
        self.fits += 1
        if result.size == 1 and result[0] == -1:
            message = self.session.call("ulyss_ann_last_error").strip()
            raise UlyssAnnError(f"GDL: {message}")
        values = self._unpack(result)
        values.update(time_s=elapsed, n_masked=int(np.count_nonzero(~good)), lmin=lo, lmax=hi)
        if self.config.save_fits:
            self._save_fit(spectrum)
        if self.session.backend == "subprocess" and self.fits % self.config.recycle_after == 0:
            self.session.restart()  # give GDL's leaked memory back
        return values

    def _unpack(self, r):
        values = dict(n_guess=int(r[0]), best_guess=int(r[1]), n_converged=int(r[2]), chi2=r[3], rms=r[4],
                      n_pix=int(r[5]), cz=r[6], e_cz=r[7], sigma=r[8], e_sigma=r[9], status_params={})
        for i, p in enumerate(self.interp.parameters):
            value, error, status = r[10 + 3 * i: 13 + 3 * i]
            values[p.name] = value
            values["e_" + p.name] = error
            values["status_params"][p.name] = int(status)
        return values

    def _save_fit(self, spectrum):
        arr = self.session.call("ulyss_ann_last_fit")
        if arr.size < 8:
            return
        data, bestfit, mask, lnwave = arr.reshape(4, -1)  # the folder was made by fit()
        write_fit_file(self.config.save_fits, spectrum, data, bestfit, mask, lnwave[0], lnwave[1] - lnwave[0])


def write_fit_file(folder, spectrum, data, bestfit, mask, ln_start, ln_step):
    """``<folder>/<id>_fit.fits``: data, best fit, residual and mask on the fitted ln-λ grid."""
    from astropy.io import fits

    header = fits.Header()
    header["CTYPE1"] = ("AWAV-LOG", "ln(wavelength/Angstrom) sampling (ULySS)")
    header["CRPIX1"] = 1
    header["CRVAL1"] = (float(ln_start), "ln(wavelength/Angstrom) of pixel 1")
    header["CDELT1"] = (float(ln_step), "step in ln(wavelength)")
    header["OBJECT"] = str(spectrum.meta.get("id"))
    hdus = [fits.PrimaryHDU(data, header=header)]
    for name, values in (("BESTFIT", bestfit), ("RESIDUAL", data - bestfit), ("MASK", mask.astype(np.uint8))):
        hdus.append(fits.ImageHDU(values, header=header, name=name))
    os.makedirs(folder, exist_ok=True)
    fits.HDUList(hdus).writeto(os.path.join(folder, f"{spectrum.meta.get('id')}_fit.fits"), overwrite=True)
