"""Verified stamps: hash a runtime file once, then trust it while its ``stat`` is unchanged.

Checking the runtime folder's sha256s on every cold query costs as much as the rest of the query's
integrity work together (the 90 MB encoder alone is ~0.04-0.1 s of a 0.5 s budget). So after a file's
sha256 has matched the manifest, ``verified.json`` (beside the manifest) records that file's sha256 with
its size, ``mtime_ns``, ``ctime_ns``, inode and device; a later load that finds the same five numbers and
the same sha256 in the manifest skips the hash. Anything that rewrites the file changes its size, mtime
or inode, and even a rewrite that puts the old mtime back (``touch -d``, ``cp -p``, ``rsync -t``) changes
``ctime_ns``, which no user call can set: the file is hashed again, and refused when it no longer matches.

The stamp is untrusted input like the rest of the folder: size-limited, checked field by field, and a
bad or missing one only costs a re-hash. It is no defence against someone who may write the folder
(they could as well rewrite the manifest's sha256s); what it guards against is damage. A folder the index
exported is vouched for by the index's seal instead (:mod:`semhash.runtime.seal`), and this file is not read
for it: the stamp serves folders no index seals (the per-model encoder cache, :func:`semhash.runtime.load_runtime`).
Writing it is best effort (an atomic replace), so a read-only folder still works: it just hashes every time.
The stat key, the capped JSON read and the atomic write are the caches' (:mod:`semhash.caches.files`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from semhash.caches.files import stat_key, write_atomically
from semhash.fileio import read_regular

#: The stamp file's name, beside ``manifest.json``.
STAMP_FILE = "verified.json"
#: A stamp lists a handful of files: anything larger is not one (read nothing, hash everything).
MAX_STAMP_BYTES = 64 << 10
_FORMAT = 1


def read_stamps(folder: Path) -> dict[str, dict[str, Any]]:
    """``{file name: {"sha256", "stat"}}`` from ``folder/verified.json``; empty when absent or malformed."""
    path = Path(folder) / STAMP_FILE
    try:
        raw = json.loads(read_regular(path, MAX_STAMP_BYTES))  # never a FIFO's wait, never a link
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict) or raw.get("format") != _FORMAT or not isinstance(raw.get("files"), dict):
        return {}
    out: dict[str, dict[str, Any]] = {}
    for name, entry in raw["files"].items():
        if (
            isinstance(name, str)
            and isinstance(entry, dict)
            and isinstance(entry.get("sha256"), str)
            and isinstance(entry.get("stat"), list)
            and len(entry["stat"]) == 5
            and all(isinstance(v, int) and not isinstance(v, bool) for v in entry["stat"])
        ):
            out[name] = {"sha256": entry["sha256"], "stat": entry["stat"]}
    return out


def is_verified(stamps: dict[str, dict[str, Any]], name: str, sha256: str, st: os.stat_result) -> bool:
    """Whether ``name`` was hashed to ``sha256`` and has not changed since (same size, times, inode)."""
    entry = stamps.get(name)
    return entry is not None and entry["sha256"] == sha256 and entry["stat"] == stat_key(st)


def write_stamps(folder: Path, updates: dict[str, tuple[str, os.stat_result]]) -> bool:
    """Record files as verified (``{name: (sha256, stat)}``), keeping the folder's other stamps; best effort.

    Returns:
        whether the stamp was written (``False`` on a read-only folder or any other write failure).
    """
    folder = Path(folder)
    stamps = read_stamps(folder)
    for name, (sha256, st) in updates.items():
        stamps[name] = {"sha256": sha256, "stat": stat_key(st)}
    data = json.dumps({"format": _FORMAT, "files": stamps}, sort_keys=True).encode("utf-8")
    try:
        # readers see the old stamp or the new one, never half of one
        write_atomically(folder / STAMP_FILE, data)
        return True
    except OSError:
        return False
