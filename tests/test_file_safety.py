"""The files a batch writes (#24, items 3, 4, 6, 8 and 9): no link followed, no input overwritten, a
spectrum file changed since its fit fitted again, a tampered journal never a traceback, --save-fits files
whole or not at all. Native engine in this process (fast); the full disk is a real one (a tmpfs)."""

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zlib

import pytest
from astropy.io import fits
from astropy.table import Table

import ulyss_ann
from conftest import CLI_FAST, FAST, MODEL, TRUTH, can_mount_tmpfs, cli, journal_of, simulated_batch
from ulyss_ann import UlyssAnnError
from ulyss_ann.fitting.batch.driver import fit
from ulyss_ann.fitting.batch.journal import Journal
from ulyss_ann.fitting.batch.run import OutputLock
from ulyss_ann.fitting.table import write_table

LINK = "is a symbolic link; ulyss-ann does not write through links"
# links, locks, journals and full disks: file-system checks, no numbers (the first leg of ./scripts/test)
pytestmark = pytest.mark.first_leg

VICTIM = b"somebody else's file\n"


@pytest.fixture(scope="module")
def spectra(tmp_path_factory):
    """Three of the six spectra of tests/test_batch_integrity.py."""
    return simulated_batch(tmp_path_factory.mktemp("spectra"), TRUTH[:3], lambda i: 10.0 * i)


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "victim"
    path.write_bytes(VICTIM)
    return path


def _one_line(text):
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


# ------------------------------------------------------------------ links: never followed
def test_a_link_at_the_lock_is_refused_in_one_line_and_its_target_untouched(spectra, tmp_path, victim):
    out = tmp_path / "r.ecsv"
    os.symlink(victim, f"{out}.lock")
    run = cli("fit", spectra[0], "-j", "0", "-o", out, *CLI_FAST)
    assert run.returncode == 2
    assert _one_line(run.stderr) == f"ulyss-ann: error: {out}.lock: {LINK}: remove it or give another --output"
    assert victim.read_bytes() == VICTIM and not out.exists()
    assert not os.path.exists(journal_of(out).path)
    # the lock itself opens without following (a link made after the batch's checks)
    with pytest.raises(UlyssAnnError, match=LINK):
        OutputLock(out).acquire()
    assert victim.read_bytes() == VICTIM


def test_a_linked_journal_is_refused_on_resume_and_its_target_untouched(spectra, tmp_path, victim):
    out = tmp_path / "r.ecsv"
    fit(spectra[:1], MODEL, out, workers=0, **FAST)
    journal = journal_of(out).path
    victim.write_bytes(open(journal, "rb").read())  # even a journal of the same run: written through, never
    before = victim.read_bytes()
    os.remove(journal)
    os.symlink(victim, journal)
    with pytest.raises(UlyssAnnError, match=f"{journal}: {LINK}"):
        fit(spectra[:2], MODEL, out, workers=0, resume=True, add_spectra=True, **FAST)
    assert victim.read_bytes() == before
    for action in (lambda j: j.read(), lambda j: j.append({"file": "x", "status": "ok"})):
        with pytest.raises(UlyssAnnError, match=LINK):  # below the batch's checks too
            action(Journal(journal))
    assert victim.read_bytes() == before


def test_a_dangling_journal_link_is_refused_and_its_target_never_created(spectra, tmp_path):
    out, nowhere = tmp_path / "r.ecsv", tmp_path / "nowhere"
    os.symlink(nowhere, f"{out}.journal.jsonl")
    with pytest.raises(UlyssAnnError, match=LINK):
        fit(spectra[:1], MODEL, out, workers=0, **FAST)
    with pytest.raises(UlyssAnnError, match=LINK):
        Journal(f"{out}.journal.jsonl").start({"version": "x"}, [])
    assert not nowhere.exists() and not os.path.exists(f"{out}.lock")


def test_a_linked_table_is_refused_and_its_target_untouched(spectra, tmp_path, victim):
    out = tmp_path / "r.ecsv"
    os.symlink(victim, out)
    with pytest.raises(UlyssAnnError, match=f"{out}: {LINK}"):
        fit(spectra[:1], MODEL, out, workers=0, overwrite=True, **FAST)  # --overwrite removes no link either
    assert os.path.islink(out) and victim.read_bytes() == VICTIM
    # the table's own write: refused at the final name, whether the link dangles or not
    table = Table({"id": ["a"]})
    with pytest.raises(UlyssAnnError, match=LINK):
        write_table(table, out)
    dangling = tmp_path / "d.ecsv"
    os.symlink(tmp_path / "nowhere.ecsv", dangling)
    with pytest.raises(UlyssAnnError, match=LINK):
        write_table(table, dangling)
    assert victim.read_bytes() == VICTIM and not (tmp_path / "nowhere.ecsv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.ecsv", "r.ecsv", "victim"]  # no temporary left


