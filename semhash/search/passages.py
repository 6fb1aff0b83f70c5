"""Passages: the window of a hit's stored text nearest the query, found at query time (``--passages``)."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np

from semhash.embed import Encoder
from semhash.lexical import ENGLISH_STOP_WORDS
from semhash.search.keyword import WORD
from semhash.store import Store
from semhash.types import Hits, page_at

#: A passage window's length in characters: about the model's 254-token window of English text.
PASSAGE_CHARS = 1000
#: Most windows embedded per hit when looking for its passage (the first ones of a longer document).
MAX_PASSAGE_WINDOWS = 16


def passage_windows(text: str, size: int = PASSAGE_CHARS, most: int = MAX_PASSAGE_WINDOWS) -> list[tuple[int, int]]:
    """``(start, end)`` character spans that cut ``text`` into windows of about ``size`` characters.

    Each ends at whitespace where there is some in its last fifth; at most ``most`` windows, from the start.
    """
    spans: list[tuple[int, int]] = []
    start = 0
    while start < len(text) and len(spans) < most:
        end = min(len(text), start + size)
        if end < len(text):
            cut = text.rfind(" ", start + size * 4 // 5, end)
            end = cut + 1 if cut > start else end
        spans.append((start, end))
        start = end
    return spans


def focus(text: str, query: str, width: int = 240) -> str:
    """``text`` on one line, cut to ``width`` characters around the first query word it holds (its start when none)."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    words = [w for w in WORD.findall(query.lower()) if w not in ENGLISH_STOP_WORDS and len(w) > 1]
    lowered = flat.lower()
    at = min((i for i in (lowered.find(w) for w in words) if i >= 0), default=0)
    begin = max(0, min(at - width // 4, len(flat) - width))
    piece = flat[begin : begin + width]
    return ("…" if begin else "") + piece + ("…" if begin + width < len(flat) else "")


def add_passages(
    store: Store, encoder: Encoder, encode_lock: threading.Lock, hits: Hits, text: str, embedding: np.ndarray
) -> Hits:
    """The hits with their passages.

    A passage is the window of each one's stored text nearest the query, and a snippet from it (around the first
    query word it holds).

    The text is cut into windows of about the model's length (:func:`passage_windows`, at most
    ``MAX_PASSAGE_WINDOWS`` per hit), every window of the hits is embedded in one batch now, and the one
    with the highest cosine to the query is kept; a text of one window is its own passage, unembedded.
    Embedding at query time keeps the index as it is (no per-window vectors stored) at the price of the
    encoder's time per window: BENCHMARKS.md "Search modes" measures it, which is why it is asked for.
    """
    if not hits:
        return hits
    docs = store.documents([h.id for h in hits])
    locations = store.document_locations([h.id for h in hits])
    spans = {h.id: passage_windows(docs[h.id].text) if h.id in docs else [] for h in hits}
    batch = [(h.id, a, b) for h in hits for a, b in spans[h.id] if len(spans[h.id]) > 1]
    cosines: dict[tuple[int, int], float] = {}
    if batch:
        with encode_lock:
            vectors = np.asarray(encoder.encode([docs[i].text[a:b] for i, a, b in batch]), dtype=np.float32)
        for (i, a, _), value in zip(batch, vectors @ np.asarray(embedding, dtype=np.float32), strict=True):
            cosines[(i, a)] = float(value)
    out = []
    for hit in hits:
        if not spans[hit.id]:
            out.append(hit)
            continue
        if len(spans[hit.id]) == 1:
            start, end = spans[hit.id][0]
            cosine = hit.cosine
        else:
            start, end = max(spans[hit.id], key=lambda span: (cosines[(hit.id, span[0])], -span[0]))
            cosine = cosines[(hit.id, start)]
        page = page_at(locations.get(hit.id), start)
        passage = {"start": start, "end": end, "page": page, "cosine": cosine}
        out.append(replace(hit, passage=passage, snippet=focus(docs[hit.id].text[start:end], text)))
    return Hits(out, weak=hits.weak, floor=hits.floor, best=hits.best)
