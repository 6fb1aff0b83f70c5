"""Which PDF text extractor? pypdf vs pypdfium2 vs pdfminer.six on PDFs made here (issue 18).

Run from the repository root (needs ``fpdf2`` to write the PDFs and the three extractors installed)::

    .venv/bin/python -m benchmarks.bench_pdf_extractors --pages 40

The PDFs are written with fpdf2 from known text (DejaVu Sans, so accents, ligature-prone words, Greek and
CJK-free Unicode): a one-column book page, a two-column page, a table, and a page of short lines. Quality is
word recall and precision against the text that was written (multiset of lower-cased words, so line breaks
and hyphenless wraps do not count against an extractor), plus whether page boundaries come back. Speed is
the wall time of extracting every page, median of 3 runs, on this machine. Install size is what ``du``
says of each library's folders in site-packages (with its non-stdlib dependencies).
"""

from __future__ import annotations

import argparse
import collections
import io
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.harness import result_path, write_result

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
WORDS = [
    "the",
    "office",
    "affluent",
    "ﬁnal",
    "café",
    "naïve",
    "Zürich",
    "façade",
    "résumé",
    "coöperate",
    "fjord",
    "quartz",
    "jumping",
    "wizard",
    "Ελλάδα",
    "σοφία",
    "semantic",
    "hashing",
    "search",
    "engine",
    "index",
    "query",
    "document",
    "corpus",
    "binary",
    "code",
    "Hamming",
    "distance",
    "2026",
    "3.14",
    "42",
    "e-mail",
    "user@example.org",
    "https://example.org/path?x=1",
]


def _text(seed: int, n: int) -> str:
    import random

    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n))


def make_pdf(pages: int) -> tuple[bytes, list[str]]:
    """A PDF of ``pages`` pages cycling through four layouts, and each page's written text."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_font("dejavu", fname=FONT)
    pdf.set_font("dejavu", size=10)
    truth = []
    for page in range(pages):
        pdf.add_page()
        layout = page % 4
        if layout == 0:  # one column of wrapped paragraphs
            text = "\n".join(_text(page * 10 + i, 80) for i in range(5))
            pdf.multi_cell(0, 5, text)
        elif layout == 1:  # two columns
            left, right = _text(page, 150), _text(page + 1000, 150)
            top = pdf.get_y()
            pdf.multi_cell(90, 5, left)
            pdf.set_xy(110, top)
            pdf.multi_cell(90, 5, right)
            text = left + " " + right
        elif layout == 2:  # a table
            rows = [[_text(page * 100 + r * 10 + c, 2) for c in range(4)] for r in range(20)]
            with pdf.table(first_row_as_headings=False) as table:
                for row in rows:
                    cells = table.row()
                    for cell in row:
                        cells.cell(cell)
            text = " ".join(" ".join(r) for r in rows)
        else:  # short lines
            lines = [_text(page * 7 + i, 6) for i in range(40)]
            for line in lines:
                pdf.cell(0, 5, line, new_x="LMARGIN", new_y="NEXT")
            text = " ".join(lines)
        truth.append(text)
    return bytes(pdf.output()), truth


def _words(text: str) -> collections.Counter[str]:
    text = text.replace("ﬁ", "fi")  # a ligature read back as its letters is right
    return collections.Counter(w.lower() for w in re.findall(r"\S+", text))


def with_pypdf(data: bytes) -> list[str]:
    from pypdf import PdfReader

    return [page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages]


def with_pypdfium2(data: bytes) -> list[str]:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(data)
    try:
        out = []
        for i in range(len(pdf)):
            page = pdf[i]
            textpage = page.get_textpage()
            out.append(textpage.get_text_range())
            textpage.close()
            page.close()
        return out
    finally:
        pdf.close()


def with_pdfminer(data: bytes) -> list[str]:
    from pdfminer.high_level import extract_text
    from pdfminer.pdfpage import PDFPage

    n = sum(1 for _ in PDFPage.get_pages(io.BytesIO(data)))
    return [extract_text(io.BytesIO(data), page_numbers=[i]) for i in range(n)]


EXTRACTORS: dict[str, tuple[Callable[[bytes], list[str]], list[str]]] = {
    "pypdf": (with_pypdf, ["pypdf"]),
    "pypdfium2": (with_pypdfium2, ["pypdfium2", "pypdfium2_raw"]),
    "pdfminer.six": (with_pdfminer, ["pdfminer", "cryptography", "cffi", "pycparser", "charset_normalizer"]),
}


def _site_size(folders: list[str]) -> float:
    import site

    total = 0
    for base in site.getsitepackages():
        for name in folders:
            for f in (Path(base) / name).rglob("*"):
                if f.is_file():
                    total += f.stat().st_size
    return total / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=40)
    parser.add_argument("--out", type=Path, default=result_path("pdf_extractors"))
    args = parser.parse_args()
    rows = []
    data, truth = make_pdf(args.pages)
    print(f"PDF: {args.pages} pages, {len(data) / 1024:.0f} KiB; python {sys.version.split()[0]}")
    print(f"{'library':<14}{'recall':>8}{'precision':>11}{'pages':>7}{'ms/page':>9}{'install MiB':>13}")
    for name, (extract, folders) in EXTRACTORS.items():
        times = []
        for _ in range(3):
            started = time.perf_counter()
            pages = extract(data)
            times.append(time.perf_counter() - started)
        found, wanted = _words(" ".join(pages)), _words(" ".join(truth))
        hit = sum((found & wanted).values())
        recall, precision = hit / sum(wanted.values()), hit / max(1, sum(found.values()))
        per_page = sum(1 for got, want in zip(pages, truth, strict=False) if sum((_words(got) & _words(want)).values()))
        ms_per_page, install = 1000 * statistics.median(times) / args.pages, _site_size(folders)
        print(
            f"{name:<14}{recall:>8.3f}{precision:>11.3f}{per_page:>4}/{len(truth):<2}"
            f"{ms_per_page:>9.1f}{install:>13.1f}"
        )
        rows.append({"library": name, "recall": recall, "precision": precision, "pages": per_page,
                     "ms_per_page": ms_per_page, "install_mib": install})  # fmt: skip
    pdf = {"pages": args.pages, "kib": len(data) / 1024}
    print(f"-> {write_result(args.out, {'pdf': pdf, 'rows': rows})}")


if __name__ == "__main__":
    main()
