"""A plain FITS header's values without astropy's Card objects, the same values astropy's Header gives.

Reading a spectrum asks its headers for a dozen keywords (the WCS, the units, the medium, the object);
through ``astropy.io.fits.Header`` that is a Card object per card and a regular expression and a
configuration lookup per value: ~0.2 ms of every spectrum a native fit reads, 5 % of its cost (survey-scale
issue). :class:`ScannedHeader` parses the cards of the common forms once — ``KEY = value / comment``
with a quoted string (astropy's own pattern for it), ``T``/``F``, an integer or a real (no Fortran ``D``
exponent), and commentary cards (``COMMENT``, ``HISTORY``, blank) — as astropy does, and answers ``get``,
``[]`` and ``in`` for standard keywords from them. Everything else goes to the astropy Header, made from the
same text the first time it is needed: a keyword it did not parse (a HIERARCH one, a commentary one, a
wildcard, one absent while HIERARCH cards could hold it), any other method (``copy``, ``cards``,
iteration…); once a method that could change the header is reached (``set``, ``[] =``, ``cards``, the
:attr:`~ScannedHeader.astropy` Header itself…), every answer is astropy's. A header with a card of any other
form (a complex or undefined value, a long string continued, a record-valued keyword card, a HIERARCH card
of one short word, text after ``END``) or with other than printable ASCII is astropy's from the start. tests/test_scanned_header.py checks every keyword of every
FITS file in ../shared and generated cards of every form against astropy's Header.
"""

import functools
import re

from astropy.io import fits

__all__ = ["ScannedHeader", "scanned_header"]

#: ``= value / comment`` as the common forms write it (columns 9 on): a logical, an integer or a real.
_VALUE = re.compile(r"= *(?:(?P<bool>[TF])|(?P<int>[+-]?\d+)|(?P<real>[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?))"
                    r" *(?:/.*)?$")
#: A string, in astropy's own pattern (``Card._strg``: the shortest text before a quote that a blank, a slash or
#: the end follows, the rest a comment); and its common case, no other quote on the card, where that text is
#: all up to the second quote (astropy's pattern backtracks over the whole card for an empty string: 15 µs).
_STRING = re.compile(r"= *'(?P<strg>(?:[ -~]+?|''|) *?)'(?=$|/| ) *(?:/.*)?$")
_PLAIN_STRING = re.compile(r"= *'(?P<strg>[^']*)'(?=$|/| ) *(?:/[^']*)?$")
#: The start of a record-valued keyword card's string (``'AXIS.1: 1'``), which astropy reads as its own keyword.
_RECORD = re.compile(r"[a-zA-Z_]\w*(?:\.\w*)*:")
#: A standard keyword, as astropy normalises the names it is asked for.
_KEYWORD = re.compile(r"[A-Z0-9_-]{0,8}")
_COMMENTARY = ("COMMENT", "HISTORY", "")
#: The Header's methods that change no value: reached through them, the parsed values still answer.
_READING = frozenset({"copy", "keys", "values", "items", "tostring", "tofile", "totextfile", "count", "index",
                      "comments", "fromstring", "fromfile", "fromtextfile", "fromkeys"})


def scanned_header(text):
    """The header of ``text`` (cards of 80 characters, up to ``END``): a :class:`ScannedHeader`, or astropy's
    ``Header.fromstring(text)`` where a card is of another form."""
    parsed = _parse(text)
    return fits.Header.fromstring(text) if parsed is None else ScannedHeader(text, *parsed)


def _parse(text):
    """(values, whether HIERARCH cards exist) of the cards, or None where one is of a form not parsed here.
    A string's value is kept as its card has it: astropy strips its trailing blanks when asked, as
    ``fits.conf.strip_header_whitespace`` says then."""
    if not (text.isascii() and text.isprintable()):
        return None
    values, hierarch = {}, False
    for start in range(0, len(text), 80):
        card = text[start:start + 80]
        if card[:8].rstrip() == "END":
            if card.rstrip() != "END" or text[start + 80:].strip():
                return None  # astropy's reading of text after the END card is its own
            break
        parsed = _card(card)
        if parsed is None:
            return None
        if parsed is _HIERARCH:
            hierarch = True
        elif parsed is not _COMMENT:
            values.setdefault(*parsed)  # a keyword given twice: astropy answers the first
    return values, hierarch


#: What :func:`_card` says of a HIERARCH card, and of a commentary one.
_HIERARCH, _COMMENT = object(), object()


