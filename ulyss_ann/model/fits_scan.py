"""A plain FITS file's headers, split and read without astropy's HDU objects.

``astropy.io.fits`` builds an HDU object and a Header of Card objects for each extension: 0.7 ms
just to learn the sizes of a MUSE spectrum's two HDUs, twice that to read it, most of what a
native fit spends on its file (survey-scale issue). Most spectrum files are plain: uncompressed,
a primary image and image or binary-table extensions. For those, :func:`scan_fits` reads the
header blocks (2880 bytes, 36 cards of 80 characters each) up to each ``END`` card, parses the
structural keywords the FITS standard fixes (``XTENSION``, ``BITPIX``, ``NAXISn``, ``PCOUNT``,
``GCOUNT``, ``EXTNAME``, and ``ZIMAGE``/``ZNAXISn`` of a tile-compressed image) and skips each
HDU's data: positions and sizes by the standard's formula, as astropy computes them. The header
itself is read by :func:`~ulyss_ann.model.scanned_header.scanned_header` (its values as astropy's Header
gives them, that Header made only where needed).

Anything unusual — a file compressed as a whole, an ASCII table, random groups, a card that is
not printable ASCII, a structural keyword that is not a plain integer or is given twice, no
``END`` — returns None, and the caller reads the file with astropy as before (whose errors say
what is wrong).
"""

import functools
import math
import os
import re
from dataclasses import dataclass

__all__ = ["ScannedHDU", "scan_fits", "declared_sizes", "BLOCK", "CARD"]

#: Bytes of a FITS block, and of a card.
BLOCK, CARD = 2880, 80
_MAX_HEADER_BLOCKS = 10_000  # 36 000 cards: beyond, astropy reads it (or says it is damaged)


@dataclass(frozen=True)
class ScannedHDU:
    """One HDU of a plain FITS file: its header text, the structural keywords, where its data start."""

    index: int
    text: str
    keywords: dict
    data_start: int

    @property
    def kind(self):
        """``primary``, ``IMAGE`` or ``BINTABLE`` (the XTENSION)."""
        return "primary" if self.index == 0 else self.keywords["XTENSION"]


def declared_sizes(get):
    """(NAXISn in FITS order, bytes of data, ZNAXISn of a tile-compressed image or None) from a header's
    structural keywords, ``get(key, default)``: astropy's ``Header.get`` or a :class:`ScannedHDU`'s
    ``keywords.get``. The data's size is the standard's |BITPIX|/8 × GCOUNT × (PCOUNT + ∏ NAXISn), unpadded."""
    def axes(prefix):
        return tuple(int(get(f"{prefix}{k}", 0)) for k in range(1, int(get(prefix, 0)) + 1))

    shape = axes("NAXIS")
    nbytes = (abs(int(get("BITPIX", 8))) // 8 * int(get("GCOUNT", 1))
              * (int(get("PCOUNT", 0)) + (math.prod(shape) if shape else 0)))
    return shape, nbytes, axes("ZNAXIS") if get("ZIMAGE", False) is True else None


#: The keywords whose values place the data: parsed as integers by the scan.
_STRUCTURAL = re.compile(r"BITPIX|PCOUNT|GCOUNT|Z?NAXIS\d*")


#: The logical keywords the scan reads: T and F as Python's True and False, as astropy's Header gives them.
_LOGICAL = {key: {"T": True, "F": False} for key in ("SIMPLE", "ZIMAGE", "GROUPS")}


#: The other keywords the scan keeps (as text, T and F as booleans): the HDU's kind and name, and the scaling
#: keywords whose presence sends a file to astropy (its readers check them).
_NAMED = ("SIMPLE", "XTENSION", "EXTNAME", "ZIMAGE", "GROUPS", "BSCALE", "BZERO", "BLANK")


_KEY_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")

#: What the scan does with a card, from its first ten characters (:func:`_card_role`).
_SKIP, _END, _STRUCTURAL_KEY, _NAMED_KEY, _HIERARCH = "skip", "end", "structural", "named", "hierarch"
#: The printable ASCII characters, as bytes (a block with any other is not plain).
_PRINTABLE = bytes(range(0x20, 0x7F))


