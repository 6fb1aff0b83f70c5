"""The hashing autoencoder: features -> ``bits`` logits -> binary code -> reconstructed features.

The features are the document's embedding, joined (when the model was trained with them, the default)
by its lexical vector from the model's own :class:`semhash.lexical.LexicalProjection`; so encoding takes
the document's text beside its embedding. The model knows nothing of files or SQLite. A code bit is 1
where its logit is positive (see :mod:`semhash.codes` for the bit order). Training lives in
:mod:`semhash.train`.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from semhash.blobs import read_blob
from semhash.codes import pack_bits
from semhash.config import MAX_BITS
from semhash.errors import CorruptModelError
from semhash.lexical import LexicalProjection, hashing_features


@dataclass
class HashConfig:
    """Shape of the autoencoder; saved with its weights so a stored model describes itself."""

    #: embedding length.
    input_dim: int
    bits: int = 32
    hidden: int = 512
    dropout: float = 0.1
    #: length of the lexical vector appended to the embedding (0: the model reads the embedding only).
    lexical_dim: int = 0

    @property
    def feature_dim(self) -> int:
        """Width of the model's input (and of its reconstruction)."""
        return self.input_dim + self.lexical_dim


class HashingAutoencoder(nn.Module):
    """MLP encoder to ``bits`` logits, straight-through sign bottleneck, MLP decoder."""

    def __init__(self, config: HashConfig) -> None:
        super().__init__()
        self.config = config
        #: set by training when ``lexical_dim > 0``; encoding then needs the texts.
        self.lexical: LexicalProjection | None = None
        self.encoder = nn.Sequential(
            nn.Linear(config.feature_dim, config.hidden),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, config.bits),
        )
        self.decoder = nn.Sequential(
            nn.Linear(config.bits, config.hidden),
            nn.GELU(),
            nn.Linear(config.hidden, config.feature_dim),
        )

    def features(self, embeddings: np.ndarray, texts: Sequence[str] | None = None) -> np.ndarray:
        """The model's input for documents: their embeddings, joined by their lexical vectors if it uses them."""
        return hashing_features(self.lexical, embeddings, texts)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-binarization outputs; the code is ``logits > 0``."""
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(logits, code in {-1, +1} with straight-through gradients, reconstruction)``."""
        logits = self.logits(x)
        soft = torch.tanh(logits)
        hard = torch.where(logits > 0, 1.0, -1.0)
        code = soft + (hard - soft).detach()
        return logits, code, self.decoder(code)


@torch.no_grad()
def _batched(
    model: HashingAutoencoder,
    embeddings: np.ndarray,
    device: str,
    fn: Callable[[torch.Tensor], torch.Tensor],
    batch: int = 8192,
) -> list[np.ndarray]:
    model.eval()
    # The caller's model goes back where it was: encoding on a GPU must not leave a model that callers hold
    # (a trained one is returned on the CPU) on that GPU. A no-op copy when both are the CPU.
    home = next(model.parameters()).device
    model.to(device)
    try:
        outs = []
        for start in range(0, len(embeddings), batch):
            x = torch.as_tensor(np.asarray(embeddings[start : start + batch], dtype=np.float32), device=device)
            outs.append(fn(x).cpu().numpy())
    finally:
        model.to(home)
    return outs


def encode_codes(
    model: HashingAutoencoder, embeddings: np.ndarray, device: str = "cpu", *, texts: Sequence[str] | None = None
) -> np.ndarray:
    """Packed codes ``(n, bits // 8)`` uint8 for ``(n, dim)`` embeddings (and their texts, see ``features``)."""
    if len(embeddings) == 0:
        return np.zeros((0, model.config.bits // 8), dtype=np.uint8)
    outs = _batched(model, model.features(embeddings, texts), device, lambda x: model.logits(x) > 0)
    return pack_bits(np.concatenate(outs))


def reconstruction_error(
    model: HashingAutoencoder, embeddings: np.ndarray, device: str = "cpu", *, texts: Sequence[str] | None = None
) -> np.ndarray:
    """``1 - cosine(features, decoder(code))`` per row: high for documents unlike the corpus."""
    return encode_with_errors(model, embeddings, device, texts=texts)[1]


def encode_with_errors(
    model: HashingAutoencoder, embeddings: np.ndarray, device: str = "cpu", *, texts: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`encode_codes` and :func:`reconstruction_error` together: features and forward pass computed once."""
    bits = model.config.bits
    if len(embeddings) == 0:
        return np.zeros((0, bits // 8), dtype=np.uint8), np.zeros(0, dtype=np.float32)

    def code_and_error(x: torch.Tensor) -> torch.Tensor:
        logits, _, recon = model(x)
        error = 1 - nn.functional.cosine_similarity(recon, x, dim=1)
        return torch.cat([(logits > 0).float(), error[:, None]], dim=1)

    out = np.concatenate(_batched(model, model.features(embeddings, texts), device, code_and_error))
    return pack_bits(out[:, :bits] > 0), out[:, bits].astype(np.float32)


def model_to_bytes(model: HashingAutoencoder) -> bytes:
    """Serialize config, weights and lexical projection (torch's zip format, tensors only, no pickled code)."""
    buffer = io.BytesIO()
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload: dict[str, object] = {"config": json.dumps(asdict(model.config)), "state": state}
    if model.lexical is not None:
        payload["lexical"] = torch.frombuffer(bytearray(model.lexical.to_bytes()), dtype=torch.uint8)
    torch.save(payload, buffer)
    return buffer.getvalue()


#: Bounds of a stored model's shape, checked before anything is allocated from it.
_CONFIG_LIMITS = {"input_dim": 1 << 16, "bits": MAX_BITS, "hidden": 1 << 16, "lexical_dim": 1 << 16}


def model_from_bytes(blob: bytes | None) -> HashingAutoencoder:
    """Inverse of :func:`model_to_bytes`, through the one safe reader of stored blobs (:mod:`semhash.blobs`).

    The blob comes from the database, so it is untrusted: whatever is wrong with it (not torch's format,
    truncated, pickled objects, an absurd shape, missing or misshapen tensors) is one
    :class:`CorruptModelError` that says how to rebuild the model, never torch's own advice.

    Raises:
        CorruptModelError: the blob is not a model this version wrote.
    """
    return read_blob(blob, "config", _UNREADABLE, "not a semhash model", _model_from_payload)


_UNREADABLE = (
    "the hashing model stored in the index is unreadable ({why}): run `semhash train` to rebuild it "
    "from the stored embeddings (nothing is re-embedded)"
)


def _model_from_payload(payload: dict, config: str) -> HashingAutoencoder:
    """The model of a loaded payload, its configuration checked before anything is allocated from it."""
    fields = json.loads(config)
    if not isinstance(fields, dict) or not set(fields) <= {f.name for f in dataclasses.fields(HashConfig)}:
        raise CorruptModelError(_UNREADABLE.format(why="unknown model configuration"))
    for name, limit in _CONFIG_LIMITS.items():
        value = fields.get(name, 0 if name == "lexical_dim" else 1)
        if not isinstance(value, int) or not 0 <= value <= limit or (name != "lexical_dim" and value == 0):
            raise CorruptModelError(_UNREADABLE.format(why=f"{name} {value!r} out of range"))
    model = HashingAutoencoder(HashConfig(**fields))
    model.load_state_dict(payload["state"])
    if "lexical" in payload:
        model.lexical = LexicalProjection.from_bytes(payload["lexical"].numpy().tobytes())
    model.eval()
    return model
