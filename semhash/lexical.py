"""Lexical features: a document's words, as a short dense vector the hashing model reads beside its embedding.

A sentence encoder reads a post in 256-token windows and summarises it in 384 numbers; the words it
weighs lightly (names, part numbers, jargon) are often the ones that say which topic a document is
about. :class:`LexicalProjection` adds them back cheaply: TF-IDF over the corpus's vocabulary, projected
onto its top singular directions (latent semantic analysis), giving ``dim`` numbers per document.

On 20 Newsgroups (issue 3, 32 bits) the hashing model that reads ``[embedding, 0.8 * lexical]`` reaches
P@100 0.565 where the embedding alone gives 0.540 (means over 3 seeds); see BENCHMARKS.md, "Hashing quality".

The vectoriser is our own small one (not scikit-learn's) so that a stored model describes itself in
plain arrays: the vocabulary, its IDF weights and the projection. Its choices follow the usual TF-IDF
recipe:

- tokens: runs of two or more word characters, lower-cased; English stop words dropped
  (scikit-learn's list, read from the package data file ``stopwords.txt``);
- vocabulary: terms in at least ``min_df`` (2) documents and at most ``max_df`` (half) of them, the
  ``vocabulary`` most frequent by total count (ties by term);
- weights: sublinear term frequency ``1 + log(count)`` times smoothed IDF
  ``log((1 + n) / (1 + df)) + 1``, each row L2-normalised;
- projection: randomized truncated SVD of the fitted TF-IDF matrix (seeded), no centring; the projected
  rows are L2-normalised (a text with no known word gets a zero vector).

This module is the one lexical transform of the project: the torch hashing model and the exported numpy
hasher (:mod:`semhash.runtime.numpy_hasher`) both call :meth:`LexicalProjection.transform`. It imports
numpy only: scipy and scikit-learn are imported inside :meth:`LexicalProjection.fit` (training), so the
query side never loads them.
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np

from semhash.config import DEFAULT_LEXICAL_WEIGHT

if TYPE_CHECKING:
    from scipy import sparse

_TOKEN = re.compile(r"(?u)\b\w\w+\b")


def _read_stop_words() -> frozenset[str]:
    """The English stop words of ``semhash/stopwords.txt`` (package data; ``#`` lines and blanks skipped)."""
    text = resources.files("semhash").joinpath("stopwords.txt").read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


#: scikit-learn's English stop-word list (``sklearn.feature_extraction.text.ENGLISH_STOP_WORDS``, 318 words),
#: kept as package data (``stopwords.txt``, which names its source and licence) and read once at import, so
#: that encoding never imports scikit-learn (a test checks the copy against the original).
ENGLISH_STOP_WORDS = _read_stop_words()


#: Only a document's first characters feed its lexical vector: the words that say what a document is about
#: show early, and a 50 MB file would otherwise be tokenised whole at training and at every encoding.
MAX_LEXICAL_CHARS = 100_000


def tokenize(text: str, stop_words: frozenset[str]) -> list[str]:
    """Lower-cased word tokens of ``text`` (its first ``MAX_LEXICAL_CHARS`` characters) without stop words."""
    return [token for token in _TOKEN.findall(text[:MAX_LEXICAL_CHARS].lower()) if token not in stop_words]


@dataclass
class LexicalProjection:
    """A fitted TF-IDF vocabulary and its projection to ``dim`` latent directions."""

    vocabulary: list[str]
    idf: np.ndarray  # (V,) float32
    components: np.ndarray  # (V, dim) float32
    weight: float
    #: the stop words dropped before counting (an exported hasher carries its own copy).
    stop_words: frozenset[str] = ENGLISH_STOP_WORDS

    def __post_init__(self) -> None:
        # Built once: a warm query must not rebuild a 20,000-entry dictionary.
        self._term_index = {term: i for i, term in enumerate(self.vocabulary)}

    @property
    def dim(self) -> int:
        """Length of the projected vectors."""
        return int(self.components.shape[1])

    @classmethod
    def fit(
        cls,
        texts: Sequence[str],
        dim: int = 128,
        vocabulary: int = 20_000,
        weight: float = DEFAULT_LEXICAL_WEIGHT,
        min_df: int = 2,
        max_df: float = 0.5,
        seed: int = 0,
    ) -> LexicalProjection | None:
        """Fit on a corpus; ``None`` when it is too small or too uniform to give at least two directions."""
        stop_words = ENGLISH_STOP_WORDS
        token_lists = [tokenize(text, stop_words) for text in texts]
        n = len(token_lists)
        doc_freq: Counter[str] = Counter()
        total: Counter[str] = Counter()
        for tokens in token_lists:
            total.update(tokens)
            doc_freq.update(set(tokens))
        ceiling = max_df * n
        kept = [t for t, df in doc_freq.items() if min_df <= df <= ceiling]
        kept.sort(key=lambda t: (-total[t], t))
        terms = sorted(kept[:vocabulary])
        dim = min(dim, n - 1, len(terms) - 1)
        if dim < 2:
            return None
        df = np.array([doc_freq[t] for t in terms], dtype=np.float64)
        idf = (np.log((1 + n) / (1 + df)) + 1).astype(np.float32)
        empty = cls(terms, idf, np.zeros((len(terms), dim), dtype=np.float32), weight)
        matrix = empty._tfidf(token_lists)
        from sklearn.utils.extmath import randomized_svd

        _, _, vt = randomized_svd(matrix, dim, n_iter=5, random_state=seed)
        # Rounded to float16 now, as stored, so that the trained model and a reloaded one agree bit for bit.
        empty.components = np.ascontiguousarray(vt.T.astype(np.float16), dtype=np.float32)
        return empty

    def _tfidf(self, token_lists: Sequence[Sequence[str]]) -> sparse.csr_matrix:
        """Row-normalised sublinear TF-IDF of tokenised texts over the fitted vocabulary (training only)."""
        from scipy import sparse

        index = self._term_index
        indptr, indices, values = [0], [], []
        for tokens in token_lists:
            counts = Counter(index[t] for t in tokens if t in index)
            columns = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
            row = (1 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))) * self.idf[columns]
            norm = np.linalg.norm(row)
            indices.extend(columns.tolist())
            values.extend((row / norm if norm > 0 else row).tolist())
            indptr.append(len(indices))
        shape = (len(token_lists), len(self.vocabulary))
        return sparse.csr_matrix((np.array(values, dtype=np.float32), indices, indptr), shape=shape)

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """``(n, dim)`` unit vectors (zero for a text with no word of the vocabulary).

        Each row is its TF-IDF row (only the columns of its own terms) times those rows of the projection:
        numpy only, and the same numbers as the sparse product of :meth:`fit`, without building a matrix.
        """
        stop_words, index = self.stop_words, self._term_index
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            counts = Counter(index[t] for t in tokenize(text, stop_words) if t in index)
            if not counts:
                continue
            columns = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
            values = (1 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))) * self.idf[columns]
            values = (values / np.linalg.norm(values)).astype(np.float32)
            out[row] = values @ self.components[columns]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)

    def features(self, embeddings: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        """The hashing model's input: ``[embedding, weight * lexical]``, each row L2-normalised."""
        if len(texts) != len(embeddings):
            raise ValueError(f"{len(texts)} texts for {len(embeddings)} embeddings")
        joined = np.hstack([np.asarray(embeddings, dtype=np.float32), self.weight * self.transform(texts)])
        norms = np.linalg.norm(joined, axis=1, keepdims=True)
        return np.divide(joined, norms, out=np.zeros_like(joined), where=norms > 0)

    # -- storage (plain arrays: safe to load with torch's weights-only loader or numpy) ------------------
    def to_bytes(self) -> bytes:
        """Serialise as an ``.npz``: vocabulary (JSON), IDF, components (float16), weight."""
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            vocabulary=np.frombuffer(json.dumps(self.vocabulary).encode("utf-8"), dtype=np.uint8),
            idf=self.idf.astype(np.float32),
            components=self.components.astype(np.float16),
            weight=np.array(self.weight, dtype=np.float64),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> LexicalProjection:
        """Inverse of :meth:`to_bytes`."""
        with np.load(io.BytesIO(blob), allow_pickle=False) as data:
            vocabulary = json.loads(bytes(data["vocabulary"]).decode("utf-8"))
            return cls(
                vocabulary,
                data["idf"].astype(np.float32),
                data["components"].astype(np.float32),
                float(data["weight"]),
            )


def hashing_features(
    lexical: LexicalProjection | None, embeddings: np.ndarray, texts: Sequence[str] | None
) -> np.ndarray:
    """A hashing model's input: the embeddings, joined by the texts' lexical vectors when it reads words.

    One definition for the torch model (:mod:`semhash.model`) and the torch-free one (:mod:`semhash.runtime`).
    """
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if lexical is None:
        return embeddings
    if texts is None:
        raise ValueError("this hashing model reads the documents' text too: pass texts")
    return lexical.features(embeddings, texts)
