"""One spectrum fitted by ULySS in GDL with a generated component: the GDL engine of ``fit``.

The fit is ULySS's own (``ulyss`` with ``/ALL_SOLUTIONS``, through ``ulyss_ann/gdl/pro/ulyss_ann_fit.pro``):
the spectrum that our readers built (flux, error, mask, wavelengths) is handed to
ULySS through ``uly_spect_alloc`` — not a file name, because ``uly_spect_read``
ignores the MUSE ``SIGMA`` extension — and cut to the fitted range with
``uly_spect_extract``. ULySS log-rebins it and fits the model of the paper's Eq. 8,
``F = P_n × G(v, σ) ⊗ f(p)``: every combination of guesses gets a Levenberg-Marquardt
fit (MPFIT) and the lowest χ² wins.

The range, masks and guesses are decided in Python (:mod:`ulyss_ann.fitting.core`), as
for the native engine. What GDL sends back is two vectors, whose layouts are defined
once, here (:data:`RESULT_FIELDS`, :data:`LAST_FIT_COLUMNS`), and documented in the
GDL routines' headers with the same names.

Files GDL opens itself are never the user's paths: GDL passes a file name through
wordexp(3), which drops a pair of quotes (``étoile's star`` in a folder ``l'été``
becomes ``etoiles star`` in ``lete``) and expands globs, and an I/O error inside a
CATCH then aborts GDL (``GDLInterpreter.cpp:442`` assertion), taking python3-gdl's
Python process and the batch with it. So ULySS writes the ``.res`` file into this
engine's scratch folder under a fixed ASCII name and Python moves it to
``<save_fits>/<id>.res`` (whole or not at all, never through a link); an LSF file is
copied there under a name made of its checksum.

When ULySS finds no solution it says why only in messages that ``/QUIET`` hides: the
spectrum is then fitted once more, verbosely, and what ULySS printed becomes the
error (:meth:`GDLEngine._no_solution`). A dead or hung ``gdl`` process raises
:class:`~ulyss_ann.errors.MachineryError` (``GDLProcessError``) and the session starts
a new one for the next spectrum.
"""

import hashlib
import os
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np

from ulyss_ann.errors import MachineryError, UlyssAnnError, first_line
from ulyss_ann.fitting.core import FitEngine, Solution
from ulyss_ann.fitting.result import file_stem
from ulyss_ann.fitting.result_fits import save_failure
from ulyss_ann.fitting.safe_files import write_beside
from ulyss_ann.fitting.resampling import refit_samples
from ulyss_ann.gdl.component_cache import cache_dir, cached_component, check_cache_owner, checked_problem
from ulyss_ann.gdl.literals import check_gdl_path
from ulyss_ann.gdl.process import gdl_error, gdl_error_lines, gdl_interrupted
from ulyss_ann.model.wavelength import C_KMS

#: ULySS's NSIMUL is run this many simulations a GDL call at most: each call must end within
#: ``timeout`` (a normal fit's order), else a large --nsimul would time out, and again on every --resume.
#: GDL's generator goes on between calls (an undefined seed continues its state): the chunks draw
#: different noise.
NSIMUL_CHUNK = 25

__all__ = ["GDLEngine", "check_gdl_paths", "check_gdl_here", "RESULT_FIELDS", "PARAMETER_FIELDS", "LAST_FIT_COLUMNS",
           "decode_result"]

#: What ULYSS_ANN_FIT returns, in this order (ulyss_ann/gdl/pro/ulyss_ann_fit.pro, OUTPUT) ...
RESULT_FIELDS = ("n_guess", "best_guess", "n_converged", "chi2", "rms", "n_pix", "cz", "e_cz", "sigma", "e_sigma",
                 "dof_factor", "ulyss_seconds")
#: ... then these three for each parameter of the network, in network order.
PARAMETER_FIELDS = ("value", "error", "status")
#: The columns of ULYSS_ANN_LAST_FIT (ulyss_ann/gdl/pro/ulyss_ann_last_fit.pro), each npix long.
LAST_FIT_COLUMNS = ("flux", "error", "bestfit", "mask", "ln_wavelength")


