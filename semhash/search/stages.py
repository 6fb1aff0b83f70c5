"""The candidate stages of a semantic query: which one runs, the Hamming pool, the IVF stage, the exact scan.

A ranked query re-orders candidates by the cosine of the stored embeddings; this module chooses them
(see :mod:`semhash.search` for the measurements behind each rule): the Hamming pool of the codes
(:func:`rerank_pool` of them), joined on large indexes by the rows a faiss IVF index over the embeddings
finds (:func:`candidates`), every stored embedding with ``exact``, or Hamming order alone (``--no-rerank``,
``--radius``). :func:`query_candidate_stage` is the one rule that picks among them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from semhash.caches.hamming import CodeIndex
from semhash.caches.ivf import EmbeddingIVF
from semhash.caches.vectors import VectorCache
from semhash.config import (
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
from semhash.errors import UsageError
from semhash.search.options import QueryOptions


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


def query_candidate_stage(options: QueryOptions, size: int) -> str:
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


def semantic_ranking(
    index: Callable[[], CodeIndex],
    vectors: VectorCache,
    ivf: Callable[[], EmbeddingIVF],
    embedding: np.ndarray,
    code: np.ndarray,
    code_int: int,
    options: QueryOptions,
    exclude: int | None,
    k: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int | None, str]:
    """The semantic ranking's top ``k``, before rows are read.

    Returns ``(ids, distances, cosines, limit, stage)`` (``limit`` ``None`` for a radius query).

    ``index`` and ``vectors`` are one snapshot's (one store generation); ``index`` gives its faiss index of
    codes, called only by ``--radius`` and ``--no-rerank`` queries, and ``ivf`` its IVF index, called only when
    the stage is ``codes+ivf`` (each may build it).
    """
    query = code.reshape(1, -1)
    limit: int | None = k
    stage = query_candidate_stage(options, vectors.size)
    if options.exact:
        ids, cosines = exact_top(vectors, embedding, k, exclude)
        dist = vectors.distances(code_int, vectors.rows(ids)[1])
    elif options.rerank and options.radius is None:
        # The candidate pool comes from the cache's codes (the faiss index's rows of this generation):
        # one numpy pass, the same set as a faiss top-``pool`` with ties by id, at a fraction of the cost.
        pool = max(options.pool or rerank_pool(k, vectors.size), k)
        if stage == STAGE_HYBRID:
            pool = max(min(pool, HYBRID_HAMMING_POOL), k)
        found_by = ivf() if stage == STAGE_HYBRID else None
        rows, dist = candidates(vectors, code_int, embedding, pool, exclude=exclude, ivf=found_by)
        ids, cosines = vectors.ids[rows], vectors.cosines_at(embedding, rows)
        order = np.lexsort((ids, dist, -cosines))
        ids, dist, cosines = ids[order], dist[order], cosines[order]
    else:
        if options.radius is not None:
            ids, dist = index().within(query, options.radius)
            order = np.lexsort((ids, dist))
            ids, dist = ids[order], dist[order]
            limit = None
        else:
            d, i = index().search(query, k + (exclude is not None))
            ids, dist = i[0], d[0]
        keep = ids != exclude if exclude is not None else np.ones(len(ids), bool)
        ids, dist = ids[keep], dist[keep]
        # A document whose vector is not in this generation's cache has no row: leave it out.
        present, cosines = vectors.cosines(embedding, ids)
        ids, dist = ids[present], dist[present]
        if options.rerank:
            order = np.lexsort((ids, dist, -cosines))
            ids, dist, cosines = ids[order], dist[order], cosines[order]
    return ids, dist, cosines, limit, stage


def exact_top(
    vectors: VectorCache, embedding: np.ndarray, k: int, exclude: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """The exact cosine top ``k`` (and some spare for rows deleted since) over every cached vector.

    Raises:
        UsageError: the index holds more than ``MAX_EXACT_DOCS`` documents.
    """
    size = vectors.size
    if size > MAX_EXACT_DOCS:
        raise UsageError(
            f"--exact scans every stored embedding and this index holds {size:,} documents "
            f"(more than {MAX_EXACT_DOCS:,}): drop --exact, or raise --pool"
        )
    return vectors.scan(embedding, 2 * k, exclude=exclude)
