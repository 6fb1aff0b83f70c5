"""The hashing model's query side in numpy: features (embedding + lexical vector) -> MLP -> packed code.

Mirrors :class:`semhash.model.HashingAutoencoder` in eval mode (Linear -> exact GELU -> Linear; dropout is
the identity), from the plain arrays of ``hasher.npz`` (written by :func:`semhash.runtime.export.export_hasher`,
loaded with ``allow_pickle=False``). The lexical vector is :class:`semhash.lexical.LexicalProjection`'s own
transform (one implementation for both paths; numpy only). It imports neither torch nor scipy nor
scikit-learn: the stop words travel in the file, so the query path does not need scikit-learn's list.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from semhash.codes import pack_bits
from semhash.errors import RuntimeUnavailableError
from semhash.lexical import LexicalProjection, hashing_features
from semhash.runtime.manifest import HASHER_FILE, Manifest, read_checked, read_manifest

#: Version of ``hasher.npz``'s own layout (inside the runtime format).
HASHER_FORMAT = 1
_erf = np.frompyfunc(math.erf, 1, 1)


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU, ``x * Phi(x)`` with the error function (torch's ``nn.GELU()`` default)."""
    x64 = np.asarray(x, dtype=np.float64)
    erf = np.asarray(_erf(x64 / math.sqrt(2.0)), dtype=np.float64)
    return (0.5 * x64 * (1.0 + erf)).astype(np.float32)


class NumpyHasher:
    """The exported hashing model: ``encode(embeddings, texts)`` gives the codes the torch model gives.

    Args:
        layers: ``(weight (out, in), bias (out,))`` of each Linear layer, with exact GELU between them.
        config: the hashing model's config (``HashConfig`` as a dict: ``input_dim``, ``bits``...).
        lexical: the lexical projection, when the model reads one.
    """

    def __init__(
        self, layers: list[tuple[np.ndarray, np.ndarray]], config: dict[str, Any], lexical: LexicalProjection | None
    ) -> None:
        self.layers = layers
        self.config = config
        self.lexical = lexical
        self.bits = int(config["bits"])
        self.input_dim = int(config["input_dim"])
        expected_in = self.input_dim + (lexical.components.shape[1] if lexical is not None else 0)
        if layers[0][0].shape[1] != expected_in or layers[-1][0].shape[0] != self.bits:
            raise ValueError("layer shapes do not match the hashing config")

    @classmethod
    def from_bytes(cls, blob: bytes) -> NumpyHasher:
        """Load ``hasher.npz`` (no pickle); a malformed file raises ``ValueError``."""
        try:
            with np.load(io.BytesIO(blob), allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
            meta = json.loads(bytes(arrays["meta"]).decode("utf-8"))
            if meta.get("format") != HASHER_FORMAT:
                raise ValueError(f"hasher format {meta.get('format')!r}, expected {HASHER_FORMAT}")
            layers: list[tuple[np.ndarray, np.ndarray]] = []
            for i in range(int(meta["linear_layers"])):
                weight = arrays[f"linear{i}_weight"].astype(np.float32, copy=False)
                bias = arrays[f"linear{i}_bias"].astype(np.float32, copy=False)
                if weight.ndim != 2 or bias.shape != (weight.shape[0],):
                    raise ValueError(f"linear layer {i} has shapes {weight.shape} and {bias.shape}")
                if i and weight.shape[1] != layers[-1][0].shape[0]:
                    raise ValueError(f"linear layer {i} does not follow layer {i - 1}")
                layers.append((weight, bias))
            lexical = None
            if meta["lexical"]:
                vocabulary = json.loads(bytes(arrays["lexical_vocabulary"]).decode("utf-8"))
                stop_words = json.loads(bytes(arrays["lexical_stop_words"]).decode("utf-8"))
                idf = arrays["lexical_idf"].astype(np.float32, copy=False)
                components = arrays["lexical_components"].astype(np.float32, copy=False)
                if idf.shape != (len(vocabulary),) or components.shape[0] != len(vocabulary):
                    raise ValueError("lexical arrays do not match the vocabulary")
                lexical = LexicalProjection(
                    vocabulary, idf, components, float(arrays["lexical_weight"]), frozenset(stop_words)
                )
            return cls(layers, dict(meta["config"]), lexical)
        except (KeyError, TypeError, OSError, UnicodeDecodeError, json.JSONDecodeError, EOFError) as exc:
            raise ValueError(f"{type(exc).__name__}: {exc}") from exc

    @classmethod
    def load(cls, folder: Path | Manifest) -> NumpyHasher:
        """Load and check the hasher of a runtime folder (raises :class:`RuntimeUnavailableError`)."""
        manifest = folder if isinstance(folder, Manifest) else read_manifest(Path(folder))
        blob = read_checked(manifest, HASHER_FILE)
        try:
            hasher = cls.from_bytes(blob)
        except ValueError as exc:
            raise RuntimeUnavailableError(
                f"the exported runtime at {manifest.folder} has an unusable {HASHER_FILE} ({exc}): re-export it"
            ) from exc
        if hasher.input_dim != manifest.dim:
            raise RuntimeUnavailableError(
                f"the exported runtime at {manifest.folder} has a hasher for {hasher.input_dim}-dim embeddings "
                f"but an encoder of {manifest.dim}: re-export it"
            )
        return hasher

    def features(self, embeddings: np.ndarray, texts: Sequence[str] | None = None) -> np.ndarray:
        """The model's input (see ``HashingAutoencoder.features``)."""
        return hashing_features(self.lexical, embeddings, texts)

    def logits(self, features: np.ndarray) -> np.ndarray:
        """``(n, bits)`` float32 pre-binarization outputs; a bit is 1 where its logit is positive."""
        x = np.asarray(features, dtype=np.float32)
        for i, (weight, bias) in enumerate(self.layers):
            x = x @ weight.T + bias
            if i < len(self.layers) - 1:
                x = gelu(x)
        return x

    def encode(self, embeddings: np.ndarray, texts: Sequence[str] | None = None) -> np.ndarray:
        """Packed codes ``(n, bits // 8)`` uint8, as :func:`semhash.model.encode_codes` gives them."""
        if len(embeddings) == 0:
            return np.zeros((0, self.bits // 8), dtype=np.uint8)
        return pack_bits(self.logits(self.features(embeddings, texts)) > 0)
