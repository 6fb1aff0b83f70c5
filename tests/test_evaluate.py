"""``semhash.evaluate``: labelled JSONL in, side-by-side scores out (with a deterministic fake encoder)."""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from support import write_labelled_jsonl

from semhash.errors import CorpusError, UsageError
from semhash.evaluate import FLOAT, OURS, embed_with_cache, evaluate, read_labelled_jsonl
from semhash.train import TrainConfig


class FakeEncoder:
    """Bag of hashed words: each word a fixed random vector (seeded by its crc32), summed, normalised."""

    name = "fake-bow"
    dim = 48

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float64)
        for row, text in enumerate(texts):
            for word in text.split():
                out[row] += np.random.default_rng(zlib.crc32(word.encode())).standard_normal(self.dim)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.maximum(norms, 1e-12)).astype(np.float32)


FAST = TrainConfig(epochs=8)


def test_evaluate_reports_every_method(tmp_path: Path) -> None:
    data = write_labelled_jsonl(tmp_path / "toy.jsonl")
    encoder = FakeEncoder()
    report = evaluate(
        data, bits="16", seeds="0,1", ks="10,100", encoder=encoder, cache=tmp_path / "c.npz", train_config=FAST
    )
    assert report.n_queries == 48 and report.n_database == 192 and report.dropped_empty == 1
    assert report.n_labels == 4
    methods = {(s.method, s.bits, s.seed) for s in report.scores}
    assert (FLOAT, None, None) in methods
    for seed in (0, 1):
        assert {("lsh", 16, seed), ("itq", 16, seed), (OURS, 16, seed)} <= methods
    assert ("pca-sign", 16, 0) in methods and ("pca-sign", 16, 1) not in methods
    for score in report.scores:
        assert 0.0 <= score.metrics["p@100"] <= 1.0 and 0.0 <= score.metrics["map"] <= 1.0
    rows = {(r.method, r.bits): r for r in report.summary("p@10")}
    assert rows[(OURS, 16)].runs == 2
    # Four clean topics: the learned codes are far better than chance (0.25).
    assert rows[(OURS, 16)].mean > 0.8
    assert rows[(FLOAT, None)].mean > 0.8


def test_cache_avoids_reembedding(tmp_path: Path) -> None:
    data = write_labelled_jsonl(tmp_path / "toy.jsonl", n=60)
    cache = tmp_path / "cache.npz"
    first = FakeEncoder()
    report = evaluate(data, bits=[8], encoder=first, cache=cache, train_config=FAST, with_map=False)
    assert report.embedded > 0 and first.calls == report.embedded and report.cached == 0
    second = FakeEncoder()
    again = evaluate(data, bits=[8], encoder=second, cache=cache, train_config=FAST, with_map=False)
    assert second.calls == 0 and again.embedded == 0 and again.cached == report.n_database + report.n_queries


def test_cache_of_another_model_is_ignored(tmp_path: Path) -> None:
    cache = tmp_path / "cache.npz"
    encoder = FakeEncoder()
    vectors, embedded, from_cache = embed_with_cache(["a b", "c d", "a b"], encoder, cache)
    assert embedded == 2 and from_cache == 0 and vectors.shape == (3, 48)
    np.testing.assert_array_equal(vectors[0], vectors[2])
    other = FakeEncoder()
    other.name = "other-model"
    _, embedded, from_cache = embed_with_cache(["a b"], other, cache)
    assert embedded == 1 and from_cache == 0
    _, embedded, from_cache = embed_with_cache(["a b", "c d"], FakeEncoder(), tmp_path / "fresh.npz")
    assert (embedded, from_cache) == (2, 0)


def test_without_split_field_draws_a_seeded_split(tmp_path: Path) -> None:
    data = write_labelled_jsonl(tmp_path / "nosplit.jsonl", n=100, with_split=False)
    first = read_labelled_jsonl(data)
    again = read_labelled_jsonl(data)
    np.testing.assert_array_equal(first.is_query, again.is_query)
    assert first.is_query.sum() == 20 and "seeded random split" in first.split_note


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"text": "x"}', 'no "labels"'),
        ('{"labels": ["a"]}', 'no "text"'),
        ("not json", "is not JSON"),
        ('{"text": "x", "label": "a", "split": "dev"}', "split must be"),
    ],
)
def test_bad_records(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(CorpusError, match=message):
        read_labelled_jsonl(path)


def test_missing_file_and_bad_options(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="no labelled data"):
        read_labelled_jsonl(tmp_path / "absent.jsonl")
    data = write_labelled_jsonl(tmp_path / "toy.jsonl", n=20)
    with pytest.raises(UsageError):
        evaluate(data, bits="12", encoder=FakeEncoder(), cache=tmp_path / "c.npz")
    with pytest.raises(UsageError):
        evaluate(data, baselines=["nope"], encoder=FakeEncoder(), cache=tmp_path / "c.npz")


@pytest.mark.process
def test_eval_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from semhash.cli import app

    monkeypatch.setattr("semhash.embed.load_encoder", lambda *args, **kwargs: FakeEncoder())
    data = write_labelled_jsonl(tmp_path / "toy.jsonl", n=60)
    args = ["eval", str(data), "--bits", "8", "--k", "5", "--cache", str(tmp_path / "c.npz"), "--device", "cpu"]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert {row["method"] for row in rows} == {FLOAT, OURS, "lsh", "pca-sign", "itq"}
    table = CliRunner().invoke(app, args)
    assert table.exit_code == 0 and "itq" in table.stdout and "p@5" in table.stdout
    missing = CliRunner().invoke(app, ["eval", str(tmp_path / "absent.jsonl")])
    assert missing.exit_code == 1 and "no labelled data" in missing.output


def test_eval_embeddings_cache_follows_semhash_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from semhash.evaluate import default_cache_path

    monkeypatch.setenv("SEMHASH_CACHE", str(tmp_path / "cache"))
    assert default_cache_path("sentence-transformers/all-MiniLM-L6-v2") == (
        tmp_path / "cache" / "embeddings-sentence-transformers_all-MiniLM-L6-v2.npz"
    )
    monkeypatch.delenv("SEMHASH_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_path("m").parent == tmp_path / "xdg" / "semhash"
