"""The index's seal on its exported runtime: what ties ``<db>.runtime/`` to the database that exported it.

Everything in the runtime folder can be rewritten by whoever may write the folder, the manifest's sha256s
and the ``verified.json`` stamps included: a folder whose ``encoder.onnx`` was altered and whose manifest
was re-stamped to match passes every check the folder can make of itself, and queries would silently
embed with another model. So when semhash writes the folder it also records, in the database (``meta``
key :data:`SEAL_KEY`), a :class:`Seal`: the sha256 of the ``manifest.json`` it wrote (which lists every
file's sha256 and size) and each file's stat key (:func:`semhash.caches.files.stat_key`: size, mtime,
ctime, inode, device) taken after the file was hashed.

A query uses the folder only when its manifest's sha256 is the sealed one (:func:`check_seal`); a file
whose stat is the sealed one is then trusted without hashing it (the cold-query fast path: one ``stat``
per file), and any other is hashed against the sealed manifest (:func:`verify_sealed`) before it is used.
Anything that rewrites a file changes its ctime, which no user call can set back. A folder without a
seal (exported by an older semhash, or copied from another index) or with another manifest is not used:
``semhash runtime build`` exports and seals it again.

The seal is read from the database, the source of truth, but it is still parsed as untrusted input.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semhash.caches.files import stat_key
from semhash.errors import RuntimeUnavailableError
from semhash.runtime.manifest import Manifest, read_manifest, verify_file

#: The ``meta`` key of the seal.
SEAL_KEY = "runtime_seal"
#: A seal lists a handful of files: anything larger is not one.
MAX_SEAL_CHARS = 16 << 10
_FORMAT = 1
_HINT = "run `semhash runtime build` to export it again (or use --runtime torch)"


@dataclass(frozen=True)
class Seal:
    """What the database records of its exported runtime folder."""

    #: sha256 of the folder's ``manifest.json``.
    manifest: str
    #: ``{file name: stat key}`` of each file, taken when it was last hashed and found to match.
    files: dict[str, list[int]]

    def to_json(self) -> str:
        """The ``meta`` value."""
        return json.dumps({"format": _FORMAT, "manifest": self.manifest, "files": self.files}, sort_keys=True)

    @classmethod
    def parse(cls, value: str | None) -> Seal | None:
        """The seal recorded as ``value``; ``None`` when absent or malformed (the folder is then not used)."""
        if not isinstance(value, str) or len(value) > MAX_SEAL_CHARS:
            return None
        try:
            raw: Any = json.loads(value)
        except ValueError:
            return None
        if not isinstance(raw, dict) or raw.get("format") != _FORMAT:
            return None
        digest, files = raw.get("manifest"), raw.get("files")
        if not isinstance(digest, str) or len(digest) != 64 or not isinstance(files, dict):
            return None
        out: dict[str, list[int]] = {}
        for name, key in files.items():
            if not (
                isinstance(name, str)
                and isinstance(key, list)
                and len(key) == 5
                and all(isinstance(v, int) and not isinstance(v, bool) for v in key)
            ):
                return None
            out[name] = key
        return cls(digest, out)


def seal_folder(folder: Path) -> Seal:
    """Hash every file of a runtime folder against its manifest (no stamp trusted) and seal it as it is.

    Raises:
        RuntimeUnavailableError: the folder is not a valid runtime folder, or a file is not what the
            manifest says.
    """
    manifest = read_manifest(Path(folder))
    files = {}
    for name in manifest.files:
        st, _ = verify_file(dataclasses.replace(manifest, vouched={}), name, trust_stamps=False)
        files[name] = stat_key(st)
    return Seal(manifest.digest, files)


def check_seal(manifest: Manifest, seal: Seal | None) -> Manifest:
    """The manifest, vouched for by the index's seal (see the module docstring).

    Raises:
        RuntimeUnavailableError: the index recorded no seal, or another manifest than this folder's.
    """
    if seal is None:
        raise RuntimeUnavailableError(
            f"the exported runtime at {manifest.folder} is not one this index recorded (exported by an older "
            f"semhash, or not for this index): {_HINT}"
        )
    if seal.manifest != manifest.digest:
        raise RuntimeUnavailableError(
            f"the exported runtime at {manifest.folder} has another manifest.json than the one this index "
            f"recorded when it exported it (altered or replaced): {_HINT}"
        )
    return dataclasses.replace(manifest, vouched={n: k for n, k in seal.files.items() if n in manifest.files})


def verify_sealed(manifest: Manifest) -> tuple[Manifest, bool]:
    """Check every file of a sealed folder now: one ``stat`` each while the seal vouches for it, else a hash.

    Returns:
        the manifest vouching for every file as it is now, and whether any file had to be hashed (the
        caller then renews the seal, so the next cold query only stats them again).

    Raises:
        RuntimeUnavailableError: a file is missing, not a regular file, or not what the sealed manifest says.
    """
    if manifest.vouched is None:
        raise ValueError("verify_sealed needs a manifest checked by check_seal")
    vouched = dict(manifest.vouched)
    hashed = False
    for name in manifest.files:
        st, was_hashed = verify_file(manifest, name)
        vouched[name] = stat_key(st)
        hashed = hashed or was_hashed
    return dataclasses.replace(manifest, vouched=vouched), hashed
