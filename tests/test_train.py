"""The hashing recipe.

It trains on small synthetic corpora without collapse, is deterministic, runs on GPU; its stopping rule is
explicit and its held-out documents give a validation signal.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from support import topic_texts

from semhash.codes import hamming_matrix, unpack_bits
from semhash.model import (
    HashingAutoencoder,
    encode_codes,
    encode_with_errors,
    model_from_bytes,
    model_to_bytes,
    reconstruction_error,
)
from semhash.train import TrainConfig, knn_graph, planned_epochs, smooth, steps_per_epoch, train_hasher

#: Tiny and honest: exactly 15 epochs of batches of 16 (~90 steps on 100 documents).
FAST = TrainConfig(epochs=15, hidden=128, batch_size=16)


def finite(stats: dict) -> bool:
    """Every statistic, scalars and per-epoch curves alike, is a finite number."""
    return all(np.isfinite(v).all() for v in stats.values())


def clustered(n: int = 100, dim: int = 32, clusters: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around ``clusters`` random centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)) * 2
    labels = np.arange(n) % clusters
    x = centres[labels] + rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


def test_small_corpus_uses_every_bit_and_keeps_clusters() -> None:
    x, labels = clustered(n=100)
    model, stats = train_hasher(x, 32, FAST)
    codes = encode_codes(model, x)
    assert codes.shape == (100, 4)
    assert finite(stats)
    usage = unpack_bits(codes).mean(axis=0)
    assert stats["dead_bits"] == 0 and usage.min() > 0.05 and usage.max() < 0.95
    dist = hamming_matrix(codes, codes)
    same = labels[:, None] == labels[None, :]
    assert dist[same].mean() + 5 < dist[~same].mean()
    errors = reconstruction_error(model, x)
    assert errors.shape == (100,) and np.isfinite(errors).all()


def test_default_recipe_on_the_sample_size_corpus() -> None:
    """The default config (not a fast one, automatic stopping rule) on 100 documents: no NaN, no dead bit."""
    x, _ = clustered(n=100, dim=48, clusters=6, seed=1)
    model, stats = train_hasher(x, 32, TrainConfig())
    assert finite(stats) and stats["dead_bits"] == 0
    # 95 training documents fit one batch: the automatic rule runs min_steps (400) one-step epochs.
    assert stats["epochs"] == 400 and stats["steps"] == 400 and stats["epochs_auto"] == 1
    assert model.config.bits == 32


def test_training_is_deterministic_for_a_seed() -> None:
    x, _ = clustered(n=80)
    first, _ = train_hasher(x, 16, FAST)
    again, _ = train_hasher(x, 16, FAST)
    other, _ = train_hasher(x, 16, dataclasses.replace(FAST, seed=1))
    np.testing.assert_array_equal(encode_codes(first, x), encode_codes(again, x))
    assert model_to_bytes(first) != model_to_bytes(other)


def test_model_round_trip_keeps_codes() -> None:
    x, _ = clustered(n=60)
    model, _ = train_hasher(x, 24, FAST)
    loaded = model_from_bytes(model_to_bytes(model))
    np.testing.assert_array_equal(encode_codes(model, x), encode_codes(loaded, x))


WEIGHTS = ("teacher_weight", "target_weight", "balance_weight", "decorrelation_weight")


@pytest.mark.parametrize(
    "terms",
    [
        {},
        {"teacher_weight": 0.0, "target_weight": 1.0},
        {"balance_weight": 0.0, "decorrelation_weight": 0.0},
        dict.fromkeys(WEIGHTS, 0.0),
        {"smoothing_hops": 2},
    ],
)
def test_every_loss_term_trains_and_can_be_turned_off(terms: dict) -> None:
    x, _ = clustered(n=90)
    config = dataclasses.replace(FAST, epochs=2, **terms)
    _, stats = train_hasher(x, 16, config)
    assert finite(stats)
    for name in WEIGHTS:
        assert (f"loss_{name.removesuffix('_weight')}" in stats) == (getattr(config, name) > 0)


def test_explicit_epochs_are_run_exactly() -> None:
    """``epochs=5`` on 24 documents runs 5 epochs (the old ``min_steps`` silently made it 400)."""
    x, _ = clustered(n=24)
    progress: list[tuple[int, int]] = []
    _, stats = train_hasher(x, 16, TrainConfig(epochs=5, hidden=64), progress=lambda *p: progress.append(p))
    assert progress == [(epoch, 5) for epoch in range(1, 6)]
    assert stats["epochs"] == 5 and stats["epochs_auto"] == 0
    assert stats["steps"] == 5  # 23 training documents (one held out) make one batch
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=-1)


def test_automatic_stopping_rule() -> None:
    """``epochs=None``: max(auto_epochs, enough epochs for min_steps steps); the progress total says so."""
    auto = TrainConfig(auto_epochs=3, min_steps=20, batch_size=8, hidden=64)
    assert steps_per_epoch(auto, 38) == 5  # four batches of 8 and one of 6
    assert steps_per_epoch(auto, 33) == 4  # the last batch of one is skipped
    assert planned_epochs(auto, 5) == 4  # 20 steps need 4 epochs, more than the floor of 3
    assert planned_epochs(auto, 50) == 3  # a large corpus: the floor
    assert planned_epochs(dataclasses.replace(auto, epochs=1), 5) == 1  # explicit wins, even below min_steps
    assert planned_epochs(TrainConfig(), 22) == 60  # the 20 Newsgroups recipe: 11,014 documents, 60 epochs
    x, _ = clustered(n=40)  # 2 held out, 38 trained on
    progress: list[tuple[int, int]] = []
    _, stats = train_hasher(x, 16, auto, progress=lambda *p: progress.append(p))
    assert progress[-1] == (4, 4) and len(progress) == 4
    assert stats["epochs"] == 4 and stats["steps"] == 20 and stats["epochs_auto"] == 1


def test_held_out_documents_give_a_validation_signal_and_no_gradient(monkeypatch: pytest.MonkeyPatch) -> None:
    import semhash.train as train

    trained: set[int] = set()
    validated: set[int] = set()
    real = train.loss_terms

    def spy(model: HashingAutoencoder, targets: train.Targets, idx: torch.Tensor, config: TrainConfig) -> dict:
        (trained if model.training else validated).update(idx.tolist())
        return real(model, targets, idx, config)

    monkeypatch.setattr(train, "loss_terms", spy)
    x, _ = clustered(n=100)
    _, stats = train_hasher(x, 16, FAST)
    assert stats["holdout"] == 5 and len(validated) == 5
    assert not trained & validated and len(trained | validated) == 100
    curve = stats["val_agreement_by_epoch"]
    assert isinstance(curve, list) and len(curve) == FAST.epochs == len(stats["val_loss_by_epoch"])  # type: ignore[arg-type]
    assert stats["val_agreement"] == curve[-1] and min(curve) >= 0 and max(curve) <= 1
    # The student learns to predict the teacher bits of documents it never trained on.
    assert curve[-1] > 0.8 and curve[-1] > curve[0]
    capped = dataclasses.replace(FAST, epochs=1, holdout_max=3)
    assert train_hasher(x, 16, capped)[1]["holdout"] == 3
    _, none = train_hasher(x, 16, dataclasses.replace(FAST, epochs=1, holdout_fraction=0.0))
    assert none["holdout"] == 0 and "val_agreement" not in none


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_tiny_corpora_do_not_crash(n: int) -> None:
    x, _ = clustered(n=n)
    progress: list[tuple[int, int]] = []
    model, stats = train_hasher(x, 8, FAST, progress=lambda done, total: progress.append((done, total)))
    assert encode_codes(model, x).shape == (n, 1)
    assert progress[-1] == (FAST.epochs, FAST.epochs)
    assert not np.isnan(stats["seconds"])


def test_graph_helpers() -> None:
    x, labels = clustered(n=50, clusters=2)
    graph = knn_graph(torch.as_tensor(x), 5)
    assert graph.shape == (50, 5)
    assert not (graph == torch.arange(50)[:, None]).any()  # never its own neighbour
    assert (labels[graph.numpy()] == labels[:, None]).mean() > 0.9
    smoothed = smooth(torch.as_tensor(x), graph, hops=2).numpy()
    np.testing.assert_allclose(np.linalg.norm(smoothed, axis=1), 1.0, rtol=1e-5)
    # Smoothing pulls each row towards its cluster: rows become more alike within a cluster.
    same = labels[:, None] == labels[None, :]
    assert (smoothed @ smoothed.T)[same].mean() > (x @ x.T)[same].mean()


# CPU/GPU agreement lives in tests/test_gpu.py (run on a GPU machine by tools/gpu_check.sh).


def test_lexical_features_carry_topics_the_embeddings_miss() -> None:
    """Embeddings of pure noise, topical texts: only a model that reads the words can group the topics."""
    texts, labels = topic_texts(per_topic=30)
    rng = np.random.default_rng(3)
    noise = rng.standard_normal((len(texts), 16)).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    config = dataclasses.replace(FAST, lexical_dim=8)
    same = labels[:, None] == labels[None, :]

    def gap(model: HashingAutoencoder, with_texts: bool) -> float:
        dist = hamming_matrix(*[encode_codes(model, noise, texts=texts if with_texts else None)] * 2)
        return float(dist[~same].mean() - dist[same].mean())

    lexical, stats = train_hasher(noise, 16, config, texts=texts)
    blind, _ = train_hasher(noise, 16, dataclasses.replace(config, lexical_weight=0.0), texts=texts)
    assert lexical.lexical is not None and blind.lexical is None
    assert stats["lexical_dim"] == 8 and stats["lexical_terms"] > 0
    assert lexical.config.feature_dim == 16 + 8
    assert gap(lexical, True) > 3 and gap(blind, False) < 1
    with pytest.raises(ValueError, match="text"):
        encode_codes(lexical, noise)


def test_lexical_model_round_trips_through_bytes() -> None:
    texts, _ = topic_texts()
    x, _ = clustered(n=len(texts), dim=16)
    model, _ = train_hasher(x, 16, dataclasses.replace(FAST, lexical_dim=6), texts=texts)
    loaded = model_from_bytes(model_to_bytes(model))
    assert loaded.lexical is not None and loaded.lexical.vocabulary == model.lexical.vocabulary  # type: ignore[union-attr]
    np.testing.assert_array_equal(encode_codes(loaded, x, texts=texts), encode_codes(model, x, texts=texts))
    np.testing.assert_array_equal(
        reconstruction_error(loaded, x, texts=texts), reconstruction_error(model, x, texts=texts)
    )
    # The one-pass form used by indexing gives exactly the two separate results.
    packed, errors = encode_with_errors(loaded, x, texts=texts)
    np.testing.assert_array_equal(packed, encode_codes(model, x, texts=texts))
    np.testing.assert_allclose(errors, reconstruction_error(model, x, texts=texts), rtol=1e-6)
    assert encode_with_errors(loaded, x[:0], texts=[])[0].shape == (0, 2)
