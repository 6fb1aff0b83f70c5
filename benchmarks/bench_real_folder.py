"""A real folder nobody on the project wrote, indexed as a new user would (issue 17's "Real folder" benchmark).

Run from the repository root::

    .venv/bin/python -m benchmarks.bench_real_folder --out benchmarks/results/real_folder.json

1. **The folder.** A copy of the machine's own package documentation (``--source``, default
   ``/usr/share/doc``) as it is: its ``.md``/``.txt``/``.rst``/``.html`` pages and PDFs beside thousands of
   files semhash does not read (``.gz``, images, scripts) and symlinks, so every skip reason shows. With
   ``--packages N`` only a seeded sample of N package folders is copied (the whole folder takes over an hour
   to embed on a 2-core CPU at the defaults: issue 20). Office and e-book files are added, **made from real
   pages of that folder** by python-docx, python-pptx, openpyxl and hand-written ODT/ODP/EPUB zips (no
   Office suite on the machine, no downloads): ``--office N`` of each kind.
2. **The run.** ``semhash index FOLDER`` at the defaults, in a fresh database, with stderr to a log file
   (plain progress lines), timed, with the child's peak RSS (``VmHWM`` read by a wrapper). Then the same
   command with ``--json`` on the finished index (nothing left to embed) for the files read and skipped
   by reason, and a short run on a pseudo-terminal (interrupted after ``--tty-seconds``) to show what a
   person sees there.

It prints a JSON report and writes it to ``--out``; BENCHMARKS.md's "Real folder" section quotes it.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from benchmarks.harness import run_with_peak_rss, write_result

SEMHASH = [sys.executable, "-m", "semhash.cli"]
READ_SUFFIXES = (".md", ".txt", ".rst", ".html", ".htm")


def copy_folder(source: Path, target: Path, packages: int, seed: int) -> list[str]:
    """Copy ``source`` (all of it, or ``packages`` seeded package folders) keeping symlinks as links."""
    names = sorted(p.name for p in source.iterdir())
    if packages:  # among the packages that ship something semhash reads (most ship only changelog.gz)
        names = [n for n in names if not (source / n).is_symlink() and _readable(source / n)]
        # Packages that ship PDFs always come along: they are rare, and the formats are what is measured.
        with_pdf = [n for n in names if any((source / n).rglob("*.pdf"))]
        rest = [n for n in names if n not in with_pdf]
        rng = random.Random(seed)
        names = sorted(with_pdf + rng.sample(rest, max(0, min(packages - len(with_pdf), len(rest)))))
    target.mkdir(parents=True)
    for name in names:
        src = source / name
        if src.is_symlink() or not src.is_dir():
            continue
        shutil.copytree(src, target / name, symlinks=True, ignore_dangling_symlinks=True)
    return names


def _readable(folder: Path) -> bool:
    return any(p.suffix.lower() in (*READ_SUFFIXES, ".pdf") for p in folder.rglob("*") if p.is_file())


def _real_pages(folder: Path, count: int, seed: int) -> list[tuple[str, str]]:
    """``count`` (title, text) pairs from the folder's own markdown and text pages of some length."""
    pages = []
    for path in sorted(folder.rglob("*")):
        if path.suffix in (".md", ".txt", ".rst") and path.is_file() and not path.is_symlink():
            try:
                text = path.read_text("utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            if 2_000 <= len(text) <= 60_000:
                pages.append((path.relative_to(folder).as_posix(), text))
    random.Random(seed).shuffle(pages)
    return pages[:count]


def _sections(text: str, size: int = 1_500) -> list[str]:
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    sections, current = [], ""
    for paragraph in paragraphs:
        if current and len(current) + len(paragraph) > size:
            sections.append(current)
            current = ""
        current = f"{current}\n\n{paragraph}" if current else paragraph
    return [*sections, current] if current else sections


def _xml_escape(text: str) -> str:
    text = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", " ", text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _odf(path: Path, kind: str, sections: list[str]) -> None:
    mime = f"application/vnd.oasis.opendocument.{kind}"
    if kind == "text":
        body = (
            "<office:text>"
            + "".join(f"<text:p>{_xml_escape(line)}</text:p>" for s in sections for line in s.splitlines())
            + "</office:text>"
        )
    else:
        body = (
            "<office:presentation>"
            + "".join(
                f'<draw:page draw:name="p{i}"><draw:frame><draw:text-box>'
                + "".join(f"<text:p>{_xml_escape(line)}</text:p>" for line in s.splitlines())
                + "</draw:text-box></draw:frame></draw:page>"
                for i, s in enumerate(sections, 1)
            )
            + "</office:presentation>"
        )
    content = (
        '<?xml version="1.0" encoding="UTF-8"?><office:document-content '
        'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
        'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0">'
        f"<office:body>{body}</office:body></office:document-content>"
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), mime)
        archive.writestr("content.xml", content, zipfile.ZIP_DEFLATED)
        archive.writestr(
            "META-INF/manifest.xml",
            '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
            'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">'
            f'<manifest:file-entry manifest:full-path="/" manifest:media-type="{mime}"/>'
            '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
            "</manifest:manifest>",
        )


