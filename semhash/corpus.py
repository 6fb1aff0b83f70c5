"""Walking folders and reading documents out of files.

One file is one document for ``.txt``, ``.md``, ``.rst`` and ``.html``/``.htm`` (visible text only:
scripts, styles and markup dropped). ``.json`` (an object, or a list of objects), ``.jsonl``/``.ndjson``
(one object per line) and ``.csv`` hold one document per record, numbered from 1, taken from a text field
(``text_field`` / ``text_column``, default ``text``). Files must be UTF-8 (a BOM is fine); binary files
(a NUL byte in the first 8 KiB), undecodable files and unparsable JSON/CSV are skipped with a reason,
never a crash. Hidden files and folders (name starting with ``.``) are not walked. Paths are stored
absolute, so an index means the same thing from any working directory.

Memory: reading holds one file at a time (its bytes, its decoded text and its records' texts), never the
corpus. :meth:`CorpusScan.entries` describes every document without keeping its text (path, record,
content hash, length), so an indexer can decide what changed first and read the texts again, a batch at a
time, with :func:`read_documents`.
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import io
import json
import os
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from semhash.config import CSV_SUFFIXES, HTML_SUFFIXES, JSON_SUFFIXES, TEXT_SUFFIXES
from semhash.errors import CorpusError
from semhash.types import SkippedFile, SourceDocument

SUPPORTED_SUFFIXES = TEXT_SUFFIXES + HTML_SUFFIXES + JSON_SUFFIXES + CSV_SUFFIXES
_BINARY_SNIFF = 8192


def content_hash(text: str) -> str:
    """sha256 of the UTF-8 text: the key that makes re-indexing skip unchanged documents."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class ReadOptions:
    """How files are selected and parsed."""

    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    text_field: str = "text"
    text_column: str = "text"


@dataclass(frozen=True)
class DocumentEntry:
    """A document found by a scan, without its text: what deciding to (re-)embed it needs."""

    path: str
    record: int
    content_hash: str
    n_chars: int
    mtime: float


@dataclass
class CorpusScan:
    """Everything found under the roots: documents are yielded by :meth:`documents`, the rest recorded."""

    roots: list[Path]
    options: ReadOptions
    skipped: list[SkippedFile] = field(default_factory=list)
    empty: int = 0
    files: int = 0

    def documents(self) -> Iterator[SourceDocument]:
        """Yield every non-empty document of every selected file, in sorted path order.

        Memory: one file's documents at a time (a caller that keeps them all holds the corpus).
        """
        for path in iter_files(self.roots, self.options):
            self.files += 1
            try:
                documents = _file_documents(path, self.options)
            except OSError as exc:
                self.skipped.append(SkippedFile(str(path), f"unreadable: {exc.strerror or exc}"))
                continue
            except ValueError as exc:
                self.skipped.append(SkippedFile(str(path), str(exc)))
                continue
            for doc in documents:
                if doc is None:
                    self.empty += 1
                else:
                    yield doc

    def entries(self) -> Iterator[DocumentEntry]:
        """Like :meth:`documents`, but each text is dropped once hashed: memory is one file, not the corpus."""
        for doc in self.documents():
            yield DocumentEntry(doc.path, doc.record, doc.content_hash, len(doc.text), doc.mtime)


def read_documents(wanted: Mapping[str, Collection[int]], options: ReadOptions) -> Iterator[SourceDocument]:
    """Read again the documents ``wanted`` (records by path), file by file, in the mapping's order.

    For indexing a batch at a time after :meth:`CorpusScan.entries`. A file that became unreadable,
    unparsable or lost a record since the scan yields nothing for it (the next run sees what is there);
    a changed text is yielded as it is now, with its new hash.
    """
    for path, records in wanted.items():
        try:
            documents = _file_documents(Path(path), options)
        except (OSError, ValueError):
            continue
        for doc in documents:
            if doc is not None and doc.record in records:
                yield doc


def _file_documents(path: Path, options: ReadOptions) -> Iterator[SourceDocument | None]:
    """One file's documents (``None`` for an empty one); raises ``OSError``/``ValueError`` before yielding."""
    raw = path.read_bytes()
    stat_mtime = path.stat().st_mtime
    records = list(read_records(path, raw, options))
    del raw  # the decoded records are all that is needed from here on
    return _stripped(str(path), records, stat_mtime)


def _stripped(path: str, records: list[tuple[int, str]], mtime: float) -> Iterator[SourceDocument | None]:
    records.reverse()  # popped from the end, so a text is let go once its document is yielded
    while records:
        record, text = records.pop()
        text = text.strip()
        yield SourceDocument(path, record, text, content_hash(text), mtime) if text else None


