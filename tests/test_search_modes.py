"""Issue 21: the keyword index (FTS5) kept in step, the three ranking modes, folded copies, the weak flag."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import FAST_EPOCHS, FakeEncoder, write_corpus
from typer.testing import CliRunner

import semhash.search.results
from semhash.api import SemanticIndex
from semhash.cli import app
from semhash.errors import UsageError
from semhash.ingest import IndexOptions, index_paths, prune_index, remove_paths
from semhash.search import QueryOptions, Searcher, fuse, keyword_matches
from semhash.serve import create_app
from semhash.store import FTS_TABLE, SCHEMA_VERSION, Store

OPTS = IndexOptions(epochs=int(FAST_EPOCHS), device="cpu")
runner = CliRunner()


def _keyword(db: Path, text: str, encoder: FakeEncoder, k: int = 50, collapse: bool = True) -> list[str]:
    with Searcher(db, encoder=encoder) as searcher:
        hits = searcher.query(text, QueryOptions(k=k, mode="keyword", collapse=collapse))
    return sorted(Path(h.path).name for h in hits)


def _fts_consistent(db: Path) -> None:
    """FTS5's own check that the keyword index holds exactly the terms of the stored texts."""
    conn = sqlite3.connect(db)
    try:
        conn.execute(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rank) VALUES ('integrity-check', 1)")
    finally:
        conn.close()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    write_corpus(root, per_topic=4)
    return root


def test_the_keyword_index_follows_add_change_remove_and_prune(tmp_path: Path, folder: Path) -> None:
    db, encoder = tmp_path / "s.db", FakeEncoder()
    (folder / "extra.txt").write_text("a zeppelin drifted over the harbour")
    index_paths(db, [folder], OPTS, encoder=encoder)
    _fts_consistent(db)
    assert _keyword(db, "zeppelin", encoder) == ["extra.txt"]
    # changed: the new words are found, the old ones no longer
    (folder / "extra.txt").write_text("a submarine surfaced in the harbour")
    index_paths(db, [folder], OPTS, encoder=encoder)
    _fts_consistent(db)
    assert _keyword(db, "zeppelin", encoder) == []
    assert _keyword(db, "submarine", encoder) == ["extra.txt"]
    # added
    (folder / "more.txt").write_text("another submarine story")
    index_paths(db, [folder], OPTS, encoder=encoder)
    assert _keyword(db, "submarine", encoder) == ["extra.txt", "more.txt"]
    # removed with `semhash remove`
    remove_paths(db, [folder / "more.txt"])
    _fts_consistent(db)
    assert _keyword(db, "submarine", encoder) == ["extra.txt"]
    # pruned (`semhash prune`) and removed automatically when a file vanished under an indexed folder
    (folder / "extra.txt").unlink()
    prune_index(db)
    _fts_consistent(db)
    assert _keyword(db, "harbour", encoder) == []
    (folder / "space" / "space-0.txt").unlink()
    index_paths(db, [folder], OPTS, encoder=encoder)
    _fts_consistent(db)
    with Store.open(db) as store:
        fts_rows = store.db.execute(f"SELECT count(*) FROM {FTS_TABLE}").fetchone()[0]
        assert store.db.execute(f"SELECT count(*) FROM {FTS_TABLE}_docsize").fetchone()[0] == store.count()
        assert fts_rows == store.count()


def test_storing_codes_does_not_rewrite_the_keyword_index(tmp_path: Path, folder: Path) -> None:
    db = tmp_path / "s.db"
    index_paths(db, [folder], OPTS, encoder=FakeEncoder())
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE fired (n INTEGER)")
    conn.execute(f"CREATE TRIGGER spy AFTER INSERT ON {FTS_TABLE}_docsize BEGIN INSERT INTO fired VALUES (1); END")
    conn.execute("UPDATE documents SET code = code, recon_error = 0.5")
    assert conn.execute("SELECT count(*) FROM fired").fetchone()[0] == 0
    conn.close()


def _make_version_2(db: Path) -> None:
    """What an index written before schema 3 looks like: no keyword index, user_version 2."""
    conn = sqlite3.connect(db)
    for suffix in ("insert", "delete", "update"):
        conn.execute(f"DROP TRIGGER {FTS_TABLE}_{suffix}")
    conn.execute(f"DROP TABLE {FTS_TABLE}")
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()


