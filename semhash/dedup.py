"""``semhash dedup``: exact and near-duplicate documents, from the stored codes and embeddings.

Pipeline (no torch: everything runs on what SQLite already holds):

1. **Exact duplicates.** Every text is normalised (casefold, whitespace collapsed) and hashed
   (blake2b, 64 bits); documents with equal hashes form an *exact group*, reason ``exact``.
2. **Candidates from the codes.** All pairs of documents whose 32-bit codes are within ``radius`` bits,
   never all pairs of documents. Codes are first reduced to their distinct values; pairs of distinct
   codes come from a *split-radius hash join*: with ``a = radius // 2`` and ``b = radius - a``, two codes
   ``u, v`` with ``hamming(u, v) <= radius`` always share a point ``x`` with ``hamming(u, x) <= b`` and
   ``hamming(v, x) <= a`` (walk from ``u`` towards ``v``). So every distinct code is entered in a sorted
   table under each of its ``<= a``-bit variants, each code's ``<= b``-bit variants are looked up in it
   (binary search), and found pairs are checked with one popcount. At radius 2 that is 33 table entries
   and 33 look-ups per distinct code: linear in the number of codes, exact (no pair within the radius is
   missed), and with no ``n^2`` term. Measured against the alternatives (``BENCHMARKS.md``): faiss
   ``IndexBinaryFlat`` range search is exact but scans ``n^2`` pairs (about 8 s at 10^5 codes, hours at
   10^6); faiss ``IndexBinaryHash`` with ``nflip = radius`` probes all ``C(32, <= r)`` buckets per code
   (529 at radius 2: 5 s at 10^5); pigeonhole chunking (``r + 1`` chunks of 8-11 bits) makes groups of
   thousands of codes at 10^6. Documents sharing one code are all candidates of each other.
3. **Verification.** Each candidate pair gets the cosine of its stored (unit) embeddings. Pairs are never
   listed before verification: small code blocks (a few documents per code) are verified pair by pair in
   one vectorised pass, large ones with one matrix product per distinct code against its own and its
   neighbour codes' documents (BLAS), so coarse codes cost flops, not memory. Pairs below
   ``min(threshold, KEEP_FLOOR)`` are only counted (in the histogram). A pair is a near-duplicate when
   ``cosine >= threshold``; optionally a lexical *number veto* rejects a pair whose texts each hold a
   number the other lacks ("sold in 1998 for $2.5 billion" vs "... for $1.8 billion"). A number missing on
   one side only (truncation) is no veto.
4. **Clusters.** Exact groups are merged first (they are one unit). Then, with ``cluster="centre"``
   (the default), units are visited in ``keep`` order and each unvisited one becomes a centre that takes
   every unvisited unit within the threshold *of the centre itself*: every member is provably similar
   to its cluster's representative, so A~B and B~C never pull an unrelated C in with A (no chaining).
   ``cluster="components"`` takes connected components instead (union-find over accepted pairs): it
   finds more of a family of copies of copies, at the risk of chaining; each duplicate then names the
   document it matched (``matched_id``), which is the representative itself whenever that pair passed.

Every candidate pair at or above the floor, with its Hamming distance and cosine, is kept in the
:class:`DedupResult`, so :meth:`DedupResult.rethreshold` re-clusters at another threshold (down to the
floor), clustering or keep rule without touching the database, and :meth:`DedupResult.histogram` shows
where the similarities of all candidate pairs lie.

``keep`` picks each cluster's representative deterministically: ``first`` (lowest id, i.e. indexed
first), ``longest`` / ``shortest`` (characters), ``newest`` (file mtime); ties always go to the lowest id.

Defaults (``DEFAULT_RADIUS = 3``, ``DEFAULT_THRESHOLD = 0.8``) were calibrated with
``scripts/bench_dedup.py`` on a 20 Newsgroups near-duplicate set (best F1 there is at cosine 0.77; 0.80 is
within 0.01 of it with higher precision) and checked on MRPC; radius 3 is the largest that keeps 10^6
documents under a minute on 2 cores. The learned 32-bit codes are coarse: at radius 3 the candidate stage
holds 79% of the 20NG near-duplicate pairs (92% of those with cosine >= 0.9), so raise ``--radius`` for
recall on small collections. See ``BENCHMARKS.md`` ("Deduplication") for the curves and numbers.

:func:`find_existing` checks new files against an index without adding them; it is the one path that
needs the embedding and hashing models, and it imports them lazily, inside the function.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from semhash.errors import IndexMissingError, UsageError
from semhash.store import Store
from semhash.types import DuplicateCluster, DuplicatePair, ExistingMatch, SourceDocument

#: Hamming radius of the candidate stage (bits, of 32). See BENCHMARKS.md for the calibration.
DEFAULT_RADIUS = 3
#: Cosine of stored embeddings at or above which a candidate pair is a near-duplicate.
DEFAULT_THRESHOLD = 0.8
CLUSTER_METHODS = ("centre", "components")
KEEP_RULES = ("first", "longest", "shortest", "newest")
#: Largest radius accepted: beyond it "near" stops meaning anything at 32 bits and the join explodes.
MAX_RADIUS = 8

_WS = re.compile(r"\s+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


# -- options ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DedupOptions:
    """How duplicates are found and grouped.

    Attributes:
        radius: Hamming radius of the candidate stage, in bits.
        threshold: cosine of stored embeddings at or above which a candidate pair is a near-duplicate.
        cluster: ``"centre"`` (no chaining) or ``"components"`` (connected components).
        keep: which document of a cluster is kept: ``first``, ``longest``, ``shortest`` or ``newest``.
        number_veto: reject near pairs whose texts each hold a number the other lacks.
    """

    radius: int = DEFAULT_RADIUS
    threshold: float = DEFAULT_THRESHOLD
    cluster: str = "centre"
    keep: str = "first"
    number_veto: bool = False

    def validate(self, bits: int = 32) -> None:
        """Raise :class:`UsageError` for out-of-range values."""
        limit = min(bits, MAX_RADIUS)
        if not 0 <= self.radius <= limit:
            raise UsageError(f"--radius must be between 0 and {limit} bits, not {self.radius}")
        if not -1.0 <= self.threshold <= 1.0:
            raise UsageError(f"--threshold must be a cosine between -1 and 1, not {self.threshold}")
        if self.cluster not in CLUSTER_METHODS:
            raise UsageError(f"--cluster must be one of {', '.join(CLUSTER_METHODS)}, not {self.cluster!r}")
        if self.keep not in KEEP_RULES:
            raise UsageError(f"--keep must be one of {', '.join(KEEP_RULES)}, not {self.keep!r}")


# -- text ------------------------------------------------------------------------------------------
def normalize_text(text: str) -> str:
    """Casefold and collapse whitespace: the form compared for exact duplicates."""
    return _WS.sub(" ", text.casefold()).strip()


def text_key(text: str) -> int:
    """64-bit hash of the normalised text (signed int64 range)."""
    digest = hashlib.blake2b(normalize_text(text).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def numbers_conflict(a: str, b: str) -> bool:
    """True when each text holds a number the other lacks (commas in numbers ignored)."""
    na = {m.replace(",", "") for m in _NUMBER.findall(a)}
    nb = {m.replace(",", "") for m in _NUMBER.findall(b)}
    return bool(na - nb) and bool(nb - na)


# -- candidate generation --------------------------------------------------------------------------
def flip_masks(bits: int, max_flips: int) -> np.ndarray:
    """Every ``bits``-bit mask with at most ``max_flips`` bits set (0 first), as uint64."""
    masks = [0]
    for k in range(1, max_flips + 1):
        for combo in itertools.combinations(range(bits), k):
            masks.append(sum(1 << b for b in combo))
    return np.array(masks, dtype=np.uint64)


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (sort + compare: faster than ``np.unique`` on large uint64 arrays)."""
    values = np.sort(values)
    return values[np.r_[True, values[1:] != values[:-1]]] if len(values) else values


