"""An open semhash database: connection, read-only ways in, transactions with one-line errors, ``meta``.

The ``meta`` table holds the database id, the generation every cached file is stamped with, and the
recorded models.

:class:`StoreConnection` is that much of a database; :class:`semhash.store.Store` extends it with the rows.


Opening: a command that writes (:meth:`Store.open` with ``create`` or ``write``) is refused up front with
:class:`ReadOnlyDatabaseError` when the file or its folder cannot be written. A command that reads
opens the file normally (SQLite itself falls back to reading a file it cannot write); in a read-only
folder, where SQLite cannot create the WAL's ``-shm`` file, it opens ``mode=ro``, then ``immutable=1``
(only when no unmerged write-ahead log lies beside the file). Write failures (a full disk, I/O errors)
become one-line :class:`StorageError` errors that name the step that failed; committed rows are kept.

sqlite-utils is imported here, once, with pandas kept out (see below); the rest of the store only names
its types.
"""

from __future__ import annotations

import sqlite3
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import ModuleType
from typing import NoReturn, Self, cast

from semhash.errors import (
    CorruptDatabaseError,
    DatabaseLockedError,
    IndexMissingError,
    ModelMismatchError,
    ReadOnlyDatabaseError,
    SchemaError,
    SemhashError,
    StorageError,
)
from semhash.store.schema import SCHEMA_VERSION, apply_migrations, check_version

# sqlite-utils imports pandas whenever it is installed (the `ray` extra brings it), for DataFrame inserts that
# semhash never makes: a fifth of a cold `semhash query` (0.2 s). A None entry makes that one optional import
# fail as if pandas were absent; it is removed at once, so pandas stays importable for everything else.
_PANDAS_UNLOADED = "pandas" not in sys.modules
if _PANDAS_UNLOADED:
    # sys.modules is typed as holding modules; a None entry is the documented way to block one import.
    sys.modules["pandas"] = cast("ModuleType", None)
try:
    import sqlite_utils
finally:
    if _PANDAS_UNLOADED:
        del sys.modules["pandas"]


def open_connection(
    path: Path, create: bool, busy_timeout_ms: int, write: bool, closable_anywhere: bool = False
) -> tuple[sqlite_utils.Database, int, set[str]]:
    """A connection to the database at ``path``, its schema version and its table names.

    Args:
        path: the database file.
        create: create the file's folder when the file is missing (the file itself is created by SQLite).
        busy_timeout_ms: how long a write waits for another writer's lock.
        write: the caller will write: a database that cannot be written is refused here, before any work.
        closable_anywhere: ``check_same_thread=False`` (see :meth:`semhash.store.Store.open`).

    Raises:
        IndexMissingError: ``create`` is false and there is no database at ``path``.
        SchemaError: the file is not an SQLite database.
        DatabaseLockedError: another process holds the write lock past the busy timeout.
        ReadOnlyDatabaseError: ``write`` and the file or its folder cannot be written (or, reading, no
            read-only way in works).
    """
    exists = path.exists()
    if not create and not exists:
        raise IndexMissingError(f"no index at {path}: run `semhash index DIR` first (or pass --db)")
    if create and not exists:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ReadOnlyDatabaseError(
                f"cannot create {path} ({exc.strerror or exc}): pass a --db in a folder you can write"
            ) from exc
    return _connect_checked(path, busy_timeout_ms, write=write, exists=exists, closable_anywhere=closable_anywhere)


@contextmanager
def atomic(db: sqlite_utils.Database, path: Path, step: str = "writing") -> Iterator[None]:
    """One atomic write on ``db``; expected failures become one-line errors that name ``step``.

    A lock held by someone else is :class:`DatabaseLockedError`, a file that cannot be written
    :class:`ReadOnlyDatabaseError`, a full disk or an I/O error :class:`StorageError`. The
    transaction is rolled back, so every earlier commit stays.
    """
    try:
        with db.atomic():
            yield
    except sqlite3.OperationalError as exc:
        raise_write_error(path, exc, step)


def is_locked(exc: sqlite3.Error) -> bool:
    """Whether a failed statement met another connection's lock (SQLite's "locked" or "busy")."""
    return "locked" in str(exc) or "busy" in str(exc)


def _is_read_only(exc: sqlite3.Error) -> bool:
    name = getattr(exc, "sqlite_errorname", "") or ""
    return name.startswith("SQLITE_READONLY") or "readonly database" in str(exc)


