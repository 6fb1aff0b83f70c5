"""The words beside the embedding: the keyword index's ranking (SQLite FTS5, BM25) and rank fusion (RRF).

``keyword`` mode ranks by :func:`keyword_ranking`; ``hybrid`` fuses it with the semantic ranking by
reciprocal rank fusion (:func:`fuse`), which needs no calibration between a cosine and a BM25 score.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence

from semhash.errors import UsageError
from semhash.lexical import ENGLISH_STOP_WORDS
from semhash.store import Store

#: Reciprocal rank fusion's constant (Cormack et al. 2009's 60): a document's fused score is the sum of
#: ``1 / (RRF_K + rank)`` over the rankings that hold it.
RRF_K = 60
#: How deep each ranking is read for fusion (at least ``k``).
FUSION_DEPTH = 100
#: Most distinct words of a query the keyword index is asked for (see :func:`keyword_matches`).
MAX_KEYWORD_TERMS = 64
#: Characters and operators that make a query FTS5 syntax rather than plain words.
_FTS_SYNTAX = re.compile(r'["*()^:+]|\b(?:AND|OR|NOT|NEAR)\b')
#: A word of a query (also what :func:`semhash.search.passages.focus` looks for).
WORD = re.compile(r"\w+")


def keyword_matches(text: str) -> list[str]:
    """The FTS5 ``MATCH`` expressions to try for a query, in order.

    Plain words (no FTS5 syntax) become one OR of quoted terms, English stop words left out (unless the
    query holds nothing else): BM25 then ranks the documents holding more of the rarer words first, which
    suits questions typed as sentences better than FTS5's implicit AND (a word absent from the best
    document would hide it), and without the stop words nearly every document would match, which floods
    the fusion with documents that share only "how" and "to" with the query. A query with FTS5 syntax
    (``"a phrase"``, ``prefix*``, ``AND``/``OR``/``NOT``/``NEAR``, ``col:``, parentheses) is tried as
    written first, then, when FTS5 refuses it, as plain words. A query without a word gives nothing to try.
    A long query (a pasted document, ``--file``) is searched by its first ``MAX_KEYWORD_TERMS`` distinct words
    only, and never as FTS5 syntax: every term is one posting-list scan, and a 20,000-character query took 8 s.
    """
    words = WORD.findall(text)
    content = [word for word in words if word.lower() not in ENGLISH_STOP_WORDS] or words
    distinct: list[str] = []
    seen: set[str] = set()
    for word in content:  # each word once, as first spelled
        if word.lower() not in seen:
            seen.add(word.lower())
            distinct.append(word)
    plain = " OR ".join('"' + word + '"' for word in distinct[:MAX_KEYWORD_TERMS])  # \w+ holds no quote
    tries = [text] if _FTS_SYNTAX.search(text) and len(words) <= MAX_KEYWORD_TERMS else []
    if plain:
        tries.append(plain)
    return tries


def fuse(rankings: Sequence[Sequence[int]], constant: int = RRF_K) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: ``(id, score)`` best first (ties by id).

    ``score`` is the sum over ``rankings`` (each best first) of ``1 / (constant + rank)``, ranks from 1.
    """
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, doc_id in enumerate(ranking, start=1):
            scores[doc_id] = scores.get(doc_id, 0.0) + 1.0 / (constant + rank)
    return sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))


def keyword_ranking(store: Store, text: str, limit: int, exclude: int | None = None) -> list[tuple[int, float]]:
    """The keyword index's best ``limit`` documents for ``text`` in ``store``: ``[(id, bm25)]``, best (lowest) first.

    Never an error for the query's content: text that is not valid FTS5 syntax is searched as its words
    (:func:`keyword_matches`). An index older than the keyword index (read where it could not be
    upgraded) is a :class:`UsageError` that says how to build it.
    """
    if not store.has_keyword_index():
        raise UsageError(
            f"{store.path} has no keyword index yet (written by an older semhash): run `semhash index` on "
            "its folders once to build it, or use --mode semantic"
        )
    for match in keyword_matches(text):
        try:
            found = store.keyword_search(match, limit + (exclude is not None))
        except sqlite3.OperationalError:
            continue  # not FTS5 syntax after all: the next try reads the words
        return [(i, score) for i, score in found if i != exclude][:limit]
    return []