@pytest.mark.process
def test_a_version_2_index_gets_its_keyword_index_by_migration(tmp_path: Path, folder: Path) -> None:
    db, encoder = tmp_path / "s.db", FakeEncoder()
    index_paths(db, [folder], OPTS, encoder=encoder)
    _make_version_2(db)
    # A reader that cannot migrate now (a writer holds the lock): semantic works, keyword says what to do.
    blocker = sqlite3.connect(db)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with Searcher(db, encoder=encoder) as searcher:
            assert searcher.query("telescope", QueryOptions(k=3))
            with pytest.raises(UsageError, match="no keyword index"):
                searcher.query("telescope", QueryOptions(k=3, mode="keyword"))
    finally:
        blocker.rollback()
        blocker.close()
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == 2
    with Store.open(db, write=True) as store:  # any open that can write migrates
        assert store.has_keyword_index()
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    _fts_consistent(db)
    assert len(_keyword(db, "telescope", encoder)) >= 1
    assert all(name.startswith("space") for name in _keyword(db, "telescope", encoder))


def test_phrase_prefix_and_plain_words(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "a.txt").write_text("regular expression syntax explained")
    (root / "b.txt").write_text("an expression that is regular in its syntax")
    (root / "c.txt").write_text("compression levels of zstd")
    (root / "d.txt").write_text("the compressor and its levels")
    db, encoder = tmp_path / "s.db", FakeEncoder()
    index_paths(db, [root], OPTS, encoder=encoder)
    assert _keyword(db, '"regular expression"', encoder) == ["a.txt"]
    assert _keyword(db, "regular expression", encoder) == ["a.txt", "b.txt"]  # plain words: any of them
    assert _keyword(db, "compress*", encoder) == ["c.txt", "d.txt"]
    assert _keyword(db, "zstd", encoder) == ["c.txt"]
    assert _keyword(db, "levels NOT zstd", encoder) == ["d.txt"]
    # Not FTS5 syntax: searched as its words, never an error.
    assert _keyword(db, '"regular expression', encoder) == ["a.txt", "b.txt"]
    assert _keyword(db, "zstd: (levels", encoder) == ["c.txt", "d.txt"]
    assert _keyword(db, "¿¡!!", encoder) == []
    with Searcher(db, encoder=encoder) as searcher:
        hits = searcher.query("zstd levels", QueryOptions(k=2, mode="keyword"))
        assert hits[0].path.endswith("c.txt") and hits[0].bm25 is not None and hits[0].bm25 > 0
        assert hits[0].stage == "fts" and hits[0].mode == "keyword"


def test_keyword_matches_and_fusion() -> None:
    assert keyword_matches("plain words here") == ['"plain" OR "words"']  # a stop word left out
    assert keyword_matches("how to") == ['"how" OR "to"']  # only stop words: kept
    assert keyword_matches('"a phrase" x*') == ['"a phrase" x*', '"phrase" OR "x"']
    assert keyword_matches("!!!") == []
    assert keyword_matches("Zstd zstd levels ZSTD") == ['"Zstd" OR "levels"']  # each word once
    many = " ".join(f"w{i}" for i in range(200)) + ' "a phrase"'
    assert keyword_matches(many) == [" OR ".join(f'"w{i}"' for i in range(64))]  # the first 64, never as syntax
    fused = fuse([[1, 2, 3], [3, 4]], constant=60)
    assert [i for i, _ in fused] == [3, 1, 2, 4]  # in both rankings beats first in one
    assert fused[0][1] == pytest.approx(1 / 63 + 1 / 61)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, FakeEncoder]:
    root = tmp_path_factory.mktemp("modes") / "docs"
    write_corpus(root)
    (root / "space" / "twin.txt").write_text((root / "space" / "space-1.txt").read_text())
    (root / "copy-of-space-1.txt").write_text((root / "space" / "space-1.txt").read_text())
    db = root.parent / "s.db"
    encoder = FakeEncoder()
    index_paths(db, [root], OPTS, encoder=encoder)
    return db, encoder


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(min_size=1, max_size=40))
def test_any_query_text_is_searched_never_an_error(indexed: tuple[Path, FakeEncoder], text: str) -> None:
    db, encoder = indexed
    with Searcher(db, encoder=encoder) as searcher:
        for mode in ("keyword", "hybrid"):
            if not text.strip():
                with pytest.raises(UsageError, match="empty"):
                    searcher.query(text, QueryOptions(k=3, mode=mode))
                continue
            hits = searcher.query(text, QueryOptions(k=3, mode=mode))
            assert len(hits) <= 3


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.lists(
        st.sampled_from(['"', "*", "(", ")", "AND", "OR", "NOT", "NEAR", ":", "^", "+", "-", "text", "planet"]),
        min_size=1,
        max_size=8,
    ).map(" ".join)
)
def test_fts5_operators_in_any_order_are_never_an_error(indexed: tuple[Path, FakeEncoder], text: str) -> None:
    db, encoder = indexed
    with Searcher(db, encoder=encoder) as searcher:
        for mode in ("keyword", "hybrid"):
            searcher.query(text, QueryOptions(k=3, mode=mode))


