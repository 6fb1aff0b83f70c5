"""The size-aware candidate stage of ``dedup`` (``--neighbours auto|all|K``) and the exact all-pairs join."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support import invoke_dedup, make_store

import semhash.dedup.options as dedup_options
import semhash.dedup.pipeline as pipeline
from semhash.dedup import (
    EXACT_LIMIT,
    CandidateStage,
    DedupOptions,
    dedup_index,
    pair_candidate_stage,
    parse_neighbours,
)
from semhash.dedup.allpairs import all_pairs
from semhash.errors import UsageError


def test_auto_rule_boundaries() -> None:
    assert pair_candidate_stage(2, "auto") == CandidateStage("all-pairs")
    assert pair_candidate_stage(EXACT_LIMIT, "auto") == CandidateStage("all-pairs")
    # Above the exact limit, auto takes the pairs above the threshold inside k-means cells, at any size.
    assert pair_candidate_stage(EXACT_LIMIT + 1, "auto") == CandidateStage("cells")
    assert pair_candidate_stage(10**7, "auto") == CandidateStage("cells")
    assert pair_candidate_stage(10**7, "all") == CandidateStage("all-pairs")
    assert pair_candidate_stage(5, 0) == CandidateStage("codes")  # 0: the codes alone at any size
    assert pair_candidate_stage(10**7, 7) == CandidateStage("codes+neighbours", 7)
    assert CandidateStage("codes+neighbours", 7).describe(3) == "codes within 3 bits + 7 nearest embeddings"
    assert CandidateStage("all-pairs").describe(3) == "all pairs (exact)"
    assert CandidateStage("cells").describe(-1).startswith("k-means cells of the embeddings")


@pytest.mark.parametrize("value", ["many", "", "-1", "1001", "2.5"])
def test_bad_neighbours_are_usage_errors(value: str) -> None:
    with pytest.raises(UsageError, match="--neighbours must be"):
        DedupOptions(neighbours=parse_neighbours(value))


@pytest.mark.parametrize("value", [2.5, True, "ALL", None])
def test_options_reject_neighbours_of_other_types(value: object) -> None:
    with pytest.raises(UsageError, match="--neighbours must be"):
        DedupOptions(neighbours=value)  # type: ignore[arg-type]


def test_parse_neighbours() -> None:
    assert parse_neighbours(" Auto ") == "auto" and parse_neighbours("ALL") == "all"
    assert parse_neighbours("12") == 12 and parse_neighbours(3) == 3


def test_default_finds_a_copy_the_old_default_missed(seven_docs_db: Path) -> None:
    """Document 7 is a copy (cosine 1) of document 1 whose code is 24 bits away: the codes alone miss it."""
    old = dedup_index(seven_docs_db, DedupOptions(neighbours=0))
    new = dedup_index(seven_docs_db)
    assert old.stats.stage == "codes" and 7 not in old.duplicate_ids
    assert new.stats.stage == "all-pairs" and new.stats.neighbours == 0
    assert 7 in new.duplicate_ids
    assert new.stats.candidates == 7 * 6 // 2  # every pair of the 7 documents
    pair = int(np.flatnonzero((new.left == 1) & (new.right == 7))[0])
    assert new.hamming[pair] == 24 and new.cosine[pair] == pytest.approx(1.0)


def test_all_pairs_stage_equals_brute_force(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    n = 60
    x = rng.standard_normal((n, 8)) + 1.5
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    codes = rng.integers(0, 2**32, n)
    path = tmp_path / "a.db"
    make_store(path, [(f"text number {k}", x[k], int(codes[k])) for k in range(n)], tmp_path / "docs")
    result = dedup_index(path, DedupOptions(threshold=0.9, cluster="components"))
    sims = x @ x.T
    want = {(a + 1, b + 1) for a in range(n) for b in range(a + 1, n) if sims[a, b] >= 0.5 - 1e-6}
    got = list(zip(result.left.tolist(), result.right.tolist(), strict=True))
    assert set(got) == want and got == sorted(got)
    np.testing.assert_allclose(result.cosine, [sims[a - 1, b - 1] for a, b in got], atol=1e-5)
    xor = np.array([int(codes[a - 1]) ^ int(codes[b - 1]) for a, b in got], dtype=np.uint64)
    assert np.array_equal(result.hamming, np.bitwise_count(xor))
    assert result.pairs_at(-1.0) == n * (n - 1) // 2  # the histogram counts every pair once


@pytest.mark.parametrize("block_bytes", [1, 4 * 37 * 5, 1 << 20])
def test_all_pairs_blocks_give_the_same_pairs(block_bytes: int) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((37, 6)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    i, j, cos, fine = all_pairs(x, 0.2, block_bytes=block_bytes)
    sims = x @ x.T
    a, b = np.triu_indices(37, 1)
    keep = sims[a, b] >= 0.2
    assert np.array_equal(i, a[keep]) and np.array_equal(j, b[keep])
    np.testing.assert_allclose(cos, sims[a, b][keep], atol=1e-6)
    assert fine.sum() == 37 * 36 // 2


def test_all_pairs_of_nothing() -> None:
    i, j, cos, fine = all_pairs(np.zeros((0, 4), np.float32), 0.5)
    assert len(i) == len(j) == len(cos) == 0 and fine.sum() == 0
    i, j, cos, fine = all_pairs(np.ones((1, 4), np.float32) / 2, 0.5)
    assert len(i) == 0 and fine.sum() == 0


def test_above_the_exact_limit_auto_takes_cells(seven_docs_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dedup_options, "EXACT_LIMIT", 5)
    result = dedup_index(seven_docs_db)
    assert result.stats.stage == "cells" and result.stats.cells >= 1 and result.stats.radius == -1
    assert 7 in result.duplicate_ids  # the far copy (24 bits away) is near in the embeddings
    assert result.stats.unverified_pairs == 0
    assert result.cosine.min() >= result.options.threshold  # only pairs at the threshold are kept
    with pytest.raises(UsageError, match="counted, not kept"):
        result.rethreshold(0.6)
    code, output = invoke_dedup("--db", seven_docs_db, "--json")
    assert code == 0 and 7 in {
        json.loads(line)["duplicate_id"] for line in output.splitlines() if "duplicate_id" in line
    }


def test_cli_neighbours(seven_docs_db: Path) -> None:
    code, output = invoke_dedup("--db", seven_docs_db)
    assert code == 0, output
    assert "21 candidate pairs from all pairs (exact)" in output
    code, output = invoke_dedup("--db", seven_docs_db, "--neighbours", "0")
    assert code == 0 and "candidate pairs from codes within 3 bits," in output
    code, output = invoke_dedup("--db", seven_docs_db, "--neighbours", "2", "--json")
    assert code == 0 and 7 in {json.loads(line)["duplicate_id"] for line in output.splitlines()}
    code, output = invoke_dedup("--db", seven_docs_db, "--neighbours", "all", "--histogram")
    assert code == 0 and "cosine of 21 candidate pairs from all pairs (exact)" in output
    code, output = invoke_dedup("--db", seven_docs_db, "--neighbours", "lots")
    assert code == 2 and output.startswith("error: --neighbours must be auto, all or a number")
    assert len(output.strip().splitlines()) == 1
    code, output = invoke_dedup("x", "--against", "--db", seven_docs_db, "--neighbours", "all")
    assert code == 2 and "not with --against" in output


def test_cells_budget_counts_the_pairs_it_drops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Twelve near copies of one text (66 pairs above the threshold) and a budget of 12 pairs: never silent."""
    rng = np.random.default_rng(2)
    x = np.ones((12, 8)) + 0.01 * rng.standard_normal((12, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    path = tmp_path / "b.db"
    make_store(path, [(f"document {k}", x[k], k) for k in range(12)], tmp_path / "docs")
    monkeypatch.setattr(dedup_options, "EXACT_LIMIT", 4)
    full = dedup_index(path, DedupOptions(neighbours="all"))
    assert full.stats.unverified_pairs == 0 and len(full.left) == 66
    unbound = dedup_index(path)
    assert unbound.stats.stage == "cells" and len(unbound.left) == 66 and unbound.stats.unverified_pairs == 0
    monkeypatch.setattr(pipeline, "CELL_PAIR_BUDGET", 1)  # 12 pairs kept at most
    capped = dedup_index(path)
    # One cell holds all twelve: the first tree finds the 66 pairs, keeps 12, counts 54; no later tree runs.
    assert len(capped.left) == 12 and capped.stats.unverified_pairs == 66 - 12
    assert capped.stats.unverified_lower_bound
    code, output = invoke_dedup("--db", path)
    assert code == 0 and "warning: at least 54 pairs at or above the threshold were found but not kept" in output
    code, output = invoke_dedup("--db", path, "--json")
    warning = [json.loads(line) for line in output.splitlines() if line.startswith('{"warning"')]
    assert len(warning) == 1 and warning[0]["stats"]["unverified_pairs"] == 54


def test_largest_block_within() -> None:
    from semhash.dedup.verify import CodeBlocks

    codes = np.array([5] * 4 + [6] * 2 + [56] * 3, dtype=np.uint64)  # 5 and 6: 2 bits apart; 56: far from both
    blocks = CodeBlocks.build(codes, 32, 2)  # pairs: 6 (code 5) + 1 (code 6) + 3 (code 56) + 4*2 (5 x 6) = 18
    assert blocks.candidate_count == 18
    assert blocks.largest_block_within(18) == 4
    assert blocks.largest_block_within(17) == 3  # without code 5: 1 + 3
    assert blocks.largest_block_within(3) == 2  # code 6 alone (1 pair); code 56 (3 pairs) would make 4
    assert blocks.largest_block_within(0) == 1
    assert blocks.capped(3).candidate_count == 4
