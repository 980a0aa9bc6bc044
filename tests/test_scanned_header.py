"""ScannedHeader answers as astropy's Header does: every keyword of every FITS file in ../shared, and cards of
every form written here."""

import glob
import os
import pickle

import pytest
from astropy.io import fits

from conftest import SHARED
from ulyss_ann.model.fits_scan import scan_fits
from ulyss_ann.model.scanned_header import ScannedHeader, scanned_header

#: Keywords asked of every header besides its own: absent ones, other cases, HIERARCH forms, commentary,
#: wildcards, blanks around a name, indices.
PROBES = ["SIMULATD", "NOPE", "crval1", " CRVAL1 ", "CRVAL1\n", "HIERARCH CRVAL1", "hierarch ra", " HIERARCH RA",
          "HIERARCH STAR RA", "STAR RA", "OBSERVATION AIRM START", "HIERARCH OBSERVATION AIRM START", "COMMENT",
          "HISTORY", "", "END", "CRVAL*", "R?", "CRVAL...", "DP1.AXIS.1", "dp1.axis.1", "DP1", "LONGKEYWORD",
          "PLUG_RA", 0, ("CRVAL1", 0)]


def outcome(ask):
    """(value's type, value's text) of ``ask()``, or the exception's type where it raises."""
    try:
        value = ask()
        return type(value), str(value)  # a wildcard's Header of cards: its text (which may not parse either)
    except Exception as exc:  # astropy's VerifyError of a card it cannot parse, a KeyError…
        return type(exc)


def same_answers(text):
    """Assert that scanned_header(text) answers get, [] and in as astropy's Header of ``text`` does (the same
    value and type, or the same exception); the number of keywords compared."""
    ours, theirs = scanned_header(text), fits.Header.fromstring(text)
    keys = list(dict.fromkeys(list(theirs.keys()) + PROBES))
    for key in keys:
        for ask in (lambda h: key in h, lambda h: h.get(key, "absent"), lambda h: h[key]):
            assert outcome(lambda: ask(ours)) == outcome(lambda: ask(theirs)), key
    return len(keys)


def header_text(*cards):
    return "".join(card.ljust(80)[:80] for card in cards + ("END",)).ljust(2880)


@pytest.mark.filterwarnings("ignore:The following header keyword is invalid")  # NOEQ: astropy's, both ways
@pytest.mark.parametrize("card", [
    "STR     = 'AWAV    '           / a string and its trailing blanks",
    "STR     = ''", "STR     = ' '", "STR     = 'It''s'", "STR     = '''quoted'''", "STR     = 'a/b' / c",
    "STR     = 'a'/no space", "STR     = 'x'   ", "STR     = 'a''' / c", "STR     = '2014-07-27T01:59:00.480'",
    "STR     = 'AXIS.1: 1'", "STR     = 'a'b'", "STR     = 'unclosed", "STR     = '' / 'x'", "STR     = ''/'y'",
    "STR     = 'a'' / ''b'", "STR     = 'a'' b'", "STR     = 'caf\xe9'", "STR     = 'a\tb'",
    "LOG     =                    T", "LOG     = F / false", "LOG     = Tx", "LOG     = T T",
    "INT     =                 2069", "INT     = -0", "INT     = +007", "INT     = 123456789012345678901234567890",
    "INT     = 5/comment", "INT     = 5 5", "INT     = 1 2",
    "REAL    =    4779.652492100227 / Wavelength", "REAL    = 1.", "REAL    = .5", "REAL    = -1.5E-3",
    "REAL    = 1e5", "REAL    = 1E+400", "REAL    = 1.5D3", "REAL    = 1.5d-3", "REAL    = 1. 5", "REAL    = 0.0",
    "REAL    = -0.0", "REAL    = 00012.5e02",
    "CPLX    = (1.0, 2.0)", "UNDEF   =", "UNDEF   =                      / nothing", "NOEQ     5", "KEY    = 5",
    "COMMENT a comment", "HISTORY = not a value", "        blank commentary",
    "HIERARCH STAR RA = 265.17", "HIERARCH OBSERVATION AIRM START = 1.144", "HIERARCH RA = 1.0",
    "CONTINUE  'more'", "lower   = 5",
])
def test_each_form_of_card_reads_as_astropy_reads_it(card):
    text = header_text("SIMPLE  =                    T", "CRVAL1  =               4750.0", card, "RA      = 1.5")
    assert same_answers(text) >= len(PROBES)


def test_a_keyword_given_twice_is_its_first_value_and_long_strings_are_astropys():
    twice = header_text("SIMPLE  =                    T", "OBJECT  = 'first'", "OBJECT  = 'second'")
    assert scanned_header(twice)["OBJECT"] == "first"
    same_answers(twice)
    long = header_text("SIMPLE  =                    T", "LONGSTR = 'abc&'", "CONTINUE  'def'")
    assert not isinstance(scanned_header(long), ScannedHeader) and scanned_header(long)["LONGSTR"] == "abcdef"


