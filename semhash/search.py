"""``semhash query`` and ``semhash similar``: text -> embedding -> code -> Hamming search -> hits.

Ranking: the ``k`` nearest codes by Hamming distance, ties broken by id. With ``rerank`` (the default),
a larger pool of Hamming candidates is re-ordered by the cosine of the stored embeddings: the 32-bit code
finds the neighbourhood cheaply, the embedding orders it precisely. The pool grows with the index
(:func:`rerank_pool`; issue 9: a fixed 100 kept only 22% of the exact cosine top 10 for short queries),
and its codes and vectors come from the memory-mapped cache beside the database (:mod:`semhash.vectors`),
not from SQLite rows. ``exact`` skips the codes and scans every stored embedding (small indexes).

Large indexes (from ``IVF_MIN_DOCS`` documents) add a float candidate stage (:func:`candidate_stage`):
a faiss IVF index over the stored embeddings (:mod:`semhash.ivf`) proposes ``IVF_CANDIDATES`` rows, the
codes a Hamming pool of at most ``HYBRID_HAMMING_POOL``, and their union is re-ranked by exact cosine. At
10^5-10^6 documents a short query's true top 10 lies in about a tenth of the index by Hamming rank, which
no pool within the latency budget covers; the IVF stage finds it by scanning the cells nearest the query
(about ``IVF_SCAN_ROWS`` rows, 3% of 10^6). Recall@10 against exact cosine for short queries went from 0.90
(10^5, pool 10,000) and 0.91 (10^6, pool 100,000, ~100 ms) to 0.99 and 0.95 (BENCHMARKS.md "Retention").
Below ``IVF_MIN_DOCS``, with an explicit ``pool``, or without reranking, the codes alone choose.
``radius`` instead returns every document within that many bits, the classic semantic-hashing lookup.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from semhash.codec import Codec, resolve_runtime
from semhash.codes import from_sql_int, ints_to_packed, packed_to_ints
from semhash.config import (
    DEFAULT_K,
    HYBRID_HAMMING_POOL,
    IVF_CANDIDATES,
    IVF_MIN_DOCS,
    IVF_SCAN_ROWS,
    MAX_EXACT_DOCS,
    MAX_RERANK_POOL,
    MIN_RERANK_POOL,
    RERANK_POOL_FACTOR,
    RERANK_POOL_FRACTION,
)
from semhash.corpus import read_file, snippet
from semhash.embed import Encoder
from semhash.errors import CorpusError, DocumentNotFoundError, UsageError
from semhash.index import CodeIndex
from semhash.ivf import EmbeddingIVF
from semhash.store import Store
from semhash.sync import load_index, load_ivf, load_vectors, require_documents
from semhash.types import Hit
from semhash.vectors import VectorCache


def rerank_pool(k: int, size: int) -> int:
    """How many Hamming candidates are re-ranked for a top ``k`` in an index of ``size`` documents.

    ``max(RERANK_POOL_FACTOR * k, MIN_RERANK_POOL, RERANK_POOL_FRACTION * size)``, at most
    ``MAX_RERANK_POOL`` (but never below ``k``): see :mod:`semhash.config` for why it grows with the index.
    """
    grown = max(RERANK_POOL_FACTOR * k, MIN_RERANK_POOL, int(np.ceil(RERANK_POOL_FRACTION * size)))
    return max(min(grown, MAX_RERANK_POOL), k)


#: The candidate stages a query can run (reported as each hit's ``stage``).
STAGE_CODES = "codes"  # a Hamming pool of the codes, re-ranked by cosine
STAGE_HYBRID = "codes+ivf"  # a smaller Hamming pool joined by the IVF index's candidates, re-ranked by cosine
STAGE_EXACT = "exact"  # every stored embedding by cosine
STAGE_HAMMING = "hamming"  # Hamming order alone (``--no-rerank``, ``--radius``)


def candidate_stage(options: QueryOptions, size: int) -> str:
    """Which candidate stage a query with ``options`` runs on an index of ``size`` documents.

    The codes stay the candidate stage wherever they suffice: small indexes (below ``IVF_MIN_DOCS``, where
    the pool rule keeps recall@10 >= 0.9), an explicit ``pool`` (the caller chose the Hamming pool), and
    every unranked or radius query. Only a reranked top ``k`` on a large index adds the IVF stage.
    """
    if options.exact:
        return STAGE_EXACT
    if not options.rerank or options.radius is not None:
        return STAGE_HAMMING
    if options.pool is not None or size < IVF_MIN_DOCS:
        return STAGE_CODES
    return STAGE_HYBRID


def candidates(
    vectors: VectorCache,
    code: int,
    embedding: np.ndarray,
    pool: int,
    exclude: int | None = None,
    ivf: EmbeddingIVF | None = None,
    ivf_candidates: int | None = None,
    nprobe: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The rows to re-rank by cosine and their Hamming distances: ``(rows, distances)``, rows ascending.

    The ``pool`` rows nearest to ``code`` (ties by id), joined, when ``ivf`` is given, by the rows of its
    top ``ivf_candidates`` (default ``IVF_CANDIDATES``) in the ``nprobe`` cells nearest to ``embedding``
    (default: as many as hold about ``IVF_SCAN_ROWS`` rows); ``exclude`` is left out of both.
    """
    rows, dist = vectors.nearest(code, pool, exclude=exclude)
    if ivf is None:
        return rows, dist
    wanted = (IVF_CANDIDATES if ivf_candidates is None else ivf_candidates) + (exclude is not None)
    found = ivf.search(embedding, wanted, ivf.probes_for(IVF_SCAN_ROWS) if nprobe is None else nprobe)
    _, extra = vectors.rows(found[found != exclude] if exclude is not None else found)
    rows = np.union1d(rows, extra)  # ascending: reads the memory map front to back
    return rows, vectors.distances(code, rows)


