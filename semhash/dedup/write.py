"""``dedup --write-unique``: copy one document per cluster and every unique one into a new folder.

Paths come from the database, which is untrusted (an index can be shared or edited by hand), so writing
is planned in full and checked before the first byte is written:

* a stored path must be absolute and free of ``..`` segments (``semhash index`` stores resolved paths);
* every output path is resolved and proven to lie inside the output folder (``Path.is_relative_to``);
* no two documents may map to one output path, and no output file may be another one's folder.

Writing itself never follows a symlink: each folder level is opened with ``O_NOFOLLOW`` relative to its
parent's descriptor, and each file is created with ``O_CREAT | O_EXCL | O_NOFOLLOW``, so a symlink planted
in the new folder while it is written makes the write fail instead of landing outside.

What is read is checked too: a crafted index could name ``~/.ssh/id_rsa`` as a document's path, and a
plain copy would put that key in the output folder. A file is copied only when re-reading it through the
corpus reader (:func:`semhash.corpus.read_records`, as ``semhash index`` read it) gives the stored
``content_hash``, and that hash is the stored text's own; the bytes checked are the bytes written (read
once, into memory). Otherwise the stored text is written instead, and the summary counts it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path, PurePath

from semhash.corpus import ReadOptions, content_hash, read_records
from semhash.dedup.clusters import DedupResult
from semhash.errors import OutputError, UnsafePathError, UsageError
from semhash.store import Store, StoredDocument
from semhash.types import WriteSummary

_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)


def check_new_folder(path: str | Path) -> Path:
    """``path`` if nothing is there yet and it can be made (checked before any work), else :class:`UsageError`.

    A dangling symlink counts as something there: ``Path.exists`` says no, but creating the folder fails.
    """
    out = Path(path)
    if os.path.lexists(out):
        what = "is a symlink to a missing target" if out.is_symlink() and not out.exists() else "already exists"
        raise UsageError(f"--write-unique {out} {what}: give a new folder (nothing is overwritten)")
    parent = out.absolute().parent
    while not os.path.lexists(parent):
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"--write-unique {out}: {parent} is not a folder: give a new folder under an existing one")
    return out


@dataclass
class WritePlan:
    """What goes where, relative to the output folder: copied files and JSONL files of records."""

    files: dict[PurePath, StoredDocument]
    records: dict[PurePath, list[str]]

    @property
    def targets(self) -> list[PurePath]:
        """Every output path, files first."""
        return [*self.files, *self.records]


def plan_unique(docs: Sequence[StoredDocument], out: Path) -> WritePlan:
    """Relative output path of every document, each one proven to stay inside ``out``.

    One-document files keep their layout relative to the common folder of all documents; records of
    JSON/JSONL/CSV files become lines of ``<relative path>.jsonl``.

    Raises:
        UnsafePathError: a stored path is not absolute and normalised, or its output would leave ``out``
            or collide with another document's.
    """
    if not docs:
        return WritePlan({}, {})
    for doc in docs:
        _check_stored_path(doc)
    parents = {str(Path(d.path).parent) for d in docs}
    root = Path(os.path.commonpath(sorted(parents)))
    plan = WritePlan({}, {})
    for doc in docs:
        path = Path(doc.path)
        rel = PurePath(path.relative_to(root) if path.is_relative_to(root) else path.name)
        if doc.record:
            rel = rel.with_name(rel.name + ".jsonl")
            plan.records.setdefault(rel, []).append(
                json.dumps({"text": doc.text, "source": doc.location}, ensure_ascii=False)
            )
        elif rel in plan.files:
            raise UnsafePathError(
                f"documents {plan.files[rel].id} and {doc.id} would both be written to {_quoted(out / rel)}: "
                "nothing was written; fix the paths in the index (re-index) and run again"
            )
        else:
            plan.files[rel] = doc
    _check_inside(out, plan.targets)
    return plan


def _check_stored_path(doc: StoredDocument) -> None:
    path = PurePath(doc.path)
    if "\x00" in doc.path or not path.is_absolute() or ".." in path.parts or path.name in ("", ".", ".."):
        raise UnsafePathError(
            f"document {doc.id} has the path {doc.path!r} in the index, not an absolute, normalised file path "
            "(was the database edited?): nothing was written; re-index the files or remove that document"
        )


def _quoted(path: PurePath) -> str:
    """A path from the index, shown on one line (a file name may hold a newline)."""
    text = str(path)
    return text if text.isprintable() else repr(text)


def _check_inside(out: Path, targets: Sequence[PurePath]) -> None:
    """Prove every ``out / target`` resolves inside ``out``, and that no target is another one's folder."""
    base = out.resolve()
    folders = {parent for target in targets for parent in target.parents}
    seen: set[PurePath] = set()
    for target in targets:
        if target in seen:
            raise UnsafePathError(
                f"two documents would be written to {_quoted(out / target)}: nothing was written; fix the index"
            )
        seen.add(target)
        full = (base / target).resolve()
        if target.is_absolute() or full == base or not full.is_relative_to(base):
            raise UnsafePathError(
                f"{_quoted(target)} would be written outside {out}: nothing was written; fix the index"
            )
        if target in folders:
            raise UnsafePathError(
                f"{_quoted(out / target)} would be both a file and a folder: nothing was written; fix the index"
            )


#: Largest source file copied as is (a larger one gets its stored text): the copy is held in memory once.
MAX_COPY_BYTES = 64 << 20


