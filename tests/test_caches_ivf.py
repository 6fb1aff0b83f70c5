"""The IVF cache over the stored embeddings: building, searching, and every way a saved file is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from semhash.caches.files import CacheStamp
from semhash.caches.ivf import EmbeddingIVF, ivf_path_for, nlist_for

STAMP = CacheStamp("db-1", 3, "change-a")
DIM = 16


def unit_rows(n: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture
def built() -> tuple[EmbeddingIVF, np.ndarray, np.ndarray]:
    """400 rows with gaps in the ids (as after deletions), in 16 cells."""
    ids = np.arange(0, 1200, 3, dtype=np.int64) + 7
    rows = unit_rows(len(ids))
    return EmbeddingIVF.build(ids, rows, nlist=16), ids, rows


def test_nlist_grows_as_the_square_root_and_is_a_power_of_two() -> None:
    assert nlist_for(0) == nlist_for(100) == 16
    assert nlist_for(100_000) == 256 and nlist_for(1_000_000) == 1024
    assert all(nlist_for(n) & (nlist_for(n) - 1) == 0 for n in (5_000, 18_331, 50_000, 3_000_000))


def test_probing_every_cell_finds_the_exact_top(built: tuple[EmbeddingIVF, np.ndarray, np.ndarray]) -> None:
    ivf, ids, rows = built
    assert ivf.size == len(ids) and ivf.dim == DIM and ivf.nlist == 16
    query = unit_rows(1, seed=5)[0]
    everything = ivf.search(query, len(ids), nprobe=ivf.nlist)
    assert sorted(everything.tolist()) == ids.tolist()  # the document ids, not row numbers
    exact = set(ids[np.argsort(-(rows @ query))[:5]].tolist())
    # 8-bit quantisation may swap near-ties, so the exact top 5 is asked of a top 20
    assert exact <= set(ivf.search(query, 20, nprobe=ivf.nlist).tolist())
    few = ivf.search(query, 20, nprobe=1)  # one cell: fewer rows seen, never an error
    assert 0 < len(few) <= 20 and set(few.tolist()) <= set(ids.tolist())


def test_build_is_deterministic_and_handles_tiny_indexes() -> None:
    ids, rows = np.arange(50, dtype=np.int64), unit_rows(50, seed=2)
    query = unit_rows(1, seed=3)[0]
    first, again = EmbeddingIVF.build(ids, rows), EmbeddingIVF.build(ids, rows)
    assert first.nlist == 16  # nlist_for(50) = 16 cells for 50 rows
    np.testing.assert_array_equal(first.search(query, 10, 2), again.search(query, 10, 2))
    empty = EmbeddingIVF.build(np.zeros(0, np.int64), np.zeros((0, DIM), np.float32))
    assert empty.search(query, 10, 4).tolist() == []


def test_round_trip(tmp_path: Path, built: tuple[EmbeddingIVF, np.ndarray, np.ndarray]) -> None:
    ivf, ids, _ = built
    path = ivf_path_for(tmp_path / "x.db")
    ivf.save(path, STAMP)
    loaded = EmbeddingIVF.load(path, STAMP, DIM, len(ids))
    assert loaded is not None and loaded.nlist == ivf.nlist and loaded.size == ivf.size
    query = unit_rows(1, seed=7)[0]
    np.testing.assert_array_equal(loaded.search(query, 30, 4), ivf.search(query, 30, 4))
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize(
    "stamp, dim, count",
    [
        (CacheStamp("db-2", 3, "change-a"), DIM, 400),  # another database's file
        (CacheStamp("db-1", 4, "change-b"), DIM, 400),  # an older state of this one
        (CacheStamp(None, 3, "change-a"), DIM, 400),  # a database without an id: nothing ties the file to it
        (STAMP, 32, 400),  # another embedding model
        (STAMP, DIM, 399),  # another row count
    ],
)
def test_foreign_or_stale_files_are_refused(
    tmp_path: Path, built: tuple[EmbeddingIVF, np.ndarray, np.ndarray], stamp: CacheStamp, dim: int, count: int
) -> None:
    ivf, _, _ = built
    path = ivf_path_for(tmp_path / "x.db")
    ivf.save(path, STAMP)
    assert EmbeddingIVF.load(path, stamp, dim, count) is None


def _damage(path: Path, how: str) -> None:
    side = Path(f"{path}.json")
    data = bytearray(path.read_bytes())
    if how == "truncated":
        path.write_bytes(bytes(data[:-100]))
    elif how == "flipped":
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    elif how == "no sidecar":
        side.unlink()
    elif how == "no file":
        path.unlink()
    elif how == "sidecar garbage":
        side.write_text("{not json")
    elif how == "sidecar huge":
        side.write_text(" " * 70_000 + "{}")
    elif how == "not faiss":
        # a file that matches its sidecar's size and checksum but is no faiss index: refused, not a crash
        import hashlib

        junk = b"\x00" * 4096
        path.write_bytes(junk)
        meta = json.loads(side.read_text())
        meta.update(bytes=len(junk), checksum=hashlib.blake2b(junk, digest_size=16).hexdigest())
        side.write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "how", ["truncated", "flipped", "no sidecar", "no file", "sidecar garbage", "sidecar huge", "not faiss"]
)
def test_damaged_files_are_refused(
    tmp_path: Path, built: tuple[EmbeddingIVF, np.ndarray, np.ndarray], how: str
) -> None:
    ivf, ids, _ = built
    path = ivf_path_for(tmp_path / "x.db")
    ivf.save(path, STAMP)
    _damage(path, how)
    assert EmbeddingIVF.load(path, STAMP, DIM, len(ids)) is None


def test_a_failed_save_leaves_no_sidecar(tmp_path: Path, built: tuple[EmbeddingIVF, np.ndarray, np.ndarray]) -> None:
    ivf = built[0]
    path = ivf_path_for(tmp_path / "x.db")
    ivf.save(path, STAMP)
    path.unlink()
    path.mkdir()  # the rename onto a folder fails
    with pytest.raises(OSError):
        ivf.save(path, STAMP)
    assert not Path(f"{path}.json").exists() and not list(tmp_path.glob("*.tmp"))


def test_a_sidecar_claiming_an_oversized_file_is_refused_unread(
    tmp_path: Path, built: tuple[EmbeddingIVF, np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No file is read (or checksummed) when its claimed size exceeds what these rows could take."""
    ivf, ids, _ = built
    path = ivf_path_for(tmp_path / "x.db")
    ivf.save(path, STAMP)
    side = Path(f"{path}.json")
    meta = json.loads(side.read_text())
    assert meta["bytes"] <= len(ids) * (DIM + 16) + meta["nlist"] * (DIM * 4 + 64) + 2**20  # the bound holds

    def no_read(*args: object) -> None:
        raise AssertionError("the file was read")

    monkeypatch.setattr("semhash.caches.ivf.file_checksum", no_read)
    for change in ({"bytes": 10**12}, {"nlist": 0}, {"nlist": len(ids) + 1}, {"nlist": "16"}):
        side.write_text(json.dumps({**meta, **change}))
        assert EmbeddingIVF.load(path, STAMP, DIM, len(ids)) is None


