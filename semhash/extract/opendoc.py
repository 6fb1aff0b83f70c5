"""EPUB and OpenDocument (ODT, ODP) text with the stdlib: they are zips of XHTML and XML.

ODT/ODP: ``content.xml`` streamed through expat (no tree, so nesting depth costs nothing; entity
declarations refused, external entities never fetched): paragraphs and headings one per line, ``text:s``
/ ``text:tab`` / ``text:line-break`` as spaces, tabs and newlines; an ODP's ``draw:page`` elements are its
slides, each slide's start recorded as a location. EPUB: the chapters in spine order (``META-INF/container.xml``
-> the OPF package -> its spine), each through :func:`~semhash.extract.html.html_to_text`.
Sizes are checked before inflating (:func:`~semhash.extract.zips.open_zip`); text stops at
:data:`~semhash.extract.MAX_EXTRACTED_CHARS`.
"""

from __future__ import annotations

import posixpath
from typing import BinaryIO
from urllib.parse import unquote

from semhash.extract import MALFORMED, Extraction, SkipFile
from semhash.extract.build import PagedText
from semhash.extract.html import html_to_text
from semhash.extract.text import decode
from semhash.extract.zips import open_zip, parse_xml, read_member, xml_parser

_TEXT_NS = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
_DRAW_NS = "urn:oasis:names:tc:opendocument:xmlns:drawing:1.0"
_BLOCKS = {f"{_TEXT_NS} p", f"{_TEXT_NS} h"}
_SLIDE = f"{_DRAW_NS} page"


def read_odf(suffix: str, source: BinaryIO) -> Extraction:
    """Text of an ``.odt`` (one record) or ``.odp`` (one record, slide numbers as locations)."""
    what = suffix[1:].upper()
    with open_zip(source, what) as archive:
        content = read_member(archive, "content.xml", what)
    text = PagedText()
    slides = suffix == ".odp"
    state = {"slide": 0, "depth": 0}
    lines: list[str] = []  # the current slide's (or the whole document's) finished lines
    line: list[str] = []

    def flush_line() -> None:
        if line:
            lines.append("".join(line))
            line.clear()

    def flush_slide() -> None:
        flush_line()
        text.add("\n".join(lines), state["slide"] if slides else None)
        lines.clear()

    def start(name: str, attrs: dict[str, str]) -> None:
        if name == _SLIDE:
            flush_slide()
            state["slide"] += 1
        elif name in _BLOCKS:
            flush_line()
            state["depth"] += 1
        elif name == f"{_TEXT_NS} s":
            count = attrs.get(f"{_TEXT_NS} c", "1")
            line.append(" " * min(int(count), 100) if count.isdigit() else " ")
        elif name == f"{_TEXT_NS} tab":
            line.append("\t")
        elif name == f"{_TEXT_NS} line-break":
            line.append("\n")

    def end(name: str) -> None:
        if name in _BLOCKS:
            state["depth"] -= 1
            flush_line()

    def data(chars: str) -> None:
        if state["depth"] > 0 and text.size + len(chars) <= text.limit:
            line.append(chars)

    parser = xml_parser()
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = data
    parse_xml(parser, content, what)
    flush_slide()
    return text.extraction(numbered=slides)


def read_epub(source: BinaryIO) -> Extraction:
    """Text of an ``.epub``: its chapters in reading (spine) order, one record."""
    with open_zip(source, "EPUB") as archive:
        package = _attribute_of(read_member(archive, "META-INF/container.xml", "EPUB"), "rootfile", "full-path")
        if not package:
            raise SkipFile(MALFORMED, "not a readable EPUB: no package named in META-INF/container.xml")
        chapters = _spine(read_member(archive, package, "EPUB"), posixpath.dirname(package))
        text = PagedText()
        names = set(archive.namelist())
        for name in chapters:
            if name not in names:
                continue
            try:
                page, _ = decode(read_member(archive, name, "EPUB"), html=True)
            except SkipFile:
                continue  # one unreadable chapter: the others still count
            if not text.add(html_to_text(page)):
                break
    return text.extraction(numbered=False)


def _attribute_of(xml_bytes: bytes, element: str, attribute: str) -> str | None:
    """The first ``element``'s ``attribute`` (any namespace) in a small XML file."""
    found: list[str] = []

    def start(name: str, attrs: dict[str, str]) -> None:
        if not found and name.rsplit(" ", 1)[-1] == element and attribute in attrs:
            found.append(attrs[attribute])

    parser = xml_parser()
    parser.StartElementHandler = start
    parse_xml(parser, xml_bytes, "EPUB")
    return found[0] if found else None


def _spine(opf: bytes, folder: str) -> list[str]:
    """Zip member names of the OPF's spine items, in order (hrefs resolved against the OPF's folder)."""
    manifest: dict[str, str] = {}
    order: list[str] = []

    def start(name: str, attrs: dict[str, str]) -> None:
        local = name.rsplit(" ", 1)[-1]
        if local == "item" and "id" in attrs and "href" in attrs:
            manifest[attrs["id"]] = attrs["href"]
        elif local == "itemref" and "idref" in attrs:
            order.append(attrs["idref"])

    parser = xml_parser()
    parser.StartElementHandler = start
    parse_xml(parser, opf, "EPUB")
    hrefs = [manifest[i] for i in order if i in manifest]
    return [posixpath.normpath(posixpath.join(folder, unquote(h.split("#", 1)[0]))) for h in hrefs]
