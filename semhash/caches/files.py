"""The plumbing every cache file beside the database shares: stamp, sidecar, checksum, atomic write.

Each cache (``<db>.faiss``, ``<db>.vectors`` with ``.vectors.ids``, ``<db>.ivf``) is written the same way
and trusted on the same terms:

* a JSON **sidecar** ``<file>.json`` records the :class:`CacheStamp` (database id, generation, change id) the
  file was built at, what it holds and a **checksum** (blake2b, 16 bytes, hex) of its bytes;
* **writing**: the old sidecar goes first, each file is written under a temporary name and renamed
  (:func:`write_atomically`, :func:`atomic_file`), the new sidecar last; a crash leaves a file without a
  sidecar (rebuilt), never a sidecar that vouches for another file;
* **reading**: the sidecar is untrusted input (a regular file of at most :data:`MAX_SIDECAR_BYTES`, read by
  :mod:`semhash.fileio`), and a file is served only when the sidecar matches the database's current stamp
  and the file matches the sidecar; anything else is rebuilt from SQLite by :mod:`semhash.caches.sync`;
* a **stat key** (:func:`stat_key`: size, mtime, ctime, inode, device) lets a file that has not changed since
  it was hashed skip the hash (the IVF file here, the runtime folder in :mod:`semhash.runtime.stamp`).

The sidecars' field names and the checksum are the files' format: existing caches keep loading.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from semhash.fileio import open_regular, read_regular

#: A sidecar is a few hundred bytes; a larger one is not ours and is not parsed.
MAX_SIDECAR_BYTES = 64 * 1024
#: Bytes read at once while a large file is hashed.
_READ_BLOCK = 8 * 2**20


@dataclass(frozen=True)
class CacheStamp:
    """The state of one database that a cache file was built from.

    ``database_id`` is ``None`` only for a database written before ids existed and opened where it
    cannot be written: no file can be tied to it, so such a stamp never matches a saved file.
    """

    database_id: str | None
    generation: int
    change_id: str | None = None

    def matches(self, meta: dict) -> bool:
        """Whether a sidecar's fields describe this state."""
        return (
            self.database_id is not None
            and meta.get("database_id") == self.database_id
            and meta.get("generation") == self.generation
            and meta.get("change_id") == self.change_id
        )

    def fields(self) -> dict[str, str | int | None]:
        """The stamp's sidecar fields (``database_id``, ``generation``, ``change_id``, in that order)."""
        return {"database_id": self.database_id, "generation": self.generation, "change_id": self.change_id}


def sidecar_path(path: str | Path) -> Path:
    """The sidecar of a cache file: ``<file>.json``."""
    return Path(f"{path}.json")


def read_sidecar(path: str | Path) -> dict | None:
    """The sidecar of the cache file ``path`` as a dict.

    ``None`` when it is missing, larger than :data:`MAX_SIDECAR_BYTES` (not ours: not parsed), not a regular
    file, unreadable or not a JSON object.
    """
    try:
        meta = json.loads(read_regular(sidecar_path(path), MAX_SIDECAR_BYTES))  # a FIFO or a link is not read
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def write_sidecar(path: str | Path, meta: dict) -> None:
    """Write the sidecar of the cache file ``path`` atomically (after the file itself)."""
    write_atomically(sidecar_path(path), json.dumps(meta).encode())


def drop_sidecar(path: str | Path) -> None:
    """Remove the sidecar of ``path`` (before the file is rewritten, so none vouches for a half-written one)."""
    sidecar_path(path).unlink(missing_ok=True)


def checksum(data: bytes | bytearray | memoryview) -> str:
    """The cache checksum of bytes in memory: blake2b with a 16-byte digest, hex."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def file_checksum(path: str | Path, limit: int) -> str | None:
    """:func:`checksum` of a file read in blocks (``None`` when it is not exactly ``limit`` bytes or cannot be read)."""
    digest = hashlib.blake2b(digest_size=16)
    total = 0
    try:
        with open_regular(path, limit) as handle:
            while block := handle.read(_READ_BLOCK):
                total += len(block)
                if total > limit:
                    return None
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest() if total == limit else None


def stat_key(st: os.stat_result) -> list[int]:
    """What must stay equal for a hashed file to be trusted without hashing it again.

    Size, ``mtime_ns``, ``ctime_ns``, inode and device: anything that rewrites the file changes its size,
    mtime or inode, and even a rewrite that puts the old mtime back changes ``ctime_ns``, which no user
    call can set.
    """
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def _temporary(path: Path) -> Path:
    """A temporary name beside ``path`` that is this process's and this thread's own.

    So two writers rebuilding one cache at once never write into one file (whichever rename lands last, its
    sidecar's checksum tells a mismatch).
    """
    return Path(f"{path}.{os.getpid()}.{threading.get_ident()}.tmp")


@contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """A handle to write ``path`` through: a temporary file, renamed to ``path`` when the block ends.

    When the block raises, the temporary file is removed and ``path`` is left as it was.

    Raises:
        OSError: the file could not be written (a full disk, a read-only folder).
    """
    path = Path(path)
    tmp = _temporary(path)
    try:
        with open(tmp, "wb") as handle:
            yield handle
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomically(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (see :func:`atomic_file`)."""
    with atomic_file(path) as handle:
        handle.write(data)
