"""Candidates from the stored embeddings themselves: each document's nearest neighbours (faiss).

The 32-bit search codes are coarse for deduplication: at radius 3 they hold 59% of MRPC's paraphrase
pairs (89% of 20NG's edited copies). ``--neighbours K`` adds this stage to the code join (``auto`` uses
:mod:`semhash.dedup.cells` instead above ``EXACT_LIMIT``). With ``neighbours = k > 0`` every document's ``k``
nearest stored embeddings (inner product of unit vectors = cosine) are candidates too, already verified (the search
returns their cosine). A pair is a code-stage candidate exactly when its codes are within the radius, so
the pipeline adds the neighbour pairs whose codes are farther apart: the two lists never overlap.
Exact (``IndexFlatIP``) up to ``FLAT_LIMIT`` documents; above, an inverted file (``IndexIVFFlat``,
``4 sqrt(n)`` lists, ``NPROBE`` lists probed per query), trained on a seeded sample. Queries run in
batches, so memory is the embedding matrix (held anyway for verification) plus one batch of results.

A document with more than ``k`` near-duplicates keeps only ``k`` of them as ANN candidates; the others
are still reached through the clusters (centre or components) and through the code stage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from semhash.neighbourhood import inner_product_index

if TYPE_CHECKING:
    import faiss

#: Up to this many documents the neighbour search is exact.
FLAT_LIMIT = 50_000
#: Inverted lists probed per query above ``FLAT_LIMIT``.
NPROBE = 8
_BATCH = 8192


def neighbour_pairs(matrix: np.ndarray, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct pairs ``(i, j)``, ``i < j``, where ``j`` is among ``i``'s ``k`` nearest rows or the reverse.

    Args:
        matrix: ``(n, dim)`` unit embeddings, one row per document.
        k: neighbours per document.
        seed: seed of the IVF training sample.

    Returns:
        ``(i, j, cosine)`` sorted by ``(i, j)``.
    """
    n = len(matrix)
    if n < 2 or k < 1:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0, np.float32)
    x = np.ascontiguousarray(matrix, dtype=np.float32)
    index = _index(x, seed)
    want = min(k + 1, n)
    parts_i, parts_j, parts_c = [], [], []
    for start in range(0, n, _BATCH):
        sims, found = index.search(x[start : start + _BATCH], want)
        rows = np.repeat(np.arange(start, start + len(sims)), want)
        cols, flat = found.ravel(), sims.ravel()
        keep = (cols >= 0) & (cols != rows)
        parts_i.append(np.minimum(rows[keep], cols[keep]))
        parts_j.append(np.maximum(rows[keep], cols[keep]))
        parts_c.append(flat[keep])
    i, j, c = np.concatenate(parts_i), np.concatenate(parts_j), np.concatenate(parts_c)
    key, first = np.unique(i.astype(np.int64) * n + j, return_index=True)
    return key // n, key % n, np.clip(c[first], -1.0, 1.0).astype(np.float32)


def _index(x: np.ndarray, seed: int) -> faiss.Index:
    # k-means is the costly part of building: 16 points per list and 10 rounds place the lists well enough
    # for a probe of NPROBE lists.
    return inner_product_index(x, seed, flat_limit=FLAT_LIMIT, nprobe=NPROBE, points_per_list=16, kmeans_rounds=10)