def test_hybrid_holds_both_rankings(indexed: tuple[Path, FakeEncoder]) -> None:
    db, encoder = indexed
    with Searcher(db, encoder=encoder) as searcher:
        semantic = searcher.query("telescope galaxy nebula", QueryOptions(k=5))
        keyword = searcher.query("telescope galaxy nebula", QueryOptions(k=5, mode="keyword"))
        hybrid = searcher.query("telescope galaxy nebula", QueryOptions(k=5, mode="hybrid"))
    assert {h.id for h in hybrid} <= {h.id for h in semantic} | {
        h.id for h in searcher_keyword_deep(db, encoder, "telescope galaxy nebula")
    }
    assert all(h.mode == "hybrid" and h.stage.endswith("+fts") for h in hybrid)
    scores = [h.score for h in hybrid]
    assert scores == sorted(scores, reverse=True)
    assert semantic[0].score == semantic[0].cosine and keyword[0].score == keyword[0].bm25
    with pytest.raises(UsageError, match="--mode"):
        QueryOptions(mode="fuzzy").validate(32)
    with pytest.raises(UsageError, match="--radius"):
        QueryOptions(mode="hybrid", radius=2).validate(32)


def searcher_keyword_deep(db: Path, encoder: FakeEncoder, text: str) -> list:
    with Searcher(db, encoder=encoder) as searcher:
        return list(searcher.query(text, QueryOptions(k=100, mode="keyword")))


@pytest.mark.parametrize("mode", ["semantic", "keyword", "hybrid"])
def test_copies_fold_into_one_hit(indexed: tuple[Path, FakeEncoder], mode: str) -> None:
    db, encoder = indexed
    query = Path(db.parent / "docs" / "space" / "space-1.txt").read_text()
    with Searcher(db, encoder=encoder) as searcher:
        folded = searcher.query(query, QueryOptions(k=5, mode=mode))
        every = searcher.query(query, QueryOptions(k=5, mode=mode, collapse=False))
    names = [Path(h.path).name for h in folded]
    assert len(folded) == 5
    copies = {"space-1.txt", "twin.txt", "copy-of-space-1.txt"}
    assert len(copies & set(names)) == 1
    (carrier,) = [h for h in folded if Path(h.path).name in copies]
    assert {Path(c).name for c in carrier.copies} == copies - {Path(carrier.path).name}
    assert carrier.to_dict()["copies"] == carrier.copies
    assert copies <= {Path(h.path).name for h in every} and all(h.copies == [] for h in every)


