r"""The native engine's search among a spectrum's starting guesses: the two best first, all where they disagree.

ULySS fits every guess of a spectrum to its end and keeps the lowest χ² (the paper's six:
T_eff 5000, 5500, 6000 K × [Fe/H] −1, −1.5). On a spectrum whose χ² has one basin within
their reach, the six end at the same point and five of the six fits are insurance. The
``adaptive`` search (``search="auto"``, the native engine's default) buys the same insurance
for less:

1. every guess's χ² at its start is computed (without the Jacobian);
2. the :data:`BEST_STARTS` guesses of lowest starting χ² are fitted, in lock-step as ever;
3. the spectrum is *settled* when they end within :data:`AGREE` standard errors of each other
   in every free parameter **and** each converged within :data:`QUICK_STEPS` accepted steps: two
   fits that started in the bowl of one minimum (Levenberg–Marquardt needs a handful of steps
   there) and reached the same point (the second may stop on meeting the first, as with ``all``:
   its path then continues as the first's, and is counted so);
4. every other spectrum is fitted as ``search="all"`` fits it — every guess from its start, the
   lowest χ² winning, ties to the first guess — as soon as that is known (a first fit passes
   :data:`QUICK_STEPS`, or the two end apart), in the same lock-step rounds as the rest of the
   block. Its first fits start again with the others, so that the guesses meet and stop
   (:data:`~ulyss_ann.fitting.native_engine.lockstep.SAME`) as with ``all``: the same answer,
   not another one of a flat valley. Its first fits retrace their paths point for point, and those
   rows come from memory (:class:`_Replay`, CPU only): the price is their rounds, not their work.

A long path (more steps) or two answers are the signs of a χ² with structure — several
minima, a valley — where the other guesses may find a lower one; there nothing is saved.
Measured with ``scripts/check_start_search`` (the answer of ``search="all"`` within a tenth of
its error): see that script and docs/fitting.md for the figures. The GDL engine keeps
ULySS's own search (every guess).
"""

import numpy as np

from ulyss_ann.fitting.native_engine.lockstep import levenberg_marquardt, mpfit_errors

__all__ = ["fit_guesses", "BEST_STARTS", "AGREE", "QUICK_STEPS", "ALL"]

#: The guesses of lowest starting χ² fitted first.
BEST_STARTS = 2
#: Standard errors (the best one's) within which they must agree in every free parameter.
AGREE = 0.5
#: Steps (accepted ones; a refused step only tunes LM's damping) within which each must have converged:
#: from inside a minimum's bowl LM converges in 3-6 steps on MUSE-like spectra; a longer path crossed
#: structure. Chosen on the recorded paths of every guess and checked by scripts/check_start_search: 7 let
#: MILES with trial 7 down to 909 of 913 (three settled on a local minimum), 6 keeps 911; the real MUSE
#: star is settled with log g fixed (the paper's set-up), not with every parameter free (7-9 steps).
QUICK_STEPS = 6
#: The search that fits every guess (ULySS's), of :data:`~ulyss_ann.fitting.engine_traits.SEARCHES`.
ALL = "all"


def fit_guesses(evaluate, thetas, owners, lower, upper, free, search="auto", host=None, chi2=None):
    """Fit each spectrum's guesses (rows of ``thetas``, spectrum ``owners``) with ``search``.

    ``evaluate`` and the rest as :func:`~ulyss_ann.fitting.native_engine.lockstep.levenberg_marquardt`;
    ``host``: brings ``evaluate``'s best fits to NumPy (the GPU's), None when they are; ``chi2(thetas, owners)``:
    χ² alone, cheaper than ``evaluate`` (None: ``evaluate``'s), to rank the starts.
    Returns its :class:`~ulyss_ann.fitting.native_engine.lockstep.LockstepFits` for every row; ``ran`` (R,)
    says which rows were fitted (the others' entries are their starting points).
    """
    thetas = np.clip(np.asarray(thetas, float), lower, upper)
    owners = np.asarray(owners)
    if search == ALL or np.bincount(owners).max() <= BEST_STARTS:
        fits = levenberg_marquardt(evaluate, thetas, owners, lower, upper, free)
    else:
        start = chi2(thetas, owners) if chi2 is not None else evaluate(thetas, owners)[0]
        first = _best_starts(start, owners)
        held = np.ones(len(thetas), bool)
        held[first] = False
        replay = _Replay(evaluate, owners) if host is None else None  # the GPU's best fits stay on the device
        release = _Release(owners, first, np.flatnonzero(free), lower[free], upper[free], replay)
        fits = levenberg_marquardt(replay or evaluate, thetas, owners, lower, upper, free, held=held,
                                   release=release)
    if host is not None:
        fits.bestfit = host(fits.bestfit)
    return fits


def _best_starts(cost, owners):
    """The rows of the :data:`BEST_STARTS` lowest starting χ² of each spectrum (ties to the first guess)."""
    picked = []
    for owner in np.unique(owners):
        rows = np.flatnonzero(owners == owner)
        picked.append(rows[np.argsort(cost[rows], kind="stable")[:BEST_STARTS]])
    return np.sort(np.concatenate(picked))


