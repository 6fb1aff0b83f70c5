"""A bounded fuzz pass over what a folder can hold: any bytes, under any name, in every format read.

The invariants: reading never raises (every bad file is a documented skip), never hangs (a per-example
alarm), and every file written is accounted for: read, skipped with a known kind, or passed over.
"""

from __future__ import annotations

import os
import signal
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import FAST_EPOCHS, FakeEncoder, deadline

from semhash.corpus import SUPPORTED_SUFFIXES, CorpusScan, ReadOptions, check_roots
from semhash.errors import NoDocumentsError
from semhash.ingest import IndexOptions, index_paths

KINDS = {
    "binary",
    "undecodable",
    "malformed",
    "too large",
    "no text layer",
    "encrypted",
    "needs extra",
    "not a regular file",
    "unreadable",
    "undecodable name",
    "symlink outside",
    "broken symlink",
    "alias",
}
SUFFIXES = [*SUPPORTED_SUFFIXES, ".py", ".gz", ""]
MAGIC = [b"", b"%PDF-1.7\n", b"PK\x03\x04", b"\xef\xbb\xbf", b"\xff\xfe", b"<?xml version='1.0' encoding='latin-1'?>"]

names = st.binary(min_size=1, max_size=24).map(lambda b: b.replace(b"/", b"_").replace(b"\x00", b"_"))
texts = st.one_of(
    st.binary(max_size=3000),
    st.text(max_size=500).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.text(max_size=200).map(lambda t: t.encode("latin-1", "replace")),
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20)),
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.just("text"), inner, max_size=1)),
        max_leaves=20,
    ).map(lambda v: repr(v).replace("'", '"').replace("None", "null").encode()),
    st.integers(1, 5000).map(lambda n: b"[" * n + b"]" * n),
)
contents = st.tuples(st.sampled_from(MAGIC), texts).map(lambda pair: pair[0] + pair[1])
files = st.lists(st.tuples(names, st.sampled_from(SUFFIXES), contents), min_size=1, max_size=6)


def _write(root: bytes, entries: list[tuple[bytes, str, bytes]]) -> set[bytes]:
    written = set()
    for name, suffix, data in entries:
        full = name + suffix.encode()
        if full in (b".", b"..") or full.startswith(b"."):
            continue  # hidden names are passed over by design, counted as hidden (tested elsewhere)
        try:
            with open(os.path.join(root, full), "wb") as handle:
                handle.write(data)
        except OSError:
            continue  # a name this file system refuses
        written.add(full)
    return written


pytestmark = pytest.mark.skipif(os.name != "posix" or not hasattr(signal, "SIGALRM"), reason="POSIX names")


@settings(
    max_examples=60,
    deadline=timedelta(seconds=10),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(files)
def test_reading_any_folder_never_raises_and_accounts_for_every_file(entries: list[tuple[bytes, str, bytes]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = os.fsencode(folder)
        written = _write(root, entries)
        scan = CorpusScan(check_roots([folder]), ReadOptions(max_file_bytes=2500))
        with deadline(20):
            docs = list(scan.documents())
        assert all(doc.text and doc.text == doc.text.strip() for doc in docs)
        assert {s.kind for s in scan.skipped} <= KINDS
        passed = sum(p.count for p in scan.passed_over)
        assert scan.files + len(scan.skipped) + passed == len(written)
        for item in scan.skipped:
            item.path.encode("utf-8")  # printable, storable
            assert "\n" not in item.reason and "Traceback" not in item.reason


@settings(max_examples=12, deadline=timedelta(seconds=30), suppress_health_check=[HealthCheck.too_slow])
@given(files)
def test_index_paths_on_any_folder_indexes_the_rest_or_says_none(entries: list[tuple[bytes, str, bytes]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = os.fsencode(folder)
        os.mkdir(os.path.join(root, b"docs"))
        _write(os.path.join(root, b"docs"), entries)
        Path(folder, "docs", "anchor.txt").write_text("one readable document about planets")
        options = IndexOptions(epochs=FAST_EPOCHS, device="cpu", runtime_export=False)
        with deadline(60):
            try:
                report = index_paths(Path(folder, "s.db"), [Path(folder, "docs")], options, encoder=FakeEncoder())
            except NoDocumentsError:  # pragma: no cover - the anchor is always there
                pytest.fail("the readable file was not indexed")
        assert report.added >= 1 and report.total_documents == report.added


MEMBERS = {
    ".docx": ["_rels/.rels", "word/document.xml"],
    ".pptx": ["_rels/.rels", "ppt/presentation.xml", "ppt/_rels/presentation.xml.rels", "ppt/slides/slide1.xml"],
    ".xlsx": ["[Content_Types].xml", "xl/workbook.xml", "xl/worksheets/sheet1.xml"],
    ".epub": ["META-INF/container.xml", "content.opf", "a.xhtml"],
    ".odt": ["content.xml"],
    ".odp": ["content.xml"],
}
XML_BITS = [
    b"<w:p>",
    b"</w:p>",
    b"<w:t>x</w:t>",
    b"<a:p><a:t>y</a:t></a:p>",
    b"<w:tbl><w:tr><w:tc>",
    b"</w:tc></w:tr></w:tbl>",
    b"<text:p>z</text:p>",
    b"<draw:page>",
    b'<Relationship Id="rId1" Type="x/officeDocument" Target="../../../etc/passwd"/>',
    b'<p:sldId r:id="rId1"/>',
    b'<rootfile full-path="content.opf"/>',
    b'<item id="a" href="a.xhtml"/><itemref idref="a"/>',
    b"<!DOCTYPE x [<!ENTITY e 'e'>]>",
    b"&e;",
    b"\xff\xfe",
]
xml_ish = st.lists(st.sampled_from(XML_BITS), max_size=30).map(b"".join) | st.binary(max_size=300)


@settings(max_examples=80, deadline=timedelta(seconds=10), suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(MEMBERS)), st.data())
def test_a_zip_document_of_any_content_is_read_or_skipped(suffix: str, data: st.DataObject) -> None:
    import io
    import zipfile

    from semhash.extract import SkipFile, extract

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in MEMBERS[suffix]:
            if data.draw(st.booleans(), label=f"has {name}"):
                archive.writestr(name, data.draw(xml_ish, label=name))
    buffer.seek(0)
    with deadline(20):
        try:
            extraction = extract(suffix, buffer)
        except SkipFile as exc:
            assert exc.kind in KINDS and "\n" not in exc.reason
        else:
            assert all(isinstance(r.text, str) for r in extraction.records)
