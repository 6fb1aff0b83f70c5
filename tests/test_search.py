"""Queries: Hamming top-k with cosine rerank, radius lookups, similar documents."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import FakeEncoder, write_corpus

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


@pytest.mark.parametrize("rerank", [True, False])
def test_radius_with_nothing_in_range_is_an_empty_result(indexed: tuple[Path, FakeEncoder], rerank: bool) -> None:
    """Issue 17: ``--radius 1`` with nothing in range raised ``range() arg 3 must not be zero``."""
    db, encoder = indexed
    with Searcher(db, encoder=encoder) as searcher:
        # A query whose nearest code is more than one bit away: radius 1 holds nothing.
        lonely = next(
            text
            for text in (f"quantum chromodynamics lattice {i}" for i in range(200))
            if searcher.query(text, QueryOptions(k=1, rerank=False))[0].distance > 1
        )
        assert searcher.query(lonely, QueryOptions(radius=1, rerank=rerank)) == []


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


def test_query_file_reads_like_index_does(indexed: tuple[Path, FakeEncoder], tmp_path: Path) -> None:
    """A FIFO is refused at once (it blocked on read before), a device is never read, latin-1 is decoded."""
    import os

    from semhash.errors import CorpusError

    db, encoder = indexed
    fifo = tmp_path / "fifo.txt"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.txt"
    zero.symlink_to("/dev/zero")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("rocket astronaut moon caf\xe9".encode("latin-1"))
    with Searcher(db, encoder=encoder) as searcher:
        for path in (fifo, zero):
            with pytest.raises(CorpusError, match="not a regular file"):
                searcher.query_file(path, QueryOptions(k=3))
        with pytest.raises(CorpusError, match="no such file"):
            searcher.query_file(tmp_path / "absent.txt")
        assert searcher.query_file(latin, QueryOptions(k=3))


def test_bad_options_and_empty_query(indexed: tuple[Path, FakeEncoder]) -> None:
    db, encoder = indexed
    with Searcher(db, encoder=encoder) as searcher:
        with pytest.raises(UsageError, match="--radius"):
            searcher.query("x", QueryOptions(radius=40))
        with pytest.raises(UsageError, match="empty"):
            searcher.query("   ")


def test_queries_never_read_the_faiss_file(indexed: tuple[Path, FakeEncoder]) -> None:
    """The searcher builds faiss's rows from the vector cache: a missing or garbage ``<db>.faiss`` changes nothing."""
    db, encoder = indexed
    forms = [QueryOptions(k=5), QueryOptions(k=5, rerank=False), QueryOptions(radius=4)]
    with Searcher(db, encoder=encoder) as searcher:
        before = [[(h.id, h.distance) for h in searcher.query("telescope galaxy orbit", o)] for o in forms]
    faiss_file = Path(f"{db}.faiss")
    faiss_file.write_bytes(b"not a faiss index")
    with Searcher(db, encoder=encoder) as searcher:
        after = [[(h.id, h.distance) for h in searcher.query("telescope galaxy orbit", o)] for o in forms]
        assert searcher.index.size == 24
    assert after == before and all(before)
    assert faiss_file.read_bytes() == b"not a faiss index"  # not read, not rewritten: `semhash index` owns it


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
    index_paths(db, [root], IndexOptions(epochs=30, device="cpu"), encoder=encoder)
    return root, db, encoder


def test_searcher_survives_documents_removed_by_a_reindex(live: tuple[Path, Path, FakeEncoder]) -> None:
    """Old code: the faiss index loaded at open still held the removed ids, and the row lookup raised KeyError."""
    root, db, encoder = live
    with Searcher(db, encoder=encoder) as searcher:
        assert any("/space/" in h.path for h in searcher.query("telescope galaxy", QueryOptions(radius=32)))
        for path in (root / "space").glob("*.txt"):
            path.unlink()
        (root / "space" / "new.txt").write_text("comet nebula rocket brand new document")
        index_paths(db, [root], IndexOptions(epochs=30, device="cpu"), encoder=encoder)
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
        index_paths(db, [root], IndexOptions(epochs=30, device="cpu", retrain=True), encoder=encoder)
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