@functools.lru_cache(maxsize=4096)
def _card(card):
    """(keyword, value) of a card other than ``END``; :data:`_HIERARCH` or :data:`_COMMENT` for those; None
    where it is of a form not parsed here. Most cards of a survey's files are the same from file to file
    (the structure, the WCS, the units): each is parsed once (a header's walk 28 -> ~10 µs)."""
    key = card[:8].rstrip()
    if key == "HIERARCH" or key == "CONTINUE":
        name = card[8:].partition("=")[0].strip().upper()
        if key == "CONTINUE" or _KEYWORD.fullmatch(name):  # a long string; or a name astropy would give
            return None                                    # back for a standard keyword
        return _HIERARCH
    if key in _COMMENTARY:
        return _COMMENT
    if card[8:10] != "= " or not _KEYWORD.fullmatch(key):
        return None
    if card[10:].lstrip().startswith("'"):
        match = _PLAIN_STRING.match(card, 8) or _STRING.match(card, 8)
        if match is None:
            return None
        value = match["strg"].replace("''", "'")
        return None if _RECORD.match(value) else (key, value)
    match = _VALUE.match(card, 8)
    if match is None:
        return None
    if match["bool"] is not None:
        return key, match["bool"] == "T"
    if match["int"] is not None:
        return key, int(match["int"])
    return key, float(match["real"])


@functools.lru_cache(maxsize=1024)
def _normalised(key):
    """(the keyword ``key`` names, as astropy normalises it, whether that is a standard keyword), or (None, False)
    where astropy's rules must answer (blanks around it, wildcards, a commentary keyword). A reader asks every
    file of a survey for the same dozen keywords: worked out once each."""
    if key != key.strip() or "*" in key or "?" in key or key.endswith("..."):
        return None, False
    name = key
    if name[:9].upper() == "HIERARCH ":
        name = name[9:].strip()
    name = name.upper()
    if name in _COMMENTARY:
        return None, False
    return name, _KEYWORD.fullmatch(name) is not None


class ScannedHeader:
    """A FITS header that reads as astropy's ``Header`` of the same text: ``get``, ``[]`` and ``in`` of its
    parsed keywords from the parsed values, anything else through that Header (:attr:`astropy`). It is not
    a ``fits.Header`` instance: ``h.copy()`` (or ``h.astropy``) is one, for an HDU or a writer."""

    def __init__(self, text, values, hierarch):
        self.text, self._values, self._hierarch, self._header = text, values, hierarch, None

    @property
    def astropy(self):
        """The astropy Header of this text, made the first time it is asked for; once asked for (it may be
        changed), every answer is its."""
        self._values = None
        return self._astropy()

    def _astropy(self):
        if self._header is None:
            self._header = fits.Header.fromstring(self.text)
        return self._header

    def _known(self, key):
        """The keyword ``key`` names, as astropy normalises it (``HIERARCH X`` is X), where the parsed values
        answer for it; None where astropy must."""
        if self._values is None or not isinstance(key, str):
            return None  # changed through astropy's Header; an index
        name, standard = _normalised(key)
        if name is None:
            return None
        if standard:
            return name if name in self._values or not self._hierarch else None
        # a long name, with spaces or a field specifier: only a HIERARCH card (or a record-valued one, which a
        # ScannedHeader has not) could hold it
        return None if self._hierarch else name

    def _value(self, name):
        value = self._values[name]
        if isinstance(value, str) and fits.conf.strip_header_whitespace:  # read as Card.value reads it
            return value.rstrip()
        return value

    def get(self, key, default=None):
        name = self._known(key)
        if name is None:
            return self._astropy().get(key, default)
        return self._value(name) if name in self._values else default

    def __getitem__(self, key):
        name = self._known(key)
        if name is None or name not in self._values:  # astropy's KeyError, as it words it
            return self._astropy()[key]
        return self._value(name)

    def __contains__(self, key):
        name = self._known(key)
        return key in self._astropy() if name is None else name in self._values

    def __setitem__(self, key, value):
        self._values = None  # from now on, every answer is the changed Header's
        self._astropy()[key] = value

    def __delitem__(self, key):
        self._values = None
        del self._astropy()[key]

    def __getattr__(self, name):  # copy, cards, keys, set, tostring…: astropy's
        if name.startswith("_"):  # ours are set in __init__ (an unpickled one has none yet): no recursion
            raise AttributeError(name)
        if name not in _READING:
            self._values = None  # a method that may change the Header (set, update, cards…): astropy answers
        return getattr(self._astropy(), name)

    def __eq__(self, other):
        return self._astropy() == _astropy_of(other)

    def __add__(self, other):
        return self._astropy() + _astropy_of(other)

    def __iadd__(self, other):
        self._values = None
        self._astropy().__iadd__(_astropy_of(other))
        return self

    def __copy__(self):  # an astropy Header, independent of this one (as copy.copy of astropy's)
        return self._astropy().copy()

    def __deepcopy__(self, memo):
        return self._astropy().copy()

    __hash__ = None  # as astropy's Header

    def __iter__(self):
        return iter(self._astropy())

    def __len__(self):
        return len(self._astropy())

    def __repr__(self):
        return repr(self._astropy())

    def __str__(self):
        return str(self._astropy())


def _astropy_of(header):
    """``header``, a :class:`ScannedHeader`'s astropy Header in its place (astropy's operators iterate the cards
    of a Header, the keywords of anything else)."""
    return header._astropy() if isinstance(header, ScannedHeader) else header
