"""Retrieval metrics for hashing, with ties broken deterministically.

With 32-bit codes most Hamming distances tie. Rankings here sort by distance with a *stable* sort, so
tied database items keep their database order (their id order): the tie-break never depends on the
query's label, so it cannot flatter a method.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

DistanceBlock = Callable[[int, int], np.ndarray]


def label_matrix(labels: Sequence[Sequence[str]], vocabulary: Sequence[str]) -> np.ndarray:
    """Multi-hot ``(n, len(vocabulary))`` bool matrix of each item's labels."""
    index = {name: i for i, name in enumerate(vocabulary)}
    out = np.zeros((len(labels), len(vocabulary)), dtype=bool)
    for row, item_labels in enumerate(labels):
        for name in item_labels:
            if name in index:
                out[row, index[name]] = True
    return out


def ranking_metrics(
    distances: DistanceBlock,
    query_labels: np.ndarray,
    db_labels: np.ndarray,
    ks: Sequence[int] = (100,),
    with_map: bool = True,
    block: int = 256,
) -> dict[str, float]:
    """Precision@k for each ``k`` (and mean average precision over the full ranking).

    Args:
        distances: ``distances(start, stop)`` returns the ``(stop - start, n_db)`` distances of those
            queries to every database item; lower is closer (pass negated similarities for cosine).
        query_labels: ``(n_queries, n_labels)`` multi-hot bool; an item is relevant to a query when they
            share a label.
        db_labels: ``(n_db, n_labels)`` multi-hot bool.
        ks: cut-offs for precision.
        with_map: also compute mAP over the whole ranking (costs a full sort per query).
        block: queries per block, to bound memory.

    Returns:
        ``{"p@100": ..., "map": ...}``, means over queries.
    """
    n_queries = query_labels.shape[0]
    n_db = db_labels.shape[0]
    ks = [min(k, n_db) for k in ks]
    sums = {k: 0.0 for k in ks}
    ap_sum = 0.0
    db_labels_f = db_labels.astype(np.float32)
    for start in range(0, n_queries, block):
        stop = min(start + block, n_queries)
        dist = np.asarray(distances(start, stop))
        relevant = (query_labels[start:stop].astype(np.float32) @ db_labels_f.T) > 0
        order = np.argsort(dist, axis=1, kind="stable") if with_map else _top_k_stable(dist, max(ks))
        ranked = np.take_along_axis(relevant, order, axis=1)
        for k in ks:
            sums[k] += ranked[:, :k].mean(axis=1).sum()
        if with_map:
            hits = np.cumsum(ranked, axis=1)
            positions = np.arange(1, ranked.shape[1] + 1)
            n_rel = ranked.sum(axis=1)
            precision_at_hits = (hits / positions) * ranked
            ap = np.divide(precision_at_hits.sum(axis=1), n_rel, out=np.zeros(len(n_rel)), where=n_rel > 0)
            ap_sum += ap.sum()
    result = {f"p@{k}": sums[k] / n_queries for k in ks}
    if with_map:
        result["map"] = ap_sum / n_queries
    return result


def _top_k_stable(dist: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` smallest per row, ties broken by index, in rank order."""
    if k >= dist.shape[1]:
        return np.argsort(dist, axis=1, kind="stable")
    # Everything strictly closer than the k-th distance is in; ties at the k-th distance are taken in
    # index order. A stable sort of (dist, index) over the whole row does exactly that.
    part = np.argpartition(dist, k - 1, axis=1)[:, :k]
    kth = np.take_along_axis(dist, part, axis=1).max(axis=1, keepdims=True)
    rows = []
    for row, bound in zip(dist, kth[:, 0], strict=True):
        candidates = np.flatnonzero(row <= bound)
        ranked = candidates[np.argsort(row[candidates], kind="stable")]
        rows.append(ranked[:k])
    return np.stack(rows)
