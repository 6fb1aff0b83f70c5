"""Baseline hashes: shapes, determinism, and the properties that define them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semhash.baselines import BASELINES, fit_baseline, fit_itq, fit_lsh, fit_pca_sign
from semhash.codes import hamming_matrix, unpack_bits


def _clustered(n: int = 300, dim: int = 24, clusters: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)) * 3
    labels = rng.integers(clusters, size=n)
    x = centres[labels] + rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


@pytest.mark.parametrize("name", BASELINES)
@pytest.mark.parametrize("bits", [8, 16, 32])
def test_shapes_and_determinism(name: str, bits: int) -> None:
    x, _ = _clustered()
    first = fit_baseline(name, x, bits, seed=3).encode(x)
    again = fit_baseline(name, x, bits, seed=3).encode(x)
    assert first.shape == (len(x), bits // 8) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, again)


def test_unknown_baseline() -> None:
    with pytest.raises(ValueError, match="unknown baseline"):
        fit_baseline("nope", np.zeros((4, 3)), 8)


def test_pca_sign_is_balanced_on_first_component() -> None:
    x, _ = _clustered(n=400)
    bits = unpack_bits(fit_pca_sign(x, 8).encode(x))
    # Centred projections: every bit is set for a sizeable share of the data.
    usage = bits.mean(axis=0)
    assert usage.min() > 0.1 and usage.max() < 0.9


def test_itq_rotation_is_orthogonal_and_lowers_quantisation_error() -> None:
    x, _ = _clustered(n=500, dim=32)
    pca = fit_pca_sign(x, 16)
    itq = fit_itq(x, 16, seed=0)
    # ITQ's projection is PCA's directions times an orthogonal matrix.
    rotation = np.linalg.lstsq(pca.projection, itq.projection, rcond=None)[0]
    np.testing.assert_allclose(rotation.T @ rotation, np.eye(16), atol=1e-6)

    def quantisation_error(h: object) -> float:
        v = (x - h.mean) @ h.projection  # type: ignore[attr-defined]
        return float(((np.where(v >= 0, 1.0, -1.0) - v) ** 2).sum())

    assert quantisation_error(itq) < quantisation_error(pca)


def test_itq_keeps_clusters_together() -> None:
    x, labels = _clustered(n=400, clusters=4)
    codes = fit_itq(x, 16).encode(x)
    dist = hamming_matrix(codes, codes)
    same = labels[:, None] == labels[None, :]
    assert dist[same].mean() < dist[~same].mean()


@settings(max_examples=25, deadline=None)
@given(
    dim=st.integers(2, 40),
    bits=st.sampled_from([8, 16, 24]),
    seed=st.integers(0, 2**16),
    scale=st.floats(0.1, 10.0),
)
def test_lsh_ignores_positive_scaling(dim: int, bits: int, seed: int, scale: float) -> None:
    """Random-hyperplane LSH hashes directions: a positive rescaling never changes a code."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((20, dim))
    hasher = fit_lsh(dim, bits, seed)
    np.testing.assert_array_equal(hasher.encode(x), hasher.encode(x * scale))


def test_pca_with_fewer_dimensions_than_bits() -> None:
    x, _ = _clustered(n=50, dim=5)
    assert fit_baseline("itq", x, 16).encode(x).shape == (50, 2)
