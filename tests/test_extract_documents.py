"""PDF, DOCX, PPTX, XLSX, EPUB, ODT and ODP files: text, page/slide locations, and every way they can fail.

Every fixture is written here: PDFs with fpdf2, DOCX and PPTX with python-docx and python-pptx (the ``dev``
extra), XLSX with openpyxl (the ``documents`` extra), EPUB and ODF zips by hand. Tests of a format whose
library is missing are skipped.
"""

from __future__ import annotations

import io
import sqlite3
import sys
import zipfile
from pathlib import Path

import pytest
from support import FAST_EPOCHS, FakeEncoder

import semhash.extract
from semhash.corpus import CorpusScan, ReadOptions, check_roots
from semhash.extract import SkipFile, extract
from semhash.ingest import IndexOptions, index_paths
from semhash.store import Store
from semhash.types import locations_from_json, locations_to_json, page_at

OPTS = IndexOptions(epochs=FAST_EPOCHS, device="cpu")
PAGES = ["alpha planet orbit on the first page", "beta recipe for bread on page two", "gamma bicycle chain, page three"]


def _scan(root: Path) -> tuple[CorpusScan, dict[str, object]]:
    scan = CorpusScan(check_roots([root]), ReadOptions())
    return scan, {Path(d.path).name: d for d in scan.documents()}


def _reasons(scan: CorpusScan) -> dict[str, tuple[str, str]]:
    return {Path(s.path).name: (s.kind, s.reason) for s in scan.skipped}


def make_pdf(pages: list[str], password: str | None = None) -> bytes:
    fpdf = pytest.importorskip("fpdf")
    pdf = fpdf.FPDF()
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 8, text)
        else:
            pdf.rect(20, 20, 100, 100, style="F")  # a drawing, no text: what a scan looks like to a parser
    if password is not None:
        pdf.set_encryption(owner_password="owner", user_password=password)
    return bytes(pdf.output())


# -- PDF ------------------------------------------------------------------------------------------------
def test_pdf_text_and_page_locations(tmp_path: Path) -> None:
    pytest.importorskip("pypdfium2")
    (tmp_path / "paper.pdf").write_bytes(make_pdf(PAGES))
    scan, docs = _scan(tmp_path)
    doc = docs["paper.pdf"]
    assert doc.text == "\n\n".join(PAGES)  # type: ignore[attr-defined]
    assert doc.locations == ((0, 1), (len(PAGES[0]) + 2, 2), (len(PAGES[0]) + len(PAGES[1]) + 4, 3))  # type: ignore[attr-defined]
    for number, page in enumerate(PAGES, start=1):
        offset = doc.text.index(page)  # type: ignore[attr-defined]
        assert page_at(doc.locations, offset) == number  # type: ignore[attr-defined]
        assert page_at(doc.locations, offset + len(page) - 1) == number  # type: ignore[attr-defined]
    assert scan.skipped == [] and scan.notes == []


def test_page_locations_are_stored_and_read_back(tmp_path: Path) -> None:
    pytest.importorskip("pypdfium2")
    (tmp_path / "paper.pdf").write_bytes(make_pdf(PAGES))
    (tmp_path / "note.txt").write_text("a plain note about planets")
    db = tmp_path / "s.db"
    index_paths(db, [tmp_path], OPTS, encoder=FakeEncoder())
    rows = dict(sqlite3.connect(db).execute("SELECT path, locations FROM documents"))
    assert rows[str(tmp_path / "note.txt")] is None
    stored = locations_from_json(rows[str(tmp_path / "paper.pdf")])
    assert stored is not None and [page for _, page in stored] == [1, 2, 3]
    with Store.open(db) as store:
        (pdf_id,) = [d.id for d in store.find(str(tmp_path / "paper.pdf"))]
        (txt_id,) = [d.id for d in store.find(str(tmp_path / "note.txt"))]
        found = store.document_locations([pdf_id, txt_id])
    assert list(found) == [pdf_id] and found[pdf_id] == stored
    assert page_at(found[pdf_id], 10**9) == 3


def test_page_at_and_stored_locations_edge_cases() -> None:
    assert page_at(None, 5) is None and page_at((), 0) is None
    assert page_at(((3, 1), (10, 2)), 0) == 1  # before the first boundary: the first page
    assert page_at([[0, 4], [5, 7]], 5) == 7
    assert locations_to_json(((0, 1), (9, 2))) == "[[0,1],[9,2]]" and locations_to_json(None) is None
    for damaged in ("", "not json", "[[1]]", '[["a", 2]]', "[" * 100_000, '{"a": 1}'):
        assert locations_from_json(damaged) is None


