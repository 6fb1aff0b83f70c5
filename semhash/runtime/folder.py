"""The index's runtime folder ``<db>.runtime/``: made, exported, refreshed, sealed, checked, cleared.

The folder holds the torch-free query path (:mod:`semhash.runtime`: the exported encoder and hasher) for one
index. Its lifecycle lives here, in one place:

- :func:`refresh_runtime` (re)writes it after training: the encoder export comes from the folder itself when
  it already holds this embedding model's export, else from the per-model cache
  (:mod:`semhash.runtime.cache`); the hasher is exported every time. An index's adapted encoder
  (``semhash train --adapt``) is exported straight into its own folder instead: it belongs to that index
  alone, so the shared cache never holds it. An export failure is a warning, never a failed index.
- :func:`seal_runtime` records the folder, as exported, in the index (:mod:`semhash.runtime.seal`);
  :func:`sealed_runtime` is the check every query makes before using it: made for the index's models
  (:func:`check_fresh`), the very folder the index sealed, every file verified.
- :func:`clear_runtime` deletes it; :func:`runtime_info` reports its state (``semhash runtime info``).

Which encoder a query or an index then uses (this folder's, the cache's, or torch's) is chosen in
:mod:`semhash.encoders`. Nothing here imports torch unless an export is made.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from semhash.adapted import is_adapted
from semhash.config import STATIC_MODEL
from semhash.errors import RuntimeUnavailableError
from semhash.runtime import runtime_folder, runtime_path
from semhash.runtime.manifest import Manifest, read_manifest
from semhash.runtime.precision import index_precision
from semhash.runtime.seal import SEAL_KEY, Seal, check_seal, seal_folder, verify_sealed
from semhash.store import Store, StoredModel

if TYPE_CHECKING:
    from semhash.model import HashingAutoencoder


def check_fresh(manifest: Manifest, embedding_model: str | None, model: StoredModel, precision: str = "fp32") -> None:
    """Raise :class:`RuntimeUnavailableError` unless the runtime was made for this index's models and precision."""
    hint = "run `semhash runtime build` to re-export it" + (" (or use --runtime torch)" if precision == "fp32" else "")
    if manifest.embedding_model != embedding_model:
        raise RuntimeUnavailableError(
            f"the exported runtime at {manifest.folder} is for {manifest.embedding_model!r}, the index embeds "
            f"with {embedding_model!r}: {hint}"
        )
    if manifest.precision != precision:
        raise RuntimeUnavailableError(
            f"the exported runtime at {manifest.folder} embeds at {manifest.precision}, "
            f"the index at {precision}: {hint}"
        )
    record = manifest.hasher or {}
    if record.get("id") != model.id or record.get("checksum") != model.checksum:
        raise RuntimeUnavailableError(
            f"the exported runtime at {manifest.folder} holds another hashing model than the index's active one "
            f"(model {record.get('id')!r}, the index's is {model.id}): {hint}"
        )


def sealed_runtime(store: Store, embedding_model: str | None, model: StoredModel) -> Manifest:
    """The index's runtime folder when queries may use it: fresh, sealed by the index, every file verified.

    Fresh: :func:`check_fresh`; sealed: the very folder the index recorded when it exported it
    (:mod:`semhash.runtime.seal`).

    A file whose stat is no longer the sealed one is hashed against the sealed manifest; when all pass, the
    seal is renewed if the database can be written at once (else the next cold query hashes it again).

    Raises:
        RuntimeUnavailableError: no folder, a stale, unsealed, altered or damaged one, or a link in its place.
    """
    manifest = read_manifest(runtime_folder(store.path))
    check_fresh(manifest, embedding_model, model, index_precision(store))
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


#: Why an index of the static tier (:mod:`semhash.static`) has no runtime folder.
STATIC_NO_RUNTIME = "the static tier needs no exported runtime: its queries read a lookup table, no transformer"


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
        store: the index, open for writing (the seal is recorded in it).
        hasher: the active hashing model already loaded (default: loaded from the store).
        export_encoder: whether the encoder may be exported now (tens of seconds, with torch) when no
            export of it exists yet.
    """
    from semhash.runtime.cache import cached_encoder, encoder_cache_folder

    folder = runtime_path(store.path)
    report = RuntimeReport(folder)
    model = store.active_model()
    name = store.embedding_model
    precision = index_precision(store)
    if model is None or name is None:
        report.skipped = "the index has no trained model yet"
        return report
    if name == STATIC_MODEL:
        report.skipped = STATIC_NO_RUNTIME
        return report
    try:
        runtime_folder(store.path)  # never through a link put in the folder's place
        source: Path | None = None
        try:
            current = read_manifest(folder)
            if current.embedding_model == name and current.precision == precision:
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
                source = cached_encoder(name, precision).folder
            else:
                try:
                    cached = read_manifest(encoder_cache_folder(name, precision))
                    fits = cached.embedding_model == name and cached.precision == precision
                    source = cached.folder if fits else None
                except RuntimeUnavailableError:
                    source = None
            if source is None:
                if precision != "fp32":  # a folder left at another precision would be refused by every query
                    clear_runtime(store.path)
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
    if store.embedding_model == STATIC_MODEL:
        info["reason"] = STATIC_NO_RUNTIME
        return info
    try:
        manifest = read_manifest(runtime_folder(store.path))
        info.update(
            embedding_model=manifest.embedding_model,
            precision=manifest.precision,
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