def _epub(path: Path, title: str, sections: list[str]) -> None:
    chapters = [
        (f"c{i}.xhtml", "<html xmlns='http://www.w3.org/1999/xhtml'><body>"
         + "".join(f"<p>{_xml_escape(line)}</p>" for line in s.splitlines()) + "</body></html>")
        for i, s in enumerate(sections, 1)
    ]  # fmt: skip
    manifest = "".join(f'<item id="c{i}" href="{n}" media-type="application/xhtml+xml"/>' for i, (n, _) in
                       enumerate(chapters, 1))  # fmt: skip
    spine = "".join(f'<itemref idref="c{i}"/>' for i in range(1, len(chapters) + 1))
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip")
        archive.writestr(
            "META-INF/container.xml",
            '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
            '<rootfiles><rootfile full-path="OEBPS/book.opf" media-type="application/oebps-package+xml"/>'
            "</rootfiles></container>",
        )
        archive.writestr(
            "OEBPS/book.opf",
            '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
            f"<metadata><dc:title xmlns:dc='http://purl.org/dc/elements/1.1/'>{_xml_escape(title)}</dc:title>"
            f"</metadata><manifest>{manifest}</manifest><spine>{spine}</spine></package>",
        )
        for name, body in chapters:
            archive.writestr(f"OEBPS/{name}", body, zipfile.ZIP_DEFLATED)


