"""The float candidate stage of large indexes (issue 9): the rule, its results, and its cache beside the database.

The fake encoder's indexes hold a few dozen documents; the size threshold and the stage's sizes are lowered
with ``monkeypatch`` so the same code path runs as on a 10^5-document index.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support import FakeEncoder, write_corpus

from semhash.config import IVF_MIN_DOCS
from semhash.ingest import IndexOptions, index_paths
from semhash.search import (
    STAGE_CODES,
    STAGE_EXACT,
    STAGE_HAMMING,
    STAGE_HYBRID,
    QueryOptions,
    Searcher,
    query_candidate_stage,
)

TEXTS = ("flour oven", "telescope galaxy flour", "pedal chain oven", "rocket moon")


@pytest.fixture
def ivf_index(tmp_path: Path) -> tuple[Path, Path, FakeEncoder]:
    root = tmp_path / "corpus"
    write_corpus(root)
    path = tmp_path / "ivf.db"
    encoder = FakeEncoder()
    index_paths(path, [root], IndexOptions(epochs=30, device="cpu"), encoder=encoder)
    return root, path, encoder


@pytest.fixture
def hybrid(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every index is 'large'; the Hamming share is the top ``k`` alone, the IVF probes every cell."""
    monkeypatch.setattr("semhash.search.stages.IVF_MIN_DOCS", 1)
    monkeypatch.setattr("semhash.search.stages.HYBRID_HAMMING_POOL", 1)
    monkeypatch.setattr("semhash.search.stages.IVF_CANDIDATES", 10_000)
    monkeypatch.setattr("semhash.search.stages.IVF_SCAN_ROWS", 10_000)


def test_the_rule_keeps_codes_where_they_suffice() -> None:
    """Old code: no query_candidate_stage (the codes were the only stage)."""
    big, small = IVF_MIN_DOCS, IVF_MIN_DOCS - 1
    assert query_candidate_stage(QueryOptions(), small) == STAGE_CODES
    assert query_candidate_stage(QueryOptions(), big) == STAGE_HYBRID
    assert query_candidate_stage(QueryOptions(pool=5000), big) == STAGE_CODES  # the caller chose the Hamming pool
    assert query_candidate_stage(QueryOptions(exact=True), big) == STAGE_EXACT
    assert query_candidate_stage(QueryOptions(rerank=False), big) == STAGE_HAMMING
    assert query_candidate_stage(QueryOptions(radius=3), big) == STAGE_HAMMING


def _ids(hits: list) -> list[int]:
    return [h.id for h in hits]


@pytest.mark.usefixtures("hybrid")
def test_hybrid_results_equal_exact_search_when_its_candidates_cover_the_index(
    ivf_index: tuple[Path, Path, FakeEncoder],
) -> None:
    """The Hamming share is only k rows here: every other exact hit must come from the IVF stage."""
    root, path, encoder = ivf_index
    target = root / "food" / "food-3.txt"
    missed_by_codes = 0
    with Searcher(path, encoder=encoder) as searcher:
        for text in TEXTS:
            hits = searcher.query(text, QueryOptions(k=5))
            exact = searcher.query(text, QueryOptions(k=5, exact=True))
            assert [(h.id, round(h.cosine, 5)) for h in hits] == [(h.id, round(h.cosine, 5)) for h in exact]
            assert {h.stage for h in hits} == {STAGE_HYBRID} and {h.stage for h in exact} == {STAGE_EXACT}
            codes_only = searcher.query(text, QueryOptions(k=5, pool=5))
            missed_by_codes += len(set(_ids(exact)) - set(_ids(codes_only)))
            assert {h.stage for h in codes_only} == {STAGE_CODES}
        similar = searcher.similar(target, options=QueryOptions(k=4))
        similar_exact = searcher.similar(target, options=QueryOptions(k=4, exact=True))
    assert missed_by_codes > 0  # the test would pass without the IVF stage otherwise
    assert _ids(similar) == _ids(similar_exact) and all(h.path != str(target.resolve()) for h in similar)
    assert Path(f"{path}.ivf").is_file()


def test_small_indexes_build_no_ivf_and_report_the_codes_stage(ivf_index: tuple[Path, Path, FakeEncoder]) -> None:
    _, path, encoder = ivf_index
    with Searcher(path, encoder=encoder) as searcher:
        hits = searcher.query("flour oven", QueryOptions(k=3))
        unranked = searcher.query("flour oven", QueryOptions(k=3, rerank=False))
    assert {h.stage for h in hits} == {STAGE_CODES} and hits[0].to_dict()["stage"] == STAGE_CODES
    assert {h.stage for h in unranked} == {STAGE_HAMMING}
    assert not Path(f"{path}.ivf").exists()


def _meta(path: Path) -> dict:
    return json.loads(Path(f"{path}.ivf.json").read_text())