def decode_result(vector, npar):
    """ULYSS_ANN_FIT's vector as a dict of :data:`RESULT_FIELDS` and per-parameter arrays."""
    vector = np.asarray(vector, float)
    expected = len(RESULT_FIELDS) + len(PARAMETER_FIELDS) * npar
    if vector.size != expected:
        raise UlyssAnnError(f"GDL returned {vector.size} numbers, expected {expected} "
                            f"({len(RESULT_FIELDS)} + {len(PARAMETER_FIELDS)} x {npar} parameters)")
    out = dict(zip(RESULT_FIELDS, vector[:len(RESULT_FIELDS)]))
    per_parameter = vector[len(RESULT_FIELDS):].reshape(npar, len(PARAMETER_FIELDS))
    for k, name in enumerate(PARAMETER_FIELDS):
        out[name] = per_parameter[:, k]
    return out


def check_gdl_paths(config):
    """Refuse, before any fit, a path of ``config`` that GDL would not open as written.

    GDL opens only the component cache and scratch folders (see the module's notes);
    ``$`` and ``\\`` in a --save-fits folder stay refused, as before, for one rule on
    both engines' GDL side.
    """
    if config.save_fits:
        check_gdl_path(os.path.abspath(config.save_fits), "--save-fits", opened=False)
    check_gdl_path(cache_dir(), "the component cache (set XDG_CACHE_HOME to change it)", search_path=True)
    check_cache_owner()  # GDL runs the code it finds there: the cache must be this user's alone


def _scratch_folder():
    """A private folder with a name GDL opens verbatim (for the .res file and the LSF copy)."""
    scratch = tempfile.mkdtemp(prefix="ulyss_ann_engine_")
    check_gdl_path(scratch, "the temporary folder (set TMPDIR to a plain path)")
    return Path(scratch)


def check_gdl_here(backend):
    """Stop at once, with the fix, when this machine cannot run GDL + ULySS (with ``backend``)."""
    from ulyss_ann.gdl.process import GDLNotFoundError, gdl_executable
    from ulyss_ann.gdl.session import pygdl_available
    from ulyss_ann.gdl.ulyss_location import INSTALL_HINT, default_ulyss_dir, find_ulyss

    if find_ulyss() is None:
        raise GDLNotFoundError(INSTALL_HINT.format(default=default_ulyss_dir()).replace(
            "Everything that does not run GDL works without it.",
            "The gdl engine needs it; engine='native' (--engine native) needs neither GDL nor ULySS."))
    if backend == "pygdl" and not pygdl_available():
        raise GDLNotFoundError("import GDL failed: install python3-gdl (./scripts/setup) or use --backend subprocess")
    if backend == "subprocess" or (backend == "auto" and not shutil.which("gdl") and not pygdl_available()):
        gdl_executable()  # raises with the apt-get line


