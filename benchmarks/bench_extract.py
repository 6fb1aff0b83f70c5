"""Peak memory and time of reading a ~100 MB PDF (and, for scale, other big files) through the corpus reader.

Run from the repository root (needs the ``documents`` extra and fpdf2 + Pillow to write the files)::

    .venv/bin/python -m benchmarks.bench_extract            # -> benchmarks/results/extract.json

The PDF is written here, once, into ``--work`` (default ``.cache/bench_extract``): ``--text-pages`` pages of
3,000 characters of text each (so more than :data:`semhash.extract.MAX_EXTRACTED_CHARS` in all: extraction
stops at the cap) and ``--image-pages`` pages each holding a ~1 MB incompressible image (what makes real
PDFs big). Each measurement runs in a fresh child process that imports semhash first, records its
resident memory (baseline), reads the file, and reports its peak RSS (``VmHWM``: ``ru_maxrss`` would carry
over the parent's peak through ``exec``) and the growth over the baseline. pypdf's ``extract_text`` over the
same pages is measured too when it is installed (for comparison; semhash does not use it). A text file of
the same size is read through the corpus reader for reference (text files are read whole: their cap is
``--max-file-mb``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.harness import CACHE, ROOT, result_path, write_result

LINE = "semantic hashing maps every document to a short binary code so that similar texts land nearby. "

CHILD = r"""
import json, sys, time
from semhash.corpus import CorpusScan, ReadOptions, check_roots
import semhash.extract.pdf, pypdfium2  # imports before the baseline

def status_kib(field):  # VmHWM, not ru_maxrss: the latter survives exec, so it holds the parent's peak
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0

mode, path = sys.argv[1], sys.argv[2]
base = status_kib("VmRSS")
started = time.perf_counter()
if mode == "semhash":
    scan = CorpusScan(check_roots([path]), ReadOptions(max_file_bytes=2**31))
    docs = list(scan.documents())
    chars = sum(len(d.text) for d in docs)
    pages = max((p for d in docs for _, p in (d.locations or ())), default=0)
    note = [n.kind for n in scan.notes] + [s.reason for s in scan.skipped]
else:
    from pypdf import PdfReader
    reader = PdfReader(path)
    chars = 0
    pages = 0
    for page in reader.pages:
        chars += len(page.extract_text() or "")
        pages += 1
        if chars >= 10_000_000:
            break
    note = []
seconds = time.perf_counter() - started
peak = status_kib("VmHWM")
print(json.dumps({"mode": mode, "seconds": seconds, "chars": chars, "last_page": pages, "notes": note,
                  "baseline_mib": base / 1024, "peak_mib": peak / 1024, "growth_mib": (peak - base) / 1024}))
"""


def make_pdf(path: Path, text_pages: int, image_pages: int) -> None:
    import numpy as np
    from fpdf import FPDF
    from PIL import Image

    pdf = FPDF()
    pdf.set_font("helvetica", size=7)
    for page in range(text_pages):
        pdf.add_page()
        for row in range(30):
            pdf.text(10, 10 + row * 9, f"p{page} r{row} " + LINE)
    rng = np.random.default_rng(0)
    for _ in range(image_pages):
        pdf.add_page()
        noise = Image.fromarray(rng.integers(0, 256, (600, 600, 3), dtype=np.uint8))
        pdf.image(noise, x=10, y=10, w=180)
    pdf.output(str(path))


def measure(mode: str, path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-P", "-c", CHILD, mode, str(path)],  # -P + PYTHONPATH: this tree's semhash
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=CACHE / "bench_extract")
    parser.add_argument("--text-pages", type=int, default=4000)
    parser.add_argument("--image-pages", type=int, default=90)
    parser.add_argument("--out", type=Path, default=result_path("extract"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    pdf = args.work / f"big-{args.text_pages}-{args.image_pages}.pdf"
    if not pdf.exists():
        started = time.perf_counter()
        make_pdf(pdf, args.text_pages, args.image_pages)
        print(f"wrote {pdf} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    text = args.work / "big.txt"
    if not text.exists() or text.stat().st_size < pdf.stat().st_size:
        with text.open("w") as handle:
            while handle.tell() < pdf.stat().st_size:
                handle.write(LINE * 100 + "\n")
    lines = [
        f"bench_extract: {pdf.name}, {pdf.stat().st_size / 2**20:.0f} MiB, {args.text_pages} text pages "
        f"(3,000 characters each) + {args.image_pages} pages of ~1 MB images; python {sys.version.split()[0]}",
        f"{'reader':<28}{'seconds':>9}{'characters':>12}{'last page':>11}{'peak RSS MiB':>14}{'growth MiB':>12}  notes",
    ]
    runs = [("semhash", pdf, "semhash (pypdfium2)")]
    try:
        import pypdf  # noqa: F401

        runs.append(("pypdf", pdf, "pypdf extract_text"))
    except ImportError:
        pass
    runs.append(("semhash", text, f"semhash, {text.stat().st_size / 2**20:.0f} MiB .txt"))
    rows = []
    for mode, path, label in runs:
        row = measure(mode, path)
        rows.append({"reader": label, **row})
        lines.append(
            f"{label:<28}{row['seconds']:>9.1f}{row['chars']:>12,}{row['last_page']:>11}"
            f"{row['peak_mib']:>14.0f}{row['growth_mib']:>12.0f}  {', '.join(row['notes'])}"
        )
    report = "\n".join(lines)
    print(report)
    pdf_file = {"name": pdf.name, "mib": pdf.stat().st_size / 2**20, "text_pages": args.text_pages,
                "image_pages": args.image_pages}  # fmt: skip
    print(f"-> {write_result(args.out, {'pdf': pdf_file, 'rows': rows, 'report': lines})}")


if __name__ == "__main__":
    main()