@dataclass
class QueryOptions:
    """How results are chosen.

    Attributes:
        k: number of hits.
        rerank: re-order a pool of Hamming candidates by cosine (else Hamming order, ties by id).
        radius: every document within this many bits instead of a top ``k``.
        device: where the query is embedded.
        pool: Hamming candidates to re-rank (``None``: :func:`rerank_pool` of ``k`` and the index size).
        exact: rank every stored embedding by cosine (no Hamming stage; refused above ``MAX_EXACT_DOCS``).
    """

    k: int = DEFAULT_K
    rerank: bool = True
    radius: int | None = None
    device: str = "auto"
    pool: int | None = None
    exact: bool = False

    def validate(self, bits: int) -> None:
        """Raise :class:`UsageError` for out-of-range or contradictory values."""
        if self.k < 1:
            raise UsageError(f"-k must be at least 1, not {self.k}")
        if self.radius is not None and not 0 <= self.radius <= bits:
            raise UsageError(f"--radius must be between 0 and {bits}, not {self.radius}")
        if self.pool is not None and self.pool < 1:
            raise UsageError(f"--pool must be at least 1, not {self.pool}")
        if self.exact and (self.radius is not None or not self.rerank):
            raise UsageError("--exact ranks by cosine alone: drop --radius and --no-rerank")


@dataclass(frozen=True)
class _Snapshot:
    """What one store generation needs for searching: swapped as a whole, never edited in place."""

    generation: int
    model_id: int | None
    index: CodeIndex
    vectors: VectorCache
    ivf: _LazyIVF = field(default_factory=lambda: _LazyIVF(), compare=False)