def test_pdf_without_text_encrypted_or_damaged_is_skipped_with_its_reason(tmp_path: Path) -> None:
    pytest.importorskip("pypdfium2")
    good = make_pdf(PAGES)
    (tmp_path / "scan.pdf").write_bytes(make_pdf(["", ""]))
    (tmp_path / "locked.pdf").write_bytes(make_pdf(PAGES, password="secret"))
    (tmp_path / "open-owner-only.pdf").write_bytes(make_pdf(PAGES[:1], password=""))  # no password to open
    (tmp_path / "garbage.pdf").write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 8)
    (tmp_path / "empty.pdf").write_bytes(b"")
    (tmp_path / "cut.pdf").write_bytes(good[:200])
    scan, docs = _scan(tmp_path)
    assert list(docs) == ["open-owner-only.pdf"]
    reasons = _reasons(scan)
    assert reasons["scan.pdf"] == ("no text layer", "no text layer in 2 pages (scanned? run OCR first, e.g. ocrmypdf)")
    assert reasons["locked.pdf"] == ("encrypted", "encrypted PDF (needs a password)")
    for name in ("garbage.pdf", "empty.pdf", "cut.pdf"):
        assert reasons[name] == ("malformed", "not a readable PDF (damaged, or not a PDF)"), name


def test_missing_library_is_skipped_with_the_install_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "paper.pdf").write_bytes(b"%PDF-1.4")
    (tmp_path / "sheet.xlsx").write_bytes(b"PK")
    for name in ("pypdfium2", "openpyxl"):
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed: importing it raises ImportError
    scan, docs = _scan(tmp_path)
    assert docs == {}
    hint = "needs the 'documents' extra: pip install -e \".[documents]\""
    assert _reasons(scan) == {"paper.pdf": ("needs extra", hint), "sheet.xlsx": ("needs extra", hint)}


def test_extraction_stops_at_the_character_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pypdfium2")
    monkeypatch.setattr(semhash.extract, "MAX_EXTRACTED_CHARS", 50)
    (tmp_path / "paper.pdf").write_bytes(make_pdf(PAGES))
    scan, docs = _scan(tmp_path)
    text = docs["paper.pdf"].text  # type: ignore[attr-defined]
    assert len(text) <= 50 and text.startswith(PAGES[0])
    assert [(Path(n.path).name, n.kind, n.detail) for n in scan.notes] == [("paper.pdf", "truncated", "50")]


# -- Office ---------------------------------------------------------------------------------------------
def test_docx_paragraphs_and_tables_in_order(tmp_path: Path) -> None:
    docx = pytest.importorskip("docx")
    document = docx.Document()
    document.add_heading("Bread at home", level=1)
    document.add_paragraph("Knead the dough for ten minutes.")
    table = document.add_table(rows=2, cols=3)
    table.cell(0, 0).text, table.cell(0, 1).text = "flour", "500 g"
    table.cell(1, 0).merge(table.cell(1, 2)).text = "merged row"
    document.add_paragraph("Bake in a hot oven.")
    document.save(str(tmp_path / "bread.docx"))
    _, docs = _scan(tmp_path)
    assert docs["bread.docx"].text == (  # type: ignore[attr-defined]
        "Bread at home\n\nKnead the dough for ten minutes.\n\nflour\t500 g\nmerged row\n\nBake in a hot oven."
    )
    assert docs["bread.docx"].locations is None  # type: ignore[attr-defined]


def test_docx_as_word_writes_it(tmp_path: Path) -> None:
    """Content controls and text boxes are read (once: not their fallback copy).

    Deleted text, field codes and tab stops are not.
    """
    w = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    mc = "http://schemas.openxmlformats.org/markup-compatibility/2006"
    body = (
        "<w:p><w:pPr><w:tabs><w:tab w:val='left' w:pos='720'/></w:tabs></w:pPr>"
        "<w:r><w:t>Kept</w:t></w:r><w:del><w:r><w:delText>deleted</w:delText></w:r></w:del>"
        "<w:r><w:instrText>PAGE</w:instrText></w:r><w:r><w:tab/><w:t xml:space='preserve'>after a tab</w:t></w:r>"
        "<w:r><mc:AlternateContent><mc:Choice><w:drawing><w:txbxContent><w:p><w:r><w:t>in a box</w:t></w:r></w:p>"
        "</w:txbxContent></w:drawing></mc:Choice><mc:Fallback><w:pict><w:txbxContent><w:p><w:r><w:t>in a box</w:t>"
        "</w:r></w:p></w:txbxContent></w:pict></mc:Fallback></mc:AlternateContent></w:r></w:p>"
        "<w:sdt><w:sdtContent><w:p><w:r><w:t>in a control</w:t></w:r></w:p></w:sdtContent></w:sdt>"
    )
    _zip(
        tmp_path / "word.docx",
        {
            "_rels/.rels": (
                '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                '<Relationship Id="rId1" Target="word/main.xml" '
                'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"/>'
                "</Relationships>"
            ),
            "word/main.xml": f'<w:document xmlns:w="{w}" xmlns:mc="{mc}"><w:body>{body}</w:body></w:document>',
        },
    )
    _, docs = _scan(tmp_path)
    assert docs["word.docx"].text == "Kept\tafter a tab\nin a box\n\nin a control"  # type: ignore[attr-defined]