class _Replay:
    """``evaluate``, remembering the rows of spectra not yet settled: a spectrum fitted again from its starts
    retraces its first fits' path point for point (the same θ: the same rows), which are then not evaluated
    again. A settled spectrum's rows are forgotten."""

    def __init__(self, evaluate, owners):
        self.evaluate = evaluate
        # owner -> θ's bytes -> (the recorded rows of an evaluation, copied, and the row's index among them)
        self.memory = {owner: {} for owner in np.unique(owners).tolist()}
        self.recording = set(self.memory)

    def forget(self, owner, keep=False):
        """Record no more rows of ``owner``; and drop those recorded, unless ``keep`` (it starts again)."""
        self.recording.discard(owner)
        if not keep:
            self.memory.pop(owner, None)

    def __call__(self, thetas, owners):
        owners_list = owners.tolist()
        keys = [theta.tobytes() for theta in thetas]
        found = [self.memory[owner].get(key) if owner in self.memory else None
                 for owner, key in zip(owners_list, keys)]
        known = np.array([value is not None for value in found])
        if not known.any():
            out = self.evaluate(thetas, owners)
        else:  # the remembered rows, and the others evaluated
            arrays, _ = found[int(np.argmax(known))]
            out = tuple(np.empty((len(thetas),) + array.shape[1:]) for array in arrays)
            for k in np.flatnonzero(known):
                arrays, row = found[k]
                for array, part in zip(out, arrays):
                    array[k] = part[row]
            new = np.flatnonzero(~known)
            if new.size:
                for array, part in zip(out, self.evaluate(thetas[new], owners[new])):
                    array[new] = part
        record, seen = [], set()
        for k, (owner, key) in enumerate(zip(owners_list, keys)):
            if owner in self.recording and key not in self.memory[owner] and (owner, key) not in seen:
                seen.add((owner, key))
                record.append(k)
        if record:  # the rows recorded, copied out together: the round's arrays hold every fit's rows (a restarted
            kept = tuple(part[record] for part in out)  # spectrum's 27 guesses…); one copy per array, not per row
            for j, k in enumerate(record):
                self.memory[owners_list[k]][keys[k]] = (kept, j)
        return out


class _Release:
    """Which spectra are fitted as search ``all`` fits them, from the start: those whose first fits are not
    settling them (a path past :data:`QUICK_STEPS` steps, or two answers). Every guess of such a spectrum
    starts again together, so that guesses meet and stop (``SAME``) exactly as they do with ``all``."""

    def __init__(self, owners, first, cols, lo, hi, replay=None):
        self.owners, self.cols, self.lo, self.hi, self.replay = owners, cols, lo, hi, replay
        self.pending = [(first[owners[first] == owner], np.flatnonzero(owners == owner))
                        for owner in np.unique(owners[first])]

    def __call__(self, theta, cost, grad, jtj, steps, answer, live, held):
        start = np.zeros(len(theta), bool)
        waiting, ended = [], []
        if not self.pending:
            return start
        # every pending spectrum's first fits at once (two NumPy calls a spectrum and round were ~10 % of LM's own time)
        rows = np.concatenate([first for first, _ in self.pending])
        offsets = np.cumsum([0] + [len(first) for first, _ in self.pending[:-1]])
        quick = (np.maximum.reduceat(steps[rows], offsets) <= QUICK_STEPS).tolist()
        running = np.logical_or.reduceat(live[rows], offsets).tolist()
        for (first, every), fast, moving in zip(self.pending, quick, running):
            if fast and moving:
                waiting.append((first, every))  # still on their way
            elif fast:
                ended.append((first, every))    # settled if their answers agree
            else:
                self._unsettled(first, every, start)
        if ended:
            settled = self._agree([answer[first] for first, _ in ended], theta, grad, jtj)
            for (first, every), agree in zip(ended, settled):
                if not agree:
                    self._unsettled(first, every, start)
                elif self.replay is not None:   # settled: the others are never fitted
                    self.replay.forget(int(self.owners[first[0]]))
        self.pending = waiting                  # decided once
        return start

    def _unsettled(self, first, every, start):
        """Fit the spectrum of ``first`` as "all" fits it, from the start: every guess (``every``)."""
        start[every] = True
        if self.replay is not None:             # its first fits' rows are replayed
            self.replay.forget(int(self.owners[first[0]]), keep=True)

    def _agree(self, answers, theta, grad, jtj):
        """Whether each spectrum's first fits ended within :data:`AGREE` standard errors in every free parameter
        (``answers``: the rows whose points are their answers, one array per spectrum): the larger of two fits'
        errors (a parameter pegged on a bound has error 0: two pegged on the same bound agree, a pegged one and a
        free one are compared on the free one's error). A NaN error (a singular JᵀJ): no. Every spectrum at once
        (S, W answers, P parameters): each spectrum's answers repeated to W, which changes no comparison."""
        rows = [np.unique(rows) for rows in answers]
        width = max(len(r) for r in rows)
        table = np.array([np.resize(r, width) for r in rows])                          # (S, W)
        distinct = np.unique(table)
        error = mpfit_errors(theta[distinct], grad[distinct], jtj[distinct], self.cols, self.lo, self.hi)
        error = error[np.searchsorted(distinct, table)][:, :, self.cols]              # (S, W, P)
        values = theta[table][:, :, self.cols]
        spread = np.abs(values[:, :, None, :] - values[:, None, :, :])
        scale = np.maximum(error[:, :, None, :], error[:, None, :, :])
        close = spread <= np.where(scale > 0, AGREE * scale, 1e-9 * (1 + np.abs(values[:, :, None, :])))
        return close.all(axis=(1, 2, 3)) & ~np.isnan(error).any(axis=(1, 2))
