"""``dedup --write-unique``: paths from the database never write outside the folder the user named."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path, PurePath

import pytest
from support import E0, invoke_dedup, make_store, unit

from semhash.corpus import content_hash
from semhash.dedup import plan_unique
from semhash.dedup.write import _new_folder, verified_source
from semhash.errors import OutputError, UnsafePathError
from semhash.store import StoredDocument


@pytest.fixture
def three_docs_db(tmp_path: Path) -> Path:
    """Three distinct documents in ``tmp_path/docs``."""
    path = tmp_path / "w.db"
    docs = [("first text", E0, 0b0), ("second text", unit(80), 0xF0), ("third text", unit(85, 2), 0xF00)]
    make_store(path, docs, tmp_path / "docs")
    return path


def set_path(three_docs_db: Path, doc_id: int, path: str) -> None:
    """Edit a stored path by hand, as someone sharing a crafted index would."""
    with sqlite3.connect(three_docs_db) as conn:
        conn.execute("UPDATE documents SET path = ? WHERE id = ?", (path, doc_id))


def files_under(folder: Path) -> set[Path]:
    """Every file under ``folder`` but the database's own (SQLite's -wal and -shm come and go)."""
    return {p for p in folder.rglob("*") if (p.is_file() or p.is_symlink()) and not p.name.startswith("w.db")}


@pytest.mark.parametrize(
    "crafted",
    [
        "../../escape.txt",  # relative, climbing
        "escape.txt",  # relative: the old common-folder computation crashed on it
        "{docs}/sub/../../../escape.txt",  # absolute, climbing out of the output folder once laid out
        "{docs}/bad\x00name.txt",  # not a path at all
        "/",  # no file name
    ],
)
def test_write_unique_refuses_paths_that_escape(three_docs_db: Path, tmp_path: Path, crafted: str) -> None:
    set_path(three_docs_db, 2, crafted.format(docs=tmp_path / "docs"))
    out = tmp_path / "a" / "b" / "unique"
    before = files_under(tmp_path)
    code, output = invoke_dedup("--db", three_docs_db, "--radius", 0, "--write-unique", out)
    assert code == 1, output
    last = output.strip().splitlines()[-1]
    assert last.startswith("error: ") and "nothing was written" in last
    assert "Traceback" not in output
    assert files_under(tmp_path) == before  # nothing written, inside the folder or out of it
    assert not out.exists()


def test_write_unique_refuses_a_file_that_is_another_ones_folder(three_docs_db: Path, tmp_path: Path) -> None:
    set_path(three_docs_db, 2, str(tmp_path / "docs" / "doc0.txt" / "inner.txt"))
    code, output = invoke_dedup("--db", three_docs_db, "--radius", 0, "--write-unique", tmp_path / "unique")
    assert code == 1 and "both a file and a folder" in output
    assert not (tmp_path / "unique").exists()


def test_write_unique_keeps_a_foreign_absolute_path_inside(three_docs_db: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "elsewhere" / "deep" / "stolen.txt"
    set_path(three_docs_db, 2, str(foreign))  # a file that is not there: its stored text is written
    code, output = invoke_dedup("--db", three_docs_db, "--radius", 0, "--write-unique", tmp_path / "unique")
    assert code == 0, output
    written = files_under(tmp_path / "unique")
    assert {p.relative_to(tmp_path / "unique").as_posix() for p in written} == {
        "docs/doc0.txt",
        "docs/doc2.txt",
        "elsewhere/deep/stolen.txt",
    }
    assert (tmp_path / "unique" / "elsewhere" / "deep" / "stolen.txt").read_text() == "second text"
    assert not foreign.exists()


def test_write_unique_onto_a_dangling_symlink(three_docs_db: Path, tmp_path: Path) -> None:
    link = tmp_path / "out"
    link.symlink_to(tmp_path / "missing")
    code, output = invoke_dedup("--db", three_docs_db, "--write-unique", link)
    assert code == 2, output
    assert output.startswith("error: --write-unique") and "symlink to a missing target" in output
    assert len(output.strip().splitlines()) == 1
    assert not (tmp_path / "missing").exists()


def test_write_unique_under_a_file(three_docs_db: Path, tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")
    code, output = invoke_dedup("--db", three_docs_db, "--write-unique", tmp_path / "plain" / "out")
    assert code == 2, output
    assert output.startswith("error: --write-unique") and "is not a folder" in output


def test_write_unique_copies_records_and_keeps_file_times(three_docs_db: Path, tmp_path: Path) -> None:
    source = tmp_path / "docs" / "doc0.txt"
    os.utime(source, (1_000_000, 1_000_000))
    with sqlite3.connect(three_docs_db) as conn:  # document 3 becomes record 2 of a JSONL file
        conn.execute("UPDATE documents SET path = ?, record = 2 WHERE id = 3", (str(tmp_path / "docs" / "r.jsonl"),))
    code, output = invoke_dedup("--db", three_docs_db, "--radius", 0, "--write-unique", tmp_path / "unique")
    assert code == 0, output
    copy = tmp_path / "unique" / "doc0.txt"
    assert copy.read_text() == "first text" and copy.stat().st_mtime == 1_000_000
    lines = (tmp_path / "unique" / "r.jsonl.jsonl").read_text().splitlines()
    assert len(lines) == 1 and '"text": "third text"' in lines[0] and "r.jsonl#2" in lines[0]


def stored(doc_id: int, path: str, record: int = 0) -> StoredDocument:
    return StoredDocument(doc_id, path, record, f"text {doc_id}", 1, 0.0, 0.0)


def test_plan_refuses_two_documents_on_one_output(tmp_path: Path) -> None:
    docs = [stored(1, "/data/a.txt"), stored(2, "/data/b.txt.jsonl"), stored(3, "/data/b.txt", record=1)]
    with pytest.raises(UnsafePathError, match="two documents would be written to"):
        plan_unique(docs, tmp_path / "out")
    plan = plan_unique(docs[:2], tmp_path / "out")
    assert set(plan.files) == {PurePath("a.txt"), PurePath("b.txt.jsonl")}


def test_writing_never_follows_a_symlink_planted_in_the_new_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text("keep me")
    out = tmp_path / "out"
    with _new_folder(out) as folder:
        (out / "sub").symlink_to(outside)  # planted between planning and writing
        (out / "victim.txt").symlink_to(outside / "victim.txt")
        with pytest.raises(OutputError, match="could not write"):
            folder.write(PurePath("sub/new.txt"), None, "x")
        with pytest.raises(OutputError, match="could not write"):
            folder.write(PurePath("victim.txt"), None, "x")
        folder.write(PurePath("real/new.txt"), None, "fine")
    assert sorted(p.name for p in outside.iterdir()) == ["victim.txt"]
    assert (outside / "victim.txt").read_text() == "keep me"
    assert (out / "real" / "new.txt").read_text() == "fine"


def test_write_unique_never_copies_a_file_the_index_does_not_describe(three_docs_db: Path, tmp_path: Path) -> None:
    """A crafted path naming a secret file gets the stored text written, never the secret's bytes."""
    secret = tmp_path / "home" / ".ssh" / "id_rsa"
    secret.parent.mkdir(parents=True)
    secret.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nsecret\n")
    set_path(three_docs_db, 2, str(secret))
    code, output = invoke_dedup("--db", three_docs_db, "--radius", 0, "--write-unique", tmp_path / "unique")
    assert code == 0, output
    assert "wrote 3 unique documents" in output and "(1 from the text stored in the index" in output
    copies = [p for p in (tmp_path / "unique").rglob("*") if p.is_file()]
    assert all("PRIVATE KEY" not in p.read_text() for p in copies)
    assert (tmp_path / "unique" / "home" / ".ssh" / "id_rsa").read_text() == "second text"


