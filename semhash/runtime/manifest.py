"""The exported runtime folder: its file names, its manifest, and the checks made before anything is loaded.

A runtime folder (intended place: ``<db>.runtime/`` beside the database) holds the query-side pipeline
in torch-free formats::

    encoder.onnx     the transformer with its pooling and normalisation (ONNX)
    tokenizer.json   its tokenizer (the ``tokenizers`` library), truncation and padding off
    hasher.npz       the hashing model's MLP and lexical projection, plain arrays (optional)
    manifest.json    what the folder holds: model name, dim, max_seq_length, versions, sha256 + size per file

Everything in the folder is untrusted: the manifest is size-limited and checked field by field, only the
fixed file names above are ever opened (a name in the manifest is never joined to a path), and every
file's size and sha256 must match before it is used. Any failure raises :class:`RuntimeUnavailableError`,
the caller's signal to fall back to the torch path.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semhash.errors import SemhashError

#: Bumped whenever the folder's layout or a file's meaning changes; a loader refuses other versions.
RUNTIME_FORMAT = 1
MANIFEST = "manifest.json"
ENCODER_FILE = "encoder.onnx"
TOKENIZER_FILE = "tokenizer.json"
HASHER_FILE = "hasher.npz"
ENCODER_FILES = (ENCODER_FILE, TOKENIZER_FILE)
KNOWN_FILES = (*ENCODER_FILES, HASHER_FILE)
#: Upper bounds on what is read from the folder (a manifest is a few hundred bytes).
MAX_MANIFEST_BYTES = 1 << 20
MAX_FILE_BYTES = {ENCODER_FILE: 4 << 30, TOKENIZER_FILE: 64 << 20, HASHER_FILE: 1 << 30}


class RuntimeUnavailableError(SemhashError):
    """The exported runtime folder is missing, partial, damaged or of another format (use the torch path)."""


@dataclass(frozen=True)
class Manifest:
    """The checked content of ``manifest.json``."""

    folder: Path
    embedding_model: str
    dim: int
    max_seq_length: int
    #: ``{"id": ..., "checksum": ..., "bits": ...}`` of the exported hashing model, or ``None`` without one.
    hasher: dict[str, Any] | None
    versions: dict[str, str]
    #: ``{file name: {"sha256": hex, "bytes": int}}`` for every file of the folder but the manifest.
    files: dict[str, dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        """The manifest as written to disk."""
        return {
            "format": RUNTIME_FORMAT,
            "embedding_model": self.embedding_model,
            "dim": self.dim,
            "max_seq_length": self.max_seq_length,
            "hasher": self.hasher,
            "versions": self.versions,
            "files": self.files,
        }


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def file_entry(path: Path) -> dict[str, Any]:
    """The manifest's record of one file: its sha256 and size."""
    data = path.read_bytes()
    return {"sha256": sha256_bytes(data), "bytes": len(data)}


def _fail(folder: Path, what: str) -> RuntimeUnavailableError:
    return RuntimeUnavailableError(
        f"the exported runtime at {folder} {what}: re-export it (or delete the folder to use the torch path)"
    )


def read_manifest(folder: Path) -> Manifest:
    """Read and check ``folder/manifest.json`` (not the files it lists: see :func:`read_checked`)."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise RuntimeUnavailableError(f"no exported runtime at {folder} (no {MANIFEST}): export it first")
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise _fail(folder, f"has a {MANIFEST} over {MAX_MANIFEST_BYTES} bytes")
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(folder, f"has an unreadable {MANIFEST} ({type(exc).__name__})") from exc
    if not isinstance(raw, dict) or raw.get("format") != RUNTIME_FORMAT:
        found = raw.get("format") if isinstance(raw, dict) else None
        raise _fail(folder, f"has format {found!r}, this semhash reads format {RUNTIME_FORMAT}")
    files = raw.get("files")
    if not isinstance(files, dict) or not set(ENCODER_FILES) <= set(files) or not set(files) <= set(KNOWN_FILES):
        raise _fail(folder, f"lists unexpected files (expected {', '.join(KNOWN_FILES)})")
    for name, entry in files.items():
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("sha256"), str)
            or len(entry["sha256"]) != 64
            or not isinstance(entry.get("bytes"), int)
            or not 0 < entry["bytes"] <= MAX_FILE_BYTES[name]
        ):
            raise _fail(folder, f"has a malformed manifest entry for {name}")
    hasher = raw.get("hasher")
    if (hasher is None) != (HASHER_FILE not in files) or (hasher is not None and not isinstance(hasher, dict)):
        raise _fail(folder, f"has a manifest whose hasher record and {HASHER_FILE} disagree")
    try:
        dim, max_seq_length = int(raw["dim"]), int(raw["max_seq_length"])
        model, versions = str(raw["embedding_model"]), dict(raw.get("versions") or {})
    except (KeyError, TypeError, ValueError) as exc:
        raise _fail(folder, f"has a manifest without a valid {exc} field") from exc
    if dim <= 0 or max_seq_length <= 2:
        raise _fail(folder, "has a manifest with an impossible dim or max_seq_length")
    return Manifest(folder, model, dim, max_seq_length, hasher, versions, files)


def read_checked(manifest: Manifest, name: str) -> bytes:
    """The bytes of one of the folder's files, after checking its size and sha256 against the manifest."""
    if name not in manifest.files:
        raise _fail(manifest.folder, f"has no {name}")
    entry = manifest.files[name]
    path = manifest.folder / name
    try:
        size = path.stat().st_size
        if size != entry["bytes"]:
            raise _fail(manifest.folder, f"has a {name} of {size} bytes where the manifest says {entry['bytes']}")
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise _fail(manifest.folder, f"is missing {name}") from exc
    except OSError as exc:
        raise _fail(manifest.folder, f"has an unreadable {name} ({exc.strerror})") from exc
    if sha256_bytes(data) != entry["sha256"]:
        raise _fail(manifest.folder, f"has a {name} whose sha256 differs from the manifest's (damaged)")
    return data
