"""Lexical features: the TF-IDF vocabulary, its projection, storage, and what the hashing model gains."""

from __future__ import annotations

import numpy as np
import pytest
from support import topic_texts

from semhash.lexical import LexicalProjection, tokenize


def test_tokens_are_lower_case_words_without_stop_words() -> None:
    stop = frozenset({"the", "and"})
    assert tokenize("The Rocket and the MOON, x 42!", stop) == ["rocket", "moon", "42"]


def test_vocabulary_keeps_shared_but_not_ubiquitous_or_unique_terms() -> None:
    texts, _ = topic_texts()
    texts.append("zyzzyva")  # in one document only
    projection = LexicalProjection.fit(texts, dim=8)
    assert projection is not None
    assert "rocket" in projection.vocabulary and "flour" in projection.vocabulary
    assert "zyzzyva" not in projection.vocabulary  # min_df = 2
    assert "weekend" not in projection.vocabulary  # in more than half of the documents
    assert "the" not in projection.vocabulary  # stop word
    assert projection.dim == 8 and projection.components.shape == (len(projection.vocabulary), 8)


def test_projected_vectors_separate_topics_and_unknown_text_is_zero() -> None:
    texts, labels = topic_texts()
    projection = LexicalProjection.fit(texts, dim=6)
    assert projection is not None
    vectors = projection.transform([*texts, "completely unrelated words"])
    np.testing.assert_allclose(np.linalg.norm(vectors[:-1], axis=1), 1, atol=1e-5)
    assert not vectors[-1].any()
    sims = vectors[:-1] @ vectors[:-1].T
    same = labels[:, None] == labels[None, :]
    assert sims[same].mean() > sims[~same].mean() + 0.5


def test_storage_round_trip_gives_the_same_vectors() -> None:
    texts, _ = topic_texts()
    projection = LexicalProjection.fit(texts, dim=6, weight=0.7)
    assert projection is not None
    loaded = LexicalProjection.from_bytes(projection.to_bytes())
    assert loaded.vocabulary == projection.vocabulary and loaded.weight == 0.7
    np.testing.assert_array_equal(loaded.transform(texts), projection.transform(texts))


def test_too_small_a_corpus_gives_no_projection() -> None:
    assert LexicalProjection.fit(["one lonely document"]) is None
    assert LexicalProjection.fit(["alpha beta", "gamma delta"]) is None  # no term in two documents


def test_features_join_the_embedding_and_the_weighted_lexical_vector() -> None:
    texts, _ = topic_texts()
    projection = LexicalProjection.fit(texts, dim=6, weight=0.5)
    assert projection is not None
    rng = np.random.default_rng(1)
    embeddings = rng.standard_normal((len(texts), 10)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    features = projection.features(embeddings, texts)
    assert features.shape == (len(texts), 16)
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1, atol=1e-5)
    # unit embedding and 0.5 * unit lexical vector: the parts keep a 2:1 length ratio
    ratio = np.linalg.norm(features[:, :10], axis=1) / np.linalg.norm(features[:, 10:], axis=1)
    np.testing.assert_allclose(ratio, 2, rtol=1e-4)
    with pytest.raises(ValueError, match="texts"):
        projection.features(embeddings, texts[:-1])
