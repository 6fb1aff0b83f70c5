"""Every file under a folder is indexed or accounted for: odd files, names, encodings and links (issues 17, 18)."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from support import FAST_EPOCHS, FakeEncoder, deadline
from typer.testing import CliRunner

from semhash.cli import app
from semhash.corpus import CorpusScan, ReadOptions, check_roots, read_documents
from semhash.errors import NoDocumentsError
from semhash.ingest import IndexOptions, index_paths

OPTS = IndexOptions(epochs=FAST_EPOCHS, device="cpu")


def _scan(root: Path, **options: object) -> tuple[CorpusScan, dict[str, str]]:
    scan = CorpusScan(check_roots([root]), ReadOptions(**options))  # type: ignore[arg-type]
    with deadline(20):
        docs = {os.path.relpath(d.path, root): d.text for d in scan.documents()}
    return scan, docs


def _reasons(scan: CorpusScan, root: Path) -> dict[str, tuple[str, str]]:
    return {os.path.relpath(s.path, root): (s.kind, s.reason) for s in scan.skipped}


# -- 1. every file accounted for ------------------------------------------------------------------------
def test_unsupported_and_hidden_files_are_counted_by_extension(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("kept")
    (tmp_path / "changelog.gz").write_bytes(b"\x1f\x8b\x08")
    (tmp_path / "old.gz").write_bytes(b"\x1f\x8b\x08")
    (tmp_path / "picture.png").write_bytes(b"\x89PNG")
    (tmp_path / "copyright").write_text("no extension")
    (tmp_path / ".hidden.txt").write_text("hidden")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("x")
    scan, docs = _scan(tmp_path)
    assert docs == {"a.txt": "kept"}
    counts = {(p.reason, p.extension): p.count for p in scan.passed_over}
    assert counts == {
        ("unsupported type", ".gz"): 2,
        ("unsupported type", ".png"): 1,
        ("unsupported type", "(none)"): 1,
        ("hidden", ".txt"): 1,
        ("hidden", "(folder)"): 1,
    }
    example = {p.extension: p.example for p in scan.passed_over}
    assert example[".gz"] == str(tmp_path / "changelog.gz")


def test_overlapping_paths_are_walked_and_counted_once(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("once")
    (tmp_path / "sub" / "b.gz").write_bytes(b"\x1f\x8b")
    scan = CorpusScan(check_roots([tmp_path / "sub", tmp_path, tmp_path / "sub" / "a.txt", tmp_path]), ReadOptions())
    assert [d.text for d in scan.documents()] == ["once"]
    assert [(p.extension, p.count) for p in scan.passed_over] == [(".gz", 1)]


def test_a_folder_of_unreadable_files_says_what_it_holds(tmp_path: Path) -> None:
    (tmp_path / "paper.pdf").write_bytes(b"%PDF-1.4 not really")
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    with pytest.raises(NoDocumentsError) as caught:
        index_paths(tmp_path / "s.db", [tmp_path], OPTS, encoder=FakeEncoder())
    message = str(caught.value)
    assert "skipped 1 file (1 malformed)" in message  # the PDF: read, and found damaged
    assert "1 file of unsupported types (.jpg 1)" in message
    assert [s.reason for s in caught.value.skipped] == ["not a readable PDF (damaged, or not a PDF)"]
    assert not (tmp_path / "s.db").exists()


def test_index_summary_and_verbose_list_every_reason(tmp_path: Path, patch_encoder: FakeEncoder) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("a note about planets")
    (docs / "b.bin.txt").write_bytes(b"\x00\x01")
    (docs / "c.gz").write_bytes(b"\x1f\x8b")
    (docs / "d.html").write_bytes(b'<meta charset="iso-8859-1"><p>caf\xe9 cr\xe8me</p>')
    result = CliRunner().invoke(app, ["index", str(docs), "--db", str(tmp_path / "s.db"), "--epochs", "2"])
    assert result.exit_code == 0, result.output
    assert "skipped 1 file (1 binary), 0 empty documents; 1 file of unsupported types (.gz 1)" in result.output
    assert "1 file decoded from another encoding than UTF-8 (--verbose lists them)" in result.output
    result = CliRunner().invoke(app, ["index", str(docs), "--db", str(tmp_path / "s.db"), "-v"])
    assert result.exit_code == 0, result.output
    assert f"{docs / 'b.bin.txt'}: binary file" in result.output
    assert f"1 unsupported type .gz, e.g. {docs / 'c.gz'}" in result.output
    assert f"{docs / 'd.html'}: decoded as cp1252" in result.output
    result = CliRunner().invoke(app, ["index", str(docs), "--db", str(tmp_path / "s.db"), "--json"])
    report = json.loads(result.output)
    assert report["skipped_files"] == [{"path": str(docs / "b.bin.txt"), "reason": "binary file", "kind": "binary"}]
    assert report["passed_over"][0]["extension"] == ".gz" and report["files_read"] == 2


# -- 3. encodings ---------------------------------------------------------------------------------------
def test_declared_bom_and_detected_encodings_are_honoured_per_file(tmp_path: Path) -> None:
    latin = "Le café de la crème brûlée, à côté de la fenêtre"
    page = f'<html><head><meta charset="ISO-8859-1"></head><p>{latin}</p>'
    (tmp_path / "meta.html").write_bytes(page.encode("latin-1"))
    (tmp_path / "equiv.htm").write_bytes(
        b'<meta http-equiv="Content-Type" content="text/html; charset=windows-1252"><p>\x93quoted\x94 \x80 5</p>'
    )
    (tmp_path / "decl.html").write_bytes(
        '<?xml version="1.0" encoding="iso-8859-15"?><html><p>€ 10</p></html>'.encode("iso-8859-15")
    )
    (tmp_path / "utf16.txt").write_bytes("héllo wörld".encode("utf-16"))  # with its BOM
    (tmp_path / "utf8bom.md").write_bytes("\ufeffnaïve".encode())
    (tmp_path / "latin.txt").write_bytes(latin.encode("latin-1"))
    (tmp_path / "lies.html").write_bytes('<meta charset="utf-8"><p>déjà vu, à la carte</p>'.encode("latin-1"))
    (tmp_path / "ascii.html").write_bytes(b'<meta charset="iso-8859-1"><p>plain ascii</p>')  # nothing to note
    scan, docs = _scan(tmp_path)
    assert docs == {
        "meta.html": latin,
        "equiv.htm": "\u201cquoted\u201d € 5",
        "decl.html": "€ 10",
        "utf16.txt": "héllo wörld",
        "utf8bom.md": "naïve",
        "latin.txt": latin,
        "lies.html": "déjà vu, à la carte",
        "ascii.html": "plain ascii",
    }
    assert scan.skipped == []
    encodings = {os.path.relpath(n.path, tmp_path): n.detail for n in scan.notes if n.kind == "encoding"}
    assert encodings == {
        "meta.html": "cp1252",
        "equiv.htm": "cp1252",
        "decl.html": "iso8859-15",
        "utf16.txt": "utf-16-le",
        "latin.txt": "cp1252",
        "lies.html": "cp1252",
    }


def test_the_encoding_is_stored_with_the_document(tmp_path: Path) -> None:
    (tmp_path / "page.html").write_bytes(b'<meta charset="latin1"><p>Gr\xfc\xdfe aus K\xf6ln</p>')
    (tmp_path / "plain.txt").write_text("plain")
    index_paths(tmp_path / "s.db", [tmp_path], OPTS, encoder=FakeEncoder())
    rows = sqlite3.connect(tmp_path / "s.db").execute("SELECT path, text, encoding FROM documents ORDER BY path")
    assert [(Path(p).name, t, e) for p, t, e in rows] == [
        ("page.html", "Grüße aus Köln", "cp1252"),
        ("plain.txt", "plain", "utf-8"),
    ]


# -- 4. symlinks ----------------------------------------------------------------------------------------
def test_a_symlink_inside_the_folder_is_an_alias_not_a_second_document(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    (root / "real" / "a.txt").write_text("the one text")
    (root / "link.txt").symlink_to(root / "real" / "a.txt")
    (root / "linkdir").symlink_to(root / "real")
    scan, docs = _scan(root)
    assert docs == {"real/a.txt": "the one text"}
    reasons = _reasons(scan, root)
    assert reasons["link.txt"][0] == "alias" and str(root / "real" / "a.txt") in reasons["link.txt"][1]
    assert reasons["linkdir"][0] == "alias"


def test_a_symlink_outside_the_folder_is_followed_only_when_asked(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "secret.txt").write_text("outside text")
    (outside / "sub" / "deep.txt").write_text("deep outside text")
    (outside / "sub" / "loop").symlink_to(outside / "sub")  # a loop: walked once
    root = tmp_path / "root"
    root.mkdir()
    (root / "mine.txt").write_text("inside")
    (root / "out.txt").symlink_to(outside / "secret.txt")
    (root / "again.txt").symlink_to(outside / "secret.txt")
    (root / "outdir").symlink_to(outside / "sub")
    (root / "dangling.txt").symlink_to(tmp_path / "nothing-here.txt")
    (root / "script.js").symlink_to(outside / "secret.txt")  # not a type read: counted as such, not as a link
    scan, docs = _scan(root)
    assert docs == {"mine.txt": "inside"}
    assert [(p.reason, p.extension) for p in scan.passed_over] == [("unsupported type", ".js")]
    reasons = _reasons(scan, root)
    assert {k: v[0] for k, v in reasons.items()} == {
        "again.txt": "symlink outside",
        "dangling.txt": "broken symlink",
        "out.txt": "symlink outside",
        "outdir": "symlink outside",
    }
    assert "--follow-symlinks" in reasons["out.txt"][1]

    scan, docs = _scan(root, follow_symlinks=True)
    assert docs == {"mine.txt": "inside", "again.txt": "outside text", "outdir/deep.txt": "deep outside text"}
    reasons = _reasons(scan, root)
    assert reasons["out.txt"][0] == "alias"  # the same real file as again.txt, read once
    assert reasons["outdir/loop"][0] == "alias"  # the loop back to a folder already walked


def test_index_with_a_symlink_stores_one_document(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("the one text")
    (tmp_path / "b.txt").symlink_to(tmp_path / "a.txt")
    report = index_paths(tmp_path / "s.db", [tmp_path], OPTS, encoder=FakeEncoder())
    assert report.added == 1 and report.total_documents == 1
    assert [s.kind for s in report.skipped_files] == ["alias"]


# -- 5. only regular files, read with a cap -------------------------------------------------------------
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_does_not_hang_and_devices_are_not_read(tmp_path: Path) -> None:
    (tmp_path / "ok.txt").write_text("fine")
    os.mkfifo(tmp_path / "fifo.txt")
    (tmp_path / "zero.txt").symlink_to("/dev/zero")
    (tmp_path / "random.txt").symlink_to("/dev/urandom")
    scan, docs = _scan(tmp_path)  # hung on the FIFO before
    assert docs == {"ok.txt": "fine"}
    assert _reasons(scan, tmp_path)["fifo.txt"] == ("not a regular file", "not a regular file (a FIFO)")
    scan, docs = _scan(tmp_path, follow_symlinks=True)
    assert docs == {"ok.txt": "fine"}
    reasons = _reasons(scan, tmp_path)
    assert reasons == {
        "fifo.txt": ("not a regular file", "not a regular file (a FIFO)"),
        "random.txt": ("not a regular file", "not a regular file (a character device)"),
        "zero.txt": ("not a regular file", "not a regular file (a character device)"),
    }
    # Not followed (the default): links out of the folder are skipped before anything is opened.
    scan, _ = _scan(tmp_path)
    assert _reasons(scan, tmp_path)["zero.txt"][0] == "symlink outside"
    # And through index_paths: the rest is indexed.
    with deadline(60):
        report = index_paths(tmp_path / "s.db", [tmp_path], OPTS, encoder=FakeEncoder())
    assert report.added == 1 and len(report.skipped_files) == 3


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_given_as_a_path_is_skipped(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo.txt")
    scan = CorpusScan(check_roots([tmp_path / "fifo.txt"]), ReadOptions())
    with deadline(20):
        assert list(scan.documents()) == []
    assert [s.kind for s in scan.skipped] == ["not a regular file"]


def test_files_over_the_cap_are_skipped_as_too_large(tmp_path: Path) -> None:
    (tmp_path / "small.txt").write_text("x" * 1000)
    (tmp_path / "big.txt").write_text("y" * 3000)
    (tmp_path / "big.pdf").write_bytes(b"%PDF" + b"0" * 3000)
    scan, docs = _scan(tmp_path, max_file_bytes=2000)
    assert list(docs) == ["small.txt"]
    reasons = _reasons(scan, tmp_path)
    assert reasons["big.txt"][0] == reasons["big.pdf"][0] == "too large"
    assert "--max-file-mb" in reasons["big.txt"][1]
    # A file that grows past the cap between the scan and the re-read is not read whole either.
    (tmp_path / "small.txt").write_text("x" * 5000)
    assert list(read_documents({str(tmp_path / "small.txt"): {0}}, ReadOptions(max_file_bytes=2000))) == []


def test_max_file_mb_and_follow_symlinks_options(
    tmp_path: Path, patch_encoder: FakeEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("a" * 2000)
    (tmp_path / "docs" / "b.txt").write_text("b b b")
    (tmp_path / "elsewhere.txt").write_text("linked from elsewhere")
    (tmp_path / "docs" / "link.txt").symlink_to(tmp_path / "elsewhere.txt")
    args = ["index", str(tmp_path / "docs"), "--db", str(tmp_path / "s.db"), "-v"]
    result = CliRunner().invoke(app, [*args, "--max-file-mb", "0.001"])
    assert result.exit_code == 0, result.output
    assert "skipped 2 files (1 symlink outside, 1 too large)" in result.output
    assert "1 added" in result.output
    monkeypatch.setenv("SEMHASH_MAX_FILE_MB", "0.001")
    result = CliRunner().invoke(app, [*args, "--follow-symlinks"])
    assert result.exit_code == 0, result.output
    assert "skipped 1 file (1 too large)" in result.output and "1 added" in result.output


# -- 6. a file name that is not UTF-8 -------------------------------------------------------------------
@pytest.mark.skipif(os.name != "posix", reason="POSIX file names are bytes")
def test_a_name_that_is_not_utf8_is_skipped_and_the_rest_indexed(tmp_path: Path) -> None:
    root = os.fsencode(tmp_path / "docs")
    os.mkdir(root)
    try:
        with open(os.path.join(root, b"bad\xff\xfename.txt"), "wb") as handle:
            handle.write(b"text under an odd name")
        os.mkdir(os.path.join(root, b"dir\xff"))
        with open(os.path.join(root, b"dir\xff", b"inner.txt"), "wb") as handle:
            handle.write(b"text in an odd folder")
    except OSError:
        pytest.skip("this file system refuses names that are not UTF-8")
    (tmp_path / "docs" / "good.txt").write_text("a normal text about planets")
    (tmp_path / "good.txt").write_text("another normal text, about moons")
    db = tmp_path / "s.db"
    report = index_paths(db, [tmp_path / "docs"], OPTS, encoder=FakeEncoder())
    assert report.added == 1 and report.total_documents == 1
    skipped = {s.path: (s.kind, s.reason) for s in report.skipped_files}
    assert skipped == {
        str(tmp_path / "docs" / "bad\\xff\\xfename.txt"): (
            "undecodable name",
            "file name is not valid UTF-8: rename it to index it",
        ),
        str(tmp_path / "docs" / "dir\\xff"): (
            "undecodable name",
            "folder name is not valid UTF-8: rename it to index it",
        ),
    }
    json.dumps([s.path for s in report.skipped_files], ensure_ascii=False).encode("utf-8")  # printable
    again = index_paths(db, [tmp_path / "docs"], OPTS, encoder=FakeEncoder())
    assert again.unchanged == 1 and again.removed == 0
    # Given by name (a file, or a folder whose own path is odd): skipped the same way, the rest indexed.
    odd = os.fsdecode(os.path.join(root, b"bad\xff\xfename.txt"))
    report = index_paths(
        db, [odd, os.fsdecode(os.path.join(root, b"dir\xff")), tmp_path / "good.txt"], OPTS, FakeEncoder()
    )
    assert report.added == 1 and [s.kind for s in report.skipped_files] == ["undecodable name"] * 2


# -- 7. JSON nested too deeply --------------------------------------------------------------------------
def test_json_nested_100000_deep_is_skipped_with_a_reason(tmp_path: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    (tmp_path / "deep.json").write_text(deep)
    (tmp_path / "deep.jsonl").write_text('{"text": "fine"}\n' + deep + "\n")
    (tmp_path / "field.jsonl").write_text('{"text": ' + deep + "}\n")
    (tmp_path / "ok.jsonl").write_text('{"text": "a record"}\n')
    scan, docs = _scan(tmp_path)
    assert docs == {"ok.jsonl": "a record"}
    reasons = _reasons(scan, tmp_path)
    assert reasons == {
        "deep.json": ("malformed", "invalid JSON: nested too deeply"),
        "deep.jsonl": ("malformed", "invalid JSON on line 2: nested too deeply"),
        "field.jsonl": ("malformed", "invalid JSON on line 1: nested too deeply"),
    }
