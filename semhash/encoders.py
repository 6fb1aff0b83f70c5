"""Which encoder embeds: the one place it is chosen, for queries, indexing, Ray workers and ``evaluate``.

An index embeds with one recorded model (``store.embedding_model``), but on one of three encoders:

- **torch**: the sentence-transformers model (:func:`semhash.embed.load_encoder`), or, when the recorded
  name is an adapted encoder's (``semhash train --adapt``), the base model with the index's stored,
  checked layers swapped in (:func:`semhash.adapted.load_adapted_encoder`): :func:`torch_encoder`;
- **onnx**: the exported, torch-free encoder of the index's sealed ``<db>.runtime/`` folder
  (:class:`semhash.runtime.OnnxEncoder`, made and checked by :mod:`semhash.runtime.folder`);
- **the per-model export cache** (:mod:`semhash.runtime.cache`), for a first index with
  ``SEMHASH_INDEX_EXPORT=1``.

Who asks, and what they get:

- a query (:class:`semhash.codec.Codec`): :func:`choose_runtime` reads ``--runtime`` / ``SEMHASH_RUNTIME``
  (:func:`resolve_runtime`: ``auto``, ``onnx``, ``torch``) and takes the sealed folder when it can, saying why
  not otherwise; the codec then builds :func:`onnx_encoder` or :func:`torch_encoder` on first use;
- indexing (:mod:`semhash.ingest`): :func:`index_encoder`: the index's runtime folder on a CPU, else the
  cached export (opt-in), else torch; the exported ones hand huge documents to torch
  (:class:`FastIndexEncoder`);
- a Ray worker (:mod:`semhash.engine.ray_engine`): :func:`torch_encoder` with the adapted weights the driver
  read (:func:`shipped_weights`) and shipped;
- ``semhash evaluate``: :func:`torch_encoder` for the model asked for.

An index's encoder precision (:mod:`semhash.runtime.precision`: ``fp32``, ``int8`` or ``bf16``, recorded in the
index) narrows all of this: an int8 (bf16) index embeds only with an int8 (bf16) export (its sealed folder's,
else the per-model cache's, made on demand: :func:`quantised_encoder`), never with torch, on any device; when
none can be had, the embedding is refused (:class:`~semhash.errors.RuntimeUnavailableError`), never made at fp32.

Every torch path loads through :func:`semhash.embed.load_encoder` (looked up when called, so tests can
replace it); torch and onnxruntime are imported only when an encoder is built.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

import numpy as np

from semhash.adapted import check_blob, is_adapted
from semhash.config import ENV_INDEX_EXPORT, ENV_RUNTIME, STATIC_MODEL, env_flag, env_text
from semhash.errors import IndexMissingError, RuntimeUnavailableError, UsageError
from semhash.runtime import runtime_folder
from semhash.runtime.folder import sealed_runtime
from semhash.runtime.manifest import Manifest, read_manifest
from semhash.runtime.precision import index_precision
from semhash.runtime.seal import SEAL_KEY, Seal, check_seal, verify_sealed
from semhash.store import Store, StoredModel

if TYPE_CHECKING:
    from semhash.embed import Encoder, EncodeStats, LongDocumentEncoder, WindowEncoder, Windows

#: Runtime choices of ``--runtime`` / ``SEMHASH_RUNTIME``.
RUNTIMES = ("auto", "onnx", "torch")


def resolve_runtime(value: str | None = None) -> str:
    """The runtime asked for: the flag, else ``SEMHASH_RUNTIME``, else ``auto``.

    Raises:
        UsageError: a value other than ``auto``, ``onnx`` or ``torch``.
    """
    chosen = (value or env_text(ENV_RUNTIME) or "auto").strip().lower()
    if chosen not in RUNTIMES:
        raise UsageError(f"--runtime (or {ENV_RUNTIME}) must be one of {', '.join(RUNTIMES)}, not {chosen!r}")
    return chosen


def _torch_demanded() -> bool:
    """``SEMHASH_RUNTIME=torch``: indexing embeds with torch too."""
    return env_text(ENV_RUNTIME).strip().lower() == "torch"


# -- where an adapted encoder's weights come from ------------------------------------------------------
class AdaptedWeights(Protocol):
    """Where an adapted encoder's stored weights are read from (a :class:`semhash.store.Store`, or below)."""

    def adapted_encoder(self, name: str) -> bytes | None:
        """The stored blob of the adapted encoder recorded as ``name`` (``None``: none stored)."""
        ...


