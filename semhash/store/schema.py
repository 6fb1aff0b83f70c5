"""The database's schema: its tables, the migrations that build them, and the schema version.

Schema (version 4; ``PRAGMA user_version`` holds the version, migrations run in order):

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
* ``windows`` (version 4): the vector of every window the indexer embedded, for the passage of a hit
  (:mod:`semhash.search.windows`): ``id`` INTEGER PRIMARY KEY, ``doc_id`` INTEGER (``documents.id``),
  ``char_start`` / ``char_end`` INTEGER (the window is ``documents.text[char_start:char_end]``), ``page``
  INTEGER (the PDF page or slide where the window starts; NULL without pages), ``vector`` BLOB (the window's
  unit embedding, ``dim`` float16 values, little-endian: 768 bytes at 384 dimensions; NULL for the one window
  of a one-window document, whose vector is its ``documents.embedding``, not stored twice), indexed by
  ``(doc_id, char_start)``. Two triggers keep it in step with ``documents`` whichever code path writes:
  ``windows_delete`` (a deleted document's windows go) and ``windows_update`` (``UPDATE OF embedding``: a
  re-embedded document's old windows go; the writer inserts the new ones in the same transaction).
  Documents indexed before version 4, or embedded by an encoder that does not hand back its windows
  (``--engine ray``), have no rows; ``--max-windows N`` stores the N windows it embedded.
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
  (:mod:`semhash.runtime.seal`); queries use no other folder. ``embedding_precision``: ``fp32`` or ``int8``,
  the encoder precision the index's embeddings were made at (:mod:`semhash.runtime.precision`; absent: fp32).
:func:`check_version` refuses a file this semhash cannot read (newer, or not a semhash database) and
:func:`migrate` brings an older one up to :data:`SCHEMA_VERSION`, in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from semhash.errors import IndexMissingError, SchemaError

if TYPE_CHECKING:
    import sqlite_utils

SCHEMA_VERSION = 4


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
    """Schema 2: where a document's pages or slides start, and the encoding its file was decoded from.

    ``locations`` is JSON ``[[char_offset, page], ...]`` (:func:`semhash.types.page_at`); both are NULL for
    documents indexed before (and for formats without pages, or not decoded from text).
    """
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


#: The window vectors (schema version 4): see the module docstring.
WINDOWS_TABLE = "windows"


def _migrate_4(db: sqlite_utils.Database) -> None:
    """The window vectors: one row per embedded window, kept in step with ``documents`` by triggers.

    Triggers rather than ``ON DELETE CASCADE`` alone: SQLite enforces foreign keys only on connections
    that ask for it (``PRAGMA foreign_keys``), and a re-embedded document keeps its id (an upsert), which
    no foreign key sees. Existing documents get no rows: their passage falls back to the text's opening
    (or ``--passages``) until ``semhash index`` embeds them again.
    """
    db.execute(
        f"CREATE TABLE IF NOT EXISTS {WINDOWS_TABLE} (id INTEGER PRIMARY KEY,"
        " doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,"
        " char_start INTEGER NOT NULL, char_end INTEGER NOT NULL, page INTEGER, vector BLOB)"
    )
    db.execute(f"CREATE INDEX IF NOT EXISTS {WINDOWS_TABLE}_doc ON {WINDOWS_TABLE}(doc_id, char_start)")
    db.execute(
        f"CREATE TRIGGER IF NOT EXISTS {WINDOWS_TABLE}_delete AFTER DELETE ON documents BEGIN"
        f" DELETE FROM {WINDOWS_TABLE} WHERE doc_id = old.id; END"
    )
    db.execute(
        f"CREATE TRIGGER IF NOT EXISTS {WINDOWS_TABLE}_update AFTER UPDATE OF embedding ON documents BEGIN"
        f" DELETE FROM {WINDOWS_TABLE} WHERE doc_id = old.id; END"
    )


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_migrate_1, _migrate_2, _migrate_3, _migrate_4]


def check_version(db: sqlite_utils.Database, path: Path, version: int, tables: set[str], create: bool) -> None:
    """Refuse (closing ``db``) a database this semhash cannot open: newer, not semhash's, or empty when not creating.

    Raises:
        SchemaError: a newer semhash wrote it, or it is an SQLite database but not a semhash index.
        IndexMissingError: ``create`` is false and the file holds no semhash index.
    """
    if version > SCHEMA_VERSION:
        db.close()
        raise SchemaError(
            f"{path} has schema version {version}, newer than this semhash reads ({SCHEMA_VERSION}): upgrade semhash"
        )
    if version == 0 and tables:
        db.close()
        raise SchemaError(f"{path} is an SQLite database but not a semhash index: pass another --db")
    if version == 0 and not create:
        db.close()
        raise IndexMissingError(f"{path} holds no semhash index: run `semhash index DIR` first")


def apply_migrations(db: sqlite_utils.Database, version: int) -> None:
    """Run the migrations from schema ``version`` on.

    Call it inside one transaction; the caller then records :data:`SCHEMA_VERSION` in ``PRAGMA user_version``.
    """
    for step in range(version, SCHEMA_VERSION):
        MIGRATIONS[step](db)
