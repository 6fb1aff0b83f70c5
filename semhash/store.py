"""SQLite storage, the source of truth: documents, their embeddings and codes, and the hashing model.

Schema (version 1; ``PRAGMA user_version`` holds the version, migrations run in order):

* ``documents``: ``id`` INTEGER PRIMARY KEY (= the faiss id), ``path`` TEXT, ``record`` INTEGER (0 for
  one-document files, 1.. for JSON/JSONL/CSV records), ``content_hash`` TEXT (sha256 of the text),
  ``text`` TEXT, ``n_chars`` INTEGER, ``mtime`` REAL, ``embedding`` BLOB (float32, little-endian),
  ``code`` INTEGER (see :mod:`semhash.codes`; NULL until encoded), ``recon_error`` REAL (1 - cosine of the
  embedding and its reconstruction from the code), ``indexed_at`` TEXT. ``(path, record)`` is unique.
* ``models``: every trained hashing model: ``id``, ``created_at``, ``bits``, ``input_dim``,
  ``config`` JSON, ``stats`` JSON, ``trained_on`` (documents), ``weights`` BLOB. The newest is active.
* ``meta``: ``key``/``value`` pairs: ``embedding_model``, ``embedding_dim``, ``bits``, ``generation``
  (bumped in the same transaction as every change to codes, so a faiss file can tell it is stale).

The store never imports torch or faiss.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import sqlite_utils

from semhash.errors import DatabaseLockedError, IndexMissingError, ModelMismatchError, SchemaError
from semhash.types import SourceDocument, format_location

SCHEMA_VERSION = 1


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


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_migrate_1]


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


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _is_locked(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


class Store:
    """One semhash database. Open it with :meth:`open`; close it (or use ``with``) when done."""

    def __init__(self, db: sqlite_utils.Database, path: Path) -> None:
        self.db = db
        self.path = path

    # -- opening ---------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, create: bool = False, busy_timeout_ms: int = 5000) -> Store:
        """Open (and with ``create``, create or migrate) the database at ``path``.

        Raises:
            IndexMissingError: ``create`` is false and there is no database at ``path``.
            SchemaError: the file is not a semhash database, or a newer semhash wrote it.
            DatabaseLockedError: another process holds the write lock past the busy timeout.
        """
        path = Path(path)
        if not create and not path.exists():
            raise IndexMissingError(f"no index at {path}: run `semhash index DIR` first (or pass --db)")
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(str(path), timeout=busy_timeout_ms / 1000, isolation_level=None)
            db = sqlite_utils.Database(conn)
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = set(db.table_names())
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and _is_locked(exc):
                raise DatabaseLockedError(f"{path} is locked by another process: wait for it to finish") from exc
            raise SchemaError(f"{path} is not a semhash database ({exc}): pass another --db") from exc
        if version > SCHEMA_VERSION:
            raise SchemaError(
                f"{path} has schema version {version}, newer than this semhash reads ({SCHEMA_VERSION}): "
                "upgrade semhash"
            )
        if version == 0 and tables:
            raise SchemaError(f"{path} is an SQLite database but not a semhash index: pass another --db")
        store = cls(db, path)
        if version < SCHEMA_VERSION:
            if not create and version == 0:
                raise IndexMissingError(f"{path} holds no semhash index: run `semhash index DIR` first")
            store._migrate(version)
        return store

    def _migrate(self, version: int) -> None:
        try:
            if version == 0:
                with self.db.ensure_autocommit_on():
                    self.db.execute("PRAGMA journal_mode=WAL")
            with self.db.atomic():
                for step in range(version, SCHEMA_VERSION):
                    MIGRATIONS[step](self.db)
                self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.OperationalError as exc:
            if _is_locked(exc):
                raise DatabaseLockedError(f"{self.path} is locked by another process: wait for it to finish") from exc
            raise

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic write; a lock held by someone else becomes :class:`DatabaseLockedError`."""
        try:
            with self.db.atomic():
                yield
        except sqlite3.OperationalError as exc:
            if _is_locked(exc):
                raise DatabaseLockedError(
                    f"{self.path} is locked by another process: wait for it to finish and rerun"
                ) from exc
            raise

    # -- meta ------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        """A ``meta`` value, or ``None``."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: object) -> None:
        """Set a ``meta`` value (call inside :meth:`transaction`)."""
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [key, str(value)])

    @property
    def generation(self) -> int:
        """Counter bumped with every change to codes; the faiss file records the one it was built at."""
        return int(self.get_meta("generation") or 0)

    def _bump_generation(self) -> None:
        self.set_meta("generation", self.generation + 1)

    def check_embedding_model(self, name: str, dim: int | None = None) -> None:
        """Record the embedding model on first use; afterwards a different one is an error.

        With ``dim=None`` (the model is not loaded yet) only the name is checked, and nothing is recorded.
        """
        stored = self.get_meta("embedding_model")
        if stored is None:
            if dim is not None:
                with self.transaction():
                    self.set_meta("embedding_model", name)
                    self.set_meta("embedding_dim", dim)
            return
        stored_dim = int(self.get_meta("embedding_dim") or 0)
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
        """Code length of the active model, if one was trained."""
        value = self.get_meta("bits")
        return int(value) if value else None

    # -- documents -------------------------------------------------------------------------------
    def count(self, encoded_only: bool = False) -> int:
        """Number of documents (with a code, if ``encoded_only``)."""
        where = " WHERE code IS NOT NULL" if encoded_only else ""
        return self.db.execute(f"SELECT count(*) FROM documents{where}").fetchone()[0]

    def document_states(self) -> dict[tuple[str, int], tuple[int, str, bool]]:
        """``(path, record) -> (id, content_hash, has embedding)`` for every document."""
        rows = self.db.execute("SELECT path, record, id, content_hash, embedding IS NOT NULL FROM documents")
        return {(p, r): (i, h, bool(e)) for p, r, i, h, e in rows}

    def upsert_documents(self, documents: Sequence[SourceDocument], embeddings: np.ndarray) -> list[int]:
        """Insert or replace documents with their embeddings, in one transaction; codes reset to NULL.

        Returns the ids of the rows, in order.
        """
        ids = []
        now = _now()
        with self.transaction():
            for doc, vector in zip(documents, np.asarray(embeddings, dtype="<f4"), strict=True):
                blob = vector.tobytes()
                cursor = self.db.execute(
                    "INSERT INTO documents (path, record, content_hash, text, n_chars, mtime, embedding, code,"
                    " recon_error, indexed_at) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?)"
                    " ON CONFLICT(path, record) DO UPDATE SET content_hash = excluded.content_hash,"
                    " text = excluded.text, n_chars = excluded.n_chars, mtime = excluded.mtime,"
                    " embedding = excluded.embedding, code = NULL, recon_error = NULL,"
                    " indexed_at = excluded.indexed_at RETURNING id",
                    [doc.path, doc.record, doc.content_hash, doc.text, len(doc.text), doc.mtime, blob, now],
                )
                ids.append(cursor.fetchone()[0])
            self._bump_generation()
        return ids

    def delete_documents(self, ids: Sequence[int]) -> int:
        """Delete documents by id, in one transaction. Returns how many went."""
        if not ids:
            return 0
        with self.transaction():
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
        with self.transaction():
            self.db.conn.executemany(
                "UPDATE documents SET code = ?, recon_error = ? WHERE id = ?",
                [(int(c), float(e), int(i)) for i, c, e in zip(ids, codes, recon_errors, strict=True)],
            )
            self._bump_generation()

    def clear_codes(self) -> None:
        """Forget every code (before re-encoding with a new model)."""
        with self.transaction():
            self.db.execute("UPDATE documents SET code = NULL, recon_error = NULL")
            self._bump_generation()

    def embeddings(self, ids: Sequence[int] | None = None, dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, (n, dim) float32 embeddings)`` for the given ids (all documents when ``None``), id order."""
        dim = dim or int(self.get_meta("embedding_dim") or 0)
        if ids is None:
            rows = self.db.execute("SELECT id, embedding FROM documents WHERE embedding IS NOT NULL ORDER BY id")
            pairs = list(rows)
        else:
            pairs = sorted(self._rows_by_id("id, embedding", ids))
        out_ids = np.fromiter((p[0] for p in pairs), dtype=np.int64, count=len(pairs))
        matrix = np.frombuffer(b"".join(p[1] for p in pairs), dtype="<f4").reshape(len(pairs), dim)
        return out_ids, matrix.astype(np.float32)

    def texts(self, ids: Sequence[int]) -> list[str]:
        """The texts of documents, in the order of ``ids`` (every id must exist)."""
        found = dict(self._rows_by_id("id, text", ids))
        return [found[int(i)] for i in ids]

    def codes(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, codes)`` of every encoded document as int64 arrays (SQLite integer form), id order."""
        rows = self.db.execute("SELECT id, code FROM documents WHERE code IS NOT NULL ORDER BY id").fetchall()
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        arr = np.array(rows, dtype=np.int64)
        return arr[:, 0].copy(), arr[:, 1].copy()

    def documents(self, ids: Sequence[int]) -> dict[int, StoredDocument]:
        """Rows by id (missing ids are left out)."""
        rows = self._rows_by_id("id, path, record, text, code, recon_error, mtime", ids)
        return {row[0]: StoredDocument(*row) for row in rows}

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
        return [StoredDocument(*row) for row in self.db.execute(sql + " ORDER BY record", params)]

    def iter_documents(self, batch: int = 1000) -> Iterator[StoredDocument]:
        """Every document, in id order, fetched in batches."""
        last = -1
        while True:
            rows = self.db.execute(
                "SELECT id, path, record, text, code, recon_error, mtime FROM documents WHERE id > ?"
                " ORDER BY id LIMIT ?",
                [last, batch],
            ).fetchall()
            if not rows:
                return
            for row in rows:
                yield StoredDocument(*row)
            last = rows[-1][0]

    # -- models ----------------------------------------------------------------------------------
    def save_model(self, weights: bytes, bits: int, input_dim: int, config: dict, stats: dict, trained_on: int) -> int:
        """Store a trained model and make it the active one; returns its id.

        Older rows stay as the training history (config, stats, date) but lose their weights: their codes
        are gone, and each model's weights and lexical projection take megabytes.
        """
        with self.transaction():
            cursor = self.db.execute(
                "INSERT INTO models (created_at, bits, input_dim, config, stats, trained_on, weights)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                [_now(), bits, input_dim, json.dumps(config), json.dumps(stats), trained_on, weights],
            )
            model_id = cursor.fetchone()[0]
            self.db.execute("UPDATE models SET weights = NULL WHERE id != ?", [model_id])
            self.set_meta("model_id", model_id)
            self.set_meta("bits", bits)
        return model_id

    def active_model(self) -> dict | None:
        """The active model row (weights included) as a dict, or ``None`` before the first training."""
        model_id = self.get_meta("model_id")
        if model_id is None:
            return None
        row = self.db.execute(
            "SELECT id, created_at, bits, input_dim, config, stats, trained_on, weights FROM models WHERE id = ?",
            [int(model_id)],
        ).fetchone()
        if row is None:
            return None
        keys = ("id", "created_at", "bits", "input_dim", "config", "stats", "trained_on", "weights")
        model = dict(zip(keys, row, strict=True))
        model["config"] = json.loads(model["config"])
        model["stats"] = json.loads(model["stats"])
        return model
