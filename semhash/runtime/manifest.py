"""The exported runtime folder: its file names, its manifest, and the checks made before anything is loaded.

A runtime folder (intended place: ``<db>.runtime/`` beside the database) holds the query-side pipeline
in torch-free formats::

    encoder.onnx          the transformer with its pooling and normalisation (ONNX)
    tokenizer.json        its tokenizer (the ``tokenizers`` library), truncation and padding off
    encoder.opt.onnx      the same graph optimised offline by onnxruntime (optional; see below)
    encoder.opt.weights   its weights, as the graph's external data
    hasher.npz            the hashing model's MLP and lexical projection, plain arrays (optional)
    manifest.json         what the folder holds: model name, dim, max_seq_length, windows, versions, sha256 + size
                          per file
    verified.json         stamps of files already hashed (:mod:`semhash.runtime.stamp`; not in the manifest)

The optimised pair is what a cold query loads: onnxruntime's graph optimisations already applied and the
weights in a separate file, so creating the session parses a 0.1 MB graph instead of a 90 MB one and
optimises nothing (0.02-0.05 s instead of 0.2-0.3 s). It is only valid for the onnxruntime version that
wrote it (the manifest's ``optimized.onnxruntime``); under another version the portable ``encoder.onnx``
is loaded instead, as before, and ``semhash runtime build`` writes a new pair.

Everything in the folder is untrusted: the manifest is size-limited and checked field by field, only the
fixed file names above are ever opened (a name in the manifest is never joined to a path), and every
file's size and sha256 must match before it is used (a file already hashed and unchanged since, by its
``stat``, is not hashed again: :mod:`semhash.runtime.stamp`). Any failure raises :class:`RuntimeUnavailableError`,
the caller's signal to fall back to the torch path.

An adapted encoder (``semhash train --adapt``, :mod:`semhash.adapted`) is exported like any other, under
its recorded name (``<base>#adapted-<sha12>``), with its own window length and ``windows`` (windows
embedded per document: 1 = the first window only). Such a folder is written as format 2
(:data:`WINDOWED_FORMAT`), so that a semhash that does not know ``windows`` refuses it instead of pooling
every window of a long document; a frozen encoder's folder stays format 1.

An int8 encoder (``semhash index --precision int8``: onnxruntime's dynamic quantisation of the fp32 export,
:func:`semhash.runtime.export.quantise_folder`) records ``precision: "int8"`` and is written as format 3
(:data:`PRECISION_FORMAT`), so that a semhash that does not know ``precision`` refuses it instead of
taking its embeddings for fp32 ones; a folder without the field is ``fp32``. A bf16 encoder
(:func:`semhash.runtime.export.bf16_folder`) holds the fp32 export's own graph and records ``precision: "bf16"``
(format 3 too): OpenVINO runs it in bfloat16, and it has no onnxruntime-optimised graph.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semhash.config import PRECISIONS
from semhash.errors import RuntimeUnavailableError
from semhash.fileio import NotRegularFileError, open_regular, read_regular, regular_stat
from semhash.runtime.stamp import is_verified, read_stamps, write_stamps

#: Bumped whenever the folder's layout or a file's meaning changes; a loader refuses other versions.
RUNTIME_FORMAT = 1
#: The format of a folder whose encoder embeds only the first ``windows`` windows of a document (an adapted
#: encoder): format 1 plus the manifest's ``windows``, which an older loader would ignore.
WINDOWED_FORMAT = 2
#: The format of a folder whose encoder is not fp32 (its manifest's ``precision``), whatever its ``windows``.
PRECISION_FORMAT = 3
FORMATS = (RUNTIME_FORMAT, WINDOWED_FORMAT, PRECISION_FORMAT)
#: Upper bound of a manifest's ``windows`` (that of a stored adapted encoder).
MAX_WINDOWS = 1 << 20
MANIFEST = "manifest.json"
ENCODER_FILE = "encoder.onnx"
TOKENIZER_FILE = "tokenizer.json"
HASHER_FILE = "hasher.npz"
OPTIMIZED_FILE = "encoder.opt.onnx"
OPTIMIZED_WEIGHTS = "encoder.opt.weights"
ENCODER_FILES = (ENCODER_FILE, TOKENIZER_FILE)
#: Written with the encoder when onnxruntime can optimise it; both or neither.
OPTIMIZED_FILES = (OPTIMIZED_FILE, OPTIMIZED_WEIGHTS)
KNOWN_FILES = (*ENCODER_FILES, *OPTIMIZED_FILES, HASHER_FILE)
#: Upper bounds on what is read from the folder (a manifest is a few hundred bytes).
MAX_MANIFEST_BYTES = 1 << 20
MAX_FILE_BYTES = {
    ENCODER_FILE: 4 << 30,
    TOKENIZER_FILE: 64 << 20,
    OPTIMIZED_FILE: 64 << 20,  # the graph alone: its weights are in OPTIMIZED_WEIGHTS
    OPTIMIZED_WEIGHTS: 4 << 30,
    HASHER_FILE: 1 << 30,
}


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
    #: ``{"onnxruntime": version}`` of the offline-optimised graph, or ``None`` without one.
    optimized: dict[str, str] | None = None
    #: windows embedded per document, whatever the caller asks (0 = all; an adapted encoder's 1 = the first).
    windows: int = 0
    #: sha256 of ``manifest.json`` as read: what the index's seal records (:mod:`semhash.runtime.seal`).
    digest: str = ""
    #: ``{file name: stat key}`` the index's seal vouches for (:func:`semhash.runtime.seal.check_seal`); when
    #: set, these replace the folder's own ``verified.json``, which anyone who may write the folder can forge.
    vouched: dict[str, list[int]] | None = None
    #: the encoder's precision: ``fp32`` (the export), ``int8`` (its dynamic quantisation) or ``bf16`` (the
    #: export's own graph, run by OpenVINO in bfloat16: :mod:`semhash.runtime.openvino_runner`).
    precision: str = "fp32"

    def optimized_for(self, onnxruntime_version: str) -> bool:
        """Whether the folder's optimised graph was written by this onnxruntime version (so it may be loaded)."""
        return self.optimized is not None and self.optimized.get("onnxruntime") == onnxruntime_version

    def to_json(self) -> dict[str, Any]:
        """The manifest as written to disk."""
        return {
            "format": manifest_format(self.windows, self.precision),
            "embedding_model": self.embedding_model,
            "dim": self.dim,
            "max_seq_length": self.max_seq_length,
            "windows": self.windows,
            "hasher": self.hasher,
            "versions": self.versions,
            "files": self.files,
            "optimized": self.optimized,
            "precision": self.precision,
        }


