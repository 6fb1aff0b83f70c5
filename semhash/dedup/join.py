"""Candidate pairs from the codes: a split-radius hash join over distinct codes (no ``n^2`` term).

With ``a = radius // 2`` and ``b = radius - a``, two codes ``u, v`` with ``hamming(u, v) <= radius`` always
share a point ``x`` with ``hamming(u, x) <= b`` and ``hamming(v, x) <= a`` (walk from ``u`` towards ``v``).
So every distinct code is entered in a sorted table under each of its ``<= a``-bit variants, each code's
``<= b``-bit variants are looked up in it (binary search, behind a presence bitmap), and found pairs are
checked with one popcount. Exact: no pair within the radius is missed.
"""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

#: Slots of the presence bitmap: 2^29 bits, 64 MiB.
_BITMAP_BITS = 29
#: Smallest table that gets a presence bitmap (below it, binary search alone is cheaper).
_BITMAP_MIN_TABLE = 1 << 16
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


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
        table_keys: np.ndarray = keys
        table_owner: np.ndarray = np.arange(n, dtype=np.int64)
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
        i, j = cross_groups(starts[shared], counts[shared], starts[shared], counts[shared], order, upper=True)
        parts_i.append(i)
        parts_j.append(j)
        parts_d.append(np.zeros(len(i), np.int8))
    a, b, d = distinct_code_pairs(uniq, bits, radius)
    if len(a):
        i, j = cross_groups(starts[a], counts[a], starts[b], counts[b], order, upper=False)
        parts_i.append(i)
        parts_j.append(j)
        parts_d.append(np.repeat(d, counts[a] * counts[b]))
    if not parts_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int8)
    i, j, d = np.concatenate(parts_i), np.concatenate(parts_j), np.concatenate(parts_d)
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    sort = np.lexsort((hi, lo))
    return lo[sort], hi[sort], d[sort]


def cross_groups(
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