def test_weak_when_the_best_cosine_is_below_the_floor(
    indexed: tuple[Path, FakeEncoder], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, encoder = indexed
    with Searcher(db, encoder=encoder) as searcher:
        monkeypatch.setattr(semhash.search.results, "WEAK_COSINE", 1.5)
        hits = searcher.query("telescope galaxy", QueryOptions(k=3, mode="hybrid"))
        assert hits.weak and hits.floor == 1.5
        monkeypatch.setattr(semhash.search.results, "WEAK_COSINE", -1.0)
        assert not searcher.query("telescope galaxy", QueryOptions(k=3)).weak
        # keyword mode with no matching word: no hit at all, weak
        assert searcher.query("xylophone", QueryOptions(k=3, mode="keyword")).weak


def test_modes_copies_and_weak_on_the_cli(indexed: tuple[Path, FakeEncoder], monkeypatch: pytest.MonkeyPatch) -> None:
    db, encoder = indexed
    monkeypatch.setattr("semhash.embed.load_encoder", lambda *args, **kwargs: encoder)
    query = Path(db.parent / "docs" / "space" / "space-1.txt").read_text()
    for mode in ("semantic", "keyword", "hybrid"):
        result = runner.invoke(app, ["query", query, "--db", str(db), "-k", "3", "--mode", mode, "--json"])
        assert result.exit_code == 0, result.output
        rows = [json.loads(line) for line in result.output.splitlines()]
        assert [r["mode"] for r in rows] == [mode] * 3
        assert len(rows[0]["copies"]) == 2 and "weak" in rows[0]
    result = runner.invoke(app, ["query", query, "--db", str(db), "-k", "3", "--no-collapse", "--json"])
    assert all(json.loads(line)["copies"] == [] for line in result.output.splitlines())
    monkeypatch.setattr(semhash.search.results, "WEAK_COSINE", 1.5)
    result = runner.invoke(
        app, ["query", query, "--db", str(db), "-k", "3", "--mode", "hybrid"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "(+2 copies)" in result.output
    assert result.output.strip().splitlines()[-1].startswith("no good match")
    result = runner.invoke(app, ["query", "x", "--db", str(db), "--mode", "fuzzy"])
    assert result.exit_code != 0 and "--mode must be one of" in result.output


def test_modes_on_the_api_and_the_server(indexed: tuple[Path, FakeEncoder]) -> None:
    db, encoder = indexed
    index = SemanticIndex(db, encoder=encoder)
    for mode in ("semantic", "keyword", "hybrid"):
        hits = index.query("telescope galaxy", k=3, mode=mode)
        assert len(hits) == 3 and all(h.mode == mode for h in hits) and isinstance(hits.weak, bool)
    assert all(not h.copies for h in index.query("telescope galaxy", k=3, collapse=False))
    with TestClient(create_app(db, encoder=encoder)) as client:
        for mode in ("semantic", "keyword", "hybrid"):
            body = client.get("/api/query", params={"q": "telescope galaxy", "k": 3, "mode": mode}).json()
            assert body["mode"] == mode and [h["mode"] for h in body["hits"]] == [mode] * 3
            assert isinstance(body["weak"], bool)
        body = client.post("/api/query", json={"q": '"telescope', "mode": "keyword", "collapse": False}).json()
        assert "hits" in body
        response = client.get("/api/query", params={"q": "x", "mode": "fuzzy"})
        assert response.status_code == 400 and "--mode must be one of" in response.json()["error"]


def test_passages_are_the_window_nearest_the_query(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    filler = " ".join(["recipe oven flour butter sugar dough"] * 60)  # ~2,200 characters of another topic
    (root / "long.txt").write_text(f"{filler} the zeppelin drifted over the harbour at dawn. {filler}")
    (root / "short.txt").write_text("a short note on bicycles and their gears")
    db, encoder = tmp_path / "s.db", FakeEncoder()
    index_paths(db, [root], OPTS, encoder=encoder)
    sqlite3.connect(db).execute(
        "UPDATE documents SET locations = '[[0,1],[1500,2]]' WHERE path LIKE '%long.txt'"
    ).connection.commit()
    text = (root / "long.txt").read_text()
    with Searcher(db, encoder=encoder) as searcher:
        plain = searcher.query("zeppelin harbour", QueryOptions(k=2, mode="hybrid"))
        hits = searcher.query("zeppelin harbour", QueryOptions(k=2, mode="hybrid", passages=True))
        found = searcher.query("bicycles gears", QueryOptions(k=2, passages=True))
        (short,) = [h for h in found if h.path.endswith("short.txt")]
    assert plain[0].passage is None and plain[0].snippet.startswith("recipe")
    best = hits[0]
    assert best.path.endswith("long.txt") and best.passage is not None
    start, end = best.passage["start"], best.passage["end"]
    assert 0 < start < text.index("zeppelin") < end and end - start <= 1000
    assert best.passage["page"] == 2 and "zeppelin" in best.snippet
    assert best.to_dict()["passage"] == best.passage
    assert hits.weak == plain.weak and [h.id for h in hits] == [h.id for h in plain]
    assert short.passage is not None and short.passage["source"] == "embedded"  # FakeEncoder stores no windows
    assert {k: short.passage[k] for k in ("start", "end", "page", "cosine")} == {
        "start": 0, "end": len("a short note on bicycles and their gears"), "page": None, "cosine": short.cosine
    }  # fmt: skip
    # the CLI and the server carry it too
    monkeypatch.setattr("semhash.embed.load_encoder", lambda *args, **kwargs: encoder)
    result = runner.invoke(app, ["query", "zeppelin harbour", "--db", str(db), "-k", "1", "--passages", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["passage"]["page"] == 2
    with TestClient(create_app(db, encoder=encoder)) as client:
        body = client.post("/api/query", json={"q": "zeppelin harbour", "k": 1, "passages": True}).json()
        assert body["hits"][0]["passage"]["start"] == start
        assert client.get("/api/query", params={"q": "zeppelin harbour", "k": 1}).json()["hits"][0]["passage"] is None
