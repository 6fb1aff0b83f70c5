"""The faiss binary Hamming index file ``<db>.faiss``: a rebuildable cache of the codes stored in SQLite.

``IndexBinaryIDMap2`` over ``IndexBinaryFlat``: an exhaustive, exact Hamming scan (popcount of XOR),
with faiss ids equal to SQLite rowids. At 32 bits a scan of 10^7 codes is a few tens of milliseconds,
and it is exact, so no probing parameter can silently lose results. The file ``<db>.faiss`` sits beside
the database, with ``<db>.faiss.json`` recording the :class:`~semhash.caches.files.CacheStamp` (database id,
generation, change id) it was built at and a checksum of the file (:mod:`semhash.caches.files`). A file
from another database or another state, or one that does not match its sidecar, is not loaded: the caller
(:mod:`semhash.caches.sync`) rebuilds it from SQLite. This module never imports the store.

Who reads it: ``semhash query --radius`` and ``--no-rerank`` (:meth:`CodeIndex.within`,
:meth:`CodeIndex.search`), ``semhash dedup --against`` (:meth:`CodeIndex.range_search`) and ``semhash info``
(whether it is fresh). The default ranked query takes its Hamming pool from the codes in the vector cache
(:func:`semhash.caches.scan.hamming_pool`) and does not search this file.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from semhash.caches.files import (
    CacheStamp,
    checksum,
    drop_sidecar,
    read_sidecar,
    sidecar_path,
    write_atomically,
    write_sidecar,
)
from semhash.errors import CorruptIndexError
from semhash.fileio import read_regular, regular_stat


def faiss_path_for(db_path: str | Path) -> Path:
    """Where the faiss file of a database lives."""
    return Path(f"{db_path}.faiss")


@contextmanager
def _threads_for(n_queries: int) -> Iterator[None]:
    """One OpenMP thread for small query batches.

    faiss parallelises a binary scan over queries; for one query the thread team only adds
    synchronisation, and on a busy 2-core machine that made a single search 200-400x slower (measured with
    ``benchmarks/bench_engine.py --skip-index``; see BENCHMARKS.md). Large batches keep every thread.
    """
    if n_queries >= 16:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


@dataclass
class CodeIndex:
    """Packed codes searchable by Hamming distance, with SQLite ids."""

    index: faiss.IndexBinaryIDMap2
    bits: int

    @classmethod
    def build(cls, ids: np.ndarray, packed: np.ndarray, bits: int) -> CodeIndex:
        """Index ``(n, bits // 8)`` uint8 codes under int64 ``ids``."""
        index = faiss.IndexBinaryIDMap2(faiss.IndexBinaryFlat(bits))
        if len(ids):
            index.add_with_ids(np.ascontiguousarray(packed, dtype=np.uint8), np.ascontiguousarray(ids, np.int64))
        return cls(index, bits)

    @property
    def size(self) -> int:
        """Number of indexed codes."""
        return int(self.index.ntotal)

    def save(self, path: str | Path, stamp: CacheStamp) -> None:
        """Write the index, then its sidecar, each atomically (a temporary name, then a rename).

        The old sidecar is removed first, so a crash between the two writes leaves a file without a
        sidecar (rebuilt), never a sidecar that vouches for the wrong file.

        Raises:
            OSError: the file could not be written (a full disk, a read-only folder).
        """
        path = Path(path)
        data = faiss.serialize_index_binary(self.index).tobytes()
        drop_sidecar(path)
        write_atomically(path, data)
        meta = {**stamp.fields(), "bits": self.bits, "count": self.size, "bytes": len(data), "checksum": checksum(data)}
        write_sidecar(path, meta)

    @classmethod
    def load(cls, path: str | Path, stamp: CacheStamp, bits: int) -> CodeIndex | None:
        """The saved index if it was built from the database state ``stamp`` with ``bits``-bit codes.

        ``None`` (the caller rebuilds) when the file or its sidecar is missing, or the sidecar names another
        database or state, or the file is not the one the sidecar describes (its size or checksum differ).

        Raises:
            CorruptIndexError: the file matches its sidecar's checksum, but faiss cannot read it.
        """
        path = Path(path)
        meta = read_sidecar(path)
        try:
            # Regular files only, and never waited on: a FIFO in their place is a damaged cache, rebuilt.
            size = regular_stat(path).st_size
        except OSError:
            return None
        if meta is None or not stamp.matches(meta) or meta.get("bits") != bits:
            return None
        if meta.get("bytes") != size:
            return None
        try:
            data = read_regular(path, size)
        except OSError:
            return None
        if checksum(data) != meta.get("checksum"):
            return None  # another file beside this sidecar, or a damaged one: rebuild
        try:
            index = faiss.deserialize_index_binary(np.frombuffer(data, dtype=np.uint8))
        except RuntimeError as exc:
            raise CorruptIndexError(
                f"the faiss index {path} is corrupt: delete it (and {sidecar_path(path).name}); "
                "it is rebuilt from the database on the next command"
            ) from exc
        # The concrete class comes back; anything else is not one of our files.
        if not isinstance(index, faiss.IndexBinaryIDMap2) or index.ntotal != meta.get("count") or index.d != bits:
            return None
        return cls(index, bits)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest codes of each packed query: ``(distances, ids)``, both ``(nq, k')``.

        Ties are broken by id: every code at the k-th distance is considered and the smallest ids win,
        so results never depend on faiss's scan order. ``k' = min(k, size)``.
        """
        queries = np.ascontiguousarray(queries, dtype=np.uint8)
        k = min(k, self.size)
        if k == 0:
            return np.zeros((len(queries), 0), np.int32), np.zeros((len(queries), 0), np.int64)
        probe = min(k + 1, self.size)
        with _threads_for(len(queries)):
            dist, ids = self.index.search(queries, probe)
        out_d = np.empty((len(queries), k), np.int32)
        out_i = np.empty((len(queries), k), np.int64)
        for row in range(len(queries)):
            kth = dist[row, k - 1]
            if probe > k and dist[row, k] == kth:
                # Ties straddle the cut: fetch every code within the k-th distance and sort by (distance, id).
                row_ids, row_d = self.within(queries[row : row + 1], int(kth))
            else:
                row_ids, row_d = ids[row, :k], dist[row, :k]
            order = np.lexsort((row_ids, row_d))[:k]
            out_d[row], out_i[row] = row_d[order], row_ids[order]
        return out_d, out_i

    def within(self, query: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
        """Every code at Hamming distance ``<= radius`` of one packed query: ``(ids, distances)``.

        faiss's binary range search keeps distances strictly below its threshold, hence ``radius + 1``.
        """
        if self.size == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int32)
        with _threads_for(1):
            lims, dist, ids = self.index.range_search(np.ascontiguousarray(query, dtype=np.uint8), radius + 1)
        return ids[lims[0] : lims[1]].astype(np.int64), dist[lims[0] : lims[1]].astype(np.int32)

    def range_search(self, queries: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Batched form of :meth:`within`: faiss's ``(lims, distances, ids)`` for ``<= radius``."""
        if self.size == 0:
            return np.zeros(len(queries) + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int64)
        with _threads_for(len(queries)):
            return self.index.range_search(np.ascontiguousarray(queries, dtype=np.uint8), radius + 1)