@dataclass
class ReadWeights:
    """An adapted encoder's blob already read (from the store when a codec was made, or shipped to a worker)."""

    name: str | None
    blob: bytes | None

    def adapted_encoder(self, name: str) -> bytes | None:
        """The blob when ``name`` is the one it was read for."""
        return self.blob if name == self.name else None


@dataclass
class LaterWeights:
    """An adapted encoder's blob, read from the index at ``path`` only if the torch path is ever needed.

    The fast path embeds with the adapted encoder's export and never reads its weights (megabytes of blob
    that a cold query would read for nothing); a runtime folder that fails to load after all falls back to
    torch, which reads them then, checked against the recorded name as always.
    """

    path: Path

    def adapted_encoder(self, name: str) -> bytes | None:
        """The blob stored in the index at :attr:`path`."""
        with Store.open(self.path) as store:
            return store.adapted_encoder(name)


def shipped_weights(store: Store, name: str) -> bytes | None:
    """The adapted encoder's blob a driver ships to its workers (``None`` for a frozen model).

    Checked here against the recorded name before it travels (and again by each worker before it loads it).

    Raises:
        CorruptModelError: the index records an adapted encoder and holds no matching blob.
    """
    return check_blob(name, store.adapted_encoder(name)) if is_adapted(name) else None


# -- the encoders ---------------------------------------------------------------------------------------
def torch_encoder(
    model: str | None, device: str, max_windows: int = 0, weights: AdaptedWeights | None = None
) -> Encoder:
    """The torch encoder for ``model`` on a resolved ``device``: the adapted one when ``model`` names one.

    Args:
        model: the recorded (or user's) model name; ``None`` is the packaged default.
        device: a resolved device (``cpu``, ``cuda``...).
        max_windows: most windows embedded per document (0 = all).
        weights: where the adapted encoder's blob is read from, when ``model`` names one.

    Raises:
        CorruptModelError: ``model`` is an adapted encoder's name and ``weights`` holds no readable one.
        ModelLoadError: the model cannot be loaded.
    """
    if is_adapted(model):
        assert model is not None
        from semhash.adapted import load_adapted_encoder

        blob = weights.adapted_encoder(model) if weights is not None else None
        return load_adapted_encoder(model, blob, device, max_windows)
    from semhash.embed import load_encoder, resolve_model

    if resolve_model(model)[0] == STATIC_MODEL:  # no transformer: the static tier reads whole texts, on the CPU
        from semhash.static import StaticEncoder

        return StaticEncoder.load()
    return load_encoder(model, device, max_windows)


def onnx_encoder(manifest: Manifest, max_windows: int = 0, quick_start: bool = False, bulk: bool = False) -> Encoder:
    """The exported encoder of a checked runtime folder (raises ``RuntimeUnavailableError`` if it cannot load).

    ``bulk`` (indexing): as many windows at once as there are cores, one intra-op thread each (int8 1.7-1.9x,
    fp32 1.4x the windows/s of one window on every core: :mod:`semhash.runtime.onnx_encoder`); otherwise one
    window at a time on every core, the lower latency for a query's one window.
    """
    from semhash.runtime import OnnxEncoder
    from semhash.runtime.onnx_encoder import default_threads

    workers = default_threads() if bulk else 1
    return OnnxEncoder(manifest, max_windows=max_windows, quick_start=quick_start, workers=workers)


