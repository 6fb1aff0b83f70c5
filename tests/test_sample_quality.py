"""On the shipped sample corpus, with the real model: learned codes beat random-hyperplane LSH."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from semhash.baselines import fit_lsh
from semhash.codes import hamming_matrix, ints_to_packed
from semhash.dedup import dedup_index
from semhash.ingest import IndexOptions, index_paths
from semhash.metrics import label_matrix, ranking_metrics
from semhash.store import Store

pytestmark = pytest.mark.slow
SAMPLE = Path(__file__).parent.parent / "data" / "sample"


def _leave_one_out_p_at_k(packed: np.ndarray, topics: list[str], k: int) -> float:
    labels = label_matrix([[t] for t in topics], sorted(set(topics)))
    dist = hamming_matrix(packed, packed).astype(np.float64)
    np.fill_diagonal(dist, np.inf)  # a document is not its own neighbour
    return ranking_metrics(lambda a, b: dist[a:b], labels, labels, ks=(k,), with_map=False)[f"p@{k}"]


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    db = tmp_path_factory.mktemp("sample") / "sample.db"
    report = index_paths(db, [SAMPLE], IndexOptions(device="cpu"))
    return db, report.total_documents


def test_codes_beat_lsh_on_the_sample(sample_db: tuple[Path, int]) -> None:
    db, total = sample_db
    assert total >= 100
    with Store.open(db) as store:
        ids, codes = store.codes()
        _, embeddings = store.embeddings(ids.tolist())
        paths = store.documents(ids.tolist())
    topics = [Path(paths[int(i)].path).parent.name for i in ids]
    ours = _leave_one_out_p_at_k(ints_to_packed(codes, 32), topics, k=10)
    lsh = np.mean([_leave_one_out_p_at_k(fit_lsh(384, 32, seed).encode(embeddings), topics, 10) for seed in range(5)])
    usage = np.unpackbits(ints_to_packed(codes, 32), axis=1, bitorder="little").mean(axis=0)
    assert ours > lsh + 0.05, f"codes P@10 {ours:.3f} vs LSH {lsh:.3f}"
    assert usage.min() > 0.0 and usage.max() < 1.0  # every bit is used: no collapse


def test_dedup_finds_the_planted_copies_and_edits(sample_db: tuple[Path, int]) -> None:
    db, _ = sample_db
    truth = list(csv.DictReader((SAMPLE.parent / "sample_duplicates.csv").open()))
    result = dedup_index(db)
    found = {
        frozenset(
            (
                Path(p.kept_location).relative_to(SAMPLE).as_posix(),
                Path(p.duplicate_location).relative_to(SAMPLE).as_posix(),
            )
        )
        for p in result.duplicates
    }
    lexical = [row for row in truth if row["kind"] != "paraphrase"]
    missed = [row for row in lexical if frozenset((row["original"], row["duplicate"])) not in found]
    assert not missed, f"planted duplicates not found: {missed}"
    planted = {frozenset((row["original"], row["duplicate"])) for row in truth}
    assert len(found - planted) <= 1, f"unexpected pairs: {found - planted}"
