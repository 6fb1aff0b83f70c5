"""XLSX text with openpyxl (the ``documents`` extra), and what every Office (OOXML) file is checked for first.

XLSX: each sheet's name, then its rows (non-empty cells joined by tabs), read in openpyxl's streaming
(read-only) mode with the cached values, not formulas. DOCX and PPTX are read by the stdlib
(:mod:`semhash.extract.ooxml`). The zip is checked first (:func:`semhash.extract.zips.open_zip`: declared
sizes, so no bomb inflates), text stops at :data:`~semhash.extract.MAX_EXTRACTED_CHARS`, and any error from
openpyxl on a damaged file is a ``malformed`` skip. A locked (encrypted) Office file is an OLE container,
not a zip: skipped as encrypted.
"""

from __future__ import annotations

from types import ModuleType
from typing import BinaryIO

from semhash.extract import ENCRYPTED, EXTRA_HINT, MALFORMED, NEEDS_EXTRA, Extraction, SkipFile
from semhash.extract.build import PagedText
from semhash.extract.zips import open_zip

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # an encrypted OOXML file is an OLE compound file


def check_not_locked(source: BinaryIO, what: str) -> None:
    """Refuse an OLE container in place of an OOXML zip: a password-protected file (or an old binary one)."""
    head = source.read(8)
    source.seek(0)
    if head == _OLE_MAGIC:
        raise SkipFile(ENCRYPTED, f"encrypted {what} (needs a password), or an old binary Office file")


def read_xlsx(source: BinaryIO) -> Extraction:
    """Text of a ``.xlsx``: one record, a sheet per piece; raises :class:`~semhash.extract.SkipFile`."""
    check_not_locked(source, "XLSX")
    try:
        import openpyxl
    except ImportError:
        raise SkipFile(NEEDS_EXTRA, EXTRA_HINT) from None
    open_zip(source, "XLSX").close()  # sizes checked before openpyxl inflates anything
    source.seek(0)
    try:
        return _xlsx(openpyxl, source)
    except SkipFile:
        raise
    except (MemoryError, RecursionError) as exc:
        raise SkipFile(MALFORMED, f"not a readable XLSX ({type(exc).__name__})") from None
    except Exception as exc:  # any library error on an untrusted file is a skip, never a crash
        raise SkipFile(MALFORMED, f"not a readable XLSX ({type(exc).__name__}: {str(exc)[:80]})") from None


def _xlsx(openpyxl: ModuleType, source: BinaryIO) -> Extraction:
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
