"""The hashing model's query side in numpy: features (embedding + lexical vector) -> MLP -> packed code.

Files written since issue 20 also hold the decoder, so an incremental ``semhash index`` (new documents coded
with the sealed model, no retraining) gets codes and reconstruction errors without importing torch
(:meth:`NumpyHasher.encode_with_errors`; 1.1-1.6 s of such a run on the 2-core CPU). Queries do not read
the decoder's arrays (``decoder=False``). A file without them (older) is still a query hasher.

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


#: Above this many values GELU takes scipy's vectorised erf (the per-value ``math.erf`` of a query's one row
#: would cost scipy's import instead: ~0.1 s of a cold query).
VECTORISED_GELU = 4096


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU, ``x * Phi(x)`` with the error function (torch's ``nn.GELU()`` default)."""
    x64 = np.asarray(x, dtype=np.float64)
    if x64.size > VECTORISED_GELU:
        from scipy.special import erf as vectorised_erf

        erf = np.asarray(vectorised_erf(x64 / math.sqrt(2.0)), dtype=np.float64)
    else:
        erf = np.asarray(_erf(x64 / math.sqrt(2.0)), dtype=np.float64)
    return (0.5 * x64 * (1.0 + erf)).astype(np.float32)


def _linear_layers(arrays: dict[str, np.ndarray], prefix: str, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` chained ``(weight, bias)`` float32 layers named ``<prefix><i>_weight`` / ``_bias``, shape-checked."""
    layers: list[tuple[np.ndarray, np.ndarray]] = []
    for i in range(count):
        weight = arrays[f"{prefix}{i}_weight"].astype(np.float32, copy=False)
        bias = arrays[f"{prefix}{i}_bias"].astype(np.float32, copy=False)
        if weight.ndim != 2 or bias.shape != (weight.shape[0],):
            raise ValueError(f"{prefix} layer {i} has shapes {weight.shape} and {bias.shape}")
        if i and weight.shape[1] != layers[-1][0].shape[0]:
            raise ValueError(f"{prefix} layer {i} does not follow layer {i - 1}")
        layers.append((weight, bias))
    return layers


def _forward(layers: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> np.ndarray:
    """The MLP ``layers`` (Linear, exact GELU between them) applied to the rows of ``x``."""
    for i, (weight, bias) in enumerate(layers):
        x = x @ weight.T + bias
        if i < len(layers) - 1:
            x = gelu(x)
    return x


class NumpyHasher:
    """The exported hashing model: ``encode(embeddings, texts)`` gives the codes the torch model gives.

    Args:
        layers: ``(weight (out, in), bias (out,))`` of each Linear layer, with exact GELU between them.
        config: the hashing model's config (``HashConfig`` as a dict: ``input_dim``, ``bits``...).
        lexical: the lexical projection, when the model reads one.
        decoder: the decoder's two Linear layers (GELU between), when loaded: reconstruction errors.
    """

    def __init__(
        self,
        layers: list[tuple[np.ndarray, np.ndarray]],
        config: dict[str, Any],
        lexical: LexicalProjection | None,
        decoder: list[tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> None:
        self.layers = layers
        self.decoder = decoder
        self.config = config
        self.lexical = lexical
        self.bits = int(config["bits"])
        self.input_dim = int(config["input_dim"])
        expected_in = self.input_dim + (lexical.components.shape[1] if lexical is not None else 0)
        if layers[0][0].shape[1] != expected_in or layers[-1][0].shape[0] != self.bits:
            raise ValueError("layer shapes do not match the hashing config")
        if decoder is not None and (
            len(decoder) != 2 or decoder[0][0].shape[1] != self.bits or decoder[-1][0].shape[0] != expected_in
        ):
            raise ValueError("decoder shapes do not match the hashing config")

    @classmethod
    def from_bytes(cls, blob: bytes, decoder: bool = False) -> NumpyHasher:
        """Load ``hasher.npz`` (no pickle; ``decoder``: its decoder too, when it has one); malformed: ``ValueError``."""
        try:
            with np.load(io.BytesIO(blob), allow_pickle=False) as data:
                wanted = (n for n in data.files if decoder or not n.startswith("decoder"))
                arrays = {name: data[name] for name in wanted}
            meta = json.loads(bytes(arrays["meta"]).decode("utf-8"))
            if meta.get("format") != HASHER_FORMAT:
                raise ValueError(f"hasher format {meta.get('format')!r}, expected {HASHER_FORMAT}")
            layers = _linear_layers(arrays, "linear", int(meta["linear_layers"]))
            decoder_layers = int(meta.get("decoder_layers", 0))
            decoding = _linear_layers(arrays, "decoder", decoder_layers) if decoder and decoder_layers else None
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
            return cls(layers, dict(meta["config"]), lexical, decoding)
        except (KeyError, TypeError, OSError, UnicodeDecodeError, json.JSONDecodeError, EOFError) as exc:
            raise ValueError(f"{type(exc).__name__}: {exc}") from exc

    @classmethod
    def load(cls, folder: Path | Manifest, decoder: bool = False) -> NumpyHasher:
        """Load and check the hasher of a runtime folder (raises :class:`RuntimeUnavailableError`)."""
        manifest = folder if isinstance(folder, Manifest) else read_manifest(Path(folder))
        blob = read_checked(manifest, HASHER_FILE)
        try:
            hasher = cls.from_bytes(blob, decoder)
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
        return _forward(self.layers, np.asarray(features, dtype=np.float32))

    def encode(self, embeddings: np.ndarray, texts: Sequence[str] | None = None) -> np.ndarray:
        """Packed codes ``(n, bits // 8)`` uint8, as :func:`semhash.model.encode_codes` gives them."""
        if len(embeddings) == 0:
            return np.zeros((0, self.bits // 8), dtype=np.uint8)
        return pack_bits(self.logits(self.features(embeddings, texts)) > 0)

    def encode_with_errors(
        self, embeddings: np.ndarray, texts: Sequence[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Packed codes and ``1 - cosine(features, decoder(code))``, as :func:`semhash.model.encode_with_errors`.

        Raises:
            ValueError: the hasher was loaded without a decoder (an older file, or ``decoder=False``).
        """
        if self.decoder is None:
            raise ValueError("this hasher has no decoder: reconstruction errors need the torch model")
        if len(embeddings) == 0:
            return np.zeros((0, self.bits // 8), dtype=np.uint8), np.zeros(0, dtype=np.float32)
        features = self.features(embeddings, texts)
        logits = self.logits(features)
        reconstruction = _forward(self.decoder, np.where(logits > 0, 1.0, -1.0).astype(np.float32))
        dot = (reconstruction * features).sum(axis=1)
        norms = np.maximum(np.linalg.norm(reconstruction, axis=1) * np.linalg.norm(features, axis=1), 1e-8)
        return pack_bits(logits > 0), (1.0 - dot / norms).astype(np.float32)
