r"""Walking folders and reading documents out of files: every file found is indexed or accounted for.

One file is one document for ``.txt``, ``.md``, ``.rst``, ``.html``/``.htm`` (visible text only), and the
documents of :mod:`semhash.extract`: ``.pdf`` and ``.xlsx`` (the ``documents`` extra), ``.docx``, ``.pptx``,
``.epub``, ``.odt`` and ``.odp`` (stdlib). ``.json`` (an object, or a list of objects), ``.jsonl``/``.ndjson``
(one object per line) and ``.csv`` hold one document per record, numbered from 1, taken from a text field
(``text_field`` / ``text_column``, default ``text``). A PDF's pages and a presentation's slides are kept as
the document's ``locations`` (where each starts in its text). Text files are decoded per file
(:mod:`semhash.extract.text`: BOM, declared charset, UTF-8, then detection). Paths are stored absolute, so
an index means the same thing from any working directory.

Every file under the paths given that is not indexed is accounted for (:class:`CorpusScan`):

* **skipped**, one by one with a kind and a reason (:class:`~semhash.types.SkippedFile`): binary,
  undecodable, malformed (unparsable JSON/CSV, nested too deeply, a damaged PDF or zip), too large, no text
  layer, encrypted, needs the ``documents`` extra, not a regular file (FIFO, socket, device), unreadable,
  a name that is not valid UTF-8, a symlink leading outside the folders given, a broken symlink, or an
  alias (a symlink to a file or folder that is indexed under its real path);
* **passed over** by design, counted by extension with one example (:class:`~semhash.types.PassedOver`):
  unsupported types, hidden files and folders (name starting with ``.``: not walked), files left out by
  ``--include`` / ``--exclude``.

Only regular files are opened (``O_NONBLOCK``, then ``fstat``: a FIFO never blocks, a device is never
read), and at most ``max_file_bytes + 1`` bytes are read from a text file, so a growing file or one whose
size lies cannot fill memory; a larger one is skipped as too large.

Symlinks (issue 18). Before, a symlinked *file* was always followed, wherever it led (so a link to a file
in the same folder indexed it twice, and a link to ``/dev/zero`` read until memory ran out), and a
symlinked *folder* was silently not walked. Now every file is indexed once, under its real path: a link
whose target lies inside the folders given is an alias, noted and not read again; a link leading outside
them is skipped unless ``follow_symlinks`` (``--follow-symlinks``) is set, and then its target is indexed
under the link's path (inside the folders given, so removal and re-indexing stay in scope), once per real
path, folders included (loops are not walked twice). A root given on the command line is resolved first,
so a root that is itself a symlink is followed: it was asked for by name.

A file or folder name that is not valid UTF-8 cannot be stored as the text paths of the index: it is
skipped (``undecodable name``, rename it to index it), shown with its odd bytes as ``\xNN``; the rest of
the folder is indexed.

Memory: reading holds one file at a time (its bytes, or for PDF and the zip formats at most
:data:`~semhash.extract.MAX_EXTRACTED_CHARS` of its text, and its records' texts), never the corpus.
:meth:`CorpusScan.entries` describes every document without keeping its text (path, record, content hash,
length), so an indexer can decide what changed first and read the texts again, a batch at a time, with
:func:`read_documents`.

One module past ~500 lines on purpose: walking a folder and reading its files share one accounting
(:class:`CorpusScan`: read + skipped + passed over = files), which splitting would spread over two modules;
the formats themselves live in :mod:`semhash.extract`.
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import io
import os
import stat
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import semhash.extract as extract_package
from semhash import fileio
from semhash.config import (
    CSV_SUFFIXES,
    DEFAULT_MAX_FILE_MB,
    DOCUMENT_SUFFIXES,
    HTML_SUFFIXES,
    JSON_SUFFIXES,
    TEXT_SUFFIXES,
)
from semhash.errors import CorpusError
from semhash.extract import (
    ALIAS,
    BAD_NAME,
    BROKEN_SYMLINK,
    NOT_REGULAR,
    SYMLINK_OUTSIDE,
    TOO_LARGE,
    UNREADABLE,
    Extraction,
    SkipFile,
    extract,
    extract_text,
    is_document_format,
)
from semhash.extract.html import html_to_text
from semhash.types import FileNote, Locations, PassedOver, SkippedFile, SourceDocument

SUPPORTED_SUFFIXES = TEXT_SUFFIXES + HTML_SUFFIXES + JSON_SUFFIXES + CSV_SUFFIXES + DOCUMENT_SUFFIXES
UNSUPPORTED = "unsupported type"
HIDDEN = "hidden"
EXCLUDED = "excluded"


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
    #: follow symlinks that lead outside the paths given (off: they are skipped with their reason).
    follow_symlinks: bool = False
    #: largest file read, in bytes; a larger one is skipped as "too large".
    max_file_bytes: int = DEFAULT_MAX_FILE_MB * 2**20


@dataclass(frozen=True)
class DocumentEntry:
    """A document found by a scan, without its text: what deciding to (re-)embed it needs."""

    path: str
    record: int
    content_hash: str
    n_chars: int
    mtime: float


def printable(path: str) -> str:
    r"""``path`` safe to print, store or serialise: bytes that are not UTF-8 shown as ``\xNN``."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _valid_name(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _extension(name: str) -> str:
    suffix = os.path.splitext(name)[1].lower()
    return suffix if suffix and _valid_name(suffix) else "(none)"


