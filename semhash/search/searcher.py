"""The searcher: an open index that answers queries, keeps up with the store, and is safe to share across threads.

It holds the snapshot of one store generation (codes, vectors, the lazily built IVF stage) and the codec,
and runs each query form (text, file, stored document) through one path, :meth:`Searcher.search_embedding`:
the candidate stages (:mod:`semhash.search.stages`), the keyword ranking and fusion
(:mod:`semhash.search.keyword`), then the hits (:mod:`semhash.search.results`) and, when asked, their
passages (:mod:`semhash.search.passages`: every text query's hits, from the stored window vectors).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np

from semhash.caches.hamming import CodeIndex
from semhash.caches.ivf import EmbeddingIVF
from semhash.caches.sync import code_index_of, load_ivf, load_vectors, require_documents
from semhash.caches.vectors import VectorCache
from semhash.codec import Codec
from semhash.codes import ints_to_packed, packed_to_ints
from semhash.corpus import read_file
from semhash.embed import Encoder
from semhash.encoders import resolve_runtime
from semhash.errors import CorpusError, DocumentNotFoundError, UsageError
from semhash.search.keyword import FUSION_DEPTH, fuse, keyword_ranking
from semhash.search.options import QueryOptions, valid_unicode
from semhash.search.passages import add_passages
from semhash.search.results import MAX_FOLD_DEPTH, Ranked, build_hits, present_rows, weigh
from semhash.search.stages import STAGE_HYBRID, query_candidate_stage, semantic_ranking
from semhash.search.twins import ShingleCache, TwinCheck
from semhash.store import Store, StoredDocument
from semhash.types import Hits

T = TypeVar("T")


class _Once(Generic[T]):
    """A value of one snapshot, made by the first query that needs it and then kept.

    One build, however many threads ask at once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: T | None = None

    @property
    def value(self) -> T | None:
        """What was made so far (``None``: nothing yet)."""
        return self._value

    def get(self, make: Callable[[], T]) -> T:
        """The value, made now with ``make`` if no caller made it yet."""
        value = self._value
        if value is None:
            with self._lock:
                if self._value is None:
                    self._value = make()
                value = self._value
        return value


@dataclass(frozen=True)
class _Snapshot:
    """What one store generation needs for searching: swapped as a whole, never edited in place.

    ``ivf``: the IVF index, loaded from ``<db>.ivf`` or built by the first query that needs it. ``codes``: a faiss
    index of the snapshot's codes, built in memory from its vectors by the first ``--radius`` / ``--no-rerank``
    query; the default query's Hamming pool comes from the vector cache's codes. So the searcher never reads
    ``<db>.faiss`` (checksumming and deserialising it cost every cold query 14 ms at 10^5 codes, 140 ms at 10^6):
    :func:`semhash.caches.sync.code_index_of` builds the same rows (~100 ms at 10^6), of this generation by
    construction.
    """

    generation: int
    model_id: int | None
    vectors: VectorCache
    ivf: _Once[EmbeddingIVF] = field(default_factory=lambda: _Once(), compare=False)
    codes: _Once[CodeIndex] = field(default_factory=lambda: _Once(), compare=False)
    shingles: ShingleCache = field(default_factory=ShingleCache, compare=False)  # the twin check's, for its texts