def test_probes_cover_about_the_asked_rows(built: tuple[EmbeddingIVF, np.ndarray, np.ndarray]) -> None:
    ivf = built[0]  # 400 rows in 16 cells: 25 a cell
    assert ivf.probes_for(100) == 4 and ivf.probes_for(1) == 1 and ivf.probes_for(10**6) == ivf.nlist
    empty = EmbeddingIVF.build(np.zeros(0, np.int64), np.zeros((0, DIM), np.float32))
    assert empty.probes_for(100) == 1


def test_an_unchanged_file_is_not_hashed_again_but_a_changed_one_is(
    tmp_path: Path, built: tuple[EmbeddingIVF, np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Old code: every load hashed the whole file (a tenth of a cold query at 10^5 documents)."""
    import os

    import semhash.caches.ivf as ivf_module

    ivf, ids, _ = built
    path = ivf_path_for(tmp_path / "x.db")
    ivf.save(path, STAMP)
    hashed: list[Path] = []
    real = ivf_module.file_checksum

    def counted(p: Path, size: int) -> str | None:
        hashed.append(p)
        return real(p, size)

    monkeypatch.setattr(ivf_module, "file_checksum", counted)
    assert EmbeddingIVF.load(path, STAMP, DIM, len(ids)) is not None and hashed == []
    # Damage in place with the old modification time put back: the ctime still moves, so it is hashed.
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert EmbeddingIVF.load(path, STAMP, DIM, len(ids)) is None and hashed == [path]