def quantised_encoder(
    model: str | None, precision: str, max_windows: int = 0, quick_start: bool = False, bulk: bool = False
) -> Encoder:
    """The per-model cached export of ``model`` at ``precision`` (``int8`` or ``bf16``), made now when missing.

    For an int8 (bf16) index without a usable runtime folder of its own: it must still embed at its precision.
    ``bulk``: as :func:`onnx_encoder`'s.

    Raises:
        RuntimeUnavailableError: one line: the encoder cannot be built or loaded (no onnxruntime, no OpenVINO
            for bf16, a model that cannot be exported), with what to do.
    """
    from semhash.embed import resolve_model
    from semhash.runtime.cache import cached_encoder

    try:
        name = resolve_model(model)[0]
        if is_adapted(name):
            raise RuntimeUnavailableError(f"an adapted encoder has no {precision} export")
        manifest = cached_encoder(name, precision)
        if manifest.embedding_model != name or manifest.precision != precision:
            raise RuntimeUnavailableError(f"the cached export at {manifest.folder} is not {name!r} at {precision}")
        return onnx_encoder(manifest, max_windows, quick_start, bulk)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        needs = "openvino" if precision == "bf16" else "onnxruntime and onnx"
        raise RuntimeUnavailableError(
            f"this index embeds at {precision} precision and its {precision} encoder cannot be built "
            f"({first[:200]}); install {needs}, or index into another --db with --precision fp32"
        ) from exc


def encoder_precision(encoder: object) -> str:
    """The precision an encoder embeds at: its ``precision`` attribute (the exported ones), else ``fp32``."""
    value = getattr(encoder, "precision", "fp32")
    return value if isinstance(value, str) else "fp32"


# -- queries: which runtime ------------------------------------------------------------------------------
@dataclass
class RuntimeChoice:
    """What :func:`choose_runtime` chose for an index's codec."""

    #: the index's active hashing model.
    model: StoredModel
    #: the index's embedding model (recorded name).
    embedding_model: str | None
    #: ``"onnx"`` (with :attr:`manifest`) or ``"torch"``.
    runtime: str
    #: the checked, fresh, sealed runtime folder (``onnx`` only).
    manifest: Manifest | None = None
    #: why the fast path is not used (``auto`` only), for the user.
    note: str | None = None
    #: fall back to torch if the folder fails to load after all (``auto``); ``onnx`` raises instead.
    fallback: bool = False
    #: where an adapted encoder's weights are read from (only an adapted index has them).
    weights: AdaptedWeights | None = None
    #: the index's encoder precision: ``int8`` (``bf16``) embeds only with its own export, never torch.
    precision: str = "fp32"


def choose_runtime(store: Store, runtime: str | None = None) -> RuntimeChoice:
    """The runtime an index's queries use: the sealed runtime folder when it can, else torch.

    ``auto`` (the default; ``SEMHASH_RUNTIME`` or ``runtime`` override it) takes the folder when it is
    fresh and intact (:func:`semhash.runtime.folder.sealed_runtime`) and says why not otherwise
    (:attr:`RuntimeChoice.note`); ``onnx`` demands it; ``torch`` never looks. On an int8 (bf16) index,
    ``torch`` (or ``auto`` without the folder) hashes with the torch model, but the codec still embeds at the
    index's precision, with the cached export (:func:`quantised_encoder`): torch never embeds for such an index.

    Raises:
        IndexMissingError: the index has no trained model yet.
        RuntimeUnavailableError: ``runtime="onnx"`` and no fresh, intact runtime folder.
        UsageError: an unknown runtime.
    """
    chosen = resolve_runtime(runtime)
    model = store.active_model()
    if model is None:
        raise IndexMissingError(f"the index at {store.path} has no trained model: run `semhash index DIR` first")
    precision = index_precision(store)
    embedding_model = store.embedding_model
    adapted_index = embedding_model is not None and is_adapted(embedding_model)
    note = None
    if embedding_model == STATIC_MODEL:  # a lookup table, no transformer: there is no export to use
        if chosen == "onnx":
            raise RuntimeUnavailableError(
                f"the index at {store.path} uses the static tier, which has no exported runtime (it needs none): "
                "drop --runtime onnx"
            )
        return RuntimeChoice(model, embedding_model, "torch")
    if chosen != "torch":
        try:
            manifest = sealed_runtime(store, embedding_model, model)
            return RuntimeChoice(model, embedding_model, "onnx", manifest, fallback=chosen == "auto",
                                 weights=LaterWeights(store.path) if adapted_index else None,
                                 precision=precision)  # fmt: skip
        except RuntimeUnavailableError as exc:
            if chosen == "onnx":
                raise
            note = str(exc)
    # An adapted encoder's weights are read now, while the store is open (only such an index pays it).
    weights = None
    if adapted_index:
        assert embedding_model is not None
        weights = ReadWeights(embedding_model, store.adapted_encoder(embedding_model))
    return RuntimeChoice(model, embedding_model, "torch", note=note, weights=weights, precision=precision)


