"""Reference binary hashes, to compare the learned codes with: LSH, PCA-sign and ITQ (numpy only).

Every baseline is a :class:`LinearHasher`: ``bit_i = [(x - mean) @ projection[:, i] >= 0]``, packed with
:func:`semhash.codes.pack_bits` (so codes compare with the model's own, bit for bit). They are fitted on
database embeddings only; a query is hashed from its own embedding.

- **LSH** (random-hyperplane / SimHash, Charikar 2002): Gaussian hyperplanes through the origin, data
  not centred. The sign of a random projection preserves the angle between vectors in expectation.
- **PCA-sign**: centre, project on the top ``bits`` principal directions, take the sign.
- **ITQ** (Gong & Lazebnik, CVPR 2011): PCA to ``bits`` dimensions, then an orthogonal rotation that
  minimises the quantisation error ``||sign(VR) - VR||_F``, found by alternating minimisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from semhash.codes import pack_bits

BASELINES = ("lsh", "pca-sign", "itq")


@dataclass(frozen=True)
class LinearHasher:
    """A hash that is a sign of an affine projection of the embedding."""

    name: str
    mean: np.ndarray
    projection: np.ndarray

    @property
    def bits(self) -> int:
        """Code length."""
        return int(self.projection.shape[1])

    def encode(self, embeddings: np.ndarray) -> np.ndarray:
        """``(n, dim)`` floats to ``(n, bits // 8)`` packed uint8 codes."""
        x = np.asarray(embeddings, dtype=np.float64) - self.mean
        return pack_bits(x @ self.projection >= 0)


def fit_lsh(dim: int, bits: int, seed: int = 0) -> LinearHasher:
    """Random-hyperplane LSH: ``bits`` Gaussian directions, no centring."""
    rng = np.random.default_rng(seed)
    return LinearHasher("lsh", np.zeros(dim), rng.standard_normal((dim, bits)))


def _principal_directions(x: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and top-``bits`` principal directions ``(dim, bits)`` of ``x``."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[0] < 2:
        raise ValueError("PCA needs at least two embeddings")
    mean = x.mean(axis=0)
    centred = x - mean
    cov = centred.T @ centred / (x.shape[0] - 1)
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1][:bits]
    directions = vectors[:, order]
    if directions.shape[1] < bits:  # fewer dimensions than bits: pad with random directions
        rng = np.random.default_rng(0)
        extra = rng.standard_normal((x.shape[1], bits - directions.shape[1]))
        directions = np.hstack([directions, extra])
    # Deterministic sign for each eigenvector (eigh's sign is arbitrary).
    signs = np.sign(directions[np.abs(directions).argmax(axis=0), np.arange(directions.shape[1])])
    return mean, directions * np.where(signs == 0, 1.0, signs)


def fit_pca_sign(x: np.ndarray, bits: int) -> LinearHasher:
    """PCA-sign: the sign of each of the top ``bits`` centred principal components."""
    mean, directions = _principal_directions(x, bits)
    return LinearHasher("pca-sign", mean, directions)


def fit_itq(x: np.ndarray, bits: int, seed: int = 0, iterations: int = 50) -> LinearHasher:
    """Iterative quantisation: PCA, then the rotation ``R`` minimising ``||B - VR||`` (``B = sign(VR)``)."""
    mean, directions = _principal_directions(x, bits)
    v = (np.asarray(x, dtype=np.float64) - mean) @ directions
    rng = np.random.default_rng(seed)
    rotation, _ = np.linalg.qr(rng.standard_normal((bits, bits)))
    for _ in range(iterations):
        b = np.where(v @ rotation >= 0, 1.0, -1.0)
        u, _s, vt = np.linalg.svd(b.T @ v)
        rotation = vt.T @ u.T
    return LinearHasher("itq", mean, directions @ rotation)


def fit_baseline(name: str, x: np.ndarray, bits: int, seed: int = 0) -> LinearHasher:
    """Fit the baseline called ``name`` (one of :data:`BASELINES`) on database embeddings ``x``."""
    if name == "lsh":
        return fit_lsh(x.shape[1], bits, seed)
    if name == "pca-sign":
        return fit_pca_sign(x, bits)
    if name == "itq":
        return fit_itq(x, bits, seed)
    raise ValueError(f"unknown baseline {name!r}: choose from {', '.join(BASELINES)}")