@functools.lru_cache(maxsize=4096)
def _card_role(prefix):
    """(keyword, role) of a card that starts with ``prefix`` (its first ten characters): ``hierarch`` (ESO's long
    keywords, astropy's own convention: standard only where the card holds a ``=``); None where the card is not
    of the standard's form — a keyword of other characters, or a value indicator other than ``= `` (astropy
    warns of it as it parses the card, which a reader then sees as a damaged file); ``end``; ``structural`` (a
    keyword of :data:`_STRUCTURAL`, parsed as an integer) or ``named`` (one of :data:`_NAMED`); else ``skip``.
    The same few keywords start every header of a survey: their role is worked out once (a card's walk 2.5 ->
    0.5 µs)."""
    key = prefix[:8].rstrip()
    if key == "HIERARCH":
        return key, _HIERARCH
    if key != "CONTINUE" and (not set(key) <= _KEY_CHARACTERS or (prefix[8:9] == "=" and prefix[9:10] != " ")):
        return key, None
    if key == "END":
        return key, _END
    if _STRUCTURAL.fullmatch(key):
        return key, _STRUCTURAL_KEY
    return key, _NAMED_KEY if key in _NAMED else _SKIP


def _value(card):
    """The value of a ``KEY = value / comment`` card as text (a string without its quotes), or None."""
    if card[8:10] != "= ":
        return None
    field = card[10:].strip()
    if field.startswith("'"):
        end = 1
        while True:
            end = field.find("'", end)
            if end < 0:
                return None
            if field[end + 1:end + 2] == "'":  # '' is a quote inside the string
                end += 2
                continue
            return field[1:end].replace("''", "'").rstrip()
    return field.split("/", 1)[0].strip()


def _header(handle, offset):
    """(text, keywords, data_start) of the header at ``offset``, or None where it is not plain."""
    handle.seek(offset)
    blocks, keywords = [], {}
    for _ in range(_MAX_HEADER_BLOCKS):
        block = handle.read(BLOCK)
        if len(block) < BLOCK or block.translate(None, _PRINTABLE):
            return None  # short, or a character other than printable ASCII
        text = block.decode("ascii")
        blocks.append(text)
        for start in range(0, BLOCK, CARD):
            card = text[start:start + CARD]
            key, role = _card_role(card[:10])
            if role is _SKIP:
                continue
            if role is None or (role is _HIERARCH and "=" not in card):
                return None  # astropy reads it, and warns (an error where a reader opens it)
            if role is _END:
                return "".join(blocks)[:(len(blocks) - 1) * BLOCK + start + CARD], keywords, handle.tell()
            if role is _STRUCTURAL_KEY or role is _NAMED_KEY:
                value = _value(card)
                if value is None or key in keywords:  # a keyword twice: astropy takes the first, and warns
                    return None
                if role is _STRUCTURAL_KEY:
                    try:
                        keywords[key] = int(value)
                    except ValueError:
                        return None
                elif key in _LOGICAL and not card[10:].lstrip().startswith("'"):
                    keywords[key] = _LOGICAL[key].get(value, value)  # T, F: as astropy gives them
                else:
                    keywords[key] = value
    return None


def scan_fits(path):
    """The :class:`ScannedHDU` of every HDU of a plain FITS file, from its headers (no data read), or
    None where the file is not plain (see the module's text) or does not end with its last HDU's last
    block (astropy then says it is truncated, as it always did)."""
    size = os.path.getsize(path)
    hdus = []
    with open(path, "rb") as handle:
        if handle.read(9) != b"SIMPLE  =":
            return None
        offset = 0
        while offset < size:
            parsed = _header(handle, offset)
            if parsed is None:
                return None
            text, keywords, data_start = parsed
            index = len(hdus)
            if index == 0 and (keywords.get("SIMPLE") is not True or keywords.get("GROUPS") is True):
                return None
            if index > 0 and keywords.get("XTENSION") not in ("IMAGE", "BINTABLE"):
                return None
            if "BITPIX" not in keywords or "NAXIS" not in keywords or not all(
                    f"NAXIS{k}" in keywords for k in range(1, keywords["NAXIS"] + 1)):
                return None
            hdus.append(ScannedHDU(index, text, keywords, data_start))
            offset = data_start + -(-declared_sizes(keywords.get)[1] // BLOCK) * BLOCK
    return hdus if offset == size else None  # short of its last block (astropy says truncated), or a tail
