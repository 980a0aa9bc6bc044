"""The inputs of a batch: each spectrum's key in the journal, its source and a unique id.

A file's key is its absolute path and its id the file name without extension, as
ULySS names things, nor a compression's suffix (``star.fits.gz`` is ``star``:
:func:`~ulyss_ann.spectra.compression.spectrum_name`); the same file given twice is
fitted once. When two *different* files share a name (``night1/spec_001.fits``, ``night2/spec_001.fits``: survey data
is often laid out so), their ids carry as many parent folders as it takes to tell them
apart (``night1/spec_001``, ``night2/spec_001``), so that no two rows share an id; a
``--fix`` table must then name them so (the bare name is refused as ambiguous). Files
written for a spectrum replace the ``/`` by ``_``.

In-memory spectra (arrays, Spectrum or specutils objects) are keyed ``memory:<id>``;
those without an id of their own, or whose id is taken, are numbered
(``spectrum0001``…, on a copy: the caller's object is untouched). One that cannot be
made a spectrum (arrays of different lengths, all NaN…) is numbered so too and keeps
the reason (``refused``): its row says ``error: …`` and the batch goes on, as for a
file that cannot be read.
"""

import os
import sys
from dataclasses import dataclass, replace

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.spectra.compression import spectrum_name
from ulyss_ann.spectra.inputs import NotASpectrumError, as_spectrum, is_array_tuple, is_path
from ulyss_ann.spectra.spectrum import Spectrum

__all__ = ["BatchInput", "batch_inputs", "keep_ids", "file_problem", "input_problem"]


@dataclass(frozen=True, slots=True)  # slots: a survey holds 10^6 of them
class BatchInput:
    """One spectrum of a batch: journal ``key``, ``source`` (a path or a Spectrum), ``ident`` (its id).

    ``name_in_file``: the file name without extension when ``ident`` had to carry folders.
    ``refused``: why an in-memory input is no spectrum (its row's error), else None.
    """

    key: str
    source: object
    ident: str
    name_in_file: str = None
    refused: str = None

    @property
    def in_memory(self):
        """The Spectrum of an in-memory input, None for a file."""
        return self.source if isinstance(self.source, Spectrum) else None

    @property
    def from_file(self):
        """True for a spectrum file (its key is its path)."""
        return is_path(self.source)


def batch_inputs(spectra):
    """The :class:`BatchInput` of each spectrum given, in order, each key once."""
    if is_path(spectra) or isinstance(spectra, Spectrum) or is_array_tuple(spectra) or hasattr(spectra, "spectral_axis"):
        spectra = [spectra]  # one spectrum, not a sequence of them
    try:
        items = list(spectra)
    except TypeError:
        raise UlyssAnnError(f"cannot fit a {type(spectra).__name__}: give a file name, a ulyss_ann.Spectrum, a "
                            "specutils spectrum, (wavelength, flux[, error]) arrays, or a list of them") from None
    # each file's key once, interned: the journal's keys (interned as it is read) are then these very strings,
    # held once (~80 bytes a spectrum at survey size)
    paths = [sys.intern(os.path.abspath(os.fspath(item))) if is_path(item) else None for item in items]
    file_ids = _distinct_ids(list(dict.fromkeys(path for path in paths if path is not None)))
    out, keys, ids = [], set(), set(file_ids.values())
    for n, (item, path) in enumerate(zip(items, paths), start=1):
        if path is not None:
            stem = spectrum_name(path)
            entry = BatchInput(path, path, file_ids[path], stem if file_ids[path] != stem else None)
        else:
            try:
                spectrum = as_spectrum(item, default_id=f"spectrum{n:04d}")
            except NotASpectrumError:
                raise  # no kind of spectrum (an int, a 2-D collection): a mistake in the call, refused whole
            except UlyssAnnError as exc:  # this spectrum's own values: its row, not the end of the batch
                ident = _numbered(n, ids, keys)
                entry = BatchInput(f"memory:{ident}", None, ident, refused=str(exc))
                ids.add(entry.ident)
                keys.add(entry.key)
                out.append(entry)
                continue
            key = spectrum.meta.get("file") or f"memory:{spectrum.meta.get('id')}"
            if spectrum.meta.get("id") in (None, "spectrum") or key in keys or str(spectrum.meta.get("id")) in ids:
                ident = _numbered(n, ids, keys)
                spectrum = replace(spectrum, meta={**spectrum.meta, "id": ident})
                key = f"memory:{ident}"
            entry = BatchInput(key, spectrum, str(spectrum.meta["id"]))
            ids.add(entry.ident)
        if entry.key not in keys:
            keys.add(entry.key)
            out.append(entry)
    return out


