"""Keeping the faiss index in step with SQLite (the one place that uses both store and index).

The faiss file is a cache: it is loaded when its sidecar matches the database's generation and code
length, and otherwise rebuilt from the stored codes and saved. It is never silently out of sync.
No torch here: dedup and info run on stored codes alone.
"""

from __future__ import annotations

from semhash.codes import ints_to_packed
from semhash.errors import IndexMissingError
from semhash.index import CodeIndex, index_path_for
from semhash.store import Store


def build_index(store: Store) -> CodeIndex:
    """A fresh index of every stored code, saved beside the database."""
    bits = _bits(store)
    ids, codes = store.codes()
    index = CodeIndex.build(ids, ints_to_packed(codes, bits), bits)
    index.save(index_path_for(store.path), store.generation)
    return index


def load_index(store: Store) -> CodeIndex:
    """The saved index if it is fresh, else a rebuilt one."""
    bits = _bits(store)
    index = CodeIndex.load(index_path_for(store.path), store.generation, bits)
    return index if index is not None else build_index(store)


def require_documents(store: Store) -> None:
    """Raise a clear error when there is nothing to search."""
    if store.count(encoded_only=True) == 0:
        raise IndexMissingError(f"the index at {store.path} holds no document yet: run `semhash index DIR` first")


def _bits(store: Store) -> int:
    bits = store.bits
    if bits is None:
        raise IndexMissingError(f"the index at {store.path} has no trained model yet: run `semhash index DIR` first")
    return bits
