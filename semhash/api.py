"""The Python API, mirroring the CLI: one object per index.

Example:
    >>> from semhash import SemanticIndex
    >>> index = SemanticIndex("semhash.db")
    >>> index.index(["data/sample"])            # doctest: +SKIP
    >>> for hit in index.query("how do I fix a flat tyre?", k=3):  # doctest: +SKIP
    ...     print(hit.distance, round(hit.cosine, 3), hit.location)
    >>> result = index.dedup()                   # doctest: +SKIP
    >>> stricter = result.rethreshold(0.9)       # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from semhash.config import DEFAULT_DB, DEFAULT_K, DEFAULT_MODE
from semhash.embed import Encoder
from semhash.types import Hits, IndexInfo, IndexReport

if TYPE_CHECKING:
    from semhash.adapt import AdaptConfig
    from semhash.dedup import AgainstResult, DedupOptions, DedupResult
    from semhash.ingest import RemoveReport


class SemanticIndex:
    """An index on disk (SQLite + faiss).

    Args:
        db: path of the SQLite database (created by the first :meth:`index`).
        model: sentence-transformers name or local path (``None``: the packaged all-MiniLM-L6-v2).
        device: ``auto``, ``cpu`` or ``cuda``.
        encoder: an already loaded :class:`~semhash.embed.Encoder` to use instead of ``model``.
    """

    def __init__(
        self,
        db: str | Path = DEFAULT_DB,
        model: str | None = None,
        device: str = "auto",
        encoder: Encoder | None = None,
    ) -> None:
        self.db = Path(db)
        self.model = model
        self.device = device
        self.encoder = encoder

    def index(self, paths: Sequence[str | Path], **options: Any) -> IndexReport:
        """Index or re-index folders/files; keyword options are those of :class:`semhash.ingest.IndexOptions`."""
        from semhash.ingest import IndexOptions, index_paths

        opts = IndexOptions(**{"model": self.model, "device": self.device, **options})
        return index_paths(self.db, paths, opts, encoder=self.encoder)

    def train(self, adapt: bool | AdaptConfig = False, **options: Any) -> IndexReport:
        """``semhash train``: retrain the hashing model and re-encode; ``adapt`` (``True`` or an
        :class:`semhash.adapt.AdaptConfig`) first adapts the encoder to the corpus (``--adapt``). Keyword
        options are those of :func:`semhash.ingest.retrain_index` (``bits``, ``epochs``, ``seed``...)."""
        from semhash.ingest import retrain_index

        config = None
        if adapt is not False:
            from semhash.adapt import AdaptConfig

            config = adapt if isinstance(adapt, AdaptConfig) else AdaptConfig(seed=int(options.get("seed", 0)))
        return retrain_index(self.db, **{"device": self.device, **options}, adapt=config)

    def remove(self, paths: Sequence[str | Path]) -> RemoveReport:
        """Remove the documents of these files, or under these folders, whether or not they still exist."""
        from semhash.ingest import remove_paths

        return remove_paths(self.db, paths)

    def prune(self) -> IndexReport:
        """Remove every document whose file no longer exists (after a folder moved); ``removed`` says how many."""
        from semhash.ingest import prune_index

        return prune_index(self.db)

    def query(
        self,
        text: str,
        k: int = DEFAULT_K,
        rerank: bool = True,
        radius: int | None = None,
        pool: int | None = None,
        exact: bool = False,
        mode: str = DEFAULT_MODE,
        collapse: bool = True,
        passages: bool = False,
    ) -> Hits:
        """Documents most similar to ``text`` (options: see :class:`semhash.search.QueryOptions`).

        ``mode``: ``semantic``, ``keyword`` or ``hybrid``; ``collapse``: fold copies into one hit; ``passages``:
        each hit's passage nearest the query (``Hit.passage``: offsets, page, cosine; slower). The result
        is a list of hits with ``weak`` (no hit reaches the no-good-match floor).
        """
        from semhash.search import QueryOptions, Searcher

        options = QueryOptions(
            k=k, rerank=rerank, radius=radius, pool=pool, exact=exact, mode=mode, collapse=collapse, passages=passages
        )
        with Searcher(self.db, encoder=self.encoder, device=self.device) as searcher:
            hits = searcher.query(text, options)
            self.encoder = searcher.encoder  # loaded by the query: keep it for the next one
            return hits

    def similar(
        self,
        path: str | Path,
        record: int | None = None,
        k: int = DEFAULT_K,
        rerank: bool = True,
        pool: int | None = None,
        exact: bool = False,
    ) -> Hits:
        """Documents most similar to an indexed document."""
        from semhash.search import QueryOptions, Searcher

        with Searcher(self.db, encoder=self.encoder, device=self.device) as searcher:
            return searcher.similar(path, record, QueryOptions(k=k, rerank=rerank, pool=pool, exact=exact))

    def info(self) -> IndexInfo:
        """What the index holds."""
        from semhash.info import index_info

        return index_info(self.db)

    def dedup(self, **options: Any) -> DedupResult:
        """Exact and near-duplicates in the index (no torch); options of :class:`semhash.dedup.DedupOptions`.

        The result keeps every candidate pair, so ``result.rethreshold(0.9)`` re-clusters without recomputing.
        """
        from semhash.dedup import dedup_index

        return dedup_index(self.db, _dedup_options(options))

    def find_existing(self, paths: Sequence[str | Path], **options: Any) -> AgainstResult:
        """Which documents under ``paths`` already exist in the index, with their matches; nothing is added."""
        from semhash.dedup import find_existing

        return find_existing(
            self.db,
            paths,
            _dedup_options(options),
            encoder=self.encoder,
            device=self.device,
        )


def _dedup_options(options: dict[str, Any]) -> DedupOptions:
    """:class:`~semhash.dedup.DedupOptions` from keywords; an unknown one is a :class:`UsageError`, not a TypeError."""
    from dataclasses import fields

    from semhash.dedup import DedupOptions
    from semhash.errors import UsageError

    known = {f.name for f in fields(DedupOptions)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise UsageError(f"unknown dedup option {', '.join(unknown)}: use {', '.join(sorted(known))}")
    return DedupOptions(**options)
