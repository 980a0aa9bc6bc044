"""A file's identity: its SHA-256, read in blocks.

The model's identity in every table row and run record, the LSF file's and a ``--fix``
table's in a run record, and each file of a cached GDL component in its manifest: one
function in the lowest layer, so that every layer above computes it the same way.
"""

import hashlib

__all__ = ["file_sha256"]


def file_sha256(path):
    """SHA-256 of a file (hexadecimal), read in blocks of 1 MiB."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