def add_office_files(folder: Path, count: int, seed: int) -> dict[str, int]:
    """DOCX, PPTX, XLSX, ODT, ODP and EPUB files made from the folder's own pages (``count`` of each)."""
    import docx
    import openpyxl
    import pptx

    out = folder / "office-from-real-pages"
    out.mkdir()
    pages = _real_pages(folder, 6 * count, seed)
    made: collections.Counter[str] = collections.Counter()
    for n, (name, text) in enumerate(pages):
        kind = ("docx", "pptx", "xlsx", "odt", "odp", "epub")[n % 6]
        stem = out / f"{Path(name).stem}-{n}.{kind}"
        sections = _sections(text)
        if kind == "docx":
            document = docx.Document()
            document.add_heading(name, 1)
            for section in sections:
                for line in section.splitlines():
                    document.add_paragraph(_xml_escape(line).replace("&amp;", "&").replace("&lt;", "<")
                                           .replace("&gt;", ">"))  # fmt: skip
            document.save(str(stem))
        elif kind == "pptx":
            deck = pptx.Presentation()
            for section in sections:
                slide = deck.slides.add_slide(deck.slide_layouts[1])
                slide.shapes.title.text = name
                slide.placeholders[1].text = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", " ", section)
            deck.save(str(stem))
        elif kind == "xlsx":
            book = openpyxl.Workbook()
            sheet = book.active
            for line in text.splitlines():
                if line.strip():
                    sheet.append([re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", " ", cell) for cell in line.split(None, 2)])
            book.save(str(stem))
        elif kind in ("odt", "odp"):
            _odf(stem, "text" if kind == "odt" else "presentation", sections)
        else:
            _epub(stem, name, sections)
        made[kind] += 1
    return dict(made)


def census(folder: Path) -> dict[str, int]:
    """Files (not folders) under ``folder`` by suffix, symlinks counted apart."""
    counts: collections.Counter[str] = collections.Counter()
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            path = Path(dirpath) / name
            counts["symlink" if path.is_symlink() else (path.suffix.lower() or "(none)")] += 1
    return dict(counts.most_common())


def run_on_terminal(args: list[str], seconds: float) -> str:
    """The first ``seconds`` of ``args`` on a 100x30 pseudo-terminal, then Ctrl-C; what the screen showed."""
    import fcntl
    import struct
    import termios

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    chunks, deadline, stopped = [], time.monotonic() + seconds, False
    while True:
        if not stopped and time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGINT)
            stopped = True
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait()
    os.close(master)
    screen = b"".join(chunks).decode("utf-8", "replace")
    # What the terminal finally showed, through a terminal emulator (pyte, the `bench` extra): bars are
    # redrawn in place with cursor movements, so the byte stream alone is not the screen.
    import pyte

    terminal = pyte.Screen(100, 30)
    pyte.Stream(terminal).feed(screen)
    return "\n".join(line.rstrip() for line in terminal.display if line.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=Path("/usr/share/doc"))
    parser.add_argument("--packages", type=int, default=0, help="Seeded sample of package folders (0: all).")
    parser.add_argument("--office", type=int, default=3, help="Files of each Office/e-book kind to make.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tty-seconds", type=float, default=40.0)
    parser.add_argument("--work", type=Path, default=None, help="Work folder (default: a new temporary one).")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="semhash-real-"))
    folder = work / "doc"
    copy_folder(args.source, folder, args.packages, args.seed)
    office = add_office_files(folder, args.office, args.seed) if args.office else {}
    files = census(folder)
    env_note = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}
    db = work / "real.db"
    log = work / "index.log"
    run = run_with_peak_rss([*SEMHASH, "index", str(folder), "--db", str(db)], log)
    report_line = subprocess.run(
        [*SEMHASH, "index", str(folder), "--db", str(db), "--json"], capture_output=True, text=True, check=True
    ).stdout
    report = json.loads(report_line)
    skipped = collections.Counter(s.get("kind") or s["reason"].split(":")[0] for s in report["skipped_files"])
    passed = {f"{p['reason']} {p['extension']}": p["count"] for p in report.get("passed_over", [])}
    info = json.loads(subprocess.run([*SEMHASH, "info", "--db", str(db), "--json"], capture_output=True,
                                     text=True, check=True).stdout)  # fmt: skip
    tty_db = work / "tty.db"
    screen = run_on_terminal([*SEMHASH, "index", str(folder), "--db", str(tty_db)], args.tty_seconds)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_after": os.getloadavg(),
        "env": env_note,
        "source": str(args.source),
        "packages": args.packages or "all",
        "office_files_made": office,
        "files_by_type": files,
        "bytes": sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()),
        "index": run,
        "documents": info.get("documents"),
        "files_read": report.get("files_read"),
        "skipped_by_kind": dict(skipped.most_common()),
        "passed_over": passed,
        "file_notes": len(report.get("file_notes", [])),
        "log_head": log.read_text(errors="replace").splitlines()[:12],
        "log_tail": log.read_text(errors="replace").splitlines()[-8:],
        "terminal_screen": screen.splitlines(),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_result(args.out, result, indent=2)


if __name__ == "__main__":
    main()
