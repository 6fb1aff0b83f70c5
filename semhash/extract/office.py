"""DOCX, PPTX and XLSX text with python-docx, python-pptx and openpyxl (the ``documents`` extra).

DOCX: body paragraphs and tables in document order (a table row's cells joined by tabs, a merged cell
once). PPTX: each slide's shapes (text frames, tables, groups) and its notes, each slide's start recorded as
a location (slide numbers from 1). XLSX: each sheet's name, then its rows (non-empty cells joined by tabs),
read in openpyxl's streaming (read-only) mode with cached values, not formulas.

The zip is checked first (:func:`semhash.extract.zips.open_zip`: declared sizes, so no bomb inflates), text
stops at :data:`~semhash.extract.MAX_EXTRACTED_CHARS`, and any error from a library on a damaged file is a
``malformed`` skip. Locked (encrypted) Office files are OLE containers, not zips: skipped as encrypted.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any, BinaryIO

from semhash.extract import ENCRYPTED, EXTRA_HINT, MALFORMED, NEEDS_EXTRA, Extraction, SkipFile
from semhash.extract.build import PagedText
from semhash.extract.zips import open_zip

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # an encrypted OOXML file is an OLE compound file
_NAMES = {".docx": "DOCX", ".pptx": "PPTX", ".xlsx": "XLSX"}
_MAX_GROUP_DEPTH = 32


def read_office(suffix: str, source: BinaryIO) -> Extraction:
    """Read a ``.docx``, ``.pptx`` or ``.xlsx`` file; raises :class:`~semhash.extract.SkipFile`."""
    what = _NAMES[suffix]
    head = source.read(8)
    source.seek(0)
    if head == _OLE_MAGIC:
        raise SkipFile(ENCRYPTED, f"encrypted {what} (needs a password), or an old binary Office file")
    try:
        library = importlib.import_module({".docx": "docx", ".pptx": "pptx", ".xlsx": "openpyxl"}[suffix])
    except ImportError:
        raise SkipFile(NEEDS_EXTRA, EXTRA_HINT) from None
    open_zip(source, what).close()  # sizes checked before the library inflates anything
    source.seek(0)
    try:
        if suffix == ".docx":
            return _docx(library, source)
        if suffix == ".pptx":
            return _pptx(library, source)
        return _xlsx(library, source)
    except SkipFile:
        raise
    except (MemoryError, RecursionError) as exc:
        raise SkipFile(MALFORMED, f"not a readable {what} ({type(exc).__name__})") from None
    except Exception as exc:  # any library error on an untrusted file is a skip, never a crash
        raise SkipFile(MALFORMED, f"not a readable {what} ({type(exc).__name__}: {str(exc)[:80]})") from None


def _docx(docx: Any, source: BinaryIO) -> Extraction:
    from docx.table import Table

    text = PagedText()
    for block in docx.Document(source).iter_inner_content():
        piece = "\n".join(_row_text(row.cells) for row in block.rows) if isinstance(block, Table) else block.text
        if not text.add(piece):
            break
    return text.extraction(numbered=False)


def _row_text(cells: Any) -> str:
    seen: list[Any] = []
    out = []
    for cell in cells:
        if any(cell._tc is other for other in seen):  # a merged cell repeats: once is enough
            continue
        seen.append(cell._tc)
        out.append(" ".join(cell.text.split()))
    return "\t".join(t for t in out if t)


def _pptx(pptx: Any, source: BinaryIO) -> Extraction:
    text = PagedText()
    for number, slide in enumerate(pptx.Presentation(source).slides, start=1):
        parts = list(_shape_texts(slide.shapes, 0))
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            parts.append(slide.notes_slide.notes_text_frame.text)
        if not text.add("\n".join(p for p in parts if p.strip()), number):
            break
    return text.extraction()


def _shape_texts(shapes: Any, depth: int) -> Iterator[str]:
    for shape in shapes:
        if getattr(shape, "shape_type", None) == 6 and depth < _MAX_GROUP_DEPTH:  # MSO_SHAPE_TYPE.GROUP
            yield from _shape_texts(shape.shapes, depth + 1)
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            yield shape.text_frame.text
        elif getattr(shape, "has_table", False) and shape.has_table:
            yield "\n".join("\t".join(cell.text for cell in row.cells) for row in shape.table.rows)


def _xlsx(openpyxl: Any, source: BinaryIO) -> Extraction:
    text = PagedText()
    book = openpyxl.load_workbook(source, read_only=True, data_only=True)
    try:
        for sheet in book.worksheets:
            lines = [str(sheet.title)]
            size = 0
            for row in sheet.iter_rows(values_only=True):
                line = "\t".join(str(v) for v in row if v is not None and str(v).strip())
                if line:
                    lines.append(line)
                    size += len(line) + 1
                    if size > text.limit:
                        break
            if len(lines) > 1 and not text.add("\n".join(lines)):
                break
    finally:
        book.close()
    return text.extraction(numbered=False)
