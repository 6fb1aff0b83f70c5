"""``dedup --write-unique``: copy one document per cluster and every unique one into a new folder.

Paths come from the database, which is untrusted (an index can be shared or edited by hand), so writing
is planned in full and checked before the first byte is written:

* a stored path must be absolute and free of ``..`` segments (``semhash index`` stores resolved paths);
* every output path is resolved and proven to lie inside the output folder (``Path.is_relative_to``);
* no two documents may map to one output path, and no output file may be another one's folder.

Writing itself never follows a symlink: each folder level is opened with ``O_NOFOLLOW`` relative to its
parent's descriptor, and each file is created with ``O_CREAT | O_EXCL | O_NOFOLLOW``, so a symlink planted
in the new folder while it is written makes the write fail instead of landing outside.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import BinaryIO

from semhash.dedup.clusters import DedupResult
from semhash.errors import OutputError, UnsafePathError, UsageError
from semhash.store import Store, StoredDocument

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


def write_unique(result: DedupResult, db_path: str | Path, out_dir: str | Path) -> int:
    """Copy every document that is not a duplicate (one per cluster, and all singletons) into ``out_dir``.

    One-document files are copied (relative layout kept; the stored text when the file is gone); records
    of JSON/JSONL/CSV files are written as JSONL lines ``{"text", "source"}`` in a file of the same
    relative path with ``.jsonl`` appended. The user's files are only read. Returns how many documents
    were written.

    Raises:
        UsageError: ``out_dir`` already exists or cannot be made.
        UnsafePathError: a path from the index would write outside ``out_dir`` (checked before writing).
        OutputError: a file could not be written.
    """
    out = check_new_folder(out_dir)
    drop = set(result.duplicate_ids)
    with Store.open(db_path) as store:
        docs = [d for d in store.iter_documents(batch=10000) if d.code is not None and d.id not in drop]
    if not docs:
        return 0
    plan = plan_unique(docs, out)
    with _new_folder(out) as folder:
        for rel, doc in plan.files.items():
            folder.write(rel, doc.path, doc.text)
        for rel, lines in plan.records.items():
            folder.write(rel, None, "\n".join(lines) + "\n")
    return len(docs)


class _Folder:
    """A folder opened by descriptor, in which files are created without ever following a symlink."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path

    def write(self, rel: PurePath, source: str | None, text: str) -> None:
        """Create ``rel`` (and its folders): a copy of ``source`` when it is a readable file, else ``text``.

        Raises:
            OutputError: the file exists already, a folder on the way is a symlink, or writing failed.
        """
        src = _open_source(source) if source is not None else None
        try:
            with os.fdopen(self._create(rel), "wb") as handle:
                if src is None:
                    handle.write(text.encode("utf-8"))
                else:
                    stat = os.fstat(src.fileno())
                    shutil.copyfileobj(src, handle)
                    handle.flush()
                    # What shutil.copy2 keeps (mode bits, times), set through the descriptor.
                    if os.chmod in os.supports_fd:
                        os.chmod(handle.fileno(), stat.st_mode & 0o7777)
                    if os.utime in os.supports_fd:
                        os.utime(handle.fileno(), ns=(stat.st_atime_ns, stat.st_mtime_ns))
        except OSError as exc:
            raise OutputError(
                f"could not write {_quoted(self.path / rel)}: {exc.strerror or exc}; "
                f"{self.path} is partly written: remove it and run again"
            ) from None
        finally:
            if src is not None:
                src.close()

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


def _open_source(source: str) -> BinaryIO | None:
    """``source`` opened for reading, or ``None`` when it is no longer a readable regular file."""
    path = Path(source)
    try:
        # A FIFO or device at that path would block or never end: only regular files are copied.
        return path.open("rb") if path.is_file() else None
    except OSError:
        return None


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
