"""From a ranking to hits: the rows still present, copies and near-identical twins folded into one, the weak flag."""

from __future__ import annotations

import numpy as np

from semhash.codes import from_sql_int
from semhash.corpus import snippet
from semhash.search.options import QueryOptions
from semhash.search.twins import TwinCheck
from semhash.store import Store, StoredDocument
from semhash.types import Folded, Hit, Hits, format_location

#: One ranked document: ``(id, hamming distance, cosine, bm25 or None, the score it was ranked by)``.
Ranked = tuple[int, int, float, float | None, float]

#: How deep a ranking is read, at most, to find ``k`` distinct contents when copies fold.
MAX_FOLD_DEPTH = 4096
#: A query whose best cosine is below this is flagged weak (no good match): chosen on the validation halves of the
#: two judged query sets pooled (/usr/share/doc and the Node.js API reference; BENCHMARKS.md "Search modes":
#: 0.22-0.28 flag 5 of the 7 questions without an answer there and no question with one; 0.32, the first
#: calibration on /usr/share/doc alone, also flags one answerable Node.js question).
WEAK_COSINE = 0.26
#: ``Folded.why`` of an exact copy (the same content hash) and of a twin (:mod:`semhash.search.twins`).
SAME_CONTENT = "same content"
NEAR_IDENTICAL = "near-identical text"


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
    twins: TwinCheck | None = None,
) -> list[Hit]:
    """Hits from the head of a ranking: the first ``k`` (all, for a radius query).

    Copies are folded when ``options.collapse``: documents with the same content, and, given ``twins`` and a
    top ``k`` (not a radius query), near-identical ones (:mod:`semhash.search.twins`). The best-ranked
    document of a group stands for all that it holds (``Hit.copies``, ``Hit.folded``).
    """
    limit = None if options.radius is not None else options.k
    folded: dict[int, list[Folded]] = {}
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
        near: dict[int, list[tuple[int, float]]] = {}
        if twins is not None and limit is not None:
            by_id = {row[0]: row for row in kept}
            ids, near = twins.fold([row[0] for row in kept], {i: docs[i].text for i in by_id}, limit)
            ranked = [by_id[i] for i in ids]
        else:
            ranked = kept[:limit] if limit is not None else kept
        shown = [row[0] for row in ranked] + [twin for group in near.values() for twin, _ in group]
        groups = store.locations_with_hashes([hashes[i] for i in shown if i in hashes])

        def members(i: int) -> list[tuple[int, str, int]]:
            """Every document holding ``i``'s content (``i`` itself when its hash is unknown)."""
            return groups.get(hashes.get(i, ""), []) or [(i, docs[i].path, docs[i].record)]

        for row in ranked:
            entries = [Folded(format_location(p, r), SAME_CONTENT) for j, p, r in members(row[0]) if j != row[0]]
            for twin, overlap in near.get(row[0], []):  # the twin, and its own exact copies
                entries += [
                    Folded(format_location(p, r), NEAR_IDENTICAL, round(overlap, 3)) for _, p, r in members(twin)
                ]
            folded[row[0]] = entries
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
            copies=[entry.location for entry in folded.get(i, [])],
            folded=folded.get(i, []),
        )
        for rank, (i, dd, c, bm25, score) in enumerate(ranked, start=1)
    ]
