"""ag_news-like short records with planted near copies (MinishLab's near-copy protocol, issue 22), from 20NG.

ag_news itself cannot be downloaded here, so its shape is rebuilt from the shared 20 Newsgroups posts
(``CACHE/20ng/20ng-stripped.jsonl``: headers, quotes and signatures stripped):

1. **Records.** Each post's words (whitespace-split, in order, across its paragraphs) are cut into
   consecutive, non-overlapping chunks of ``U[MIN_WORDS, MAX_WORDS]`` words (20-50, mean 35: ag_news
   title + description average about 38 words); a trailing piece shorter than ``MIN_WORDS`` is dropped.
   A chunk is kept when at least 70% of its tokens are words (drops uuencoded binaries, tables, keys).
2. **Exact and natural near copies out.** A chunk equal to an earlier one after lower-casing and
   whitespace collapsing is dropped (cross-posted articles; the *exact* duplicates are handled here, so
   none is left in a set), and so is one with >= 20% of its 5-word shingles in earlier kept chunks
   (signatures, FAQ passages posted twice): the ground truth would not know them. The survivors,
   shuffled with the seed, are the *originals*, in a fixed order.
3. **Planted copies.** A set of ``n`` records holds the first ``3n/4`` originals; every third of them
   (positions 0, 3, 6, ...) gets one copy in which ``max(1, round(0.1 * words))`` distinct word positions
   are replaced by a word drawn uniformly from the vocabulary (lower-case alphabetic tokens seen >= 3 times
   in the originals), with ``random.Random(seed * 1_000_003 + position)``: so a copy is the same in every
   set, and the 20k set's records are a subset of the 100k set's (one embedding cache serves both).
   Records are then shuffled (seeded), so a copy is never next to its original.

The ground truth is the ``n/4`` (original, copy) pairs. ``build(n)`` returns ``texts`` and ``pairs``.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from functools import cache
from pathlib import Path

from benchmarks.harness import CACHE

STRIPPED = CACHE / "20ng" / "20ng-stripped.jsonl"
MIN_WORDS = 20
MAX_WORDS = 50
REPLACE_RATE = 0.1
NEAR_SHARE = 0.2
_WORD = re.compile(r"\w+")


def _shingles(text: str, n: int = 5) -> set[int]:
    """Hashes of the ``n``-word shingles of ``text`` (lower-cased word tokens).

    Python's string hash is salted per process, but only equality within one process is used, and a 64-bit
    collision among a few million shingles is improbable: the kept chunks are the same in every run.
    """
    words = _WORD.findall(text.lower())
    return {hash(" ".join(words[k : k + n])) for k in range(len(words) - n + 1)}


@cache
def originals(seed: int = 0, source: Path = STRIPPED) -> tuple[str, ...]:
    """The distinct ag_news-like chunks of the stripped 20NG posts, shuffled with ``seed`` (steps 1-2)."""
    if not source.exists():
        raise SystemExit(f"no {source}: build the stripped 20NG posts first (benchmarks.datasets.newsgroups)")
    rng = random.Random(seed)
    seen: set[str] = set()
    seen_shingles: set[int] = set()
    out: list[str] = []
    with source.open(encoding="utf-8") as f:
        posts = [json.loads(line)["text"] for line in f]
    for post in posts:
        words = post.split()
        start = 0
        while True:
            size = rng.randint(MIN_WORDS, MAX_WORDS)
            chunk = words[start : start + size]
            start += size
            if len(chunk) < MIN_WORDS:
                break
            if sum(w.strip(".,;:!?\"'()").isalpha() for w in chunk) < 0.7 * len(chunk):
                continue
            text = " ".join(chunk)
            key = text.lower()
            if key in seen:
                continue
            shingles = _shingles(text)
            if shingles and len(shingles & seen_shingles) >= NEAR_SHARE * len(shingles):
                continue
            seen.add(key)
            seen_shingles |= shingles
            out.append(text)
    rng.shuffle(out)
    return tuple(out)


@cache
def vocabulary(seed: int = 0, source: Path = STRIPPED) -> tuple[str, ...]:
    """Lower-case alphabetic tokens seen at least 3 times in the originals, sorted (the replacement words)."""
    counts = Counter(w for text in originals(seed, source) for w in _WORD.findall(text.lower()) if w.isalpha())
    return tuple(sorted(w for w, c in counts.items() if c >= 3))


def near_copy(text: str, position: int, seed: int = 0, source: Path = STRIPPED) -> str:
    """``text`` with 10% of its words (at least one) replaced by random vocabulary words (step 3)."""
    rng = random.Random(seed * 1_000_003 + position)
    words = text.split()
    vocab = vocabulary(seed, source)
    for k in rng.sample(range(len(words)), max(1, round(REPLACE_RATE * len(words)))):
        words[k] = rng.choice(vocab)
    return " ".join(words)


def build(n: int, seed: int = 0, source: Path = STRIPPED) -> dict[str, list]:
    """A set of ``n`` records: ``3n/4`` originals and ``n/4`` planted near copies, shuffled.

    Args:
        n: Records in the set (a multiple of 4).
        seed: Seeds the chunking, the originals' order, the edits and the record order.
        source: The stripped 20NG posts (JSON lines with ``text``).

    Returns:
        ``{"texts": [...], "pairs": [[row of original, row of copy], ...], "kinds": ["original"|"copy"]}``.
    """
    pool = originals(seed, source)
    n_orig = 3 * n // 4
    if n_orig > len(pool):
        raise SystemExit(f"{n} records need {n_orig} originals; 20NG gives {len(pool)}")
    records: list[tuple[str, str, int]] = [(pool[k], "original", k) for k in range(n_orig)]
    records += [(near_copy(pool[k], k, seed, source), "copy", k) for k in range(0, n_orig, 3)]
    random.Random(seed + n).shuffle(records)
    row_of = {k: row for row, (_, kind, k) in enumerate(records) if kind == "original"}
    pairs = [sorted((row_of[k], row)) for row, (_, kind, k) in enumerate(records) if kind == "copy"]
    return {"texts": [t for t, _, _ in records], "pairs": pairs, "kinds": [kind for _, kind, _ in records]}
