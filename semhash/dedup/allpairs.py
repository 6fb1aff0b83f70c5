"""The all-pairs candidate stage: the cosine of every pair of stored embeddings, block by block (BLAS).

On small collections the learned 32-bit codes are the weak link of deduplication, not the cost: at radius 3
they hold 59% of MRPC's paraphrase pairs, while computing every pair's cosine takes one matrix product.
So up to :data:`semhash.dedup.options.EXACT_LIMIT` documents ``neighbours="auto"`` verifies *all* pairs
here: the result is exactly all-pairs cosine at the threshold (candidate recall 1), and no code is
consulted except to report each kept pair's Hamming distance.

Memory stays bounded: rows are taken in blocks whose similarity matrix (against the rows from the block
onwards, the upper triangle) fits ``block_bytes``; only pairs at or above the floor are kept, the others are
counted in the fine histogram, like the code stage's.
"""

from __future__ import annotations

import numpy as np

from semhash.dedup.verify import FINE_BINS, fine_bin

#: Bytes of one block's similarity matrix (float32).
BLOCK_BYTES = 64 << 20


def all_pairs(
    matrix: np.ndarray, floor: float, block_bytes: int = BLOCK_BYTES
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every pair ``i < j`` of rows of ``matrix`` whose cosine is at least ``floor``.

    Args:
        matrix: ``(n, dim)`` unit embeddings, one row per document.
        floor: pairs with a lower cosine are only counted in the histogram.
        block_bytes: memory of one block's similarity matrix.

    Returns:
        ``(i, j, cosine, fine histogram of all n (n - 1) / 2 pairs)``, pairs sorted by ``(i, j)``.
    """
    x = np.ascontiguousarray(matrix, dtype=np.float32)
    n = len(x)
    fine = np.zeros(FINE_BINS, np.int64)
    out_i: list[np.ndarray] = []
    out_j: list[np.ndarray] = []
    out_c: list[np.ndarray] = []
    rows = max(16, min(n, block_bytes // (4 * max(n, 1))))
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        sims = x[start:stop] @ x[start:].T  # row r against columns start.. (the upper triangle and the diagonal)
        width = stop - start
        upper = np.triu_indices(width, 1)
        diagonal = sims[:, :width][upper]
        fine += np.bincount(fine_bin(diagonal), minlength=FINE_BINS)
        rest = sims[:, width:]
        if rest.size:
            fine += np.bincount(fine_bin(rest.ravel()), minlength=FINE_BINS)
        r, c = np.nonzero(sims >= floor)
        keep = c > r  # column c is row start + c: strictly after row start + r
        r, c = r[keep], c[keep]
        out_i.append(start + r)
        out_j.append(start + c)
        out_c.append(sims[r, c])
    if not out_i:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0, np.float32), fine
    i, j = np.concatenate(out_i).astype(np.int64), np.concatenate(out_j).astype(np.int64)
    cos = np.clip(np.concatenate(out_c), -1.0, 1.0).astype(np.float32)
    return i, j, cos, fine  # row-major nonzero per block, blocks in row order: already sorted by (i, j)
