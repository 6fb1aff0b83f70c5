"""The torch-free query-side runtime: an exported encoder (ONNX) and hashing model (numpy).

Export once with torch (:mod:`semhash.runtime.export`), then :func:`load_runtime` gives an
:class:`~semhash.runtime.onnx_encoder.OnnxEncoder` (an :class:`semhash.embed.Encoder`) and a
:class:`~semhash.runtime.numpy_hasher.NumpyHasher` whose codes equal the torch model's. Loading checks the
folder's manifest, sizes and sha256s (a file hashed before and unchanged since is only ``stat``-ed:
:mod:`semhash.runtime.stamp`) and raises :class:`RuntimeUnavailableError` (a ``SemhashError``) for a
missing, partial or damaged folder: the caller's signal to fall back to the torch path. Importing this
package imports neither torch nor onnxruntime (the encoder imports onnxruntime when it is built).

An index's own folder, ``<db>.runtime/`` (:func:`runtime_path`), is made, sealed, checked and cleared by
:mod:`semhash.runtime.folder`; the per-model export cache is :mod:`semhash.runtime.cache`; whether a query or
an index uses either is chosen in :mod:`semhash.encoders`.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from semhash.errors import RuntimeUnavailableError
from semhash.runtime.manifest import Manifest, read_manifest
from semhash.runtime.numpy_hasher import NumpyHasher
from semhash.runtime.onnx_encoder import OnnxEncoder

__all__ = [
    "Manifest",
    "NumpyHasher",
    "OnnxEncoder",
    "Runtime",
    "load_runtime",
    "read_manifest",
    "runtime_folder",
    "runtime_path",
]


def runtime_path(db: Path) -> Path:
    """The runtime folder's intended place, ``<db>.runtime/`` beside the database (unchecked: for messages)."""
    db = Path(db)
    return db.with_name(db.name + ".runtime")


def runtime_folder(db: Path) -> Path:
    """The runtime folder of the index ``db``: :func:`runtime_path`, checked to be a real folder or absent.

    Every runtime command, query and export goes through here, so none reads or writes through a symbolic
    link put in the folder's place (into some other folder), nor trips over a file there.

    Raises:
        RuntimeUnavailableError: the path is a symbolic link, or something else than a folder.
    """
    folder = runtime_path(db)
    try:
        st = os.lstat(folder)
    except FileNotFoundError:
        return folder
    except OSError as exc:
        raise RuntimeUnavailableError(f"cannot inspect {folder} ({exc.strerror or exc}): check its folder") from exc
    if stat.S_ISLNK(st.st_mode):
        raise RuntimeUnavailableError(
            f"{folder} is a symbolic link: semhash reads and writes the exported runtime only in a real folder "
            "beside the index; remove the link, then run `semhash runtime build`"
        )
    if not stat.S_ISDIR(st.st_mode):
        raise RuntimeUnavailableError(f"{folder} is not a folder: remove it, then run `semhash runtime build`")
    return folder


@dataclass
class Runtime:
    """A loaded runtime folder."""

    manifest: Manifest
    encoder: OnnxEncoder
    #: ``None`` for an encoder-only folder.
    hasher: NumpyHasher | None


def load_runtime(
    folder: Path, *, batch_size: int | None = None, max_windows: int = 0, threads: int | None = None
) -> Runtime:
    """Check and load a runtime folder (raises :class:`RuntimeUnavailableError` when it cannot be used)."""
    manifest = read_manifest(Path(folder))
    hasher = NumpyHasher.load(manifest) if manifest.hasher is not None else None
    encoder = OnnxEncoder(manifest, batch_size=batch_size, max_windows=max_windows, threads=threads)
    return Runtime(manifest, encoder, hasher)