def test_pptx_slides_are_locations(tmp_path: Path) -> None:
    pptx = pytest.importorskip("pptx")
    from pptx.util import Inches

    deck = pptx.Presentation()
    for title, body in [("Orbits", "planets go round"), ("Empty", ""), ("Brakes", "pads and rims")]:
        slide = deck.slides.add_slide(deck.slide_layouts[5])
        slide.shapes.title.text = title
        if body:
            slide.shapes.add_textbox(Inches(1), Inches(2), Inches(4), Inches(1)).text_frame.text = body
    deck.slides[2].notes_slide.notes_text_frame.text = "speaker notes here"
    deck.save(str(tmp_path / "talk.pptx"))
    _, docs = _scan(tmp_path)
    doc = docs["talk.pptx"]
    assert doc.text == "Orbits\nplanets go round\n\nEmpty\n\nBrakes\npads and rims\nspeaker notes here"  # type: ignore[attr-defined]
    assert [page for _, page in doc.locations] == [1, 2, 3]  # type: ignore[attr-defined]
    assert page_at(doc.locations, doc.text.index("pads")) == 3  # type: ignore[attr-defined]
    # Slides are read in the presentation's order, not their part names' order.
    slide_ids = deck.slides._sldIdLst
    first = next(iter(slide_ids))
    slide_ids.remove(first)
    slide_ids.append(first)
    deck.save(str(tmp_path / "talk.pptx"))
    _, docs = _scan(tmp_path)
    assert docs["talk.pptx"].text.startswith("Empty\n\nBrakes") and docs["talk.pptx"].text.endswith(
        "Orbits\nplanets go round"
    )  # type: ignore[attr-defined]


def test_xlsx_sheets_and_rows(tmp_path: Path) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Prices"
    sheet.append(["item", "price"])
    sheet.append(["tyre", 25])
    sheet.append([None, None])
    book.create_sheet("Notes").append(["check the brakes"])
    book.save(tmp_path / "shop.xlsx")
    _, docs = _scan(tmp_path)
    assert docs["shop.xlsx"].text == "Prices\nitem\tprice\ntyre\t25\n\nNotes\ncheck the brakes"  # type: ignore[attr-defined]


