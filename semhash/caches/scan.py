"""The numpy searches over the vector cache's rows: the Hamming pool over its codes and the cosine scans.

:class:`~semhash.caches.vectors.VectorCache` (the file format) holds the rows; these functions search them
and its methods (``nearest``, ``cosines_at``, ``cosines``, ``scan``) are their face:

* :func:`hamming_pool`: the ``pool`` codes nearest to a query code, ties by id, the candidate stage of a
  default ranked query. The same set as a faiss top-``pool`` over ``<db>.faiss``
  (:meth:`semhash.caches.hamming.CodeIndex.search`) in two numpy passes: with faiss's heap-based top-``pool``
  and its tie resolution instead, the whole rerank stage took 2-2.6x longer at pools of 2,000-10,000
  (``benchmarks/bench_retention.py``, the ``faiss:N`` rows).
* :func:`dot`, :func:`top_cosines`: cosines of a query with rows, and the exact top ``k`` over every row.

No faiss, no store.
"""

from __future__ import annotations

import numpy as np

#: Rows scored at once by a full scan (:func:`top_cosines`).
SCAN_BLOCK = 16384


def pool_radius(dist: np.ndarray, pool: int, bits: int) -> int:
    """The smallest radius ``r`` with at least ``pool`` distances ``<= r`` (``pool`` must be reachable by ``bits``).

    A binary search of counts (six passes of ``count_nonzero`` at 32 bits), not a histogram: ``np.bincount``
    widens the uint8 distances to int64 first, which at 10^6 rows cost 2.2 ms against 0.05 ms a count.
    """
    low, high = 0, bits
    while low < high:
        middle = (low + high) // 2
        if np.count_nonzero(dist <= middle) >= pool:
            high = middle
        else:
            low = middle + 1
    return low


def hamming_pool(
    codes: np.ndarray, code: int, pool: int, bits: int, exclude_rows: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``pool`` rows of ``codes`` nearest to ``code`` by Hamming distance, ties by row: ``(rows, distances)``.

    Rows come in ascending order (id order in the vector cache, which also reads its memory map front to
    back): the radius ``r`` that holds the pool (:func:`pool_radius`), then every row closer than ``r`` and
    the lowest rows at ``r``.

    Args:
        codes: unsigned codes, one per row (uint32 up to 32 bits, else uint64).
        code: the query code as an unsigned int (:func:`semhash.codes.packed_to_ints`).
        pool: how many rows.
        bits: code length.
        exclude_rows: rows left out (the query document itself).
    """
    dist = np.bitwise_count(codes ^ codes.dtype.type(code))  # uint8
    excluded = 0
    if exclude_rows is not None:
        dist[exclude_rows] = bits + 1  # beyond any radius the pool can need
        excluded = len(exclude_rows)
    pool = min(pool, len(codes) - excluded)
    if pool <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int32)
    radius = pool_radius(dist, pool, bits)
    rows = np.flatnonzero(dist <= radius)
    near = dist[rows]
    at_edge = near == radius
    room = pool - (len(rows) - int(np.count_nonzero(at_edge)))  # how many rows at the radius fit
    keep = ~at_edge | (np.cumsum(at_edge) <= room)
    return rows[keep], near[keep].astype(np.int32)


def dot(rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    """float32 dot products of rows with a query.

    ``einsum``, not ``@``: a matrix-vector product of a few thousand rows makes OpenBLAS start its thread
    team, which on a busy 2-core machine cost 10-15 ms per query instead of a fraction of one.
    """
    return np.einsum("ij,j->i", rows, np.asarray(query, dtype=np.float32))


def top_cosines(
    matrix: np.ndarray, ids: np.ndarray, query: np.ndarray, k: int, exclude: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top ``k`` by cosine over every row of ``matrix``: ``(ids, cosines)``, best first, ties by id.

    Scored in blocks of float32 so memory stays bounded whatever the number of rows (a memory map is read
    front to back once).
    """
    size = len(ids)
    query = np.asarray(query, dtype=np.float32)
    scores = np.empty(size, np.float32)
    for start in range(0, size, SCAN_BLOCK):
        scores[start : start + SCAN_BLOCK] = dot(matrix[start : start + SCAN_BLOCK], query)
    if exclude is not None:
        scores[ids == exclude] = -np.inf
    keep = min(k, size)
    if keep == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    top = np.argpartition(-scores, keep - 1)[:keep] if keep < size else np.arange(size)
    # every row tied with the k-th score competes, so ties are broken by id, never by partition order
    top = np.flatnonzero(scores >= scores[top].min())
    order = np.lexsort((ids[top], -scores[top]))[:keep]
    chosen = top[order]
    finite = np.isfinite(scores[chosen])
    return ids[chosen][finite], scores[chosen][finite]
