"""Where a batch starts: its journal opened and checked against the run, and what is left to fit.

A new batch writes the run's record and its inputs first. ``--resume`` reads the
journal (reporting damaged records and cutting off a torn last one), refuses another
configuration than the run's (:func:`~ulyss_ann.fitting.batch.run.run_differences`) and
other spectra than the run's (``--add-spectra`` lets new ones in), then fits what has
no row, what the machinery spoiled (``failed: …``, :data:`MACHINERY_TRIES` tries in
all) and, with ``--retry-failed``, every row that is not ``ok``.

A spectrum file replaced or rewritten since the run met it — another size or
modification time than its fingerprint in the journal (:func:`file_fingerprint`) — is
fitted again, its old row set aside, with one warning line. Contents are not
checksummed (a survey's spectra are read once, to be fitted): a file rewritten with the
same size and its modification time put back is not seen.
"""

import os
import sys

import numpy as np

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.fitting.engines import engine_label
from ulyss_ann.fitting.batch.journal import Journal, MemoryJournal, failure_row
from ulyss_ann.fitting.batch.journal_index import JournalIndex
from ulyss_ann.fitting.batch.run import run_differences
from ulyss_ann.fitting.batch.sources import input_problem, keep_ids
from ulyss_ann.fitting.batch.tasks import Tasks

__all__ = ["open_journal", "tasks_to_fit", "RunMismatchError", "MACHINERY_TRIES"]

#: Fits of one spectrum that the machinery may spoil (``failed: …`` rows) before --resume stops retrying it.
MACHINERY_TRIES = 3


class RunMismatchError(UlyssAnnError):
    """``--resume`` of an output whose journal belongs to another run (another configuration, an
    older ulyss_ann, a damaged run record): the caller may start again instead."""


def open_journal(output, resume, overwrite, record, inputs, add_spectra):
    """The batch's journal, what it holds (a :class:`~ulyss_ann.fitting.batch.journal_index.JournalIndex`,
    matched to the inputs), and the inputs with the ids the run gave them.

    Checked against this run (see :mod:`~ulyss_ann.fitting.batch.run`): RunMismatchError for
    another run's journal, UlyssAnnError for other spectra than the run's.
    """
    if output is None:
        journal = MemoryJournal()
        journal.start(record, [(entry.key, entry.ident) for entry in inputs])
        index = JournalIndex(run=record)
        index.match(inputs)
        return journal, index, inputs
    journal = Journal(str(output) + ".journal.jsonl")
    if overwrite:  # links and inputs among these were refused before (safe_files.check_outputs)
        for path in (output, journal.path):
            if os.path.exists(path):
                os.remove(path)
    has_journal = os.path.exists(journal.path)
    if not resume and (has_journal or os.path.exists(output)):
        raise UlyssAnnError(f"{output} or its journal exists: add resume=True (--resume) to continue that batch, "
                            "or overwrite=True (--overwrite) to start again")
    if resume and not has_journal and os.path.exists(output):
        raise UlyssAnnError(f"{output} exists without its journal {journal.path}: nothing to resume from; "
                            "overwrite=True (--overwrite) to start again")
    index = JournalIndex.read(journal) if has_journal else JournalIndex()  # on disk: nothing held a spectrum
    try:
        return (journal, *_checked(output, journal, index, record, inputs, add_spectra))
    except BaseException:
        index.close()
        raise


def _checked(output, journal, index, record, inputs, add_spectra):
    """(the index, the inputs with the ids the run gave them), once ``index`` (the journal's) is checked
    against this run and matched to them; for a new run, its journal started and an index of nothing."""
    if index.legacy:
        raise RunMismatchError(f"{journal.path}: written by an earlier ulyss_ann (no checksums, no run record): "
                               "overwrite=True (--overwrite) to start again")
    if index.run is None and index.fitted:
        raise RunMismatchError(f"{journal.path}: its run record is damaged; the run cannot be checked: "
                               "overwrite=True (--overwrite) to start again")
    if index.run is None:  # a new run (or one that died while writing its first record)
        journal.start(record, ((entry.key, entry.ident) for entry in inputs), _fingerprint_of(inputs))
        index.close()
        index = JournalIndex(run=record)
        index.match(inputs)
        return index, inputs
    message = index.report(journal.path)
    if message:
        print(f"ulyss-ann: warning: {message}", file=sys.stderr)
    journal.repair(index)
    differences = run_differences(index.run, record)
    if differences:
        raise RunMismatchError(f"{output}: --resume with another configuration than its run's ("
                               + "; ".join(differences) + "): give the run's options, or another --output")
    index.match(inputs)
    inputs = keep_ids(inputs, index)
    _check_inputs(output, journal, index, inputs, add_spectra)
    _set_aside_changed(journal, index, inputs)
    return index, inputs


