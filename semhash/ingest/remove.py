"""Documents leaving the index: ``semhash remove`` (:func:`remove_paths`) and ``--prune`` (:func:`prune_index`)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from semhash.caches.sync import build_index, load_index
from semhash.errors import CorruptIndexError, DocumentNotFoundError, UsageError
from semhash.store import Store
from semhash.types import IndexReport, RemoveReport


# -- removing documents ---------------------------------------------------------------------------------
def remove_paths(db_path: str | Path, paths: Sequence[str | Path]) -> RemoveReport:
    """Remove every document of the given files, and under the given folders, whether or not they still exist.

    Raises:
        UsageError: no path given.
        DocumentNotFoundError: no document lies under any of the paths.
    """
    if not paths:
        raise UsageError("give the files or folders to remove: semhash remove PATH...")
    report = RemoveReport()
    with Store.open(db_path, write=True) as store:
        ids: set[int] = set()
        for given in paths:
            path = Path(given).expanduser()
            # Stored paths are absolute and resolved; a vanished folder resolves only partly, so try both forms.
            found = set(store.ids_under(str(path.resolve()))) | set(store.ids_under(str(path.absolute())))
            report.paths[str(given)] = len(found - ids)
            ids |= found
        if not ids:
            raise DocumentNotFoundError(
                f"no indexed document lies under {', '.join(str(p) for p in paths)}: check the paths "
                f"(`semhash info --db {store.path}` counts what is there)"
            )
        report.removed = store.delete_documents(sorted(ids))
        sync_after_removal(store)
        report.total_documents = store.count()
    return report


def prune_missing(store: Store) -> int:
    """Remove every document whose file no longer exists, anywhere in the index; returns how many went."""
    ids = [i for path in store.paths() if not os.path.exists(path) for i in store.ids_under(path, folders=False)]
    return store.delete_documents(ids)


def prune_index(db_path: str | Path) -> IndexReport:
    """``semhash index --prune`` without paths: :func:`prune_missing`, then bring faiss up to date."""
    started = time.perf_counter()
    report = IndexReport()
    with Store.open(db_path, write=True) as store:
        report.removed = prune_missing(store)
        sync_after_removal(store)
        report.total_documents = store.count()
    report.seconds = time.perf_counter() - started
    return report


def sync_after_removal(store: Store) -> None:
    """Bring the faiss file up to date after documents left (rebuilt when it is corrupt)."""
    if store.bits is not None:  # no model yet: there is no faiss file to keep in step
        try:
            load_index(store, strict=True)
        except CorruptIndexError:
            build_index(store)
