"""Keeping the caches beside the database in step with SQLite (the one place that uses both store and caches).

The faiss file is a cache: it is loaded when its sidecar names this database, its current generation and
change, and its code length (and the file matches the sidecar's checksum); otherwise it is rebuilt from the
stored codes and saved. It is never silently out of sync, and a file copied from another database is
never served. No torch here: dedup and info run on stored codes alone.

The rerank vectors (:mod:`semhash.caches.vectors`, ``<db>.vectors``) are the same kind of cache for the stored
embeddings, stamped with the same database state: :func:`load_vectors` serves them when fresh and
rebuilds them from SQLite (streamed in chunks, so memory stays bounded) when not. The IVF index over the
embeddings (:mod:`semhash.caches.ivf`, ``<db>.ivf``, large indexes only) is built from that vector cache by
:func:`load_ivf`, stamped the same way.

Saving is strict for commands that write (``index``, ``train``, ``remove``): a full disk is a one-line
:class:`StorageError`. Commands that only read serve a rebuilt index from memory when it cannot be saved
(a read-only folder, a full disk): the file is only a cache.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator

import numpy as np

from semhash.caches.files import CacheStamp
from semhash.caches.hamming import CodeIndex, faiss_path_for
from semhash.caches.ivf import EmbeddingIVF, ivf_path_for
from semhash.caches.vectors import VectorCache, vectors_path_for
from semhash.codes import ints_to_packed
from semhash.config import IVF_MIN_DOCS
from semhash.errors import IndexMissingError, StorageError
from semhash.store import Store

#: Embeddings read from SQLite per step while the vector cache is rebuilt (4,096 x 384 x 4 bytes = 6 MiB).
_VECTOR_CHUNK = 4096


def stamp_of(store: Store) -> CacheStamp:
    """The database state a cache file must have been built from to be served for ``store``."""
    return CacheStamp(store.database_id, store.generation, store.change_id)


def build_index(store: Store, strict: bool = True) -> CodeIndex:
    """A fresh index of every stored code, saved beside the database.

    Args:
        store: the open database.
        strict: raise :class:`StorageError` when the file cannot be written; else serve it from memory.
            A database without an id (an older one opened where it cannot be written) is never saved:
            nothing could tie the file to it.
    """
    with store.snapshot():  # codes and stamp from one committed state
        bits = _bits(store)
        ids, codes = store.codes()
        stamp = stamp_of(store)
    index = CodeIndex.build(ids, ints_to_packed(codes, bits), bits)
    if stamp.database_id is None and not strict:
        return index
    path = faiss_path_for(store.path)
    try:
        index.save(path, stamp)
    except OSError as exc:
        if strict:
            raise _cache_write_error(exc, path, "the faiss index", "the index is") from exc
    return index


def load_index(store: Store, strict: bool = False) -> CodeIndex:
    """The saved index if it is fresh and this database's, else a rebuilt one (see :func:`build_index`)."""
    index = CodeIndex.load(faiss_path_for(store.path), stamp_of(store), _bits(store))
    return index if index is not None else build_index(store, strict=strict)


def code_index_of(vectors: VectorCache) -> CodeIndex:
    """A faiss binary index of the vector cache's own ids and codes, built in memory.

    The same rows as the ``<db>.faiss`` file of the cache's generation (both are the encoded documents'
    codes at one stamp), so a search that needs faiss's exact top ``k`` or radius lookup (``query --radius``,
    ``--no-rerank``) can have it without reading, checking and deserialising that file: at 10^6 documents
    this build takes ~100 ms where loading ``<db>.faiss`` takes ~140 ms, and only the queries that use it
    pay. (See :mod:`semhash.caches` for why the default query does not need the file at all.)
    """
    return CodeIndex.build(vectors.ids, ints_to_packed(vectors.codes, vectors.bits), vectors.bits)


