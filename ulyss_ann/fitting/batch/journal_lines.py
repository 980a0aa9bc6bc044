"""One line of a batch's journal: a record and its CRC-32, written, read back and believed only in the shapes
this package writes (the format: :mod:`~ulyss_ann.fitting.batch.journal`)."""

import json
import zlib

import numpy as np

from ulyss_ann.fitting.table import STRING_COLUMNS

__all__ = ["encode_record", "decode_line", "decode_checked_line", "finite_row", "is_legacy_line"]

_PREFIX = b'{"crc32":"'
_MIDDLE = b'","record":'


def encode_record(record):
    """One journal line (bytes) for a record: the record's JSON and its CRC-32."""
    body = json.dumps(record, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                      default=_plain).encode("utf-8")
    return _PREFIX + f"{zlib.crc32(body):08x}".encode() + _MIDDLE + body + b"}\n"


def _plain(value):
    """What json cannot write itself: NumPy numbers as Python ones (non-finite as null), the rest as text.

    A journal write must not fail on a value of an unexpected type (metadata copied from
    a user's spectrum): that would stop the batch. Text keeps it readable.
    """
    if isinstance(value, np.generic):
        value = value.item()
        return value if not isinstance(value, float) or np.isfinite(value) else None
    return str(value)


def decode_line(line):
    """The record of one line, or None when the line is damaged (see :func:`_shape_problem`)."""
    head = len(_PREFIX) + 8 + len(_MIDDLE)
    if not (line.startswith(_PREFIX) and line[len(_PREFIX) + 8:head] == _MIDDLE and line.endswith(b"}\n")):
        return None
    body = line[head:-2]
    try:
        if int(line[len(_PREFIX):len(_PREFIX) + 8], 16) != zlib.crc32(body):
            return None
        record = json.loads(body)
    except ValueError:
        return None
    return None if _shape_problem(record) else record  # a checksum holds, yet not our record: damaged


def decode_checked_line(line):
    """The record of a line :func:`decode_line` took already (a row read back): parsed, not checked again."""
    return json.loads(line[len(_PREFIX) + 8 + len(_MIDDLE):-2])


def finite_row(row):
    """NaN and inf as null (JSON has no NaN); read back as missing values."""
    return {k: (None if isinstance(v, (float, np.floating)) and not np.isfinite(v) else v) for k, v in row.items()}


def _names(value, length=None):
    """True for a list of texts (of ``length`` items when given)."""
    return isinstance(value, list) and all(isinstance(v, str) for v in value) and length in (None, len(value))


def _fingerprints(value, length):
    """True for a list of ``length`` fingerprints, each null or [size, mtime_ns]: integers of 64 bits, the size
    not negative (what ``os.stat`` gives)."""
    return isinstance(value, list) and len(value) == length and all(
        v is None or isinstance(v, list) and len(v) == 2 and all(type(n) is int for n in v)
        and 0 <= v[0] < 2**63 and -2**63 <= v[1] < 2**63 for v in value)


def _row_problem(row):
    """Why a journal row is not one this package writes (see :func:`_shape_problem`), or None."""
    if not isinstance(row, dict):
        return "a row that is not an object"
    if not isinstance(row.get("file"), str) or not row["file"]:
        return "a row without its file"
    if not isinstance(row.get("status"), str):
        return "a row whose status is not text"
    for name, value in row.items():  # by exact type, as JSON gives them (a survey's resume checks 10^6 rows)
        kind = type(value)
        if kind not in _NUMBERS and not (kind is str and name in STRING_COLUMNS):
            return f"a row whose {name} is not a {'text' if name in STRING_COLUMNS else 'number'}"
    return None


#: What a row's value may be in any column (JSON's null, true/false and numbers); text only in STRING_COLUMNS.
_NUMBERS = frozenset({type(None), bool, int, float})


def _shape_problem(record):
    """Why a decoded record (its checksum valid) is not of the shape this module writes, or None.

    A record of any other shape is damaged, as one whose checksum fails: a hand-edited or
    tampered journal must not stop a batch with a traceback, nor put a list into a table.
    """
    if not isinstance(record, dict):
        return "not an object"
    kind = record.get("kind")
    if kind == "run":
        return None if isinstance(record.get("config"), dict) else "a run record without its configuration"
    if kind == "inputs":
        keys = record.get("keys")
        if not _names(keys) or not (_names(record.get("ids"), len(keys)) and all(keys)):
            return "an inputs record whose keys and ids are not two lists of names"
        if record.get("stats") is not None and not _fingerprints(record["stats"], len(keys)):
            return "an inputs record whose fingerprints are not [size, mtime_ns] pairs"
        return None
    if kind == "fingerprints":
        keys = record.get("keys")
        ok = _names(keys) and _fingerprints(record.get("stats"), len(keys))
        return None if ok else "a fingerprints record that is not keys and [size, mtime_ns] pairs"
    if kind == "row":
        return _row_problem(record.get("row"))
    return "a record of no kind this package writes"


def is_legacy_line(line):
    """A plain JSON row of the journals written before records carried checksums."""
    try:
        record = json.loads(line)
    except ValueError:
        return False
    return isinstance(record, dict) and "file" in record
