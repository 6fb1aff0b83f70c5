"""Bit packing and Hamming distances: properties, and numpy against faiss."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from semhash.codes import (
    bit_usage,
    check_bits,
    from_sql_int,
    hamming,
    hamming_matrix,
    ints_to_packed,
    pack_bits,
    packed_to_ints,
    to_sql_int,
    unpack_bits,
)
from semhash.errors import UsageError

bit_lengths = st.sampled_from([8, 16, 24, 32, 48, 64])


@st.composite
def bit_matrices(draw: st.DrawFn) -> np.ndarray:
    bits = draw(bit_lengths)
    n = draw(st.integers(1, 20))
    return draw(arrays(np.uint8, (n, bits), elements=st.integers(0, 1)))


@given(bit_matrices())
def test_pack_unpack_roundtrip(bits: np.ndarray) -> None:
    packed = pack_bits(bits)
    assert packed.shape == (bits.shape[0], bits.shape[1] // 8)
    assert (unpack_bits(packed) == bits).all()


@given(bit_matrices())
def test_integer_form_puts_bit_i_at_position_i(bits: np.ndarray) -> None:
    values = packed_to_ints(pack_bits(bits))
    for row, value in zip(bits, values, strict=True):
        assert all(((int(value) >> i) & 1) == row[i] for i in range(len(row)))
    assert (ints_to_packed(values, bits.shape[1]) == pack_bits(bits)).all()


@given(bit_lengths, st.data())
def test_sql_integer_roundtrip(bits: int, data: st.DataObject) -> None:
    value = data.draw(st.integers(0, (1 << bits) - 1))
    stored = to_sql_int(value, bits)
    assert -(1 << 63) <= stored < (1 << 63)  # fits SQLite's INTEGER
    assert from_sql_int(stored) == value
    signed = np.array([stored], dtype=np.int64)
    assert packed_to_ints(ints_to_packed(signed, bits))[0] == value


@settings(max_examples=50)
@given(bit_lengths, st.integers(1, 30), st.integers(1, 8), st.integers(0, 2**32 - 1))
def test_hamming_numpy_matches_faiss(bits: int, n_db: int, n_q: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    db = rng.integers(0, 256, size=(n_db, bits // 8), dtype=np.uint8)
    queries = rng.integers(0, 256, size=(n_q, bits // 8), dtype=np.uint8)
    index = faiss.IndexBinaryFlat(bits)
    index.add(db)
    distances, ids = index.search(queries, n_db)
    ours = hamming_matrix(queries, db)
    for q in range(n_q):
        assert (np.take(ours[q], ids[q]) == distances[q]).all()
        assert (hamming(queries[q], db) == ours[q]).all()
    brute = np.array([[bin(a ^ b).count("1") for b in packed_to_ints(db)] for a in packed_to_ints(queries)])
    assert (ours == brute).all()


def test_bit_usage_is_fraction_of_ones() -> None:
    bits = np.zeros((4, 8), np.uint8)
    bits[:2, 0] = 1
    bits[:, 7] = 1
    usage = bit_usage(pack_bits(bits))
    assert usage[0] == 0.5 and usage[7] == 1.0 and usage[3] == 0.0


@pytest.mark.parametrize("bits", [0, 4, 12, 72, -8])
def test_bad_bit_lengths_are_usage_errors(bits: int) -> None:
    with pytest.raises(UsageError, match="multiple of 8"):
        check_bits(bits)
