"""Binary codes: packing, integer form and Hamming distance.

Bit order (documented in the README, relied on by every stored code):
bit ``i`` of a code is the ``i``-th output of the hashing model. Packed for faiss, bit ``i`` lives in
byte ``i // 8`` at position ``i % 8`` counted from the least significant bit (``numpy.packbits`` with
``bitorder="little"``). As an integer, the bytes are little-endian, so bit ``i`` is ``(code >> i) & 1``.
SQLite stores that unsigned integer; a 64-bit code does not fit SQLite's signed INTEGER, so 64-bit codes
are stored as the signed two's-complement value with the same 64 bits (``code & 0xFFFFFFFFFFFFFFFF``
recovers it).
"""

from __future__ import annotations

import numpy as np

from semhash.config import MAX_BITS, MIN_BITS
from semhash.errors import UsageError


def check_bits(bits: int) -> int:
    """Return ``bits`` if it is a usable code length, else raise :class:`UsageError`."""
    if bits % 8 or not MIN_BITS <= bits <= MAX_BITS:
        raise UsageError(f"--bits must be a multiple of 8 between {MIN_BITS} and {MAX_BITS}, not {bits}")
    return bits


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """Pack an ``(n, b)`` array of 0/1 (or bool) into ``(n, b // 8)`` uint8, faiss's layout."""
    bits = np.asarray(bits)
    if bits.ndim != 2 or bits.shape[1] % 8:
        raise ValueError(f"expected (n, multiple of 8) bits, got shape {bits.shape}")
    return np.packbits(bits.astype(bool), axis=1, bitorder="little")


def unpack_bits(packed: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pack_bits`: ``(n, b // 8)`` uint8 to ``(n, b)`` uint8 of 0/1."""
    return np.unpackbits(np.asarray(packed, dtype=np.uint8), axis=1, bitorder="little")


def packed_to_ints(packed: np.ndarray) -> np.ndarray:
    """``(n, nbytes)`` uint8 (nbytes <= 8) to ``(n,)`` uint64, little-endian."""
    packed = np.asarray(packed, dtype=np.uint8)
    n, nbytes = packed.shape
    if nbytes > 8:
        raise ValueError("codes longer than 64 bits have no integer form")
    padded = np.zeros((n, 8), dtype=np.uint8)
    padded[:, :nbytes] = packed
    return padded.view("<u8").reshape(n)


def ints_to_packed(values: np.ndarray, bits: int) -> np.ndarray:
    """``(n,)`` integer codes (unsigned, or SQLite's signed int64 form) to ``(n, bits // 8)`` uint8."""
    arr = np.asarray(values)
    as_u64 = arr if arr.dtype == np.uint64 else arr.astype(np.int64).view(np.uint64)
    return as_u64.astype("<u8").reshape(-1, 1).view(np.uint8)[:, : bits // 8].copy()


def to_sql_int(value: int, bits: int) -> int:
    """The value SQLite stores for an unsigned code (64-bit codes become signed two's complement)."""
    value = int(value)
    if bits == 64 and value >= 1 << 63:
        return value - (1 << 64)
    return value


def from_sql_int(value: int) -> int:
    """Inverse of :func:`to_sql_int`: the unsigned code."""
    return int(value) & 0xFFFFFFFFFFFFFFFF


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Hamming distance between two ``(n, nbytes)`` packed arrays (or broadcastable)."""
    return np.bitwise_count(np.bitwise_xor(np.asarray(a, np.uint8), np.asarray(b, np.uint8))).sum(
        axis=-1, dtype=np.int64
    )


def hamming_matrix(queries: np.ndarray, database: np.ndarray, block: int = 4096) -> np.ndarray:
    """All ``(nq, nd)`` Hamming distances between packed queries and packed database codes.

    Works on integer forms (XOR + popcount of uint64), in blocks of queries to bound memory.
    """
    q = packed_to_ints(queries)
    d = packed_to_ints(database)
    out = np.empty((q.shape[0], d.shape[0]), dtype=np.int32)
    for start in range(0, q.shape[0], block):
        chunk = q[start : start + block, None] ^ d[None, :]
        out[start : start + block] = np.bitwise_count(chunk)
    return out


def bit_usage(packed: np.ndarray) -> np.ndarray:
    """Fraction of codes with each bit set: 0.5 everywhere is a perfectly balanced code."""
    if len(packed) == 0:
        return np.zeros(np.asarray(packed).shape[1] * 8 if np.asarray(packed).ndim == 2 else 0)
    return unpack_bits(packed).mean(axis=0)
