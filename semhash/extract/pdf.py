"""PDF text with pypdfium2 (PDFium, the ``documents`` extra), page by page, each page's start recorded.

Chosen on measured quality, speed and size (``benchmarks/bench_pdf_extractors.py``): on the same PDFs pypdf,
pypdfium2 and pdfminer.six find the same words (recall 0.996, precision 0.991), pypdfium2 at 0.8-1.1 ms a page,
pypdf 5.8-8.4 and pdfminer.six 35-55 (two runs on a busy 2-core machine); installed, 8.5 MiB against 3.9
(pypdf) and 26 (pdfminer.six with its dependencies).

Memory: PDFium reads the file through the handle as it needs (the file is never loaded whole by this code);
one page's text page is open at a time and closed before the next, and extraction stops at
:data:`~semhash.extract.MAX_EXTRACTED_CHARS` characters. Measured by ``benchmarks/bench_extract.py`` on a 96 MiB
PDF: it stops at the cap with a peak RSS of 54-63 MiB (30-39 over the interpreter's; pypdf: 180).
A PDF whose pages hold no text (scanned), that needs a password, or that PDFium cannot parse is skipped
with its reason.
"""

from __future__ import annotations

from typing import BinaryIO

from semhash.extract import ENCRYPTED, EXTRA_HINT, MALFORMED, NEEDS_EXTRA, NO_TEXT, Extraction, SkipFile
from semhash.extract.build import PagedText

_ERR_PASSWORD = 4  # FPDF_ERR_PASSWORD
_ERR_SECURITY = 6  # FPDF_ERR_SECURITY: an unsupported security handler


def read_pdf(source: BinaryIO) -> Extraction:
    """One record of every page's text; ``locations`` maps character offsets to 1-based page numbers."""
    try:
        import pypdfium2 as pdfium
    except ImportError:
        raise SkipFile(NEEDS_EXTRA, EXTRA_HINT) from None
    try:
        pdf = pdfium.PdfDocument(source)
    except pdfium.PdfiumError as exc:
        code = getattr(exc, "err_code", None)
        if code in (_ERR_PASSWORD, _ERR_SECURITY):
            raise SkipFile(ENCRYPTED, "encrypted PDF (needs a password)") from None
        raise SkipFile(MALFORMED, "not a readable PDF (damaged, or not a PDF)") from None
    text = PagedText()
    try:
        pages = len(pdf)
        for number in range(pages):
            try:
                page = pdf[number]
                textpage = page.get_textpage()
                try:
                    piece = textpage.get_text_range()
                finally:
                    textpage.close()
                    page.close()
            except pdfium.PdfiumError:
                continue  # one damaged page: the others still count
            if not text.add(piece.replace("\r\n", "\n").replace("\r", "\n"), number + 1):
                break
    finally:
        pdf.close()
    if not text.size:
        what = f"{pages} pages" if pages != 1 else "1 page"
        raise SkipFile(NO_TEXT, f"no text layer in {what} (scanned? run OCR first, e.g. ocrmypdf)")
    return text.extraction()
