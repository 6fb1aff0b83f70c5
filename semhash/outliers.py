"""``semhash outliers``: documents unlike the rest of the corpus.

The hashing autoencoder squeezes each embedding through ``bits`` bits and reconstructs it; what the
corpus has plenty of is reconstructed well, a document unlike the others is not. The score is the stored
``recon_error`` (1 - cosine of the embedding and its reconstruction, computed at encoding time), so this
reads SQLite only: no model, no torch. Scores are also given as robust z-scores (distance from the median
in units of 1.4826 x the median absolute deviation), which stay comparable across corpora.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semhash.corpus import snippet
from semhash.errors import IndexMissingError, UsageError
from semhash.store import Store
from semhash.types import format_location


@dataclass(frozen=True)
class Outlier:
    """One document and how badly the hashing model reconstructs it."""

    rank: int
    id: int
    path: str
    record: int
    recon_error: float
    z_score: float
    snippet: str

    @property
    def location(self) -> str:
        """``path`` or ``path#record``."""
        return format_location(self.path, self.record)


def find_outliers(db_path: str | Path, k: int = 10, min_z: float | None = None) -> list[Outlier]:
    """The ``k`` worst-reconstructed documents (or all with a z-score of at least ``min_z``)."""
    if k < 1:
        raise UsageError(f"-k must be at least 1, not {k}")
    with Store.open(db_path) as store:
        rows = store.db.execute(
            "SELECT id, recon_error FROM documents WHERE recon_error IS NOT NULL ORDER BY id"
        ).fetchall()
        if not rows:
            raise IndexMissingError(f"the index at {store.path} holds no encoded document: run `semhash index DIR`")
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        errors = np.array([r[1] for r in rows], dtype=np.float64)
        median = float(np.median(errors))
        mad = float(np.median(np.abs(errors - median))) * 1.4826 or 1e-12
        z = (errors - median) / mad
        order = np.lexsort((ids, -errors))
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
            )
            for rank, i in enumerate(order, start=1)
        ]
