"""The side-by-side dedup benchmark's data and scoring (``benchmarks/datasets/agnews_like.py``, issue 22).

Model-free and quick: a small stripped-posts file in a temporary folder stands in for 20 Newsgroups.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

from benchmarks.bench_dedup_compare import components, exact_pairs, score
from benchmarks.datasets import agnews_like


def _posts(path: Path, n: int = 60) -> Path:
    """``n`` posts of 120-200 random words (a 400-word vocabulary), plus one cross-post (an exact copy)."""
    rng = random.Random(1)
    vocab = ["".join(rng.choice("abcdefghij") for _ in range(6)) for _ in range(400)]  # alphabetic words
    posts = [" ".join(rng.choice(vocab) for _ in range(rng.randint(120, 200))) for _ in range(n)]
    posts.append(posts[0])
    path.write_text("".join(json.dumps({"id": str(k), "text": t}) + "\n" for k, t in enumerate(posts)))
    return path


def test_sets_plant_one_copy_per_three_originals(tmp_path: Path) -> None:
    """A quarter of the records are planted copies with 10% of words replaced; no exact duplicate is left."""
    source = _posts(tmp_path / "posts.jsonl")
    pool = agnews_like.originals(0, source)
    assert len(set(pool)) == len(pool)
    assert all(agnews_like.MIN_WORDS <= len(t.split()) <= agnews_like.MAX_WORDS for t in pool)
    data = agnews_like.build(200, source=source)
    texts = data["texts"]
    assert len(texts) == 200 and len(data["pairs"]) == 50
    assert exact_pairs(texts) == 0
    for i, j in data["pairs"]:
        a, b = texts[i].split(), texts[j].split()
        changed = sum(x != y for x, y in zip(a, b, strict=True))
        assert 1 <= changed <= max(1, round(0.1 * len(a)))
    assert agnews_like.build(200, source=source) == data  # seeded: the same set every run
    small = agnews_like.build(100, source=source)["texts"]
    assert set(small) <= set(texts)  # the smaller set is a subset: one embedding cache serves both


def test_score_counts_pairs_within_groups() -> None:
    """Precision and recall over all pairs that share a component, against the gold pairs."""
    label = components(6, [(0, 1), (1, 2), (3, 4)])
    assert label.tolist() == [0, 0, 0, 3, 3, 5]
    got = score(label, [(0, 1), (3, 4), (2, 5)])
    assert got["predicted_pairs"] == 4  # (0,1) (0,2) (1,2) (3,4)
    assert got["precision"] == 0.5 and got["recall"] == round(2 / 3, 4)
    assert score(np.arange(3), [(0, 1)])["f1"] == 0.0