@dataclass
class _Candidate:
    """A file to read: ``path`` as stored, and whether it was reached through a followed symlink."""

    path: str
    followed: bool


@dataclass
class CorpusScan:
    """Everything found under the roots: documents are yielded by :meth:`documents`, the rest recorded."""

    roots: list[Path]
    options: ReadOptions
    skipped: list[SkippedFile] = field(default_factory=list)
    empty: int = 0
    files: int = 0
    notes: list[FileNote] = field(default_factory=list)
    _passed: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict, repr=False)

    @property
    def passed_over(self) -> list[PassedOver]:
        """Files not read by design, by reason and extension (most first), one example each."""
        rows = [PassedOver(reason, ext, count, example) for (reason, ext), (count, example) in self._passed.items()]
        return sorted(rows, key=lambda p: (p.reason, -p.count, p.extension))

    def documents(self) -> Iterator[SourceDocument]:
        """Yield every non-empty document of every selected file, in sorted path order.

        Memory: one file's documents at a time (a caller that keeps them all holds the corpus).
        """
        for candidate in self._candidates():
            try:
                documents, notes = _file_documents(candidate.path, self.options, candidate.followed)
            except SkipFile as exc:
                self._skip(candidate.path, exc.reason, exc.kind)
                continue
            self.files += 1
            self.notes.extend(notes)
            for doc in documents:
                if doc is None:
                    self.empty += 1
                else:
                    yield doc

    def entries(self) -> Iterator[DocumentEntry]:
        """Like :meth:`documents`, but each text is dropped once hashed: memory is one file, not the corpus."""
        for doc in self.documents():
            yield DocumentEntry(doc.path, doc.record, doc.content_hash, len(doc.text), doc.mtime)

    # -- walking -------------------------------------------------------------------------------------
    def _skip(self, path: str, reason: str, kind: str) -> None:
        self.skipped.append(SkippedFile(printable(path), reason, kind))

    def _pass(self, reason: str, path: str, name: str, folder: bool = False) -> None:
        key = (reason, "(folder)" if folder else _extension(name))
        count, example = self._passed.get(key, (0, printable(path)))
        self._passed[key] = (count + 1, example)

    def _candidates(self) -> Iterator[_Candidate]:
        """Selected files under the roots, sorted, each real file once; the rest recorded as it is met."""
        real_roots = [str(r) for r in self.roots]
        seen: set[str] = set()  # real paths of files yielded (and of the roots' own files)
        walked: set[tuple[int, int]] = set()  # folders walked through followed links: (device, inode)
        for position, root in enumerate(self.roots):
            if root in self.roots[:position] or any(other in root.parents for other in self.roots if other.is_dir()):
                continue  # given twice, or inside another folder given: walked (and counted) once
            if not _valid_name(str(root)):  # every path under it would be one the index cannot store
                what = "folder" if root.is_dir() else "file"
                self._skip(str(root), f"{what} path is not valid UTF-8: rename it to index it", BAD_NAME)
                continue
            if not root.is_dir():
                if str(root) not in seen:
                    seen.add(str(root))
                    if self._selected(root.name, str(root), root.name):
                        yield _Candidate(str(root), False)
                continue
            for candidate in self._walk(str(root), real_roots, walked):
                real = os.path.realpath(candidate.path) if candidate.followed else candidate.path
                if real in seen:
                    if candidate.followed:
                        self._skip(candidate.path, f"the same file as {printable(real)}, read once", ALIAS)
                    continue
                seen.add(real)
                yield candidate

    def _walk(self, root: str, real_roots: list[str], walked: set[tuple[int, int]]) -> Iterator[_Candidate]:
        """Depth first, each folder's files before its subfolders, names sorted; no recursion (any depth)."""
        stack: list[tuple[str, bool]] = [(root, False)]
        while stack:
            folder, followed = stack.pop()
            try:
                with os.scandir(folder) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                self._skip(folder, f"unreadable folder: {exc.strerror or exc}", UNREADABLE)
                continue
            subfolders: list[tuple[str, bool]] = []
            for entry in entries:
                path, name = entry.path, entry.name
                if name.startswith("."):
                    self._pass(HIDDEN, path, name, folder=_is_dir(entry))
                    continue
                if not _valid_name(name):
                    what = "folder" if _is_dir(entry) else "file"
                    self._skip(path, f"{what} name is not valid UTF-8: rename it to index it", BAD_NAME)
                    continue
                if entry.is_symlink():
                    if not _is_dir(entry, follow=True) and not self._selected(os.path.relpath(path, root), path, name):
                        continue  # a link to a file of an unsupported type counts as that, not as a link
                    target = self._symlink(path, real_roots, walked)
                    if target == "folder":
                        subfolders.append((path, True))
                    elif target == "file":
                        yield _Candidate(path, True)
                elif _is_dir(entry):
                    if followed and not self._first_visit(entry, walked):
                        continue
                    subfolders.append((path, followed))
                elif self._selected(os.path.relpath(path, root), path, name):
                    yield _Candidate(path, followed)
            stack.extend(reversed(subfolders))

    def _first_visit(self, entry: os.DirEntry[str], walked: set[tuple[int, int]]) -> bool:
        try:
            info = entry.stat()
        except OSError:
            return False
        key = (info.st_dev, info.st_ino)
        if key in walked:
            return False
        walked.add(key)
        return True

    def _symlink(self, path: str, real_roots: list[str], walked: set[tuple[int, int]]) -> str | None:
        """``"file"`` / ``"folder"`` when the link is to be followed; ``None`` when it was noted and passed."""
        target = os.path.realpath(path)
        try:
            info = os.stat(path)
        except OSError as exc:
            why = "a loop" if exc.errno == errno.ELOOP else "a missing target"
            self._skip(path, f"symlink to {printable(target)}: {why}", BROKEN_SYMLINK)
            return None
        is_folder = stat.S_ISDIR(info.st_mode)
        if any(target == r or target.startswith(r.rstrip(os.sep) + os.sep) for r in real_roots):
            what = "folder" if is_folder else "file"
            self._skip(path, f"symlink to the {what} {printable(target)}, indexed under its real path", ALIAS)
            return None
        if not self.options.follow_symlinks:
            self._skip(
                path,
                f"symlink to {printable(target)}, outside the folders given (--follow-symlinks follows it)",
                SYMLINK_OUTSIDE,
            )
            return None
        if is_folder:
            key = (info.st_dev, info.st_ino)
            if key in walked:
                self._skip(path, f"symlink to the folder {printable(target)}, already walked", ALIAS)
                return None
            walked.add(key)
            return "folder"
        return "file"

    def _selected(self, rel: str, path: str, name: str) -> bool:
        options = self.options
        rel = rel.replace(os.sep, "/")

        def matches(patterns: Sequence[str]) -> bool:
            return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p) for p in patterns)

        if options.exclude and matches(options.exclude):
            self._pass(EXCLUDED, path, name)
            return False
        if options.include:
            if matches(options.include):
                return True
            self._pass(EXCLUDED, path, name)
            return False
        if os.path.splitext(name)[1].lower() in SUPPORTED_SUFFIXES:
            return True
        self._pass(UNSUPPORTED, path, name)
        return False


