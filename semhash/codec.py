"""The codec: text -> embedding -> hashing features -> code, in one place, for every service.

Ingest, search, ``dedup --against`` and serve all turn texts into codes the same way: the index's embedding
model, then the index's active hashing model (which reads the text too, for its lexical vector). A
:class:`Codec` is built from the store (:meth:`Codec.from_store`) on the runtime that
:func:`semhash.encoders.choose_runtime` chose:

- ``onnx``: the exported, torch-free pipeline in ``<db>.runtime/`` (:mod:`semhash.runtime`), used when the
  folder is present, intact and *fresh*: made for the index's embedding model and for the very hashing model
  that is active (its row id and the sha256 of its stored weights), and *sealed*: the folder the index recorded
  when it exported it (:mod:`semhash.runtime.seal`), every file checked against that record;
- ``torch``: the sentence-transformers encoder and the torch hashing model, loaded from the store.

``auto`` (the default; ``SEMHASH_RUNTIME`` or ``--runtime`` override it) takes the fast path when it can
and says why it did not otherwise (:attr:`Codec.note`); ``onnx`` demands it (a stale or damaged folder is
then a :class:`~semhash.errors.RuntimeUnavailableError`). Models load on first use, so a codec that only
ever hashes stored embeddings never loads an encoder, and the fast path never imports torch. A runtime
folder that passed its checks but fails to load falls back to torch under ``auto``.

Hashers (the names, once): a *hasher* maps embeddings (and texts) to packed codes, the :class:`Hasher`
protocol. The index's hashing model is a :class:`~semhash.model.HashingAutoencoder` (trained by
:func:`semhash.train.train_hasher`); it codes on one of two runtimes: :class:`TorchHasher` (the stored
torch model, which also gives reconstruction errors) or :class:`~semhash.runtime.NumpyHasher` (its numpy
export, written by :func:`semhash.runtime.export.export_hasher`), codes equal. The baselines'
:class:`~semhash.baselines.LinearHasher` (LSH, PCA-sign, ITQ; ``semhash evaluate``) hash embeddings only
and never reach a codec.

The runtime folder's lifecycle (export, refresh, seal, clear) lives in :mod:`semhash.runtime.folder`; which
encoder embeds, in :mod:`semhash.encoders`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from semhash.encoders import AdaptedWeights, choose_runtime, onnx_encoder, quantised_encoder, torch_encoder
from semhash.errors import RuntimeUnavailableError
from semhash.runtime.manifest import Manifest
from semhash.store import Store, StoredModel

if TYPE_CHECKING:
    from semhash.embed import Encoder
    from semhash.model import HashingAutoencoder


class Hasher(Protocol):
    """Embeddings (and texts) -> packed codes: the torch model or the exported numpy one."""

    def encode(self, embeddings: np.ndarray, texts: Sequence[str] | None = None) -> np.ndarray:
        """Packed codes ``(n, bits // 8)`` uint8."""
        ...


@dataclass
class TorchHasher:
    """The stored torch hashing model behind the :class:`Hasher` protocol (and its reconstruction errors)."""

    model: HashingAutoencoder
    device: str = "cpu"

    def encode(self, embeddings: np.ndarray, texts: Sequence[str] | None = None) -> np.ndarray:
        """Packed codes (see :func:`semhash.model.encode_codes`)."""
        from semhash.model import encode_codes

        return encode_codes(self.model, embeddings, self.device, texts=self._texts(texts))

    def encode_with_errors(
        self, embeddings: np.ndarray, texts: Sequence[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Packed codes and reconstruction errors (see :func:`semhash.model.encode_with_errors`)."""
        from semhash.model import encode_with_errors

        return encode_with_errors(self.model, embeddings, self.device, texts=self._texts(texts))

    def _texts(self, texts: Sequence[str] | None) -> Sequence[str] | None:
        return texts if self.model.lexical is not None else None

    @property
    def reads_texts(self) -> bool:
        """Whether codes depend on the texts (a lexical vector beside the embedding)."""
        return self.model.lexical is not None


class Codec:
    """Texts -> embeddings -> codes with one index's models, on one runtime (models load on first use).

    Args:
        model: the index's active hashing model.
        embedding_model: the index's embedding model (recorded name).
        runtime: ``"onnx"`` (with ``manifest``) or ``"torch"``.
        manifest: the checked, fresh runtime folder (``onnx`` only).
        encoder: an encoder already loaded (tests, a server's warm one); used whatever the runtime.
        hasher: a hasher already loaded (e.g. the model training just produced).
        device: the torch path's device (``auto``, ``cpu``, ``cuda``...; resolved when torch is first used).
        max_windows: most windows embedded per document (0 = all).
        note: why the fast path is not used (``auto`` only), for the user.
        quick_start: load the exported encoder for one query and exit (``semhash query``), not for
            throughput (see :class:`semhash.runtime.OnnxEncoder`).
    """

    def __init__(
        self,
        model: StoredModel,
        embedding_model: str | None,
        *,
        runtime: str = "torch",
        manifest: Manifest | None = None,
        encoder: Encoder | None = None,
        hasher: Hasher | None = None,
        device: str = "cpu",
        max_windows: int = 0,
        note: str | None = None,
        fallback: bool = False,
        quick_start: bool = False,
        adapted: AdaptedWeights | None = None,
        precision: str = "fp32",
    ) -> None:
        if runtime == "onnx" and manifest is None:
            raise ValueError("the onnx runtime needs its checked manifest")
        self.model = model
        self.embedding_model = embedding_model
        self.runtime = runtime
        self.manifest = manifest
        self.device = device
        self.max_windows = max_windows
        self.quick_start = quick_start
        self.note = note
        #: fall back to torch when the runtime folder fails to load (``auto``); ``onnx`` raises instead.
        self.fallback = fallback
        self._encoder = encoder
        self._hasher = hasher
        #: where an adapted encoder's weights are read from (the store), when the index has one.
        self._adapted = adapted
        #: the index's encoder precision (:mod:`semhash.runtime.precision`): int8 or bf16 never embeds on torch.
        self.precision = precision

    @classmethod
    def from_store(
        cls,
        store: Store,
        runtime: str | None = None,
        *,
        device: str = "auto",
        encoder: Encoder | None = None,
        max_windows: int | None = None,
        quick_start: bool = False,
    ) -> Codec:
        """The codec of an index: its embedding model and active hashing model, on the runtime asked for.

        A long text is embedded with the index's recorded window cap (``max_windows=None``), so that what
        it is compared with was made the same way.

        Raises:
            IndexMissingError: the index has no trained model yet.
            RuntimeUnavailableError: ``runtime="onnx"`` and no fresh, intact runtime folder.
            UsageError: an unknown runtime.
        """
        choice = choose_runtime(store, runtime)
        # The device stays unresolved here: resolving it imports torch, which the fast path never does.
        return cls(choice.model, choice.embedding_model, runtime=choice.runtime, manifest=choice.manifest,
                   encoder=encoder, device=device, note=choice.note,
                   max_windows=(store.max_windows or 0) if max_windows is None else max_windows,
                   fallback=choice.fallback, quick_start=quick_start and choice.runtime == "onnx",
                   adapted=choice.weights, precision=choice.precision)  # fmt: skip

    # -- the models, loaded on first use ------------------------------------------------------------
    @property
    def encoder(self) -> Encoder:
        """The embedding model: the exported one on the fast path, sentence-transformers otherwise."""
        if self._encoder is None:
            if self.manifest is not None:
                try:
                    self._encoder = onnx_encoder(self.manifest, self.max_windows, self.quick_start)
                except RuntimeUnavailableError as exc:
                    self._fall_back(exc)
            if self._encoder is None and self.precision != "fp32":
                # Without its sealed folder an int8 (bf16) index still embeds at its precision: the per-model export.
                self._encoder = quantised_encoder(self.embedding_model, self.precision, self.max_windows)
            if self._encoder is None:
                # The index's adapted encoder when it has one (`semhash train --adapt`), else the named model.
                self._encoder = torch_encoder(
                    self.embedding_model, self._torch_device(), self.max_windows, self._adapted
                )
        return self._encoder

    @property
    def hasher(self) -> Hasher:
        """The hashing model: the exported numpy one on the fast path, the stored torch model otherwise."""
        if self._hasher is None:
            if self.manifest is not None:
                from semhash.runtime import NumpyHasher

                try:
                    self._hasher = NumpyHasher.load(self.manifest)
                except RuntimeUnavailableError as exc:
                    self._fall_back(exc)
            if self._hasher is None:
                from semhash.model import model_from_bytes

                self._hasher = TorchHasher(model_from_bytes(self.model.weights), self._torch_device())
        return self._hasher

    def _torch_device(self) -> str:
        """The torch path's device, resolved on first need (``auto`` asks torch whether CUDA is there)."""
        from semhash.device import resolve_device

        self.device = resolve_device(self.device)
        return self.device

    def keep_encoder(self, other: Codec) -> None:
        """Take ``other``'s loaded encoder when it is the same index's, on the same runtime and embedding model.

        ``train --adapt`` changes the model under a long-lived searcher: the frozen encoder must not outlive it.
        """
        same = other.runtime == self.runtime and other.embedding_model == self.embedding_model
        if self._encoder is None and same and other.precision == self.precision:
            self._encoder = other._encoder

    def _fall_back(self, exc: RuntimeUnavailableError) -> None:
        """A runtime folder that passed its manifest check failed to load: use torch (``auto``) or raise."""
        if not self.fallback:
            raise exc
        self.runtime, self.manifest, self.note = "torch", None, str(exc)
        # Models of the runtime already loaded stay: each alone gives the torch path's results (parity tests).

    @property
    def bits(self) -> int:
        """Code length of the hashing model."""
        return self.model.bits

    # -- text -> code --------------------------------------------------------------------------------
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """``(n, dim)`` float32 unit embeddings."""
        return np.asarray(self.encoder.encode(list(texts)), dtype=np.float32)

    def code(self, embeddings: np.ndarray, texts: Sequence[str] | None) -> np.ndarray:
        """Packed codes ``(n, bits // 8)`` of documents from their embeddings (and texts)."""
        return self.hasher.encode(np.asarray(embeddings, dtype=np.float32), texts)

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings and packed codes of ``texts``."""
        embeddings = self.embed(texts)
        return embeddings, self.code(embeddings, texts)

    def code_with_errors(self, embeddings: np.ndarray, texts: Sequence[str] | None) -> tuple[np.ndarray, np.ndarray]:
        """Packed codes and reconstruction errors (indexing; the torch model: only it has a decoder)."""
        hasher = self.hasher
        if not isinstance(hasher, TorchHasher):
            from semhash.model import model_from_bytes

            hasher = TorchHasher(model_from_bytes(self.model.weights), self._torch_device())
        return hasher.encode_with_errors(np.asarray(embeddings, dtype=np.float32), texts)

    @property
    def reads_texts(self) -> bool:
        """Whether :meth:`code` needs the texts (the model was trained with a lexical vector)."""
        hasher = self.hasher
        if isinstance(hasher, TorchHasher):
            return hasher.reads_texts
        return getattr(hasher, "lexical", None) is not None

    def check_encoder(self, store: Store) -> None:
        """Refuse an encoder other than the index's (a given encoder is checked, the index's own trusted)."""
        encoder = self.encoder
        store.check_embedding_model(encoder.name, encoder.dim)