# -- indexing -------------------------------------------------------------------------------------------
class FastIndexEncoder:
    """The exported encoder for indexing (1.7x the torch path's docs/s on a 2-core CPU, cosine >= 0.9999).

    Documents too long for one batch go through the torch encoder's bounded-memory
    :meth:`~semhash.embed.SentenceTransformerEncoder.encode_long` (loaded only when one shows up; for an
    adapted index, the index's adapted encoder, read from ``weights``, the open store); an int8 or bf16
    encoder's go through its own :meth:`~semhash.runtime.OnnxEncoder.encode_long` (torch would embed them at fp32).
    """

    def __init__(
        self,
        onnx: Encoder,
        model: str | None,
        device: str,
        max_windows: int,
        weights: AdaptedWeights | None = None,
    ) -> None:
        self._onnx = onnx
        self.name = onnx.name
        self.dim = onnx.dim
        self.stats: EncodeStats | None = getattr(onnx, "stats", None)
        self.precision = encoder_precision(onnx)
        self._model, self._device, self._max_windows = model, device, max_windows
        self._weights = weights
        self._torch: LongDocumentEncoder | None = None

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Window-pooled unit embeddings from the exported encoder."""
        return self._onnx.encode(texts)

    def encode_windows(self, texts: Sequence[str]) -> tuple[np.ndarray, Windows]:
        """:meth:`encode`, with every embedded window (see :class:`semhash.embed.WindowEncoder`)."""
        return cast("WindowEncoder", self._onnx).encode_windows(texts)

    def encode_long(
        self,
        text: str,
        progress: Callable[[int], None] | None = None,
        keep: list[tuple[int, int, np.ndarray]] | None = None,
    ) -> np.ndarray:
        """One huge document, in window chunks (bounded memory), with the torch encoder.

        On full 254-token windows the export ran at 0.60x and 0.94x torch's speed
        (benchmarks/bench_full_windows.py), so :meth:`~semhash.runtime.OnnxEncoder.encode_long` is not used here.
        """
        if self.precision != "fp32":
            return cast("LongDocumentEncoder", self._onnx).encode_long(text, progress=progress)
        if self._torch is None:
            # Every torch encoder (sentence-transformers, adapted or not) embeds long documents in chunks.
            encoder = torch_encoder(self._model, self._device, self._max_windows, self._weights)
            if self.stats is not None and hasattr(encoder, "stats"):
                encoder.stats = self.stats  # the summary's window counts: torch counts into this encoder's
            self._torch = cast("LongDocumentEncoder", encoder)
        return self._torch.encode_long(text, progress=progress, keep=keep)


def indexing_encoder(
    db_path: Path,
    model: str | None,
    device: str,
    max_windows: int = 0,
    store: Store | None = None,
    precision: str = "fp32",
) -> Encoder | None:
    """The exported encoder of ``<db>.runtime/`` for indexing, when it is this model's and the device is the CPU.

    ``None`` (load the torch encoder) without a valid runtime folder for ``model`` sealed by the index
    (:mod:`semhash.runtime.seal`: an altered folder must not embed what the index stores), on a GPU, or
    with ``SEMHASH_RUNTIME=torch``. ``store``: the open index, which vouches for the folder and from which
    the index's adapted encoder is read when ``model`` names one, for the documents too long for the
    exported encoder. At ``precision`` ``int8`` or ``bf16`` the folder is taken on any device and whatever
    ``SEMHASH_RUNTIME`` says (torch embeds at neither).
    """
    if store is None or (precision == "fp32" and (device != "cpu" or _torch_demanded())):
        return None
    from semhash.embed import resolve_model

    try:
        manifest = read_manifest(runtime_folder(Path(db_path)))
        if manifest.embedding_model != resolve_model(model)[0] or manifest.precision != precision:
            return None
        manifest, _ = verify_sealed(check_seal(manifest, Seal.parse(store.get_meta(SEAL_KEY))))
        onnx = onnx_encoder(manifest, max_windows=max_windows, bulk=True)
    except Exception:  # a missing, stale or damaged runtime (or a model that cannot resolve): torch indexes
        return None
    return FastIndexEncoder(onnx, model, device, max_windows, store)


@dataclass
class CachedIndexEncoder:
    """What :func:`cached_indexing_encoder` found: the encoder (or ``None``: use torch) and why not."""

    encoder: FastIndexEncoder | None
    #: the export failed: a warning for the user (the index then embeds with torch).
    warning: str | None = None


def cached_indexing_encoder(
    model: str | None, device: str, max_windows: int = 0, store: Store | None = None
) -> CachedIndexEncoder:
    """The per-model cached export of ``model`` for indexing (exported now, with torch, when missing).

    For an index without its own runtime folder (the first ``semhash index`` of every new index): the export
    that :func:`~semhash.runtime.folder.refresh_runtime` would make after training anyway is made before
    embedding instead, so the first index embeds with the exported encoder too. It is the very cache folder
    that ``refresh_runtime`` then links into ``<db>.runtime/`` and seals, so indexing and queries embed with
    the same files. Not on a GPU, not for an adapted encoder (its export lives in its index's own folder),
    not with ``SEMHASH_RUNTIME=torch``, and only with ``SEMHASH_INDEX_EXPORT=1`` (off by default: measured
    on a busy 2-core CPU it was not faster than torch, and on long windows slower, BENCHMARKS.md "Indexing
    speed"); an export that fails gives a warning and ``None`` (torch embeds, as before).
    """
    if device != "cpu" or _torch_demanded() or not env_flag(ENV_INDEX_EXPORT):
        return CachedIndexEncoder(None)
    from semhash.embed import resolve_model
    from semhash.runtime.cache import cached_encoder

    try:
        name = resolve_model(model)[0]
    except Exception:  # a model that cannot resolve: the torch loader says why
        return CachedIndexEncoder(None)
    if is_adapted(name) or name == STATIC_MODEL:  # the static tier has no export: it needs none
        return CachedIndexEncoder(None)
    try:
        manifest = cached_encoder(name)
        if manifest.embedding_model != name:
            raise RuntimeUnavailableError(f"the cached export at {manifest.folder} is of {manifest.embedding_model!r}")
        onnx = onnx_encoder(manifest, max_windows=max_windows, bulk=True)
    except Exception as exc:  # never a failed index: torch embeds, and says why the fast path did not
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return CachedIndexEncoder(
            None, f"could not export the encoder for fast indexing ({first[:300]}); embedding with torch"
        )
    return CachedIndexEncoder(FastIndexEncoder(onnx, model, device, max_windows, store))


@dataclass
class IndexEncoder:
    """What :func:`index_encoder` chose for ``semhash index``."""

    encoder: Encoder
    #: the export for fast indexing failed: a warning for the user (torch embeds instead).
    warning: str | None = None


def index_encoder(
    db_path: Path,
    store: Store | None,
    model: str | None,
    device: str,
    max_windows: int = 0,
    precision: str = "fp32",
) -> IndexEncoder:
    """The encoder ``semhash index`` embeds with, loaded now (before a new database is created).

    The exported encoder when the index has a sealed runtime for this model (faster on a CPU:
    :func:`indexing_encoder`), else, with ``SEMHASH_INDEX_EXPORT=1``, the per-model export
    (:func:`cached_indexing_encoder`), else torch (:func:`torch_encoder`: the index's adapted encoder when it
    has one, read from ``store``). At ``precision`` ``int8`` (``bf16``): the sealed folder, else the cached
    export at that precision (:func:`quantised_encoder`), else a one-line refusal (never torch).

    Raises:
        RuntimeUnavailableError: ``int8`` or ``bf16`` and no encoder at that precision can be built.
    """
    encoder = indexing_encoder(db_path, model, device, max_windows, store, precision)
    if encoder is not None:
        return IndexEncoder(encoder)
    if precision != "fp32":
        quantised = quantised_encoder(model, precision, max_windows, bulk=True)
        return IndexEncoder(FastIndexEncoder(quantised, model, device, max_windows))
    cached = cached_indexing_encoder(model, device, max_windows, store)
    if cached.encoder is not None:
        return IndexEncoder(cached.encoder)
    return IndexEncoder(torch_encoder(model, device, max_windows, store), cached.warning)