def _is_dir(entry: os.DirEntry[str], follow: bool = False) -> bool:
    try:
        return entry.is_dir(follow_symlinks=follow)
    except OSError:
        return False


def read_documents(wanted: Mapping[str, Collection[int]], options: ReadOptions) -> Iterator[SourceDocument]:
    """Read again the documents ``wanted`` (records by path), file by file, in the mapping's order.

    For indexing a batch at a time after :meth:`CorpusScan.entries`. A file that became unreadable,
    unparsable or lost a record since the scan yields nothing for it (the next run sees what is there);
    a changed text is yielded as it is now, with its new hash.
    """
    for path, records in wanted.items():
        try:
            documents, _ = _file_documents(path, options, options.follow_symlinks)
        except SkipFile:
            continue
        for doc in documents:
            if doc is not None and doc.record in records:
                yield doc


def open_regular(path: str, max_bytes: int, follow: bool = True) -> tuple[io.BufferedReader, os.stat_result]:
    """Open ``path`` for reading only if it is a regular file of at most ``max_bytes``; raises ``SkipFile``.

    :func:`semhash.fileio.open_regular` (non-blocking open, ``fstat`` on the open descriptor: a FIFO, socket
    or device is refused without a read), with its refusals turned into the skip reasons the summary counts.
    ``follow=False`` refuses a symlink in the last component.
    """
    try:
        handle = fileio.open_regular(path, max_bytes, follow=follow)
    except fileio.NotRegularFileError as exc:
        info = exc.file_stat
        if info is not None and not stat.S_ISREG(info.st_mode):
            raise SkipFile(NOT_REGULAR, f"not a regular file ({_file_type(info.st_mode)})") from None
        raise SkipFile(TOO_LARGE, _too_large(info.st_size if info else max_bytes + 1, max_bytes)) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow:
            raise SkipFile(UNREADABLE, "became a symlink while being indexed") from None
        raise SkipFile(UNREADABLE, f"unreadable: {exc.strerror or exc}") from None
    return handle, os.fstat(handle.fileno())


