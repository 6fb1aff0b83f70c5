"""The memory-mapped rerank vectors: round trip, lookups, exact scan, and every way a cache is refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from semhash.caches.files import CacheStamp
from semhash.caches.vectors import VectorCache, vectors_path_for

STAMP = CacheStamp("db-1", 3, "change-a")
DIM = 16
BITS = 16


def sql_codes(n: int, seed: int = 0) -> np.ndarray:
    """Random 16-bit codes in SQLite's integer form, few enough values that Hamming ties abound."""
    return np.random.default_rng(seed).integers(0, 1 << BITS, n).astype(np.int64)


def unit_rows(n: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """A cache of 50 rows with gaps in the ids (as after deletions), written in two chunks."""
    ids = np.arange(0, 150, 3, dtype=np.int64) + 1
    rows = unit_rows(len(ids))
    path = vectors_path_for(tmp_path / "x.db")
    codes = sql_codes(len(ids))
    VectorCache.write(path, STAMP, DIM, BITS, [(ids[:20], codes[:20], rows[:20]), (ids[20:], codes[20:], rows[20:])])
    return path, ids, rows


def test_round_trip_is_a_float32_memory_map(saved: tuple[Path, np.ndarray, np.ndarray]) -> None:
    path, ids, rows = saved
    cache = VectorCache.load(path, STAMP, DIM, BITS)
    assert cache is not None and isinstance(cache.matrix, np.memmap)
    assert cache.size == len(ids) and cache.dim == DIM
    np.testing.assert_array_equal(cache.ids, ids)
    np.testing.assert_array_equal(np.asarray(cache.matrix), rows)
    assert path.stat().st_size == len(ids) * DIM * 4


def test_cosines_follow_the_callers_order_and_skip_unknown_ids(saved: tuple[Path, np.ndarray, np.ndarray]) -> None:
    path, ids, rows = saved
    cache = VectorCache.load(path, STAMP, DIM, BITS)
    assert cache is not None
    query = unit_rows(1, seed=9)[0]
    asked = np.array([ids[7], 2, ids[0], 10_000, ids[-1], -5], dtype=np.int64)  # 2, 10000, -5 have no row
    present, cosines = cache.cosines(query, asked)
    assert present.tolist() == [True, False, True, False, True, False]
    expected = rows[[7, 0, len(ids) - 1]] @ query
    np.testing.assert_allclose(cosines, expected, atol=1e-6)


def test_scan_is_the_exact_top_k_with_ties_by_id(tmp_path: Path) -> None:
    # eighths: every dot product is exact whatever the summation order, so ties are real ties
    rows = np.random.default_rng(1).integers(-4, 5, (40, DIM)).astype(np.float32) / 8
    rows[30] = rows[5]  # an exact tie: the smaller id must come first
    ids = np.arange(100, 140, dtype=np.int64)
    cache = VectorCache.write(vectors_path_for(tmp_path / "t.db"), STAMP, DIM, BITS, [(ids, sql_codes(40), rows)])
    query = rows[5]
    found, scores = cache.scan(query, 5)
    exact = rows @ query
    order = np.lexsort((ids, -exact))[:5]
    np.testing.assert_array_equal(found, ids[order])
    np.testing.assert_array_equal(scores, exact[order])
    assert found[0] == 105 and found[1] == 130  # the tie, smaller id first
    excluded, _ = cache.scan(query, 5, exclude=105)
    assert 105 not in excluded.tolist() and excluded[0] == 130


@pytest.mark.parametrize(
    "stamp, dim, bits",
    [
        (CacheStamp("db-1", 4, "change-b"), DIM, BITS),  # stale: the database moved on
        (CacheStamp("db-2", 3, "change-a"), DIM, BITS),  # foreign: another database's cache
        (CacheStamp(None, 3, "change-a"), DIM, BITS),  # a database without an id is never matched
        (STAMP, DIM * 2, BITS),  # another embedding model
        (STAMP, DIM, 32),  # another code length
    ],
)
def test_a_cache_of_another_state_is_not_loaded(
    saved: tuple[Path, np.ndarray, np.ndarray], stamp: CacheStamp, dim: int, bits: int
) -> None:
    path, _, _ = saved
    assert VectorCache.load(path, stamp, dim, bits) is None


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-2])


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))


def _unsort_ids(path: Path) -> None:
    ids_path = Path(f"{path}.ids")
    pairs = np.fromfile(ids_path, dtype="<i8").reshape(-1, 2)
    pairs[[0, 1]] = pairs[[1, 0]]
    pairs.tofile(ids_path)
    side = Path(f"{path}.json")  # even with a sidecar that vouches for the new file: ids must ascend
    meta = json.loads(side.read_text())
    import hashlib

    meta["ids_checksum"] = hashlib.blake2b(ids_path.read_bytes(), digest_size=16).hexdigest()
    side.write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "damage",
    [
        _truncate,
        _flip_a_byte,
        lambda p: _flip_a_byte(Path(f"{p}.ids")),
        lambda p: Path(f"{p}.json").unlink(),
        lambda p: Path(f"{p}.ids").unlink(),
        lambda p: Path(f"{p}.json").write_text("not json"),
        lambda p: Path(f"{p}.json").write_text("[1, 2]"),
        lambda p: Path(f"{p}.json").write_bytes(b" " * 70_000),
        _unsort_ids,
    ],
    ids=["truncated", "altered", "ids-altered", "no-sidecar", "no-ids", "bad-json", "not-a-dict", "huge", "unsorted"],
)
def test_a_damaged_cache_is_not_loaded(
    saved: tuple[Path, np.ndarray, np.ndarray], damage: Callable[[Path], None]
) -> None:
    path, _, _ = saved
    damage(path)
    assert VectorCache.load(path, STAMP, DIM, BITS) is None


