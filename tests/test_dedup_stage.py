"""The size-aware candidate stage of ``dedup`` (``--neighbours auto|all|K``) and the exact all-pairs join."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_dedup import db, invoke, make_store  # noqa: F401  (db is a fixture)

import semhash.dedup.options as dedup_options
import semhash.dedup.pipeline as pipeline
from semhash.dedup import (
    AUTO_NEIGHBOURS,
    EXACT_LIMIT,
    NEIGHBOUR_LIMIT,
    CandidateStage,
    DedupOptions,
    candidate_stage,
    dedup_index,
    parse_neighbours,
)
from semhash.dedup.exact import all_pairs
from semhash.errors import UsageError


def test_auto_rule_boundaries() -> None:
    assert candidate_stage(2, "auto") == CandidateStage("all-pairs")
    assert candidate_stage(EXACT_LIMIT, "auto") == CandidateStage("all-pairs")
    # Above the exact limit, auto keeps the code join to its pair budget; a number given keeps --radius exactly.
    assert candidate_stage(EXACT_LIMIT + 1, "auto") == CandidateStage("codes+neighbours", AUTO_NEIGHBOURS, True)
    assert candidate_stage(NEIGHBOUR_LIMIT, "auto") == CandidateStage("codes+neighbours", AUTO_NEIGHBOURS, True)
    assert candidate_stage(NEIGHBOUR_LIMIT + 1, "auto") == CandidateStage("codes", 0, True)
    assert candidate_stage(10**7, "all") == CandidateStage("all-pairs")
    assert candidate_stage(5, 0) == CandidateStage("codes")  # 0: the codes alone at any size
    assert candidate_stage(10**7, 7) == CandidateStage("codes+neighbours", 7)
    assert CandidateStage("codes+neighbours", 7).describe(3) == "codes within 3 bits + 7 nearest embeddings"
    assert CandidateStage("all-pairs").describe(3) == "all pairs (exact)"


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


def test_default_finds_a_copy_the_old_default_missed(db: Path) -> None:  # noqa: F811
    """Document 7 is a copy (cosine 1) of document 1 whose code is 24 bits away: the codes alone miss it."""
    old = dedup_index(db, DedupOptions(neighbours=0))
    new = dedup_index(db)
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


def test_above_the_exact_limit_auto_takes_codes_and_neighbours(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setattr(dedup_options, "EXACT_LIMIT", 5)
    result = dedup_index(db)
    assert result.stats.stage == "codes+neighbours" and result.stats.neighbours == AUTO_NEIGHBOURS
    assert 7 in result.duplicate_ids  # the far copy is the nearest embedding of document 1
    monkeypatch.setattr(dedup_options, "NEIGHBOUR_LIMIT", 6)
    result = dedup_index(db)
    assert result.stats.stage == "codes" and 7 not in result.duplicate_ids


def test_cli_neighbours(db: Path) -> None:  # noqa: F811
    code, output = invoke("--db", db)
    assert code == 0, output
    assert "21 candidate pairs from all pairs (exact)" in output
    code, output = invoke("--db", db, "--neighbours", "0")
    assert code == 0 and "candidate pairs from codes within 3 bits," in output
    code, output = invoke("--db", db, "--neighbours", "2", "--json")
    assert code == 0 and 7 in {json.loads(line)["duplicate_id"] for line in output.splitlines()}
    code, output = invoke("--db", db, "--neighbours", "all", "--histogram")
    assert code == 0 and "cosine of 21 candidate pairs from all pairs (exact)" in output
    code, output = invoke("--db", db, "--neighbours", "lots")
    assert code == 2 and output.startswith("error: --neighbours must be auto, all or a number")
    assert len(output.strip().splitlines()) == 1
    code, output = invoke("x", "--against", "--db", db, "--neighbours", "all")
    assert code == 2 and "not with --against" in output


def test_auto_keeps_the_code_join_to_its_pair_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Coarse codes: 8 documents on code 0 and 8 on codes 1 bit away give 8*7/2 + 8*8 pairs within 1 bit."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((16, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    docs = [(f"document {k}", x[k], 0 if k < 8 else 1 << (k - 8)) for k in range(16)]
    path = tmp_path / "b.db"
    make_store(path, docs, tmp_path / "docs")
    monkeypatch.setattr(dedup_options, "EXACT_LIMIT", 4)
    monkeypatch.setattr(dedup_options, "NEIGHBOUR_LIMIT", 4)  # the code join alone: its pairs are countable
    full = dedup_index(path, DedupOptions(radius=1, neighbours=0))
    assert full.stats.radius == 1 and full.stats.candidates == 28 + 64
    monkeypatch.setattr(pipeline, "CODE_PAIR_BUDGET", 2)  # 32 pairs allowed: radius 0 (28 pairs) fits, 1 not
    auto = dedup_index(path, DedupOptions(radius=1))
    assert auto.stats.stage == "codes" and auto.stats.radius == 0 and auto.stats.candidates == 28
    assert set(zip(auto.left.tolist(), auto.right.tolist(), strict=True)) <= {
        (a, b) for a in range(1, 9) for b in range(a + 1, 9)
    }
    honoured = dedup_index(path, DedupOptions(radius=1, neighbours=0))  # a number given: --radius is exact
    assert honoured.stats.radius == 1 and honoured.stats.candidates == 92
    code, output = invoke("--db", path, "--radius", 1)
    assert code == 0 and "28 candidate pairs from codes within 0 bits" in output
    # Never silent: the 64 pairs at 1 bit the budget skipped are counted, with the flag that verifies them.
    assert auto.stats.unverified_pairs == 64 and not auto.stats.unverified_lower_bound
    assert honoured.stats.unverified_pairs == 0 and full.stats.unverified_pairs == 0
    assert "warning: 64 candidate pairs within --radius were not verified" in output and "--neighbours 0" in output
    code, output = invoke("--db", path, "--radius", 1, "--json")
    warning = [json.loads(line) for line in output.splitlines() if line.startswith('{"warning"')]
    assert len(warning) == 1 and warning[0]["stats"]["unverified_pairs"] == 64


def test_auto_over_budget_keeps_neighbour_pairs_the_smaller_join_did_not_verify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the join cut to radius 0, a near pair 2 bits apart must still come from the neighbour search."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((12, 8))
    x[11] = x[10] + 0.01 * rng.standard_normal(8)  # 11 is a near copy of 10 ...
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    codes = [0] * 6 + [(1 << 20) + k for k in range(4)] + [1 << 5, (1 << 5) | 3]  # ... with a code 2 bits away
    path = tmp_path / "c.db"
    make_store(path, [(f"text {k}", x[k], codes[k]) for k in range(12)], tmp_path / "docs")
    monkeypatch.setattr(dedup_options, "EXACT_LIMIT", 4)
    monkeypatch.setattr(pipeline, "CODE_PAIR_BUDGET", 15 / 12)  # 15 pairs: radius 0 (15 pairs) fits, 1 not
    result = dedup_index(path, DedupOptions(radius=3, threshold=0.95))
    assert result.stats.stage == "codes+neighbours" and result.stats.radius == 0
    assert 12 in result.duplicate_ids
    pair = int(np.flatnonzero((result.left == 11) & (result.right == 12))[0])
    assert result.hamming[pair] == 2
    monkeypatch.setattr(pipeline, "CODE_PAIR_BUDGET", 1 / 12)  # not even radius 0 fits: neighbours alone
    alone = dedup_index(path, DedupOptions(radius=3, threshold=0.95))
    assert alone.stats.radius == -1 and 12 in alone.duplicate_ids
    assert alone.stats.unverified_pairs == 15 and alone.stats.unverified_lower_bound  # the same-code pairs, at least
    assert "at least 15 candidate pairs" in (alone.stats.unverified_note() or "")
    code, output = invoke("--db", path, "--threshold", 0.95)
    assert code == 0 and "nearest embeddings (codes too coarse to join)" in output


def test_auto_without_neighbours_skips_blocks_over_the_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ten documents on one code (45 pairs) and a near pair on its own code: only the small block fits."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((12, 8))
    x[11] = x[10] + 0.01 * rng.standard_normal(8)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    codes = [7] * 10 + [1 << 30, 1 << 30]
    path = tmp_path / "d.db"
    make_store(path, [(f"text {k}", x[k], codes[k]) for k in range(12)], tmp_path / "docs")
    monkeypatch.setattr(dedup_options, "EXACT_LIMIT", 4)
    monkeypatch.setattr(dedup_options, "NEIGHBOUR_LIMIT", 4)
    monkeypatch.setattr(pipeline, "CODE_PAIR_BUDGET", 10 / 12)  # 10 pairs: the 45-pair block does not fit
    result = dedup_index(path, DedupOptions(radius=3, threshold=0.95))
    assert result.stats.stage == "codes" and result.stats.radius == 0 and result.stats.largest_block == 2
    assert result.stats.candidates == 1 and 12 in result.duplicate_ids
    assert set(result.left.tolist()) <= {11}
    code, output = invoke("--db", path, "--threshold", 0.95)
    assert code == 0 and "codes of more than 2 documents skipped" in output
    assert result.stats.unverified_pairs == 45 and "45 candidate pairs within --radius were not verified" in output
    every = dedup_index(path, DedupOptions(radius=3, threshold=0.95, neighbours=0))  # a number: no budget
    assert every.stats.largest_block == 0 and every.stats.candidates == 46


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
