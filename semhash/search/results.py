"""From a ranking to hits: the rows still present, copies folded into one hit, the weak-match flag."""

from __future__ import annotations

import numpy as np

from semhash.codes import from_sql_int
from semhash.corpus import snippet
from semhash.search.options import QueryOptions
from semhash.store import Store, StoredDocument
from semhash.types import Hit, Hits, format_location

#: One ranked document: ``(id, hamming distance, cosine, bm25 or None, the score it was ranked by)``.
Ranked = tuple[int, int, float, float | None, float]

#: How deep a ranking is read, at most, to find ``k`` distinct contents when copies fold.
MAX_FOLD_DEPTH = 4096
#: A query whose best cosine is below this is flagged weak (no good match): chosen on the validation halves of the
#: two judged query sets pooled (/usr/share/doc and the Node.js API reference; BENCHMARKS.md "Search modes":
#: 0.22-0.28 flag 5 of the 7 questions without an answer there and no question with one; 0.32, the first
#: calibration on /usr/share/doc alone, also flags one answerable Node.js question).
WEAK_COSINE = 0.26


def weigh(hits: list[Hit], nearest: float | None) -> Hits:
    """``hits`` with the weak flag: weak when no cosine reaches ``WEAK_COSINE``.

    The cosines are the hits', or ``nearest``, the semantic ranking's best when fusion ranked it lower.
    """
    best = max((c for c in [nearest, *(h.cosine for h in hits)] if c is not None), default=None)
    return Hits(hits, weak=best is None or best < WEAK_COSINE, floor=WEAK_COSINE, best=best)


def present_rows(
    store: Store, ids: np.ndarray, dist: np.ndarray, cosines: np.ndarray, limit: int | None
) -> tuple[list[tuple[int, int, float]], dict[int, StoredDocument]]:
    """The first ``limit`` ranked hits whose rows still exist, with those rows.

    Rows are read for the head of the ranking only (not the whole pool); a document deleted after the
    index snapshot was taken has no row any more and is skipped, its place taken by the next one.
    """
    rows: list[tuple[int, int, float]] = []
    docs: dict[int, StoredDocument] = {}
    # max(1, ...): a radius search with nothing in range ranks no ids at all, and that is a result.
    step = max(1, len(ids)) if limit is None else max(2 * limit, 16)
    for start in range(0, len(ids), step):
        chunk = ids[start : start + step]
        found = store.documents(chunk.tolist())
        docs.update(found)
        for i, dd, c in zip(chunk, dist[start : start + step], cosines[start : start + step], strict=True):
            if int(i) in found:
                rows.append((int(i), int(dd), float(c)))
        if limit is not None and len(rows) >= limit:
            return rows[:limit], docs
    return rows, docs


def build_hits(
    store: Store,
    ranked: list[Ranked],
    docs: dict[int, StoredDocument],
    stage: str,
    options: QueryOptions,
    bits: int,
) -> list[Hit]:
    """Hits from the head of a ranking: the first ``k`` (all, for a radius query).

    Copies are folded when ``options.collapse`` (the best-ranked document of each content stands for all that
    hold it).
    """
    limit = None if options.radius is not None else options.k
    copies: dict[int, list[str]] = {}
    if options.collapse and ranked:
        hashes = store.content_hashes([r[0] for r in ranked])
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
        groups = store.locations_with_hashes([hashes[r[0]] for r in ranked if r[0] in hashes])
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