def test_a_failed_write_leaves_no_sidecar_and_no_temporary_files(saved: tuple[Path, np.ndarray, np.ndarray]) -> None:
    path, ids, rows = saved
    with pytest.raises(ValueError, match="ascending"):
        VectorCache.write(path, STAMP, DIM, BITS, [(ids[::-1], sql_codes(len(ids)), rows)])
    assert not Path(f"{path}.json").exists()  # the old cache is no longer vouched for
    assert VectorCache.load(path, STAMP, DIM, BITS) is None
    assert not list(path.parent.glob("*.tmp"))


def test_empty_and_in_memory_caches(tmp_path: Path) -> None:
    path = vectors_path_for(tmp_path / "e.db")
    empty = VectorCache.write(path, STAMP, DIM, BITS, [])
    assert empty.size == 0 and empty.scan(unit_rows(1)[0], 3)[0].size == 0
    loaded = VectorCache.load(path, STAMP, DIM, BITS)
    assert loaded is not None and loaded.size == 0
    rows = unit_rows(6)
    codes = sql_codes(6)
    memory = VectorCache.in_memory(
        DIM, BITS, [(np.array([9, 4, 7]), codes[:3], rows[:3]), (np.array([1, 2, 3]), codes[3:], rows[3:])]
    )
    assert memory.ids.tolist() == [1, 2, 3, 4, 7, 9]
    assert memory.codes.tolist() == codes[[3, 4, 5, 1, 2, 0]].tolist()
    present, cosines = memory.cosines(rows[0], np.array([9]))
    assert present.tolist() == [True] and cosines[0] == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("bits", [16, 32, 64])
@pytest.mark.parametrize("pool", [1, 7, 40, 300, 599, 600, 1000])  # 599, 600: every row but one, all
def test_nearest_is_the_faiss_top_pool_with_ties_by_id(tmp_path: Path, bits: int, pool: int) -> None:
    """The rerank's candidate stage (numpy over the cached codes) picks exactly what faiss picks."""
    from semhash.caches.hamming import CodeIndex
    from semhash.codes import ints_to_packed, packed_to_ints

    rng = np.random.default_rng(bits + pool)
    n = 600
    ids = np.sort(rng.choice(10_000, n, replace=False)).astype(np.int64)
    # few distinct codes (flipped from a handful of centres): many ties at every radius
    centres = rng.integers(0, 2**63, 5, dtype=np.int64).view(np.uint64)
    flips = np.left_shift(np.uint64(1), rng.integers(0, bits, (n, 3)).astype(np.uint64))
    unsigned = (centres[np.arange(n) % 5] ^ flips[:, 0] ^ flips[:, 1] ^ flips[:, 2]) & np.uint64((1 << bits) - 1)
    sql = unsigned.view(np.int64)
    packed = ints_to_packed(sql, bits)
    cache = VectorCache.write(vectors_path_for(tmp_path / "n.db"), STAMP, DIM, bits, [(ids, sql, unit_rows(n))])
    index = CodeIndex.build(ids, packed, bits)
    for q in (0, 17, 599):
        code = int(packed_to_ints(packed[q : q + 1])[0])
        want_d, want_ids = index.search(packed[q : q + 1], pool)
        rows, dist = cache.nearest(code, pool)
        assert sorted(cache.ids[rows].tolist()) == sorted(want_ids[0].tolist())
        by_id = dict(zip(want_ids[0].tolist(), want_d[0].tolist(), strict=True))
        assert [by_id[i] for i in cache.ids[rows].tolist()] == dist.tolist()
        assert np.array_equal(cache.distances(code, rows), dist)
        rows, _ = cache.nearest(code, pool, exclude=int(ids[q]))
        assert int(ids[q]) not in cache.ids[rows].tolist() and len(rows) == min(pool, n - 1)


def test_a_large_cache_is_checked_by_samples_and_its_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the full-checksum size only sampled blocks are hashed; damage inside one is still caught."""
    monkeypatch.setattr("semhash.caches.vectors._FULL_CHECKSUM_BYTES", 1024)
    monkeypatch.setattr("semhash.caches.vectors._SAMPLE_BYTES", 256)
    ids = np.arange(1, 201, dtype=np.int64)
    path = vectors_path_for(tmp_path / "big.db")
    VectorCache.write(path, STAMP, DIM, BITS, [(ids, sql_codes(200), unit_rows(200))])
    assert json.loads(Path(f"{path}.json").read_text())["vectors_checksum"].startswith("sampled:")
    assert VectorCache.load(path, STAMP, DIM, BITS) is not None
    data = bytearray(path.read_bytes())
    data[3] ^= 0x10  # inside the first sampled block
    path.write_bytes(bytes(data))
    assert VectorCache.load(path, STAMP, DIM, BITS) is None
    path.write_bytes(bytes(data[:-4]))
    assert VectorCache.load(path, STAMP, DIM, BITS) is None


def test_a_sidecar_without_checksums_is_not_trusted(saved: tuple[Path, np.ndarray, np.ndarray]) -> None:
    path, _, _ = saved
    side = Path(f"{path}.json")
    meta = json.loads(side.read_text())
    Path(f"{path}.ids").unlink()
    meta["ids_checksum"] = None
    side.write_text(json.dumps(meta))
    assert VectorCache.load(path, STAMP, DIM, BITS) is None