def test_a_link_among_the_save_fits_files_is_refused_and_its_target_untouched(spectra, tmp_path, victim):
    folder = tmp_path / "sav"
    folder.mkdir()
    os.symlink(victim, folder / "sim000_fit.fits")
    with pytest.raises(UlyssAnnError, match=f"sim000_fit.fits: {LINK}: remove it or give another --save-fits folder"):
        fit(spectra[:1], MODEL, tmp_path / "r.ecsv", workers=0, save_fits=str(folder), **FAST)
    assert victim.read_bytes() == VICTIM
    # a link made during the batch: the write itself refuses it (the .res of the GDL engine goes the same way)
    from ulyss_ann.fitting.safe_files import write_beside

    result = ulyss_ann.fit_spectrum(spectra[0], model=MODEL, **{k: v for k, v in FAST.items() if k != "progress"})
    with pytest.raises(UlyssAnnError, match=LINK):
        result.write_fits(str(folder))
    with pytest.raises(UlyssAnnError, match=LINK):
        write_beside(folder / "sim000_fit.fits", lambda path: open(path, "wb").write(b"x"), option="--save-fits")
    assert victim.read_bytes() == VICTIM and os.listdir(folder) == ["sim000_fit.fits"]


# ------------------------------------------------------------------ an output is never an input
def test_an_output_that_is_one_of_the_spectra_is_refused_before_anything_is_deleted(spectra, tmp_path):
    folder = tmp_path / "ovr"
    folder.mkdir()
    copies = [shutil.copy(path, folder) for path in spectra]
    data = [open(path, "rb").read() for path in copies]
    for output in (copies[1], os.path.relpath(copies[2])):
        with pytest.raises(UlyssAnnError, match="is one of the spectra to fit"):
            fit(copies, MODEL, output, workers=0, overwrite=True, **FAST)
    os.link(copies[0], tmp_path / "r.fits")  # the same file under another name
    with pytest.raises(UlyssAnnError, match="r.fits: is one of the spectra to fit"):
        fit(copies, MODEL, tmp_path / "r.fits", workers=0, overwrite=True, **FAST)
    assert [open(path, "rb").read() for path in copies] == data
    assert sorted(os.listdir(folder)) == ["sim000.fits", "sim001.fits", "sim002.fits"]  # no journal, no lock


