"""The faiss cache is built from one committed state of the database, even while a writer commits."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from conftest import FakeEncoder, write_corpus

from semhash.caches.hamming import faiss_path_for
from semhash.caches.sync import build_index, load_index
from semhash.ingest import IndexOptions, index_paths
from semhash.store import Store


def test_a_commit_between_reading_codes_and_stamp_never_labels_old_codes_fresh(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "corpus"
    write_corpus(root, per_topic=3)
    db = tmp_path / "s.db"
    index_paths(db, [root], IndexOptions(epochs=3, device="cpu"), encoder=FakeEncoder())
    store = Store.open(db)
    before = store.generation
    original = Store.codes

    def codes_then_a_writer_commits(self: Store):
        result = original(self)
        with sqlite3.connect(db, isolation_level=None) as other:  # another process's write lands now
            other.execute("DELETE FROM documents WHERE id = (SELECT min(id) FROM documents)")
            other.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
        return result

    monkeypatch.setattr(Store, "codes", codes_then_a_writer_commits)
    built = build_index(store)
    monkeypatch.setattr(Store, "codes", original)
    # The file is labelled with the generation its codes came from, so it is now stale, never served.
    sidecar = json.loads(Path(f"{faiss_path_for(db)}.json").read_text())
    assert sidecar["generation"] == before
    assert store.generation == before + 1
    assert load_index(store).size == built.size - 1  # rebuilt from the current codes
    store.close()
