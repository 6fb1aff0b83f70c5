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

Modes (``QueryOptions.mode``): ``semantic`` is the above; ``keyword`` ranks by the keyword index
(SQLite FTS5, BM25: :func:`keyword_matches`); ``hybrid`` fuses the two rankings by reciprocal rank fusion
(:func:`fuse`, ``1 / (RRF_K + rank)`` summed over the rankings that hold a document, each ranking's top
``max(FUSION_DEPTH, k)``). RRF needs no calibration between a cosine and a BM25 score, whose scales differ
by query and corpus. Hits with the same content fold into one (``copies``) unless ``collapse`` is off; a
query whose best hit's cosine is below ``WEAK_COSINE`` is flagged ``weak`` (:class:`semhash.types.Hits`).
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from semhash.codec import Codec
from semhash.codes import from_sql_int, ints_to_packed, packed_to_ints
from semhash.config import (
    DEFAULT_K,
    DEFAULT_MODE,
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
from semhash.encoders import resolve_runtime
from semhash.errors import CorpusError, DocumentNotFoundError, UsageError
from semhash.index import CodeIndex
from semhash.ivf import EmbeddingIVF
from semhash.lexical import ENGLISH_STOP_WORDS
from semhash.store import Store
from semhash.sync import load_index, load_ivf, load_vectors, require_documents
from semhash.types import Hit, Hits, format_location, page_at
from semhash.vectors import VectorCache

#: The rankings a query can use (``--mode``).
MODES = ("semantic", "keyword", "hybrid")
#: Reciprocal rank fusion's constant (Cormack et al. 2009's 60): a document's fused score is the sum of
#: ``1 / (RRF_K + rank)`` over the rankings that hold it.
RRF_K = 60
#: How deep each ranking is read for fusion (at least ``k``).
FUSION_DEPTH = 100
#: How deep a ranking is read, at most, to find ``k`` distinct contents when copies fold.
MAX_FOLD_DEPTH = 4096
#: A query whose best cosine is below this is flagged weak (no good match): chosen on the validation half of the
#: judged /usr/share/doc queries (BENCHMARKS.md "Search modes": 0.30-0.36 flag 3 of 4 questions without an answer
#: there and no question with one).
WEAK_COSINE = 0.32

#: A passage window's length in characters: about the model's 254-token window of English text.
PASSAGE_CHARS = 1000
#: Most windows embedded per hit when looking for its passage (the first ones of a longer document).
MAX_PASSAGE_WINDOWS = 16


def passage_windows(text: str, size: int = PASSAGE_CHARS, most: int = MAX_PASSAGE_WINDOWS) -> list[tuple[int, int]]:
    """``(start, end)`` character spans that cut ``text`` into windows of about ``size`` characters, each ending
    at whitespace where there is some in its last fifth; at most ``most`` windows, from the start."""
    spans: list[tuple[int, int]] = []
    start = 0
    while start < len(text) and len(spans) < most:
        end = min(len(text), start + size)
        if end < len(text):
            cut = text.rfind(" ", start + size * 4 // 5, end)
            end = cut + 1 if cut > start else end
        spans.append((start, end))
        start = end
    return spans


def focus(text: str, query: str, width: int = 240) -> str:
    """``text`` on one line, cut to ``width`` characters around the first query word it holds (its start when none)."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    words = [w for w in _WORD.findall(query.lower()) if w not in ENGLISH_STOP_WORDS and len(w) > 1]
    lowered = flat.lower()
    at = min((i for i in (lowered.find(w) for w in words) if i >= 0), default=0)
    begin = max(0, min(at - width // 4, len(flat) - width))
    piece = flat[begin : begin + width]
    return ("…" if begin else "") + piece + ("…" if begin + width < len(flat) else "")


#: Most distinct words of a query the keyword index is asked for (see :func:`keyword_matches`).
MAX_KEYWORD_TERMS = 64
#: Characters and operators that make a query FTS5 syntax rather than plain words.
_FTS_SYNTAX = re.compile(r'["*()^:+]|\b(?:AND|OR|NOT|NEAR)\b')
_WORD = re.compile(r"\w+")


def keyword_matches(text: str) -> list[str]:
    """The FTS5 ``MATCH`` expressions to try for a query, in order.

    Plain words (no FTS5 syntax) become one OR of quoted terms, English stop words left out (unless the
    query holds nothing else): BM25 then ranks the documents holding more of the rarer words first, which
    suits questions typed as sentences better than FTS5's implicit AND (a word absent from the best
    document would hide it), and without the stop words nearly every document would match, which floods
    the fusion with documents that share only "how" and "to" with the query. A query with FTS5 syntax
    (``"a phrase"``, ``prefix*``, ``AND``/``OR``/``NOT``/``NEAR``, ``col:``, parentheses) is tried as
    written first, then, when FTS5 refuses it, as plain words. A query without a word gives nothing to try.
    A long query (a pasted document, ``--file``) is searched by its first ``MAX_KEYWORD_TERMS`` distinct words
    only, and never as FTS5 syntax: every term is one posting-list scan, and a 20,000-character query took 8 s.
    """
    words = _WORD.findall(text)
    content = [word for word in words if word.lower() not in ENGLISH_STOP_WORDS] or words
    distinct: list[str] = []
    seen: set[str] = set()
    for word in content:  # each word once, as first spelled
        if word.lower() not in seen:
            seen.add(word.lower())
            distinct.append(word)
    plain = " OR ".join('"' + word + '"' for word in distinct[:MAX_KEYWORD_TERMS])  # \w+ holds no quote
    tries = [text] if _FTS_SYNTAX.search(text) and len(words) <= MAX_KEYWORD_TERMS else []
    if plain:
        tries.append(plain)
    return tries


def fuse(rankings: Sequence[Sequence[int]], constant: int = RRF_K) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: ``(id, score)`` best first (ties by id), ``score`` the sum over ``rankings``
    (each best first) of ``1 / (constant + rank)``, ranks from 1."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, doc_id in enumerate(ranking, start=1):
            scores[doc_id] = scores.get(doc_id, 0.0) + 1.0 / (constant + rank)
    return sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))


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
        mode: ``semantic``, ``keyword`` or ``hybrid`` (see the module docstring).
        collapse: fold hits with the same content into one (their locations in ``Hit.copies``).
        passages: find each hit's passage (``Hit.passage``, the snippet): its text cut into windows, the
            windows embedded at query time, the one nearest the query kept (see :meth:`Searcher.passages`).
    """

    k: int = DEFAULT_K
    rerank: bool = True
    radius: int | None = None
    device: str = "auto"
    pool: int | None = None
    exact: bool = False
    mode: str = DEFAULT_MODE
    collapse: bool = True
    passages: bool = False

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
        if self.mode not in MODES:
            raise UsageError(f"--mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.mode != "semantic" and (self.radius is not None or not self.rerank):
            raise UsageError(f"--mode {self.mode} ranks by words too: --radius and --no-rerank need --mode semantic")


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
    def query(self, text: str, options: QueryOptions | None = None) -> Hits:
        """Documents most similar to ``text`` (characters that are not valid Unicode count as U+FFFD)."""
        text = valid_unicode(text)
        if not text.strip():
            raise UsageError("the query text is empty")
        embedding, code = self.embed_and_code(text)
        hits = self.search_embedding(embedding, code, options, text=text)
        if options is not None and options.passages:
            hits = self.passages(hits, text, embedding)
        return hits

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
        """Search with a query's embedding and packed code (the shared path of every query form); ``text``
        (the query's words) is needed by the ``keyword`` and ``hybrid`` modes."""
        options = options or QueryOptions()
        snapshot = self._current()  # read once: this query sees one generation
        bits = snapshot.index.bits
        options.validate(bits)
        if options.mode != "semantic" and text is None:
            raise UsageError(f"--mode {options.mode} needs a query text: use --mode semantic")
        code_int = int(packed_to_ints(code.reshape(1, -1))[0])
        # Folding copies takes rows from the ranking: when it left fewer than k, read deeper (the first read is
        # the plain top k, so a ranking without copies costs what it did and chooses the same candidates).
        depth = options.k
        while True:
            ranked, docs, stage, complete, nearest = self._ranked(
                snapshot, embedding, code, code_int, options, exclude, text, depth
            )
            hits = self._hits(ranked, docs, stage, options, bits)
            if options.radius is not None or len(hits) >= options.k or complete or depth >= MAX_FOLD_DEPTH:
                break
            depth = min(4 * depth + 8, MAX_FOLD_DEPTH)
        best = max((c for c in [nearest, *(h.cosine for h in hits)] if c is not None), default=None)
        return Hits(hits, weak=best is None or best < WEAK_COSINE, floor=WEAK_COSINE, best=best)

    def passages(self, hits: Hits, text: str, embedding: np.ndarray) -> Hits:
        """The hits with their passages: the window of each one's stored text nearest the query, and a snippet
        from it (around the first query word it holds).

        The text is cut into windows of about the model's length (:func:`passage_windows`, at most
        ``MAX_PASSAGE_WINDOWS`` per hit), every window of the hits is embedded in one batch now, and the one
        with the highest cosine to the query is kept; a text of one window is its own passage, unembedded.
        Embedding at query time keeps the index as it is (no per-window vectors stored) at the price of the
        encoder's time per window: BENCHMARKS.md "Search modes" measures it, which is why it is asked for.
        """
        if not hits:
            return hits
        docs = self.store.documents([h.id for h in hits])
        locations = self.store.document_locations([h.id for h in hits])
        spans = {h.id: passage_windows(docs[h.id].text) if h.id in docs else [] for h in hits}
        batch = [(h.id, a, b) for h in hits for a, b in spans[h.id] if len(spans[h.id]) > 1]
        cosines: dict[tuple[int, int], float] = {}
        if batch:
            with self._encode_lock:
                vectors = np.asarray(self.encoder.encode([docs[i].text[a:b] for i, a, b in batch]), dtype=np.float32)
            for (i, a, _), value in zip(batch, vectors @ np.asarray(embedding, dtype=np.float32), strict=True):
                cosines[(i, a)] = float(value)
        out = []
        for hit in hits:
            if not spans[hit.id]:
                out.append(hit)
                continue
            if len(spans[hit.id]) == 1:
                start, end = spans[hit.id][0]
                cosine = hit.cosine
            else:
                start, end = max(spans[hit.id], key=lambda span: (cosines[(hit.id, span[0])], -span[0]))
                cosine = cosines[(hit.id, start)]
            page = page_at(locations.get(hit.id), start)
            passage = {"start": start, "end": end, "page": page, "cosine": cosine}
            out.append(replace(hit, passage=passage, snippet=focus(docs[hit.id].text[start:end], text)))
        return Hits(out, weak=hits.weak, floor=hits.floor, best=hits.best)

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
    ) -> tuple[list[tuple[int, int, float, float | None, float]], dict, str, bool, float | None]:
        """The head of the ranking: ``([(id, distance, cosine, bm25, score), ...], rows, stage, complete,
        nearest)``.

        At most ``depth`` entries (every one within the radius for a radius query), rows still present only;
        ``complete`` when the ranking held no more than that; ``nearest`` the best cosine the semantic ranking
        found (``None`` in keyword mode), which the weak flag reads even when fusion ranked it lower.
        """
        if options.mode == "semantic":
            ids, dist, cosines, limit, stage = self._semantic(
                snapshot, embedding, code, code_int, options, exclude, depth
            )
            rows, docs = self._rows(ids, dist, cosines, limit)
            ranked: list[tuple[int, int, float, float | None, float]] = [(i, dd, c, None, c) for i, dd, c in rows]
            return ranked, docs, stage, len(ids) < depth or limit is None, None
        reach = depth if options.mode == "keyword" else max(FUSION_DEPTH, depth)
        nearest: float | None = None
        words = self._keyword(valid_unicode(text or ""), reach, exclude)
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

    def _keyword(self, text: str, limit: int, exclude: int | None = None) -> list[tuple[int, float]]:
        """The keyword index's best ``limit`` documents for ``text``: ``[(id, bm25)]``, best (lowest) first.

        Never an error for the query's content: text that is not valid FTS5 syntax is searched as its words
        (:func:`keyword_matches`). An index older than the keyword index (read where it could not be
        upgraded) is a :class:`UsageError` that says how to build it.
        """
        store = self.store
        if not store.has_keyword_index():
            raise UsageError(
                f"{self.db_path} has no keyword index yet (written by an older semhash): run `semhash index` on "
                "its folders once to build it, or use --mode semantic"
            )
        for match in keyword_matches(text):
            try:
                found = store.keyword_search(match, limit + (exclude is not None))
            except sqlite3.OperationalError:
                continue  # not FTS5 syntax after all: the next try reads the words
            return [(i, score) for i, score in found if i != exclude][:limit]
        return []

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
        """The semantic ranking's top ``k``: ``(ids, distances, cosines, limit, stage)`` (``limit`` ``None``
        for a radius query), before rows are read."""
        query = code.reshape(1, -1)
        vectors = snapshot.vectors
        limit: int | None = k
        stage = candidate_stage(options, vectors.size)
        if options.exact:
            ids, cosines = self._exact(snapshot, embedding, k, exclude)
            dist = vectors.distances(code_int, vectors.rows(ids)[1])
        elif options.rerank and options.radius is None:
            # The candidate pool comes from the cache's codes (the faiss index's rows of this generation):
            # one numpy pass, the same set as a faiss top-``pool`` with ties by id, at a fraction of the cost.
            pool = max(options.pool or rerank_pool(k, vectors.size), k)
            if stage == STAGE_HYBRID:
                pool = max(min(pool, HYBRID_HAMMING_POOL), k)
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
                d, i = snapshot.index.search(query, k + (exclude is not None))
                ids, dist = i[0], d[0]
            keep = ids != exclude if exclude is not None else np.ones(len(ids), bool)
            ids, dist = ids[keep], dist[keep]
            # A document whose vector is not in this generation's cache has no row: leave it out.
            present, cosines = snapshot.vectors.cosines(embedding, ids)
            ids, dist = ids[present], dist[present]
            if options.rerank:
                order = np.lexsort((ids, dist, -cosines))
                ids, dist, cosines = ids[order], dist[order], cosines[order]
        return ids, dist, cosines, limit, stage

    def _hits(
        self,
        ranked: list[tuple[int, int, float, float | None, float]],
        docs: dict,
        stage: str,
        options: QueryOptions,
        bits: int,
    ) -> list[Hit]:
        """Hits from the head of a ranking: the first ``k`` (all, for a radius query), copies folded when
        ``options.collapse`` (the best-ranked document of each content stands for all that hold it)."""
        limit = None if options.radius is not None else options.k
        copies: dict[int, list[str]] = {}
        if options.collapse and ranked:
            hashes = self.store.content_hashes([r[0] for r in ranked])
            seen: set[str] = set()
            kept = []
            for row in ranked:
                digest = hashes.get(row[0])
                if digest is not None and digest in seen:
                    continue
                if digest is not None:
                    seen.add(digest)
                kept.append(row)
            ranked = kept[:limit] if limit is not None else kept
            groups = self.store.locations_with_hashes([hashes[r[0]] for r in ranked if r[0] in hashes])
            for row in ranked:
                group = groups.get(hashes.get(row[0], ""), [])
                copies[row[0]] = [format_location(path, record) for i, path, record in group if i != row[0]]
        elif limit is not None:
            ranked = ranked[:limit]
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
                mode=options.mode,
                bm25=bm25,
                score=score,
                copies=copies.get(i, []),
            )
            for rank, (i, dd, c, bm25, score) in enumerate(ranked, start=1)
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
