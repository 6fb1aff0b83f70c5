"""The Python API mirrors the CLI: index, query, similar, info, dedup, find_existing."""

from __future__ import annotations

from pathlib import Path

from conftest import FAST_EPOCHS, FakeEncoder

from semhash import SemanticIndex


def test_api_round_trip(tmp_path: Path, corpus: Path) -> None:
    (corpus / "food" / "food-0-copy.txt").write_text((corpus / "food" / "food-0.txt").read_text())
    index = SemanticIndex(tmp_path / "api.db", encoder=FakeEncoder())
    report = index.index([corpus], epochs=FAST_EPOCHS, device="cpu")
    assert report.added == 25 and report.total_documents == 25
    hits = index.query("telescope galaxy nebula", k=3)
    assert len(hits) == 3 and all("/space/" in h.path for h in hits)
    similar = index.similar(corpus / "bikes" / "bikes-2.txt", k=2)
    assert len(similar) == 2 and all(h.path != str(corpus / "bikes" / "bikes-2.txt") for h in similar)
    assert index.info().documents == 25
    exact_hits = index.query("telescope galaxy nebula", k=3, exact=True)
    assert [h.id for h in exact_hits] == [h.id for h in index.query("telescope galaxy nebula", k=3, pool=25)]
    assert [h.rank for h in index.similar(corpus / "bikes" / "bikes-2.txt", k=2, exact=True)] == [1, 2]

    result = index.dedup(threshold=0.99)  # the fake corpus is lexically uniform: keep only true copies
    exact = [p for p in result.duplicates if p.reason == "exact"]
    assert len(exact) == 1 and {Path(exact[0].kept_location).name, Path(exact[0].duplicate_location).name} == {
        "food-0.txt",
        "food-0-copy.txt",
    }
    new = tmp_path / "incoming"
    new.mkdir()
    (new / "again.txt").write_text((corpus / "space" / "space-1.txt").read_text())
    found = index.find_existing([new])
    assert found.existing
    assert index.info().documents == 25  # nothing was added