def _popcount(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(x.astype(np.uint64)).astype(np.int8)


def distinct_code_pairs(
    codes: np.ndarray, bits: int, radius: int, chunk_lookups: int = 1 << 22
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs of *distinct*, sorted codes within ``radius`` bits (split-radius hash join).

    Args:
        codes: sorted, distinct unsigned codes (uint64).
        bits: code length.
        radius: largest Hamming distance kept (1 or more; distance 0 is not a pair of distinct codes).
        chunk_lookups: variant look-ups per batch (bounds memory).

    Returns:
        ``(a, b, distance)``: positions into ``codes`` with ``a < b``, and their distance.
    """
    codes = np.asarray(codes, dtype=np.uint64)
    n = len(codes)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int8))
    if n < 2 or radius < 1:
        return empty
    # Codes of up to 32 bits are probed as uint32 (half the memory traffic), and their presence filter
    # is indexed by the code's top bits directly (no hashing).
    word = np.uint32 if bits <= 32 else np.uint64
    keys = codes.astype(word)
    a_flips = radius // 2
    masks_a = flip_masks(bits, a_flips)
    masks_b = flip_masks(bits, radius - a_flips).astype(word)
    # The table: (variant << 32 | owner), sorted; owners are positions (< 2^32).
    if len(masks_a) == 1:
        table_keys, table_owner = keys, np.arange(n, dtype=np.int64)
    elif bits <= 32:  # one sort of (variant << 32 | owner)
        packed = ((codes[:, None] ^ masks_a[None, :]) << np.uint64(32)) | np.arange(n, dtype=np.uint64)[:, None]
        packed = np.sort(packed.ravel())
        table_keys = (packed >> np.uint64(32)).astype(word)
        table_owner = (packed & np.uint64(0xFFFFFFFF)).astype(np.int64)
        del packed
    else:
        variants = (codes[:, None] ^ masks_a[None, :]).ravel()
        by_variant = np.argsort(variants, kind="stable")
        table_keys, table_owner = variants[by_variant], by_variant // len(masks_a)
    shift = max(0, bits - _BITMAP_BITS) if bits <= 32 else None
    use_bitmap = len(masks_b) > bits + 1 and len(table_keys) >= _BITMAP_MIN_TABLE
    bitmap = _presence_bitmap(table_keys, shift) if use_bitmap else None
    step = max(1, chunk_lookups // len(masks_b))
    width = len(masks_b)

    def join(start: int) -> tuple[np.ndarray, np.ndarray]:
        probes = np.bitwise_xor(keys[start : start + step, None], masks_b[None, :]).ravel()
        if bitmap is not None:  # most probes of a 2-bit-or-more ball hit nothing: drop them cheaply
            slot = _slot(probes, shift)
            flat = np.flatnonzero((bitmap[slot >> 3] >> (slot & 7).astype(np.uint8)) & 1)
            probes = probes[flat]
        else:
            flat = np.arange(len(probes))
        probe_owner = start + flat // width
        order = np.argsort(probes, kind="stable")
        probes, probe_owner = probes[order], probe_owner[order]
        lo = np.searchsorted(table_keys, probes, "left")
        counts = np.searchsorted(table_keys, probes, "right") - lo
        hit = counts > 0
        lo, counts, probe_owner = lo[hit], counts[hit], probe_owner[hit]
        total = int(counts.sum())
        offsets = np.repeat(np.cumsum(counts) - counts, counts)
        left = np.repeat(probe_owner, counts)
        right = table_owner[np.repeat(lo, counts) + (np.arange(total) - offsets)]
        keep = left < right
        left, right = left[keep], right[keep]
        keep = np.bitwise_count(codes[left] ^ codes[right]) <= radius
        pair_key = _sorted_unique((left[keep].astype(np.uint64) << np.uint64(32)) | right[keep].astype(np.uint64))
        return (pair_key >> np.uint64(32)).astype(np.int64), (pair_key & np.uint64(0xFFFFFFFF)).astype(np.int64)

    # numpy releases the GIL in sorts, searches and ufuncs: chunks run on every core.
    with ThreadPoolExecutor(max_workers=max(1, min(os.cpu_count() or 1, 8))) as pool:
        parts = list(pool.map(join, range(0, n, step)))
    if not parts:
        return empty
    a = np.concatenate([p[0] for p in parts])
    b = np.concatenate([p[1] for p in parts])
    return a, b, _popcount(codes[a] ^ codes[b])


_BITMAP_BITS = 29
#: Smallest table that gets a presence bitmap (below it, binary search alone is cheaper).
_BITMAP_MIN_TABLE = 1 << 16
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _slot(keys: np.ndarray, shift: int | None) -> np.ndarray:
    """``_BITMAP_BITS``-bit slot of each key: its top bits (``shift``) or, for wide keys, a multiplicative hash."""
    if shift is not None:
        return (keys >> keys.dtype.type(shift)).astype(np.int64)
    return ((keys.astype(np.uint64) * _GOLDEN) >> np.uint64(64 - _BITMAP_BITS)).astype(np.int64)


def _presence_bitmap(keys: np.ndarray, shift: int | None) -> np.ndarray:
    """A 64 MiB bit set of key slots: a probe whose bit is clear is certainly absent."""
    slots = _sorted_unique(_slot(keys, shift))
    byte = slots >> 3
    bit = (np.uint8(1) << (slots & 7).astype(np.uint8)).astype(np.uint8)
    starts = np.flatnonzero(np.r_[True, byte[1:] != byte[:-1]])
    bitmap = np.zeros(1 << (_BITMAP_BITS - 3), np.uint8)
    bitmap[byte[starts]] = np.bitwise_or.reduceat(bit, starts)
    return bitmap


def candidate_pairs(codes: np.ndarray, bits: int, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs of documents whose codes are within ``radius`` bits.

    Args:
        codes: ``(n,)`` codes in SQLite integer form (int64) or unsigned (uint64).
        bits: code length.
        radius: Hamming radius, inclusive.

    Returns:
        ``(i, j, distance)``: row positions into ``codes`` with ``i < j``, sorted by ``(i, j)``.
    """
    arr = np.asarray(codes)
    unsigned = arr if arr.dtype == np.uint64 else arr.astype(np.int64).view(np.uint64)
    if bits < 64:
        unsigned = unsigned & np.uint64((1 << bits) - 1)
    uniq, inverse, counts = np.unique(unsigned, return_inverse=True, return_counts=True)
    order = np.argsort(inverse, kind="stable")  # rows grouped by distinct code
    starts = np.cumsum(counts) - counts
    parts_i, parts_j, parts_d = [], [], []
    # Distance 0: every pair of rows sharing one code.
    shared = np.flatnonzero(counts > 1)
    if len(shared):
        i, j = _cross(starts[shared], counts[shared], starts[shared], counts[shared], order, upper=True)
        parts_i.append(i)
        parts_j.append(j)
        parts_d.append(np.zeros(len(i), np.int8))
    a, b, d = distinct_code_pairs(uniq, bits, radius)
    if len(a):
        i, j = _cross(starts[a], counts[a], starts[b], counts[b], order, upper=False)
        parts_i.append(i)
        parts_j.append(j)
        parts_d.append(np.repeat(d, counts[a] * counts[b]))
    if not parts_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int8)
    i, j, d = np.concatenate(parts_i), np.concatenate(parts_j), np.concatenate(parts_d)
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    sort = np.lexsort((hi, lo))
    return lo[sort], hi[sort], d[sort]


def _cross(
    start_a: np.ndarray, count_a: np.ndarray, start_b: np.ndarray, count_b: np.ndarray, order: np.ndarray, upper: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of group a x rows of group b, for each pair of groups (``upper``: a == b, pairs x < y only)."""
    sizes = count_a * count_b
    total = int(sizes.sum())
    pair = np.repeat(np.arange(len(sizes)), sizes)
    local = np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    x, y = local // count_b[pair], local % count_b[pair]
    if upper:
        keep = x < y
        pair, x, y = pair[keep], x[keep], y[keep]
    return order[start_a[pair] + x], order[start_b[pair] + y]


# -- the result --------------------------------------------------------------------------------------
@dataclass
class DocTable:
    """What clustering and reporting need about the documents that have any candidate or exact twin."""

    ids: np.ndarray  # int64, sorted
    n_chars: np.ndarray  # int64
    mtime: np.ndarray  # float64
    text_key: np.ndarray  # int64, hash of the normalised text
    paths: list[str]
    records: list[int]

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """Row positions of document ids."""
        return np.searchsorted(self.ids, ids)

    def location(self, row: int) -> str:
        """``path`` or ``path#record``."""
        return self.paths[row] if self.records[row] == 0 else f"{self.paths[row]}#{self.records[row]}"

    def priority(self, keep: str) -> np.ndarray:
        """Rank of every row under a keep rule (0 is kept first); ties go to the lowest id."""
        if keep == "first":
            order = np.argsort(self.ids, kind="stable")
        elif keep == "longest":
            order = np.lexsort((self.ids, -self.n_chars))
        elif keep == "shortest":
            order = np.lexsort((self.ids, self.n_chars))
        else:  # newest
            order = np.lexsort((self.ids, -self.mtime))
        rank = np.empty(len(order), np.int64)
        rank[order] = np.arange(len(order))
        return rank


@dataclass
class DedupStats:
    """Sizes and timings of one run."""

    documents: int = 0
    candidates: int = 0
    exact_duplicates: int = 0
    seconds_read: float = 0.0
    seconds_candidates: float = 0.0
    seconds_cosine: float = 0.0
    seconds_cluster: float = 0.0

    @property
    def seconds(self) -> float:
        """Total wall time."""
        return self.seconds_read + self.seconds_candidates + self.seconds_cosine + self.seconds_cluster


@dataclass
class DedupResult:
    """Duplicates of an index, with every candidate pair kept for re-thresholding.

    Attributes:
        options: the options the clusters were made with.
        clusters: clusters of two or more documents, by the kept document's id.
        left, right: candidate pairs as document ids (``left < right``).
        hamming: their code distance; ``cosine``: the cosine of their stored embeddings.
        vetoed: per pair, whether the number veto rejects it (``None`` when it was not computed).
        docs: the documents in any candidate pair or exact group.
        stats: sizes and timings.
    """

    options: DedupOptions
    clusters: list[DuplicateCluster]
    left: np.ndarray
    right: np.ndarray
    hamming: np.ndarray
    cosine: np.ndarray
    vetoed: np.ndarray | None
    docs: DocTable
    stats: DedupStats = field(default_factory=DedupStats)
    fine_histogram: np.ndarray | None = None
    floor: float = -1.0

    @property
    def duplicates(self) -> list[DuplicatePair]:
        """Every duplicate of every cluster, cluster by cluster."""
        return [d for c in self.clusters for d in c.duplicates]

    @property
    def duplicate_ids(self) -> list[int]:
        """Ids of the documents that could be removed (one per cluster is kept)."""
        return sorted(d.duplicate_id for d in self.duplicates)

    def rethreshold(
        self,
        threshold: float | None = None,
        cluster: str | None = None,
        keep: str | None = None,
        number_veto: bool | None = None,
    ) -> DedupResult:
        """Re-cluster the stored candidate pairs with other settings (no database, no recomputation).

        Raises:
            UsageError: a setting is out of range, or ``number_veto`` is asked for but was not computed.
        """
        options = replace(
            self.options,
            threshold=self.options.threshold if threshold is None else threshold,
            cluster=cluster or self.options.cluster,
            keep=keep or self.options.keep,
            number_veto=self.options.number_veto if number_veto is None else number_veto,
        )
        options.validate()
        if options.threshold < self.floor:
            raise UsageError(
                f"candidate pairs below cosine {self.floor} were counted, not kept: "
                f"run dedup again with --threshold {options.threshold}"
            )
        if options.number_veto and self.vetoed is None:
            raise UsageError("the number veto was not computed for this result: run dedup with number_veto=True")
        started = time.perf_counter()
        clusters = build_clusters(self.docs, self.left, self.right, self.cosine, self.vetoed, options)
        stats = replace(self.stats, seconds_cluster=time.perf_counter() - started)
        return replace(self, options=options, clusters=clusters, stats=stats)

    def histogram(self, bins: int = 20, low: float = 0.0) -> list[tuple[float, float, int]]:
        """``(from, to, count)`` of the cosines of *all* candidate pairs on ``bins`` equal bins of ``[low, 1]``.

        Cosines below ``low`` are counted in the first bin. Edges are exact to 0.01.
        """
        fine = self._fine()
        edges = np.linspace(low, 1.0, bins + 1)
        cuts = np.clip(np.round((edges + 1.0) * (FINE_BINS / 2)).astype(np.int64), 0, FINE_BINS)
        cuts[0], cuts[-1] = 0, FINE_BINS
        return [(float(edges[k]), float(edges[k + 1]), int(fine[cuts[k] : cuts[k + 1]].sum())) for k in range(bins)]

    def pairs_at(self, threshold: float) -> int:
        """How many candidate pairs have a cosine of at least ``threshold`` (before clustering; 0.01 steps
        below the kept floor)."""
        if threshold >= self.floor:
            return int((self.cosine >= threshold).sum())
        cut = int(np.clip(np.round((threshold + 1.0) * (FINE_BINS / 2)), 0, FINE_BINS))
        return int(self._fine()[cut:].sum())

    def _fine(self) -> np.ndarray:
        if self.fine_histogram is not None:
            return self.fine_histogram
        return np.bincount(_fine_bin(self.cosine), minlength=FINE_BINS)


# -- clustering -------------------------------------------------------------------------------------
def build_clusters(
    docs: DocTable,
    left: np.ndarray,
    right: np.ndarray,
    cosine: np.ndarray,
    vetoed: np.ndarray | None,
    options: DedupOptions,
) -> list[DuplicateCluster]:
    """Clusters of exact groups and accepted near pairs (see the module docstring)."""
    n = len(docs.ids)
    if n == 0:
        return []
    rank = docs.priority(options.keep)
    # Units: exact groups. unit_of[row] = row of the unit's representative (best rank in the group).
    order = np.lexsort((rank, docs.text_key))
    keys_sorted = docs.text_key[order]
    first = np.r_[True, keys_sorted[1:] != keys_sorted[:-1]]
    unit_of = np.empty(n, np.int64)
    unit_of[order] = order[np.flatnonzero(first)[np.cumsum(first) - 1]]
    # Accepted pairs, between units.
    li, ri = docs.rows(left), docs.rows(right)
    accept = cosine >= options.threshold
    if options.number_veto and vetoed is not None:
        accept &= ~vetoed
    same_text = docs.text_key[li] == docs.text_key[ri]
    accept &= ~same_text
    ua, ub, w = unit_of[li[accept]], unit_of[ri[accept]], cosine[accept].astype(np.float64)
    between = ua != ub
    ua, ub, w = ua[between], ub[between], w[between]
    # One edge per unit pair (the strongest), both directions, sorted by (from, to).
    lo, hi = np.minimum(ua, ub), np.maximum(ua, ub)
    if len(lo):
        sort = np.lexsort((-w, hi, lo))
        lo, hi, w = lo[sort], hi[sort], w[sort]
        firsts = np.r_[True, (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])]
        lo, hi, w = lo[firsts], hi[firsts], w[firsts]
    src, dst, weight = np.r_[lo, hi], np.r_[hi, lo], np.r_[w, w]
    sort = np.lexsort((dst, src))
    src, dst, weight = src[sort], dst[sort], weight[sort]
    bounds = np.searchsorted(src, np.arange(n + 1))

    if options.cluster == "centre":
        centre_of, matched, score = _centre_clusters(n, rank, unit_of, src, dst, weight, bounds)
    else:
        centre_of, matched, score = _component_clusters(n, rank, unit_of, src, dst, weight, bounds)

    # Members: every row whose unit's centre is set, grouped by centre.
    members: dict[int, list[int]] = {}
    for row in np.flatnonzero(centre_of >= 0).tolist():
        members.setdefault(int(centre_of[row]), []).append(row)
    clusters = []
    for centre, rows in members.items():
        if len(rows) < 2:
            continue
        kept_id = int(docs.ids[centre])
        duplicates = []
        for row in sorted(rows, key=lambda r: rank[r]):
            if row == centre:
                continue
            if docs.text_key[row] == docs.text_key[centre]:
                matched_row, value, reason = centre, 1.0, "exact"
            else:
                unit = int(unit_of[row])
                matched_row, value, reason = int(matched[unit]), float(score[unit]), "near"
            duplicates.append(
                DuplicatePair(
                    kept_id=kept_id,
                    kept_location=docs.location(centre),
                    duplicate_id=int(docs.ids[row]),
                    duplicate_location=docs.location(row),
                    matched_id=int(docs.ids[matched_row]),
                    score=round(value, 6),
                    reason=reason,
                )
            )
        clusters.append(
            DuplicateCluster(cluster=0, kept_id=kept_id, kept_location=docs.location(centre), duplicates=duplicates)
        )
    clusters.sort(key=lambda c: c.kept_id)
    return [replace(c, cluster=k) for k, c in enumerate(clusters, start=1)]


def _centre_clusters(
    n: int,
    rank: np.ndarray,
    unit_of: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    weight: np.ndarray,
    bounds: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy star clustering: units in keep order; an unassigned unit takes its unassigned neighbours."""
    unit_centre = np.full(n, -1, np.int64)
    matched = np.full(n, -1, np.int64)
    score = np.zeros(n, np.float64)
    units = np.flatnonzero(unit_of == np.arange(n))
    sizes = np.bincount(unit_of, minlength=n)
    involved = units[(sizes[units] > 1) | (bounds[units + 1] > bounds[units])]
    involved = involved[np.argsort(rank[involved], kind="stable")]
    starts, ends = bounds[:-1].tolist(), bounds[1:].tolist()
    dst_list, weight_list = dst.tolist(), weight.tolist()
    assigned = unit_centre  # alias: -1 = free
    for u in involved.tolist():
        if assigned[u] >= 0:
            continue
        assigned[u] = u
        matched[u], score[u] = u, 1.0
        for k in range(starts[u], ends[u]):
            v = dst_list[k]
            if assigned[v] < 0:
                assigned[v] = u
                matched[v], score[v] = u, weight_list[k]
    return _spread(unit_centre, unit_of), matched, score


def _component_clusters(
    n: int,
    rank: np.ndarray,
    unit_of: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    weight: np.ndarray,
    bounds: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Connected components (label propagation with pointer jumping); the best-ranked unit is the centre."""
    label = np.arange(n)
    while True:
        new = label.copy()
        np.minimum.at(new, src, label[dst])
        new = new[new]
        if np.array_equal(new, label):
            break
        label = new
    # Centre: the best-ranked unit of each component.
    units = np.flatnonzero(unit_of == np.arange(n))
    order = units[np.lexsort((rank[units], label[units]))]
    first = np.r_[True, label[order][1:] != label[order][:-1]]
    best = np.full(n, -1, np.int64)
    best[label[order[first]]] = order[first]
    unit_centre = np.full(n, -1, np.int64)
    sizes = np.bincount(unit_of, minlength=n)
    linked = (bounds[units + 1] > bounds[units]) | (sizes[units] > 1)
    unit_centre[units[linked]] = best[label[units[linked]]]
    # Matched: the centre when the pair passed, else the most similar neighbour (ties: lowest rank).
    matched = np.full(n, -1, np.int64)
    score = np.zeros(n, np.float64)
    for u in units[linked].tolist():
        c = int(unit_centre[u])
        lo, hi = int(bounds[u]), int(bounds[u + 1])
        if c == u:
            matched[u], score[u] = u, 1.0
            continue
        neighbours, weights = dst[lo:hi], weight[lo:hi]
        direct = np.flatnonzero(neighbours == c)
        if len(direct):
            matched[u], score[u] = c, float(weights[direct[0]])
        else:
            pick = np.lexsort((rank[neighbours], -weights))[0]
            matched[u], score[u] = int(neighbours[pick]), float(weights[pick])
    return _spread(unit_centre, unit_of), matched, score


def _spread(unit_centre: np.ndarray, unit_of: np.ndarray) -> np.ndarray:
    """Centre of every row, from the centre of its unit."""
    return unit_centre[unit_of]


# -- the service --------------------------------------------------------------------------------------
Progress = Callable[[str, int, int], None]


def dedup_index(db_path: str | Path, options: DedupOptions | None = None) -> DedupResult:
    """Exact and near-duplicates among the documents of the index at ``db_path`` (torch-free).

    Raises:
        IndexMissingError: no index, or no encoded document in it.
        UsageError: an option is out of range.
    """
    options = options or DedupOptions()
    with Store.open(db_path) as store:
        bits = store.bits
        if bits is None or store.count(encoded_only=True) == 0:
            raise IndexMissingError(f"the index at {store.path} holds no document yet: run `semhash index DIR` first")
        options.validate(bits)
        return dedup_store(store, options)


def dedup_store(store: Store, options: DedupOptions) -> DedupResult:
    """:func:`dedup_index` on an open store."""
    stats = DedupStats()
    started = time.perf_counter()
    bits = store.bits or 32
    ids, codes = store.codes()
    keys = np.empty(len(ids), np.int64)
    lengths = np.empty(len(ids), np.int64)
    mtimes = np.empty(len(ids), np.float64)
    row_of = {int(i): k for k, i in enumerate(ids.tolist())}
    for doc in store.iter_documents(batch=10000):
        k = row_of.get(doc.id)
        if k is not None:
            keys[k], lengths[k], mtimes[k] = text_key(doc.text), len(doc.text), doc.mtime
    stats.documents = len(ids)
    stats.seconds_read = time.perf_counter() - started

    started = time.perf_counter()
    blocks = CodeBlocks.build(codes, bits, options.radius)
    stats.candidates = blocks.candidate_count
    stats.seconds_candidates = time.perf_counter() - started

    started = time.perf_counter()
    rows = blocks.rows_with_candidates()
    matrix, slot = _embeddings_for(store, ids, rows)
    i, j, dist, cosine, fine = blocks.verify(matrix, slot, min(options.threshold, KEEP_FLOOR))
    involved = np.union1d(np.union1d(i, j), _rows_in_exact_groups(keys))
    vetoed = None
    involved_ids = ids[involved]
    docs_of = store.documents(involved_ids.tolist())
    if options.number_veto:
        texts = {int(x): docs_of[int(x)].text for x in involved_ids.tolist()}
        vetoed = np.fromiter(
            (
                numbers_conflict(texts[int(ids[a])], texts[int(ids[b])])
                for a, b in zip(i.tolist(), j.tolist(), strict=True)
            ),
            dtype=bool,
            count=len(i),
        )
    stats.seconds_cosine = time.perf_counter() - started

    started = time.perf_counter()
    docs = DocTable(
        ids=involved_ids,
        n_chars=lengths[involved],
        mtime=mtimes[involved],
        text_key=keys[involved],
        paths=[docs_of[int(x)].path for x in involved_ids.tolist()],
        records=[docs_of[int(x)].record for x in involved_ids.tolist()],
    )
    left, right = ids[i], ids[j]
    clusters = build_clusters(docs, left, right, cosine, vetoed, options)
    stats.exact_duplicates = len(involved) - len(np.unique(keys[involved])) if len(involved) else 0
    stats.seconds_cluster = time.perf_counter() - started
    floor = min(options.threshold, KEEP_FLOOR)
    return DedupResult(options, clusters, left, right, dist, cosine, vetoed, docs, stats, fine, floor)


#: Code blocks with at most this many document pairs are verified together, pair by pair (vectorised).
SMALL_BLOCK = 16
#: Candidate pairs below this cosine (or below the threshold, if lower) are counted, not kept.
KEEP_FLOOR = 0.5
#: The histogram of candidate cosines is kept at this resolution, over [-1, 1].
FINE_BINS = 200


def _fine_bin(cos: np.ndarray) -> np.ndarray:
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
            matrix: stored unit embeddings; ``slot[row]`` is a row's line in it.
            floor: pairs with a lower cosine are only counted.

        Returns:
            ``(i, j, hamming, cosine, fine histogram)`` of the kept pairs (rows, ``i < j``, sorted).
        """
        fine = np.zeros(FINE_BINS, np.int64)
        out_i, out_j, out_d, out_c = [], [], [], []

        def add(i: np.ndarray, j: np.ndarray, d: np.ndarray, sims: np.ndarray) -> None:
            fine[:] += np.bincount(_fine_bin(sims), minlength=FINE_BINS)
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
            i, j = _cross(self.starts[pa], counts[pa], self.starts[pb], counts[pb], self.order, upper=False)
            d = np.repeat(self.dist[small_pair][start : start + (1 << 20)], counts[pa] * counts[pb])
            add(i, j, d, pairwise_cosine(matrix, slot[i], slot[j]))
        codes = np.flatnonzero(small_code)
        if len(codes):
            i, j = _cross(self.starts[codes], counts[codes], self.starts[codes], counts[codes], self.order, upper=True)
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


def _embeddings_for(store: Store, ids: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stored embeddings of ``rows`` (positions into ``ids``) and each row's line in the matrix."""
    slot = np.full(len(ids), -1, np.int64)
    if len(rows) == 0:
        return np.zeros((0, 1), np.float32), slot
    if len(rows) > len(ids) // 2:  # one scan of the table beats many look-ups
        stored_ids, matrix = store.embeddings()
        line = np.searchsorted(stored_ids, ids)
        ok = (line < len(stored_ids)) & (stored_ids[np.minimum(line, len(stored_ids) - 1)] == ids)
        slot[ok] = line[ok]
    else:
        stored_ids, matrix = store.embeddings(ids[rows].tolist())
        if len(stored_ids) == len(rows):
            slot[rows] = np.arange(len(rows))  # both in id order
    if (slot[rows] < 0).any():
        raise IndexMissingError(f"{store.path} has documents without embeddings: run `semhash index DIR` again")
    return matrix, slot


def _rows_in_exact_groups(keys: np.ndarray) -> np.ndarray:
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    return np.flatnonzero(counts[inverse] > 1)


def pairwise_cosine(matrix: np.ndarray, a: np.ndarray, b: np.ndarray, batch: int = 1 << 20) -> np.ndarray:
    """Row-wise dot products ``matrix[a] . matrix[b]`` (cosines of unit vectors), in batches."""
    out = np.empty(len(a), np.float32)
    for start in range(0, len(a), batch):
        sa, sb = a[start : start + batch], b[start : start + batch]
        out[start : start + batch] = np.einsum("ij,ij->i", matrix[sa], matrix[sb])
    return np.clip(out, -1.0, 1.0)


# -- new documents against the index ------------------------------------------------------------------
@dataclass
class AgainstResult:
    """Which new documents already exist in the index (nothing is added to it).

    Attributes:
        documents: the new documents, in reading order.
        matches: per new document, its matches in the index (exact first, then by score).
        candidates: every ``(new position, stored id, hamming, cosine, exact)`` for re-thresholding.
    """

    options: DedupOptions
    documents: list[SourceDocument]
    matches: list[list[ExistingMatch]]
    candidates: list[tuple[int, int, int, float, bool]]
    locations: dict[int, str]

    @property
    def existing(self) -> list[int]:
        """Positions of the new documents that already exist in the index."""
        return [k for k, m in enumerate(self.matches) if m]

    def rethreshold(self, threshold: float) -> AgainstResult:
        """The same candidates judged at another threshold (no model, no database)."""
        options = replace(self.options, threshold=threshold)
        options.validate()
        return replace(
            self, options=options, matches=_judge(len(self.documents), self.candidates, self.locations, threshold)
        )


def match_against(
    store: Store,
    documents: Sequence[SourceDocument],
    embeddings: np.ndarray,
    packed: np.ndarray,
    options: DedupOptions,
) -> AgainstResult:
    """Match new documents (already embedded and hashed) against an open store (torch-free)."""
    from semhash.sync import load_index

    bits = store.bits or 32
    options.validate(bits)
    index = load_index(store)
    # Exact: normalised text hashes of every stored document.
    new_keys = [text_key(d.text) for d in documents]
    wanted = set(new_keys)
    exact_ids: dict[int, list[int]] = {}
    for doc in store.iter_documents(batch=10000):
        if doc.code is None:
            continue
        key = text_key(doc.text)
        if key in wanted:
            exact_ids.setdefault(key, []).append(doc.id)
    # Near: faiss range search of the new codes over the index.
    lims, dist, found = index.range_search(packed, options.radius)
    stored_ids, matrix = store.embeddings(sorted(set(np.asarray(found).tolist())))
    slot = {int(x): k for k, x in enumerate(stored_ids.tolist())}
    candidates: dict[tuple[int, int], tuple[int, int, int, float, bool]] = {}
    for q in range(len(documents)):
        for k in range(int(lims[q]), int(lims[q + 1])):
            sid = int(found[k])
            cos = float(np.clip(matrix[slot[sid]] @ embeddings[q], -1.0, 1.0))
            candidates[(q, sid)] = (q, sid, int(dist[k]), cos, False)
        for sid in exact_ids.get(new_keys[q], []):
            prev = candidates.get((q, sid))
            candidates[(q, sid)] = (q, sid, prev[2] if prev else -1, 1.0, True)
    rows = sorted(candidates.values())
    located = store.documents(sorted({r[1] for r in rows}))
    locations = {i: d.location for i, d in located.items()}
    return AgainstResult(options, list(documents), _judge(len(documents), rows, locations, options.threshold), rows,
                         locations)  # fmt: skip


def _judge(
    n: int, rows: Sequence[tuple[int, int, int, float, bool]], locations: dict[int, str], threshold: float
) -> list[list[ExistingMatch]]:
    out: list[list[ExistingMatch]] = [[] for _ in range(n)]
    for q, sid, dist, cos, exact in rows:
        if exact or cos >= threshold:
            out[q].append(
                ExistingMatch(
                    id=sid,
                    location=locations.get(sid, str(sid)),
                    score=round(cos, 6),
                    reason="exact" if exact else "near",
                    hamming=dist,
                )
            )
    for matches in out:
        matches.sort(key=lambda m: (m.reason != "exact", -m.score, m.id))
    return out


def find_existing(
    db_path: str | Path,
    paths: Sequence[str | Path],
    options: DedupOptions | None = None,
    encoder: object | None = None,
    device: str = "auto",
    read: object | None = None,
) -> AgainstResult:
    """Which documents under ``paths`` already exist in the index at ``db_path``; nothing is added.

    This is the one dedup path that embeds text, so it loads the index's embedding model and hashing
    model, lazily (torch is imported here, never at module import).

    Raises:
        IndexMissingError: no index, or no encoded document in it.
        CorpusError: a path is missing or holds no document.
        UsageError: an option is out of range.
    """
    from semhash.corpus import CorpusScan, ReadOptions, check_roots
    from semhash.errors import CorpusError

    options = options or DedupOptions()
    roots = check_roots(paths)
    with Store.open(db_path) as store:
        bits = store.bits
        active = store.active_model()
        if bits is None or active is None or store.count(encoded_only=True) == 0:
            raise IndexMissingError(f"the index at {store.path} holds no document yet: run `semhash index DIR` first")
        options.validate(bits)
        scan = CorpusScan(roots, read if read is not None else ReadOptions())  # type: ignore[arg-type]
        documents = list(scan.documents())
        if not documents:
            where = ", ".join(str(r) for r in roots)
            raise CorpusError(f"no documents found under {where}: give files semhash can read")
        if encoder is None:
            from semhash.device import resolve_device
            from semhash.embed import load_encoder

            encoder = load_encoder(store.embedding_model, resolve_device(device))
        store.check_embedding_model(encoder.name, encoder.dim)  # type: ignore[attr-defined]
        from semhash.model import encode_codes, model_from_bytes

        texts = [d.text for d in documents]
        embeddings = np.asarray(encoder.encode(texts), dtype=np.float32)  # type: ignore[attr-defined]
        packed = encode_codes(model_from_bytes(active["weights"]), embeddings, texts=texts)
        return match_against(store, documents, embeddings, packed, options)


# -- writing ------------------------------------------------------------------------------------------
def check_new_folder(path: str | Path) -> Path:
    """``path`` if nothing is there yet (checked before any work), else :class:`UsageError`."""
    out = Path(path)
    if out.exists():
        raise UsageError(f"--write-unique {out} already exists: give a new folder (nothing is overwritten)")
    return out


def write_unique(result: DedupResult, db_path: str | Path, out_dir: str | Path) -> int:
    """Copy every document that is not a duplicate (one per cluster, and all singletons) into ``out_dir``.

    One-document files are copied (relative layout kept); records of JSON/JSONL/CSV files are written as
    JSONL lines ``{"text", "source"}`` in a file of the same relative path with ``.jsonl`` appended.
    The user's files are only read. Returns how many documents were written.

    Raises:
        UsageError: ``out_dir`` already exists.
    """
    import json

    out = check_new_folder(out_dir)
    drop = set(result.duplicate_ids)
    with Store.open(db_path) as store:
        docs = [d for d in store.iter_documents(batch=10000) if d.code is not None and d.id not in drop]
    if not docs:
        return 0
    parents = {str(Path(d.path).parent) for d in docs}
    root = Path(os.path.commonpath(sorted(parents))) if parents else Path("/")
    out.mkdir(parents=True)
    records: dict[Path, list[str]] = {}
    for doc in docs:
        rel = Path(doc.path).relative_to(root) if Path(doc.path).is_relative_to(root) else Path(Path(doc.path).name)
        target = out / rel
        if doc.record:
            records.setdefault(target.with_name(target.name + ".jsonl"), []).append(
                json.dumps({"text": doc.text, "source": doc.location}, ensure_ascii=False)
            )
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if Path(doc.path).is_file():
            shutil.copy2(doc.path, target)
        else:  # the file moved since indexing: write the stored text
            target.write_text(doc.text, encoding="utf-8")
    for target, lines in records.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(docs)