def test_damaged_and_locked_office_files_are_skipped(tmp_path: Path) -> None:
    pytest.importorskip("docx")
    pytest.importorskip("openpyxl")
    (tmp_path / "notzip.docx").write_bytes(b"this is not a zip file at all")
    (tmp_path / "locked.xlsx").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512)
    with zipfile.ZipFile(tmp_path / "hollow.docx", "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
    scan, docs = _scan(tmp_path)
    assert docs == {}
    reasons = _reasons(scan)
    assert reasons["notzip.docx"] == ("malformed", "not a readable DOCX (not a zip, or damaged)")
    assert reasons["locked.xlsx"][0] == "encrypted"
    assert reasons["hollow.docx"][0] == "malformed"


def test_a_zip_bomb_is_refused_before_it_inflates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(semhash.extract, "MAX_UNZIPPED_BYTES", 2**20)
    with zipfile.ZipFile(tmp_path / "bomb.odt", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("content.xml", b"<a>" + b" " * (4 * 2**20) + b"</a>")  # 4 MiB in a few KiB
    assert (tmp_path / "bomb.odt").stat().st_size < 50_000
    scan, docs = _scan(tmp_path)
    assert docs == {}
    kind, reason = _reasons(scan)["bomb.odt"]
    assert kind == "too large" and "would unpack to 4 MiB" in reason
    monkeypatch.setattr(semhash.extract, "MAX_UNZIPPED_BYTES", 8 * 2**20)
    monkeypatch.setattr(semhash.extract, "MAX_XML_PART_BYTES", 2**20)
    scan, docs = _scan(tmp_path)
    kind, reason = _reasons(scan)["bomb.odt"]
    assert kind == "too large" and reason == "ODT has a 4 MiB XML part (content.xml; at most 1 MiB are parsed)"


# -- EPUB and OpenDocument (stdlib) ---------------------------------------------------------------------
def _zip(path: Path, members: dict[str, str | bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _odf(body: str, kind: str = "text") -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><office:document-content '
        'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
        'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" '
        'xmlns:presentation="urn:oasis:names:tc:opendocument:xmlns:presentation:1.0">'
        f"<office:body><office:{kind}>{body}</office:{kind}></office:body></office:document-content>"
    )


def test_epub_chapters_in_spine_order(tmp_path: Path) -> None:
    chapter = '<html xmlns="http://www.w3.org/1999/xhtml"><head><title>{0}</title></head><body><p>{1}</p></body></html>'
    _zip(
        tmp_path / "book.epub",
        {
            "mimetype": "application/epub+zip",
            "META-INF/container.xml": (
                '<container xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
                '<rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
                "</rootfiles></container>"
            ),
            "OEBPS/content.opf": (
                '<package xmlns="http://www.idpf.org/2007/opf"><manifest>'
                '<item id="c2" href="text/two.xhtml" media-type="application/xhtml+xml"/>'
                '<item id="c1" href="text/one%20a.xhtml" media-type="application/xhtml+xml"/>'
                '</manifest><spine><itemref idref="c1"/><itemref idref="c2"/><itemref idref="gone"/></spine></package>'
            ),
            "OEBPS/text/one a.xhtml": chapter.format("One", "The first chapter."),
            "OEBPS/text/two.xhtml": chapter.format("Two", "The second chapter &amp; last."),
        },
    )
    _, docs = _scan(tmp_path)
    assert docs["book.epub"].text == "One\nThe first chapter.\n\nTwo\nThe second chapter & last."  # type: ignore[attr-defined]


def test_odt_text_and_odp_slides(tmp_path: Path) -> None:
    _zip(
        tmp_path / "letter.odt",
        {
            "content.xml": _odf(
                "<text:h>Dear reader</text:h><text:p>Two<text:s text:c='3'/>spaces,<text:tab/>a tab"
                "<text:line-break/>and a break.</text:p><text:p/><text:p>Bye <text:span>now</text:span></text:p>"
            )
        },
    )
    _zip(
        tmp_path / "deck.odp",
        {
            "content.xml": _odf(
                "".join(
                    f"<draw:page><draw:frame><draw:text-box><text:p>Slide {n}</text:p></draw:text-box></draw:frame>"
                    "</draw:page>"
                    for n in ("one", "two")
                ),
                kind="presentation",
            )
        },
    )
    _, docs = _scan(tmp_path)
    assert docs["letter.odt"].text == "Dear reader\nTwo   spaces,\ta tab\nand a break.\nBye now"  # type: ignore[attr-defined]
    assert docs["letter.odt"].locations is None  # type: ignore[attr-defined]
    deck = docs["deck.odp"]
    assert deck.text == "Slide one\n\nSlide two" and deck.locations == ((0, 1), (11, 2))  # type: ignore[attr-defined]


def test_hostile_xml_in_opendocument_is_skipped_or_read_without_recursion(tmp_path: Path) -> None:
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        "<office:document-content>&b;</office:document-content>"
    )
    _zip(tmp_path / "laughs.odt", {"content.xml": laughs})
    deep = "<text:span>" * 100_000 + "deep" + "</text:span>" * 100_000
    _zip(tmp_path / "deep.odt", {"content.xml": _odf(f"<text:p>{deep}</text:p>")})
    _zip(tmp_path / "nocontent.odt", {"mimetype": "application/vnd.oasis.opendocument.text"})
    _zip(tmp_path / "broken.epub", {"META-INF/container.xml": "<container><unclosed></container>"})
    scan, docs = _scan(tmp_path)
    assert docs["deep.odt"].text == "deep"  # type: ignore[attr-defined]
    reasons = _reasons(scan)
    assert reasons["laughs.odt"][0] == "malformed" and "entity" in reasons["laughs.odt"][1]
    assert reasons["nocontent.odt"] == ("malformed", "not a readable ODT: no content.xml")
    assert reasons["broken.epub"][0] == "malformed"


def test_extract_raises_only_skipfile_on_garbage() -> None:
    for suffix in (".pdf", ".docx", ".pptx", ".xlsx", ".epub", ".odt", ".odp"):
        for data in (b"", b"PK\x03\x04" + b"\x00" * 40, bytes(range(256))):
            try:
                extract(suffix, io.BytesIO(data))
            except SkipFile as exc:
                assert exc.kind in {"malformed", "needs extra", "too large", "encrypted", "no text layer"}
