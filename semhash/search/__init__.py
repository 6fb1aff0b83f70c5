"""``semhash query`` and ``semhash similar``: text -> embedding -> code -> Hamming search -> hits.

Ranking: the ``k`` nearest codes by Hamming distance, ties broken by id. With ``rerank`` (the default),
a larger pool of Hamming candidates is re-ordered by the cosine of the stored embeddings: the 32-bit code
finds the neighbourhood cheaply, the embedding orders it precisely. The pool grows with the index
(:func:`~semhash.search.stages.rerank_pool`; issue 9: a fixed 100 kept only 22% of the exact cosine top 10 for
short queries), and its codes and vectors come from the memory-mapped cache beside the database
(:mod:`semhash.caches.vectors`), not from SQLite rows. ``exact`` skips the codes and scans every stored embedding
(small indexes).

Large indexes (from ``IVF_MIN_DOCS`` documents) add a float candidate stage (:func:`query_candidate_stage`):
a faiss IVF index over the stored embeddings (:mod:`semhash.caches.ivf`) proposes ``IVF_CANDIDATES`` rows, the
codes a Hamming pool of at most ``HYBRID_HAMMING_POOL``, and their union is re-ranked by exact cosine. At
10^5-10^6 documents a short query's true top 10 lies in about a tenth of the index by Hamming rank, which
no pool within the latency budget covers; the IVF stage finds it by scanning the cells nearest the query
(about ``IVF_SCAN_ROWS`` rows, 3% of 10^6). Recall@10 against exact cosine for short queries went from 0.90
(10^5, pool 10,000) and 0.91 (10^6, pool 100,000, ~100 ms) to 0.99 and 0.95 (BENCHMARKS.md "Retention").
Below ``IVF_MIN_DOCS``, with an explicit ``pool``, or without reranking, the codes alone choose.
``radius`` instead returns every document within that many bits, the classic semantic-hashing lookup.

Modes (``QueryOptions.mode``): ``semantic`` is the above; ``keyword`` ranks by the keyword index
(SQLite FTS5, BM25: :mod:`semhash.search.keyword`); ``hybrid`` fuses the two rankings by reciprocal rank fusion
(:func:`fuse`, ``1 / (RRF_K + rank)`` summed over the rankings that hold a document, each ranking's top
``max(FUSION_DEPTH, k)``). RRF needs no calibration between a cosine and a BM25 score, whose scales differ
by query and corpus. Hits with the same content, or near-identical text (:mod:`~semhash.search.twins`: one page
as ``.md`` and ``.html``), fold into one (``copies``, ``folded``) unless ``collapse`` is off; a
query whose best hit's cosine is below ``WEAK_COSINE`` is flagged ``weak`` (:class:`semhash.types.Hits`).

The package, one concept a module: :mod:`~semhash.search.options` (what a query asks for),
:mod:`~semhash.search.stages` (candidates: Hamming pool, IVF, exact scan, and the rule that picks one),
:mod:`~semhash.search.keyword` (FTS5 ranking and RRF), :mod:`~semhash.search.results` (rows, copies folded,
the weak flag), :mod:`~semhash.search.twins` (the near-identical text check),
:mod:`~semhash.search.passages` (each hit's passage: from the stored window vectors, or embedded now with
``--passages``), :mod:`~semhash.search.snippets` (a passage cleaned of markup, the query's words found, cut to
a width) and :mod:`~semhash.search.searcher`
(:class:`Searcher`: snapshots, thread policy, the query forms). This module re-exports their public names.
"""

from semhash.search.keyword import FUSION_DEPTH, MAX_KEYWORD_TERMS, RRF_K, fuse, keyword_matches, keyword_ranking
from semhash.search.options import MODES, QueryOptions, valid_unicode
from semhash.search.passages import MAX_PASSAGE_WINDOWS, PASSAGE_CHARS, add_passages, focus, passage_windows
from semhash.search.results import MAX_FOLD_DEPTH, WEAK_COSINE, build_hits, present_rows, weigh
from semhash.search.searcher import Searcher
from semhash.search.stages import (
    STAGE_CODES,
    STAGE_EXACT,
    STAGE_HAMMING,
    STAGE_HYBRID,
    candidates,
    exact_top,
    query_candidate_stage,
    rerank_pool,
    semantic_ranking,
)
from semhash.search.twins import TWIN_CHARS, TWIN_COSINE, TWIN_OVERLAP, TwinCheck, twin_overlap

__all__ = [
    "FUSION_DEPTH",
    "MAX_FOLD_DEPTH",
    "MAX_KEYWORD_TERMS",
    "MAX_PASSAGE_WINDOWS",
    "MODES",
    "PASSAGE_CHARS",
    "RRF_K",
    "STAGE_CODES",
    "STAGE_EXACT",
    "STAGE_HAMMING",
    "STAGE_HYBRID",
    "TWIN_CHARS",
    "TWIN_COSINE",
    "TWIN_OVERLAP",
    "WEAK_COSINE",
    "QueryOptions",
    "Searcher",
    "TwinCheck",
    "add_passages",
    "build_hits",
    "candidates",
    "exact_top",
    "focus",
    "fuse",
    "keyword_matches",
    "keyword_ranking",
    "passage_windows",
    "present_rows",
    "query_candidate_stage",
    "rerank_pool",
    "semantic_ranking",
    "twin_overlap",
    "valid_unicode",
    "weigh",
]
