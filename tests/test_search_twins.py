"""Issue 21: near-identical twins (one page as ``.md`` and ``.html``) fold into one hit; look-alikes do not."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support import FAST_EPOCHS, FakeEncoder, write_corpus, write_twins
from typer.testing import CliRunner

import semhash.search.twins
from semhash.api import SemanticIndex
from semhash.cli import app
from semhash.ingest import IndexOptions, index_paths
from semhash.search import TWIN_OVERLAP, QueryOptions, Searcher
from semhash.serve import create_app
from semhash.types import Hit

QUERY = "zeppelin moored at the harbour mast, ballast, gas cells, engines and landing"
runner = CliRunner()


@pytest.fixture(scope="module")
def twins_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, FakeEncoder, dict[str, Path]]:
    root = tmp_path_factory.mktemp("twins") / "docs"
    write_corpus(root, per_topic=4)
    paths = write_twins(root / "fleet")
    db = root.parent / "t.db"
    encoder = FakeEncoder()
    index_paths(db, [root], IndexOptions(epochs=int(FAST_EPOCHS), device="cpu"), encoder=encoder)
    return db, encoder, paths


def _by_name(hits: list[Hit]) -> dict[str, Hit]:
    return {Path(h.path).name: h for h in hits}


def test_twins_fold_into_the_better_ranked_one_and_look_alikes_stay(
    twins_db: tuple[Path, FakeEncoder, dict[str, Path]],
) -> None:
    db, encoder, paths = twins_db
    with Searcher(db, encoder=encoder) as searcher:
        every = searcher.query(QUERY, QueryOptions(k=8, collapse=False))
        folded = searcher.query(QUERY, QueryOptions(k=8))
    names = [Path(h.path).name for h in every]
    assert {"handbook.md", "handbook.html", "notes-1.txt", "notes-2.txt"} <= set(names)
    assert all(not h.copies and not h.folded for h in every)  # --no-collapse: every row, nothing folded
    shown = _by_name(folded)
    better, worse = sorted(("handbook.md", "handbook.html"), key=names.index)
    assert better in shown and worse not in shown  # the better-ranked twin stands for the pair
    (entry,) = shown[better].folded
    assert entry.location == str(paths[worse.split(".")[1]].resolve())
    assert entry.why == "near-identical text" and entry.overlap is not None and TWIN_OVERLAP <= entry.overlap <= 1
    assert shown[better].copies == [entry.location]
    # the release notes hold the same words (cosine 1 with this encoder) in another order: both stay, unfolded
    assert not shown["notes-1.txt"].folded and not shown["notes-2.txt"].folded
    assert len(folded) == 8  # the fold read deeper to fill k
    assert [h.rank for h in folded] == list(range(1, 9))


def test_the_cosine_gate_spares_the_text_check(
    twins_db: tuple[Path, FakeEncoder, dict[str, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, encoder, _ = twins_db
    monkeypatch.setattr(semhash.search.twins, "TWIN_COSINE", 1.01)
    with Searcher(db, encoder=encoder) as searcher:
        hits = searcher.query(QUERY, QueryOptions(k=8))
    assert {"handbook.md", "handbook.html"} <= set(_by_name(hits)) and all(not h.folded for h in hits)


def test_an_exact_copy_of_a_twin_folds_with_it_and_says_why(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    write_corpus(root, per_topic=2)
    paths = write_twins(root / "fleet")
    shutil.copy(paths["html"], root / "fleet" / "handbook-copy.html")
    db, encoder = tmp_path / "t.db", FakeEncoder()
    index_paths(db, [root], IndexOptions(epochs=int(FAST_EPOCHS), device="cpu"), encoder=encoder)
    with Searcher(db, encoder=encoder) as searcher:
        (hit,) = [h for h in searcher.query(QUERY, QueryOptions(k=8)) if h.folded]
    group = {Path(hit.path).name, *(Path(f.location).name for f in hit.folded)}
    assert group == {"handbook.md", "handbook.html", "handbook-copy.html"}
    for entry in hit.folded:
        same = Path(entry.location).suffix == Path(hit.path).suffix  # the two .html files are byte-identical
        assert (entry.why, entry.overlap is None) == (
            ("same content", True) if same else ("near-identical text", False)
        )


def test_folded_twins_on_the_cli_api_and_server(
    twins_db: tuple[Path, FakeEncoder, dict[str, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, encoder, _ = twins_db
    monkeypatch.setattr("semhash.embed.load_encoder", lambda *args, **kwargs: encoder)
    result = runner.invoke(app, ["query", QUERY, "--db", str(db), "-k", "8", "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    (row,) = [r for r in rows if r["folded"]]
    (entry,) = row["folded"]
    assert set(entry) == {"location", "why", "overlap"} and entry["why"] == "near-identical text"
    assert row["copies"] == [entry["location"]] and Path(entry["location"]).stem == "handbook"
    result = runner.invoke(app, ["query", QUERY, "--db", str(db), "-k", "8", "--no-collapse", "--json"])
    names = [Path(json.loads(line)["path"]).name for line in result.output.splitlines()]
    assert {"handbook.md", "handbook.html"} <= set(names)
    result = runner.invoke(app, ["query", QUERY, "--db", str(db), "-k", "8"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "(+1 near-identical)" in result.output
    api_hits = SemanticIndex(db, encoder=encoder).query(QUERY, k=8)
    assert [h.to_dict()["folded"] for h in api_hits] == [r["folded"] for r in rows]
    with TestClient(create_app(db, encoder=encoder)) as client:
        served = client.get("/api/query", params={"q": QUERY, "k": 8}).json()["hits"]
        assert [h["folded"] for h in served] == [r["folded"] for r in rows]
        unfolded = client.get("/api/query", params={"q": QUERY, "k": 8, "collapse": "false"}).json()["hits"]
        assert all(h["folded"] == [] for h in unfolded)


def test_the_shingle_cache_keeps_sets_across_queries_within_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = semhash.search.twins.ShingleCache()
    first = cache.get(1, "one two three four")
    assert cache.get(1, "not read again: the id's set is kept") is first
    monkeypatch.setattr(semhash.search.twins, "CACHE_HASHES", 5)  # room for one of these sets (3 and 4 hashes)
    cache.get(2, "five six seven eight nine")
    assert cache.get(1, "a b") is not first and len(cache.get(1, "a b")) == 1  # 1 was dropped, then made again
