"""Schema 2: ``documents.locations`` and ``documents.encoding``, and indexes made before them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from support import FAST_EPOCHS, FakeEncoder

from semhash.ingest import IndexOptions, index_paths
from semhash.store import SCHEMA_VERSION, Store
from semhash.types import SourceDocument

OPTS = IndexOptions(epochs=FAST_EPOCHS, device="cpu")


def _columns(db: Path) -> set[str]:
    return {row[1] for row in sqlite3.connect(db).execute("PRAGMA table_info(documents)")}


def _make_version_1(db: Path) -> None:
    """What an index written before schema 2 looks like: no locations or encoding columns, user_version 1."""
    conn = sqlite3.connect(db)
    conn.execute("ALTER TABLE documents DROP COLUMN locations")
    conn.execute("ALTER TABLE documents DROP COLUMN encoding")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()


def test_locations_and_encoding_round_trip(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with Store.open(db, create=True) as store:
        assert SCHEMA_VERSION >= 2
        doc = SourceDocument("/x.pdf", 0, "page one\n\npage two", "h", 0.0, ((0, 1), (10, 2)), None)
        plain = SourceDocument("/y.txt", 0, "plain", "h2", 0.0, None, "cp1252")
        ids = store.upsert_documents([doc, plain], FakeEncoder().encode([doc.text, plain.text]))
        assert store.document_locations(ids) == {ids[0]: ((0, 1), (10, 2))}
        # Re-stored without pages: the old ones go.
        store.upsert_documents([SourceDocument("/x.pdf", 0, "t", "h3", 0.0)], FakeEncoder().encode(["t"]))
        assert store.document_locations(ids) == {}
    rows = sqlite3.connect(db).execute("SELECT path, locations, encoding FROM documents ORDER BY path").fetchall()
    assert rows == [("/x.pdf", None, None), ("/y.txt", None, "cp1252")]


def test_an_index_from_before_is_migrated_when_written_and_read_as_it_is_when_it_cannot_be(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("a note about planets")
    db = tmp_path / "s.db"
    index_paths(db, [tmp_path / "docs"], OPTS, encoder=FakeEncoder())
    _make_version_1(db)
    assert not {"locations", "encoding"} & _columns(db)
    # A reader that cannot write now (a writer holds the lock) reads the old schema as it is.
    blocker = sqlite3.connect(db)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with Store.open(db, busy_timeout_ms=50) as store:
            assert store.count() == 1
            assert store.document_locations([1]) == {}
    finally:
        blocker.rollback()
        blocker.close()
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == 1
    # The next index run upgrades it and fills the new columns for what it writes.
    (tmp_path / "docs" / "b.txt").write_text("a second note about moons")
    report = index_paths(db, [tmp_path / "docs"], OPTS, encoder=FakeEncoder())
    assert report.added == 1 and report.unchanged == 1
    assert {"locations", "encoding"} <= _columns(db)
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    encodings = dict(sqlite3.connect(db).execute("SELECT text, encoding FROM documents"))
    assert encodings == {"a note about planets": None, "a second note about moons": "utf-8"}
