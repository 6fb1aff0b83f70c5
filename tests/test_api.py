"""The Python API mirrors the CLI: index, query, similar, info, dedup, find_existing."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from pathlib import Path

from support import FAST_EPOCHS, FakeEncoder

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


def _keyword_defaults(method: Callable[..., object]) -> dict[str, object]:
    parameters = inspect.signature(method).parameters.values()
    return {p.name: p.default for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}


def test_api_keywords_are_the_options_dataclasses_fields_with_their_defaults() -> None:
    """The API's typed keywords mirror the options dataclasses: same names, same defaults."""
    from semhash.corpus import ReadOptions
    from semhash.dedup import DedupEngine, DedupOptions
    from semhash.ingest import IndexOptions

    dedup = {f.name: getattr(DedupOptions(), f.name) for f in dataclasses.fields(DedupOptions)}
    engine = {f.name: getattr(DedupEngine(), f.name) for f in dataclasses.fields(DedupEngine)}
    assert _keyword_defaults(SemanticIndex.dedup) == {**dedup, **engine}  # dedup also runs on Ray
    assert _keyword_defaults(SemanticIndex.find_existing) == dedup
    index = _keyword_defaults(SemanticIndex.index)
    fields = {f.name: getattr(IndexOptions(), f.name) for f in dataclasses.fields(IndexOptions)}
    # model and device come from the SemanticIndex (device may be overridden: None = the index's);
    # export_encoder is the CLI's own switch; read=None stands for ReadOptions().
    assert set(index) == set(fields) - {"model", "export_encoder"}
    assert index.pop("device") is None and index.pop("read") is None and fields["read"] == ReadOptions()
    assert all(index[name] == fields[name] for name in index)
