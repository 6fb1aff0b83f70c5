"""Keeping the caches in step.

The faiss cache is built from one committed state of the database, even while a writer commits; the same index
built from the vector cache's codes gives the same answers.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from support import FakeEncoder, write_corpus

from semhash.caches.hamming import faiss_path_for
from semhash.caches.sync import build_index, code_index_of, load_index, load_vectors
from semhash.codes import ints_to_packed
from semhash.ingest import IndexOptions, index_paths
from semhash.store import Store


def test_a_commit_between_reading_codes_and_stamp_never_labels_old_codes_fresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "corpus"
    write_corpus(root, per_topic=3)
    db = tmp_path / "s.db"
    index_paths(db, [root], IndexOptions(epochs=3, device="cpu"), encoder=FakeEncoder())
    store = Store.open(db)
    before = store.generation
    original = Store.codes

    def codes_then_a_writer_commits(self: Store) -> tuple[np.ndarray, np.ndarray]:
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


def test_the_faiss_index_of_the_vector_cache_answers_as_the_faiss_file(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    write_corpus(root, per_topic=3)
    db = tmp_path / "s.db"
    index_paths(db, [root], IndexOptions(epochs=3, device="cpu"), encoder=FakeEncoder())
    with Store.open(db) as store:
        from_file, from_cache = load_index(store), code_index_of(load_vectors(store))
        ids, codes = store.codes()
        queries = ints_to_packed(codes, from_file.bits)
    assert from_cache.size == from_file.size == len(ids) and from_cache.bits == from_file.bits
    for k in (1, 5, len(ids)):
        (d1, i1), (d2, i2) = from_file.search(queries, k), from_cache.search(queries, k)
        assert np.array_equal(d1, d2) and np.array_equal(i1, i2)
    for query in queries[:5]:
        for radius in (0, 4, 12):
            got = [sorted(zip(*index.within(query[None, :], radius), strict=True)) for index in (from_file, from_cache)]
            assert got[0] == got[1]
