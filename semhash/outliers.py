"""``semhash outliers``: documents unlike the rest of the corpus, and drift of newly added documents.

Two signals, both read from SQLite (no model, no torch):

* **Reconstruction error** (``recon``): the hashing autoencoder squeezes each embedding through ``bits``
  bits and reconstructs it; what the corpus has plenty of is reconstructed well. ``recon_error`` (1 -
  cosine of the features and their reconstruction) is stored at encoding time.
* **Distance to the k-th nearest neighbour** (``knn``): 1 - cosine of the stored embedding and its
  ``neighbours``-th nearest other document (faiss inner-product search over the stored unit embeddings,
  streamed in batches; above ``MAX_REFERENCE`` documents the neighbours are looked for in a seeded sample
  of that many, with an IVF index, so memory stays bounded).

``combined`` is the mean of the two robust z-scores (distance from the median in units of 1.4826 x the
median absolute deviation, comparable across corpora). The default stays ``recon``: measured on 20
Newsgroups (``benchmarks/bench_outliers.py``: posts of a newsgroup the model was not trained on, added to the
index among posts of the trained groups; mean AUROC over 5 held-out groups) it scores 0.78, the kNN
distance 0.67 (the new posts are each other's neighbours), the distance to the centroid 0.66 and the
combination 0.74; see BENCHMARKS.md ("Outliers").

**Drift** of newly added documents (:func:`drift_warning`, re-exported from :mod:`semhash.neighbourhood`,
where ``semhash index`` calls it) compares their kNN distances with the indexed documents'.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from semhash.config import DEFAULT_OUTLIER_SCORE
from semhash.corpus import snippet
from semhash.errors import IndexMissingError, UsageError
from semhash.neighbourhood import (  # the drift check lives beside the kNN distance; re-exported here
    DEFAULT_NEIGHBOURS,
    store_knn_distances,
)
from semhash.store import Store
from semhash.types import Outlier

#: Scores ``semhash outliers`` can rank by.
SCORES = ("recon", "knn", "combined")
_MAD_SCALE = 1.4826


def robust_z(values: np.ndarray) -> np.ndarray:
    """``(values - median) / (1.4826 * MAD)``: a z-score that a few extreme values do not drag."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return values
    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median))) * _MAD_SCALE
    return (values - median) / (mad if mad > 0 else 1e-12)


def combined_scores(recon: np.ndarray, knn: np.ndarray) -> np.ndarray:
    """The default score: the mean of the robust z-scores of the reconstruction error and the kNN distance."""
    return (robust_z(recon) + robust_z(knn)) / 2


def find_outliers(
    db_path: str | Path,
    k: int = 10,
    min_z: float | None = None,
    score: str = DEFAULT_OUTLIER_SCORE,
    neighbours: int = DEFAULT_NEIGHBOURS,
) -> list[Outlier]:
    """The ``k`` most unusual documents by ``score`` (or all with a robust z-score of at least ``min_z``).

    Raises:
        UsageError: ``k`` or ``neighbours`` below 1, or an unknown score.
        IndexMissingError: no encoded document.
    """
    if k < 1:
        raise UsageError(f"-k must be at least 1, not {k}")
    if neighbours < 1:
        raise UsageError(f"--neighbours must be at least 1, not {neighbours}")
    if score not in SCORES:
        raise UsageError(f"--score must be one of {', '.join(SCORES)}, not {score!r}")
    with Store.open(db_path) as store:
        rows = store.db.execute(
            "SELECT id, recon_error FROM documents WHERE recon_error IS NOT NULL ORDER BY id"
        ).fetchall()
        if not rows:
            raise IndexMissingError(f"the index at {store.path} holds no encoded document: run `semhash index DIR`")
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        errors = np.array([r[1] for r in rows], dtype=np.float64)
        knn = store_knn_distances(store, ids, neighbours) if score != "recon" else None
        if score == "recon" or knn is None:
            values = errors
        elif score == "knn":
            values = knn
        else:
            values = combined_scores(errors, knn)
        z = robust_z(values)
        order = np.lexsort((ids, -values))
        order = order[z[order] >= min_z] if min_z is not None else order[:k]
        docs = store.documents(ids[order].tolist())
        return [
            Outlier(
                rank=rank,
                id=int(ids[i]),
                path=docs[int(ids[i])].path,
                record=docs[int(ids[i])].record,
                recon_error=float(errors[i]),
                z_score=float(z[i]),
                snippet=snippet(docs[int(ids[i])].text),
                knn_distance=None if knn is None else float(knn[i]),
                score=score,
            )
            for rank, i in enumerate(order, start=1)
        ]
