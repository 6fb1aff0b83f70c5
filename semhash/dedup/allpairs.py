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

from collections.abc import Callable, Iterable, Iterator

import numpy as np

from semhash.dedup.verify import FINE_BINS, fine_bin

#: Bytes of one block's similarity matrix (float32).
BLOCK_BYTES = 64 << 20


#: One band's pairs ``(i, j, cosine, fine histogram)``: rows ``i < j`` at or above the floor, sorted.
Band = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
#: Runs bands of rows: ``runner(matrix, bands, floor)`` yields :func:`band_pairs` of each ``(start, stop)``, in the
#: order given. :func:`run_bands_here` in this process; :mod:`semhash.dedup.distributed` on Ray tasks.
BandRunner = Callable[[np.ndarray, Iterable[tuple[int, int]], float], Iterator[Band]]


def all_pairs(
    matrix: np.ndarray, floor: float, block_bytes: int = BLOCK_BYTES, runner: BandRunner | None = None
) -> Band:
    """Every pair ``i < j`` of rows of ``matrix`` whose cosine is at least ``floor``.

    Args:
        matrix: ``(n, dim)`` unit embeddings, one row per document.
        floor: pairs with a lower cosine are only counted in the histogram.
        block_bytes: memory of one block's similarity matrix.
        runner: where the bands' products run (default :func:`run_bands_here`, this process); every runner
            computes the same bands, so the result is the same.

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
    bands = ((start, min(n, start + rows)) for start in range(0, n, rows))
    for i, j, cos, counts in (runner or run_bands_here)(x, bands, floor):
        fine += counts
        out_i.append(i)
        out_j.append(j)
        out_c.append(cos)
    if not out_i:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0, np.float32), fine
    i, j = np.concatenate(out_i).astype(np.int64), np.concatenate(out_j).astype(np.int64)
    cos = np.clip(np.concatenate(out_c), -1.0, 1.0).astype(np.float32)
    return i, j, cos, fine  # row-major nonzero per block, blocks in row order: already sorted by (i, j)


def run_bands_here(x: np.ndarray, bands: Iterable[tuple[int, int]], floor: float) -> Iterator[Band]:
    """The default :data:`BandRunner`: each band in this process, one after the other."""
    for start, stop in bands:
        yield band_pairs(x, start, stop, floor)


def band_pairs(x: np.ndarray, start: int, stop: int, floor: float) -> Band:
    """Rows ``start:stop`` against every row from ``start`` on: the pairs at or above ``floor``, and the histogram.

    Only ``x[start:]`` is read, so a Ray task computes it bit for bit as this process does (same shapes).
    """
    fine = np.zeros(FINE_BINS, np.int64)
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
    return (start + r).astype(np.int64), (start + c).astype(np.int64), sims[r, c], fine
