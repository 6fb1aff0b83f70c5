"""The torch-free query-side runtime: an exported encoder (ONNX) and hashing model (numpy).

Export once with torch (:mod:`semhash.runtime.export`), then :func:`load_runtime` gives an
:class:`~semhash.runtime.onnx_encoder.OnnxEncoder` (an :class:`semhash.embed.Encoder`) and a
:class:`~semhash.runtime.numpy_hasher.NumpyHasher` whose codes equal the torch model's. Loading checks the
folder's manifest, sizes and sha256s (a file hashed before and unchanged since is only ``stat``-ed:
:mod:`semhash.runtime.stamp`) and raises :class:`RuntimeUnavailableError` (a ``SemhashError``) for a
missing, partial or damaged folder: the caller's signal to fall back to the torch path. Importing this
package imports neither torch nor onnxruntime (the encoder imports onnxruntime when it is built).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from semhash.runtime.manifest import Manifest, RuntimeUnavailableError, read_manifest
from semhash.runtime.numpy_hasher import NumpyHasher
from semhash.runtime.onnx_encoder import OnnxEncoder

__all__ = [
    "Manifest",
    "NumpyHasher",
    "OnnxEncoder",
    "Runtime",
    "RuntimeUnavailableError",
    "load_runtime",
    "read_manifest",
    "runtime_folder",
]


def runtime_folder(db: Path) -> Path:
    """The runtime folder's intended place: ``<db>.runtime/`` beside the database."""
    db = Path(db)
    return db.with_name(db.name + ".runtime")


@dataclass
class Runtime:
    """A loaded runtime folder."""

    manifest: Manifest
    encoder: OnnxEncoder
    #: ``None`` for an encoder-only folder.
    hasher: NumpyHasher | None


def load_runtime(folder: Path, *, batch_size: int = 32, max_windows: int = 0, threads: int | None = None) -> Runtime:
    """Check and load a runtime folder (raises :class:`RuntimeUnavailableError` when it cannot be used)."""
    manifest = read_manifest(Path(folder))
    hasher = NumpyHasher.load(manifest) if manifest.hasher is not None else None
    encoder = OnnxEncoder(manifest, batch_size=batch_size, max_windows=max_windows, threads=threads)
    return Runtime(manifest, encoder, hasher)
