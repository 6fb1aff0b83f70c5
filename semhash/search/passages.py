"""Passages: the window of each hit's text that best matches the query, and its readable snippet.

By default the passage comes from the window vectors the index stored (the ``windows`` table, schema 4:
:mod:`semhash.store.windows`): the window whose vector has the highest cosine to the query's embedding
(one dot product per stored window of the hits, no model call), ties to the earlier window. A document
without stored windows (indexed before schema 4) keeps the opening of its text as
its snippet, unless ``reembed`` (``--passages``) asks to find its passage the old way: its text cut into
windows of about the model's length, embedded now (seconds a query on a CPU).

Either way a hit's ``passage`` is ``{"start", "end", "page", "cosine", "source", "text", "highlights",
"snippet_highlights"}``: character offsets into the stored text, the page or slide where it starts
(``None`` without pages), the window's cosine to the query, ``"stored"`` or ``"embedded"``, the window
cleaned of markup (:func:`semhash.search.snippets.clean_markup`) and where the query's words are in that
text. The hit's ``snippet`` becomes a piece of that text around the first of them (``snippet_highlights``:
the words' places in the snippet, which the server page marks).
"""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np

from semhash.embed import Encoder
from semhash.lexical import ENGLISH_STOP_WORDS
from semhash.search.keyword import WORD
from semhash.search.snippets import clean_markup, fit, highlights, query_terms
from semhash.store import Store, StoredWindows
from semhash.types import Hit, Hits, page_at

#: A passage window's length in characters when embedding at query time: about the model's 254-token window.
PASSAGE_CHARS = 1000
#: Most windows embedded per hit when looking for its passage at query time (the first ones of a longer document).
MAX_PASSAGE_WINDOWS = 16
#: The snippet's width in characters (the CLI cuts the passage's text to the terminal's width itself).
SNIPPET_CHARS = 240


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


def focus(text: str, query: str, width: int = SNIPPET_CHARS) -> str:
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


def best_window(windows: StoredWindows, embedding: np.ndarray) -> tuple[int, float]:
    """The index of the stored window nearest the query's unit ``embedding`` and its cosine (earliest on ties)."""
    cosines = windows.vectors.astype(np.float32) @ np.asarray(embedding, dtype=np.float32)
    best = int(np.argmax(cosines))  # argmax takes the first of equal values: the earliest window
    return best, float(cosines[best])


def add_passages(
    store: Store,
    encoder: Encoder | None,
    encode_lock: threading.Lock,
    hits: Hits,
    text: str,
    embedding: np.ndarray,
    reembed: bool = False,
) -> Hits:
    """The hits with their passages (see the module docstring).

    Args:
        store: the index the hits came from.
        encoder: the index's encoder (used only with ``reembed``, under ``encode_lock``).
        encode_lock: serialises the encoder (the searcher's thread policy).
        hits: a query's hits.
        text: the query's text (whose words are highlighted).
        embedding: the query's unit embedding.
        reembed: find the passage of hits without stored windows by embedding their windows now.
    """
    if not hits:
        return hits
    stored = store.windows([h.id for h in hits])
    chosen: dict[int, tuple[int, int, int | None, float | None, str]] = {}
    for hit in hits:
        if hit.id in stored:
            windows = stored[hit.id]
            j, nearest = best_window(windows, embedding)
            chosen[hit.id] = (int(windows.starts[j]), int(windows.ends[j]), windows.pages[j], nearest, "stored")
    slices = store.text_slices([(i, a, b) for i, (a, b, *_) in chosen.items()])
    missing = [h for h in hits if h.id not in chosen]
    if reembed and missing and encoder is not None:
        chosen_now, texts = _embedded_passages(store, encoder, encode_lock, missing, embedding)
        chosen.update(chosen_now)
        slices.update(texts)
    terms = query_terms(text)
    out: list[Hit] = []
    for hit in hits:
        found = chosen.get(hit.id)
        window = slices.get((hit.id, found[0])) if found is not None else None
        if found is None or window is None:
            out.append(hit)
            continue
        start, end, page, cosine, source = found
        clean = clean_markup(window)
        marks = highlights(clean, terms)
        snippet, inside = fit(clean, marks, SNIPPET_CHARS)
        passage = {
            "start": start,
            "end": end,
            "page": page,
            "cosine": cosine,
            "source": source,
            "text": clean,
            "highlights": [list(m) for m in marks],
            "snippet_highlights": [list(m) for m in inside],
        }
        out.append(replace(hit, passage=passage, snippet=snippet))
    return Hits(out, weak=hits.weak, floor=hits.floor, best=hits.best)


def _embedded_passages(
    store: Store, encoder: Encoder, encode_lock: threading.Lock, hits: list[Hit], embedding: np.ndarray
) -> tuple[dict[int, tuple[int, int, int | None, float | None, str]], dict[tuple[int, int], str]]:
    """Passages found by embedding the hits' windows now (``--passages`` for documents without stored windows).

    The text is cut into windows of about the model's length (:func:`passage_windows`, at most
    ``MAX_PASSAGE_WINDOWS`` per hit), every window of the hits is embedded in one batch, and the one with
    the highest cosine to the query is kept; a text of one window is its own passage, unembedded (its
    cosine is the hit's). Returns the choices and their texts.
    """
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
    chosen: dict[int, tuple[int, int, int | None, float | None, str]] = {}
    texts: dict[tuple[int, int], str] = {}
    for hit in hits:
        if not spans[hit.id]:
            continue
        if len(spans[hit.id]) == 1:
            start, end = spans[hit.id][0]
            cosine = hit.cosine
        else:
            start, end = max(spans[hit.id], key=lambda span: (cosines[(hit.id, span[0])], -span[0]))
            cosine = cosines[(hit.id, start)]
        chosen[hit.id] = (start, end, page_at(locations.get(hit.id), start), cosine, "embedded")
        texts[(hit.id, start)] = docs[hit.id].text[start:end]
    return chosen, texts