@pytest.mark.usefixtures("hybrid")
def test_the_ivf_cache_follows_the_database(
    ivf_index: tuple[Path, Path, FakeEncoder], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fresh files are loaded, not rebuilt; damaged, foreign and stale ones are rebuilt; results do not change."""
    from semhash.caches.ivf import EmbeddingIVF
    from semhash.store import Store

    root, path, encoder = ivf_index
    ivf = Path(f"{path}.ivf")

    def results() -> list[int]:
        with Searcher(path, encoder=encoder) as searcher:
            return _ids(searcher.query("flour oven", QueryOptions(k=5)))

    before = results()
    with Store.open(path) as store:
        stamp = (store.database_id, store.generation, store.change_id)
    assert (_meta(path)["database_id"], _meta(path)["generation"], _meta(path)["change_id"]) == stamp

    builds: list[int] = []
    real_build = EmbeddingIVF.build.__func__  # type: ignore[attr-defined]

    def counted(cls: type, *args: object, **kwargs: object) -> EmbeddingIVF:
        builds.append(1)
        return real_build(cls, *args, **kwargs)

    monkeypatch.setattr(EmbeddingIVF, "build", classmethod(counted))
    assert results() == before and builds == []  # fresh: loaded as it is

    data = bytearray(ivf.read_bytes())  # damaged: a flipped byte fails the checksum
    data[len(data) // 2] ^= 0xFF
    ivf.write_bytes(bytes(data))
    assert results() == before and len(builds) == 1
    assert ivf.read_bytes() != bytes(data)

    other_root, other = tmp_path / "other", tmp_path / "other.db"  # foreign: another database's files
    write_corpus(other_root, per_topic=3)
    index_paths(other, [other_root], IndexOptions(epochs=30, device="cpu"), encoder=encoder)
    with Searcher(other, encoder=encoder) as searcher:
        searcher.query("flour oven", QueryOptions(k=5))
    for suffix in (".ivf", ".ivf.json"):
        Path(f"{path}{suffix}").write_bytes(Path(f"{other}{suffix}").read_bytes())
    assert results() == before and _meta(path)["database_id"] == stamp[0]

    (root / "food" / "fresh.txt").write_text("flour oven butter sugar bread freshly added")  # stale
    index_paths(path, [root], IndexOptions(epochs=30, device="cpu"), encoder=encoder)
    with Searcher(path, encoder=encoder) as searcher:
        names = {Path(h.path).name for h in searcher.query("flour oven butter", QueryOptions(k=3))}
        assert _meta(path)["generation"] == searcher.store.generation
        assert _meta(path)["count"] == searcher.index.size
    assert "fresh.txt" in names


@pytest.mark.usefixtures("hybrid")
def test_the_ivf_is_served_from_memory_when_it_cannot_be_saved(
    ivf_index: tuple[Path, Path, FakeEncoder], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, path, encoder = ivf_index

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("semhash.caches.ivf.EmbeddingIVF.save", full_disk)
    with Searcher(path, encoder=encoder) as searcher:
        hits = searcher.query("rocket moon", QueryOptions(k=4))
        exact = searcher.query("rocket moon", QueryOptions(k=4, exact=True))
    assert _ids(hits) == _ids(exact) and not Path(f"{path}.ivf.json").exists()


def test_the_ivf_is_built_once_per_snapshot_however_many_threads(
    ivf_index: tuple[Path, Path, FakeEncoder], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Concurrent first queries build the IVF once (one lock per snapshot), and all get the same answer."""
    from concurrent.futures import ThreadPoolExecutor

    from semhash.caches import sync

    _, path, encoder = ivf_index
    monkeypatch.setattr("semhash.search.stages.IVF_MIN_DOCS", 1)
    calls: list[int] = []
    real = sync.load_ivf

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("semhash.search.searcher.load_ivf", counted)
    with Searcher(path, encoder=encoder) as searcher:
        searcher.query("oven", QueryOptions(k=2))  # the encoder is loaded before the threads start
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda t: _ids(searcher.query(t, QueryOptions(k=3))), TEXTS * 3))
    assert len(calls) == 1 and len({tuple(r) for r in results}) == len(TEXTS)
    assert np.all([len(r) == 3 for r in results])


def test_indexing_builds_the_query_caches_so_the_first_query_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Old code: `semhash index` left the rerank vectors and the IVF stage to the first ranked query."""
    monkeypatch.setattr("semhash.caches.sync.IVF_MIN_DOCS", 1)
    monkeypatch.setattr("semhash.search.stages.IVF_MIN_DOCS", 1)
    root = tmp_path / "corpus"
    write_corpus(root)
    path = tmp_path / "warm.db"
    encoder = FakeEncoder()
    index_paths(path, [root], IndexOptions(epochs=30, device="cpu"), encoder=encoder)
    assert Path(f"{path}.vectors").is_file() and Path(f"{path}.ivf").is_file()
    from semhash.caches.ivf import EmbeddingIVF

    def no_build(*args: object, **kwargs: object) -> None:
        raise AssertionError("the query rebuilt the IVF index that indexing had saved")

    monkeypatch.setattr(EmbeddingIVF, "build", classmethod(no_build))
    with Searcher(path, encoder=encoder) as searcher:
        hits = searcher.query("flour oven", QueryOptions(k=3))
    assert hits and {h.stage for h in hits} == {STAGE_HYBRID}


def test_small_indexes_get_no_ivf_file_from_indexing(ivf_index: tuple[Path, Path, FakeEncoder]) -> None:
    _, path, _ = ivf_index
    assert Path(f"{path}.vectors").is_file() and not Path(f"{path}.ivf").exists()


def test_warm_loads_the_ivf_stage_before_the_first_query(
    ivf_index: tuple[Path, Path, FakeEncoder], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, path, encoder = ivf_index
    monkeypatch.setattr("semhash.search.stages.IVF_MIN_DOCS", 1)
    with Searcher(path, encoder=encoder) as searcher:
        snapshot = searcher._current()
        assert snapshot.ivf.value is None
        searcher.warm()
        assert snapshot.ivf.value is not None and Path(f"{path}.ivf").is_file()
