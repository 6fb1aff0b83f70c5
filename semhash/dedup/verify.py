"""Verification of candidate pairs: the cosine of their stored embeddings, block by block.

Pairs are never listed before verification: small code blocks (a few documents per code) are verified
pair by pair in one vectorised pass, large ones with one matrix product per distinct code against its own
and its neighbour codes' documents (BLAS), so coarse codes cost flops, not memory. Pairs below a floor are
only counted, in a fine histogram of all candidate cosines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from semhash.dedup.join import cross_groups, distinct_code_pairs

#: Code blocks with at most this many document pairs are verified together, pair by pair (vectorised).
SMALL_BLOCK = 16
#: Candidate pairs below this cosine (or below the threshold, if lower) are counted, not kept.
#: The histogram of candidate cosines is kept at this resolution, over [-1, 1].
FINE_BINS = 200


def fine_bin(cos: np.ndarray) -> np.ndarray:
    """The fine histogram bin (``0 .. FINE_BINS - 1``) of each cosine in ``cos``."""
    return np.clip(((cos.astype(np.float64) + 1.0) * (FINE_BINS / 2)).astype(np.int64), 0, FINE_BINS - 1)


@dataclass
class CodeBlocks:
    """Documents grouped by distinct code, and the pairs of distinct codes within the radius.

    Candidate pairs are never listed one by one before verification: each distinct code's documents are
    compared with its own and its neighbour codes' documents in one matrix product of stored embeddings
    (BLAS), and only pairs at or above a cosine floor are kept; the others are only counted in a
    histogram. Coarse codes (many documents per code) cost flops, not memory.
    """

    order: np.ndarray  # rows grouped by distinct code
    starts: np.ndarray
    counts: np.ndarray
    a: np.ndarray  # distinct-code pairs a < b within the radius, sorted by a
    b: np.ndarray
    dist: np.ndarray

    @classmethod
    def build(cls, codes: np.ndarray, bits: int, radius: int) -> CodeBlocks:
        """Group ``codes`` (SQLite int64 or uint64) and join the distinct ones within ``radius``."""
        arr = np.asarray(codes)
        unsigned = arr if arr.dtype == np.uint64 else arr.astype(np.int64).view(np.uint64)
        if bits < 64:
            unsigned = unsigned & np.uint64((1 << bits) - 1)
        uniq, inverse, counts = np.unique(unsigned, return_inverse=True, return_counts=True)
        order = np.argsort(inverse, kind="stable")
        a, b, dist = distinct_code_pairs(uniq, bits, radius)
        return cls(order, np.cumsum(counts) - counts, counts, a, b, dist)

    @property
    def candidate_count(self) -> int:
        """Pairs of documents within the radius (same code, or codes within the radius)."""
        c = self.counts.astype(np.int64)
        return int((c * (c - 1) // 2).sum() + (c[self.a] * c[self.b]).sum())

    def pairs_by_radius(self, radius: int) -> np.ndarray:
        """Candidate pairs of documents at each radius ``0..radius`` (cumulative), from one join."""
        c = self.counts.astype(np.int64)
        per_distance = np.bincount(self.dist.astype(np.int64), weights=c[self.a] * c[self.b], minlength=radius + 1)
        per_distance[0] += (c * (c - 1) // 2).sum()
        return np.cumsum(per_distance[: radius + 1]).astype(np.int64)

    def within(self, radius: int) -> CodeBlocks:
        """The same blocks with only the pairs of distinct codes within ``radius`` bits."""
        keep = self.dist <= radius
        return CodeBlocks(self.order, self.starts, self.counts, self.a[keep], self.b[keep], self.dist[keep])

    def largest_block_within(self, budget: int) -> int:
        """The largest code block size ``m`` such that the pairs among codes of at most ``m`` documents fit ``budget``.

        A pair of codes counts at the larger of its two block sizes; at least 1 (a code of one document has
        no pair of its own), so a cap never hides a whole collection.
        """
        c = self.counts.astype(np.int64)
        size = np.r_[c, np.maximum(c[self.a], c[self.b])]
        pairs = np.r_[c * (c - 1) // 2, c[self.a] * c[self.b]]
        order = np.argsort(size, kind="stable")
        size, total = size[order], np.cumsum(pairs[order])
        last = np.r_[size[1:] != size[:-1], True]  # the cumulative count once every pair of that size is in
        fits = np.flatnonzero(last & (total <= budget))
        return max(1, int(size[fits[-1]])) if len(fits) else 1

    def capped(self, largest: int) -> CodeBlocks:
        """The same blocks less every code with more than ``largest`` documents (its own and its pairs)."""
        counts = np.where(self.counts > largest, 0, self.counts)
        keep = (counts[self.a] > 0) & (counts[self.b] > 0)
        return CodeBlocks(self.order, self.starts, counts, self.a[keep], self.b[keep], self.dist[keep])

    def rows_with_candidates(self) -> np.ndarray:
        """Sorted rows of every document that has at least one candidate."""
        busy = self.counts > 1
        busy[self.a] = True
        busy[self.b] = True
        codes = np.flatnonzero(busy)
        return np.sort(_expand(self.order, self.starts[codes], self.counts[codes]))

    def verify(
        self, matrix: np.ndarray, slot: np.ndarray, floor: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Cosine of every candidate pair, block by block.

        Args:
            matrix: stored unit embeddings.
            slot: ``slot[row]`` is a document row's line in ``matrix``.
            floor: pairs with a lower cosine are only counted.

        Returns:
            ``(i, j, hamming, cosine, fine histogram)`` of the kept pairs (rows, ``i < j``, sorted).
        """
        fine = np.zeros(FINE_BINS, np.int64)
        out_i, out_j, out_d, out_c = [], [], [], []

        def add(i: np.ndarray, j: np.ndarray, d: np.ndarray, sims: np.ndarray) -> None:
            fine[:] += np.bincount(fine_bin(sims), minlength=FINE_BINS)
            keep = sims >= floor
            out_i.append(i[keep])
            out_j.append(j[keep])
            out_d.append(d[keep])
            out_c.append(sims[keep])

        # Small blocks (most of them with well-spread codes): list their pairs, one vectorised dot each.
        counts = self.counts.astype(np.int64)
        small_pair = counts[self.a] * counts[self.b] <= SMALL_BLOCK
        small_code = (counts > 1) & (counts * (counts - 1) // 2 <= SMALL_BLOCK)
        for start in range(0, int(small_pair.sum()), 1 << 20):
            pa, pb = self.a[small_pair][start : start + (1 << 20)], self.b[small_pair][start : start + (1 << 20)]
            i, j = cross_groups(self.starts[pa], counts[pa], self.starts[pb], counts[pb], self.order, upper=False)
            d = np.repeat(self.dist[small_pair][start : start + (1 << 20)], counts[pa] * counts[pb])
            add(i, j, d, pairwise_cosine(matrix, slot[i], slot[j]))
        codes = np.flatnonzero(small_code)
        if len(codes):
            i, j = cross_groups(
                self.starts[codes], counts[codes], self.starts[codes], counts[codes], self.order, upper=True
            )
            add(i, j, np.zeros(len(i), np.int8), pairwise_cosine(matrix, slot[i], slot[j]))
        # Large blocks: one matrix product per distinct code, against its own and its neighbours' rows.
        a, b, dist = self.a[~small_pair], self.b[~small_pair], self.dist[~small_pair]
        sizes = counts[b]
        partner = _expand(self.order, self.starts[b], sizes)
        partner_dist = np.repeat(dist, sizes)
        partner_bounds = np.r_[0, np.cumsum(sizes)][np.searchsorted(a, np.arange(len(counts) + 1))]
        busy = np.flatnonzero(((counts > 1) & ~small_code) | (partner_bounds[1:] > partner_bounds[:-1]))
        for u in busy.tolist():
            rows = self.order[self.starts[u] : self.starts[u] + self.counts[u]]
            mine = matrix[slot[rows]]
            if len(rows) > 1 and not small_code[u]:
                x, y = np.triu_indices(len(rows), 1)
                add(rows[x], rows[y], np.zeros(len(x), np.int8), (mine @ mine.T)[x, y])
            lo, hi = partner_bounds[u], partner_bounds[u + 1]
            if hi > lo:
                others = partner[lo:hi]
                sims = mine @ matrix[slot[others]].T
                x, y = np.indices(sims.shape)
                add(rows[x.ravel()], others[y.ravel()], partner_dist[lo:hi][y.ravel()], sims.ravel())
        if not out_i:
            empty = np.zeros(0, np.int64)
            return empty, empty, np.zeros(0, np.int8), np.zeros(0, np.float32), fine
        i, j = np.concatenate(out_i), np.concatenate(out_j)
        d, c = np.concatenate(out_d), np.clip(np.concatenate(out_c), -1.0, 1.0).astype(np.float32)
        lo, hi = np.minimum(i, j), np.maximum(i, j)
        order = np.lexsort((hi, lo))
        return lo[order], hi[order], d[order], c[order], fine


def _expand(order: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``order[starts[k] : starts[k] + counts[k]]`` for every k, concatenated."""
    total = int(counts.sum())
    within = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    return order[np.repeat(starts, counts) + within]


def pairwise_cosine(matrix: np.ndarray, a: np.ndarray, b: np.ndarray, batch: int = 1 << 20) -> np.ndarray:
    """Row-wise dot products ``matrix[a] . matrix[b]`` (cosines of unit vectors), in batches."""
    out = np.empty(len(a), np.float32)
    for start in range(0, len(a), batch):
        sa, sb = a[start : start + batch], b[start : start + batch]
        out[start : start + batch] = np.einsum("ij,ij->i", matrix[sa], matrix[sb])
    return np.clip(out, -1.0, 1.0)
