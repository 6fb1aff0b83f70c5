"""The float candidate stage: a faiss IVF index over the stored embeddings, a rebuildable cache (issue 9).

With 32-bit codes a short query's exact cosine top 10 is spread over about a tenth of a large index by
Hamming rank, so a Hamming pool that finds it costs as much as the exact scan (10^6 documents: ~100 ms).
An inverted-file index over the embeddings themselves finds it by looking at a few percent of the rows:
k-means cells (``nlist`` of them, about ``sqrt(n)``), 8-bit scalar-quantised vectors in each cell, and a
query scans the ``nprobe`` cells nearest to it. Its top ``m`` join the (smaller) Hamming pool and the
union is re-ranked by exact cosine from the float32 cache (:mod:`semhash.caches.vectors`), so the quantisation
never decides the final order; it only chooses candidates. :mod:`semhash.search` says when it is used.
At 10^6 documents of 384 dimensions the file is 375 MiB (held in memory once loaded), built in 30-40 s
on 2 cores and loaded in 0.6 s.

The file ``<db>.ivf`` sits beside the database, with ``<db>.ivf.json`` recording the
:class:`~semhash.caches.files.CacheStamp` it was built at, the dimension, the row count, ``nlist``, a checksum
of the file and its stat key (:mod:`semhash.caches.files`). Like the other caches it is never trusted
blindly: a missing, foreign, stale, truncated or altered file is not loaded, and the caller rebuilds it from
the vector cache. This module never imports the store.

**Two IVF builders.** :func:`semhash.neighbourhood.inner_product_index` (the kNN distance of ``outliers`` and
the drift check, and ``dedup --neighbours``) builds another IVF, on other rules, and they are kept apart on
purpose: making one builder would change every number the other one gives. Here: ``IndexIVFScalarQuantizer``
(8-bit; the exact cosine re-ranks anyway), ``nlist`` the power of two nearest ``sqrt(n)`` (at least 16),
64 training points a cell, k-means seeded with ``seed``, faiss's default rounds, a cache saved to disk.
There: ``IndexIVFFlat`` (exact inner products: its distances are the result), ``nlist = int(4 sqrt(m))``,
40 points a cell (fewer for dedup), faiss's default k-means seed, an index in memory only, and flat below
20,000 rows. What they share, the seeded training sample, is one function: :func:`training_sample`.
"""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from semhash.caches.files import (
    CacheStamp,
    atomic_file,
    checksum,
    drop_sidecar,
    file_checksum,
    read_sidecar,
    stat_key,
    write_sidecar,
)
from semhash.fileio import regular_stat

#: k-means training points per cell (faiss warns below 39); a sample, so training stays seconds at 10^6.
_TRAIN_PER_LIST = 64
#: Rows added to the index at once while it is built (bounded memory for the float32 copy faiss takes).
_ADD_BLOCK = 65536
_FORMAT = "ivf-sq8-ip/1"


def ivf_path_for(db_path: str | Path) -> Path:
    """Where the IVF cache of a database lives."""
    return Path(f"{db_path}.ivf")


def nlist_for(size: int) -> int:
    """Number of k-means cells for ``size`` rows: the power of two nearest ``sqrt(size)`` (at least 16).

    About ``sqrt(n)`` rows a cell keeps the probe's two costs in balance: comparing the query with every
    centroid and scanning the rows of the probed cells.
    """
    return int(2 ** round(np.log2(max(16.0, np.sqrt(max(size, 1))))))


def training_sample(size: int, per_list: int, nlist: int, seed: int) -> np.ndarray:
    """Sorted row numbers of a seeded k-means training sample: ``min(size, per_list * nlist)`` rows of ``size``.

    The one sampling rule of both IVF builders (this module's and :func:`semhash.neighbourhood.inner_product_index`);
    sorted, so a memory map is read front to back.
    """
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(size, min(size, per_list * nlist), replace=False))


def _max_bytes(count: int, dim: int, nlist: int) -> int:
    """An upper bound on the serialised size of ``count`` rows in ``nlist`` cells (codes, ids, centroids, headers)."""
    return count * (dim + 16) + nlist * (dim * 4 + 64) + 2**20


