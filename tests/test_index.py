"""The faiss binary index: exact search with ties broken by id, radius lookups, save/load/stale/corrupt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semhash.codes import hamming_matrix
from semhash.errors import CorruptIndexError
from semhash.index import CodeIndex


def _random_index(seed: int, n: int, bits: int = 32) -> tuple[CodeIndex, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # few distinct codes so ties are everywhere, as with real 32-bit codes
    distinct = rng.integers(0, 256, size=(max(2, n // 4), bits // 8), dtype=np.uint8)
    packed = distinct[rng.integers(0, len(distinct), size=n)]
    ids = rng.permutation(np.arange(1, 10 * n + 1))[:n].astype(np.int64)
    return CodeIndex.build(ids, packed, bits), ids, packed


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 300), st.integers(1, 40))
def test_search_equals_brute_force_with_id_tie_break(seed: int, n: int, k: int) -> None:
    index, ids, packed = _random_index(seed, n)
    queries = packed[:3]
    distances, found = index.search(queries, k)
    full = hamming_matrix(queries, packed)
    for q in range(len(queries)):
        order = np.lexsort((ids, full[q]))[: min(k, n)]
        assert (found[q] == ids[order]).all()
        assert (distances[q] == full[q][order]).all()


def test_within_radius_is_inclusive() -> None:
    index, ids, packed = _random_index(7, 200)
    full = hamming_matrix(packed[:1], packed)[0]
    for radius in (0, 3, 8, 32):
        found, dist = index.within(packed[:1], radius)
        assert set(found.tolist()) == set(ids[full <= radius].tolist())
        assert (dist <= radius).all()


def test_save_load_and_staleness(tmp_path: Path) -> None:
    index, _, packed = _random_index(1, 50)
    path = tmp_path / "x.db.faiss"
    index.save(path, generation=4)
    loaded = CodeIndex.load(path, generation=4, bits=32)
    assert loaded is not None and loaded.size == 50
    assert (loaded.search(packed[:2], 5)[1] == index.search(packed[:2], 5)[1]).all()
    assert CodeIndex.load(path, generation=5, bits=32) is None  # stale
    assert CodeIndex.load(path, generation=4, bits=64) is None  # other code length
    assert CodeIndex.load(tmp_path / "missing.faiss", generation=4, bits=32) is None


def test_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    index, _, _ = _random_index(1, 10)
    path = tmp_path / "x.db.faiss"
    index.save(path, generation=1)
    path.write_bytes(b"not a faiss index at all")
    with pytest.raises(CorruptIndexError, match="delete it"):
        CodeIndex.load(path, generation=1, bits=32)


def test_empty_index_searches_to_nothing() -> None:
    index = CodeIndex.build(np.zeros(0, np.int64), np.zeros((0, 4), np.uint8), 32)
    distances, ids = index.search(np.zeros((1, 4), np.uint8), 5)
    assert ids.shape == (1, 0) and distances.shape == (1, 0)
    assert index.within(np.zeros((1, 4), np.uint8), 3)[0].size == 0
