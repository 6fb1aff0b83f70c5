"""Reading documents out of folders and files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from semhash.corpus import CorpusScan, ReadOptions, check_roots, content_hash, html_to_text, read_documents
from semhash.errors import CorpusError


def _scan(root: Path, **options: object) -> tuple[CorpusScan, list]:
    scan = CorpusScan(check_roots([root]), ReadOptions(**options))  # type: ignore[arg-type]
    return scan, list(scan.documents())


def test_reads_every_supported_format(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("plain text")
    (tmp_path / "b.md").write_text("# Markdown\nbody")
    (tmp_path / "c.rst").write_text("Title\n=====\nrest")
    (tmp_path / "d.html").write_text(
        "<html><head><style>p{}</style></head><body><p>Seen</p><script>x()</script></body>"
    )
    (tmp_path / "e.jsonl").write_text('{"text": "first"}\n\n{"text": "second"}\n')
    (tmp_path / "f.json").write_text(json.dumps([{"text": "j1"}, {"text": "j2"}]))
    (tmp_path / "g.csv").write_text('id,text\n1,row one\n2,"row, two"\n')
    (tmp_path / "ignored.py").write_text("print('not a document')")
    scan, docs = _scan(tmp_path)
    got = {(Path(d.path).name, d.record): d.text for d in docs}
    assert got == {
        ("a.txt", 0): "plain text",
        ("b.md", 0): "# Markdown\nbody",
        ("c.rst", 0): "Title\n=====\nrest",
        ("d.html", 0): "Seen",
        ("e.jsonl", 1): "first",
        ("e.jsonl", 3): "second",
        ("f.json", 1): "j1",
        ("f.json", 2): "j2",
        ("g.csv", 1): "row one",
        ("g.csv", 2): "row, two",
    }
    assert scan.skipped == []
    assert all(len(d.content_hash) == 64 for d in docs)


def test_text_field_and_column_options(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"body": "from body"}\n')
    (tmp_path / "b.csv").write_text("title,content\nx,from content\n")
    _, docs = _scan(tmp_path, text_field="body", text_column="content")
    assert sorted(d.text for d in docs) == ["from body", "from content"]


def test_binary_undecodable_and_malformed_files_are_skipped_with_reasons(tmp_path: Path) -> None:
    (tmp_path / "ok.txt").write_text("fine")
    (tmp_path / "bin.txt").write_bytes(b"\x00\x01\x02 data")
    (tmp_path / "noise.txt").write_bytes(bytes(range(128, 256)) * 4)  # no encoding makes text of it
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    (tmp_path / "nofield.jsonl").write_text('{"other": 1}\n')
    (tmp_path / "nocol.csv").write_text("a,b\n1,2\n")
    (tmp_path / "empty.txt").write_text("   \n")
    scan, docs = _scan(tmp_path)
    assert [Path(d.path).name for d in docs] == ["ok.txt"]
    reasons = {Path(s.path).name: s.reason for s in scan.skipped}
    assert reasons["bin.txt"] == "binary file"
    kinds = {Path(s.path).name: s.kind for s in scan.skipped}
    assert kinds == {
        "bin.txt": "binary",
        "noise.txt": "undecodable",
        "bad.jsonl": "malformed",
        "nofield.jsonl": "malformed",
        "nocol.csv": "malformed",
    }
    assert "not UTF-8 (byte 0) and no other encoding fits" in reasons["noise.txt"]
    assert "invalid JSON on line 1" in reasons["bad.jsonl"]
    assert "--text-field" in reasons["nofield.jsonl"]
    assert "--text-column" in reasons["nocol.csv"]
    assert scan.empty == 1


def test_include_exclude_globs_and_hidden_folders(tmp_path: Path) -> None:
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "a.txt").write_text("a")
    (tmp_path / "keep" / "b.md").write_text("b")
    (tmp_path / "drafts").mkdir()
    (tmp_path / "drafts" / "c.txt").write_text("c")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "d.txt").write_text("d")
    _, docs = _scan(tmp_path, include=["*.txt"], exclude=["drafts/*"])
    assert [Path(d.path).name for d in docs] == ["a.txt"]
    _, docs = _scan(tmp_path)
    assert sorted(Path(d.path).name for d in docs) == ["a.txt", "b.md", "c.txt"]


def test_a_file_can_be_a_root(tmp_path: Path) -> None:
    (tmp_path / "one.txt").write_text("just this")
    (tmp_path / "two.txt").write_text("not this")
    scan = CorpusScan(check_roots([tmp_path / "one.txt"]), ReadOptions())
    assert [d.text for d in scan.documents()] == ["just this"]


def test_missing_root_is_a_corpus_error(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="no such file or folder"):
        check_roots([tmp_path / "nope"])


def test_html_keeps_title_and_blocks() -> None:
    text = html_to_text("<title>T</title><body><h1>Head</h1><p>One &amp; two</p><noscript>no</noscript></body>")
    assert text == "T\nHead\nOne & two"


def test_entries_keep_no_text_and_read_documents_reads_the_wanted_ones_again(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("  first file  ")
    (tmp_path / "b.jsonl").write_text('{"text": "one"}\n{"text": ""}\n{"text": "three"}\n')
    (tmp_path / "c.txt").write_text("gone soon")
    _, docs = _scan(tmp_path)
    entries = list(CorpusScan(check_roots([tmp_path]), ReadOptions()).entries())
    assert [(e.path, e.record, e.content_hash, e.n_chars) for e in entries] == [
        (d.path, d.record, d.content_hash, len(d.text)) for d in docs
    ]
    assert not any(hasattr(e, "text") for e in entries)
    b, c = str(tmp_path / "b.jsonl"), str(tmp_path / "c.txt")
    again = list(read_documents({b: {3}, str(tmp_path / "a.txt"): {0}}, ReadOptions()))
    assert [(Path(d.path).name, d.record, d.text) for d in again] == [
        ("b.jsonl", 3, "three"),
        ("a.txt", 0, "first file"),
    ]
    # Changed since the scan: read as it is now, with its own hash; gone: nothing, no error.
    (tmp_path / "b.jsonl").write_text('{"text": "one"}\n{"text": ""}\n{"text": "three, edited"}\n')
    (tmp_path / "c.txt").unlink()
    again = list(read_documents({b: {3}, c: {0}}, ReadOptions()))
    assert [d.text for d in again] == ["three, edited"]
    assert again[0].content_hash == content_hash("three, edited")