class _LazyIVF:
    """The IVF index of one snapshot, loaded or built by the first query that needs it (then kept)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.value: EmbeddingIVF | None = None


def valid_unicode(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD, so any tokenizer can read it.

    A command line holding bytes that are not UTF-8 reaches Python as surrogate escapes (PEP 383), and a
    JSON string may hold a lone ``\\ud800``; tokenizers refuse both with a ``TypeError``. Valid text is
    returned as it is (the check is one encode).
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


class Searcher:
    """An open index ready for queries: the store, the faiss index and (lazily) the models.

    A searcher may live long (``semhash serve``) while ``semhash index`` adds, updates or removes documents
    in the same database. Every query first reads the store's generation (one indexed ``meta`` lookup);
    when it moved, the faiss index is reloaded (:func:`semhash.sync.load_index`, inside one read
    transaction so codes and generation agree) and, when the active hashing model changed, that too.
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
        """The faiss index of the store's current generation."""
        return self._current().index

    @property
    def bits(self) -> int:
        """Code length of the index."""
        return self._current().index.bits

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
            index = load_index(store)
            vectors = load_vectors(store)  # the same commit as the codes: their ids agree
        finally:
            store.db.execute("COMMIT")
        return _Snapshot(generation, int(model_id) if model_id is not None else None, index, vectors)

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
    def query(self, text: str, options: QueryOptions | None = None) -> list[Hit]:
        """Documents most similar to ``text`` (characters that are not valid Unicode count as U+FFFD)."""
        text = valid_unicode(text)
        if not text.strip():
            raise UsageError("the query text is empty")
        embedding, code = self.embed_and_code(text)
        return self.search_embedding(embedding, code, options)

    def query_file(self, path: str | Path, options: QueryOptions | None = None) -> list[Hit]:
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

    def similar(self, path: str | Path, record: int | None = None, options: QueryOptions | None = None) -> list[Hit]:
        """Documents most similar to an indexed document (itself left out), from its stored embedding."""
        resolved = str(Path(path).expanduser().resolve())
        docs = self.store.find(resolved, record) or self.store.find(str(path), record)
        docs = [d for d in docs if d.code is not None]
        if not docs:
            raise DocumentNotFoundError(f"{path} is not in the index: run `semhash index` on its folder first")
        if len(docs) > 1:
            raise UsageError(f"{path} holds {len(docs)} records: pick one with --record N")
        return self.similar_id(docs[0].id, options)

    def similar_id(self, doc_id: int, options: QueryOptions | None = None) -> list[Hit]:
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
    ) -> list[Hit]:
        """Search with a query's embedding and packed code (the shared path of every query form)."""
        options = options or QueryOptions()
        snapshot = self._current()  # read once: this query sees one generation
        bits = snapshot.index.bits
        options.validate(bits)
        query = code.reshape(1, -1)
        vectors = snapshot.vectors
        code_int = int(packed_to_ints(query)[0])
        limit: int | None = options.k
        stage = candidate_stage(options, vectors.size)
        if options.exact:
            ids, cosines = self._exact(snapshot, embedding, options.k, exclude)
            dist = vectors.distances(code_int, vectors.rows(ids)[1])
        elif options.rerank and options.radius is None:
            # The candidate pool comes from the cache's codes (the faiss index's rows of this generation):
            # one numpy pass, the same set as a faiss top-``pool`` with ties by id, at a fraction of the cost.
            pool = max(options.pool or rerank_pool(options.k, vectors.size), options.k)
            if stage == STAGE_HYBRID:
                pool = max(min(pool, HYBRID_HAMMING_POOL), options.k)
            ivf = self._ivf(snapshot) if stage == STAGE_HYBRID else None
            rows, dist = candidates(vectors, code_int, embedding, pool, exclude=exclude, ivf=ivf)
            ids, cosines = vectors.ids[rows], vectors.cosines_at(embedding, rows)
            order = np.lexsort((ids, dist, -cosines))
            ids, dist, cosines = ids[order], dist[order], cosines[order]
        else:
            if options.radius is not None:
                ids, dist = snapshot.index.within(query, options.radius)
                order = np.lexsort((ids, dist))
                ids, dist = ids[order], dist[order]
                limit = None
            else:
                d, i = snapshot.index.search(query, options.k + (exclude is not None))
                ids, dist = i[0], d[0]
            keep = ids != exclude if exclude is not None else np.ones(len(ids), bool)
            ids, dist = ids[keep], dist[keep]
            # A document whose vector is not in this generation's cache has no row: leave it out.
            present, cosines = snapshot.vectors.cosines(embedding, ids)
            ids, dist = ids[present], dist[present]
            if options.rerank:
                order = np.lexsort((ids, dist, -cosines))
                ids, dist, cosines = ids[order], dist[order], cosines[order]
        ranked, docs = self._rows(ids, dist, cosines, limit)
        mask = (1 << bits) - 1
        return [
            Hit(
                rank=rank,
                id=i,
                path=docs[i].path,
                record=docs[i].record,
                distance=dd,
                code=from_sql_int(docs[i].code or 0) & mask,
                cosine=c,
                snippet=snippet(docs[i].text),
                bits=bits,
                stage=stage,
            )
            for rank, (i, dd, c) in enumerate(ranked, start=1)
        ]

    def warm(self) -> None:
        """Load now what the first query would otherwise load: the encoder, the hasher and, on a large
        index (from ``IVF_MIN_DOCS`` documents), the IVF stage (``semhash serve`` calls it at start-up, so
        the first request does not pay for them)."""
        snapshot = self._current()
        self.embed_and_code("warm up")
        if snapshot.vectors.size >= IVF_MIN_DOCS:
            self._ivf(snapshot)

    def _ivf(self, snapshot: _Snapshot) -> EmbeddingIVF:
        """The snapshot's IVF index: loaded from ``<db>.ivf`` when fresh, else built and saved (once)."""
        slot = snapshot.ivf
        ivf = slot.value
        if ivf is None:
            with slot.lock:  # one build per snapshot, however many threads ask at once
                if slot.value is None:
                    slot.value = load_ivf(self.store, snapshot.vectors, snapshot.generation)
                ivf = slot.value
        return ivf

    def _exact(
        self, snapshot: _Snapshot, embedding: np.ndarray, k: int, exclude: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The exact cosine top ``k`` (and some spare for rows deleted since) over every cached vector."""
        size = snapshot.vectors.size
        if size > MAX_EXACT_DOCS:
            raise UsageError(
                f"--exact scans every stored embedding and this index holds {size:,} documents "
                f"(more than {MAX_EXACT_DOCS:,}): drop --exact, or raise --pool"
            )
        return snapshot.vectors.scan(embedding, 2 * k, exclude=exclude)

    def _rows(
        self, ids: np.ndarray, dist: np.ndarray, cosines: np.ndarray, limit: int | None
    ) -> tuple[list[tuple[int, int, float]], dict]:
        """The first ``limit`` ranked hits whose rows still exist, with those rows.

        Rows are read for the head of the ranking only (not the whole pool); a document deleted after the
        index snapshot was taken has no row any more and is skipped, its place taken by the next one.
        """
        rows: list[tuple[int, int, float]] = []
        docs: dict = {}
        # max(1, ...): a radius search with nothing in range ranks no ids at all, and that is a result.
        step = max(1, len(ids)) if limit is None else max(2 * limit, 16)
        for start in range(0, len(ids), step):
            chunk = ids[start : start + step]
            found = self.store.documents(chunk.tolist())
            docs.update(found)
            for i, dd, c in zip(chunk, dist[start : start + step], cosines[start : start + step], strict=True):
                if int(i) in found:
                    rows.append((int(i), int(dd), float(c)))
            if limit is not None and len(rows) >= limit:
                return rows[:limit], docs
        return rows, docs
