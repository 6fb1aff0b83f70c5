"""DOCX and PPTX text with the stdlib: their XML parts streamed through expat, no library, no tree.

Chosen over python-docx and python-pptx on measured quality, speed and size
(``benchmarks/bench_office_extractors.py``): the same words on the same files, faster, in bounded memory
(no part is held as a tree, and nesting depth costs nothing), and without the 45 MiB those two bring
(lxml, Pillow, XlsxWriter).

DOCX: the main document part (found through ``_rels/.rels``), body paragraphs one per block and tables one
row per line (cells joined by tabs); text in text boxes and content controls included, deleted text
(``w:delText``), field codes and the fallback copy of alternate content (``mc:Fallback``) left out.
PPTX: slides in presentation order (``ppt/presentation.xml``'s slide list through its relationships),
each slide's shapes in document order (a paragraph a line, a table a row a line), then its notes (the notes
slide's body placeholder); each slide's start is recorded as a location (slide numbers from 1).
"""

from __future__ import annotations

import posixpath
import zipfile
from typing import BinaryIO

from semhash.extract import MALFORMED, Extraction, SkipFile
from semhash.extract.build import PagedText
from semhash.extract.zips import open_zip, parse_xml, read_member, xml_parser

_W = {
    "http://schemas.openxmlformats.org/wordprocessingml/2006/main",
    "http://purl.oclc.org/ooxml/wordprocessingml/main",
}
_A = {"http://schemas.openxmlformats.org/drawingml/2006/main", "http://purl.oclc.org/ooxml/drawingml/main"}
_P = {"http://schemas.openxmlformats.org/presentationml/2006/main", "http://purl.oclc.org/ooxml/presentationml/main"}
_R = (
    "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
    "http://purl.oclc.org/ooxml/officeDocument/relationships",
)
_MC = "http://schemas.openxmlformats.org/markup-compatibility/2006"


def _split(name: str) -> tuple[str, str]:
    uri, _, local = name.rpartition(" ")
    return uri, local


class _Blocks:
    """Paragraph and table text from a stream of OOXML events (WordprocessingML or DrawingML names).

    A paragraph ends a line; a table cell's paragraphs are joined by spaces, its cells by tabs, its rows
    by newlines; a nested table flattens into its cell. ``done`` receives each finished top-level block.
    """

    def __init__(self, namespaces: set[str], done: list[str]) -> None:
        self.ns = namespaces
        self.done = done
        self.buffers: list[list[str]] = [[]]  # the top-level text, then one per open table cell
        self.tables: list[tuple[list[str], list[str]]] = []  # (rows, cells of the current row)
        self.paragraphs = 0
        self.in_text = False
        self.skip = 0  # depth inside mc:Fallback (a copy of the mc:Choice) or w:tabs (tab stops, not text)

    def start(self, name: str, attrs: dict[str, str]) -> None:
        uri, local = _split(name)
        if (uri == _MC and local == "Fallback") or (uri in self.ns and local == "tabs"):  # tabs: tab stops
            self.skip += 1
        if self.skip or uri not in self.ns:
            return
        if local == "t":
            self.in_text = True
        elif local == "p":
            if self.paragraphs:  # a paragraph inside a paragraph (a text box): its own line
                self.buffers[-1].append("\n")
            self.paragraphs += 1
        elif local == "tab":
            self.buffers[-1].append(" " if self.tables else "\t")
        elif local in ("br", "cr"):
            self.buffers[-1].append(" " if self.tables else "\n")
        elif local == "tbl":
            self.tables.append(([], []))
        elif local == "tc":
            self.buffers.append([])

    def end(self, name: str) -> None:
        uri, local = _split(name)
        if (uri == _MC and local == "Fallback") or (uri in self.ns and local == "tabs"):
            self.skip -= 1
            return
        if self.skip or uri not in self.ns:
            return
        if local == "t":
            self.in_text = False
        elif local == "p":
            self.paragraphs -= 1
            if self.tables or self.paragraphs:
                self.buffers[-1].append("\n")
            else:
                self.flush()
        elif local == "tc" and self.tables and len(self.buffers) > 1:
            self.tables[-1][1].append(" ".join("".join(self.buffers.pop()).split()))
        elif local == "tr" and self.tables:
            rows, cells = self.tables[-1]
            row = "\t".join(c for c in cells if c)
            if row:
                rows.append(row)
            cells.clear()
        elif local == "tbl" and self.tables:
            rows, _ = self.tables.pop()
            if self.tables or self.paragraphs:  # nested: flattened into where it sits
                self.buffers[-1].append(" ".join(" ".join(rows).split()) + "\n")
            else:
                self.buffers[-1].append("\n".join(rows))
                self.flush()

    def data(self, chars: str) -> None:
        if self.in_text and not self.skip:
            self.buffers[-1].append(chars)

    def flush(self) -> None:
        text = "".join(self.buffers[0]).strip()
        self.buffers[0].clear()
        if text:
            self.done.append(text)


