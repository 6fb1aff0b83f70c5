"""``semhash outliers`` scores (kNN distance, combined) and the drift warning for added documents."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from support import FAST_EPOCHS, LEXICAL_TOPICS, FakeEncoder
from typer.testing import CliRunner

import semhash.neighbourhood as neighbourhood
import semhash.outliers as outliers
from semhash.cli import app
from semhash.errors import UsageError
from semhash.ingest import IndexOptions, index_paths
from semhash.store import Store

runner = CliRunner()


def unit_rows(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def brute_kth(reference: np.ndarray, queries: np.ndarray, k: int, self_rows: np.ndarray | None) -> np.ndarray:
    sims = queries.astype(np.float64) @ reference.T.astype(np.float64)
    if self_rows is not None:
        sims[np.arange(len(queries)), self_rows] = -np.inf
    return 1.0 - (-np.sort(-sims, axis=1))[:, k - 1]


def clustered(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, dim))
    return unit_rows(centres[rng.integers(0, 20, n)] + 0.3 * rng.standard_normal((n, dim)))


@pytest.mark.parametrize("k", [1, 3, 10])
def test_knn_distances_equal_brute_force_and_skip_the_query_itself(k: int) -> None:
    x = clustered(500)
    got = neighbourhood.knn_distances(x, x[:100], k, np.arange(500), np.arange(100))
    np.testing.assert_allclose(got, brute_kth(x, x[:100], k, np.arange(100)), atol=1e-5)
    # Queries that are not in the reference keep their k nearest rows (no row skipped).
    fresh = clustered(50, seed=1)
    np.testing.assert_allclose(neighbourhood.knn_distances(x, fresh, k), brute_kth(x, fresh, k, None), atol=1e-5)


def test_large_references_use_ivf_and_stay_close(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(neighbourhood, "_FLAT_LIMIT", 1000)
    x = clustered(4000)
    got = neighbourhood.knn_distances(x, x[:300], 5, np.arange(4000), np.arange(300))
    want = brute_kth(x, x[:300], 5, np.arange(300))
    assert np.all(got >= want - 1e-5)  # an approximate search only misses neighbours: never closer
    assert np.corrcoef(got, want)[0, 1] > 0.95


def test_robust_z_and_combined() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0, 100.0])
    z = outliers.robust_z(values)
    assert z[2] == 0 and z[-1] > 50 and np.isclose(z[3], 1 / 1.4826)
    combined = outliers.combined_scores(values, values[::-1])
    assert np.allclose(combined, (z + z[::-1]) / 2)


def write_topic_docs(folder: Path, topics: dict[str, int], seed: int) -> list[Path]:
    """``count`` short documents of each named topic (words of ``LEXICAL_TOPICS``)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for topic, count in topics.items():
        vocab = LEXICAL_TOPICS[topic].split()
        for i in range(count):
            path = folder / f"{topic}-{seed}-{i}.txt"
            path.write_text("the weekend report about " + " ".join(rng.choice(vocab, size=8)))
            paths.append(path)
    return paths


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index trained on the space and food topics (fake encoder, fast training), built once."""
    root = tmp_path_factory.mktemp("trained")
    db = root / "o.db"
    write_topic_docs(root / "corpus", {"space": 40, "food": 40}, seed=0)
    index_paths(db, [root / "corpus"], IndexOptions(epochs=FAST_EPOCHS), encoder=FakeEncoder())
    return db


@pytest.fixture
def trained_db(trained_once: Path, tmp_path: Path) -> Path:
    """A private copy of the trained index (tests add documents to it)."""
    db = tmp_path / "o.db"
    with sqlite3.connect(trained_once) as source, sqlite3.connect(db) as target:
        source.backup(target)
    return db


def add_batch(db: Path, folder: Path, topics: dict[str, int], seed: int) -> list[int]:
    """Index a new folder into ``db`` with the existing model; returns the new documents' ids."""
    paths = write_topic_docs(folder, topics, seed)
    index_paths(db, [folder], IndexOptions(), encoder=FakeEncoder())
    with Store.open(db) as store:
        return [store.find(str(p))[0].id for p in paths]


