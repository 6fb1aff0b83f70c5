"""The cache-file plumbing every cache shares: stamp, sidecar, checksum, atomic write."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from semhash.caches.files import (
    MAX_SIDECAR_BYTES,
    CacheStamp,
    atomic_file,
    checksum,
    drop_sidecar,
    file_checksum,
    read_sidecar,
    sidecar_path,
    stat_key,
    write_atomically,
    write_sidecar,
)
from semhash.caches.ivf import training_sample


def test_a_stamp_matches_only_its_own_fields_and_never_without_a_database_id() -> None:
    stamp = CacheStamp("db", 3, "c")
    assert list(stamp.fields()) == ["database_id", "generation", "change_id"]  # the sidecars' field order
    assert stamp.matches({**stamp.fields(), "bits": 32})
    assert not stamp.matches({**stamp.fields(), "generation": 4})
    assert not CacheStamp(None, 3, "c").matches(CacheStamp(None, 3, "c").fields())


def test_a_sidecar_round_trips_and_anything_not_ours_reads_as_none(tmp_path: Path) -> None:
    cache = tmp_path / "x.faiss"
    assert read_sidecar(cache) is None
    write_sidecar(cache, {"a": 1})
    assert sidecar_path(cache) == tmp_path / "x.faiss.json"
    assert json.loads(sidecar_path(cache).read_text()) == {"a": 1} == read_sidecar(cache)
    sidecar_path(cache).write_text("[1, 2]")
    assert read_sidecar(cache) is None  # not an object
    sidecar_path(cache).write_text(" " * (MAX_SIDECAR_BYTES + 1) + "{}")
    assert read_sidecar(cache) is None  # too large to be ours: not parsed
    drop_sidecar(cache)
    drop_sidecar(cache)  # twice: nothing there is fine
    os.mkfifo(sidecar_path(cache))
    assert read_sidecar(cache) is None  # a FIFO is never waited on


def test_checksums_of_bytes_and_of_the_file_agree(tmp_path: Path) -> None:
    data = np.arange(1000, dtype=np.uint8)
    path = tmp_path / "f"
    write_atomically(path, data.tobytes())
    assert checksum(data.tobytes()) == checksum(data.data) == file_checksum(path, 1000)
    assert file_checksum(path, 999) is None and file_checksum(path, 1001) is None
    assert file_checksum(tmp_path / "missing", 1) is None


def test_an_atomic_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "f"
    write_atomically(path, b"old")
    with pytest.raises(RuntimeError), atomic_file(path) as handle:
        handle.write(b"half")
        raise RuntimeError("disk full")
    assert path.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_the_stat_key_changes_when_the_file_is_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "f"
    write_atomically(path, b"one")
    before = stat_key(path.stat())
    assert stat_key(path.stat()) == before
    write_atomically(path, b"two")
    assert stat_key(path.stat()) != before


def test_the_training_sample_is_the_rule_both_ivf_builders_had() -> None:
    for size, per_list, nlist, seed in [(10_000, 64, 128, 0), (50_000, 40, 894, 3), (100, 64, 16, 0)]:
        old = np.sort(np.random.default_rng(seed).choice(size, min(size, per_list * nlist), replace=False))
        assert np.array_equal(training_sample(size, per_list, nlist, seed), old)
