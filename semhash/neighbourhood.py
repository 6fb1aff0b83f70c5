"""How far documents lie from their neighbours in the stored embeddings, and drift of newly added ones.

Shared by ``semhash outliers`` (the ``knn`` score) and ``semhash index`` (the drift warning), so it sits
below the services, beside :mod:`semhash.caches.sync`: it reads stored embeddings through the store and searches
them with faiss (inner product over unit vectors; exact up to ``_FLAT_LIMIT`` reference rows, IVF above,
streamed in batches; above ``MAX_REFERENCE`` documents a seeded sample is the reference, so memory stays
bounded). No torch.

**Drift** (:func:`drift_warning`): each new document's distance to its ``neighbours``-th nearest indexed
document is compared with the indexed documents' own leave-one-out distances. A batch drifts when a
markedly larger share of it than the 5% expected lies above the indexed documents' 95th percentile; its
codes come from a model that never saw anything like it, and ``--retrain`` fixes that. Reconstruction
errors are not used for this: a model reconstructs what it was trained on better than anything new.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from semhash.errors import IndexMissingError
from semhash.store import Store

if TYPE_CHECKING:
    import faiss

#: k of the kNN distance.
DEFAULT_NEIGHBOURS = 10
#: Most documents the kNN distance searches among (a seeded sample above it); bounds memory and time.
MAX_REFERENCE = 100_000
#: Below this many reference documents the kNN search is exact (flat); above, IVF.
_FLAT_LIMIT = 20_000
_BATCH = 4096


def knn_distances(
    reference: np.ndarray,
    queries: np.ndarray,
    k: int,
    reference_ids: np.ndarray | None = None,
    query_ids: np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """1 - cosine of each query to its ``k``-th nearest reference row, the query itself left out.

    Args:
        reference: ``(m, dim)`` unit vectors searched.
        queries: ``(n, dim)`` unit vectors.
        k: which neighbour (1 = the nearest).
        reference_ids: ids of the reference rows, so that a query found in the reference skips itself
            (``None``: no query is in the reference).
        query_ids: ids of the queries, matched against ``reference_ids`` (``None``: no query is in the
            reference).
        seed: seed of the IVF training sample (above ``_FLAT_LIMIT`` reference rows).
    """
    reference = np.ascontiguousarray(reference, dtype=np.float32)
    if len(reference) == 0 or len(queries) == 0:
        return np.ones(len(queries), np.float64)
    index = inner_product_index(reference, seed)
    ref_ids = np.arange(len(reference), dtype=np.int64) if reference_ids is None else np.asarray(reference_ids)
    own = np.full(len(queries), -1, np.int64) if query_ids is None else np.asarray(query_ids, np.int64)
    out = np.empty(len(queries), np.float64)
    for start in range(0, len(queries), _BATCH):
        stop = start + _BATCH
        out[start:stop] = _search_kth(index, ref_ids, queries[start:stop], own[start:stop], k)
    return out


def store_knn_distances(
    store: Store, ids: np.ndarray, k: int = DEFAULT_NEIGHBOURS, max_reference: int = MAX_REFERENCE, seed: int = 0
) -> np.ndarray:
    """:func:`knn_distances` of the stored documents ``ids`` among themselves (a sample above ``max_reference``).

    Embeddings are read in batches, so memory holds the reference and one batch of queries.
    """
    all_ids = np.asarray(ids, dtype=np.int64)
    if len(all_ids) == 0:
        return np.zeros(0, np.float64)
    chosen = all_ids
    if len(all_ids) > max_reference:
        chosen = all_ids[np.sort(np.random.default_rng(seed).choice(len(all_ids), max_reference, replace=False))]
    ref_ids, reference = store.embeddings(chosen.tolist())
    index = inner_product_index(np.ascontiguousarray(reference, np.float32), seed)
    out = np.empty(len(all_ids), np.float64)
    for start in range(0, len(all_ids), _BATCH):
        chunk_ids, queries = store.embeddings(all_ids[start : start + _BATCH].tolist())
        if not np.array_equal(chunk_ids, all_ids[start : start + _BATCH]):
            raise IndexMissingError(f"{store.path} has documents without embeddings: run `semhash index DIR` again")
        out[start : start + len(chunk_ids)] = _search_kth(index, ref_ids, queries, chunk_ids, k)
    return out


def inner_product_index(
    reference: np.ndarray,
    seed: int,
    *,
    flat_limit: int = _FLAT_LIMIT,
    nprobe: int = 16,
    points_per_list: int = 40,
    kmeans_rounds: int | None = None,
) -> faiss.Index:
    """A faiss inner-product index over ``reference``: exact (flat) up to ``flat_limit`` rows, else IVF.

    The IVF has ``4 sqrt(m)`` lists trained on a seeded sample of ``points_per_list`` rows per list
    (``kmeans_rounds``: faiss's default when ``None``) and probes ``nprobe`` lists per query. Shared by the
    kNN distance here and by ``dedup --neighbours`` (:mod:`semhash.dedup.ann`, which trains it more cheaply).

    Not the search cache's IVF (:meth:`semhash.caches.ivf.EmbeddingIVF.build`), on purpose: this one is
    ``IndexIVFFlat`` (its inner products are the distances returned, so they are exact), with ``int(4 sqrt(m))``
    lists (there: the power of two nearest ``sqrt(n)``), 40 training points a list (there: 64), faiss's
    default k-means seed (there: ``seed``), and flat below ``flat_limit`` rows. One builder would change the
    numbers of ``outliers``, the drift check and ``dedup --neighbours``; only the seeded training sample is
    shared (:func:`semhash.caches.ivf.training_sample`).
    """
    import faiss

    from semhash.caches.ivf import training_sample  # faiss, like the import above: only this path needs it

    m, dim = reference.shape
    if m <= flat_limit:
        flat = faiss.IndexFlatIP(dim)
        flat.add(reference)
        return flat
    nlist = int(4 * np.sqrt(m))
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    if kmeans_rounds is not None:
        ivf.cp.niter = kmeans_rounds
    # faiss warns below 39 training points per list; with fewer on purpose, that warning is expected noise.
    ivf.cp.min_points_per_centroid = min(points_per_list, 39)
    ivf.verbose = False
    ivf.train(reference[training_sample(m, points_per_list, nlist, seed)])
    ivf.nprobe = nprobe
    ivf.add(reference)
    return ivf


def _search_kth(
    index: faiss.Index, ref_ids: np.ndarray, queries: np.ndarray, query_ids: np.ndarray, k: int
) -> np.ndarray:
    """1 - cosine to the k-th nearest indexed row other than the query itself (``query_ids`` -1: none)."""
    want = min(k + 1, index.ntotal)
    sims, found = index.search(np.ascontiguousarray(queries, dtype=np.float32), want)
    labels = np.where(found >= 0, ref_ids[np.maximum(found, 0)], -2)
    sims = np.where((found >= 0) & (labels != query_ids[:, None]), sims, -np.inf)
    sims = -np.sort(-sims, axis=1)  # the query's own hit (now -inf) moves to the end
    kth = sims[:, min(k, want) - 1]
    return 1.0 - np.clip(np.where(np.isfinite(kth), kth, -1.0), -1.0, 1.0)


# -- drift -----------------------------------------------------------------------------------------
#: Quantile of the indexed documents' statistic that a new document "exceeds".
DRIFT_QUANTILE = 0.95
#: A batch drifts when at least this share of it exceeds the quantile (3x the 5% expected) ...
DRIFT_MIN_SHARE = 0.15
#: ... and that excess is this many binomial standard deviations above the expected share.
DRIFT_MIN_SIGMAS = 4.0
#: Fewer new (or reference) documents than this say nothing.
DRIFT_MIN_DOCS = 10
#: Indexed documents the new ones are compared with (a seeded sample above it), and how many of them
#: get their own leave-one-out distance for the reference distribution.
DRIFT_REFERENCE = 20_000
DRIFT_REFERENCE_QUERIES = 2_000
#: New documents measured (a seeded sample of a larger batch).
DRIFT_NEW_SAMPLE = 5_000


@dataclass(frozen=True)
class DriftReport:
    """How a batch of new documents compares with the indexed ones.

    Attributes:
        new: documents in the batch; ``reference``: indexed documents compared with.
        neighbours: k of the distance: 1 - cosine to the k-th nearest indexed document (for an indexed
            document, the k-th nearest *other* one).
        cutoff: the indexed documents' ``DRIFT_QUANTILE`` distance; ``share_above``: the batch's share
            above it (``1 - DRIFT_QUANTILE`` expected without drift); ``sigmas``: that excess in binomial
            standard deviations.
        new_median, reference_median: median distances.
        new_recon, reference_recon: median reconstruction errors (for information: indexed documents
            the model was trained on are reconstructed better than any new one, drift or not).
        drifted: the batch is markedly farther from the index than the index is from itself.
    """

    new: int
    reference: int
    neighbours: int
    cutoff: float
    share_above: float
    sigmas: float
    new_median: float
    reference_median: float
    new_recon: float
    reference_recon: float
    drifted: bool

    def message(self) -> str:
        """The warning line, with its numbers and the fix."""
        expected = 1 - DRIFT_QUANTILE
        return (
            f"drift: {self.share_above:.0%} of the {self.new} new documents lie farther from the indexed ones "
            f"than {DRIFT_QUANTILE:.0%} of the indexed documents do ({expected:.0%} expected; median distance "
            f"to the {self.neighbours}th nearest {self.new_median:.3f} vs {self.reference_median:.3f}, median "
            f"reconstruction error {self.new_recon:.3f} vs {self.reference_recon:.3f}). The hashing model was "
            "trained without documents like them, so their codes are poor: "
            "`semhash index DIR --retrain` (or `semhash train`) retrains it on everything"
        )


@dataclass(frozen=True)
class ShareTest:
    """A batch's share above the reference's ``DRIFT_QUANTILE``, and whether it is a marked excess."""

    cutoff: float
    share_above: float
    sigmas: float
    drifted: bool


def drift_statistics(reference: np.ndarray, new: np.ndarray) -> ShareTest:
    """Is ``new`` markedly above ``reference``?

    Yes when at least ``DRIFT_MIN_SHARE`` of ``new`` lies above the reference's ``DRIFT_QUANTILE`` and that
    share is ``DRIFT_MIN_SIGMAS`` binomial standard deviations above the ``1 - DRIFT_QUANTILE`` expected of
    a sample like the reference; never with fewer than ``DRIFT_MIN_DOCS`` values on either side.
    """
    reference = np.asarray(reference, dtype=np.float64)
    new = np.asarray(new, dtype=np.float64)
    if len(reference) == 0 or len(new) == 0:
        return ShareTest(0.0, 0.0, 0.0, False)
    cutoff = float(np.quantile(reference, DRIFT_QUANTILE))
    share = float(np.mean(new > cutoff))
    expected = 1 - DRIFT_QUANTILE
    sigmas = float((share - expected) / np.sqrt(expected * (1 - expected) / len(new)))
    enough = min(len(new), len(reference)) >= DRIFT_MIN_DOCS
    return ShareTest(cutoff, share, sigmas, enough and share >= DRIFT_MIN_SHARE and sigmas >= DRIFT_MIN_SIGMAS)


def drift_report(
    store: Store, new_ids: Sequence[int], neighbours: int = DEFAULT_NEIGHBOURS, seed: int = 0
) -> DriftReport:
    """Compare the documents ``new_ids`` with every other encoded document (see :func:`drift_warning`)."""
    rows = store.db.execute(
        "SELECT id, recon_error FROM documents WHERE recon_error IS NOT NULL ORDER BY id"
    ).fetchall()
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    errors = np.fromiter((r[1] for r in rows), dtype=np.float64, count=len(rows))
    is_new = np.isin(ids, np.asarray(list(new_ids), dtype=np.int64))
    old_ids, fresh_ids = ids[~is_new], ids[is_new]
    rng = np.random.default_rng(seed)
    if len(old_ids) > DRIFT_REFERENCE:
        old_ids = np.sort(rng.choice(old_ids, DRIFT_REFERENCE, replace=False))
    k = max(1, min(neighbours, len(old_ids) // 20))
    recon_new = float(np.median(errors[is_new])) if is_new.any() else 0.0
    recon_old = float(np.median(errors[~is_new])) if (~is_new).any() else 0.0
    n_new = len(fresh_ids)
    if len(old_ids) <= k or n_new == 0:
        return DriftReport(n_new, len(old_ids), k, 0.0, 0.0, 0.0, 0.0, 0.0, recon_new, recon_old, False)
    if n_new > DRIFT_NEW_SAMPLE:  # the share above the cutoff is a proportion: a sample measures it
        fresh_ids = np.sort(rng.choice(fresh_ids, DRIFT_NEW_SAMPLE, replace=False))
    ref_ids, reference = store.embeddings(old_ids.tolist())
    index = inner_product_index(np.ascontiguousarray(reference, np.float32), seed)
    probe: np.ndarray = np.arange(len(ref_ids))
    if len(probe) > DRIFT_REFERENCE_QUERIES:
        probe = np.sort(rng.choice(len(ref_ids), DRIFT_REFERENCE_QUERIES, replace=False))
    # Indexed documents: leave-one-out distance among the indexed ones, the same quantity a new document gets.
    ref_dist = _search_kth(index, ref_ids, reference[probe], ref_ids[probe], k)
    new_dist = np.concatenate(
        [
            _search_kth(index, ref_ids, store.embeddings(chunk.tolist())[1], np.full(len(chunk), -1), k)
            for chunk in np.array_split(fresh_ids, max(1, len(fresh_ids) // _BATCH))
        ]
    )
    test = drift_statistics(ref_dist, new_dist)
    return DriftReport(
        new=n_new,
        reference=len(ref_ids),
        neighbours=k,
        cutoff=test.cutoff,
        share_above=test.share_above,
        sigmas=test.sigmas,
        new_median=float(np.median(new_dist)),
        reference_median=float(np.median(ref_dist)),
        new_recon=recon_new,
        reference_recon=recon_old,
        drifted=test.drifted,
    )


def drift_warning(store: Store, new_ids: Sequence[int]) -> str | None:
    """A warning line when the just-added documents ``new_ids`` drifted from the indexed ones, else ``None``.

    Call it from ``semhash index`` after adding documents to an index whose model it did not retrain,
    once they are encoded, with their ids; it reads SQLite only (no model, no torch).

    Why distances and not reconstruction errors: the model was trained on the indexed documents, so it
    reconstructs them better than *any* new document, drift or not. On the 20 Newsgroups subset of
    ``benchmarks/bench_outliers.py`` (1,400 trained-on posts) 16% of new posts of the *trained* groups lie above
    the trained-on posts' 95th percentile error (5% if unbiased); on an 80-document index, half of them do.
    A test on raw errors must then either fire on harmless batches of small indexes or be blunt. The
    distance of each new document to its k-th nearest indexed document, against each indexed document's
    leave-one-out distance, compares like with like: a batch like the index exceeds the index's 95th
    percentile 5% of the time (measured: 6%).
    """
    if not new_ids:
        return None
    report = drift_report(store, new_ids)
    return report.message() if report.drifted else None