def manifest_format(windows: int, precision: str = "fp32") -> int:
    """The format a folder is written as.

    :data:`PRECISION_FORMAT` for an encoder that is not fp32, else :data:`WINDOWED_FORMAT` when it caps the
    windows, else :data:`RUNTIME_FORMAT`.
    """
    if precision != "fp32":
        return PRECISION_FORMAT
    return WINDOWED_FORMAT if windows else RUNTIME_FORMAT


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def file_entry(path: Path) -> dict[str, Any]:
    """The manifest's record of one file: its sha256 and size (a regular file only: never a FIFO's wait)."""
    digest = hashlib.sha256()
    size = 0
    with open_regular(path) as handle:
        while block := handle.read(8 << 20):
            digest.update(block)
            size += len(block)
    return {"sha256": digest.hexdigest(), "bytes": size}


def _fail(folder: Path, what: str) -> RuntimeUnavailableError:
    return RuntimeUnavailableError(
        f"the exported runtime at {folder} {what}: re-export it (or delete the folder to use the torch path)"
    )


def read_manifest(folder: Path) -> Manifest:
    """Read and check ``folder/manifest.json`` (not the files it lists: see :func:`read_checked`)."""
    folder = Path(folder)
    path = folder / MANIFEST
    try:
        data = read_regular(path, MAX_MANIFEST_BYTES)
    except (FileNotFoundError, NotADirectoryError):
        raise RuntimeUnavailableError(f"no exported runtime at {folder} (no {MANIFEST}): export it first") from None
    except NotRegularFileError as exc:
        raise _fail(
            folder, f"has a {MANIFEST} that is not a regular file of at most {MAX_MANIFEST_BYTES} bytes"
        ) from exc
    except OSError as exc:
        raise _fail(folder, f"has an unreadable {MANIFEST} ({exc.strerror or type(exc).__name__})") from exc
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(folder, f"has an unreadable {MANIFEST} ({type(exc).__name__})") from exc
    if not isinstance(raw, dict) or raw.get("format") not in FORMATS:
        found = raw.get("format") if isinstance(raw, dict) else None
        raise _fail(folder, f"has format {found!r}, this semhash reads formats {', '.join(map(str, FORMATS))}")
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
    optimized = raw.get("optimized")
    listed = sum(name in files for name in OPTIMIZED_FILES)
    well_formed = optimized is None or (isinstance(optimized, dict) and isinstance(optimized.get("onnxruntime"), str))
    if listed not in (0, len(OPTIMIZED_FILES)) or (optimized is None) != (listed == 0) or not well_formed:
        raise _fail(folder, f"has a manifest whose optimised-graph record and {OPTIMIZED_FILE} disagree")
    try:
        dim, max_seq_length = int(raw["dim"]), int(raw["max_seq_length"])
        model, versions = str(raw["embedding_model"]), dict(raw.get("versions") or {})
    except (KeyError, TypeError, ValueError) as exc:
        raise _fail(folder, f"has a manifest without a valid {exc} field") from exc
    if dim <= 0 or max_seq_length <= 2:
        raise _fail(folder, "has a manifest with an impossible dim or max_seq_length")
    windows = raw.get("windows", 0)
    precision = raw.get("precision") or "fp32"
    if precision not in PRECISIONS:
        raise _fail(folder, f"has a manifest with an unknown precision {str(precision)[:20]!r}")
    if (
        not isinstance(windows, int)
        or isinstance(windows, bool)
        or not 0 <= windows <= MAX_WINDOWS
        or manifest_format(windows, precision) != raw["format"]
    ):
        raise _fail(folder, "has a manifest whose windows, precision and format disagree")
    return Manifest(
        folder,
        model,
        dim,
        max_seq_length,
        hasher,
        versions,
        files,
        optimized,
        windows,
        hashlib.sha256(data).hexdigest(),
        precision=precision,
    )


