"""The rerank vectors: a memory-mapped float32 copy of the stored embeddings, a rebuildable cache.

A query re-orders thousands of Hamming candidates by cosine; reading their embeddings from SQLite rows
(one blob each) costs far more than the dot products. So the embeddings of every encoded document are
kept beside the database as raw little-endian float32 rows, in id order, memory-mapped at search time:

* ``<db>.vectors``: ``count * dim`` float32 values, row ``r`` is the document ``ids[r]``;
* ``<db>.vectors.ids``: ``count`` pairs of int64, the document id (sorted: a faiss id, which is the
  SQLite rowid, finds its row by binary search) and its code (SQLite's integer form);
* ``<db>.vectors.json``: the database state it was built from (the same
  :class:`~semhash.caches.files.CacheStamp` as the faiss file: database id, generation, change id),
  ``dim``, ``bits``, ``count``, and each file's checksum (the vector file's is sampled above 64 MiB, so a
  cold query on a 10^6-document index does not read 1.5 GB to check it; its exact size, and the full
  id/code file's checksum, are always checked).

The codes ride along so that the rerank's candidate stage is one numpy pass over them
(:meth:`VectorCache.nearest`, :func:`semhash.caches.scan.hamming_pool`: XOR, popcount, a binary search of
counts for the radius that holds the pool, ties at that radius by id); faiss's heap-based top-``pool``, with
its own tie resolution, made the whole rerank stage 2-2.6x slower at pools of 2,000-10,000
(``benchmarks/bench_retention.py``, the ``faiss:N`` rows). This module is the format (the files, their
checks, the rows found by id); the searches over the rows are :mod:`semhash.caches.scan`, and the sidecar,
checksum and atomic writes :mod:`semhash.caches.files`.

Like the faiss file it is never trusted blindly: a missing, foreign, stale, truncated or altered cache
(sidecar, size, dimension, count, checksum, id order) is not loaded, and the caller rebuilds it from
SQLite. Why float32 and not float16 (half the bytes): numpy converts float16 to float32 with a scalar
loop, which on our 2-core CPU took 10x longer than gathering the same rows in float32 (10,000 rows:
~6-10 ms against ~0.6 ms), and the conversion, not the memory, was what a query paid; float32 also makes
the cached cosines exactly the ones SQLite's rows give. The file is as large as the database's own
embedding column (``4 * dim`` bytes a document). This module never imports the store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semhash.caches.files import (
    CacheStamp,
    atomic_file,
    drop_sidecar,
    file_checksum,
    read_sidecar,
    write_sidecar,
)
from semhash.caches.scan import dot, hamming_pool, top_cosines
from semhash.fileio import open_regular, read_regular, regular_stat

_DTYPE = np.dtype("<f4")
_ID_DTYPE = np.dtype("<i8")
_PAIR = 2 * _ID_DTYPE.itemsize  # id and code, per document


def _unsigned(sql_codes: np.ndarray, bits: int) -> np.ndarray:
    """Codes in SQLite's signed int64 form as unsigned ints of the query's packing (uint32 up to 32 bits)."""
    as_u64 = np.asarray(sql_codes, dtype=np.int64).view(np.uint64) & np.uint64((1 << bits) - 1)
    return as_u64.astype(np.uint32) if bits <= 32 else as_u64


def vectors_path_for(db_path: str | Path) -> Path:
    """Where the rerank vectors of a database live."""
    return Path(f"{db_path}.vectors")


def _ids_path(path: Path) -> Path:
    return Path(f"{path}.ids")


#: Up to this size the vector file's checksum reads all of it; above, 256 evenly spaced 64 KiB blocks
#: (16 MiB) plus the exact size: verifying a 1.5 GB cache in full would add seconds to every cold query.
_FULL_CHECKSUM_BYTES = 64 * 2**20
_SAMPLE_BLOCKS, _SAMPLE_BYTES = 256, 64 * 1024


def _vectors_checksum(path: Path, size: int) -> str | None:
    """blake2b of the vector file (sampled when large, see above); ``None`` when it is not ``size`` bytes."""
    try:
        if regular_stat(path).st_size != size:
            return None
        if size <= _FULL_CHECKSUM_BYTES:
            return file_checksum(path, size)
        digest = hashlib.blake2b(digest_size=16)
        digest.update(str(size).encode())
        with open_regular(path, size) as handle:
            for block in range(_SAMPLE_BLOCKS):
                handle.seek((size - _SAMPLE_BYTES) * block // (_SAMPLE_BLOCKS - 1))
                digest.update(handle.read(_SAMPLE_BYTES))
        return "sampled:" + digest.hexdigest()
    except OSError:
        return None


@dataclass(frozen=True)
class VectorCache:
    """Unit embeddings of the encoded documents as float32 rows, found by document id.

    Attributes:
        ids: sorted int64 document ids, one per row.
        matrix: ``(len(ids), dim)`` float32, memory-mapped (or in memory when it could not be saved).
        codes: each row's code as an unsigned int (uint32 up to 32 bits, else uint64).
        bits: code length.
    """

    ids: np.ndarray
    matrix: np.ndarray
    codes: np.ndarray
    bits: int

    @property
    def size(self) -> int:
        """Number of rows."""
        return len(self.ids)

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return int(self.matrix.shape[1])

    def rows(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(present, rows)``: which ``ids`` have a row (a bool mask) and the row numbers of those that do."""
        ids = np.asarray(ids, dtype=np.int64)
        if self.size == 0:
            return np.zeros(len(ids), bool), np.zeros(0, np.int64)
        pos = np.searchsorted(self.ids, ids)
        clipped = np.minimum(pos, self.size - 1)
        present = self.ids[clipped] == ids
        return present, clipped[present]

    def distances(self, code: int, rows: np.ndarray) -> np.ndarray:
        """Hamming distances of a query code (an unsigned int, see :func:`semhash.codes.packed_to_ints`) to rows."""
        return np.bitwise_count(self.codes[rows] ^ self.codes.dtype.type(code)).astype(np.int32)

    def nearest(self, code: int, pool: int, exclude: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``pool`` rows nearest to ``code`` by Hamming distance, ties by id: ``(rows, distances)``.

        Rows come in ascending order (id order, which also reads the memory map front to back). The same
        set as :meth:`semhash.caches.hamming.CodeIndex.search` of ``pool`` (see
        :func:`semhash.caches.scan.hamming_pool`).
        """
        exclude_rows = self.rows(np.array([exclude]))[1] if exclude is not None else None
        return hamming_pool(self.codes, code, pool, self.bits, exclude_rows)

    def cosines_at(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Cosines of the query with rows (ascending row numbers read the map front to back)."""
        if not len(rows):
            return np.zeros(0, np.float32)
        return dot(self.matrix[rows], query)

    def cosines(self, query: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(present, cosines)`` of the query with the documents ``ids`` that have a row.

        The rows are gathered from the memory map (``len(ids) * dim * 4`` bytes).
        """
        present, rows = self.rows(ids)
        if not len(rows):
            return present, np.zeros(0, np.float32)
        # Sorted row numbers read the map front to back; the scores are put back in the caller's order.
        order = np.argsort(rows, kind="stable")
        scores = np.empty(len(rows), np.float32)
        scores[order] = dot(self.matrix[rows[order]], query)
        return present, scores

    def scan(self, query: np.ndarray, k: int, exclude: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Exact top ``k`` by cosine over every row: ``(ids, cosines)``, best first, ties by id.

        Scored in blocks of float32 so memory stays bounded whatever the index size
        (:func:`semhash.caches.scan.top_cosines`).
        """
        return top_cosines(self.matrix, self.ids, query, k, exclude)

    # -- the files ---------------------------------------------------------------------------------
    @classmethod
    def write(
        cls,
        path: str | Path,
        stamp: CacheStamp,
        dim: int,
        bits: int,
        chunks: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
    ) -> VectorCache:
        """Write ``(ids, codes, (n, dim) float32)`` chunks (ascending ids, SQLite codes) and memory-map them.

        The old sidecar goes first and the new one last, each file is written under a temporary name and
        renamed (:mod:`semhash.caches.files`), so a crash leaves no sidecar (a rebuild), never one that
        vouches for other files.

        Raises:
            OSError: a file could not be written (a full disk, a read-only folder).
            ValueError: the chunks are not in ascending id order or have another dimension.
        """
        path = Path(path)
        ids_path = _ids_path(path)
        drop_sidecar(path)
        id_digest = hashlib.blake2b(digest_size=16)
        count, last = 0, None
        with atomic_file(path) as vectors_out, atomic_file(ids_path) as ids_out:
            for chunk_ids, chunk_codes, chunk in chunks:
                chunk_ids = np.ascontiguousarray(chunk_ids, dtype=_ID_DTYPE)
                if chunk.shape != (len(chunk_ids), dim):
                    raise ValueError(f"a chunk of shape {chunk.shape} for {len(chunk_ids)} ids of dimension {dim}")
                if len(chunk_ids) and (np.any(np.diff(chunk_ids) <= 0) or (last is not None and chunk_ids[0] <= last)):
                    raise ValueError("vector chunks must come in ascending id order")
                rows = np.ascontiguousarray(chunk, dtype=_DTYPE).tobytes()
                pairs = np.stack([chunk_ids, np.asarray(chunk_codes, dtype=_ID_DTYPE)], axis=1).astype(_ID_DTYPE)
                vectors_out.write(rows)
                ids_out.write(pairs.tobytes())
                id_digest.update(pairs.tobytes())
                count += len(chunk_ids)
                last = int(chunk_ids[-1]) if len(chunk_ids) else last
        meta = {
            **stamp.fields(),
            "dim": dim,
            "bits": bits,
            "count": count,
            "dtype": "float32",
            "vectors_checksum": _vectors_checksum(path, count * dim * _DTYPE.itemsize),
            "ids_checksum": id_digest.hexdigest(),
        }
        write_sidecar(path, meta)
        return cls._map(path, count, dim, bits)

    @classmethod
    def in_memory(cls, dim: int, bits: int, chunks: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> VectorCache:
        """The same rows held in memory (when the cache cannot be saved: a read-only folder, a full disk)."""
        parts = list(chunks)
        if not parts:
            return cls(np.zeros(0, np.int64), np.zeros((0, dim), _DTYPE), _unsigned(np.zeros(0, np.int64), bits), bits)
        ids = np.concatenate([p[0] for p in parts]).astype(np.int64)
        codes = np.concatenate([np.asarray(p[1], dtype=np.int64) for p in parts])
        matrix = np.concatenate([np.asarray(p[2], dtype=_DTYPE).reshape(-1, dim) for p in parts])
        order = np.argsort(ids, kind="stable")
        return cls(ids[order], matrix[order], _unsigned(codes[order], bits), bits)

    @classmethod
    def load(cls, path: str | Path, stamp: CacheStamp, dim: int, bits: int) -> VectorCache | None:
        """The saved cache if it was built from the database state ``stamp``, ``dim``-d embeddings, ``bits``-bit codes.

        ``None`` (the caller rebuilds) when a file is missing, the sidecar names another database, state or
        dimension, or a file's size or checksum is not what the sidecar says, or the ids are not ascending.
        """
        path = Path(path)
        meta = read_sidecar(path)
        if meta is None or not stamp.matches(meta) or meta.get("dim") != dim or meta.get("bits") != bits:
            return None
        count = meta.get("count")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0 or meta.get("dtype") != "float32":
            return None
        ids_path = _ids_path(path)
        ids_checksum = file_checksum(ids_path, count * _PAIR)
        if ids_checksum is None or ids_checksum != meta.get("ids_checksum"):
            return None
        checksum = _vectors_checksum(path, count * dim * _DTYPE.itemsize)
        if checksum is None or checksum != meta.get("vectors_checksum"):
            return None
        try:
            cache = cls._map(path, count, dim, bits)
        except (OSError, ValueError):  # replaced since it was checked (by a FIFO, a shorter file): rebuild
            return None
        if count > 1 and np.any(np.diff(cache.ids) <= 0):
            return None
        return cache

    @classmethod
    def _map(cls, path: Path, count: int, dim: int, bits: int) -> VectorCache:
        if count == 0:  # numpy cannot map an empty file
            return cls(np.zeros(0, np.int64), np.zeros((0, dim), _DTYPE), _unsigned(np.zeros(0, np.int64), bits), bits)
        size = count * _PAIR
        raw = read_regular(_ids_path(path), size)
        pairs = np.frombuffer(raw, dtype=_ID_DTYPE, count=2 * count).reshape(count, 2).astype(np.int64)
        with open_regular(path, count * dim * _DTYPE.itemsize) as handle:  # maps the file checked, not a name
            matrix = np.memmap(handle, dtype=_DTYPE, mode="r", shape=(count, dim))
        return cls(pairs[:, 0].copy(), matrix, _unsigned(pairs[:, 1], bits), bits)
