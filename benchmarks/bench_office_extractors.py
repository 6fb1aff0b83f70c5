"""DOCX and PPTX: python-docx / python-pptx vs the stdlib reader (semhash/extract/ooxml.py), measured.

Run from the repository root (python-docx and python-pptx write the files and are the candidates)::

    .venv/bin/python -m benchmarks.bench_office_extractors --docs 30

Files are written here from known text: DOCX with headings, paragraphs, tab-separated runs, line breaks,
tables (one with a merged row) and a text in a content control and a text box added as raw XML (what Word
writes, which python-docx cannot make); PPTX with titles, text boxes, a table, a group and speaker notes.
Quality is word recall and precision against the text written (multisets of lower-cased words); speed the
median of 3 runs over all files; install size what the candidate adds to site-packages (with its own
dependencies: lxml for python-docx; lxml, Pillow and XlsxWriter for python-pptx; nothing for the stdlib).
"""

from __future__ import annotations

import argparse
import collections
import io
import random
import re
import site
import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from benchmarks.harness import result_path, write_result

WORDS = ["hashing", "index", "query", "corpus", "planet", "orbit", "bread", "oven", "tyre", "brake"]
WORDS += ["résumé", "naïve", "café", "2026", "e-mail"]


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def make_docx(seed: int) -> tuple[bytes, str]:
    import docx
    from docx.oxml import parse_xml

    rng = random.Random(seed)
    document = docx.Document()
    truth = []
    for _ in range(5):
        heading, body = _text(rng, 4), _text(rng, 60)
        document.add_heading(heading, level=2)
        paragraph = document.add_paragraph(body[:100])
        paragraph.add_run().add_break()
        paragraph.add_run(body[100:])
        truth += [heading, body]
    table = document.add_table(rows=4, cols=3)
    for row in table.rows:
        for cell in row.cells:
            cell.text = _text(rng, 3)
            truth.append(cell.text)
    merged = table.cell(3, 0).merge(table.cell(3, 2))
    truth = truth[:-3]  # the merged row: its first cell's text, once
    merged.text = _text(rng, 3)
    truth.append(merged.text)
    w = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
    control = _text(rng, 8)
    document.element.body.insert(
        len(document.element.body) - 1,
        parse_xml(f"<w:sdt {w}><w:sdtContent><w:p><w:r><w:t>{control}</w:t></w:r></w:p></w:sdtContent></w:sdt>"),
    )
    truth.append(control)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue(), " ".join(truth)


def make_pptx(seed: int) -> tuple[bytes, str]:
    import pptx
    from pptx.util import Inches

    rng = random.Random(seed)
    deck = pptx.Presentation()
    truth = []
    for number in range(8):
        slide = deck.slides.add_slide(deck.slide_layouts[5])
        slide.shapes.title.text = _text(rng, 4)
        box = slide.shapes.add_textbox(Inches(1), Inches(2), Inches(5), Inches(2)).text_frame
        box.text = _text(rng, 20)
        extra = box.add_paragraph()
        extra.text = _text(rng, 10)
        truth += [slide.shapes.title.text, box.paragraphs[0].text, extra.text]
        if number % 2:
            table = slide.shapes.add_table(2, 2, Inches(1), Inches(4), Inches(4), Inches(1)).table
            for row in table.rows:
                for cell in row.cells:
                    cell.text = _text(rng, 2)
                    truth.append(cell.text)
        else:
            group = slide.shapes.add_group_shape()
            inner = group.shapes.add_textbox(Inches(6), Inches(1), Inches(2), Inches(1)).text_frame
            inner.text = _text(rng, 5)
            truth.append(inner.text)
        notes = _text(rng, 12)
        slide.notes_slide.notes_text_frame.text = notes
        truth.append(notes)
    buffer = io.BytesIO()
    deck.save(buffer)
    return buffer.getvalue(), " ".join(truth)