def _file_type(mode: int) -> str:
    for check, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a folder"),
    ):
        if check(mode):
            return name
    return "not a plain file"


def _too_large(size: int, max_bytes: int) -> str:
    return f"too large: over {max_bytes / 2**20:g} MiB (--max-file-mb raises the limit)" + (
        f", {size / 2**20:.0f} MiB" if size > max_bytes else ""
    )


def _file_documents(
    path: str, options: ReadOptions, follow: bool
) -> tuple[list[SourceDocument | None], list[FileNote]]:
    """One file's documents (``None`` for an empty one) and notes; raises ``SkipFile`` with the reason."""
    suffix = os.path.splitext(path)[1].lower()
    handle, info = open_regular(path, options.max_file_bytes, follow)
    try:
        with handle:
            if is_document_format(suffix):
                extraction = extract(suffix, handle, options.text_field, options.text_column)
            else:
                raw = handle.read(options.max_file_bytes + 1)
                if len(raw) > options.max_file_bytes:
                    raise SkipFile(TOO_LARGE, _too_large(len(raw), options.max_file_bytes))
                extraction = extract_text(suffix, raw, options.text_field, options.text_column)
                del raw
    except OSError as exc:
        raise SkipFile(UNREADABLE, f"unreadable: {exc.strerror or exc}") from None
    except MemoryError:
        raise SkipFile(TOO_LARGE, "too large to read in the memory available") from None
    notes = []
    if extraction.encoding not in (None, "utf-8"):
        notes.append(FileNote(path, "encoding", str(extraction.encoding)))
    if extraction.truncated:
        notes.append(FileNote(path, "truncated", f"{extract_package.MAX_EXTRACTED_CHARS:,}"))
    return _stripped(path, extraction, info.st_mtime), notes


def _stripped(path: str, extraction: Extraction, mtime: float) -> list[SourceDocument | None]:
    out: list[SourceDocument | None] = []
    records = extraction.records
    records.reverse()  # popped from the end, so a text is let go once its document is made
    while records:
        record = records.pop()
        text = record.text.strip()
        if not text:
            out.append(None)
            continue
        locations = _shifted(record.locations, len(record.text) - len(record.text.lstrip()), len(text))
        out.append(SourceDocument(path, record.number, text, content_hash(text), mtime, locations, extraction.encoding))
    return out


def _shifted(locations: Locations | None, lead: int, size: int) -> Locations | None:
    """Boundaries moved by the ``lead`` characters stripped from the text's start, those past its end dropped."""
    if not locations:
        return None
    kept = tuple((max(start - lead, 0), where) for start, where in locations if start - lead < size)
    return kept or None


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
    """Selected files under ``roots`` (files given directly are always considered), sorted, each once."""
    for candidate in CorpusScan(list(roots), options)._candidates():
        yield Path(candidate.path)


def read_file(path: str | Path, options: ReadOptions | None = None) -> list[SourceDocument]:
    """The non-empty documents of one file, read as ``index`` reads it (regular files only, size-capped).

    Raises:
        SkipFile: (a ``ValueError``) why it cannot be read: not a regular file, too large, binary...
    """
    documents, _ = _file_documents(os.fspath(path), options or ReadOptions(), follow=True)
    return [doc for doc in documents if doc is not None]


def read_records(path: Path, raw: bytes, options: ReadOptions) -> Iterator[tuple[int, str]]:
    """``(record number, text)`` pairs of one file's bytes; raises ``ValueError`` (a ``SkipFile``) with a reason."""
    suffix = path.suffix.lower()
    extraction = extract(suffix, io.BytesIO(raw), options.text_field, options.text_column)
    for record in extraction.records:
        yield record.number, record.text


def snippet(text: str, width: int = 160) -> str:
    """The start of a text on one line, cut at ``width`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


__all__ = [
    "SUPPORTED_SUFFIXES",
    "CorpusScan",
    "DocumentEntry",
    "ReadOptions",
    "check_roots",
    "content_hash",
    "html_to_text",
    "iter_files",
    "open_regular",
    "printable",
    "read_documents",
    "read_file",
    "read_records",
    "snippet",
]
