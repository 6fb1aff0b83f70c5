"""The SQLite store: schema versions, locking, model records."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from semhash.errors import DatabaseLockedError, IndexMissingError, ModelMismatchError, SchemaError
from semhash.store import SCHEMA_VERSION, Store
from semhash.types import SourceDocument


def _doc(name: str, text: str = "hello") -> SourceDocument:
    return SourceDocument(f"/c/{name}", 0, text, f"h-{text}", 0.0)


def test_create_migrate_and_reopen(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with Store.open(db, create=True) as store:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        ids = store.upsert_documents([_doc("a"), _doc("b")], np.eye(2, 4, dtype=np.float32))
        generation = store.generation
    with Store.open(db) as store:
        assert store.count() == 2
        got_ids, vectors = store.embeddings(dim=4)
        assert got_ids.tolist() == ids and vectors.shape == (2, 4)
        assert store.generation == generation


def test_upsert_replaces_and_resets_code(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db", create=True) as store:
        [doc_id] = store.upsert_documents([_doc("a")], np.ones((1, 4), np.float32))
        store.set_codes([doc_id], [123], [0.1])
        assert store.count(encoded_only=True) == 1
        [again] = store.upsert_documents([_doc("a", "changed")], np.ones((1, 4), np.float32))
        assert again == doc_id
        assert store.count(encoded_only=True) == 0
        assert store.documents([doc_id])[doc_id].text == "changed"


def test_missing_database_is_index_missing(tmp_path: Path) -> None:
    with pytest.raises(IndexMissingError, match="semhash index DIR"):
        Store.open(tmp_path / "none.db")


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    Store.open(db, create=True).close()
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaError, match="upgrade semhash"):
        Store.open(db)


def test_foreign_sqlite_and_non_sqlite_files_are_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    with pytest.raises(SchemaError, match="not a semhash index"):
        Store.open(other, create=True)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(SchemaError, match="not a semhash database"):
        Store.open(junk)


def test_locked_database_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    Store.open(db, create=True).close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with Store.open(db, busy_timeout_ms=100) as store, pytest.raises(DatabaseLockedError, match="locked"):
            store.upsert_documents([_doc("a")], np.ones((1, 4), np.float32))
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_embedding_model_is_recorded_then_enforced(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db", create=True) as store:
        store.check_embedding_model("m1", 8)
        store.check_embedding_model("m1", 8)
        with pytest.raises(ModelMismatchError, match="--model 'm1'"):
            store.check_embedding_model("m2", 8)


def test_models_are_versioned_and_latest_is_active(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db", create=True) as store:
        assert store.active_model() is None and store.bits is None
        store.save_model(b"w1", 32, 4, {"a": 1}, {"loss": 1.0}, trained_on=3)
        second = store.save_model(b"w2", 16, 4, {"a": 2}, {"loss": 0.5}, trained_on=5)
        active = store.active_model()
        assert active is not None and active.id == second and active.weights == b"w2"
        assert store.bits == 16 and active.config == {"a": 2}
        history = list(store.db.execute("SELECT id, weights IS NULL, stats FROM models ORDER BY id"))
        assert [(row[0] == second, row[1]) for row in history] == [(False, True), (True, False)]
        assert json.loads(history[0][2]) == {"loss": 1.0}  # the old model's history is kept
        # The code length is stored once, in the active model's row; a stale meta copy (older versions) is ignored.
        assert store.get_meta("bits") is None
        with store.transaction():
            store.set_meta("bits", 64)
        assert store.bits == 16