def docx_library(data: bytes) -> str:
    import docx
    from docx.table import Table

    out = []
    for block in docx.Document(io.BytesIO(data)).iter_inner_content():
        if isinstance(block, Table):
            rows = []
            for row in block.rows:
                seen: list = []
                cells = []
                for cell in row.cells:
                    if any(cell._tc is other for other in seen):
                        continue
                    seen.append(cell._tc)
                    cells.append(cell.text)
                rows.append("\t".join(cells))
            out.append("\n".join(rows))
        else:
            out.append(block.text)
    return "\n\n".join(out)


def pptx_library(data: bytes) -> str:
    import pptx

    def shapes(items: Iterable[pptx.shapes.base.BaseShape]) -> Iterator[str]:
        for shape in items:
            if shape.shape_type == 6:
                yield from shapes(shape.shapes)
            elif shape.has_text_frame:
                yield shape.text_frame.text
            elif getattr(shape, "has_table", False) and shape.has_table:
                yield "\n".join("\t".join(c.text for c in row.cells) for row in shape.table.rows)

    out = []
    for slide in pptx.Presentation(io.BytesIO(data)).slides:
        parts = list(shapes(slide.shapes))
        if slide.has_notes_slide:
            parts.append(slide.notes_slide.notes_text_frame.text)
        out.append("\n".join(parts))
    return "\n\n".join(out)


def docx_stdlib(data: bytes) -> str:
    from semhash.extract.ooxml import read_docx

    return read_docx(io.BytesIO(data)).records[0].text


def pptx_stdlib(data: bytes) -> str:
    from semhash.extract.ooxml import read_pptx

    return read_pptx(io.BytesIO(data)).records[0].text


def _words(text: str) -> collections.Counter[str]:
    return collections.Counter(w.lower() for w in re.findall(r"\S+", text))


def _size_mib(folders: list[str]) -> float:
    total = 0
    for base in site.getsitepackages():
        for pattern in folders:
            for folder in Path(base).glob(pattern):
                total += sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    return total / 2**20


CANDIDATES: dict[str, tuple[str, Callable[[bytes], str], list[str]]] = {
    "python-docx": ("docx", docx_library, ["docx", "lxml", "python_docx-*", "lxml-*"]),
    "stdlib (ooxml.py) docx": ("docx", docx_stdlib, []),
    "python-pptx": (
        "pptx",
        pptx_library,
        ["pptx", "lxml", "PIL", "pillow.libs", "xlsxwriter", "python_pptx-*", "lxml-*", "pillow-*", "xlsxwriter-*"],
    ),
    "stdlib (ooxml.py) pptx": ("pptx", pptx_stdlib, []),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=30)
    parser.add_argument("--out", type=Path, default=result_path("office_extractors"))
    args = parser.parse_args()
    rows = []
    files = {"docx": [make_docx(i) for i in range(args.docs)], "pptx": [make_pptx(i) for i in range(args.docs)]}
    print(f"{args.docs} DOCX and {args.docs} PPTX files made with python-docx / python-pptx")
    print(f"{'reader':<26}{'recall':>8}{'precision':>11}{'ms/file':>9}{'install MiB':>13}")
    for name, (kind, read, folders) in CANDIDATES.items():
        times = []
        for _ in range(3):
            started = time.perf_counter()
            texts = [read(data) for data, _ in files[kind]]
            times.append(time.perf_counter() - started)
        found = sum((_words(t) for t in texts), collections.Counter())
        wanted = sum((_words(truth) for _, truth in files[kind]), collections.Counter())
        hit = sum((found & wanted).values())
        recall, precision = hit / sum(wanted.values()), hit / max(1, sum(found.values()))
        ms_per_file, install = 1000 * statistics.median(times) / args.docs, _size_mib(folders)
        print(f"{name:<26}{recall:>8.3f}{precision:>11.3f}{ms_per_file:>9.1f}{install:>13.1f}")
        rows.append({"reader": name, "recall": recall, "precision": precision, "ms_per_file": ms_per_file,
                     "install_mib": install})  # fmt: skip
    print(f"-> {write_result(args.out, {'docs': args.docs, 'rows': rows})}")


if __name__ == "__main__":
    main()