def test_drift_warning_fires_on_an_unseen_topic_and_stays_silent_on_known_ones(
    trained_db: Path, tmp_path: Path
) -> None:
    known = add_batch(trained_db, tmp_path / "known", {"space": 15, "food": 15}, seed=1)
    with Store.open(trained_db) as store:
        assert neighbourhood.drift_warning(store, known) is None
    mixed = add_batch(trained_db, tmp_path / "mixed", {"bikes": 20, "food": 10}, seed=2)
    with Store.open(trained_db) as store:
        message = neighbourhood.drift_warning(store, mixed)
        report = neighbourhood.drift_report(store, mixed)
    assert message is not None and "--retrain" in message and f"of the {len(mixed)} new documents" in message
    assert report.drifted and report.share_above >= neighbourhood.DRIFT_MIN_SHARE
    assert report.new_median > report.reference_median
    assert message.startswith("drift: ") and "\n" not in message


def test_drift_statistics_need_a_marked_and_significant_excess() -> None:
    rng = np.random.default_rng(0)
    reference = rng.gamma(4, 0.05, 2000)
    assert not neighbourhood.drift_statistics(reference, rng.gamma(4, 0.05, 200)).drifted
    worse = neighbourhood.drift_statistics(reference, rng.gamma(4, 0.05, 200) + 0.15)
    assert (
        worse.drifted
        and worse.share_above >= neighbourhood.DRIFT_MIN_SHARE
        and worse.sigmas >= neighbourhood.DRIFT_MIN_SIGMAS
    )
    assert not neighbourhood.drift_statistics(reference, reference[:5] + 1.0).drifted  # too few to say
    assert not neighbourhood.drift_statistics(np.array([]), reference).drifted


def test_find_outliers_scores(tmp_path: Path, trained_db: Path) -> None:
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "odd.txt").write_text("quarterly tax filing deadline invoice accountant spreadsheet audit")
    index_paths(trained_db, [odd], IndexOptions(), encoder=FakeEncoder())
    for score in outliers.SCORES:
        found = outliers.find_outliers(trained_db, k=3, score=score)
        assert found[0].path.endswith("odd.txt"), score
        assert found[0].z_score >= found[1].z_score >= found[2].z_score
        assert (found[0].knn_distance is None) == (score == "recon")
    with pytest.raises(UsageError, match="--score must be one of"):
        outliers.find_outliers(trained_db, score="magic")
    with pytest.raises(UsageError, match="--neighbours must be at least 1"):
        outliers.find_outliers(trained_db, neighbours=0)


def test_store_knn_distances_sample_bounds_the_reference(trained_db: Path) -> None:
    with Store.open(trained_db) as store:
        ids, matrix = store.embeddings()
        exact = neighbourhood.store_knn_distances(store, ids, k=3)
        sampled = neighbourhood.store_knn_distances(store, ids, k=3, max_reference=20)
    np.testing.assert_allclose(exact, brute_kth(matrix, matrix, 3, np.arange(len(ids))), atol=1e-5)
    assert np.all(sampled >= exact - 1e-6)  # fewer candidates: the k-th neighbour is never closer


def test_cli_outliers_score_option(trained_db: Path) -> None:
    result = runner.invoke(app, ["outliers", "--db", str(trained_db), "--json", "-k", "2", "--score", "knn"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert rows[0]["score"] == "knn" and rows[0]["knn_distance"] >= rows[1]["knn_distance"]
    result = runner.invoke(app, ["outliers", "--db", str(trained_db), "--score", "magic"])
    assert result.exit_code == 2 and result.output.startswith("error: --score must be one of")


def test_semhash_index_reports_drift_when_it_adds_an_unseen_topic(trained_db: Path, tmp_path: Path) -> None:
    """The warning is wired into indexing: silent for known topics, a line naming --retrain for a new one."""
    write_topic_docs(tmp_path / "known", {"space": 15, "food": 15}, 1)
    assert index_paths(trained_db, [tmp_path / "known"], IndexOptions(), encoder=FakeEncoder()).drift_warning is None
    write_topic_docs(tmp_path / "mixed", {"bikes": 20, "food": 10}, 2)
    report = index_paths(trained_db, [tmp_path / "mixed"], IndexOptions(), encoder=FakeEncoder())
    assert report.drift_warning is not None and "--retrain" in report.drift_warning
    retrained = index_paths(trained_db, [tmp_path / "mixed"], IndexOptions(retrain=True), encoder=FakeEncoder())
    assert retrained.drift_warning is None  # a retrained model has seen them