class Searcher:
    """An open index ready for queries: the store, the rerank vectors and (lazily) the models.

    A searcher may live long (``semhash serve``) while ``semhash index`` adds, updates or removes documents
    in the same database. Every query first reads the store's generation (one indexed ``meta`` lookup);
    when it moved, the vector cache (ids, codes, embeddings) is reloaded (:func:`semhash.caches.sync.load_vectors`,
    inside one read transaction so codes and generation agree) and, when the active hashing model changed, that
    too. The ``<db>.faiss`` file is never read here (``_Snapshot.codes``).
    A hit whose row vanished between the Hamming search and the row fetch is left out, never an error.

    Thread policy: one searcher may be shared by many threads. Each thread gets its own SQLite connection
    (``threading.local``; a connection is only ever used by the thread that opened it, and :meth:`close`
    closes them all, which is why they are opened with ``check_same_thread=False``). The index and
    hashing model are swapped together under a lock as an immutable snapshot; a query reads the snapshot
    once, so it never mixes two generations. Embedding and hashing the query text run under one lock
    (tokenizers and torch modules are not promised to be re-entrant); the faiss scan and row reads run
    concurrently.

    ``quick_start=True`` is for a searcher that answers one query before its process exits (``semhash
    query``): the exported encoder is then made to start fast rather than to run fast.
    """

    def __init__(
        self,
        db_path: str | Path,
        encoder: Encoder | None = None,
        device: str = "auto",
        runtime: str | None = None,
        quick_start: bool = False,
    ) -> None:
        self.db_path = Path(db_path)
        self._local = threading.local()
        self._lock = threading.Lock()  # guards the snapshot swap and the list of connections
        self._encode_lock = threading.Lock()  # one query embedding at a time
        self._stores: list[Store] = []
        Store.open(self.db_path).close()  # validates the file (exists, schema, version) with clear errors
        try:
            self._snapshot = self._load(self.store)
        except BaseException:
            self.close()
            raise
        self._encoder = encoder
        self._encoder_checked = False
        self._device = device
        self._runtime = resolve_runtime(runtime)  # a bad --runtime fails before any work
        self._quick_start = quick_start  # one query, then exit: start the exported encoder fast
        self._codec: Codec | None = None

    @property
    def store(self) -> Store:
        """This thread's connection to the database (opened on first use in each thread)."""
        store: Store | None = getattr(self._local, "store", None)
        if store is None:
            # Store.open's read-only fallbacks apply to every thread's connection (a read-only folder).
            store = Store.open(self.db_path, closable_anywhere=True)
            self._local.store = store
            with self._lock:
                self._stores.append(store)
        return store

    @property
    def index(self) -> CodeIndex:
        """A faiss index of the current generation's codes (built in memory on first use: ``_Snapshot.codes``)."""
        return self._code_index(self._current())

    @property
    def bits(self) -> int:
        """Code length of the index."""
        return self._current().vectors.bits

    def close(self) -> None:
        """Close every thread's database connection."""
        with self._lock:
            stores, self._stores = self._stores, []
        for store in stores:
            store.close()
        self._local = threading.local()

    def __enter__(self) -> Searcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- keeping up with the store ---------------------------------------------------------------
    def _load(self, store: Store) -> _Snapshot:
        """Index and model id of the store's current generation, read in one snapshot of the database."""
        store.db.execute("BEGIN")  # a read transaction: codes, generation and model id from one commit
        try:
            generation = store.generation
            model_id = store.get_meta("model_id")
            require_documents(store)
            vectors = load_vectors(store)  # the same commit as the codes: their ids agree
        finally:
            store.db.execute("COMMIT")
        return _Snapshot(generation, int(model_id) if model_id is not None else None, vectors)

    @staticmethod
    def _code_index(snapshot: _Snapshot) -> CodeIndex:
        """The snapshot's faiss index of codes, built once from its vectors by the first caller."""
        return snapshot.codes.get(lambda: code_index_of(snapshot.vectors))

    def _current(self) -> _Snapshot:
        """The snapshot to search, reloaded first when the store's generation moved (cheap when it did not)."""
        snapshot = self._snapshot
        store = self.store
        if store.generation == snapshot.generation:
            return snapshot
        with self._lock:
            if self._snapshot.generation == store.generation:  # another thread reloaded meanwhile
                return self._snapshot
            self._snapshot = self._load(store)
            return self._snapshot

    # -- models, loaded on first use -------------------------------------------------------------
    @property
    def codec(self) -> Codec:
        """Text -> code with the index's active models (rebuilt when the active hashing model changes).

        The encoder is kept across hashing models: it depends only on the index's embedding model.
        """
        model_id = self._current().model_id
        codec = self._codec
        if codec is None or codec.model.id != model_id:
            previous = codec
            codec = Codec.from_store(
                self.store, self._runtime, device=self._device, encoder=self._encoder, quick_start=self._quick_start
            )
            if previous is not None and previous.runtime == codec.runtime:
                codec.keep_encoder(previous)  # the embedding model stays loaded across retrainings
            self._codec = codec
        return codec

    @property
    def runtime(self) -> str:
        """``"onnx"`` or ``"torch"``: the runtime the codec uses now."""
        return self.codec.runtime

    @property
    def encoder(self) -> Encoder:
        """The embedding model the index was built with."""
        encoder = self.codec.encoder
        if not self._encoder_checked:  # once per searcher, not once per query
            self.store.check_embedding_model(encoder.name, encoder.dim)
            self._encoder_checked = True
        return encoder

    def encode(self, embeddings: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        """Packed codes of documents (their embeddings and texts), with the index's active hashing model."""
        return self.codec.code(embeddings, texts)

    def embed_and_code(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """The query's unit embedding and packed code (serialised: see the thread policy)."""
        with self._encode_lock:
            embedding = np.asarray(self.encoder.encode([text]), dtype=np.float32)
            return embedding[0], self.codec.code(embedding, [text])[0]

    # -- queries ---------------------------------------------------------------------------------
    def query(self, text: str, options: QueryOptions | None = None) -> Hits:
        """Documents most similar to ``text`` (characters that are not valid Unicode count as U+FFFD)."""
        text = valid_unicode(text)
        if not text.strip():
            raise UsageError("the query text is empty")
        embedding, code = self.embed_and_code(text)
        hits = self.search_embedding(embedding, code, options, text=text)
        return self.passages(hits, text, embedding, reembed=options is not None and options.passages)

    def query_file(self, path: str | Path, options: QueryOptions | None = None) -> Hits:
        """Documents most similar to the content of a file (any format ``semhash index`` reads)."""
        file = Path(path)
        if not file.exists():
            raise CorpusError(f"{path}: no such file")
        try:  # as `index` reads it: a FIFO never blocks, a device is never read, the size is capped
            documents = read_file(file)
        except ValueError as exc:
            raise CorpusError(f"{path}: {exc}") from None
        text = "\n".join(doc.text for doc in documents)
        if not text:
            raise CorpusError(f"{path} holds no text")
        return self.query(text, options)

    def similar(self, path: str | Path, record: int | None = None, options: QueryOptions | None = None) -> Hits:
        """Documents most similar to an indexed document (itself left out), from its stored embedding."""
        resolved = str(Path(path).expanduser().resolve())
        docs = self.store.find(resolved, record) or self.store.find(str(path), record)
        docs = [d for d in docs if d.code is not None]
        if not docs:
            raise DocumentNotFoundError(f"{path} is not in the index: run `semhash index` on its folder first")
        if len(docs) > 1:
            raise UsageError(f"{path} holds {len(docs)} records: pick one with --record N")
        return self.similar_id(docs[0].id, options)

    def similar_id(self, doc_id: int, options: QueryOptions | None = None) -> Hits:
        """Documents most similar to the stored document ``doc_id`` (itself left out), from its embedding."""
        doc = self.store.documents([doc_id]).get(doc_id)
        ids, embedding = self.store.embeddings([doc_id])
        if doc is None or doc.code is None or not len(ids):
            raise DocumentNotFoundError(f"no encoded document with id {doc_id}: look ids up with `semhash query`")
        code = ints_to_packed(np.array([doc.code], dtype=np.int64), self.bits)[0]
        return self.search_embedding(embedding[0], code, options, exclude=doc_id)

    def search_embedding(
        self,
        embedding: np.ndarray,
        code: np.ndarray,
        options: QueryOptions | None = None,
        exclude: int | None = None,
        text: str | None = None,
    ) -> Hits:
        """Search with a query's embedding and packed code (the shared path of every query form).

        ``text`` (the query's words) is needed by the ``keyword`` and ``hybrid`` modes.
        """
        options = options or QueryOptions()
        snapshot = self._current()  # read once: this query sees one generation
        bits = snapshot.vectors.bits
        options.validate(bits)
        if options.mode != "semantic" and text is None:
            raise UsageError(f"--mode {options.mode} needs a query text: use --mode semantic")
        code_int = int(packed_to_ints(code.reshape(1, -1))[0])
        # Folding copies takes rows from the ranking: when it left fewer than k, read deeper (the first read is
        # the plain top k, so a ranking without copies costs what it did and chooses the same candidates).
        depth = options.k
        twins = TwinCheck(snapshot.vectors, snapshot.shingles)  # near-identical hits fold too
        while True:
            ranked, docs, stage, complete, nearest = self._ranked(
                snapshot, embedding, code, code_int, options, exclude, text, depth
            )
            hits = build_hits(self.store, ranked, docs, stage, options, bits, twins)
            if options.radius is not None or len(hits) >= options.k or complete or depth >= MAX_FOLD_DEPTH:
                break
            depth = min(4 * depth + 8, MAX_FOLD_DEPTH)
        return weigh(hits, nearest)

    def passages(self, hits: Hits, text: str, embedding: np.ndarray, reembed: bool = False) -> Hits:
        """The hits with their passages (:func:`semhash.search.passages.add_passages`).

        A passage is the window of each one's stored text nearest the query (from the stored window
        vectors; with ``reembed``, embedded now for documents that have none), and a snippet from it.
        """
        encoder = self.encoder if reembed else None
        return add_passages(self.store, encoder, self._encode_lock, hits, text, embedding, reembed=reembed)

    def _ranked(
        self,
        snapshot: _Snapshot,
        embedding: np.ndarray,
        code: np.ndarray,
        code_int: int,
        options: QueryOptions,
        exclude: int | None,
        text: str | None,
        depth: int,
    ) -> tuple[list[Ranked], dict[int, StoredDocument], str, bool, float | None]:
        """The head of the ranking.

        Returns ``([(id, distance, cosine, bm25, score), ...], rows, stage, complete, nearest)``.

        At most ``depth`` entries (every one within the radius for a radius query), rows still present only;
        ``complete`` when the ranking held no more than that; ``nearest`` the best cosine the semantic ranking
        found (``None`` in keyword mode), which the weak flag reads even when fusion ranked it lower.
        """
        if options.mode == "semantic":
            ids, dist, cosines, limit, stage = self._semantic(
                snapshot, embedding, code, code_int, options, exclude, depth
            )
            rows, docs = present_rows(self.store, ids, dist, cosines, limit)
            ranked: list[Ranked] = [(i, dd, c, None, c) for i, dd, c in rows]
            return ranked, docs, stage, len(ids) < depth or limit is None, None
        reach = depth if options.mode == "keyword" else max(FUSION_DEPTH, depth)
        nearest: float | None = None
        words = keyword_ranking(self.store, valid_unicode(text or ""), reach, exclude)
        bm25 = dict(words)
        if options.mode == "keyword":
            order = [(i, -score) for i, score in words]
            stage = "fts"
            complete = len(words) < reach
        else:
            ids, _, semantic_cosines, _, stage = self._semantic(
                snapshot, embedding, code, code_int, options, exclude, reach
            )
            nearest = float(semantic_cosines[0]) if len(semantic_cosines) else None
            order = fuse([[int(i) for i in ids[:reach]], [i for i, _ in words]])
            stage += "+fts"
            complete = len(order) < depth
        order = order[: 2 * depth]  # spare for rows deleted since the snapshot
        vectors = snapshot.vectors
        candidate = np.array([i for i, _ in order], dtype=np.int64)
        present, rows_at = vectors.rows(candidate)
        cos = dict(zip(candidate[present].tolist(), vectors.cosines_at(embedding, rows_at).tolist(), strict=True))
        hamming = dict(zip(candidate[present].tolist(), vectors.distances(code_int, rows_at).tolist(), strict=True))
        # Only documents with a code are searchable (as in semantic mode); a keyword match not encoded yet waits.
        order = [(i, score) for i, score in order if i in cos]
        found = self.store.documents([i for i, _ in order[: 2 * depth]])
        ranked = [
            (i, int(hamming[i]), float(cos[i]), -bm25[i] if i in bm25 else None, score)
            for i, score in order
            if i in found
        ]
        return ranked[:depth], found, stage, complete, nearest

    def _semantic(
        self,
        snapshot: _Snapshot,
        embedding: np.ndarray,
        code: np.ndarray,
        code_int: int,
        options: QueryOptions,
        exclude: int | None,
        k: int,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int | None, str]:
        """The semantic ranking's top ``k`` in ``snapshot`` (:func:`semhash.search.stages.semantic_ranking`)."""
        return semantic_ranking(
            lambda: self._code_index(snapshot),
            snapshot.vectors,
            lambda: self._ivf(snapshot),
            embedding,
            code,
            code_int,
            options,
            exclude,
            k,
        )

    def warm(self) -> None:
        """Load now what the first query would otherwise load.

        That is the encoder, the hasher and, on a large index (from ``IVF_MIN_DOCS`` documents), the IVF stage
        (``semhash serve`` calls it at start-up, so the first request does not pay for them).
        """
        snapshot = self._current()
        self.embed_and_code("warm up")
        if query_candidate_stage(QueryOptions(), snapshot.vectors.size) == STAGE_HYBRID:  # the default query's rule
            self._ivf(snapshot)

    def _ivf(self, snapshot: _Snapshot) -> EmbeddingIVF:
        """The snapshot's IVF index: loaded from ``<db>.ivf`` when fresh, else built and saved (once)."""
        return snapshot.ivf.get(lambda: load_ivf(self.store, snapshot.vectors, snapshot.generation))