def test_text_after_the_end_card_and_the_settings_of_the_moment_are_astropys():
    for end in ("END     junk", "END"):
        text = header_text("SIMPLE  =                    T", "CTYPE1  = 'AWAV    '")[:160] + end.ljust(80) + \
            ("" if end != "END" else "CRVAL1  = 5".ljust(80))
        same_answers(text.ljust(2880))
    header = scanned_header(header_text("SIMPLE  =                    T", "CTYPE1  = 'AWAV    '"))
    assert isinstance(header, ScannedHeader) and header["CTYPE1"] == "AWAV"
    with fits.conf.set_temp("strip_header_whitespace", False):  # asked after the header was read
        assert header["CTYPE1"] == "AWAV    " and header.get("CTYPE1") == "AWAV    "


def test_a_header_changed_any_way_answers_as_changed_and_its_copies_are_its_own():
    import copy

    text = header_text("SIMPLE  =                    T", "CTYPE1  = 'AWAV    '", "CRVAL1  = 4750.0")
    header = scanned_header(text)
    del header["CRVAL1"]                             # the first change
    assert "CRVAL1" not in header and header.get("CRVAL1", "gone") == "gone"
    header = scanned_header(text)
    header.astropy["CRVAL1"] = 1.0                   # through the Header it hands out
    assert header["CRVAL1"] == 1.0
    header = scanned_header(text)
    header += fits.Header({"CRVAL1": 2.0, "NEW": 3})
    expected = fits.Header.fromstring(text)
    expected += fits.Header({"CRVAL1": 2.0, "NEW": 3})
    assert header == expected and str(header) == str(expected) and header["NEW"] == 3 == header.get("NEW")
    header = scanned_header(text)
    for duplicate in (copy.copy(header), copy.deepcopy(header), header.copy()):
        assert isinstance(duplicate, fits.Header) and duplicate == header and str(duplicate) == str(header)
        duplicate["CRVAL1"] = 3.0
        assert header["CRVAL1"] == 4750.0 and header.astropy["CRVAL1"] == 4750.0
    reading = scanned_header(text)
    assert reading.keys() and reading.tostring() == fits.Header.fromstring(text).tostring()
    assert reading._values is not None              # methods that change nothing keep the parsed values
    assert (reading + fits.Header({"NEW": 1}))["NEW"] == 1 and "NEW" not in reading


def test_a_header_changed_through_astropys_methods_answers_as_changed():
    text = header_text("SIMPLE  =                    T", "CTYPE1  = 'AWAV    '", "CRVAL1  = 4750.0")
    for change in (lambda h: h.set("CTYPE1", "WAVE"), lambda h: h.update(CTYPE1="WAVE"),
                   lambda h: h.__setitem__("CTYPE1", "WAVE")):
        header = scanned_header(text)
        assert header["CTYPE1"] == "AWAV"
        change(header)
        assert header["CTYPE1"] == header.get("CTYPE1") == "WAVE"
    header["NEW"] = 5
    assert "NEW" in header and header["NEW"] == 5
    del header["CRVAL1"]
    assert "CRVAL1" not in header and header.get("CRVAL1", "gone") == "gone"
    expected = fits.Header.fromstring(text)
    expected["CTYPE1"], expected["NEW"] = "WAVE", 5
    del expected["CRVAL1"]
    assert header == expected and header.copy() == expected and isinstance(header.copy(), fits.Header)


def test_what_it_does_not_parse_goes_to_astropys_header():
    text = header_text("SIMPLE  =                    T", "CTYPE1  = 'AWAV    '", "HIERARCH STAR RA = 265.17",
                       "COMMENT one")
    header = scanned_header(text)
    assert isinstance(header, ScannedHeader) and header._header is None
    assert header["CTYPE1"] == "AWAV" and "RA" not in header._values and header._header is None
    assert header["HIERARCH STAR RA"] == 265.17 and header._header is not None  # made when needed
    copy = header.copy()
    assert isinstance(copy, fits.Header) and copy["CTYPE1"] == "AWAV" and list(header) == list(copy)
    assert len(header) == len(copy) and list(header.cards)[0].keyword == "SIMPLE"
    again = pickle.loads(pickle.dumps(header))
    assert again["CTYPE1"] == "AWAV" and again.get("STAR RA") == 265.17


def shared_fits_files():
    return sorted(glob.glob(os.path.join(SHARED, "**", "*.fits"), recursive=True)) if os.path.isdir(SHARED) else []


@pytest.mark.skipif(not shared_fits_files(), reason="needs ../shared/data (the MUSE star, MILES, the networks)")
def test_every_keyword_of_every_shared_fits_file_reads_as_astropy_reads_it():
    files = shared_fits_files()
    scanned = compared = ours = 0
    for path in files:
        hdus = scan_fits(path)
        if hdus is None:
            continue
        scanned += 1
        for hdu in hdus:
            compared += same_answers(hdu.text)
            ours += isinstance(scanned_header(hdu.text), ScannedHeader)
    assert scanned >= 0.9 * len(files) and compared > 10 * scanned and ours >= scanned
