"""The cell candidate stage of ``dedup`` (:mod:`semhash.dedup.cells`): recall, exactness, budget, determinism."""

from __future__ import annotations

import numpy as np
import pytest

import semhash.dedup.cells as cells
from semhash.dedup.cells import TREES, CellTree, cell_pairs


def planted(n: int = 6000, topics: int = 30, dim: int = 48, seed: int = 0) -> tuple[np.ndarray, set[tuple[int, int]]]:
    """Topical unit vectors (same-topic cosine ~0.5) with 5% near copies at cosine 0.82-0.99."""
    rng = np.random.default_rng(seed)
    centre = rng.standard_normal((topics, dim))
    centre /= np.linalg.norm(centre, axis=1, keepdims=True)
    x = centre[rng.integers(0, topics, n)] + rng.standard_normal((n, dim)) / np.sqrt(dim)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    copies = rng.choice(n, n // 20, replace=False)
    source = rng.integers(0, n, len(copies))
    keep = ~np.isin(source, copies) & (source != copies)
    copies, source = copies[keep], source[keep]
    noise = rng.standard_normal((len(copies), dim))
    noise -= (noise * x[source]).sum(axis=1, keepdims=True) * x[source]
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    target = rng.uniform(0.82, 0.99, len(copies))[:, None]
    x[copies] = target * x[source] + np.sqrt(1 - target**2) * noise
    pairs = {(int(min(a, b)), int(max(a, b))) for a, b in zip(copies, source, strict=True)}
    return x.astype(np.float32), pairs


def test_finds_planted_copies_and_only_true_pairs() -> None:
    x, pairs = planted()
    found = cell_pairs(x, 0.8)
    got = set(zip(found.i.tolist(), found.j.tolist(), strict=True))
    assert len(pairs & got) / len(pairs) >= 0.95
    assert np.all(found.i < found.j) and found.dropped == 0
    np.testing.assert_allclose(found.cosine, (x[found.i] * x[found.j]).sum(axis=1), atol=1e-5)
    assert found.cosine.min() >= 0.8 - 1e-6
    key = found.i * len(x) + found.j
    assert np.all(np.diff(key) > 0)  # sorted by (i, j), no pair twice
    # Nothing above the threshold is invented, and most of all-pairs' accepted pairs are found.
    sims = x @ x.T
    a, b = np.nonzero(np.triu(sims >= 0.8, 1))
    assert len(got & set(zip(a.tolist(), b.tolist(), strict=True))) == len(got)
    assert len(got) / len(a) >= 0.95
    assert found.products < len(x) * (len(x) - 1) // 2 // 5  # far fewer cosines than all pairs


def test_deterministic() -> None:
    x, _ = planted(n=3000, seed=3)
    first, second = cell_pairs(x, 0.8), cell_pairs(x, 0.8)
    assert np.array_equal(first.i, second.i) and np.array_equal(first.j, second.j)
    assert np.array_equal(first.cosine, second.cosine) and first.products == second.products


def test_budget_counts_what_it_drops() -> None:
    x, _ = planted(n=3000, seed=5)
    one = cell_pairs(x, 0.8, trees=1)
    capped = cell_pairs(x, 0.8, trees=1, budget=40)  # one tree: every pair it finds is kept or counted, once
    assert len(capped.i) == 40 and capped.dropped == len(one.i) - 40 > 0 and not capped.dropped_lower_bound
    got = set(zip(capped.i.tolist(), capped.j.tolist(), strict=True))
    assert got <= set(zip(one.i.tolist(), one.j.tolist(), strict=True))
    full = cell_pairs(x, 0.8)
    capped = cell_pairs(x, 0.8, budget=40)  # spent in the first tree: the second is not run, "at least"
    assert len(capped.i) == 40 and capped.dropped_lower_bound and 0 < capped.dropped <= len(full.i) - 40
    roomy = cell_pairs(x, 0.8, budget=len(full.i))
    assert roomy.dropped == 0 and np.array_equal(roomy.i, full.i) and np.array_equal(roomy.j, full.j)


def test_one_family_of_copies() -> None:
    """Every document a near copy of every other: one cell holds them, every pair is found."""
    rng = np.random.default_rng(1)
    x = np.ones((40, 16)) + 0.05 * rng.standard_normal((40, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    found = cell_pairs(x, 0.8, cells=1)
    assert found.cells == TREES and len(found.i) == 40 * 39 // 2 and found.largest_cell == 40
    assert found.products == TREES * 40 * 39 // 2  # each pair compared once per tree


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_tiny(n: int) -> None:
    x = np.eye(4, dtype=np.float32)[:n]
    x[1:] = x[0] if n > 1 else x[1:]
    found = cell_pairs(x, 0.8)
    assert len(found.i) == (n * (n - 1) // 2)


def test_tree_nearest_is_a_valid_cell() -> None:
    x, _ = planted(n=2000, seed=2)
    tree = CellTree.train(x, 40, seed=0)
    near = tree.nearest(x, 2)
    assert near.shape == (2000, 2) and near.min() >= 0 and near.max() < tree.cells
    assert np.all(near[:, 0] != near[:, 1])


def test_row_blocks_find_the_same_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cell with more rows (members and visitors) than one product takes gives the same pairs in row blocks."""
    x, _ = planted(n=1500, seed=4)
    whole = cell_pairs(x, 0.8, cells=4)
    monkeypatch.setattr(cells, "ROW_BLOCK", 64)
    blocked = cell_pairs(x, 0.8, cells=4)
    assert whole.largest_cell > 64 and len(whole.i) > 0
    assert np.array_equal(whole.i, blocked.i) and np.array_equal(whole.j, blocked.j)
    np.testing.assert_allclose(whole.cosine, blocked.cosine, atol=1e-6)
    assert whole.products == blocked.products


def test_flush_in_parts_keeps_the_same_pairs_and_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """Filtering the hits in many small batches changes nothing: pairs, and what a budget keeps and drops."""
    x, _ = planted(n=3000, seed=6)
    whole, capped = cell_pairs(x, 0.8), cell_pairs(x, 0.8, trees=1, budget=50)
    monkeypatch.setattr(cells._Found, "FLUSH", 7)
    assert np.array_equal(cell_pairs(x, 0.8).i, whole.i) and np.array_equal(cell_pairs(x, 0.8).j, whole.j)
    small = cell_pairs(x, 0.8, trees=1, budget=50)
    assert (len(small.i), small.dropped) == (len(capped.i), capped.dropped) == (50, capped.dropped)


def test_top_is_the_largest_first() -> None:
    rng = np.random.default_rng(0)
    sims = rng.standard_normal((500, 30)).astype(np.float32)
    sims[0, :] = 0.5  # ties: the lower column first
    for k in (1, 2, 3, 6):
        index, value = cells._top(sims.copy(), k)
        expect = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        assert np.array_equal(index, expect)
        assert np.array_equal(value, np.take_along_axis(sims, expect, axis=1))


def test_nearest_is_the_best_cell_of_the_nearest_groups() -> None:
    """Each row's probed cells are its most similar among the cells of its ``GROUP_PROBES`` nearest groups."""
    x, _ = planted(n=2000, seed=7)
    tree = CellTree.train(x, 60, seed=1)
    near = tree.nearest(x, 3)
    groups = np.argsort(-(x @ tree.groups.T), axis=1, kind="stable")[:, : cells.GROUP_PROBES]
    centroids = np.vstack(tree.centroids)
    for row in range(0, 2000, 97):
        allowed = np.concatenate([np.arange(tree.offsets[g], tree.offsets[g + 1]) for g in groups[row]])
        sims = x[row] @ centroids[allowed].T
        assert np.array_equal(near[row], allowed[np.argsort(-sims, kind="stable")[:3]])


def test_next_tree_on_a_second_thread_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Placing the next tree while the current one is joined gives the pairs of one tree after the other."""
    x, _ = planted(n=3000, seed=8)
    ahead, capped_ahead = cell_pairs(x, 0.8), cell_pairs(x, 0.8, budget=40)
    monkeypatch.setattr(cells, "AHEAD", False)
    inline, capped_inline = cell_pairs(x, 0.8), cell_pairs(x, 0.8, budget=40)
    assert np.array_equal(ahead.i, inline.i) and np.array_equal(ahead.j, inline.j) and len(ahead.i) > 0
    assert (ahead.products, ahead.cells) == (inline.products, inline.cells)
    assert (capped_ahead.dropped, capped_ahead.dropped_lower_bound) == (capped_inline.dropped, True)