def _stat(manifest: Manifest, name: str) -> os.stat_result:
    """The file's stat, after checking that the manifest lists it and that its size is the listed one."""
    if name not in manifest.files:
        raise _fail(manifest.folder, f"has no {name}")
    expected = manifest.files[name]["bytes"]
    try:
        st = regular_stat(manifest.folder / name)  # a link, a FIFO or a device is never opened
    except FileNotFoundError as exc:
        raise _fail(manifest.folder, f"is missing {name}") from exc
    except NotRegularFileError as exc:
        raise _fail(manifest.folder, f"has a {name} that is not a regular file") from exc
    except OSError as exc:
        raise _fail(manifest.folder, f"has an unreadable {name} ({exc.strerror})") from exc
    if st.st_size != expected:
        raise _fail(manifest.folder, f"has a {name} of {st.st_size} bytes where the manifest says {expected}")
    return st


def _stamps(manifest: Manifest) -> dict[str, dict[str, Any]]:
    """The stamps that may spare a hash: the index's seal when it vouches for the folder, else ``verified.json``."""
    if manifest.vouched is None:
        return read_stamps(manifest.folder)
    return {
        name: {"sha256": manifest.files[name]["sha256"], "stat": key}
        for name, key in manifest.vouched.items()
        if name in manifest.files
    }


def _verify(manifest: Manifest, name: str, st: os.stat_result, digest: str, stamps: dict[str, Any]) -> None:
    """Compare a fresh sha256 with the manifest's; stamp the file when they agree (see :mod:`.stamp`).

    A folder the index's seal vouches for is not stamped in ``verified.json`` (that file is not read for it).
    """
    if digest != manifest.files[name]["sha256"]:
        raise _fail(manifest.folder, f"has a {name} whose sha256 differs from the manifest's (damaged)")
    if manifest.vouched is None and not is_verified(stamps, name, digest, st):
        write_stamps(manifest.folder, {name: (digest, st)})


def _hash(manifest: Manifest, name: str, size: int) -> str:
    """The streamed sha256 of one of the folder's files (a regular file of the listed size)."""
    try:
        with open_regular(manifest.folder / name, size) as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as exc:
        raise _fail(manifest.folder, f"has an unreadable {name} ({exc.strerror or type(exc).__name__})") from exc


def verify_file(manifest: Manifest, name: str, trust_stamps: bool = True) -> tuple[os.stat_result, bool]:
    """Check one file's size and sha256 against the manifest; ``(its stat, whether it was hashed)``.

    The hash is skipped when ``trust_stamps`` and a stamp (:func:`_stamps`) vouches for the file as it is.

    Raises:
        RuntimeUnavailableError: the file is missing, not a regular file, or not what the manifest says.
    """
    st = _stat(manifest, name)
    stamps = _stamps(manifest)
    if trust_stamps and is_verified(stamps, name, manifest.files[name]["sha256"], st):
        return st, False
    _verify(manifest, name, st, _hash(manifest, name, st.st_size), stamps)
    return st, True


def check_file(manifest: Manifest, name: str) -> Path:
    """The path of one of the folder's files, after checking its size and sha256 against the manifest.

    The sha256 is computed (streamed, not read into memory) only when the folder's stamp does not vouch
    for the file as it is now (:mod:`semhash.runtime.stamp`); for a file loaded by path (the ONNX graph
    and its weights, which onnxruntime reads itself).
    """
    verify_file(manifest, name)
    return manifest.folder / name


def read_checked(manifest: Manifest, name: str) -> bytes:
    """The bytes of one of the folder's files, after checking its size and sha256 against the manifest.

    As :func:`check_file`, the sha256 is skipped while the folder's stamp vouches for the file.
    """
    st = _stat(manifest, name)
    try:
        data = read_regular(manifest.folder / name, st.st_size)
    except FileNotFoundError as exc:
        raise _fail(manifest.folder, f"is missing {name}") from exc
    except OSError as exc:
        raise _fail(manifest.folder, f"has an unreadable {name} ({exc.strerror or type(exc).__name__})") from exc
    if len(data) != st.st_size:  # changed while it was read: never trust a stamp for it
        raise _fail(manifest.folder, f"has a {name} that changed while it was read: try again")
    stamps = _stamps(manifest)
    if not is_verified(stamps, name, manifest.files[name]["sha256"], st):
        _verify(manifest, name, st, sha256_bytes(data), stamps)
    return data
