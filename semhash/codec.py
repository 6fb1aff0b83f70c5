"""The codec: text -> embedding -> hashing features -> code, in one place, for every service.

Ingest, search, ``dedup --against`` and serve all turn texts into codes the same way: the index's embedding
model, then the index's active hashing model (which reads the text too, for its lexical vector). A
:class:`Codec` is built from the store (:meth:`Codec.from_store`) and picks the runtime that does it:

- ``onnx``: the exported, torch-free pipeline in ``<db>.runtime/`` (:mod:`semhash.runtime`), used when the
  folder is present, intact and *fresh*: made for the index's embedding model and for the very hashing model
  that is active (its row id and the sha256 of its stored weights), and *sealed*: the folder the index recorded
  when it exported it (:mod:`semhash.runtime.seal`), every file checked against that record;
- ``torch``: the sentence-transformers encoder and the torch hashing model, loaded from the store.

``auto`` (the default; ``SEMHASH_RUNTIME`` or ``--runtime`` override it) takes the fast path when it can
and says why it did not otherwise (:attr:`Codec.note`); ``onnx`` demands it (a stale or damaged folder is
then a :class:`~semhash.errors.RuntimeUnavailableError`). Models load on first use, so a codec that only
ever hashes stored embeddings never loads an encoder, and the fast path never imports torch.

:func:`refresh_runtime` (re)writes the runtime folder after training: the encoder export comes from the
per-model cache (:mod:`semhash.runtime.cache`), the hasher is exported every time. An index's adapted
encoder (``semhash train --adapt``) is exported straight into its own runtime folder instead: it belongs
to that index alone, so the shared cache never holds it. A distributed engine
would call :meth:`Codec.encode` from its workers the same way.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from semhash.adapted import is_adapted
from semhash.config import ENV_INDEX_EXPORT, ENV_RUNTIME, env_flag, env_text
from semhash.errors import IndexMissingError, RuntimeUnavailableError, UsageError
from semhash.runtime import runtime_folder, runtime_path
from semhash.runtime.manifest import Manifest, read_manifest
from semhash.runtime.seal import SEAL_KEY, Seal, check_seal, seal_folder, verify_sealed
from semhash.store import Store, StoredModel

if TYPE_CHECKING:
    from semhash.embed import Encoder
    from semhash.model import HashingAutoencoder

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


def check_fresh(manifest: Manifest, embedding_model: str | None, model: StoredModel) -> None:
    """Raise :class:`RuntimeUnavailableError` unless the runtime was made for this index's models."""
    hint = "run `semhash runtime build` to re-export it (or use --runtime torch)"
    if manifest.embedding_model != embedding_model:
        raise RuntimeUnavailableError(
            f"the exported runtime at {manifest.folder} is for {manifest.embedding_model!r}, the index embeds "
            f"with {embedding_model!r}: {hint}"
        )
    record = manifest.hasher or {}
    if record.get("id") != model.id or record.get("checksum") != model.checksum:
        raise RuntimeUnavailableError(
            f"the exported runtime at {manifest.folder} holds another hashing model than the index's active one "
            f"(model {record.get('id')!r}, the index's is {model.id}): {hint}"
        )


def sealed_runtime(store: Store, embedding_model: str | None, model: StoredModel) -> Manifest:
    """The index's runtime folder when queries may use it: fresh (:func:`check_fresh`), the very folder the
    index sealed when it exported it, and every file verified (:mod:`semhash.runtime.seal`).

    A file whose stat is no longer the sealed one is hashed against the sealed manifest; when all pass, the
    seal is renewed if the database can be written at once (else the next cold query hashes it again).

    Raises:
        RuntimeUnavailableError: no folder, a stale, unsealed, altered or damaged one, or a link in its place.
    """
    manifest = read_manifest(runtime_folder(store.path))
    check_fresh(manifest, embedding_model, model)
    manifest, hashed = verify_sealed(check_seal(manifest, Seal.parse(store.get_meta(SEAL_KEY))))
    if hashed and manifest.vouched is not None:
        store.try_set_meta(SEAL_KEY, Seal(manifest.digest, manifest.vouched).to_json())
    return manifest


def seal_runtime(store: Store) -> None:
    """Record the index's runtime folder, as it is now, as the one it exported (after every export).

    Raises:
        RuntimeUnavailableError: the folder is not a valid runtime folder.
        ReadOnlyDatabaseError, DatabaseLockedError, StorageError: the database cannot be written.
    """
    seal = seal_folder(runtime_folder(store.path))
    with store.transaction("recording the exported runtime"):
        store.set_meta(SEAL_KEY, seal.to_json())