def write_unique(result: DedupResult, db_path: str | Path, out_dir: str | Path) -> WriteSummary:
    """Copy every document that is not a duplicate (one per cluster, and all singletons) into ``out_dir``.

    One-document files are copied (relative layout kept) when their current content is the indexed one
    (see the module docstring), else their stored text is written; records of JSON/JSONL/CSV files are
    written as JSONL lines ``{"text", "source"}`` in a file of the same relative path with ``.jsonl``
    appended. The user's files are only read.

    Raises:
        UsageError: ``out_dir`` already exists or cannot be made.
        UnsafePathError: a path from the index would write outside ``out_dir`` (checked before writing).
        OutputError: a file could not be written.
    """
    out = check_new_folder(out_dir)
    drop = set(result.duplicate_ids)
    with Store.open(db_path) as store:
        docs = [d for d in store.iter_documents(batch=10000) if d.code is not None and d.id not in drop]
        hashes = dict(store.db.execute("SELECT id, content_hash FROM documents").fetchall()) if docs else {}
    if not docs:
        return WriteSummary()
    plan = plan_unique(docs, out)
    copied = 0
    with _new_folder(out) as folder:
        for rel, doc in plan.files.items():
            data = verified_source(doc, hashes.get(doc.id))
            copied += data is not None
            folder.write(rel, data, doc.text)
        for rel, lines in plan.records.items():
            folder.write(rel, None, "\n".join(lines) + "\n")
    n_files = len(plan.files)
    return WriteSummary(len(docs), copied, n_files - copied, len(docs) - n_files)


def verified_source(doc: StoredDocument, stored_hash: str | None) -> SourceBytes | None:
    """The bytes of ``doc.path`` when they are what the index describes, else ``None``.

    They are, when the corpus reader gives, from these very bytes, one document whose text hashes to the
    stored ``content_hash``, and the stored text hashes to it too. A path crafted to name another file
    (a key, a password file) fails: its attacker cannot know the victim's file content, and a stored hash
    copied from a guessable file would not match the stored text.
    """
    if stored_hash is None or content_hash(doc.text) != stored_hash:
        return None
    source = _read_source(doc.path)
    if source is None:
        return None
    try:
        records = read_records(Path(doc.path), source.data, ReadOptions())
        texts = [text.strip() for record, text in records if record == 0]
    except ValueError:  # binary, not UTF-8, unparsable: not the document that was indexed
        return None
    return source if len(texts) == 1 and content_hash(texts[0]) == stored_hash else None


class _Folder:
    """A folder opened by descriptor, in which files are created without ever following a symlink."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path

    def write(self, rel: PurePath, source: SourceBytes | None, text: str) -> None:
        """Create ``rel`` (and its folders): ``source``'s checked bytes when given, else ``text``.

        Raises:
            OutputError: the file exists already, a folder on the way is a symlink, or writing failed.
        """
        try:
            with os.fdopen(self._create(rel), "wb") as handle:
                if source is None:
                    handle.write(text.encode("utf-8"))
                else:
                    handle.write(source.data)
                    handle.flush()
                    # What shutil.copy2 keeps (mode bits, times), set through the descriptor.
                    if os.chmod in os.supports_fd:
                        os.chmod(handle.fileno(), source.mode & 0o7777)
                    if os.utime in os.supports_fd:
                        os.utime(handle.fileno(), ns=source.times_ns)
        except OSError as exc:
            raise OutputError(
                f"could not write {_quoted(self.path / rel)}: {exc.strerror or exc}; "
                f"{self.path} is partly written: remove it and run again"
            ) from None

    def _create(self, rel: PurePath) -> int:
        """A new file's descriptor, each folder on the way made and opened with ``O_NOFOLLOW``."""
        fds = [self.fd]
        try:
            for name in rel.parts[:-1]:
                # Made for an earlier file, maybe; O_NOFOLLOW below refuses it if it is a symlink.
                with suppress(FileExistsError):
                    os.mkdir(name, dir_fd=fds[-1])
                fds.append(os.open(name, _DIR_FLAGS, dir_fd=fds[-1]))
            return os.open(rel.name, _FILE_FLAGS, 0o666, dir_fd=fds[-1])
        finally:
            for fd in fds[1:]:
                os.close(fd)


@dataclass(frozen=True)
class SourceBytes:
    """A source file's content, read once, with the mode bits and times a copy keeps."""

    data: bytes
    mode: int
    times_ns: tuple[int, int]


def _read_source(source: str) -> SourceBytes | None:
    """``source``'s bytes, or ``None`` when it is not a readable regular file of at most ``MAX_COPY_BYTES``."""
    path = Path(source)
    try:
        # A FIFO or device at that path would block or never end: only regular files are copied.
        if not path.is_file():
            return None
        with path.open("rb") as handle:
            stat = os.fstat(handle.fileno())
            if stat.st_size > MAX_COPY_BYTES:
                return None
            data = handle.read(MAX_COPY_BYTES + 1)
    except OSError:
        return None
    if len(data) > MAX_COPY_BYTES:
        return None
    return SourceBytes(data, stat.st_mode, (stat.st_atime_ns, stat.st_mtime_ns))


@contextmanager
def _new_folder(out: Path) -> Iterator[_Folder]:
    """Create ``out`` (it must not exist) and yield it opened by descriptor."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.mkdir()
        fd = os.open(out, _DIR_FLAGS)
    except OSError as exc:
        raise UsageError(
            f"--write-unique {out}: cannot create it ({exc.strerror or exc}): give a new folder you can write to"
        ) from None
    try:
        yield _Folder(fd, out)
    finally:
        os.close(fd)
