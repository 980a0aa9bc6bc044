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

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.fitting.engines import engine_label
from ulyss_ann.fitting.batch.journal import Journal, JournalState, MemoryJournal, failure_row
from ulyss_ann.fitting.batch.run import run_differences
from ulyss_ann.fitting.batch.sources import input_problem, keep_ids

__all__ = ["open_journal", "tasks_to_fit", "RunMismatchError", "MACHINERY_TRIES"]

#: Fits of one spectrum that the machinery may spoil (``failed: …`` rows) before --resume stops retrying it.
MACHINERY_TRIES = 3


class RunMismatchError(UlyssAnnError):
    """``--resume`` of an output whose journal belongs to another run (another configuration, an
    older ulyss_ann, a damaged run record): the caller may start again instead."""


def open_journal(output, resume, overwrite, record, inputs, add_spectra):
    """The batch's journal, what it holds, and the inputs with the ids the run gave them.

    Checked against this run (see :mod:`~ulyss_ann.fitting.batch.run`): RunMismatchError for
    another run's journal, UlyssAnnError for other spectra than the run's.
    """
    if output is None:
        journal = MemoryJournal()
        journal.start(record, [(entry.key, entry.ident) for entry in inputs])
        return journal, journal.read(), inputs
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
    state = journal.read(rows=False) if has_journal else JournalState()  # statuses: a survey's rows stay on disk
    if state.legacy:
        raise RunMismatchError(f"{journal.path}: written by an earlier ulyss_ann (no checksums, no run record): "
                               "overwrite=True (--overwrite) to start again")
    if state.run is None and state.rows:
        raise RunMismatchError(f"{journal.path}: its run record is damaged; the run cannot be checked: "
                               "overwrite=True (--overwrite) to start again")
    if state.run is None:  # a new run (or one that died while writing its first record)
        entries = [(entry.key, entry.ident) for entry in inputs]
        stats = _fingerprints(inputs)
        journal.start(record, entries, stats)
        return journal, JournalState(run=record, inputs=[k for k, _ in entries], ids=dict(entries),
                                     stats=stats), inputs
    message = state.report(journal.path)
    if message:
        print(f"ulyss-ann: warning: {message}", file=sys.stderr)
    journal.repair(state)
    differences = run_differences(state.run, record)
    if differences:
        raise RunMismatchError(f"{output}: --resume with another configuration than its run's ("
                               + "; ".join(differences) + "): give the run's options, or another --output")
    inputs = keep_ids(inputs, state.ids)
    _check_inputs(output, journal, state, inputs, add_spectra)
    _set_aside_changed(journal, state, inputs)
    return journal, state, inputs


def _check_inputs(output, journal, state, inputs, add_spectra):
    # the journal's keys are state.ids's; the inputs' keys are distinct (batch_inputs): the run's spectra are
    # all given when as many of the inputs are known as the run has. No set of either (10^6 keys at survey size)
    new = [entry for entry in inputs if entry.key not in state.ids]
    if len(inputs) - len(new) < len(state.inputs):
        given = {entry.key for entry in inputs}
        missing = [key for key in state.inputs if key not in given]
        raise UlyssAnnError(f"{output}: {len(missing)} spectr{'a' if len(missing) > 1 else 'um'} of this run "
                            f"not given now (e.g. {missing[0]}): give all the run's spectra to --resume it")
    if new and not add_spectra and not state.damaged_inputs:  # a damaged inputs record: they may be the run's
        raise UlyssAnnError(f"{output}: {len(new)} spectr{'a' if len(new) > 1 else 'um'} not in this run "
                            f"(e.g. {new[0].key}): add add_spectra=True (--add-spectra) to fit them into it, or give another --output")
    if new:
        stats = _fingerprints(new)
        journal.add_inputs([(entry.key, entry.ident) for entry in new], stats)
        state.inputs += [entry.key for entry in new]
        state.ids.update((entry.key, entry.ident) for entry in new)
        state.stats.update(stats)


def file_fingerprint(path):
    """[size, mtime_ns] of a spectrum file, or None when it cannot be read (its row will say why)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return [info.st_size, info.st_mtime_ns]


def _fingerprints(inputs):
    """Journal key -> fingerprint of each spectrum file of ``inputs`` (in-memory spectra have none)."""
    return {entry.key: file_fingerprint(entry.key) for entry in inputs if entry.from_file}


def _set_aside_changed(journal, state, inputs):
    """Journal new fingerprints for the run's files: a file whose known fingerprint changed loses its row
    (fitted again, said in one warning line); one the journal knew none of (an older journal) gets one."""
    now = {}  # the changed and unknown ones only: compared as the files are met, not all held (survey size)
    changed, unknown = [], []
    for entry in inputs:
        stat = file_fingerprint(entry.key) if entry.from_file else None
        if stat is not None and state.stats.get(entry.key) is None:
            unknown.append(entry.key)
        elif stat is not None and list(state.stats[entry.key]) != stat:
            changed.append(entry.key)
        else:
            continue
        now[entry.key] = stat
    if changed:
        done = [key for key in changed if key in state.rows]
        if done:
            many = len(done) > 1
            print(f"ulyss-ann: warning: {len(done)} spectrum file{'s' * many} changed since "
                  f"{'they were' if many else 'it was'} fitted (another size or modification time; e.g. {done[0]}): "
                  f"fitted again, the old row{'s' * many} set aside", file=sys.stderr)
    if changed or unknown:
        update = {key: now[key] for key in changed + unknown}
        journal.add_fingerprints(update)
        state.note_stats(list(update), list(update.values()))


def tasks_to_fit(inputs, state, journal, config, fixed_values, retry_failed, progress):
    """What to fit now; spectra that cannot be fitted at all are recorded as error rows at once."""
    todo = []
    for entry in inputs:
        row = state.rows.get(entry.key)
        status = "" if row is None else str(row.get("status", ""))
        if row is None or status != "ok" and (retry_failed or (status.startswith("failed:")
                                                               and state.failures.get(entry.key, 0) < MACHINERY_TRIES)):
            todo.append(entry)
    if progress and state.rows:
        done = "1 spectrum" if len(state.rows) == 1 else f"{len(state.rows)} spectra"
        print(f"resuming: {done} in {journal.path}, {len(todo)} to fit")
    tasks = []
    for entry in todo:
        try:
            problem = input_problem(entry)  # a file that cannot be read, an in-memory input refused
            if problem:
                raise UlyssAnnError(problem)
            tasks.append((entry, fixed_values.for_spectrum(entry.ident, entry.name_in_file)))
        except UlyssAnnError as exc:
            journal.append(failure_row(entry.key, entry.in_memory or entry.ident, f"error: {exc}",
                                       engine_label(config), os.path.basename(config.model), config.model_sha256))
    return tasks
