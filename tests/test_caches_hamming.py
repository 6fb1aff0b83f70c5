"""The faiss binary index: exact search with ties broken by id, radius lookups, save/load/stale/corrupt."""

from __future__ import annotations

import errno
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semhash.caches.files import CacheStamp
from semhash.caches.hamming import CodeIndex
from semhash.codes import hamming_matrix
from semhash.errors import CorruptIndexError


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


STAMP = CacheStamp("db-a", 4, "change-1")


def test_save_load_and_staleness(tmp_path: Path) -> None:
    index, _, packed = _random_index(1, 50)
    path = tmp_path / "x.db.faiss"
    index.save(path, STAMP)
    loaded = CodeIndex.load(path, STAMP, bits=32)
    assert loaded is not None and loaded.size == 50
    assert (loaded.search(packed[:2], 5)[1] == index.search(packed[:2], 5)[1]).all()
    assert CodeIndex.load(path, CacheStamp("db-a", 5, "change-1"), bits=32) is None  # stale
    assert CodeIndex.load(path, STAMP, bits=64) is None  # other code length
    assert CodeIndex.load(tmp_path / "missing.faiss", STAMP, bits=32) is None


def test_a_file_of_another_database_or_state_is_not_served(tmp_path: Path) -> None:
    index, _, _ = _random_index(1, 50)
    path = tmp_path / "x.db.faiss"
    index.save(path, STAMP)
    assert CodeIndex.load(path, CacheStamp("db-b", 4, "change-1"), bits=32) is None  # another database
    # a copy of the database that changed on its own: same id and generation, another change
    assert CodeIndex.load(path, CacheStamp("db-a", 4, "change-2"), bits=32) is None
    # an older database opened read-only has no id: nothing ties a file to it
    assert CodeIndex.load(path, CacheStamp(None, 4, None), bits=32) is None


def test_a_faiss_file_beside_another_sidecar_is_not_served(tmp_path: Path) -> None:
    """Same size and count, other codes: the sidecar's checksum of the file tells them apart."""
    first, _, _ = _random_index(1, 50)
    second, _, _ = _random_index(2, 50)
    path, other = tmp_path / "x.db.faiss", tmp_path / "y.db.faiss"
    first.save(path, STAMP)
    second.save(other, STAMP)
    assert path.stat().st_size == other.stat().st_size
    path.write_bytes(other.read_bytes())
    assert CodeIndex.load(path, STAMP, bits=32) is None


def test_corrupt_file_is_rebuilt_not_read(tmp_path: Path) -> None:
    index, _, _ = _random_index(1, 10)
    path = tmp_path / "x.db.faiss"
    index.save(path, STAMP)
    path.write_bytes(b"not a faiss index at all")
    assert CodeIndex.load(path, STAMP, bits=32) is None


def test_unreadable_file_that_matches_its_sidecar_is_a_clear_error(tmp_path: Path) -> None:
    index, _, _ = _random_index(1, 10)
    path = tmp_path / "x.db.faiss"
    index.save(path, STAMP)
    data = bytearray(path.read_bytes())
    data[:4] = b"XXXX"  # faiss's header
    path.write_bytes(bytes(data))
    sidecar = Path(f"{path}.json")
    meta = json.loads(sidecar.read_text())
    meta["checksum"] = hashlib.blake2b(bytes(data), digest_size=16).hexdigest()
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(CorruptIndexError, match="delete it"):
        CodeIndex.load(path, STAMP, bits=32)


def test_a_failed_save_leaves_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index, _, _ = _random_index(1, 10)
    path = tmp_path / "x.db.faiss"

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "replace", full)
    with pytest.raises(OSError):
        index.save(path, STAMP)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_empty_index_searches_to_nothing() -> None:
    index = CodeIndex.build(np.zeros(0, np.int64), np.zeros((0, 4), np.uint8), 32)
    distances, ids = index.search(np.zeros((1, 4), np.uint8), 5)
    assert ids.shape == (1, 0) and distances.shape == (1, 0)
    assert index.within(np.zeros((1, 4), np.uint8), 3)[0].size == 0
