"""Near-identical twins among a query's hits: one page as ``.md`` and ``.html``, a generated copy, folded into one hit.

Exact copies (the same content hash) fold without a check (:func:`semhash.search.results.build_hits`). Twins
differ in bytes: the HTML adds its site's navigation, the Markdown its markup. An embedding threshold cannot
find them: distinct documents sit closer than twins do (git's release notes of three versions at cosine 0.999,
the Node.js API pages' twins at 0.88-0.95; BENCHMARKS.md "Search modes"). So a hit folds into a better-ranked
one when both hold:

- the cosine of their stored embeddings is at least ``TWIN_COSINE`` (a gate: it spares the text check for
  pairs less alike than most twins), and
- the word-shingle Jaccard of their texts (:func:`semhash.overlap.shingle_set`, the overlap dedup's verify stage
  reads) is at least ``TWIN_OVERLAP``, each text cut to its first ``TWIN_CHARS`` characters.

Both were chosen on the validation half of real twins and look-alikes (``benchmarks/bench_search_twins.py``;
BENCHMARKS.md "Search: near-identical twins folded"). The better-ranked hit stands for the group (as for exact
copies): the ranking's order and scores stay as they were, whichever format that is. A hit is compared with the
hits kept so far only (no chains), and the walk stops at the ``k``-th kept hit, so a query shingles at most the
texts of the hits it shows and the ones it folds; their rows are already read for the snippets (no store read).
The shingle sets are kept for the next queries (:class:`ShingleCache`, one per snapshot of the store).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from semhash.caches.vectors import VectorCache
from semhash.overlap import jaccard, shingle_set

# Chosen on the validation half of real twins and look-alikes (benchmarks/bench_search_twins.py: no false fold of a
# different page, man page or release note there; then the highest recall, the smaller cut, the higher gate):
# validation recall 0.35, test recall 0.18 at precision 1.00. Different man pages that include the same sections
# (git-diff-tree and git-show, Jaccard 0.78) are what keeps the threshold this high.
#: Two hits whose stored embeddings' cosine is below this are never twins (their texts are not compared).
TWIN_COSINE = 0.85
#: Two hits are twins when the Jaccard of their texts' word shingles reaches this.
TWIN_OVERLAP = 0.8
#: Characters of each text compared (its first): bounds the text check's cost on long documents.
TWIN_CHARS = 64_000
#: Shingle hashes kept across queries (:class:`ShingleCache`, 8 bytes each: 16 MB; a 64,000-character page has
#: about 10,000).
CACHE_HASHES = 2_000_000


def text_shingles(text: str) -> np.ndarray:
    """The shingle set a twin check compares: :func:`semhash.overlap.shingle_set` of the first ``TWIN_CHARS``."""
    return shingle_set(text[:TWIN_CHARS])


def twin_overlap(a: str, b: str) -> float:
    """The word-shingle Jaccard of two texts as the twin check computes it (each cut to ``TWIN_CHARS``)."""
    return jaccard(text_shingles(a), text_shingles(b))


class ShingleCache:
    """Shingle sets of stored texts, kept across the queries of one snapshot; the least recently used go first.

    It holds at most ``CACHE_HASHES`` hashes in all (read at each insertion; 8 bytes each). A snapshot is one
    store generation, so a changed text comes with a new snapshot and a new cache. Safe to share across threads:
    one lock guards the dictionary, and texts are shingled outside it (two threads may shingle one text twice).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sets: OrderedDict[int, np.ndarray] = OrderedDict()
        self._size = 0

    def get(self, doc_id: int, text: str) -> np.ndarray:
        """The shingle set of document ``doc_id`` (whose stored text is ``text``), made now if not kept."""
        with self._lock:
            found = self._sets.get(doc_id)
            if found is not None:
                self._sets.move_to_end(doc_id)
                return found
        made = text_shingles(text)
        with self._lock:
            if doc_id not in self._sets:
                self._sets[doc_id] = made
                self._size += len(made)
                while self._size > CACHE_HASHES and self._sets:
                    _, dropped = self._sets.popitem(last=False)
                    self._size -= len(dropped)
        return made


@dataclass
class TwinCheck:
    """One query's twin check: the snapshot's embeddings (the gate) and its shingle sets (the text check).

    Attributes:
        vectors: the snapshot's stored embeddings.
        shingles: the snapshot's shingle sets (a query of its own, e.g. in a test: a fresh cache).
    """

    vectors: VectorCache
    shingles: ShingleCache = field(default_factory=ShingleCache)
    _seen: dict[int, np.ndarray] = field(default_factory=dict)  # this query's: each text shingled once at most

    def _shingles(self, doc_id: int, text: str) -> np.ndarray:
        found = self._seen.get(doc_id)
        if found is None:
            found = self._seen[doc_id] = self.shingles.get(doc_id, text)
        return found

    def fold(
        self, ids: list[int], texts: dict[int, str], limit: int
    ) -> tuple[list[int], dict[int, list[tuple[int, float]]]]:
        """Fold twins in a ranking of distinct contents.

        Args:
            ids: document ids, best first (exact copies already folded).
            texts: the text of each id.
            limit: how many hits to keep at most (the walk stops there).

        Returns:
            ``(kept, twins)``: the ids kept, best first (at most ``limit``), and for each kept id that folded
            others, ``[(twin id, overlap), ...]`` in rank order.
        """
        present, rows = self.vectors.rows(np.asarray(ids, dtype=np.int64))
        at = dict(zip(np.asarray(ids)[present].tolist(), rows.tolist(), strict=True))
        kept: list[int] = []
        kept_rows: list[int] = []  # the kept hits that have a stored embedding, and their rows
        kept_with_rows: list[int] = []
        twins: dict[int, list[tuple[int, float]]] = {}
        for doc_id in ids:
            if len(kept) >= limit:
                break
            row = at.get(doc_id)
            folded = False
            if row is not None and kept_rows:
                cosines = self.vectors.matrix[kept_rows] @ self.vectors.matrix[row]
                for k in np.flatnonzero(cosines >= TWIN_COSINE).tolist():
                    other = kept_with_rows[k]
                    score = jaccard(self._shingles(other, texts[other]), self._shingles(doc_id, texts[doc_id]))
                    if score >= TWIN_OVERLAP:
                        twins.setdefault(other, []).append((doc_id, score))
                        folded = True
                        break
            if folded:
                continue
            kept.append(doc_id)
            if row is not None:
                kept_rows.append(row)
                kept_with_rows.append(doc_id)
        return kept, twins
