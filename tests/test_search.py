"""Queries: Hamming top-k with cosine rerank, radius lookups, similar documents."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FakeEncoder, write_corpus

from semhash.errors import DocumentNotFoundError, IndexMissingError, UsageError
from semhash.ingest import IndexOptions, index_paths
from semhash.search import QueryOptions, Searcher


@pytest.fixture(scope="module")
def corpus_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("search") / "corpus"
    write_corpus(root)
    return root


@pytest.fixture(scope="module")
def indexed(corpus_root: Path) -> tuple[Path, FakeEncoder]:
    db = corpus_root.parent / "s.db"
    encoder = FakeEncoder()
    index_paths(db, [corpus_root], IndexOptions(epochs=30, device="cpu"), encoder=encoder)
    return db, encoder


def test_query_finds_the_topic_with_rerank(indexed: tuple[Path, FakeEncoder]) -> None:
    db, encoder = indexed
    with Searcher(db, encoder=encoder) as searcher:
        hits = searcher.query("telescope galaxy nebula comet orbit", QueryOptions(k=5))
    assert len(hits) == 5
    assert all("/space/" in h.path for h in hits)
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    cosines = [h.cosine for h in hits]
    assert cosines == sorted(cosines, reverse=True)


def test_no_rerank_orders_by_hamming_then_id(indexed: tuple[Path, FakeEncoder]) -> None:
    db, encoder = indexed
    with Searcher(db, encoder=encoder) as searcher:
        hits = searcher.query("flour butter sugar", QueryOptions(k=8, rerank=False))
    keys = [(h.distance, h.id) for h in hits]
    assert keys == sorted(keys)


def test_radius_returns_everything_within_r_bits(indexed: tuple[Path, FakeEncoder]) -> None:
    db, encoder = indexed
    with Searcher(db, encoder=encoder) as searcher:
        everything = searcher.query("pedal chain", QueryOptions(radius=32, rerank=False))
        near = searcher.query("pedal chain", QueryOptions(radius=4, rerank=False))
    assert len(everything) == 24
    assert {h.id for h in near} == {h.id for h in everything if h.distance <= 4}


def test_similar_leaves_the_document_out(indexed: tuple[Path, FakeEncoder], corpus_root: Path) -> None:
    db, encoder = indexed
    target = corpus_root / "food" / "food-3.txt"
    with Searcher(db, encoder=encoder) as searcher:
        hits = searcher.similar(target, options=QueryOptions(k=4))
        assert len(hits) == 4 and all(h.path != str(target) for h in hits)
        assert sum("/food/" in h.path for h in hits) >= 3
        with pytest.raises(DocumentNotFoundError, match="not in the index"):
            searcher.similar(corpus_root / "nope.txt")


def test_query_file_uses_its_content(indexed: tuple[Path, FakeEncoder], tmp_path: Path) -> None:
    db, encoder = indexed
    query = tmp_path / "q.md"
    query.write_text("rocket astronaut moon")
    with Searcher(db, encoder=encoder) as searcher:
        hits = searcher.query_file(query, QueryOptions(k=3))
    assert all("/space/" in h.path for h in hits)


def test_bad_options_and_empty_query(indexed: tuple[Path, FakeEncoder]) -> None:
    db, encoder = indexed
    with Searcher(db, encoder=encoder) as searcher:
        with pytest.raises(UsageError, match="--radius"):
            searcher.query("x", QueryOptions(radius=40))
        with pytest.raises(UsageError, match="empty"):
            searcher.query("   ")


def test_stale_faiss_file_is_rebuilt(indexed: tuple[Path, FakeEncoder], tmp_path: Path) -> None:
    db, encoder = indexed
    Path(f"{db}.faiss").unlink()
    with Searcher(db, encoder=encoder) as searcher:
        assert searcher.index.size == 24
    assert Path(f"{db}.faiss").exists()


def test_missing_index_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(IndexMissingError, match="semhash index DIR"):
        Searcher(tmp_path / "none.db")


def test_a_document_queried_by_its_own_text_gets_its_own_code(
    indexed: tuple[Path, FakeEncoder], corpus_root: Path
) -> None:
    """The stored model reads the words too (lexical features): query time must compute them as indexing did."""
    from semhash.model import model_from_bytes

    db, encoder = indexed
    path = sorted(corpus_root.rglob("*.txt"))[0]
    with Searcher(db, encoder=encoder) as searcher:
        active = searcher.store.active_model()
        assert active is not None and model_from_bytes(active.weights).lexical is not None
        hits = searcher.query(path.read_text(), QueryOptions(k=1, rerank=False, radius=0))
    assert str(path.resolve()) in {h.path for h in hits}
    assert all(h.distance == 0 for h in hits)


# -- a long-lived searcher (semhash serve) -------------------------------------------------------------------
@pytest.fixture
def live(tmp_path: Path) -> tuple[Path, Path, FakeEncoder]:
    """A private index (these tests change it)."""
    root = tmp_path / "corpus"
    write_corpus(root, per_topic=4)
    db = tmp_path / "live.db"
    encoder = FakeEncoder()
    index_paths(db, [root], IndexOptions(epochs=10, device="cpu"), encoder=encoder)
    return root, db, encoder


def test_searcher_survives_documents_removed_by_a_reindex(live: tuple[Path, Path, FakeEncoder]) -> None:
    """Old code: the faiss index loaded at open still held the removed ids, and the row lookup raised KeyError."""
    root, db, encoder = live
    with Searcher(db, encoder=encoder) as searcher:
        assert any("/space/" in h.path for h in searcher.query("telescope galaxy", QueryOptions(radius=32)))
        for path in (root / "space").glob("*.txt"):
            path.unlink()
        (root / "space" / "new.txt").write_text("comet nebula rocket brand new document")
        index_paths(db, [root], IndexOptions(epochs=10, device="cpu"), encoder=encoder)
        for options in (QueryOptions(radius=32), QueryOptions(k=50), QueryOptions(k=50, rerank=False)):
            paths = {Path(h.path).name for h in searcher.query("telescope galaxy comet", options)}
            assert "new.txt" in paths, options
            assert not any(p.startswith("space-") for p in paths), options
        assert searcher.index.size == 9


def test_hits_whose_rows_vanished_after_the_search_are_left_out(live: tuple[Path, Path, FakeEncoder]) -> None:
    """Rows deleted between the Hamming search and the row fetch (no reload in between) are skipped."""
    _, db, encoder = live
    with Searcher(db, encoder=encoder) as searcher:
        snapshot = searcher._current()
        before = searcher.query("bicycle chain", QueryOptions(radius=32))
        gone = [h.id for h in before[:5]]
        from semhash.store import Store

        with Store.open(db) as other:
            other.delete_documents(gone)
        searcher._current = lambda: snapshot  # type: ignore[method-assign]  # the race: searched the old index
        after = searcher.query("bicycle chain", QueryOptions(radius=32))
    assert len(after) == len(before) - 5
    assert not {h.id for h in after} & set(gone)
    assert [h.rank for h in after] == list(range(1, len(after) + 1))


def test_one_searcher_serves_many_threads(live: tuple[Path, Path, FakeEncoder]) -> None:
    """Old code: the connection was opened with check_same_thread, so another thread got ProgrammingError."""
    from concurrent.futures import ThreadPoolExecutor

    _, db, encoder = live
    with Searcher(db, encoder=encoder) as searcher:
        expected = [h.id for h in searcher.query("flour butter", QueryOptions(k=5))]
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: [h.id for h in searcher.query("flour butter", QueryOptions(k=5))],
                                    range(16)))  # fmt: skip
    assert all(r == expected for r in results)


def test_searcher_reloads_the_hashing_model_after_a_retrain(live: tuple[Path, Path, FakeEncoder]) -> None:
    root, db, encoder = live
    with Searcher(db, encoder=encoder) as searcher:
        searcher.query("pedal", QueryOptions(k=1))
        first = searcher.codec.model.id
        index_paths(db, [root], IndexOptions(epochs=10, device="cpu", retrain=True), encoder=encoder)
        path = sorted(root.rglob("*.txt"))[0]
        hits = searcher.query(path.read_text(), QueryOptions(k=1, rerank=False, radius=0))
        assert searcher.codec.model.id != first
    # the new model's code of the document's own text is its stored code
    assert str(path.resolve()) in {h.path for h in hits}


def test_hit_serialises_itself(indexed: tuple[Path, FakeEncoder]) -> None:
    db, encoder = indexed
    with Searcher(db, encoder=encoder) as searcher:
        hit = searcher.query("oven flour", QueryOptions(k=1))[0]
    row = hit.to_dict()
    assert row["code"] == f"{hit.code:08x}" and len(row["code"]) == hit.bits // 4 == 8
    assert row["location"] == hit.location and row["id"] == hit.id and row["cosine"] == hit.cosine
