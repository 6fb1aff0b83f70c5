"""The sets the side-by-side dedup benchmark scores (issue 22): texts and planted (original, copy) row pairs.

Test sets: the long-document set's test half; the ag_news-like sets come from
:func:`benchmarks.datasets.agnews_like.build`. Validation sets (only MinHash is calibrated on them): the
long-document validation half and an ag_news-like set of the originals no test set uses.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

#: The largest ag_news-like test set (records): its originals are the first ``3/4`` of it.
LARGEST = 100_000


def longdoc_test() -> dict[str, list]:
    """The test half of issue 22's long-document set: texts and (original, copy) row pairs."""
    from benchmarks.bench_dedup import LONGDOC

    if not LONGDOC.exists():
        raise SystemExit(f"no {LONGDOC}: run `python -m benchmarks.datasets.build_longdoc` first")
    with LONGDOC.open(encoding="utf-8") as f:
        part = [row for row in map(json.loads, f) if row["split"] == "test"]
    row_of = {r["id"]: k for k, r in enumerate(part)}
    pairs = [sorted((row_of[r["original"]], k)) for k, r in enumerate(part) if r["original"] is not None]
    return {"texts": [r["text"] for r in part], "pairs": pairs, "kinds": [r["kind"] for r in part]}


def agnews_validation(seed: int = 0) -> dict[str, list]:
    """An ag_news-like validation set disjoint from both test sets: originals after the 100k set's 75,000.

    Same construction as :func:`benchmarks.datasets.agnews_like.build` (every third original copied, 10% of
    words replaced, records shuffled); only MinHash is calibrated on it (it needs no embeddings).
    """
    import random

    from benchmarks.datasets.agnews_like import near_copy, originals

    first = 3 * LARGEST // 4
    pool = originals(seed)[first:]
    records = [(t, "original", k) for k, t in enumerate(pool)]
    records += [(near_copy(pool[k], first + k, seed), "copy", k) for k in range(0, len(pool), 3)]
    random.Random(seed + 1).shuffle(records)
    row_of = {k: row for row, (_, kind, k) in enumerate(records) if kind == "original"}
    pairs = [sorted((row_of[k], row)) for row, (_, kind, k) in enumerate(records) if kind == "copy"]
    return {"texts": [t for t, _, _ in records], "pairs": pairs}


def longdoc_validation() -> dict[str, list]:
    """The validation half of the long-document set (the half semhash's own defaults were calibrated on)."""
    from benchmarks.bench_dedup import LONGDOC

    with LONGDOC.open(encoding="utf-8") as f:
        part = [row for row in map(json.loads, f) if row["split"] == "validation"]
    row_of = {r["id"]: k for k, r in enumerate(part)}
    pairs = [sorted((row_of[r["original"]], k)) for k, r in enumerate(part) if r["original"] is not None]
    return {"texts": [r["text"] for r in part], "pairs": pairs}


def exact_pairs(texts: Sequence[str]) -> int:
    """Pairs of texts equal after lower-casing and whitespace collapsing (the sets are built to hold none)."""
    counts: dict[str, int] = {}
    for text in texts:
        key = " ".join(text.lower().split())
        counts[key] = counts.get(key, 0) + 1
    return sum(c * (c - 1) // 2 for c in counts.values())