# -- the rerank pool and its vectors (issue 9) ---------------------------------------------------------------
def test_rerank_pool_grows_with_the_index_and_stays_bounded() -> None:
    from semhash.config import MAX_RERANK_POOL, MIN_RERANK_POOL, RERANK_POOL_FACTOR, RERANK_POOL_FRACTION
    from semhash.search import rerank_pool

    sizes = [10, 10**3, 10**4, 10**5, 10**6, 10**7]
    pools = [rerank_pool(10, n) for n in sizes]
    assert pools == sorted(pools) and pools[-1] == MAX_RERANK_POOL
    assert all(p >= max(100, MIN_RERANK_POOL, RERANK_POOL_FACTOR * 10) for p in pools)  # never below the old 100
    assert rerank_pool(10, 10**5) >= min(RERANK_POOL_FRACTION * 10**5, MAX_RERANK_POOL)
    assert rerank_pool(MAX_RERANK_POOL + 5, 10**7) == MAX_RERANK_POOL + 5  # never fewer than k


def _exact_cosines(searcher: Searcher, text: str, encoder: FakeEncoder) -> dict[int, float]:
    ids, matrix = searcher.store.embeddings()
    query = encoder.encode([text])[0]
    return dict(zip(ids.tolist(), (matrix @ query).tolist(), strict=True))


def test_cached_rerank_equals_the_sqlite_rows(indexed: tuple[Path, FakeEncoder]) -> None:
    db, encoder = indexed
    text = "telescope galaxy flour"
    with Searcher(db, encoder=encoder) as searcher:
        hits = searcher.query(text, QueryOptions(k=6, pool=searcher.index.size))
        exact = _exact_cosines(searcher, text, encoder)
    assert len(hits) == 6
    for hit in hits:
        assert hit.cosine == pytest.approx(exact[hit.id], abs=1e-5)
    kth = sorted(exact.values(), reverse=True)[5]
    assert all(exact[h.id] >= kth - 1e-5 for h in hits)  # the same top 6 (up to summation-order rounding)


def test_exact_is_a_full_cosine_scan_with_hamming_distances(indexed: tuple[Path, FakeEncoder]) -> None:
    """Old code: no --exact (QueryOptions had no such field)."""
    db, encoder = indexed
    text = "pedal chain oven"
    with Searcher(db, encoder=encoder) as searcher:
        hits = searcher.query(text, QueryOptions(k=5, exact=True))
        everything = {h.id: h for h in searcher.query(text, QueryOptions(radius=32, rerank=False))}
        exact = _exact_cosines(searcher, text, encoder)
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    kth = sorted(exact.values(), reverse=True)[4]
    assert all(exact[h.id] >= kth - 1e-5 for h in hits)
    assert [h.cosine for h in hits] == sorted((h.cosine for h in hits), reverse=True)
    assert all(h.distance == everything[h.id].distance and h.code == everything[h.id].code for h in hits)


def test_exact_similar_leaves_the_document_out(indexed: tuple[Path, FakeEncoder], corpus_root: Path) -> None:
    db, encoder = indexed
    target = corpus_root / "food" / "food-3.txt"
    with Searcher(db, encoder=encoder) as searcher:
        hits = searcher.similar(target, options=QueryOptions(k=4, exact=True))
    assert len(hits) == 4 and all(h.path != str(target.resolve()) for h in hits)


def test_exact_and_pool_options_are_checked(indexed: tuple[Path, FakeEncoder]) -> None:
    db, encoder = indexed
    with Searcher(db, encoder=encoder) as searcher:
        for options in (QueryOptions(exact=True, radius=3), QueryOptions(exact=True, rerank=False)):
            with pytest.raises(UsageError, match="--exact"):
                searcher.query("oven", options)
        with pytest.raises(UsageError, match="--pool"):
            searcher.query("oven", QueryOptions(pool=0))