def _is_full(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL" or "database or disk is full" in str(exc)


def read_only_message(path: Path, exc: sqlite3.Error | None = None) -> str:
    """Why a database cannot be written, and what to do: the file itself, or its folder."""
    if exc is not None and getattr(exc, "sqlite_errorname", "") == "SQLITE_READONLY_DIRECTORY":
        what = f"{path} is in a read-only folder ({path.parent}: SQLite must create {path.name}-wal there to write)"
    else:
        what = f"{path} is read-only"
    return (
        f"{what}: this command writes to the index; make it writable or pass another --db "
        "(query, similar, info, dedup and outliers still read it)"
    )


def raise_write_error(path: Path, exc: sqlite3.Error, step: str) -> NoReturn:
    """Raise the one-line error for a failed write (or ``exc`` itself when it is not an expected failure)."""
    error = _write_error(path, exc, step)
    if error is None:
        raise exc
    raise error from exc


def _write_error(path: Path, exc: sqlite3.Error, step: str) -> SemhashError | None:
    if is_locked(exc):
        return DatabaseLockedError(f"{path} is locked by another process: wait for it to finish and rerun")
    if _is_read_only(exc):
        return ReadOnlyDatabaseError(read_only_message(path, exc))
    if _is_full(exc):
        return StorageError(
            f"the disk is full: {step} in {path} failed; everything committed before is kept: "
            "free some space and rerun the same command to resume"
        )
    if getattr(exc, "sqlite_errorname", "").startswith("SQLITE_IOERR"):
        return StorageError(
            f"a disk I/O error ({exc}): {step} in {path} failed; everything committed before is kept: "
            "check the disk and rerun the same command to resume"
        )
    return None


def _connect(
    target: str, busy_timeout_ms: int, uri: bool = False, closable_anywhere: bool = False
) -> sqlite3.Connection:
    return sqlite3.connect(
        target, timeout=busy_timeout_ms / 1000, isolation_level=None, uri=uri, check_same_thread=not closable_anywhere
    )


def _read_only_uris(path: Path) -> Iterator[str]:
    """Read-only ways into a database whose folder cannot be written, safest first.

    ``mode=ro`` works when the WAL's ``-shm`` and ``-wal`` files are there already. ``immutable=1`` reads
    the main file alone, ignoring any log: right only when no write-ahead log with unmerged changes lies
    beside it (a writer that closed cleanly merged and deleted it), so it is not tried otherwise.
    """
    from urllib.parse import quote

    base = "file:" + quote(str(path.absolute()))
    yield base + "?mode=ro"
    wal = Path(f"{path}-wal")
    if not (wal.exists() and wal.stat().st_size > 0):
        yield base + "?mode=ro&immutable=1"


def _connect_checked(
    path: Path, busy_timeout_ms: int, write: bool, exists: bool, closable_anywhere: bool = False
) -> tuple[sqlite_utils.Database, int, set[str]]:
    """A connection, the schema version and the table names; every failure is a one-line error."""
    attempts: list[tuple[str, bool]] = [(str(path), False)]
    if not write and exists:
        attempts += [(uri, True) for uri in _read_only_uris(path)]
    last: sqlite3.Error | None = None
    for target, uri in attempts:
        conn: sqlite3.Connection | None = None
        try:
            conn = _connect(target, busy_timeout_ms, uri=uri, closable_anywhere=closable_anywhere)
            # No sqlite-utils plugins on semhash's connection: semhash uses none, and loading them scans
            # every installed package's entry points (10-30 ms of every cold query).
            db = sqlite_utils.Database(conn, execute_plugins=False)
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = set(db.table_names())
            if write and exists:
                # SQLite opens a file it cannot write read-only without a word, and BEGIN IMMEDIATE
                # succeeds on it: only a real (rolled back) write tells.
                db.execute("BEGIN IMMEDIATE")
                try:
                    db.execute(f"PRAGMA user_version = {int(version)}")
                finally:
                    db.execute("ROLLBACK")
            return db, version, tables
        except sqlite3.DatabaseError as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, sqlite3.OperationalError) and is_locked(exc):
                raise DatabaseLockedError(f"{path} is locked by another process: wait for it to finish") from exc
            if _is_read_only(exc) or getattr(exc, "sqlite_errorname", "") == "SQLITE_CANTOPEN":
                last = exc
                continue  # a read-only way in may still work
            raise SchemaError(f"{path} is not a semhash database ({exc}): pass another --db") from exc
    assert last is not None
    if write:
        if not exists:
            raise ReadOnlyDatabaseError(
                f"cannot create {path} ({last}): pass a --db in a folder you can write"
            ) from last
        raise ReadOnlyDatabaseError(read_only_message(path, last)) from last
    raise ReadOnlyDatabaseError(
        f"cannot read {path} ({last}): it lies in a read-only folder beside a write-ahead log "
        f"({path.name}-wal) that SQLite cannot open; open it once where its folder is writable, "
        "or copy the database with its -wal file elsewhere"
    ) from last


