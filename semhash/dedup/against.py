"""New documents against the index (``semhash dedup PATH --against``): which already exist; nothing is added.

:func:`match_against` works on codes and embeddings already computed (torch-free). :func:`find_existing`
is the one dedup path that embeds text: through the index's :class:`~semhash.codec.Codec` (the one
text -> code path of semhash), whose models load on first use, so importing this module (or the package)
never imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from semhash.dedup.options import DedupOptions
from semhash.dedup.pipeline import check_encoded
from semhash.dedup.text import normalized_text_hash
from semhash.errors import CorpusError, IndexMissingError, UsageError
from semhash.overlap import pair_overlaps
from semhash.store import Store
from semhash.types import ExistingMatch, SourceDocument

if TYPE_CHECKING:
    from semhash.codec import Codec
    from semhash.corpus import ReadOptions
    from semhash.embed import Encoder


@dataclass
class AgainstResult:
    """Which new documents already exist in the index (nothing is added to it).

    Attributes:
        documents: the new documents, in reading order.
        matches: per new document, its matches in the index (exact first, then by score).
        candidates: every ``(new position, stored id, hamming, cosine, exact, overlap)`` for re-thresholding;
            ``overlap`` is the word-shingle Jaccard of the two texts where either is long and the cosine
            reaches the floor, else NaN (:mod:`semhash.overlap`).
    """

    options: DedupOptions
    documents: list[SourceDocument]
    matches: list[list[ExistingMatch]]
    candidates: list[tuple[int, int, int, float, bool, float]]
    locations: dict[int, str]

    @property
    def existing(self) -> list[int]:
        """Positions of the new documents that already exist in the index."""
        return [k for k, m in enumerate(self.matches) if m]

    def rethreshold(self, threshold: float, min_overlap: float | None = None) -> AgainstResult:
        """The same candidates judged at another threshold or minimum overlap (no model, no database).

        Raises:
            UsageError: ``min_overlap`` is asked for but overlaps were not measured (``min_overlap`` was 0).
        """
        wanted = self.options.min_overlap if min_overlap is None else min_overlap
        options = replace(self.options, threshold=threshold, min_overlap=wanted)  # checked in __post_init__
        if wanted > 0 and self.options.min_overlap <= 0:
            raise UsageError("word-shingle overlap was not measured for this result: match with min_overlap > 0")
        return replace(
            self, options=options, matches=_judge(len(self.documents), self.candidates, self.locations, options)
        )


def match_against(
    store: Store,
    documents: Sequence[SourceDocument],
    embeddings: np.ndarray,
    packed: np.ndarray,
    options: DedupOptions,
) -> AgainstResult:
    """Match new documents (already embedded and hashed) against an open store (torch-free)."""
    from semhash.caches.sync import load_index  # faiss: only this path needs it

    index = load_index(store)
    # Exact: normalised text hashes of every stored document.
    new_keys = [normalized_text_hash(d.text) for d in documents]
    wanted = set(new_keys)
    exact_ids: dict[int, list[int]] = {}
    for doc in store.iter_documents(batch=10000):
        if doc.code is None:
            continue
        key = normalized_text_hash(doc.text)
        if key in wanted:
            exact_ids.setdefault(key, []).append(doc.id)
    # Near: faiss range search of the new codes over the index.
    lims, dist, found = index.range_search(packed, options.radius)
    stored_ids, matrix = store.embeddings(sorted(set(np.asarray(found).tolist())))
    slot = {int(x): k for k, x in enumerate(stored_ids.tolist())}
    nan = float("nan")
    candidates: dict[tuple[int, int], tuple[int, int, int, float, bool, float]] = {}
    for q in range(len(documents)):
        for k in range(int(lims[q]), int(lims[q + 1])):
            sid = int(found[k])
            cos = float(np.clip(matrix[slot[sid]] @ embeddings[q], -1.0, 1.0))
            candidates[(q, sid)] = (q, sid, int(dist[k]), cos, False, nan)
        for sid in exact_ids.get(new_keys[q], []):
            prev = candidates.get((q, sid))
            candidates[(q, sid)] = (q, sid, prev[2] if prev else -1, 1.0, True, nan)
    rows = sorted(candidates.values())
    located = store.documents(sorted({r[1] for r in rows}))
    locations = {i: d.location for i, d in located.items()}
    if options.min_overlap > 0:  # copy, not topic: measured where the cosine could pass (down to the floor)
        near = [r for r in rows if not r[4] and r[3] >= options.floor]
        texts = {-(q + 1): documents[q].text for q in {r[0] for r in near}}
        texts |= {sid: located[sid].text for sid in {r[1] for r in near}}
        left = np.array([-(r[0] + 1) for r in near], np.int64)
        measured = pair_overlaps(texts, left, np.array([r[1] for r in near], np.int64))
        jac = {(r[0], r[1]): float(x) for r, x in zip(near, measured.tolist(), strict=True)}
        rows = [(*r[:5], jac.get((r[0], r[1]), nan)) for r in rows]
    return AgainstResult(options, list(documents), _judge(len(documents), rows, locations, options), rows, locations)


def _judge(
    n: int, rows: Sequence[tuple[int, int, int, float, bool, float]], locations: dict[int, str], options: DedupOptions
) -> list[list[ExistingMatch]]:
    """Matches per new document: exact ones, and near ones.

    A near one's cosine reaches the threshold and, where a text is long (the overlap was measured), its shingle
    overlap reaches ``options.min_overlap``.
    """
    out: list[list[ExistingMatch]] = [[] for _ in range(n)]
    for q, sid, dist, cos, exact, jac in rows:
        measured = not np.isnan(jac)
        copy = not measured or options.min_overlap <= 0 or jac >= options.min_overlap
        if exact or (cos >= options.threshold and copy):
            out[q].append(
                ExistingMatch(
                    id=sid,
                    location=locations.get(sid, str(sid)),
                    score=round(cos, 6),
                    reason="exact" if exact else "near",
                    hamming=dist,
                    overlap=round(jac, 6) if measured and not exact else None,
                    measure="text" if exact else ("cosine+overlap" if measured else "cosine"),
                )
            )
    for matches in out:
        matches.sort(key=lambda m: (m.reason != "exact", -m.score, m.id))
    return out


def find_existing(
    db_path: str | Path,
    paths: Sequence[str | Path],
    options: DedupOptions | None = None,
    encoder: Encoder | None = None,
    device: str = "auto",
    read: ReadOptions | None = None,
    runtime: str | None = None,
) -> AgainstResult:
    """Which documents under ``paths`` already exist in the index at ``db_path``; nothing is added.

    Args:
        db_path: the index.
        paths: files and folders holding the new documents.
        options: how a match is judged (``None``: :class:`~semhash.dedup.options.DedupOptions`' defaults).
        encoder: an :class:`~semhash.embed.Encoder` already loaded (``None``: the index's model, loaded here).
        device: where the new documents are embedded: ``auto``, ``cpu`` or ``cuda``.
        read: :class:`~semhash.corpus.ReadOptions` for the new files (``None``: the defaults).
        runtime: ``auto``, ``onnx`` or ``torch`` (see :mod:`semhash.codec`; ``None``: ``SEMHASH_RUNTIME``).

    Raises:
        IndexMissingError: no index, or no encoded document in it.
        CorpusError: a path is missing or holds no document.
        UsageError: an option is out of range.
    """
    from semhash.corpus import CorpusScan, ReadOptions, check_roots

    options = options or DedupOptions()
    roots = check_roots(paths)
    with Store.open(db_path) as store:
        check_encoded(store, options)
        codec = _codec(store, encoder, device, runtime)
        scan = CorpusScan(roots, read if read is not None else ReadOptions())
        documents = list(scan.documents())
        if not documents:
            where = ", ".join(str(r) for r in roots)
            raise CorpusError(f"no documents found under {where}: give files semhash can read")
        codec.check_encoder(store)
        embeddings, packed = codec.encode([d.text for d in documents])
        return match_against(store, documents, embeddings, packed, options)


def _codec(store: Store, encoder: Encoder | None, device: str, runtime: str | None) -> Codec:
    from semhash.codec import Codec

    try:
        return Codec.from_store(store, runtime, device=device, encoder=encoder)
    except IndexMissingError:
        raise IndexMissingError(
            f"the index at {store.path} holds no document yet: run `semhash index DIR` first"
        ) from None
