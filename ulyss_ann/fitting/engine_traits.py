"""What an engine declares to the rest of the package: its name, label, options, block size, needs and hooks.

:class:`~ulyss_ann.fitting.core.FitEngine` inherits these class-level declarations; an engine
(:class:`~ulyss_ann.fitting.native_engine.engine.NativeEngine`, :class:`~ulyss_ann.fitting.gdl_engine.engine.GDLEngine`,
or one of a package of your own) overrides those that differ and is registered by name in
:mod:`~ulyss_ann.fitting.engines`. The batch driver, the option checks, the run record, the
LSF measurement and the command line ask the engine's class through these methods — they
never compare engine names — so that a new engine is one module and one registration
(``docs/development.md``, "How to add an engine").

The defaults describe the simplest engine: it takes none of the options that only some
engines take (:data:`ENGINE_OPTIONS`), fits one spectrum per batch task, needs nothing
installed beyond ulyss_ann, is never taken by ``engine="auto"``, and its table label is its
name. Every method here is a classmethod: they are asked before any engine is started.
"""

import contextlib

from ulyss_ann.errors import UlyssAnnError

__all__ = ["EngineTraits", "ENGINE_OPTIONS", "SEARCHES"]

#: The fit's options that only some engines take, with the values that ask nothing of an engine
#: (the first is the default): an engine that does not list one in :attr:`EngineTraits.options`
#: refuses any other value, in one line.
ENGINE_OPTIONS = {"backend": ("auto",), "losvd": ("sampled",), "device": ("auto", "cpu"), "search": ("auto", "all")}
#: The ``search`` values (which guesses are fitted): ``all``, every guess to its end (ULySS's, every
#: engine's); ``adaptive``, the native engine's (:mod:`~ulyss_ann.fitting.native_engine.start_search`); ``auto``,
#: the engine's default (adaptive natively, all elsewhere).
SEARCHES = ("auto", "adaptive", "all")


class EngineTraits:
    """The class-level declarations of an engine (see the module's text)."""

    #: The engine's registered name: ``--engine NAME``, ``engine="NAME"``, FitConfig.engine.
    name = None
    #: One line for ``--engine``'s help: what the engine is.
    summary = "a fitting engine"
    #: What fits, in the run record's ``software`` entry (default: "NAME engine").
    software = None
    #: Of :data:`ENGINE_OPTIONS`, those this engine takes.
    options = ()
    #: ``engine="auto"`` tries the engines with a priority, highest first (None: never taken by auto).
    auto_priority = None
    #: The LOSVD kernels the engine has; the first is what ``lsf measure`` uses when none is asked.
    losvd_kinds = ("sampled",)
    #: The LOSVD moments its LSF measurement fits (2: cz, sigma; 4: also h3, h4).
    lsf_moments = (2,)
    #: Seconds one spectrum costs this process, for the batch's choice of no cluster for small work
    #: (:func:`~ulyss_ann.fitting.batch.session_cluster.runs_faster_here`); None: a batch never runs the
    #: engine in the user's process unless ``workers=0`` says so.
    seconds_per_spectrum = None

    @classmethod
    def label(cls, config):
        """The ``engine`` column of the rows fitted with ``config`` (the name, or ``NAME-VARIANT``)."""
        return cls.name

    @classmethod
    def owns_label(cls, label):
        """Whether a table's ``engine`` column ``label`` was written by this engine."""
        return label == cls.name or str(label).startswith(f"{cls.name}-")

    @classmethod
    def check_options(cls, options):
        """Refuse, in one line naming the option and the fix, the options (a dict of FitConfig fields)
        this engine cannot honour; the default: any value of an :data:`ENGINE_OPTIONS` it does not take."""
        for option, neutral in ENGINE_OPTIONS.items():
            value = options.get(option, neutral[0])
            if option not in cls.options and value not in neutral:
                flag = option.replace("_", "-")
                raise UlyssAnnError(f"{option} (--{flag}) {value}: the {cls.name} engine does not take it "
                                    f"(drop --{flag}, or use an engine that does)")

    @classmethod
    def accepts(cls, options):
        """Whether :meth:`check_options` lets ``options`` through (what ``engine="auto"`` asks)."""
        try:
            cls.check_options(options)
        except UlyssAnnError:
            return False
        return True

    @classmethod
    def available(cls, backend="auto"):
        """Whether this machine can run the engine (what ``engine="auto"`` asks); the default: always."""
        return True

    @classmethod
    def require(cls, backend="auto", remote=False):
        """Stop, with the fix, when this machine lacks what the engine needs (``remote``: the fits run on
        a cluster, whose machines are what count)."""
        if not remote and not cls.available(backend):
            raise UlyssAnnError(f"engine '{cls.name}': not usable on this machine")

    @classmethod
    def block_size(cls, config):
        """Spectra per batch task (fitted together by :meth:`~ulyss_ann.fitting.core.FitEngine.fit_many`)."""
        return 1

    @classmethod
    def batch_workers(cls, config, workers, remote):
        """The worker processes of a batch (None: one per core), once the options are checked: the engine
        may check its device and ask for none (``workers=0``: one GPU fed by this process)."""
        return workers

    @classmethod
    def check_batch(cls, config):
        """Refuse, before any work of a batch, what would fail every spectrum (e.g. paths GDL cannot open)."""

    @classmethod
    def batch_notice(cls, config):
        """A line the batch driver prints once before a local cluster's workers fit with ``config`` (e.g. that
        they compile first), where each worker would print it again; None (the default): nothing to say."""
        return None

    @classmethod
    def hushed(cls):
        """A context for a quiet batch (``progress=False``, ``--quiet``): within it, what this engine would print
        unasked in this process (a first fit's notice that it compiles) stays unsaid; after it, as before. The
        default: it prints nothing."""
        return contextlib.nullcontext()

    @classmethod
    def note_local_workers(cls, cluster):
        """After each task on the batch's local Dask cluster: what to note for the clean-up at its end."""

    @classmethod
    def record(cls, config):
        """The engine's entries of a batch's run record: ``software``, ``backend``, ``losvd``, ``search``."""
        return {"software": f"ulyss_ann ({cls.software or cls.name + ' engine'})",
                "backend": config.backend if "backend" in cls.options else None,
                "losvd": config.losvd if "losvd" in cls.options else None,
                "search": cls.search(config)}

    @classmethod
    def search(cls, config):
        """The search among the guesses that ``config.search`` runs: ``all`` (the default: every guess to
        its end, ULySS's own) or the engine's other name (the native engine's ``adaptive``)."""
        return "all"

    @classmethod
    def check_lsf_options(cls, losvd, moments):
        """Refuse, in one line, an LSF measurement this engine cannot make (``losvd`` None: not asked)."""
        if moments not in cls.lsf_moments:
            raise UlyssAnnError(f"moments {moments}: the {cls.name} engine's LSF measurement fits "
                                f"{' or '.join(map(str, cls.lsf_moments))} moments")
        if losvd is not None and losvd not in cls.losvd_kinds:
            raise UlyssAnnError(f"--losvd {losvd}: the {cls.name} engine has {', '.join(cls.losvd_kinds)} "
                                "(drop --losvd, or use another engine)")

    @classmethod
    def lsf_measurer(cls):
        """A function measuring the LSF of a spectrum in chunks its own way (as the GDL engine's
        :func:`~ulyss_ann.fitting.gdl_engine.uly_lsf.measure_lsf_gdl`), or None: each chunk is fitted by
        the engine, one after another."""
        return None