def _numbered(n, ids, keys):
    """The id of the n-th input in memory when it has none of its own: ``spectrumNNNN``, or with ``-2``, ``-3``…
    where a spectrum given before took that name (each in-memory input keeps a row of its own)."""
    ident, k = f"spectrum{n:04d}", 1
    while ident in ids or f"memory:{ident}" in keys:
        k += 1
        ident = f"spectrum{n:04d}-{k}"
    return ident


def keep_ids(inputs, recorded):
    """``inputs`` with the ids a resumed run gave them (``recorded``: key -> id, where an input's equal id
    replaces the record's text, so that it is held once); new ones kept apart.

    Ids are the run's, not recomputed from the spectra given now: a file added later with
    the name of one already fitted does not rename that one (its row, its ``--fix`` entry,
    its saved fits). A new input whose id the run has taken gets its folders (files) or a
    number (in-memory spectra).
    """
    taken = set(recorded.values())
    out = []
    for entry in inputs:
        if entry.key in recorded:
            ident = recorded[entry.key]
            stem = spectrum_name(entry.key) if entry.from_file else None
            name_in_file = stem if stem and ident != stem else None
            same = ident == entry.ident and name_in_file == entry.name_in_file  # not held twice at survey size
            if same:  # the run's record of it holds the input's own text (~57 bytes a spectrum held once)
                recorded[entry.key] = entry.ident
            out.append(entry if same else replace(entry, ident=ident, name_in_file=name_in_file))
            continue
        ident, n = entry.ident, 0
        parts = os.path.dirname(entry.key).strip(os.sep).split(os.sep) if entry.from_file else []
        while ident in taken:
            n += 1
            if n <= len(parts):
                ident = "/".join(parts[-n:] + [spectrum_name(entry.key)])
            else:
                ident = f"{entry.ident}-{n}"
        if entry.in_memory is not None and ident != entry.ident:
            entry = replace(entry, source=replace(entry.source, meta={**entry.source.meta, "id": ident}))
        taken.add(ident)
        name_in_file = spectrum_name(entry.key) if entry.from_file and ident != spectrum_name(entry.key) else None
        same = ident == entry.ident and name_in_file == entry.name_in_file
        out.append(entry if same else replace(entry, ident=ident, name_in_file=name_in_file))
    return out


def _distinct_ids(paths):
    """File path -> id: the name without extension, with parent folders where names collide."""
    by_stem = {}
    for path in paths:
        by_stem.setdefault(spectrum_name(path), []).append(path)
    ids = {}
    for stem, group in by_stem.items():
        if len(group) == 1:
            ids[group[0]] = stem
            continue
        parts = {path: os.path.dirname(path).strip(os.sep).split(os.sep) for path in group}
        for depth in range(1, max(len(p) for p in parts.values()) + 1):
            candidate = {path: "/".join(parts[path][-depth:] + [stem]) for path in group}
            if len(set(candidate.values())) == len(group):
                break
        else:  # names that differ by their extension only: the whole path tells them apart
            candidate = {path: path.strip(os.sep).replace(os.sep, "/") for path in group}
        ids.update(candidate)
    return ids


def input_problem(entry):
    """Why a :class:`BatchInput` cannot be fitted at all (an in-memory input refused, a file that cannot be
    read), or None."""
    if entry.refused is not None:
        return entry.refused
    return file_problem(entry.source) if entry.from_file else None


def file_problem(path):
    """Why a spectrum file cannot be read at all (missing, a folder, no permission), or None."""
    if os.path.isdir(path):
        return f"{path}: a folder, not a spectrum file (give the files in it, e.g. {path}/*.fits)"
    if not os.path.exists(path):
        return f"{path}: no such file"
    if not os.access(path, os.R_OK):
        return f"{path}: cannot be read (permission denied)"
    return None