def _embedding_chunks(store: Store, dim: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(ids, codes, embeddings)`` of every encoded document (the faiss index's rows), ascending, in chunks."""
    ids, codes = store.codes()
    for start in range(0, len(ids), _VECTOR_CHUNK):
        got, matrix = store.embeddings(ids[start : start + _VECTOR_CHUNK].tolist(), dim=dim)
        # ``embeddings`` leaves out a row without an embedding; the codes follow the ids it returned
        yield got, codes[start:][np.searchsorted(ids[start:], got)], matrix


def _embedding_dim(store: Store) -> int:
    value = store.get_meta("embedding_dim")
    return int(value) if value and value.isdigit() else 0


def build_vectors(store: Store, strict: bool = False) -> VectorCache:
    """A fresh vector cache of every encoded document's embedding, saved beside the database.

    Call it inside a read transaction (as :func:`load_vectors`'s callers do) so that the rows and the
    stamp come from one commit. Like :func:`build_index`, ``strict=False`` serves the rows from memory
    when the files cannot be written, and a database without an id is never saved.
    """
    dim, bits = _embedding_dim(store), _bits(store)
    stamp = stamp_of(store)
    if stamp.database_id is None and not strict:
        return VectorCache.in_memory(dim, bits, _embedding_chunks(store, dim))
    path = vectors_path_for(store.path)
    try:
        return VectorCache.write(path, stamp, dim, bits, _embedding_chunks(store, dim))
    except OSError as exc:
        if strict:
            raise _cache_write_error(exc, path, "the rerank vectors", "the vectors are") from exc
        return VectorCache.in_memory(dim, bits, _embedding_chunks(store, dim))


def load_vectors(store: Store, strict: bool = False) -> VectorCache:
    """The saved vector cache if it is fresh and this database's, else a rebuilt one."""
    cache = VectorCache.load(vectors_path_for(store.path), stamp_of(store), _embedding_dim(store), _bits(store))
    return cache if cache is not None else build_vectors(store, strict=strict)


def load_ivf(store: Store, vectors: VectorCache, generation: int) -> EmbeddingIVF:
    """The IVF index of ``vectors``, the vector cache of store generation ``generation``.

    The saved file when its sidecar vouches for this database state, else one built from the cache and saved
    beside the database.

    Only commands that read build it (a searcher, on the first query that needs it), so saving is never
    strict: when the file cannot be written, or the store has moved past ``generation`` meanwhile (the
    stamp would not describe these rows), or the database has no id, the index is served from memory.
    """
    stamp = stamp_of(store)
    path = ivf_path_for(store.path)
    current = stamp.generation == generation and stamp.database_id is not None
    if current:
        saved = EmbeddingIVF.load(path, stamp, vectors.dim, vectors.size)
        if saved is not None:
            return saved
    ivf = EmbeddingIVF.build(vectors.ids, vectors.matrix)
    if current:
        with contextlib.suppress(OSError):  # only a cache: served from memory, rebuilt by the next process
            ivf.save(path, stamp)
    return ivf


def warm_query_caches(store: Store) -> None:
    """Build the caches a ranked query reads, so the first query after ``semhash index`` does not pay for them.

    The rerank vectors and, from ``IVF_MIN_DOCS`` documents, the IVF stage (10^6 documents: ~40 s, once per
    change of the index; a query would otherwise build it itself).

    Best effort, like the caches themselves: a cache that cannot be written is left for queries to build.
    """
    if store.bits is None or store.count() == 0:
        return
    store.db.execute("BEGIN")  # rows and stamp from one commit
    try:
        generation = store.generation
        vectors = load_vectors(store)
        if vectors.size >= IVF_MIN_DOCS:
            load_ivf(store, vectors, generation)
    finally:
        store.db.execute("COMMIT")


def index_is_fresh(store: Store) -> bool:
    """Whether the saved faiss file would be served as is (for ``semhash info``)."""
    bits = store.bits
    if not bits:
        return False
    try:
        return CodeIndex.load(faiss_path_for(store.path), stamp_of(store), bits) is not None
    except Exception:  # a corrupt file is simply not fresh here
        return False


def require_documents(store: Store) -> None:
    """Raise a clear error when there is nothing to search."""
    if store.count(encoded_only=True) == 0:
        raise IndexMissingError(f"the index at {store.path} holds no document yet: run `semhash index DIR` first")


def _bits(store: Store) -> int:
    bits = store.bits
    if bits is None:
        raise IndexMissingError(f"the index at {store.path} has no trained model yet: run `semhash index DIR` first")
    return bits


def _cache_write_error(exc: OSError, path: object, what: str, rebuilt: str) -> StorageError:
    """The one-line error of a cache beside the database that could not be written (the database is intact)."""
    cause = "the disk is full" if exc.errno == errno.ENOSPC else f"cannot write {path} ({exc.strerror or exc})"
    return StorageError(
        f"{cause}: writing {what} {path} failed; the database is complete and kept: "
        f"free some space and rerun the same command ({rebuilt} rebuilt from the database)"
    )
