"""Text out of one file's contents, format by format (the corpus reader decides which files; this reads them).

Every reader returns an :class:`Extraction` (records, the encoding a text file was decoded from, whether the
text was cut at :data:`MAX_EXTRACTED_CHARS`) or raises :class:`SkipFile` with a kind and a one-line reason.
Nothing here opens paths: the caller opens a regular file, checks its size and hands over its bytes (text
formats) or a seekable binary handle (PDF and the zip formats), so a FIFO, a device or a huge file never
reaches a parser.

Formats: text (``.txt .md .rst``), HTML, JSON/JSONL/CSV records (:mod:`.text`, :mod:`.records`, :mod:`.html`,
stdlib only); PDF (:mod:`.pdf`, pypdfium2) and XLSX (:mod:`.office`, openpyxl), from the ``documents`` extra;
DOCX/PPTX (:mod:`.ooxml`) and EPUB/ODT/ODP (:mod:`.opendoc`), stdlib zip + XML.
A file of a format whose library is missing is skipped with the install hint (:data:`EXTRA_HINT`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO

from semhash.config import (
    CSV_SUFFIXES,
    DOCUMENT_SUFFIXES,
    EPUB_SUFFIXES,
    HTML_SUFFIXES,
    JSON_SUFFIXES,
    ODF_SUFFIXES,
    PDF_SUFFIXES,
    TEXT_SUFFIXES,
)

#: Characters of text kept from one PDF/Office/EPUB/ODF file; the rest is dropped and the file reported as
#: truncated. Extraction stops there (page by page, slide by slide), so memory is bounded by this much text
#: (~40 MB as a Python string at worst) plus the parser's own state for one page, whatever the file's size.
MAX_EXTRACTED_CHARS = 10_000_000

#: Most bytes the zip formats may unpack, in all (declared sizes, which Python's ``zipfile`` enforces when
#: reading: a member that inflates past its declared size fails its check instead of filling memory).
MAX_UNZIPPED_BYTES = 256 * 2**20
#: Most bytes one XML part of a zip format may hold (a parser's tree of it takes several times that): a DOCX's
#: ``word/document.xml`` of 64 MiB is already millions of words.
MAX_XML_PART_BYTES = 64 * 2**20
#: Most members in one zip (a zip of millions of empty entries is a bomb of another kind).
MAX_ZIP_MEMBERS = 20_000

EXTRA_HINT = "needs the 'documents' extra: pip install -e \".[documents]\""

# Why a file is not indexed: the ``kind`` of a :class:`SkipFile` (and of a SkippedFile), one short label each.
BINARY = "binary"
UNDECODABLE = "undecodable"
MALFORMED = "malformed"
TOO_LARGE = "too large"
NO_TEXT = "no text layer"
ENCRYPTED = "encrypted"
NEEDS_EXTRA = "needs extra"
NOT_REGULAR = "not a regular file"
UNREADABLE = "unreadable"
BAD_NAME = "undecodable name"
SYMLINK_OUTSIDE = "symlink outside"
BROKEN_SYMLINK = "broken symlink"
ALIAS = "alias"


class SkipFile(ValueError):
    """This file is not indexed: ``kind`` is one of the labels above, ``reason`` says why in one line."""

    def __init__(self, kind: str, reason: str) -> None:
        reason = " ".join(reason.split())  # one line, whatever a library's message held
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True)
class Record:
    """One document's text; ``locations``: ``(char_offset, page_or_slide)`` boundaries, ascending, or ``None``."""

    number: int
    text: str
    locations: tuple[tuple[int, int], ...] | None = None


@dataclass
class Extraction:
    """What one file holds: its records, the encoding its bytes were decoded from, and whether it was cut."""

    records: list[Record] = field(default_factory=list)
    encoding: str | None = None
    truncated: bool = False


def is_document_format(suffix: str) -> bool:
    """Read from a seekable handle by a document parser (PDF, Office, EPUB, ODF), not decoded as text."""
    return suffix in DOCUMENT_SUFFIXES


def extract(suffix: str, source: BinaryIO, text_field: str = "text", text_column: str = "text") -> Extraction:
    """Read ``source`` (a seekable binary handle of a checked regular file) as a file ending in ``suffix``.

    Text formats read the whole handle: the caller bounds its size first. Raises :class:`SkipFile`.
    """
    if suffix in PDF_SUFFIXES:
        from semhash.extract.pdf import read_pdf

        return read_pdf(source)
    if suffix in (".docx", ".pptx"):
        from semhash.extract.office import check_not_locked
        from semhash.extract.ooxml import read_docx, read_pptx

        check_not_locked(source, suffix[1:].upper())
        return read_docx(source) if suffix == ".docx" else read_pptx(source)
    if suffix == ".xlsx":
        from semhash.extract.office import read_xlsx

        return read_xlsx(source)
    if suffix in EPUB_SUFFIXES:
        from semhash.extract.opendoc import read_epub

        return read_epub(source)
    if suffix in ODF_SUFFIXES:
        from semhash.extract.opendoc import read_odf

        return read_odf(suffix, source)
    return extract_text(suffix, source.read(), text_field, text_column)


def extract_text(suffix: str, raw: bytes, text_field: str = "text", text_column: str = "text") -> Extraction:
    """A text-format file's records from its bytes (any suffix that is not a document format reads as text)."""
    from semhash.extract.html import html_to_text
    from semhash.extract.records import csv_records, json_records, jsonl_records
    from semhash.extract.text import decode

    text, encoding = decode(raw, html=suffix in HTML_SUFFIXES)
    del raw
    if suffix in HTML_SUFFIXES:
        records = [Record(0, html_to_text(text))]
    elif suffix == ".json":
        records = [Record(n, t) for n, t in json_records(text, text_field)]
    elif suffix in JSON_SUFFIXES:
        records = [Record(n, t) for n, t in jsonl_records(text, text_field)]
    elif suffix in CSV_SUFFIXES:
        records = [Record(n, t) for n, t in csv_records(text, text_column)]
    else:
        records = [Record(0, text)]
    return Extraction(records, encoding)


__all__ = [
    "EXTRA_HINT",
    "MAX_EXTRACTED_CHARS",
    "TEXT_SUFFIXES",
    "Extraction",
    "Record",
    "SkipFile",
    "extract",
    "extract_text",
    "is_document_format",
]