class EmbeddingIVF:
    """Unit embeddings in a faiss ``IndexIVFScalarQuantizer`` (inner product, 8-bit), with document ids.

    Read-only once built: searches pass their ``nprobe`` as per-call parameters, so one index may be
    searched by many threads at once.
    """

    def __init__(self, index: faiss.IndexIVFScalarQuantizer) -> None:
        """Wrap a trained, filled index (use :meth:`build` or :meth:`load`)."""
        self.index = index

    @property
    def size(self) -> int:
        """Number of indexed rows."""
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return int(self.index.d)

    @property
    def nlist(self) -> int:
        """Number of k-means cells."""
        return int(self.index.nlist)

    @classmethod
    def build(cls, ids: np.ndarray, matrix: np.ndarray, nlist: int | None = None, seed: int = 0) -> EmbeddingIVF:
        """Train the cells on a sample of ``matrix`` and add every row under its id.

        Args:
            ids: int64 document ids, one per row.
            matrix: ``(len(ids), dim)`` unit embeddings (a memory map is read in blocks).
            nlist: cells (default :func:`nlist_for` of the row count, never more than the rows).
            seed: the training sample's and k-means's seed, so a rebuild gives the same index.
        """
        size, dim = matrix.shape
        nlist = max(1, min(nlist or nlist_for(size), size))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFScalarQuantizer(
            quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        index.cp.seed = seed
        if size:
            sample = training_sample(size, _TRAIN_PER_LIST, nlist, seed)
            index.train(np.ascontiguousarray(matrix[sample], dtype=np.float32))
            for start in range(0, size, _ADD_BLOCK):
                block = np.ascontiguousarray(matrix[start : start + _ADD_BLOCK], dtype=np.float32)
                index.add_with_ids(block, np.ascontiguousarray(ids[start : start + _ADD_BLOCK], dtype=np.int64))
        return cls(index)

    def probes_for(self, scan_rows: int) -> int:
        """How many cells hold about ``scan_rows`` rows (at least one, at most every cell)."""
        if self.size == 0:
            return 1
        return max(1, min(self.nlist, round(scan_rows * self.nlist / self.size)))

    def search(self, query: np.ndarray, m: int, nprobe: int) -> np.ndarray:
        """Ids of the (about) ``m`` rows with the largest quantised inner product, from ``nprobe`` cells.

        One OpenMP thread: for one query faiss's thread team only adds synchronisation (see
        :func:`semhash.caches.hamming._threads_for`).
        """
        if self.size == 0 or m <= 0:
            return np.zeros(0, np.int64)
        params = faiss.SearchParametersIVF()
        params.nprobe = max(1, min(nprobe, self.nlist))
        before = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            _, ids = self.index.search(
                np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1), min(m, self.size), params=params
            )
        finally:
            faiss.omp_set_num_threads(before)
        found = ids[0]
        return found[found >= 0].astype(np.int64)

    # -- the files ---------------------------------------------------------------------------------
    def save(self, path: str | Path, stamp: CacheStamp) -> None:
        """Write the index, then its sidecar, each under a temporary name and renamed.

        The old sidecar goes first, so a crash leaves a file without a sidecar (rebuilt), never a
        sidecar that vouches for another file.

        Raises:
            OSError: a file could not be written (a full disk, a read-only folder).
        """
        path = Path(path)
        data = faiss.serialize_index(self.index)
        drop_sidecar(path)
        with atomic_file(path) as handle:
            data.tofile(handle)
        # The file's stat as it stands now (the rename set its ctime): a later load that finds it
        # unchanged skips the checksum (see :meth:`load`).
        written = stat_key(path.stat())
        meta = {
            "format": _FORMAT,
            **stamp.fields(),
            "dim": self.dim,
            "count": self.size,
            "nlist": self.nlist,
            "bytes": int(data.nbytes),
            "checksum": checksum(data.data),  # the buffer itself: no copy of a file that reaches 375 MiB
            "stat": written,
        }
        write_sidecar(path, meta)

    @classmethod
    def load(cls, path: str | Path, stamp: CacheStamp, dim: int, count: int) -> EmbeddingIVF | None:
        """The saved index if it was built from the database state ``stamp`` with ``count`` ``dim``-d rows.

        ``None`` (the caller rebuilds) when a file is missing, the sidecar names another database, state,
        dimension or count, the file is not the one the sidecar describes (size, checksum), or faiss cannot
        read it or reads something else than this kind of index.
        """
        path = Path(path)
        meta = read_sidecar(path)
        if meta is None or meta.get("format") != _FORMAT or not stamp.matches(meta):
            return None
        size, nlist = meta.get("bytes"), meta.get("nlist")
        if meta.get("dim") != dim or meta.get("count") != count or not isinstance(size, int) or size <= 0:
            return None
        if not isinstance(nlist, int) or not 0 < nlist <= max(count, 1) or size > _max_bytes(count, dim, nlist):
            return None  # larger than any index of these rows: not ours, and not read
        try:
            # a regular file (never a FIFO faiss would wait on, nor a link), no larger than the sidecar says
            unchanged = meta.get("stat") == stat_key(regular_stat(path, size))
        except OSError:
            return None
        # A file whose size, times and inode are the ones recorded when it was written is that file (any
        # rewrite changes its ctime, which no user call can set back), so only a changed one is hashed: the
        # 38 MiB checksum was a tenth of a cold query at 10^5 documents. As with the checksum, this guards
        # against damage, not against someone who may write the folder (they could write the sidecar too).
        if not unchanged and file_checksum(path, size) != meta.get("checksum"):
            return None
        try:
            index = faiss.read_index(str(path))
        except RuntimeError:
            return None  # matches its checksum yet unreadable: not a file we wrote; rebuild it
        if (
            not isinstance(index, faiss.IndexIVFScalarQuantizer)
            or index.ntotal != count
            or index.d != dim
            or index.metric_type != faiss.METRIC_INNER_PRODUCT
        ):
            return None
        return cls(index)