class StoreConnection:
    """An open semhash database: the connection, its transactions and the ``meta`` table.

    :class:`semhash.store.Store` adds the reads and writes of documents, codes and models; open it with
    :meth:`open` and close it (or use ``with``) when done.
    """

    def __init__(self, db: sqlite_utils.Database, path: Path, busy_timeout_ms: int = 5000) -> None:
        """Wrap an open connection (use :meth:`open`, which checks and migrates the file first)."""
        self.db = db
        self.path = path
        self._busy_timeout_ms = busy_timeout_ms

    # -- opening ---------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | Path,
        create: bool = False,
        busy_timeout_ms: int = 5000,
        write: bool | None = None,
        closable_anywhere: bool = False,
    ) -> Self:
        """Open (and with ``create``, create or migrate) the database at ``path``.

        Args:
            path: the database file.
            create: create the file (and its folder) if missing, and migrate an older schema.
            busy_timeout_ms: how long a write waits for another writer's lock.
            write: the caller will write (default: ``create``): a database that cannot be written is then
                refused here, before any work, rather than at the first write.
            closable_anywhere: open the connection with ``check_same_thread=False``, for an owner that uses it
                from one thread but may close it from another (the searcher's per-thread connections).

        Raises:
            IndexMissingError: ``create`` is false and there is no database at ``path``.
            SchemaError: the file is not a semhash database, or a newer semhash wrote it.
            DatabaseLockedError: another process holds the write lock past the busy timeout.
            ReadOnlyDatabaseError: ``write`` and the file or its folder cannot be written.
        """
        path = Path(path)
        write = create if write is None else write
        db, version, tables = open_connection(
            path, create, busy_timeout_ms, write=write, closable_anywhere=closable_anywhere
        )
        check_version(db, path, version, tables, create)
        store = cls(db, path, busy_timeout_ms)
        if version < SCHEMA_VERSION:
            if write or version == 0:
                store._migrate(version)
            else:
                # A reader of an older index upgrades it when it can, and reads it as it is when it cannot
                # (read-only media, a writer busy): every column added since version 1 may be missing.
                with suppress(ReadOnlyDatabaseError, DatabaseLockedError, StorageError):
                    store._migrate(version)
        if store.database_id is None:
            # Databases written before the id existed get one now; a reader tries without waiting and
            # does without when it cannot write (the faiss cache is then rebuilt in memory).
            store._assign_database_id(wait=write)
        return store

    def _assign_database_id(self, wait: bool) -> None:
        if not wait:
            self.db.execute("PRAGMA busy_timeout = 0")
        try:
            with self.transaction("recording the database id"):
                self.set_meta("database_id", uuid.uuid4().hex)
        except (ReadOnlyDatabaseError, DatabaseLockedError, StorageError):
            if wait:
                raise
        finally:
            if not wait:
                self.db.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")

    def _migrate(self, version: int) -> None:
        """Bring the schema from ``version`` up to date in one transaction (a new database: WAL first)."""
        try:
            if version == 0:
                with self.db.ensure_autocommit_on():
                    self.db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as exc:
            raise_write_error(self.path, exc, "creating the database")
        with self.transaction("creating the database"):
            apply_migrations(self.db, version)
            if version == 0:
                self.set_meta("database_id", uuid.uuid4().hex)
            self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    def __enter__(self) -> Self:
        """The database itself, closed when the ``with`` block ends."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the connection."""
        self.close()

    @contextmanager
    def transaction(self, step: str = "writing") -> Iterator[None]:
        """One atomic write; expected failures become one-line errors that name ``step``.

        A lock held by someone else is :class:`DatabaseLockedError`, a file that cannot be written
        :class:`ReadOnlyDatabaseError`, a full disk or an I/O error :class:`StorageError`. The
        transaction is rolled back, so every earlier commit stays.
        """
        with atomic(self.db, self.path, step):
            yield

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads that see one committed state of the database (a read transaction; nested uses are no-ops).

        Without it, a writer committing between two reads (the codes, then the generation) would make a
        faiss file labelled with a newer generation than the codes it holds.
        """
        if self.db.conn.in_transaction:
            yield
            return
        self.db.execute("BEGIN")
        try:
            yield
        finally:
            self.db.execute("COMMIT")

    # -- meta ------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        """A ``meta`` value, or ``None``."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: object) -> None:
        """Set a ``meta`` value (call inside :meth:`transaction`)."""
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [key, str(value)])

    def try_set_meta(self, key: str, value: object) -> bool:
        """Set a ``meta`` value if it can be done at once, for a reader's best-effort note (a renewed runtime seal).

        Returns ``False``, writing nothing, inside a transaction, or when the database is read-only, locked
        or busy (no wait). Such a note never bumps the generation: it changes no code.
        """
        if self.db.conn.in_transaction:
            return False
        self.db.execute("PRAGMA busy_timeout = 0")
        try:
            with self.transaction("recording a note"):
                self.set_meta(key, value)
            return True
        except (SemhashError, sqlite3.Error):
            return False
        finally:
            self.db.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")

    def _int_meta(self, key: str) -> int | None:
        value = self.get_meta(key)
        if value is None or value == "":
            return None
        try:
            return int(value)
        except ValueError:
            raise CorruptDatabaseError(
                f"{self.path} is damaged: meta {key!r} is {value[:40]!r}, not a number; "
                "rebuild the index into a new --db"
            ) from None

    @property
    def generation(self) -> int:
        """Counter bumped with every change to codes; the faiss file records the one it was built at."""
        return self._int_meta("generation") or 0

    @property
    def database_id(self) -> str | None:
        """The database's random id (``None`` for an older database opened where it cannot be written)."""
        return self.get_meta("database_id")

    @property
    def change_id(self) -> str | None:
        """A random id renewed with every generation (``None`` before the first change by this version)."""
        return self.get_meta("change_id")

    def _bump_generation(self) -> None:
        self.set_meta("generation", self.generation + 1)
        self.set_meta("change_id", uuid.uuid4().hex)

    def check_embedding_model(self, name: str, dim: int | None = None) -> None:
        """Record the embedding model on first use; afterwards a different one is an error.

        With ``dim=None`` (the model is not loaded yet) only the name is checked, and nothing is recorded.
        """
        stored = self.get_meta("embedding_model")
        if stored is None:
            if dim is not None:
                with self.transaction("recording the embedding model"):
                    self.set_meta("embedding_model", name)
                    self.set_meta("embedding_dim", dim)
            return
        stored_dim = self._int_meta("embedding_dim") or 0
        if stored != name or (dim is not None and stored_dim != dim):
            asked = f"{name!r} ({dim}-d)" if dim is not None else repr(name)
            raise ModelMismatchError(
                f"{self.path} was built with model {stored!r} ({stored_dim}-d), not {asked}: "
                f"pass --model {stored!r} or use another --db"
            )

    @property
    def embedding_model(self) -> str | None:
        """Name of the embedding model the index was built with."""
        return self.get_meta("embedding_model")

    @property
    def max_windows(self) -> int | None:
        """Most windows embedded per document when this index embeds (0 = all; ``None``: not recorded).

        Indexes built before the cap was recorded have none: their documents were embedded whole unless
        the user asked otherwise, which the index cannot know.
        """
        value = self._int_meta("max_windows")
        if value is not None and value < 0:
            raise CorruptDatabaseError(
                f"{self.path} is damaged: meta 'max_windows' is {value}; rebuild the index into a new --db"
            )
        return value

    @property
    def bits(self) -> int | None:
        """Code length of the active model, if one was trained.

        Read from the active model's row: the one place the code length is stored. (The model's blob holds
        its own shape, needed to rebuild it, and cache sidecars record the length they were built for, to
        be checked against this; a ``meta`` copy written by older versions is ignored.)
        """
        model_id = self._int_meta("model_id")
        if model_id is None:
            return None
        row = self.db.execute("SELECT bits FROM models WHERE id = ?", [model_id]).fetchone()
        if row is None or not isinstance(row[0], int):
            return None
        return int(row[0])
