"""The stored window vectors (schema 4's ``windows`` table): written beside a document, read back per hit.

One row per window the indexer embedded (:mod:`semhash.store.schema` documents the columns): the window's
character span in the stored text, the page it starts on, and its unit embedding as float16. A query reads
the rows of its hits only, and finds each hit's passage by a dot product (:mod:`semhash.search.passages`).

A document of one window stores that window's row with a NULL vector: its embedding (the pool of one window)
is the window's own, already in ``documents.embedding``, and is read from there. On 20 Newsgroups, where half
the posts fit one window, that saves a third of the table (BENCHMARKS.md "Search: the matched passage").

A row whose vector is not ``dim`` float16 values (damaged, or from another model) is left out when read,
never an error: the passage then comes from the other windows, or falls back to the text's opening.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from semhash.store.schema import WINDOWS_TABLE
from semhash.types import Locations, page_at

if TYPE_CHECKING:  # imported once, by semhash.store.connect (which keeps pandas out)
    import sqlite_utils

#: The stored dtype of a window vector (little-endian float16).
WINDOW_DTYPE = "<f2"


@dataclass(frozen=True)
class StoredWindows:
    """One document's stored windows, in text order.

    Attributes:
        starts: ``(n,)`` character offsets where the windows start.
        ends: ``(n,)`` character offsets where they end (exclusive).
        pages: the page (or slide) each window starts on, ``None`` without pages.
        vectors: ``(n, dim)`` float16 unit vectors.
    """

    starts: np.ndarray
    ends: np.ndarray
    pages: list[int | None]
    vectors: np.ndarray


def insert_windows(
    db: sqlite_utils.Database,
    doc_id: int,
    spans: np.ndarray,
    vectors: np.ndarray,
    locations: Locations | None,
) -> None:
    """Write a document's windows (call it inside the transaction that writes the document).

    The document's previous windows were removed by the ``windows_update`` trigger when its embedding was
    rewritten; they are removed here too, so a caller that writes windows alone never doubles them.
    """
    db.execute(f"DELETE FROM {WINDOWS_TABLE} WHERE doc_id = ?", [int(doc_id)])
    if not len(spans):
        return
    half = np.ascontiguousarray(np.asarray(vectors), dtype=WINDOW_DTYPE)
    alone = len(spans) == 1  # the document's embedding is this window's: stored once, in documents
    db.conn.executemany(
        f"INSERT INTO {WINDOWS_TABLE} (doc_id, char_start, char_end, page, vector) VALUES (?, ?, ?, ?, ?)",
        [
            (int(doc_id), int(a), int(b), page_at(locations, int(a)), None if alone else half[j].tobytes())
            for j, (a, b) in enumerate(np.asarray(spans).tolist())
        ],
    )


def has_windows_table(db: sqlite_utils.Database) -> bool:
    """Whether the table exists (an index older than schema 4, read where it could not be upgraded, has none)."""
    row = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [WINDOWS_TABLE])
    return row.fetchone() is not None


def read_windows(db: sqlite_utils.Database, ids: Sequence[int], dim: int) -> dict[int, StoredWindows]:
    """The stored windows of these documents: ``{id: StoredWindows}`` (documents without any left out).

    Only rows whose vector is exactly ``dim`` float16 values, or NULL with a sound document embedding
    (``dim`` float32 values) in its place, are read (see the module docstring).
    """
    if not ids or dim <= 0 or not has_windows_table(db):
        return {}
    size = np.dtype(WINDOW_DTYPE).itemsize * dim
    rows: dict[int, list[tuple[int, int, int | None, bytes]]] = {}
    unique = sorted({int(i) for i in ids})
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        marks = ",".join("?" * len(chunk))
        found = db.execute(
            f"SELECT w.doc_id, w.char_start, w.char_end, w.page, w.vector, length(w.vector) IS NULL"
            f" FROM {WINDOWS_TABLE} w WHERE w.doc_id IN ({marks}) ORDER BY w.doc_id, w.char_start",
            chunk,
        )
        alone: list[int] = []
        for doc_id, a, b, page, blob, null in found:
            if null:
                alone.append(int(doc_id))
                blob = b""  # the document's embedding, read below
            elif not isinstance(blob, bytes) or len(blob) != size:
                continue
            rows.setdefault(int(doc_id), []).append((int(a), int(b), None if page is None else int(page), blob))
        if alone:
            marks = ",".join("?" * len(alone))
            embedded = db.execute(f"SELECT id, embedding FROM documents WHERE id IN ({marks})", alone)
            for doc_id, blob in embedded:
                windows = rows[int(doc_id)]
                if isinstance(blob, bytes) and len(blob) == 4 * dim:
                    half = np.frombuffer(blob, dtype="<f4").astype(WINDOW_DTYPE).tobytes()
                    rows[int(doc_id)] = [(a, b, p, v or half) for a, b, p, v in windows]
    out = {}
    for doc_id, windows in rows.items():
        windows = [w for w in windows if len(w[3]) == size]
        if not windows:
            continue
        vectors = np.frombuffer(b"".join(w[3] for w in windows), dtype=WINDOW_DTYPE).reshape(len(windows), dim)
        out[doc_id] = StoredWindows(
            starts=np.array([w[0] for w in windows], np.int64),
            ends=np.array([w[1] for w in windows], np.int64),
            pages=[w[2] for w in windows],
            vectors=vectors,
        )
    return out


def window_counts(db: sqlite_utils.Database) -> tuple[int, int]:
    """``(windows stored, documents that have them)``; ``(0, 0)`` without the table."""
    if not has_windows_table(db):
        return 0, 0
    row = db.execute(f"SELECT count(*), count(DISTINCT doc_id) FROM {WINDOWS_TABLE}").fetchone()
    return int(row[0]), int(row[1])


def read_slices(db: sqlite_utils.Database, spans: Sequence[tuple[int, int, int]]) -> dict[tuple[int, int], str]:
    """``{(id, start): text[start:end]}`` for ``(id, start, end)`` spans of stored texts, without reading them whole.

    SQLite's ``substr`` counts characters of a UTF-8 text as Python does (code points), so the offsets are
    the same. A missing document is left out.
    """
    out: dict[tuple[int, int], str] = {}
    for first in range(0, len(spans), 300):  # 3 bound values a span, under SQLite's 999-parameter floor
        chunk = spans[first : first + 300]
        values = ",".join("(?, ?, ?)" for _ in chunk)
        params = [v for i, a, b in chunk for v in (int(i), int(a), max(0, int(b) - int(a)))]
        rows = db.execute(
            f"WITH s(id, a, n) AS (VALUES {values}) SELECT s.id, s.a, substr(d.text, s.a + 1, s.n)"
            " FROM s JOIN documents d ON d.id = s.id",
            params,
        )
        for doc_id, start, piece in rows:
            if piece is not None:
                out[(int(doc_id), int(start))] = str(piece)
    return out