class _AdaptedWeights(Protocol):
    def adapted_encoder(self, name: str) -> bytes | None: ...


@dataclass
class _ReadWeights:
    """An adapted encoder's blob, read from the store when the codec was made."""

    name: str | None
    blob: bytes | None

    def adapted_encoder(self, name: str) -> bytes | None:
        return self.blob if name == self.name else None


@dataclass
class _LaterWeights:
    """An adapted encoder's blob, read from the index at ``path`` only if the torch path is ever needed.

    The fast path embeds with the adapted encoder's export and never reads its weights (megabytes of blob
    that a cold query would read for nothing); a runtime folder that fails to load after all falls back to
    torch, which reads them then, checked against the recorded name as always.
    """

    path: Path

    def adapted_encoder(self, name: str) -> bytes | None:
        with Store.open(self.path) as store:
            return store.adapted_encoder(name)


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
        adapted: _AdaptedWeights | None = None,
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

    @classmethod
    def from_store(
        cls,
        store: Store,
        runtime: str | None = None,
        *,
        device: str = "auto",
        encoder: Encoder | None = None,
        max_windows: int = 0,
        quick_start: bool = False,
    ) -> Codec:
        """The codec of an index: its embedding model and active hashing model, on the runtime asked for.

        Raises:
            IndexMissingError: the index has no trained model yet.
            RuntimeUnavailableError: ``runtime="onnx"`` and no fresh, intact runtime folder.
            UsageError: an unknown runtime.
        """
        chosen = resolve_runtime(runtime)
        model = store.active_model()
        if model is None:
            raise IndexMissingError(f"the index at {store.path} has no trained model: run `semhash index DIR` first")
        embedding_model = store.embedding_model
        adapted_index = embedding_model is not None and is_adapted(embedding_model)
        note = None
        if chosen != "torch":
            try:
                manifest = sealed_runtime(store, embedding_model, model)
                # The device stays unresolved here: resolving it imports torch, which the fast path never does.
                return cls(model, embedding_model, runtime="onnx", manifest=manifest, encoder=encoder,
                           device=device, max_windows=max_windows, fallback=chosen == "auto",
                           quick_start=quick_start,
                           adapted=_LaterWeights(store.path) if adapted_index else None)  # fmt: skip
            except RuntimeUnavailableError as exc:
                if chosen == "onnx":
                    raise
                note = str(exc)
        # An adapted encoder's weights are read now, while the store is open (only such an index pays it).
        adapted = None
        if adapted_index:
            assert embedding_model is not None
            adapted = _ReadWeights(embedding_model, store.adapted_encoder(embedding_model))
        return cls(model, embedding_model, encoder=encoder, device=device, max_windows=max_windows, note=note,
                   adapted=adapted)  # fmt: skip

    # -- the models, loaded on first use ------------------------------------------------------------
    @property
    def encoder(self) -> Encoder:
        """The embedding model: the exported one on the fast path, sentence-transformers otherwise."""
        if self._encoder is None:
            if self.manifest is not None:
                from semhash.runtime import OnnxEncoder

                try:
                    self._encoder = OnnxEncoder(
                        self.manifest, max_windows=self.max_windows, quick_start=self.quick_start
                    )
                except RuntimeUnavailableError as exc:
                    self._fall_back(exc)
            if self._encoder is None:
                from semhash.adapted import load_index_encoder

                # The index's adapted encoder when it has one (`semhash train --adapt`), else the named model.
                self._encoder = load_index_encoder(
                    self._adapted, self.embedding_model, self._torch_device(), self.max_windows
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
        """Take ``other``'s loaded encoder: same index, same runtime, same embedding model (``train --adapt``
        changes the model under a long-lived searcher: the frozen encoder must not outlive it)."""
        if self._encoder is None and other.runtime == self.runtime and other.embedding_model == self.embedding_model:
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


# -- making the runtime folder ----------------------------------------------------------------------
@dataclass
class RuntimeReport:
    """What :func:`refresh_runtime` did."""

    folder: Path
    written: bool = False
    #: why nothing was written (a warning for the user when the export failed).
    warning: str | None = None
    skipped: str | None = None


def refresh_runtime(
    store: Store,
    *,
    hasher: HashingAutoencoder | None = None,
    export_encoder: bool = True,
) -> RuntimeReport:
    """(Re)write ``<db>.runtime/`` for the index's active models; never raises for an export failure.

    The encoder files come from the runtime folder itself when it already holds this embedding model's
    export, else from the per-model cache (exported there first when ``export_encoder``; with it false, as
    after ``semhash train``, nothing is exported and a missing encoder export just means no runtime). An
    adapted encoder (:mod:`semhash.adapted`) is never cached: with ``export_encoder`` it is built from the
    index's stored, checked weights and exported into the index's folder with the hasher.

    Args:
        hasher: the active hashing model already loaded (default: loaded from the store).
        export_encoder: whether the encoder may be exported now (tens of seconds, with torch) when no
            export of it exists yet.
    """
    from semhash.runtime.cache import cached_encoder, encoder_cache_folder

    folder = runtime_path(store.path)
    report = RuntimeReport(folder)
    model = store.active_model()
    name = store.embedding_model
    if model is None or name is None:
        report.skipped = "the index has no trained model yet"
        return report
    try:
        runtime_folder(store.path)  # never through a link put in the folder's place
        source: Path | None = None
        try:
            current = read_manifest(folder)
            if current.embedding_model == name:
                # Only a folder the index sealed, every file intact, lends its encoder files: an altered one
                # (its manifest re-stamped to match) must not be sealed again as the index's own.
                verify_sealed(check_seal(current, Seal.parse(store.get_meta(SEAL_KEY))))
                source = folder
        except RuntimeUnavailableError:
            pass
        if source is None and is_adapted(name):
            if not export_encoder:
                # A folder left from another encoder would be refused by every query (check_fresh): it goes.
                clear_runtime(store.path)
                report.skipped = "no export of the adapted encoder yet (`semhash runtime build` makes one)"
                return report
            _export_adapted(store, name, model, hasher, folder)
            seal_runtime(store)
            report.written = True
            return report
        if source is None:
            if export_encoder:
                source = cached_encoder(name).folder
            else:
                try:
                    cached = read_manifest(encoder_cache_folder(name))
                    source = cached.folder if cached.embedding_model == name else None
                except RuntimeUnavailableError:
                    source = None
            if source is None:
                report.skipped = "no export of the encoder yet (`semhash runtime build` makes one)"
                return report
        if hasher is None:
            from semhash.model import model_from_bytes

            hasher = model_from_bytes(model.weights)
        from semhash.runtime.export import export_hasher

        export_hasher(hasher, folder, hasher_id=model.id, hasher_checksum=model.checksum, source=source)
        seal_runtime(store)
        report.written = True
    except Exception as exc:  # export must never break indexing: one warning line, the torch path stays
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        report.warning = f"could not export the fast query runtime to {folder} ({first[:300]}); queries use torch"
    return report


def _export_adapted(
    store: Store, name: str, model: StoredModel, hasher: HashingAutoencoder | None, folder: Path
) -> None:
    """Export the index's adapted encoder (checked against its recorded name) and hasher into ``folder``."""
    from semhash.adapted import load_adapted_encoder
    from semhash.model import model_from_bytes
    from semhash.runtime.export import export_runtime

    # On the CPU, with no cap of the caller's: the export embeds the windows the adapted encoder embeds.
    encoder = load_adapted_encoder(name, store.adapted_encoder(name), "cpu")
    if hasher is None:
        hasher = model_from_bytes(model.weights)
    export_runtime(encoder, hasher, folder, hasher_id=model.id, hasher_checksum=model.checksum)


def clear_runtime(db_path: Path) -> bool:
    """Delete ``<db>.runtime/`` (queries then use torch); ``True`` when there was one."""
    folder = runtime_folder(Path(db_path))
    if not folder.exists():
        return False
    shutil.rmtree(folder)
    return True


def runtime_info(store: Store) -> dict[str, Any]:
    """The runtime folder's state for ``semhash runtime info``: where, what, and whether queries use it.

    ``fresh`` is what a query would find: the folder is made for the index's models, sealed by it, and
    every file's size and sha256 check out (:func:`sealed_runtime`); ``reason`` says why not.
    """
    folder = runtime_path(store.path)
    info: dict[str, Any] = {"folder": str(folder), "present": os.path.lexists(folder), "fresh": False, "reason": None}
    try:
        manifest = read_manifest(runtime_folder(store.path))
        info.update(
            embedding_model=manifest.embedding_model,
            hasher=manifest.hasher,
            bytes=sum(int(f["bytes"]) for f in manifest.files.values()),
        )
        model = store.active_model()
        if model is None:
            raise RuntimeUnavailableError("the index has no trained model")
        sealed_runtime(store, store.embedding_model, model)
        info["fresh"] = True
    except RuntimeUnavailableError as exc:
        info["reason"] = str(exc)
    return info


# -- indexing on the exported encoder ----------------------------------------------------------------
class FastIndexEncoder:
    """The exported encoder for indexing (1.7x the torch path's docs/s on a 2-core CPU, cosine >= 0.9999).

    Documents too long for one batch go through the torch encoder's bounded-memory
    :meth:`~semhash.embed.SentenceTransformerEncoder.encode_long` (loaded only when one shows up; for an
    adapted index, the index's adapted encoder, read from ``adapted``, the open store).
    """

    def __init__(
        self, onnx: Encoder, model: str | None, device: str, max_windows: int, adapted: _AdaptedWeights | None = None
    ) -> None:
        self._onnx = onnx
        self.name = onnx.name
        self.dim = onnx.dim
        self.stats = getattr(onnx, "stats", None)
        self._model, self._device, self._max_windows = model, device, max_windows
        self._adapted = adapted
        self._torch: Any = None

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Window-pooled unit embeddings from the exported encoder."""
        return self._onnx.encode(texts)

    def encode_long(self, text: str, progress: Any = None) -> np.ndarray:
        """One huge document, in window chunks (bounded memory), with the torch encoder: on full 254-token
        windows the export ran at 0.60x and 0.94x torch's speed (benchmarks/bench_full_windows.py), so
        :meth:`~semhash.runtime.OnnxEncoder.encode_long` is not used here."""
        if self._torch is None:
            from semhash.adapted import load_index_encoder

            self._torch = load_index_encoder(self._adapted, self._model, self._device, self._max_windows)
        return self._torch.encode_long(text, progress=progress)


def indexing_encoder(
    db_path: Path, model: str | None, device: str, max_windows: int = 0, store: Store | None = None
) -> Encoder | None:
    """The exported encoder of ``<db>.runtime/`` for indexing, when it is this model's and the device is the CPU.

    ``None`` (load the torch encoder) without a valid runtime folder for ``model`` sealed by the index
    (:mod:`semhash.runtime.seal`: an altered folder must not embed what the index stores), on a GPU, or
    with ``SEMHASH_RUNTIME=torch``. ``store``: the open index, which vouches for the folder and from which
    the index's adapted encoder is read when ``model`` names one, for the documents too long for the
    exported encoder.
    """
    if device != "cpu" or store is None or env_text(ENV_RUNTIME).strip().lower() == "torch":
        return None
    from semhash.embed import resolve_model

    try:
        manifest = read_manifest(runtime_folder(Path(db_path)))
        if manifest.embedding_model != resolve_model(model)[0]:
            return None
        manifest, _ = verify_sealed(check_seal(manifest, Seal.parse(store.get_meta(SEAL_KEY))))
        from semhash.runtime import OnnxEncoder

        onnx = OnnxEncoder(manifest, max_windows=max_windows)
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
    that :func:`refresh_runtime` would make after training anyway is made before embedding instead, so the
    first index embeds with the exported encoder too. It is the very cache folder that
    :func:`refresh_runtime` then links into ``<db>.runtime/`` and seals, so indexing and queries embed with
    the same files. Not on a GPU, not for an adapted encoder (its export lives in its index's own folder),
    not with ``SEMHASH_RUNTIME=torch``, and only with ``SEMHASH_INDEX_EXPORT=1`` (off by default: measured
    on a busy 2-core CPU it was not faster than torch, and on long windows slower, BENCHMARKS.md "Indexing
    speed"); an export that fails gives a warning and ``None`` (torch embeds, as before).
    """
    if device != "cpu" or env_text(ENV_RUNTIME).strip().lower() == "torch" or not env_flag(ENV_INDEX_EXPORT):
        return CachedIndexEncoder(None)
    from semhash.embed import resolve_model
    from semhash.runtime.cache import cached_encoder

    try:
        name = resolve_model(model)[0]
    except Exception:  # a model that cannot resolve: the torch loader says why
        return CachedIndexEncoder(None)
    if is_adapted(name):
        return CachedIndexEncoder(None)
    try:
        manifest = cached_encoder(name)
        if manifest.embedding_model != name:
            raise RuntimeUnavailableError(f"the cached export at {manifest.folder} is of {manifest.embedding_model!r}")
        from semhash.runtime import OnnxEncoder

        onnx = OnnxEncoder(manifest, max_windows=max_windows)
    except Exception as exc:  # never a failed index: torch embeds, and says why the fast path did not
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return CachedIndexEncoder(
            None, f"could not export the encoder for fast indexing ({first[:300]}); embedding with torch"
        )
    return CachedIndexEncoder(FastIndexEncoder(onnx, model, device, max_windows, store))