def _stream(data: bytes, namespaces: set[str], what: str) -> list[str]:
    blocks: list[str] = []
    reader = _Blocks(namespaces, blocks)
    parser = xml_parser()
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.data
    parse_xml(parser, data, what)
    reader.flush()
    return blocks


def _relationships(archive: zipfile.ZipFile, part: str, what: str) -> dict[str, tuple[str, str]]:
    """``{id: (type, member name)}`` of a part's relationships (targets resolved against the part's folder)."""
    folder, name = posixpath.split(part)
    rels = posixpath.join(folder, "_rels", name + ".rels")
    if rels not in archive.namelist():
        return {}
    found: dict[str, tuple[str, str]] = {}

    def start(element: str, attrs: dict[str, str]) -> None:
        if _split(element)[1] == "Relationship" and "Id" in attrs and "Target" in attrs:
            if attrs.get("TargetMode") == "External":
                return
            target = attrs["Target"]
            member = (
                target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join(folder, target))
            )
            found[attrs["Id"]] = (attrs.get("Type", ""), member)

    parser = xml_parser()
    parser.StartElementHandler = start
    parse_xml(parser, read_member(archive, rels, what), what)
    return found


def _main_part(archive: zipfile.ZipFile, fallback: str, what: str) -> str:
    for kind, member in _relationships(archive, "", what).values():
        if kind.endswith("/officeDocument"):
            return member
    return fallback


def read_docx(source: BinaryIO) -> Extraction:
    """Text of a ``.docx``: one record, blocks (paragraphs, tables) separated by blank lines."""
    with open_zip(source, "DOCX") as archive:
        data = read_member(archive, _main_part(archive, "word/document.xml", "DOCX"), "DOCX")
    text = PagedText()
    for block in _stream(data, _W, "DOCX"):
        if not text.add(block):
            break
    return text.extraction(numbered=False)


def read_pptx(source: BinaryIO) -> Extraction:
    """Text of a ``.pptx``: one record, a slide per piece, slide numbers as locations."""
    text = PagedText()
    with open_zip(source, "PPTX") as archive:
        presentation = _main_part(archive, "ppt/presentation.xml", "PPTX")
        rels = _relationships(archive, presentation, "PPTX")
        order: list[str] = []

        def start(element: str, attrs: dict[str, str]) -> None:
            uri, local = _split(element)
            if local == "sldId" and uri in _P:
                rid = next((attrs[f"{r} id"] for r in _R if f"{r} id" in attrs), None)
                if rid in rels:
                    order.append(rels[rid][1])

        parser = xml_parser()
        parser.StartElementHandler = start
        parse_xml(parser, read_member(archive, presentation, "PPTX"), "PPTX")
        if not order and presentation not in archive.namelist():
            raise SkipFile(MALFORMED, "not a readable PPTX: no presentation part")
        for number, slide in enumerate(order, start=1):
            parts = _stream(read_member(archive, slide, "PPTX"), _A, "PPTX")
            notes = [m for kind, m in _relationships(archive, slide, "PPTX").values() if kind.endswith("/notesSlide")]
            if notes and notes[0] in archive.namelist():
                parts += _notes_body(read_member(archive, notes[0], "PPTX"))
            if not text.add("\n".join(parts), number):
                break
    return text.extraction()


def _notes_body(data: bytes) -> list[str]:
    """The speaker notes: the text of the notes slide's body placeholder (not its slide image or number)."""
    shapes: list[tuple[bool, list[str]]] = []  # per open p:sp: (is the body placeholder, its blocks)
    kept: list[str] = []
    inner = _Blocks(_A, [])

    def start(element: str, attrs: dict[str, str]) -> None:
        uri, local = _split(element)
        if uri in _P and local == "sp":
            shapes.append((False, []))
            inner.done = shapes[-1][1]
        elif uri in _P and local == "ph" and shapes and attrs.get("type") == "body":
            shapes[-1] = (True, shapes[-1][1])
        inner.start(element, attrs)

    def end(element: str) -> None:
        inner.end(element)
        uri, local = _split(element)
        if uri in _P and local == "sp" and shapes:
            inner.flush()
            is_body, blocks = shapes.pop()
            if is_body:
                kept.extend(blocks)

    parser = xml_parser()
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = inner.data
    parse_xml(parser, data, "PPTX")
    return kept
