r"""Copy, not topic: the word-shingle overlap of two texts.

Two services read it, so it sits below them: dedup's verify stage (near-duplicate pairs of long documents,
:func:`pair_overlaps`) and search's folding of near-identical twins among the hits
(:mod:`semhash.search.twins`, :func:`shingle_set` and :func:`jaccard` of the hits' texts).

A long document's stored embedding is the mean of its window embeddings: it says what the document is
*about*. Two release notes of one program, or two sibling API pages, have pooled cosines as high as an edited
copy's (issue 22: on a folder of 1,026 documentation files the cosine alone flagged 47% of them). So a pair
in which either document is longer than one encoder window is a near-duplicate only when its texts also
share enough of their word shingles: the Jaccard similarity of the two sets of ``SHINGLE_WORDS``-word
shingles (words: ``\w+`` runs, casefolded, so re-wrapping and punctuation do not count; a CJK ideograph or
kana is a word of its own).

Short texts (both within one window) keep the cosine alone: there the embedding *is* the text's, and
paraphrases (MRPC) share few shingles. A document counts as long when it has more than ``WINDOW_TOKENS``
BERT pre-tokens (runs of word characters, single CJK ideographs and single punctuation marks): every
pre-token is at least one word piece, so such a text certainly needs a second window; one at or under it may
still need two (word pieces), and then keeps the cosine alone, as before this check.

The Jaccard is exact (sets of 64-bit shingle hashes, intersected with numpy), computed only for candidate
pairs already kept by cosine (at or above the floor, so a result can be re-thresholded), from the texts SQLite
holds: about 20 microseconds a pair on 2-8k-character texts; memory is the shingle sets of the texts whose
pairs are still to come (8 bytes per distinct word pair). MinHash (datasketch) estimates the same number to
within about ``1 / sqrt(num_perm)``; it pays where the *candidates* must come from text (LSH), not for
verifying a known list of pairs.
"""

from __future__ import annotations

import re

import numpy as np

#: Words per shingle. Chosen with ``benchmarks/bench_dedup.py longdoc --shingle-words N`` on the validation half of
#: the long documentation set: at the best ``min_overlap`` of each, F1 0.997 with 2 words (at 0.5) against 0.995
#: with 3 (at 0.35); the 20 Newsgroups near-duplicates agree (0.890 against 0.882). BENCHMARKS.md, issue 22.
SHINGLE_WORDS = 2
#: Tokens of one encoder window (all-MiniLM-L6-v2: 256 less the two special tokens).
WINDOW_TOKENS = 254

# CJK ideographs are pre-tokens of one character each (BERT's pre-tokenizer splits them); for shingles, kana are
# words of one character too. Other words are runs of word characters.
_IDEOGRAPHS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK = "\u3040-\u30ff" + _IDEOGRAPHS
_WORD = re.compile(f"[{_CJK}]|[^\\W{_CJK}]+")
_PRE_TOKEN = re.compile(f"[{_IDEOGRAPHS}]|[^\\W{_IDEOGRAPHS}]+|[^\\w\\s]")
_MULT = np.uint64(0x9E3779B97F4A7C15)
_EMPTY = np.zeros(0, np.uint64)


def is_long(text: str) -> bool:
    """Whether ``text`` certainly fills more than one encoder window (more than ``WINDOW_TOKENS`` pre-tokens)."""
    return any(count >= WINDOW_TOKENS for count, _ in enumerate(_PRE_TOKEN.finditer(text)))


def shingle_set(text: str, words: int | None = None) -> np.ndarray:
    r"""Sorted distinct 64-bit hashes of the ``words``-word shingles of ``text`` (casefolded ``\w+`` words).

    ``words`` ``None``: ``SHINGLE_WORDS``, read at call time.

    A text of fewer words than ``words`` is one shingle of all of them; a text without words has none.
    Word hashes are Python's string hashes, so the hashes differ between processes but a Jaccard does not
    (barring a 64-bit collision).
    """
    tokens = _WORD.findall(text.casefold())
    if not tokens:
        return _EMPTY
    h = np.fromiter((hash(t) for t in tokens), np.int64, len(tokens)).view(np.uint64)
    n = min(SHINGLE_WORDS if words is None else words, len(h))
    width = len(h) - n + 1
    acc = h[:width].copy()
    for k in range(1, n):
        acc = acc * _MULT + h[k : k + width]  # wraps modulo 2^64: a polynomial hash of the shingle
    return np.unique(acc)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two sorted distinct hash sets (0 when both are empty)."""
    if len(a) == 0 and len(b) == 0:
        return 0.0
    shared = len(np.intersect1d(a, b, assume_unique=True))
    return shared / (len(a) + len(b) - shared)


def pair_overlaps(texts: dict[int, str], left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Per pair, the shingle Jaccard of its two texts when either is long, else NaN (cosine alone decides).

    Args:
        texts: text of every document id in ``left`` and ``right``.
        left: the first document id of each pair.
        right: the second document id of each pair, at the same position.

    Returns:
        float32 array: Jaccard in [0, 1], or NaN for a pair of two short texts.
    """
    out = np.full(len(left), np.nan, np.float32)
    pairs = list(zip(left.tolist(), right.tolist(), strict=True))
    last = {x: k for k, pair in enumerate(pairs) for x in pair}  # a text's shingles are freed after its last pair
    long_of: dict[int, bool] = {}
    shingles: dict[int, np.ndarray] = {}
    for k, (a, b) in enumerate(pairs):
        for x in (a, b):
            if x not in long_of:
                long_of[x] = is_long(texts[x])
        if long_of[a] or long_of[b]:
            for x in (a, b):
                if x not in shingles:
                    shingles[x] = shingle_set(texts[x])
            out[k] = jaccard(shingles[a], shingles[b])
        for x in (a, b):
            if last[x] == k:
                shingles.pop(x, None)
    return out