def check_roots(paths: Sequence[str | Path]) -> list[Path]:
    """Absolute roots; a missing path is a :class:`CorpusError`."""
    if not paths:
        raise CorpusError("no path given: semhash index DIR_OR_FILE...")
    roots = []
    for p in paths:
        path = Path(p).expanduser()
        if not path.exists():
            raise CorpusError(f"{p}: no such file or folder")
        roots.append(path.resolve())
    return roots


def iter_files(roots: Sequence[Path], options: ReadOptions) -> Iterator[Path]:
    """Selected files under ``roots`` (files given directly are always considered), sorted, no duplicates."""
    seen: set[Path] = set()
    for root in roots:
        candidates = [root] if root.is_file() else _walk(root)
        for path in candidates:
            if path in seen:
                continue
            seen.add(path)
            rel = path.name if root.is_file() else path.relative_to(root).as_posix()
            if _selected(rel, path, options):
                yield path


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def _selected(rel: str, path: Path, options: ReadOptions) -> bool:
    def matches(patterns: Sequence[str]) -> bool:
        return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(path.name, p) for p in patterns)

    if options.exclude and matches(options.exclude):
        return False
    if options.include:
        return matches(options.include)
    return path.suffix.lower() in SUPPORTED_SUFFIXES


def read_records(path: Path, raw: bytes, options: ReadOptions) -> Iterator[tuple[int, str]]:
    """``(record number, text)`` pairs of one file; raises ``ValueError`` with a reason to skip it."""
    if b"\x00" in raw[:_BINARY_SNIFF]:
        raise ValueError("binary file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 (byte {exc.start})") from None
    suffix = path.suffix.lower()
    if suffix in HTML_SUFFIXES:
        yield 0, html_to_text(text)
    elif suffix == ".json":
        yield from _json_records(text, options.text_field)
    elif suffix in JSON_SUFFIXES:
        yield from _jsonl_records(text, options.text_field)
    elif suffix in CSV_SUFFIXES:
        yield from _csv_records(text, options.text_column)
    else:
        yield 0, text


def _field(obj: object, name: str, where: str) -> str:
    if not isinstance(obj, dict):
        raise ValueError(f"{where} is not a JSON object")
    if name not in obj:
        raise ValueError(f"{where} has no field {name!r} (choose one with --text-field)")
    value = obj[name]
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _json_records(text: str, name: str) -> Iterator[tuple[int, str]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON (line {exc.lineno})") from None
    items = data if isinstance(data, list) else [data]
    texts = [_field(item, name, f"item {i + 1}") for i, item in enumerate(items)]
    yield from enumerate(texts, start=1)


def _jsonl_records(text: str, name: str) -> Iterator[tuple[int, str]]:
    texts = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            raise ValueError(f"invalid JSON on line {lineno}") from None
        texts.append((lineno, _field(obj, name, f"line {lineno}")))
    yield from texts


def _csv_records(text: str, column: str) -> Iterator[tuple[int, str]]:
    try:
        reader = csv.DictReader(io.StringIO(text))
        if reader.fieldnames is None or column not in reader.fieldnames:
            raise ValueError(f"no column {column!r} (choose one with --text-column)")
        rows = [(i, row.get(column) or "") for i, row in enumerate(reader, start=1)]
    except csv.Error as exc:
        raise ValueError(f"invalid CSV: {exc}") from None
    yield from rows


class _VisibleText(HTMLParser):
    _HIDDEN = frozenset({"script", "style", "noscript", "template", "head", "svg"})
    _BLOCK = frozenset(
        {
            "p",
            "div",
            "br",
            "li",
            "tr",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "title",
            "section",
            "article",
            "pre",
            "blockquote",
            "td",
            "th",
            "ul",
            "ol",
            "table",
            "hr",
        }
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden_depth = 0
        self.title: list[str] = []
        self.in_title = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "title":
            self.in_title = True
        elif tag in self._HIDDEN:
            self.hidden_depth += 1
        if tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        elif tag in self._HIDDEN and self.hidden_depth:
            self.hidden_depth -= 1
        if tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title.append(data)
        elif not self.hidden_depth:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Visible text of an HTML page: the title, then the body text, one block per line."""
    parser = _VisibleText()
    parser.feed(html)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).splitlines()]
    body = "\n".join(line for line in lines if line)
    title = " ".join("".join(parser.title).split())
    return f"{title}\n{body}" if title and body else title or body


def snippet(text: str, width: int = 160) -> str:
    """The start of a text on one line, cut at ``width`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
