"""``dedup --neighbours K``: each document's nearest stored embeddings as extra candidates (faiss)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support import invoke_dedup, make_store

from semhash.dedup import DedupOptions, dedup_index
from semhash.dedup.ann import neighbour_pairs
from semhash.errors import UsageError


def test_neighbours_find_a_copy_whose_code_is_far(seven_docs_db: Path) -> None:
    """Document 6 is a copy (cosine 1) of document 0 with a code 24 bits away: the codes alone miss it."""
    plain = dedup_index(seven_docs_db, DedupOptions(radius=3, neighbours=0))  # the codes alone (the old default)
    assert 7 not in plain.duplicate_ids
    found = dedup_index(seven_docs_db, DedupOptions(radius=3, neighbours=2))
    assert 7 in found.duplicate_ids
    assert len(found.duplicate_ids) > len(plain.duplicate_ids)
    assert found.stats.candidates > plain.stats.candidates
    pair = [k for k in range(len(found.left)) if (found.left[k], found.right[k]) in ((1, 7), (2, 7))]
    assert pair and found.hamming[pair[0]] == 24


def test_neighbours_reach_every_pair_when_k_covers_the_corpus(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    n = 40
    x = rng.standard_normal((n, 8)) + 2.0  # all pairs fairly similar
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    codes = rng.integers(0, 2**32, n)  # random codes: the code stage finds almost nothing at radius 1
    path = tmp_path / "a.db"
    make_store(path, [(f"text {k}", x[k], int(codes[k])) for k in range(n)], tmp_path / "docs")
    result = dedup_index(path, DedupOptions(radius=1, threshold=0.6, neighbours=n))
    sims = x @ x.T
    want = {(a + 1, b + 1) for a in range(n) for b in range(a + 1, n) if sims[a, b] >= 0.5 - 1e-6}
    got = set(zip(result.left.tolist(), result.right.tolist(), strict=True))
    assert got == want  # every pair at or above the floor (0.5), none twice
    order = np.lexsort((result.right, result.left))
    assert np.array_equal(order, np.arange(len(order)))
    np.testing.assert_allclose(result.cosine, [sims[a - 1, b - 1] for a, b in sorted(got)], atol=1e-5)
    assert result.pairs_at(-1.0) == n * (n - 1) // 2  # histogram: every pair counted once


def test_neighbour_pairs_match_brute_force() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    i, j, c = neighbour_pairs(x, 3)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    top = np.argsort(-sims, axis=1)[:, :3]
    want = {(min(a, int(b)), max(a, int(b))) for a in range(200) for b in top[a]}
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == want
    np.testing.assert_allclose(c, sims[i, j], atol=1e-5)


def test_neighbours_option_is_checked(seven_docs_db: Path) -> None:
    with pytest.raises(UsageError, match="--neighbours must be between 0 and 1000"):
        DedupOptions(neighbours=-1)
    code, output = invoke_dedup("--db", seven_docs_db, "--neighbours", 2, "--json")
    assert code == 0 and '"duplicate_id": 7' in output
    code, output = invoke_dedup("x", "--against", "--db", seven_docs_db, "--neighbours", 2)
    assert code == 2 and "not with --against" in output


def test_large_collections_use_ivf_and_find_near_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    import semhash.dedup.ann as ann

    monkeypatch.setattr(ann, "FLAT_LIMIT", 500)
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((30, 16))
    x = centres[rng.integers(0, 30, 3000)] + 0.4 * rng.standard_normal((3000, 16))
    copies = np.arange(0, 3000, 10)
    x[copies + 1] = x[copies] + 0.01 * rng.standard_normal((len(copies), 16))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    i, j, c = neighbour_pairs(x, 5)
    found = set(zip(i.tolist(), j.tolist(), strict=True))
    assert sum((int(a), int(a) + 1) in found for a in copies) >= 0.95 * len(copies)
    np.testing.assert_allclose(c, np.einsum("ij,ij->i", x[i], x[j]), atol=1e-5)