def test_save_fits_files_that_would_overwrite_a_spectrum_are_refused(spectra, tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    first = shutil.copy(spectra[0], folder / "a.fits")
    second = shutil.copy(spectra[1], folder / "a_fit.fits")  # where a's fit would be saved
    with pytest.raises(UlyssAnnError, match="a_fit.fits: is one of the spectra to fit, and --save-fits"):
        fit([first, second], MODEL, tmp_path / "r.ecsv", workers=0, save_fits=str(folder), **FAST)
    assert open(second, "rb").read() == open(spectra[1], "rb").read()


# ------------------------------------------------------------------ inputs changed since their fit
def test_a_spectrum_file_replaced_since_its_fit_is_fitted_again_on_resume(spectra, tmp_path, capsys):
    folder = tmp_path / "s"
    folder.mkdir()
    copies = [shutil.copy(path, folder) for path in spectra]
    out = tmp_path / "r.ecsv"
    first = fit(copies, MODEL, out, workers=0, **FAST)
    shutil.copy(spectra[2], copies[1])  # sim001 is now sim002's spectrum
    os.utime(copies[1], ns=(os.stat(copies[1]).st_atime_ns, os.stat(copies[1]).st_mtime_ns + 10**9))
    capsys.readouterr()
    again = fit(copies, MODEL, out, workers=0, resume=True, **FAST)
    assert _one_line(capsys.readouterr().err) == (
        f"ulyss-ann: warning: 1 spectrum file changed since it was fitted (another size or modification time; "
        f"e.g. {copies[1]}): fitted again, the old row set aside")
    assert again["Teff"][1] == pytest.approx(first["Teff"][2], rel=1e-9) != pytest.approx(first["Teff"][1])
    assert list(again["Teff"][[0, 2]]) == list(first["Teff"][[0, 2]]) and len(again) == 3
    assert journal_of(out).read().counts == {copies[0]: 1, copies[1]: 1, copies[2]: 1}
    fit(copies, MODEL, out, workers=0, resume=True, **FAST)  # its new fingerprint recorded: not fitted again
    assert capsys.readouterr().err == "" and sum(journal_of(out).read().counts.values()) == 3
    # a crash after the new fingerprint but before the new row: the old row never comes back
    path = journal_of(out).path
    lines = open(path, "rb").read().splitlines(keepends=True)
    open(path, "wb").write(b"".join(lines[:-1]))  # the new row was the last record
    assert copies[1] not in journal_of(out).read().rows and len(journal_of(out).read().rows) == 2


def test_a_journal_without_fingerprints_resumes_and_records_them(spectra, tmp_path, capsys):
    out = tmp_path / "r.ecsv"
    fit(spectra[:2], MODEL, out, workers=0, **FAST)
    path = journal_of(out).path
    lines = open(path, "rb").read().splitlines(keepends=True)
    lines = [_record_line(dict(_body(line), stats=None)) if b'"kind":"inputs"' in line else line for line in lines]
    lines = [_record_line({k: v for k, v in _body(line).items() if k != "stats"}) if b'"stats":null' in line
             else line for line in lines]
    open(path, "wb").write(b"".join(lines))
    assert journal_of(out).read().stats == {spectra[0]: None, spectra[1]: None}
    table = fit(spectra[:2], MODEL, out, workers=0, resume=True, **FAST)
    assert capsys.readouterr().err == "" and list(table["status"]) == ["ok", "ok"]
    state = journal_of(out).read()
    assert sum(state.counts.values()) == 2 and all(state.stats[k] is not None for k in spectra[:2])


# ------------------------------------------------------------------ a tampered journal
def _body(line):
    return json.loads(line[line.index(b'"record":') + len(b'"record":'):-2])


def _record_line(record):
    """A journal line whose checksum holds: only its shape can tell it is not ours."""
    body = json.dumps(record, separators=(",", ":")).encode()
    return b'{"crc32":"' + f"{zlib.crc32(body):08x}".encode() + b'","record":' + body + b"}\n"


TAMPERINGS = {
    "a row that is a list": lambda r: dict(r, row=[r["row"]]),
    "a row without its file": lambda r: dict(r, row={k: v for k, v in r["row"].items() if k != "file"}),
    "a status that is a number": lambda r: dict(r, row=dict(r["row"], status=0)),
    "a Teff that is text": lambda r: dict(r, row=dict(r["row"], Teff="5000 K")),
    "an error that is an object": lambda r: dict(r, row=dict(r["row"], e_Teff={"value": 3})),
    "inputs keys that are a string": lambda r: dict(r, keys=r["keys"][0]),
    "inputs fingerprints that are text": lambda r: dict(r, stats=["big"] * len(r["keys"])),
    "a record that is a list": lambda r: [r],
}


@pytest.mark.parametrize("tampering", TAMPERINGS)
def test_a_record_of_the_wrong_shape_is_damaged_and_its_spectrum_fitted_again(spectra, tmp_path, capsys, tampering):
    out = tmp_path / "r.ecsv"
    first = fit(spectra[:2], MODEL, out, workers=0, **FAST)
    path = journal_of(out).path
    lines = open(path, "rb").read().splitlines(keepends=True)
    kind = b'"kind":"inputs"' if "inputs" in tampering else b'"kind":"row"'
    index = next(i for i, line in enumerate(lines) if kind in line)
    lines[index] = _record_line(TAMPERINGS[tampering](_body(lines[index])))
    open(path, "wb").write(b"".join(lines))
    capsys.readouterr()
    again = fit(spectra[:2], MODEL, out, workers=0, resume=True, **FAST)
    assert f"1 damaged record ignored (line {index + 1})" in _one_line(capsys.readouterr().err)
    assert list(again["status"]) == ["ok", "ok"] and list(again["Teff"]) == pytest.approx(list(first["Teff"]))
    state = journal_of(out).read()
    assert state.counts == {spectra[0]: 1, spectra[1]: 1} and state.damaged == [index + 1]
    rows = sum(b'"kind":"row"' in line for line in open(path, "rb"))
    assert rows == 2 + (kind == b'"kind":"row"')  # the damaged row's spectrum fitted again, and only it


# ------------------------------------------------------------------ --save-fits files
def test_a_control_character_in_a_file_name_saves_a_plain_file_name(spectra, tmp_path):
    name = tmp_path / "a\nb\tc.fits"
    shutil.copy(spectra[0], name)
    folder = tmp_path / "sav"
    table = fit([str(name)], MODEL, tmp_path / "r.ecsv", workers=0, save_fits=str(folder), **FAST)
    assert list(table["status"]) == ["ok"] and table["id"][0] == "a\nb\tc"  # the id is the file's name
    assert os.listdir(folder) == ["a_b_c_fit.fits"]
    with fits.open(folder / "a_b_c_fit.fits") as hdul:
        assert hdul[0].header["OBJECT"] == "a\\x0ab\\x09c"


def test_a_save_fits_write_that_fails_half_way_leaves_no_file_and_is_the_machinerys_failure(
        spectra, tmp_path, monkeypatch):
    """The disk filling up in the middle of writing a fit: astropy's write stopped by ENOSPC after
    half the file (the real full disk: the next test, where a tmpfs can be mounted)."""
    real = fits.HDUList.writeto

    def half_then_full(self, name, *args, **kwargs):
        real(self, name, *args, **kwargs)
        with open(name, "r+b") as handle:
            handle.truncate(os.path.getsize(name) // 2)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), name)

    monkeypatch.setattr(fits.HDUList, "writeto", half_then_full)
    folder = tmp_path / "sav"
    table = fit(spectra[:2], MODEL, tmp_path / "r.ecsv", workers=0, save_fits=str(folder), **FAST)
    for status, spectrum in zip(table["status"], ("sim000", "sim001")):
        assert status == (f"failed: the --save-fits folder is full (No space left on device): "
                          f"{folder}/{spectrum}_fit.fits not written; make room and run again with --resume")
    assert os.listdir(folder) == []


@pytest.mark.skipif(not can_mount_tmpfs(), reason="needs unshare -rm and tmpfs (a user namespace) for a real "
                                                   "full disk")
@pytest.mark.parametrize("engine", ["native", pytest.param("gdl", marks=pytest.mark.gdl)])
def test_a_full_save_fits_disk_gives_failed_rows_no_partial_file_and_resume_completes(spectra, tmp_path, engine):
    """A real full disk: a 256 KiB tmpfs in a private mount namespace, filled up by a file; GDL's
    ULySS writes a .res too (the audit found a 0-byte one)."""
    disk, report = tmp_path / "disk", tmp_path / "report"
    disk.mkdir()
    report.mkdir()
    options = list(CLI_FAST)
    options[options.index("--engine") + 1] = engine
    options += ["--backend", "subprocess"] if engine == "gdl" else []
    command = " ".join([sys.executable, "-m", "ulyss_ann.cli", "fit", *spectra[:2], "-j", "0", "-o",
                        f"{tmp_path}/r.ecsv", "--save-fits", str(disk), *options])
    script = textwrap.dedent(f"""\
        mount -t tmpfs -o size=256k tmpfs {disk}
        dd if=/dev/zero of={disk}/filler bs=1k count=256 2>/dev/null   # no room left at all
        {command} > {report}/1.out 2> {report}/1.err; echo $? > {report}/1.rc; ls -a {disk} > {report}/1.ls
        cp {tmp_path}/r.ecsv.journal.jsonl {report}/1.journal; rm {disk}/filler
        {command} --resume > {report}/2.out 2> {report}/2.err; echo $? > {report}/2.rc; ls -a {disk} > {report}/2.ls
        """)
    subprocess.run(["unshare", "-rm", "sh", "-c", script], check=True, timeout=300, stdin=subprocess.DEVNULL)
    assert (report / "1.rc").read_text().strip() == "3", (report / "1.err").read_text()  # none fitted
    assert (report / "1.ls").read_text().split() == [".", "..", "filler"]  # no partial file, no temporary
    rows = Journal(report / "1.journal").read().rows
    statuses = [rows[path]["status"] for path in spectra[:2]]
    assert all(s.startswith("failed: the --save-fits folder is full (No space left on device)") for s in statuses)
    assert not any("internal error" in s for s in statuses)
    assert (report / "2.rc").read_text().strip() == "0", (report / "2.err").read_text()  # retried, and saved
    saved = ["sim000_fit.fits", "sim001_fit.fits"] + (["sim000.res", "sim001.res"] if engine == "gdl" else [])
    assert (report / "2.ls").read_text().split() == [".", "..", *sorted(saved)]
    assert set(Table.read(tmp_path / "r.ecsv")["status"]) == {"ok"}