class GDLEngine(FitEngine):
    """Fits spectra one by one with ULySS in one GDL session (one per worker process).

    Its declarations (:class:`~ulyss_ann.fitting.engine_traits.EngineTraits`): the label
    ``gdl-BACKEND``; the GDL ``backend`` option, and neither the native LOSVD nor a GPU; one
    spectrum per batch task; taken by ``auto`` first, where GDL and ULySS are found; its own LSF
    measurement (``uly_lsf``, 2 or 4 moments).
    """

    name = "gdl"  # an engine started says its backend: gdl-subprocess, gdl-pygdl (its label)
    summary = "ULySS's uly_fit in GDL"
    software = "GDL + ULySS"
    options = ("backend",)
    auto_priority = 20  # ULySS's own fit, wherever it can run
    lsf_moments = (2, 4)

    @classmethod
    def label(cls, config):
        from ulyss_ann.gdl.session import resolve_backend

        return f"gdl-{resolve_backend(config.backend)}"

    @classmethod
    def check_options(cls, options):
        losvd, device = options.get("losvd", "sampled"), options.get("device", "auto")
        if losvd != "sampled":
            raise UlyssAnnError(f"losvd (--losvd) {losvd}: the native engine's; the gdl engine uses ULySS's "
                                "sampled kernel (use --engine native, or drop --losvd)")
        if device not in ("auto", "cpu"):
            raise UlyssAnnError(f"device (--device) {device}: the native engine's; ULySS in GDL runs on the CPU "
                                "(use --engine native, or drop --device)")
        super().check_options(options)

    @classmethod
    def available(cls, backend="auto"):
        try:
            check_gdl_here(backend)
        except UlyssAnnError:
            return False
        return True

    @classmethod
    def require(cls, backend="auto", remote=False):
        if not remote:
            check_gdl_here(backend)

    @classmethod
    def check_batch(cls, config):
        check_gdl_paths(config)  # a path GDL cannot open stops everything before any work

    @classmethod
    def note_local_workers(cls, cluster):
        from ulyss_ann.fitting.gdl_engine.scratch import note_gdl_sessions

        note_gdl_sessions(cluster)  # removed at the end, even if their workers were killed

    @classmethod
    def record(cls, config):
        from ulyss_ann.gdl.session import resolve_backend

        # the backend as resolved (auto is the backend it gives); the LOSVD is always ULySS's (None)
        return {**super().record(config), "backend": resolve_backend(config.backend)}

    @classmethod
    def check_lsf_options(cls, losvd, moments):
        if losvd is not None and losvd != "sampled":
            raise UlyssAnnError(f"--losvd {losvd}: the native engine's; uly_lsf (--engine gdl) uses ULySS's sampled "
                                "kernel (drop --losvd, or use --engine native)")
        super().check_lsf_options(losvd, moments)

    @classmethod
    def lsf_measurer(cls):
        from ulyss_ann.fitting.gdl_engine.uly_lsf import measure_lsf_gdl

        return measure_lsf_gdl

    def __init__(self, config, interp=None):
        from ulyss_ann.gdl.session import open_session

        check_gdl_paths(config)
        super().__init__(config, interp)
        self.component, self.folder = cached_component(self.interp, self.sha256)  # verified, repaired if damaged
        self.scratch = _scratch_folder()
        self.session = open_session([self.folder], backend=config.backend, timeout=config.timeout)
        self.name = f"gdl-{self.session.backend}"
        self.fits = 0
        # one GDL session, one scratch folder: threads sharing this engine take turns (their configs travel
        # with their fits, core.FitEngine.fit_many); re-entrant, as refits run inside a fit
        self.session_lock = threading.RLock()
        self.ulyss_seconds = 0.0  # in the ULYSS call itself, over every fit (the rest is this engine's overhead)

    def close(self):
        self.session.close()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def lsf_copy(self):
        """The --lsf file as GDL reads it: a copy named by its checksum (the component's key stays put)."""
        if not self.config.lsf:
            return " "
        try:
            data = Path(self.config.lsf).read_bytes()
        except OSError as exc:
            raise UlyssAnnError(f"--lsf {self.config.lsf}: cannot be read ({exc.strerror})") from None
        copy = self.scratch / f"lsf_{hashlib.sha256(data).hexdigest()[:16]}.txt"
        if not copy.is_file():
            copy.write_bytes(data)
        return str(copy)

    def solve_many(self, prepared_fits):
        with self.session_lock:
            return super().solve_many(prepared_fits)

    def solve(self, prepared):
        spectrum = prepared.spectrum
        error = spectrum.error if spectrum.error is not None else np.array([-1.0])
        wave = prepared.wave if prepared.sampling == 2 else np.array([0.0])
        res_file = " "
        save_fits = (prepared.config or self.config).save_fits  # this fit's: refits and profiles write nothing
        if save_fits:
            res_file = str(self.scratch / "solution.res")
            if os.path.exists(res_file):
                os.remove(res_file)  # uly_solut_twrite appends
        args = ("ulyss_ann_fit", self.component, str(self.folder / f"{self.component}.fits"),
                spectrum.flux, error, prepared.good.astype(np.int32), wave,
                int(prepared.sampling), float(prepared.start), float(prepared.step),
                prepared.guesses, prepared.counts, prepared.fixed_flags, float(prepared.lo),
                float(prepared.hi), int(self.config.mdegree), res_file, self.lsf_copy())
        try:
            vector = self.session.call(*args)
            self.fits += 1
            if vector.size == 1 and vector[0] == -1:
                vector = self._no_solution(args)
        except MachineryError:
            raise
        except UlyssAnnError as exc:
            self._check_component(exc)
            raise
        if save_fits:
            self._publish_res(res_file, spectrum.meta.get("id"), save_fits)
        found = decode_result(vector, self.interp.npar)
        self.ulyss_seconds += found["ulyss_seconds"]
        columns = self.session.call("ulyss_ann_last_fit").reshape(len(LAST_FIT_COLUMNS), -1)
        fitted = dict(zip(LAST_FIT_COLUMNS, columns))
        if self.session.backend == "subprocess" and self.fits % self.config.recycle_after == 0:
            self.session.restart()  # give GDL's leaked memory back
        ln_wave = fitted["ln_wavelength"]
        return Solution(n_guess=int(found["n_guess"]), best_guess=int(found["best_guess"]),
                        n_converged=int(found["n_converged"]), chi2=found["chi2"], rms=found["rms"],
                        n_pix=int(found["n_pix"]), cz=found["cz"], e_cz=found["e_cz"], sigma=found["sigma"],
                        e_sigma=found["e_sigma"], values=found["value"], errors=found["error"],
                        status=found["status"].astype(int), ln_start=ln_wave[0], ln_step=ln_wave[1] - ln_wave[0],
                        flux=fitted["flux"], bestfit=fitted["bestfit"], mask=fitted["mask"] != 0,
                        error=None if spectrum.error is None else fitted["error"],
                        # ULySS's own (its solution's): the Python-drawn copies of --errors mc/total
                        # correlate their noise over it (resampling.correlated_noise)
                        dof_factor=float(found["dof_factor"]))

    def resample(self, prepared, result, method, n, rng):
        """ULySS's Monte-Carlo (``ulyss, …, NSIMUL=n``, :attr:`ErrorMethod.ulyss_nsimul`) for ``mc``:
        ULySS perturbs and refits the spectrum itself, from the best solution (its values the only
        guesses, σ as ``DG``; cz from 0, as ULySS always starts), and GDL's generator draws the noise (``rng`` unused),
        at most :data:`NSIMUL_CHUNK` simulations a GDL call; other methods refit their perturbed copies as the
        base class does."""
        if not method.ulyss_nsimul or prepared.spectrum.error is None:
            # ULySS's NSIMUL needs an error spectrum (or its SNR=): without one, the copies get
            # the residual rms as noise (MonteCarlo.perturbed), as in the native engine
            return super().resample(prepared, result, method, n, rng)
        with self.session_lock:
            chunks = [self._nsimul(prepared, result, min(NSIMUL_CHUNK, n - done))
                      for done in range(0, int(n), NSIMUL_CHUNK)]
        return {name: np.concatenate([chunk[name] for chunk in chunks]) for name in chunks[0]}

    def _nsimul(self, prepared, result, n):
        """One call of ULySS's NSIMUL: ``n`` simulations, name -> their values."""
        spectrum = prepared.spectrum
        file_out = self.scratch / "simulations"
        res_file = file_out.with_suffix(".res")
        if res_file.exists():
            res_file.unlink()  # ULySS appends
        values = np.array([result.params[name] for name in self.interp.names], float)
        try:
            vector = self.session.call(
                "ulyss_ann_mc", self.component, str(self.folder / f"{self.component}.fits"), spectrum.flux,
                spectrum.error if spectrum.error is not None else np.array([-1.0]),
                prepared.good.astype(np.int32), prepared.wave if prepared.sampling == 2 else np.array([0.0]),
                int(prepared.sampling), float(prepared.start), float(prepared.step), values,
                prepared.fixed_flags, float(prepared.lo), float(prepared.hi), int(self.config.mdegree),
                # σ from at least ULySS's own start, 1 px: a σ pegged at the 0.3 px floor is refused as a
                # guess (it comes back a rounding below the limit), and MPFIT started a hair above its
                # bound leaves most copies where they started (measured: a spread of 0.002 K in Teff)
                max(float(result.sigma), C_KMS * float(result.ln_step)), int(n), str(file_out), self.lsf_copy())
        finally:
            if res_file.exists():
                res_file.unlink()
        if vector.size == 1 and vector[0] == -1:
            message = self.session.call("ulyss_ann_last_error").strip()
            raise UlyssAnnError("GDL (NSIMUL): " + " ".join(message.split())[:300])
        columns = vector.reshape(-1, 2 + self.interp.npar).T   # cz, σ, then the parameters: ulyss_ann_mc.pro
        return refit_samples(self.interp.names, columns[2:].T, columns[0], columns[1])

    def _check_component(self, exc):
        """After GDL reported an error: if the cached component was damaged since this engine
        checked it (a file deleted or changed meanwhile), the fault is the machinery's, not the
        spectrum's: the component is regenerated for the next spectrum and the row is
        ``failed: …``, fitted again on ``--resume`` (an ``error: …`` row would be kept)."""
        problem = checked_problem(self.folder)
        if problem is None:
            return
        cached_component(self.interp, self.sha256)
        self.session.restart()  # a new gdl compiles the regenerated routines (pygdl: nothing to restart)
        message = (f"the cached GDL component {self.folder} was damaged ({problem}) and has been regenerated; "
                   f"--resume fits this spectrum again (GDL said: {first_line(exc, 200).removeprefix('GDL: ')})")
        raise MachineryError(message) from None

    def _no_solution(self, args):
        """Raise the failed fit's reason in one line, ULySS's own words where it printed any.

        ULySS run /QUIET returns no solution without a word (its reasons are /INFO
        messages), so the spectrum is fitted once more with its messages on, and what
        GDL printed is captured. Should that second fit succeed, its vector is returned.
        """
        message = self.session.call("ulyss_ann_last_error").strip()
        if message.endswith("ULySS returned no solution"):
            self.session.call("ulyss_ann_verbose", 1)
            try:
                vector, printed = self.session.call_capturing(*args)
            except MachineryError:
                raise
            except UlyssAnnError as exc:  # GDL stopped on an error of its own this time
                vector, printed = np.array([-1.0]), [f"% {exc}"]
            finally:
                self.session.call("ulyss_ann_verbose", 0)
            if not (vector.size == 1 and vector[0] == -1):
                return vector
            said = [line for line in gdl_error_lines(printed) if not line.startswith("ULYSS_ANN_")]
            said += [line.strip() for line in printed if "fatal" in line.lower() and not line.startswith("%")]
            said = list(dict.fromkeys(said))  # each once, in order
            message += ": " + ("; ".join(said) if said else "ULySS printed no reason")
        if gdl_interrupted(message):  # a SIGINT meant for the batch: the machinery's, not the spectrum's
            # ULySS caught the interrupt: this gdl answered the calls above, but an interrupted gdl
            # has aborted on a later call (an assertion, in CI): the next spectrum gets a new one
            self.session.restart()
            raise gdl_error(" ".join(message.split())[:300])
        raise UlyssAnnError("GDL: " + " ".join(message.split())[:600])

    def _publish_res(self, res_file, spectrum_id, save_fits):
        """ULySS's .res of this spectrum, copied from the scratch folder to ``<save_fits>/<id>.res``:
        whole or not at all, never through a link (:func:`~ulyss_ann.fitting.safe_files.write_beside`);
        a full disk is the machinery's failure (:func:`~ulyss_ann.fitting.result_fits.save_failure`)."""
        if not os.path.isfile(res_file):
            return
        target = os.path.join(os.path.abspath(save_fits), f"{file_stem(spectrum_id)}.res")
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            write_beside(target, lambda temporary: shutil.copyfile(res_file, temporary), option="--save-fits")
        except Exception as exc:  # noqa: BLE001 - the reason, in one line
            raise save_failure(target, exc, needed=os.path.getsize(res_file)) from None
        finally:
            if os.path.exists(res_file):
                os.remove(res_file)
