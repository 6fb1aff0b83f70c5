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
from typing import TYPE_CHECKING

from semhash.config import DEFAULT_BATCH_DOCS, DEFAULT_DB, DEFAULT_K, DEFAULT_MODE
from semhash.dedup.options import DEFAULT_MIN_OVERLAP, DEFAULT_RADIUS, DEFAULT_THRESHOLD
from semhash.embed import Encoder

# The index defaults are read where they are defined; by the time a query runs, search has imported ingest's
# own imports anyway (measured: ingest adds ~10 ms after search), so this costs an API user nothing.
from semhash.ingest import DEFAULT_BATCH_CHARS, DEFAULT_MAX_TRAIN_DOCS
from semhash.types import Hits, IndexInfo, IndexReport, RemoveReport

if TYPE_CHECKING:
    from semhash.adapt import AdaptConfig
    from semhash.corpus import ReadOptions
    from semhash.dedup import AgainstResult, DedupOptions, DedupResult
    from semhash.ingest import Progress


class SemanticIndex:
    """An index on disk (SQLite + faiss).

    Every option is an explicit, typed keyword whose default is that of the options dataclass it fills
    (:class:`semhash.ingest.IndexOptions`, :class:`semhash.dedup.DedupOptions`; a test keeps them equal),
    so a type checker catches a misspelt or mistyped option.

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

    def index(
        self,
        paths: Sequence[str | Path],
        *,
        device: str | None = None,
        bits: int | None = None,
        retrain: bool = False,
        batch_docs: int = DEFAULT_BATCH_DOCS,
        batch_chars: int = DEFAULT_BATCH_CHARS,
        max_windows: int | None = None,
        read: ReadOptions | None = None,
        epochs: int | None = None,
        seed: int = 0,
        lexical_weight: float | None = None,
        prune: bool = False,
        engine: str = "local",
        address: str | None = None,
        workers: int | None = None,
        max_train_docs: int = DEFAULT_MAX_TRAIN_DOCS,
        runtime_export: bool = True,
        precision: str | None = None,
    ) -> IndexReport:
        """Index or re-index folders/files (``semhash index``).

        Args:
            paths: folders and files to index.
            device: ``None``: this index's device; else ``auto``, ``cpu`` or ``cuda``.
            bits: code length of a new hashing model (``None``: the index's, or the default).
            retrain: retrain the hashing model even when the index has one.
            batch_docs: documents embedded and committed together.
            batch_chars: most characters in one batch.
            max_windows: most encoder windows per document, evenly spread (0: all; ``None``: the index's recorded
                cap, or :data:`~semhash.config.DEFAULT_MAX_WINDOWS` for a new index).
            read: how files are selected and parsed (``None``: :class:`~semhash.corpus.ReadOptions`'s defaults).
            epochs: training epochs (``None``: the automatic rule).
            seed: seed of training and sampling.
            lexical_weight: weight of the lexical vector (``None``: the recipe's).
            prune: also remove every document whose file no longer exists.
            engine: where embedding runs: ``local`` or ``ray``.
            address: ``engine="ray"``: the cluster to join.
            workers: ``engine="ray"``: embedding actors.
            max_train_docs: the hashing model trains on a seeded sample of at most this many documents.
            runtime_export: (re)write ``<db>.runtime/`` (the torch-free query path) after training.
            precision: encoder precision of a new index, ``fp32`` or ``int8`` (``None``: ``SEMHASH_PRECISION``,
                else the index's recorded one, else the default); an existing index keeps its own.

        Returns:
            What the run did.
        """
        from semhash.corpus import ReadOptions
        from semhash.ingest import IndexOptions, index_paths

        opts = IndexOptions(
            model=self.model,
            device=self.device if device is None else device,
            bits=bits,
            retrain=retrain,
            batch_docs=batch_docs,
            batch_chars=batch_chars,
            max_windows=max_windows,
            read=ReadOptions() if read is None else read,
            epochs=epochs,
            seed=seed,
            lexical_weight=lexical_weight,
            prune=prune,
            engine=engine,
            address=address,
            workers=workers,
            max_train_docs=max_train_docs,
            runtime_export=runtime_export,
            precision=precision,
        )
        return index_paths(self.db, paths, opts, encoder=self.encoder)

    def train(
        self,
        adapt: bool | AdaptConfig = False,
        *,
        bits: int | None = None,
        epochs: int | None = None,
        seed: int = 0,
        device: str | None = None,
        lexical_weight: float | None = None,
        progress: Progress | None = None,
    ) -> IndexReport:
        """``semhash train``: retrain the hashing model and re-encode every document.

        Args:
            adapt: ``True`` or an :class:`semhash.adapt.AdaptConfig`: first adapt the encoder to the corpus
                (``--adapt``; ``True``: the default configuration with ``seed``).
            bits: code length (``None``: the index's).
            epochs: training epochs (``None``: the automatic rule).
            seed: seed of training (and of the adaptation when ``adapt`` is ``True``).
            device: ``None``: this index's device; else ``auto``, ``cpu`` or ``cuda``.
            lexical_weight: weight of the lexical vector (``None``: the recipe's).
            progress: called with ``(phase, done, total)`` as the work advances.

        Returns:
            What the run did.
        """
        from semhash.ingest import retrain_index

        config = None
        if adapt is not False:
            from semhash.adapt import AdaptConfig

            config = adapt if isinstance(adapt, AdaptConfig) else AdaptConfig(seed=seed)
        return retrain_index(
            self.db,
            bits=bits,
            epochs=epochs,
            seed=seed,
            device=self.device if device is None else device,
            progress=progress,
            lexical_weight=lexical_weight,
            adapt=config,
        )

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

        ``mode``: ``semantic``, ``keyword`` or ``hybrid``; ``collapse``: fold copies and near-identical
        twins into one hit; every hit
        carries its passage nearest the query when its window vectors are stored (``Hit.passage``: offsets,
        page, cosine, cleaned text, highlights); ``passages``: embed the windows of those without (slower). The result
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

    def dedup(
        self,
        *,
        radius: int = DEFAULT_RADIUS,
        threshold: float = DEFAULT_THRESHOLD,
        cluster: str = "centre",
        keep: str = "first",
        number_veto: bool = False,
        neighbours: int | str = "auto",
        min_overlap: float = DEFAULT_MIN_OVERLAP,
        engine: str = "local",
        address: str | None = None,
        workers: int | None = None,
    ) -> DedupResult:
        """Exact and near-duplicates in the index (no torch); the options are :class:`semhash.dedup.DedupOptions`'.

        The result keeps every candidate pair, so ``result.rethreshold(0.9)`` re-clusters without recomputing.
        ``engine``, ``address`` and ``workers`` are :class:`semhash.dedup.DedupEngine`'s: ``engine="ray"`` computes
        the candidate cosines on Ray tasks (the same pairs as ``local``).

        Raises:
            UsageError: an option is out of range.
            EngineUnavailableError: ``engine="ray"`` without Ray installed.
            EngineError: the Ray cluster failed.
        """
        from semhash.dedup import DedupEngine, dedup_index

        options = _dedup_options(radius, threshold, cluster, keep, number_veto, neighbours, min_overlap)
        return dedup_index(self.db, options, DedupEngine(engine, address, workers))

    def find_existing(
        self,
        paths: Sequence[str | Path],
        *,
        radius: int = DEFAULT_RADIUS,
        threshold: float = DEFAULT_THRESHOLD,
        cluster: str = "centre",
        keep: str = "first",
        number_veto: bool = False,
        neighbours: int | str = "auto",
        min_overlap: float = DEFAULT_MIN_OVERLAP,
    ) -> AgainstResult:
        """Which documents under ``paths`` already exist in the index, with their matches; nothing is added.

        The options are those of :meth:`dedup` (:class:`semhash.dedup.DedupOptions`).

        Raises:
            UsageError: an option is out of range.
        """
        from semhash.dedup import find_existing

        options = _dedup_options(radius, threshold, cluster, keep, number_veto, neighbours, min_overlap)
        return find_existing(self.db, paths, options, encoder=self.encoder, device=self.device)


def _dedup_options(
    radius: int,
    threshold: float,
    cluster: str,
    keep: str,
    number_veto: bool,
    neighbours: int | str,
    min_overlap: float,
) -> DedupOptions:
    """The :class:`~semhash.dedup.DedupOptions` of :meth:`SemanticIndex.dedup`'s keywords (checked on creation)."""
    from semhash.dedup import DedupOptions

    return DedupOptions(
        radius=radius,
        threshold=threshold,
        cluster=cluster,
        keep=keep,
        number_veto=number_veto,
        neighbours=neighbours,
        min_overlap=min_overlap,
    )
