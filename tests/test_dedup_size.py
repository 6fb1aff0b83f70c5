"""``dedup --target N`` / ``--keep-fraction F`` and ``DedupResult.to_size``: a threshold chosen for a size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support import invoke_dedup, make_store

from semhash.dedup import DedupOptions, DedupResult, dedup_index
from semhash.errors import UsageError


def sizes_over_every_threshold(result: DedupResult) -> set[int]:
    """Every size that some threshold gives (brute force over the kept cosines and 1.0)."""
    levels = [1.0, *np.unique(result.cosine[result.cosine >= result.floor]).tolist()]
    return {result.rethreshold(float(t)).kept_count for t in levels}


def test_to_size_reaches_the_target_and_reports_the_threshold(seven_docs_db: Path) -> None:
    result = dedup_index(seven_docs_db, DedupOptions(radius=3, neighbours=0))  # codes alone: the far copy 6 is missed
    reachable = sizes_over_every_threshold(result)
    smallest, largest = result.reachable_sizes()
    assert (smallest, largest) == (min(reachable), max(reachable))
    assert largest == result.stats.documents - 1  # the exact twin always goes
    for n in sorted(reachable):
        sized = result.to_size(n)
        assert sized.kept_count == n
        # The threshold is the highest one giving that size: a hair above it keeps more documents.
        threshold = sized.options.threshold
        if threshold < 1.0:
            assert result.rethreshold(float(np.nextafter(np.float32(threshold), np.float32(2)))).kept_count > n
        assert sized.to_size(n).options.threshold == threshold  # idempotent
        assert sized.to_size(n).duplicate_ids == sized.duplicate_ids


def test_to_size_with_components_reaches_every_size_between_the_bounds(tmp_path: Path) -> None:
    """Connected components lose at most one cluster per accepted pair: every size in range is reachable."""
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((4, 8))
    docs = []
    for k in range(24):
        v = centres[k % 4] + 0.35 * rng.standard_normal(8)
        docs.append((f"document number {k}", v / np.linalg.norm(v), int(k % 4)))  # one code per family
    path = tmp_path / "c.db"
    make_store(path, docs, tmp_path / "docs")
    result = dedup_index(path, DedupOptions(radius=0, threshold=0.5, cluster="components"))
    smallest, largest = result.reachable_sizes()
    assert largest == 24 and smallest < 24
    for n in range(smallest, largest + 1):
        sized = result.to_size(n)
        assert sized.kept_count == n
        assert sized.to_size(n).kept_count == n


def test_to_size_below_reach_says_the_smallest_size_and_the_radius(seven_docs_db: Path) -> None:
    result = dedup_index(seven_docs_db, DedupOptions(radius=3, neighbours=0))
    smallest, largest = result.reachable_sizes()
    with pytest.raises(UsageError, match=f"leave at least {smallest} documents; a larger --radius"):
        result.to_size(smallest - 1)
    with pytest.raises(UsageError, match=f"ask for at most {largest}"):
        result.to_size(largest + 1)
    with pytest.raises(UsageError, match="at least 1 document"):
        result.to_size(0)
    # A larger radius reaches further: document 6 is a 24-bit-away copy of document 0.
    wide = dedup_index(seven_docs_db, DedupOptions(radius=8, neighbours=0))
    assert wide.reachable_sizes()[0] <= smallest


def test_cli_target_and_keep_fraction(seven_docs_db: Path, tmp_path: Path) -> None:
    result = dedup_index(seven_docs_db, DedupOptions())
    smallest = result.reachable_sizes()[0]
    code, output = invoke_dedup("--db", seven_docs_db, "--target", smallest, "--list-duplicates")
    assert code == 0, output
    assert f"threshold chosen: {result.to_size(smallest).options.threshold:.4f}" in output
    assert len([line for line in output.splitlines() if line.endswith(".txt")]) == 7 - smallest
    code, output = invoke_dedup("--db", seven_docs_db, "--target", smallest, "--write-unique", tmp_path / "unique")
    assert code == 0, output
    assert len(list((tmp_path / "unique").rglob("*.txt"))) == smallest
    code, output = invoke_dedup("--db", seven_docs_db, "--keep-fraction", smallest / 7, "--json")
    assert code == 0 and f"({smallest} of 7 documents kept, target {smallest})" in output
    code, output = invoke_dedup("--db", seven_docs_db, "--target", smallest - 1)
    # The default stage on 7 documents compares every pair: only a lower threshold reaches further.
    assert code == 2 and output.startswith("error: --target") and "a lower --threshold" in output
    assert "--radius" not in output and len(output.strip().splitlines()) == 1
    code, output = invoke_dedup(
        "--db", seven_docs_db, "--neighbours", 0, "--target", 1
    )  # the codes alone: the radius limits it
    assert code == 2 and "larger --radius" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "3", "--keep-fraction", "0.5"], "not both"),
        (["--target", "0"], "at least 1 document"),
        (["--keep-fraction", "1.5"], "--keep-fraction must be in (0, 1]"),
        (["--target", "3", "--histogram"], "not with --against or --histogram"),
    ],
)
def test_cli_target_usage_errors(seven_docs_db: Path, args: list[str], message: str) -> None:
    code, output = invoke_dedup("--db", seven_docs_db, *args)
    assert code == 2, output
    assert output.startswith("error: ") and message in output