def _check_inputs(output, journal, index, inputs, add_spectra):
    missing, first = index.not_given()
    if missing:
        raise UlyssAnnError(f"{output}: {missing} spectr{'a' if missing > 1 else 'um'} of this run "
                            f"not given now (e.g. {index.key_of(journal, first)}): give all the run's spectra to "
                            "--resume it")
    new = [inputs[n] for n in index.new_inputs()]
    if new and not add_spectra and not index.damaged_inputs:  # a damaged inputs record: they may be the run's
        raise UlyssAnnError(f"{output}: {len(new)} spectr{'a' if len(new) > 1 else 'um'} not in this run "
                            f"(e.g. {new[0].key}): add add_spectra=True (--add-spectra) to fit them into it, or give another --output")
    if new:
        journal.add_inputs([(entry.key, entry.ident) for entry in new], _fingerprint_of(new))


def file_fingerprint(path):
    """[size, mtime_ns] of a spectrum file, or None when it cannot be read (its row will say why)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return [info.st_size, info.st_mtime_ns]


def _fingerprint_of(inputs):
    """The fingerprint of a spectrum of ``inputs`` by its journal key, taken when asked (None for one in memory)."""
    in_memory = {entry.key for entry in inputs if not entry.from_file}  # few: a survey's spectra are files
    return lambda key: None if key in in_memory else file_fingerprint(key)


def _set_aside_changed(journal, index, inputs):
    """Journal new fingerprints for the run's files: a file whose known fingerprint changed loses its row
    (fitted again, said in one warning line); one the journal knew none of (an older journal) gets one.
    The inputs new to the run were fingerprinted as they joined it (:func:`_check_inputs`)."""
    update, done, example = {}, 0, None
    for facts in index.given():  # a chunk at a time, compared as arrays: nothing held a spectrum
        now = np.full((len(facts.n), 2), (-1, 0), np.int64)
        for k in np.flatnonzero(facts.in_run):
            entry = inputs[int(facts.n[k])]
            stat = file_fingerprint(entry.key) if entry.from_file else None
            if stat is not None:
                now[k] = stat
        fresh = now[:, 0] >= 0  # a file of the run (new ones are skipped above)
        unknown = fresh & (facts.stats[:, 0] < 0)
        changed = fresh & (facts.stats[:, 0] >= 0) & (facts.stats != now).any(axis=1)
        refit = np.flatnonzero(changed & (facts.offset >= 0))
        if len(refit) and example is None:
            example = inputs[int(facts.n[refit[0]])].key
        done += len(refit)
        update.update((inputs[int(facts.n[k])].key, now[k].tolist()) for k in np.flatnonzero(changed | unknown))
    if done:
        many = done > 1
        print(f"ulyss-ann: warning: {done} spectrum file{'s' * many} changed since "
              f"{'they were' if many else 'it was'} fitted (another size or modification time; e.g. "
              f"{example}): fitted again, the old row{'s' * many} set aside", file=sys.stderr)
    if update:
        journal.add_fingerprints(update)
        index.note_stats(list(update), list(update.values()))


def tasks_to_fit(inputs, state, journal, config, fixed_values, retry_failed, progress):
    """What to fit now (:class:`~ulyss_ann.fitting.batch.tasks.Tasks`); spectra that cannot be fitted at all
    are recorded as error rows at once.

    ``state``: the :class:`~ulyss_ann.fitting.batch.journal_index.JournalIndex` of :func:`open_journal`."""
    ok = [n for n, text in enumerate(state.statuses) if text == "ok"]
    failed = [n for n, text in enumerate(state.statuses) if text.startswith("failed:")]
    todo = []
    for facts in state.given():  # a chunk of the inputs at a time
        retried = np.isin(facts.status, failed) & (facts.failures < MACHINERY_TRIES)  # the machinery's: a few tries
        again = (facts.status >= 0) & ~np.isin(facts.status, ok) & (bool(retry_failed) | retried)
        todo.append(facts.n[(facts.status < 0) | again])
    todo = np.concatenate(todo) if todo else np.zeros(0, np.int64)
    fitted = state.fitted
    if progress and fitted:
        done = "1 spectrum" if fitted == 1 else f"{fitted} spectra"
        print(f"resuming: {done} in {journal.path}, {len(todo)} to fit")
    # a spectrum that cannot be fitted at all gets its error row now (a thousand in a write); the rest are tasks
    chosen, errors = np.ones(len(todo), bool), []
    for k, n in enumerate(todo):
        entry = inputs[n]
        try:
            problem = input_problem(entry)  # a file that cannot be read, an in-memory input refused
            if problem:
                raise UlyssAnnError(problem)
            fixed_values.for_spectrum(entry.ident, entry.name_in_file)
        except UlyssAnnError as exc:
            chosen[k] = False
            errors.append(failure_row(entry.key, entry.in_memory or entry.ident, f"error: {exc}",
                                      engine_label(config), os.path.basename(config.model), config.model_sha256))
        if len(errors) == 1000 or errors and k == len(todo) - 1:
            journal.append_many(errors)
            errors = []
    return Tasks(inputs, todo[chosen], fixed_values)