def test_exact_is_refused_above_the_stated_size(
    indexed: tuple[Path, FakeEncoder], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, encoder = indexed
    monkeypatch.setattr("semhash.search.stages.MAX_EXACT_DOCS", 10)
    with Searcher(db, encoder=encoder) as searcher, pytest.raises(UsageError, match="more than 10"):
        searcher.query("oven", QueryOptions(exact=True))


def test_queries_read_rerank_vectors_from_the_cache_not_sqlite(
    indexed: tuple[Path, FakeEncoder], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Old code: every query read its pool's embeddings from SQLite rows (``Store.embeddings``)."""
    db, encoder = indexed
    with Searcher(db, encoder=encoder) as searcher:
        expected = [(h.id, h.cosine) for h in searcher.query("rocket moon", QueryOptions(k=5))]

        def no_rows(*args: object, **kwargs: object) -> None:
            raise AssertionError("a query read embeddings from SQLite")

        monkeypatch.setattr(searcher.store, "embeddings", no_rows)
        assert [(h.id, h.cosine) for h in searcher.query("rocket moon", QueryOptions(k=5))] == expected


def _sidecar(db: Path) -> dict:
    import json

    return json.loads(Path(f"{db}.vectors.json").read_text())


def test_the_vector_cache_follows_the_database(live: tuple[Path, Path, FakeEncoder], tmp_path: Path) -> None:
    """Fresh caches are reused; stale, foreign and damaged ones are rebuilt, and results do not change."""
    from semhash.store import Store

    root, db, encoder = live
    with Searcher(db, encoder=encoder) as searcher:
        before = [(h.id, round(h.cosine, 4)) for h in searcher.query("flour oven", QueryOptions(k=5))]
    with Store.open(db) as store:
        stamp = (store.database_id, store.generation, store.change_id)
    meta = _sidecar(db)
    assert (meta["database_id"], meta["generation"], meta["change_id"]) == stamp
    vectors = Path(f"{db}.vectors")
    inode = vectors.stat().st_ino
    with Searcher(db, encoder=encoder) as searcher:  # fresh: mapped as it is, not rewritten
        searcher.query("flour oven", QueryOptions(k=5))
    assert vectors.stat().st_ino == inode

    # damaged: one flipped byte is caught by the checksum and the cache is rewritten
    data = bytearray(vectors.read_bytes())
    data[10] ^= 0x7F
    vectors.write_bytes(bytes(data))
    with Searcher(db, encoder=encoder) as searcher:
        assert [(h.id, round(h.cosine, 4)) for h in searcher.query("flour oven", QueryOptions(k=5))] == before
    assert vectors.read_bytes() != bytes(data)

    # foreign: another database's cache (a copy of this one under a new database id) is not served
    other = tmp_path / "other"
    write_corpus(other, per_topic=3)
    other_db = tmp_path / "other.db"
    index_paths(other_db, [other], IndexOptions(epochs=30, device="cpu"), encoder=encoder)
    Searcher(other_db, encoder=encoder).close()  # the first searcher writes its cache
    for suffix in (".vectors", ".vectors.ids", ".vectors.json"):
        Path(f"{db}{suffix}").write_bytes(Path(f"{other_db}{suffix}").read_bytes())
    with Searcher(db, encoder=encoder) as searcher:
        assert [(h.id, round(h.cosine, 4)) for h in searcher.query("flour oven", QueryOptions(k=5))] == before
    assert _sidecar(db)["database_id"] == stamp[0]

    # stale: a re-index moves the generation; the cache is rebuilt with the new documents' vectors
    (root / "food" / "fresh.txt").write_text("flour oven butter sugar bread freshly added")
    index_paths(db, [root], IndexOptions(epochs=30, device="cpu"), encoder=encoder)
    with Searcher(db, encoder=encoder) as searcher:
        paths = {Path(h.path).name for h in searcher.query("flour oven butter", QueryOptions(k=3))}
        assert _sidecar(db)["generation"] == searcher.store.generation
        assert _sidecar(db)["count"] == searcher.index.size
    assert "fresh.txt" in paths


def test_vectors_are_served_from_memory_when_they_cannot_be_saved(
    live: tuple[Path, Path, FakeEncoder], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, db, encoder = live
    with Searcher(db, encoder=encoder) as searcher:
        expected = [h.id for h in searcher.query("bicycle chain", QueryOptions(k=4))]
    for suffix in (".vectors", ".vectors.ids", ".vectors.json"):
        Path(f"{db}{suffix}").unlink()

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("semhash.caches.vectors.VectorCache.write", full_disk)
    with Searcher(db, encoder=encoder) as searcher:
        assert [h.id for h in searcher.query("bicycle chain", QueryOptions(k=4))] == expected
    assert not Path(f"{db}.vectors.json").exists()


def test_cli_exact_and_pool(indexed: tuple[Path, FakeEncoder], monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from typer.testing import CliRunner

    from semhash.cli import app

    db, encoder = indexed
    monkeypatch.setattr("semhash.embed.load_encoder", lambda *args, **kwargs: encoder)
    runner = CliRunner()
    exact = runner.invoke(app, ["query", "telescope galaxy", "--db", str(db), "-k", "3", "--exact", "--json"])
    assert exact.exit_code == 0, exact.output
    pooled = runner.invoke(app, ["query", "telescope galaxy", "--db", str(db), "-k", "3", "--pool", "24", "--json"])
    assert pooled.exit_code == 0, pooled.output
    rows = [json.loads(line) for line in exact.output.splitlines()]
    assert [r["id"] for r in rows] == [json.loads(line)["id"] for line in pooled.output.splitlines()]
    bad = runner.invoke(app, ["query", "x", "--db", str(db), "--exact", "--radius", "2"])
    assert bad.exit_code == 2 and "--exact" in bad.output
    bad = runner.invoke(app, ["query", "x", "--db", str(db), "--pool", "0"])
    assert bad.exit_code == 2