def test_write_unique_ignores_a_hash_copied_from_a_guessable_file(three_docs_db: Path, tmp_path: Path) -> None:
    """Even with the stored hash of the file it names, a path is copied only if the stored text matches."""
    guessable = tmp_path / "etc" / "passwd"
    guessable.parent.mkdir()
    guessable.write_text("root:x:0:0:root:/root:/bin/bash")
    set_path(three_docs_db, 2, str(guessable))
    with sqlite3.connect(three_docs_db) as conn:
        conn.execute("UPDATE documents SET content_hash = ? WHERE id = 2", (content_hash(guessable.read_text()),))
    code, output = invoke_dedup("--db", three_docs_db, "--radius", 0, "--write-unique", tmp_path / "unique")
    assert code == 0, output
    assert (tmp_path / "unique" / "etc" / "passwd").read_text() == "second text"


def test_write_unique_writes_the_stored_text_of_a_file_changed_since_indexing(
    three_docs_db: Path, tmp_path: Path
) -> None:
    (tmp_path / "docs" / "doc1.txt").write_text("second text, edited after indexing")
    (tmp_path / "docs" / "doc0.txt").write_text("  first text\n")  # same text to the corpus reader: copied
    code, output = invoke_dedup("--db", three_docs_db, "--radius", 0, "--write-unique", tmp_path / "unique")
    assert code == 0, output
    assert "(1 from the text stored in the index" in output
    assert (tmp_path / "unique" / "doc1.txt").read_text() == "second text"
    assert (tmp_path / "unique" / "doc0.txt").read_text() == "  first text\n"  # byte for byte


def test_verified_source_needs_one_matching_document(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text("<html><body><p>hello there</p><script>x()</script></body></html>")
    doc = StoredDocument(1, str(page), 0, "hello there", 1, 0.0, 0.0)
    source = verified_source(doc, content_hash("hello there"))
    assert source is not None and source.data == page.read_bytes()  # markup kept: the file is copied as is
    assert verified_source(doc, content_hash("something else")) is None
    binary = tmp_path / "blob.txt"
    binary.write_bytes(b"hello there\x00")
    assert verified_source(StoredDocument(2, str(binary), 0, "hello there", 1, 0.0, 0.0), None) is None
    assert (
        verified_source(StoredDocument(3, str(tmp_path / "gone.txt"), 0, "x", 1, 0.0, 0.0), content_hash("x")) is None
    )
