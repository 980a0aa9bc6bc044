"""Outside text as GDL source: string literals, comments, routine names, paths.

An interpolator file is data. Its parameter names and units, the paths of files and
folders, and the component name all end up inside GDL code: in the generated
component (``ulyss_ann/gdl/templates/``) and in the statements the subprocess bridge types into
``gdl``. GDL code is a language in which ``'`` ends a string, a newline or ``&`` ends
a statement and ``;`` starts a comment, so a unit such as ``K' & spawn, 'rm -rf ~' ;``
would run a shell command if pasted verbatim. Every such string therefore passes
through one of these functions, and nothing else:

* :func:`gdl_string` — a GDL expression whose value is exactly the text: printable
  ASCII inside single quotes with ``'`` doubled (GDL's own escape), every other
  character (newline, tab, non-ASCII in UTF-8) as ``string([..b])`` bytes. The
  result never contains a newline, and no character of the text is ever outside
  a quoted string or a byte list.
* :func:`gdl_comment` — text for one comment line: printable ASCII kept, anything
  else shown as a Python-style escape (``\\n``, ``\\xe9``), so that a comment can
  never end early.
* :func:`gdl_identifier` — a routine or variable name, checked, never quoted.
* :func:`gdl_number` — a float as a double literal that reads back exactly.
* :func:`check_gdl_path` — refuses, in one line naming the option, a path GDL
  cannot open as written: GDL passes file names through wordexp(3), which expands
  ``$NAME``, drops ``\\``, removes a *pair* of quotes (``l'été's`` opens ``lété s``;
  a single quote is kept), splits at a tab and globs ``* ?`` (no command ever runs:
  measured with GDL 1.0.1); on ``!PATH``, ``:`` separates entries and ``[ ] * ?`` are
  globbed. Paths GDL only has to carry, not open (``opened=False``), are checked for
  ``$`` and ``\\`` alone.
"""

import math
import re

from ulyss_ann.errors import UlyssAnnError

__all__ = ["GDLCode", "gdl_string", "gdl_comment", "gdl_identifier", "gdl_number", "check_gdl_path",
           "is_plain_code", "IDENTIFIER"]

#: A GDL routine or variable name: a letter, then letters, digits or '_' (31 at most, as IDL).
IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,30}")

#: Text that may stand in generated code as it is: no quote, no statement or comment
#: separator (& ; $), no newline, nothing outside printable ASCII. Generated names,
#: numbers, keyword lists and the checked parameter names are of this kind.
_PLAIN = re.compile(r"[A-Za-z0-9_ ,.=\[\]()+\-*/:<>%#@!^|~{}?]*")

_PRINTABLE = range(32, 127)


class GDLCode(str):
    """Text already made safe for GDL source (a literal, an escaped comment, a name)."""


def is_plain_code(text):
    """True where ``text`` can stand in GDL source unescaped (see ``_PLAIN``)."""
    return _PLAIN.fullmatch(text) is not None


def gdl_string(text):
    """A GDL expression whose value is ``text``, safe in any position of a statement.

    >>> gdl_string("it's")
    "'it''s'"
    >>> gdl_string("a\\nb")
    "('a' + string([10b]) + 'b')"
    """
    text = str(text)
    pieces, quoted, raw = [], [], []

    def flush_quoted():
        if quoted:
            pieces.append("'" + "".join(quoted) + "'")
            quoted.clear()

    def flush_raw():
        if raw:
            pieces.append("string([" + ", ".join(f"{b}b" for b in b"".join(raw)) + "])")
            raw.clear()

    for ch in text:
        if ord(ch) in _PRINTABLE:
            flush_raw()
            quoted.append("''" if ch == "'" else ch)
        else:
            flush_quoted()
            raw.append(ch.encode("utf-8", "surrogateescape"))
    flush_quoted()
    flush_raw()
    if not pieces:
        return GDLCode("''")
    if len(pieces) == 1:
        return GDLCode(pieces[0])
    return GDLCode("(" + " + ".join(pieces) + ")")


def gdl_comment(text):
    """``text`` for the inside of one GDL comment line: it cannot end the line early."""
    out = []
    for ch in str(text):
        if ord(ch) in _PRINTABLE:
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape", "backslashreplace").decode("ascii"))
    return GDLCode("".join(out))


def gdl_identifier(name, what="name"):
    """``name`` if it is a GDL identifier, else UlyssAnnError naming ``what``."""
    name = str(name)
    if IDENTIFIER.fullmatch(name) is None:
        raise UlyssAnnError(f"{what} {name!r}: a GDL name is a letter followed by letters, digits or '_' "
                            "(at most 31 characters), e.g. gslann")
    return GDLCode(name)


def gdl_number(value):
    """A float as a GDL double literal that reads back to the same value (finite only)."""
    value = float(value)
    if not math.isfinite(value):
        raise UlyssAnnError(f"cannot write {value} as a GDL number")
    mantissa, _, exponent = repr(value).partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    return GDLCode(f"{mantissa}d{exponent or '0'}")


def check_gdl_path(path, what, search_path=False, opened=True):
    """Return ``path`` as a str if GDL can open it verbatim; else one line naming ``what`` and the fix.

    ``search_path``: the path is a folder to put on GDL's ``!PATH``, where ``:``
    separates entries and a leading ``+`` means "with sub-folders". ``opened=False``:
    GDL never opens it (the GDL engine's --save-fits folder, reached through Python).
    """
    path = str(path)
    # "|": GDL's file_test (hence ulyss_ann_read_network) says no such file for a name holding it
    bad = sorted({ch for ch in path if ch in "$\\" or (search_path and ch in ":`[]*?")
                  or (opened and (ch in "*?\t|" or (ch in "'\"" and path.count(ch) > 1)))})
    if search_path and path.startswith("+"):
        bad.append("a leading +")
    if bad:
        shown = ", ".join(repr(ch) if len(ch) == 1 else ch for ch in bad)
        raise UlyssAnnError(f"{what} {path!r}: GDL cannot use a path containing {shown} "
                            "(it expands $NAME and globs, drops backslashes and pairs of quotes in file names, "
                            "finds no file whose name holds |); "
                            "move or link it to a path without them")
    return path
