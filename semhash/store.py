"""SQLite storage, the source of truth: documents, their embeddings and codes, and the hashing model.

Schema (version 3; ``PRAGMA user_version`` holds the version, migrations run in order):

* ``documents``: ``id`` INTEGER PRIMARY KEY (= the faiss id), ``path`` TEXT, ``record`` INTEGER (0 for
  one-document files, 1.. for JSON/JSONL/CSV records), ``content_hash`` TEXT (sha256 of the text),
  ``text`` TEXT, ``n_chars`` INTEGER, ``mtime`` REAL, ``embedding`` BLOB (float32, little-endian),
  ``code`` INTEGER (see :mod:`semhash.codes`; NULL until encoded; any other value than an integer in the
  active model's range is damage, refused with a :class:`CorruptDatabaseError` that names ``semhash train``),
  ``recon_error`` REAL (1 - cosine of the embedding and its reconstruction from the code), ``indexed_at``
  TEXT, and since version 2 ``locations`` TEXT (JSON ``[[char_offset, page], ...]``: where each PDF page or
  PPTX/ODP slide starts in ``text``; NULL for formats without pages) and ``encoding`` TEXT (the encoding a
  text file was decoded from). ``(path, record)`` is unique.
* ``documents_fts`` (version 3): the keyword index, an SQLite FTS5 table over ``documents.text`` with
  external content (``content='documents'``, ``content_rowid='id'``: the text is stored once, in
  ``documents``), tokenizer ``porter unicode61 remove_diacritics 2``. Three triggers on ``documents``
  (``documents_fts_insert``, ``documents_fts_delete``, ``documents_fts_update``, the last only ``UPDATE OF
  text``) keep it in step inside the same transaction as every write, whichever code path writes; the
  migration builds it for the rows already there. Query it with ``SELECT rowid, bm25(documents_fts) FROM
  documents_fts WHERE documents_fts MATCH ?``.
* ``models``: every trained hashing model: ``id``, ``created_at``, ``bits``, ``input_dim``,
  ``config`` JSON, ``stats`` JSON, ``trained_on`` (documents), ``weights`` BLOB. The newest is active.
* ``encoders`` (created by the first ``semhash train --adapt``, so older databases need no migration):
  every adapted encoder (:mod:`semhash.adapted`): ``id``, ``created_at``, ``name`` (the recorded
  embedding-model name, ``<base>#adapted-<checksum>``), ``config`` JSON, ``stats`` JSON, ``weights`` BLOB
  (the adapted top layers only). The one named by ``meta.embedding_model`` is in use; older rows keep
  their history and lose their weights.
* ``meta``: ``key``/``value`` pairs: ``embedding_model``, ``embedding_dim``, ``database_id``
  (a random uuid4 given at creation, or at the first open for writing of an older database),
  ``generation`` (bumped in the same transaction as every change to codes) and ``change_id`` (a fresh
  random id with every bump, so two copies of one database that diverge never share a state). The faiss
  file records all three, so a stale file, or one from another database, is never served. ``model_id``
  names the active model: it changes in the same transaction as every code (``semhash train``), so codes
  and model never disagree. ``runtime_seal``: what ``<db>.runtime/`` held when the index exported it
  (:mod:`semhash.runtime.seal`); queries use no other folder.

Opening: a command that writes (:meth:`Store.open` with ``create`` or ``write``) is refused up front with
:class:`ReadOnlyDatabaseError` when the file or its folder cannot be written. A command that reads
opens the file normally (SQLite itself falls back to reading a file it cannot write); in a read-only
folder, where SQLite cannot create the WAL's ``-shm`` file, it opens ``mode=ro``, then ``immutable=1``
(only when no unmerged write-ahead log lies beside the file). Write failures (a full disk, I/O errors)
become one-line :class:`StorageError` errors that name the step that failed; committed rows are kept.

The store never imports torch or faiss.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from semhash.errors import (
    CorruptDatabaseError,
    CorruptModelError,
    DatabaseLockedError,
    IndexMissingError,
    ModelMismatchError,
    ReadOnlyDatabaseError,
    SchemaError,
    SemhashError,
    StorageError,
)
from semhash.types import Locations, SourceDocument, format_location, locations_from_json, locations_to_json

# sqlite-utils imports pandas whenever it is installed (the `ray` extra brings it), for DataFrame inserts that
# semhash never makes: a fifth of a cold `semhash query` (0.2 s). A None entry makes that one optional import
# fail as if pandas were absent; it is removed at once, so pandas stays importable for everything else.
_PANDAS_UNLOADED = "pandas" not in sys.modules
if _PANDAS_UNLOADED:
    sys.modules["pandas"] = None  # type: ignore[assignment]
try:
    import sqlite_utils
finally:
    if _PANDAS_UNLOADED:
        del sys.modules["pandas"]

SCHEMA_VERSION = 3
#: The largest hashing-model blob read back (a model with a big lexical vocabulary takes tens of MB);
#: anything larger is damaged or crafted, and is refused before it is loaded.
MAX_MODEL_BYTES = 512 * 2**20


def _migrate_1(db: sqlite_utils.Database) -> None:
    db.table("documents").create(
        {
            "id": int,
            "path": str,
            "record": int,
            "content_hash": str,
            "text": str,
            "n_chars": int,
            "mtime": float,
            "embedding": bytes,
            "code": int,
            "recon_error": float,
            "indexed_at": str,
        },
        pk="id",
    )
    db.table("documents").create_index(["path", "record"], unique=True)
    db.table("documents").create_index(["content_hash"])
    db.table("documents").create_index(["code"])
    db.table("models").create(
        {
            "id": int,
            "created_at": str,
            "bits": int,
            "input_dim": int,
            "config": str,
            "stats": str,
            "trained_on": int,
            "weights": bytes,
        },
        pk="id",
    )
    db.table("meta").create({"key": str, "value": str}, pk="key")


def _migrate_2(db: sqlite_utils.Database) -> None:
    """Where a document's pages or slides start (JSON ``[[char_offset, page], ...]``, :func:`semhash.types.page_at`)
    and the encoding its file was decoded from; both NULL for documents indexed before (and for formats
    without pages, or not decoded from text)."""
    db.execute("ALTER TABLE documents ADD COLUMN locations TEXT")
    db.execute("ALTER TABLE documents ADD COLUMN encoding TEXT")


#: The keyword index (schema version 3): see the module docstring.
FTS_TABLE = "documents_fts"
FTS_TOKENIZER = "porter unicode61 remove_diacritics 2"


def _migrate_3(db: sqlite_utils.Database) -> None:
    """The keyword index: an external-content FTS5 table over ``documents.text``, kept in step by triggers.

    Not sqlite-utils' ``enable_fts(create_triggers=True)``: its update trigger fires on every column, so
    storing codes (``semhash train`` rewrites every row's ``code``) would delete and re-insert every
    document's terms; ours fires on ``UPDATE OF text`` only. Triggers (not calls in ingest) because then
    every writer, whatever SQL it uses, keeps the index in step in its own transaction.
    """
    db.execute(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5(text, content='documents', content_rowid='id',"
        f" tokenize='{FTS_TOKENIZER}')"
    )
    db.execute(
        f"CREATE TRIGGER IF NOT EXISTS {FTS_TABLE}_insert AFTER INSERT ON documents BEGIN"
        f" INSERT INTO {FTS_TABLE}(rowid, text) VALUES (new.id, new.text); END"
    )
    db.execute(
        f"CREATE TRIGGER IF NOT EXISTS {FTS_TABLE}_delete AFTER DELETE ON documents BEGIN"
        f" INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, text) VALUES ('delete', old.id, old.text); END"
    )
    db.execute(
        f"CREATE TRIGGER IF NOT EXISTS {FTS_TABLE}_update AFTER UPDATE OF text ON documents BEGIN"
        f" INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, text) VALUES ('delete', old.id, old.text);"
        f" INSERT INTO {FTS_TABLE}(rowid, text) VALUES (new.id, new.text); END"
    )
    db.execute(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')")


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_migrate_1, _migrate_2, _migrate_3]


@dataclass(frozen=True)
class StoredDocument:
    """A document row, without its embedding."""

    id: int
    path: str
    record: int
    text: str
    code: int | None
    recon_error: float | None
    mtime: float

    @property
    def location(self) -> str:
        """``path`` or ``path#record``."""
        return format_location(self.path, self.record)


@dataclass(frozen=True)
class StoredModel:
    """The active hashing model as stored in the ``models`` table (see the schema above).

    Attributes:
        id: its row id (``meta.model_id`` names the active one).
        created_at: ISO 8601 UTC time of its training.
        bits: code length.
        input_dim: embedding length it reads.
        config: the training config (JSON object; empty when unreadable).
        stats: the training statistics (JSON object; empty when unreadable).
        trained_on: documents it was trained on.
        weights: the serialised model (:func:`semhash.model.model_to_bytes`); ``None`` when lost.
    """

    id: int
    created_at: str
    bits: int
    input_dim: int
    config: dict
    stats: dict
    trained_on: int
    weights: bytes | None = field(default=None, repr=False)

    @property
    def checksum(self) -> str:
        """sha256 of the weights blob: ties an exported runtime's hasher to this very model."""
        return hashlib.sha256(self.weights or b"").hexdigest()


def _code_range(bits: int | None) -> tuple[int, int]:
    """The integers a stored code may be: ``[0, 2**bits)``, or SQLite's whole int64 range for 64-bit codes."""
    if bits is None or bits >= 64:
        return -(1 << 63), (1 << 63) - 1
    return 0, (1 << bits) - 1


def _is_code(value: object, bits: int | None) -> bool:
    """Whether a stored ``code`` value is one (an integer in range), not damage (text, blob, real, too large)."""
    low, high = _code_range(bits)
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _is_locked(exc: sqlite3.Error) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


def _is_read_only(exc: sqlite3.Error) -> bool:
    name = getattr(exc, "sqlite_errorname", "") or ""
    return name.startswith("SQLITE_READONLY") or "readonly database" in str(exc)


def _is_full(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL" or "database or disk is full" in str(exc)


def _read_only_message(path: Path, exc: sqlite3.Error | None = None) -> str:
    """Why a database cannot be written, and what to do: the file itself, or its folder."""
    if exc is not None and getattr(exc, "sqlite_errorname", "") == "SQLITE_READONLY_DIRECTORY":
        what = f"{path} is in a read-only folder ({path.parent}: SQLite must create {path.name}-wal there to write)"
    else:
        what = f"{path} is read-only"
    return (
        f"{what}: this command writes to the index; make it writable or pass another --db "
        "(query, similar, info, dedup and outliers still read it)"
    )


def _raise_write_error(path: Path, exc: sqlite3.Error, step: str) -> NoReturn:
    """Raise the one-line error for a failed write (or ``exc`` itself when it is not an expected failure)."""
    error = _write_error(path, exc, step)
    if error is None:
        raise exc
    raise error from exc


def _write_error(path: Path, exc: sqlite3.Error, step: str) -> SemhashError | None:
    if _is_locked(exc):
        return DatabaseLockedError(f"{path} is locked by another process: wait for it to finish and rerun")
    if _is_read_only(exc):
        return ReadOnlyDatabaseError(_read_only_message(path, exc))
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


class Store:
    """One semhash database. Open it with :meth:`open`; close it (or use ``with``) when done."""

    def __init__(self, db: sqlite_utils.Database, path: Path, busy_timeout_ms: int = 5000) -> None:
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
    ) -> Store:
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
        db, version, tables = cls._connect_checked(
            path, busy_timeout_ms, write=write, exists=exists, closable_anywhere=closable_anywhere
        )
        if version > SCHEMA_VERSION:
            db.close()
            raise SchemaError(
                f"{path} has schema version {version}, newer than this semhash reads ({SCHEMA_VERSION}): "
                "upgrade semhash"
            )
        if version == 0 and tables:
            db.close()
            raise SchemaError(f"{path} is an SQLite database but not a semhash index: pass another --db")
        store = cls(db, path, busy_timeout_ms)
        if version < SCHEMA_VERSION:
            if not create and version == 0:
                db.close()
                raise IndexMissingError(f"{path} holds no semhash index: run `semhash index DIR` first")
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

    @classmethod
    def _connect_checked(
        cls, path: Path, busy_timeout_ms: int, write: bool, exists: bool, closable_anywhere: bool = False
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
                if isinstance(exc, sqlite3.OperationalError) and _is_locked(exc):
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
            raise ReadOnlyDatabaseError(_read_only_message(path, last)) from last
        raise ReadOnlyDatabaseError(
            f"cannot read {path} ({last}): it lies in a read-only folder beside a write-ahead log "
            f"({path.name}-wal) that SQLite cannot open; open it once where its folder is writable, "
            "or copy the database with its -wal file elsewhere"
        ) from last

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
        try:
            if version == 0:
                with self.db.ensure_autocommit_on():
                    self.db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as exc:
            _raise_write_error(self.path, exc, "creating the database")
        with self.transaction("creating the database"):
            for step in range(version, SCHEMA_VERSION):
                MIGRATIONS[step](self.db)
            if version == 0:
                self.set_meta("database_id", uuid.uuid4().hex)
            self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self, step: str = "writing") -> Iterator[None]:
        """One atomic write; expected failures become one-line errors that name ``step``.

        A lock held by someone else is :class:`DatabaseLockedError`, a file that cannot be written
        :class:`ReadOnlyDatabaseError`, a full disk or an I/O error :class:`StorageError`. The
        transaction is rolled back, so every earlier commit stays.
        """
        try:
            with self.db.atomic():
                yield
        except sqlite3.OperationalError as exc:
            _raise_write_error(self.path, exc, step)

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

    # -- documents -------------------------------------------------------------------------------
    def count(self, encoded_only: bool = False) -> int:
        """Number of documents (with a code, if ``encoded_only``)."""
        where = " WHERE code IS NOT NULL" if encoded_only else ""
        return self.db.execute(f"SELECT count(*) FROM documents{where}").fetchone()[0]

    def document_states(self) -> dict[tuple[str, int], tuple[int, str, bool]]:
        """``(path, record) -> (id, content_hash, has a sound embedding)`` for every document.

        An embedding of the wrong size (a damaged row) counts as missing, so indexing embeds it again.
        """
        size = 4 * (self._int_meta("embedding_dim") or 0)
        rows = self.db.execute(
            "SELECT path, record, id, content_hash, embedding IS NOT NULL AND (? = 0 OR length(embedding) = ?)"
            " FROM documents",
            [size, size],
        )
        return {(p, r): (i, h, bool(e)) for p, r, i, h, e in rows}

    def upsert_documents(self, documents: Sequence[SourceDocument], embeddings: np.ndarray) -> list[int]:
        """Insert or replace documents with their embeddings, in one transaction; codes reset to NULL.

        Returns the ids of the rows, in order.
        """
        ids = []
        now = _now()
        with self.transaction(f"storing {len(documents)} embedded documents"):
            for doc, vector in zip(documents, np.asarray(embeddings, dtype="<f4"), strict=True):
                blob = vector.tobytes()
                cursor = self.db.execute(
                    "INSERT INTO documents (path, record, content_hash, text, n_chars, mtime, embedding, code,"
                    " recon_error, indexed_at, locations, encoding) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?, ?)"
                    " ON CONFLICT(path, record) DO UPDATE SET content_hash = excluded.content_hash,"
                    " text = excluded.text, n_chars = excluded.n_chars, mtime = excluded.mtime,"
                    " embedding = excluded.embedding, code = NULL, recon_error = NULL,"
                    " indexed_at = excluded.indexed_at, locations = excluded.locations,"
                    " encoding = excluded.encoding RETURNING id",
                    [
                        *(doc.path, doc.record, doc.content_hash, doc.text, len(doc.text), doc.mtime, blob, now),
                        *(locations_to_json(doc.locations), doc.encoding),
                    ],
                )
                ids.append(cursor.fetchone()[0])
            self._bump_generation()
        return ids

    def document_locations(self, ids: Sequence[int]) -> dict[int, Locations]:
        """Where the pages or slides of documents start (``{id: ((char_offset, page), ...)}``), for those that
        have pages; :func:`semhash.types.page_at` finds a character's page. Empty for an index older than
        the column (read where it could not be upgraded)."""
        out: dict[int, Locations] = {}
        try:
            rows = list(self._rows_by_id("id, locations", ids))
        except sqlite3.OperationalError:  # no such column: an older index opened read-only
            return out
        for doc_id, stored in rows:
            locations = locations_from_json(stored)
            if locations is not None:
                out[int(doc_id)] = locations
        return out

    def has_keyword_index(self) -> bool:
        """Whether the keyword index exists (an index older than schema 3, read where it could not be
        upgraded, has none)."""
        row = self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [FTS_TABLE])
        return row.fetchone() is not None

    def keyword_search(self, match: str, limit: int) -> list[tuple[int, float]]:
        """``(id, bm25)`` of the best ``limit`` documents for an FTS5 ``MATCH`` expression, best first.

        ``bm25`` is FTS5's (lower is better; ties by id). Raises ``sqlite3.OperationalError`` when
        ``match`` is not valid FTS5 syntax (:func:`semhash.search.keyword_hits` then reads it as words).
        """
        rows = self.db.execute(
            f"SELECT rowid, bm25({FTS_TABLE}) AS score FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH ?"
            " ORDER BY score, rowid LIMIT ?",
            [match, int(limit)],
        )
        return [(int(i), float(score)) for i, score in rows]

    def content_hashes(self, ids: Sequence[int]) -> dict[int, str]:
        """``{id: content_hash}`` of these documents (missing ids left out)."""
        return {int(i): str(h) for i, h in self._rows_by_id("id, content_hash", ids)}

    def locations_with_hashes(self, hashes: Sequence[str]) -> dict[str, list[tuple[int, str, int]]]:
        """Every document holding one of these contents: ``{content_hash: [(id, path, record), ...]}``, id order."""
        out: dict[str, list[tuple[int, str, int]]] = {}
        unique = sorted(set(hashes))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                f"SELECT content_hash, id, path, record FROM documents WHERE content_hash IN ({marks}) ORDER BY id",
                chunk,
            )
            for h, i, path, record in rows:
                out.setdefault(str(h), []).append((int(i), str(path), int(record)))
        return out

    def delete_documents(self, ids: Sequence[int]) -> int:
        """Delete documents by id, in one transaction. Returns how many went."""
        if not ids:
            return 0
        with self.transaction(f"removing {len(ids)} documents"):
            for start in range(0, len(ids), 500):
                chunk = list(ids[start : start + 500])
                marks = ",".join("?" * len(chunk))
                self.db.execute(f"DELETE FROM documents WHERE id IN ({marks})", chunk)
            self._bump_generation()
        return len(ids)

    def ids_without_code(self) -> list[int]:
        """Documents embedded but not yet encoded (new, changed, or interrupted before encoding)."""
        return [r[0] for r in self.db.execute("SELECT id FROM documents WHERE code IS NULL ORDER BY id")]

    def set_codes(self, ids: Sequence[int], codes: Sequence[int], recon_errors: Sequence[float]) -> None:
        """Store codes (SQLite integer form) and reconstruction errors, in one transaction."""
        with self.transaction(f"storing the codes of {len(ids)} documents"):
            self.db.conn.executemany(
                "UPDATE documents SET code = ?, recon_error = ? WHERE id = ?",
                [(int(c), float(e), int(i)) for i, c, e in zip(ids, codes, recon_errors, strict=True)],
            )
            self._bump_generation()

    def clear_codes(self) -> None:
        """Forget every code (before re-encoding with a new model)."""
        with self.transaction("clearing the old codes"):
            self.db.execute("UPDATE documents SET code = NULL, recon_error = NULL")
            self._bump_generation()

    def embeddings(self, ids: Sequence[int] | None = None, dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, (n, dim) float32 embeddings)`` for the given ids (all documents when ``None``), id order."""
        dim = dim or self._int_meta("embedding_dim") or 0
        if ids is None:
            expected = self.db.execute("SELECT count(*) FROM documents WHERE embedding IS NOT NULL").fetchone()[0]
            rows = self.db.execute("SELECT id, embedding FROM documents WHERE embedding IS NOT NULL ORDER BY id")
            return self._embedding_rows(rows, dim, int(expected))
        pairs = sorted(self._rows_by_id("id, embedding", ids))
        return self._embedding_rows(iter(pairs), dim, len(pairs))

    def _embedding_rows(self, rows: Iterator[Any], dim: int, expected: int) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, matrix)`` of ``(id, blob)`` rows, written straight into one float32 array (at 10^6 x 384,
        a list of blobs, their join and a copy held 4.6 GB at once; this holds the 1.5 GB matrix)."""
        out_ids = np.empty(expected, np.int64)
        matrix = np.empty((expected, dim), np.float32)
        count = 0
        damaged = []
        for doc_id, blob in rows:
            if not isinstance(blob, bytes) or len(blob) != 4 * dim:
                damaged.append(doc_id)
                continue
            if count == len(out_ids):  # rows added since the count: grow
                out_ids = np.concatenate([out_ids, np.empty(max(1, count), np.int64)])
                matrix = np.concatenate([matrix, np.empty((max(1, count), dim), np.float32)])
            out_ids[count] = doc_id
            matrix[count] = np.frombuffer(blob, dtype="<f4")
            count += 1
        if damaged:
            raise CorruptDatabaseError(
                f"{self.path}: {len(damaged)} stored embeddings are damaged (document id {damaged[0]} is not "
                f"{dim} float32 values): rerun `semhash index` on their folders to embed them again"
            )
        return out_ids[:count], matrix[:count]

    def texts(self, ids: Sequence[int]) -> list[str]:
        """The texts of documents, in the order of ``ids`` (every id must exist)."""
        found = dict(self._rows_by_id("id, text", ids))
        return [found[int(i)] for i in ids]

    def codes(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, codes)`` of every encoded document as int64 arrays (SQLite integer form), id order.

        Raises:
            CorruptDatabaseError: a stored code is not an integer of the active model's code length.
        """
        low, high = _code_range(self.bits)
        bad = self.db.execute(
            "SELECT id, code FROM documents WHERE code IS NOT NULL"
            " AND (typeof(code) != 'integer' OR code < ? OR code > ?) LIMIT 1",
            [low, high],
        ).fetchone()
        if bad is not None:
            self._damaged_code(*bad)
        rows = self.db.execute("SELECT id, code FROM documents WHERE code IS NOT NULL ORDER BY id").fetchall()
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        arr = np.array(rows, dtype=np.int64)
        return arr[:, 0].copy(), arr[:, 1].copy()

    def documents(self, ids: Sequence[int]) -> dict[int, StoredDocument]:
        """Rows by id (missing ids are left out)."""
        rows = list(self._rows_by_id("id, path, record, text, code, recon_error, mtime", ids))
        check = self._code_check()
        return {row[0]: check(StoredDocument(*row)) for row in rows}

    def _code_check(self) -> Callable[[StoredDocument], StoredDocument]:
        """A check of each row's code (see :meth:`codes`), for the reads that build :class:`StoredDocument`."""
        bits = self.bits

        def check(doc: StoredDocument) -> StoredDocument:
            if doc.code is not None and not _is_code(doc.code, bits):
                self._damaged_code(doc.id, doc.code)
            return doc

        return check

    def _damaged_code(self, doc_id: int, value: object) -> NoReturn:
        """Refuse a damaged code: a crafted or damaged database must not be read as if it were sound."""
        bits = self.bits
        what = f"a {bits}-bit code" if bits else "a code"
        shown = repr(value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise CorruptDatabaseError(
            f"{self.path} is damaged: document {doc_id} holds the code {shown} ({type(value).__name__}), not "
            f"{what}: run `semhash train --db {self.path}` to code every document again"
        )

    def _rows_by_id(self, columns: str, ids: Sequence[int]) -> Iterator[tuple]:
        """``SELECT columns`` of the documents with these ids (in no particular order; missing ids left out).

        Chunked, because SQLite caps the number of bound parameters in one statement.
        """
        for start in range(0, len(ids), 500):
            chunk = [int(i) for i in ids[start : start + 500]]
            marks = ",".join("?" * len(chunk))
            yield from self.db.execute(f"SELECT {columns} FROM documents WHERE id IN ({marks})", chunk)

    def find(self, path: str, record: int | None = None) -> list[StoredDocument]:
        """Documents stored for a file path (all its records, or one)."""
        sql = "SELECT id, path, record, text, code, recon_error, mtime FROM documents WHERE path = ?"
        params: list[object] = [path]
        if record is not None:
            sql += " AND record = ?"
            params.append(record)
        check = self._code_check()
        return [check(StoredDocument(*row)) for row in self.db.execute(sql + " ORDER BY record", params)]

    def iter_documents(self, batch: int = 1000) -> Iterator[StoredDocument]:
        """Every document, in id order, fetched in batches."""
        last = -1
        check = self._code_check()
        while True:
            rows = self.db.execute(
                "SELECT id, path, record, text, code, recon_error, mtime FROM documents WHERE id > ?"
                " ORDER BY id LIMIT ?",
                [last, batch],
            ).fetchall()
            if not rows:
                return
            for row in rows:
                yield check(StoredDocument(*row))
            last = rows[-1][0]

    # -- models ----------------------------------------------------------------------------------
    def save_model(self, weights: bytes, bits: int, input_dim: int, config: dict, stats: dict, trained_on: int) -> int:
        """Store a trained model and make it the active one; returns its id.

        Older rows stay as the training history (config, stats, date) but lose their weights: their codes
        are gone, and each model's weights and lexical projection take megabytes.
        """
        with self.transaction("saving the hashing model"):
            cursor = self.db.execute(
                "INSERT INTO models (created_at, bits, input_dim, config, stats, trained_on, weights)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                [_now(), bits, input_dim, json.dumps(config), json.dumps(stats), trained_on, weights],
            )
            model_id = cursor.fetchone()[0]
            self.db.execute("UPDATE models SET weights = NULL WHERE id != ?", [model_id])
            self.set_meta("model_id", model_id)
        return model_id

    def active_model(self) -> StoredModel | None:
        """The active model (weights included), or ``None`` before the first training."""
        model_id = self._int_meta("model_id")
        if model_id is None:
            return None
        size = self.db.execute("SELECT length(weights) FROM models WHERE id = ?", [model_id]).fetchone()
        if size is not None and (size[0] or 0) > MAX_MODEL_BYTES:
            raise CorruptModelError(
                f"the hashing model stored in {self.path} is unreadable ({size[0] / 2**20:.0f} MB, more than "
                f"{MAX_MODEL_BYTES // 2**20} MB): run `semhash train --db {self.path}` to rebuild it from the "
                "stored embeddings"
            )
        row = self.db.execute(
            "SELECT id, created_at, bits, input_dim, config, stats, trained_on, weights FROM models WHERE id = ?",
            [model_id],
        ).fetchone()
        if row is None:
            return None
        model_id, created_at, bits, input_dim, config, stats, trained_on, weights = row
        # Training history only: a damaged value reads as empty rather than failing every command.
        return StoredModel(
            id=int(model_id),
            created_at=str(created_at),
            bits=int(bits),
            input_dim=int(input_dim),
            config=_json_object(config),
            stats=_json_object(stats),
            trained_on=int(trained_on or 0),
            weights=bytes(weights) if weights is not None else None,
        )

    # -- the adapted encoder ------------------------------------------------------------------------
    def save_adapted_encoder(
        self, name: str, weights: bytes, config: dict, stats: dict, ids: Sequence[int], embeddings: np.ndarray
    ) -> None:
        """Switch the index to an adapted encoder, in one transaction: its weights, the documents' new
        embeddings (``ids`` must be every document), the recorded model name, and no codes (the old ones
        came from the old embeddings; ``semhash train`` encodes again if the caller stops before it does)."""
        vectors = np.asarray(embeddings, dtype="<f4")
        if len(ids) != len(vectors) or len(ids) != self.count():
            raise ValueError(f"{len(ids)} ids and {len(vectors)} embeddings for {self.count()} documents")
        with self.transaction("saving the adapted encoder"):
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS encoders (id INTEGER PRIMARY KEY, created_at TEXT, name TEXT,"
                " config TEXT, stats TEXT, weights BLOB)"
            )
            self.db.execute("UPDATE encoders SET weights = NULL")
            self.db.execute(
                "INSERT INTO encoders (created_at, name, config, stats, weights) VALUES (?, ?, ?, ?, ?)",
                [_now(), name, json.dumps(config), json.dumps(stats), weights],
            )
            self.db.conn.executemany(
                "UPDATE documents SET embedding = ?, code = NULL, recon_error = NULL WHERE id = ?",
                [(v.tobytes(), int(i)) for i, v in zip(ids, vectors, strict=True)],
            )
            self.set_meta("embedding_model", name)
            self.set_meta("embedding_dim", vectors.shape[1] if vectors.ndim == 2 else 0)
            self._bump_generation()

    def adapted_encoder(self, name: str) -> bytes | None:
        """The stored weights of the adapted encoder recorded as ``name`` (``None``: none stored).

        Raises:
            CorruptModelError: the blob is larger than any adapted encoder (damaged or crafted).
        """
        if "encoders" not in self.db.table_names():
            return None
        size = self.db.execute(
            "SELECT length(weights) FROM encoders WHERE name = ? ORDER BY id DESC LIMIT 1", [name]
        ).fetchone()
        if size is not None and (size[0] or 0) > MAX_MODEL_BYTES:
            raise CorruptModelError(
                f"the adapted encoder stored in {self.path} is unreadable ({size[0] / 2**20:.0f} MB, more than "
                f"{MAX_MODEL_BYTES // 2**20} MB): run `semhash train --adapt --db {self.path}` to adapt it again"
            )
        row = self.db.execute("SELECT weights FROM encoders WHERE name = ? ORDER BY id DESC LIMIT 1", [name]).fetchone()
        return bytes(row[0]) if row is not None and row[0] is not None else None

    # -- removing documents by path ----------------------------------------------------------------
    def ids_under(self, path: str, folders: bool = True) -> list[int]:
        """Documents of the file ``path`` (every record) or, with ``folders``, of any file under the folder ``path``."""
        if not folders:
            return [r[0] for r in self.db.execute("SELECT id FROM documents WHERE path = ? ORDER BY id", [path])]
        path = path.rstrip("/") or "/"
        prefix = path if path.endswith("/") else path + "/"
        # A range on the (path, record) index: every string that starts with "dir/" sorts in ["dir/", "dir0")
        # ("0" follows "/" in byte order, SQLite's BINARY collation).
        rows = self.db.execute(
            "SELECT id FROM documents WHERE path = ? OR (path >= ? AND path < ?) ORDER BY id",
            [path, prefix, prefix[:-1] + "0"],
        )
        return [r[0] for r in rows]

    def paths(self) -> list[str]:
        """Every distinct file path in the index, sorted."""
        return [r[0] for r in self.db.execute("SELECT DISTINCT path FROM documents ORDER BY path")]


def _json_object(value: object) -> dict:
    try:
        parsed = json.loads(value) if isinstance(value, str | bytes) else None
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
