"""The ``Store``: one semhash database's face, the reads and writes of its documents, codes and models.

The schema (tables, columns, migrations) is :mod:`semhash.store.schema`; opening the file (read-only ways
in, one-line write errors), transactions and the ``meta`` table are :mod:`semhash.store.connect`
(:class:`~semhash.store.connect.StoreConnection`, which ``Store`` extends); the rows read back are
:mod:`semhash.store.records`. Every change to codes bumps ``meta.generation`` in the same transaction (see
the schema), which is how the caches beside the database (:mod:`semhash.caches`) know they are stale.

The store never imports torch or faiss.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import NoReturn

import numpy as np

from semhash.errors import CorruptDatabaseError, CorruptModelError
from semhash.store.connect import StoreConnection
from semhash.store.records import StoredDocument, StoredModel, code_range, is_code, json_object
from semhash.store.schema import FTS_TABLE
from semhash.store.windows import StoredWindows, insert_windows, read_slices, read_windows, window_counts
from semhash.types import Locations, SourceDocument, locations_from_json, locations_to_json

#: The largest hashing-model blob read back (a model with a big lexical vocabulary takes tens of MB);
#: anything larger is damaged or crafted, and is refused before it is loaded.
MAX_MODEL_BYTES = 512 * 2**20


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Store(StoreConnection):
    """One semhash database. Open it with :meth:`open`; close it (or use ``with``) when done.

    The opening, transactions and ``meta`` (ids, generation, recorded models) are :class:`StoreConnection`'s;
    this class reads and writes the rows of the tables.
    """

    # -- documents -------------------------------------------------------------------------------
    def count(self, encoded_only: bool = False) -> int:
        """Number of documents (with a code, if ``encoded_only``)."""
        where = " WHERE code IS NOT NULL" if encoded_only else ""
        return self.db.execute(f"SELECT count(*) FROM documents{where}").fetchone()[0]

    def document_states(self) -> dict[tuple[str, int], tuple[int, str, bool]]:
        """``(path, record) -> (id, content_hash, has a sound embedding)`` for every document.

        An embedding of the wrong size (a damaged row) counts as missing, so indexing embeds it again.
        """
        size = 4 * (self._int_meta("embedding_dim") or 0)
        rows = self.db.execute(
            "SELECT path, record, id, content_hash, embedding IS NOT NULL AND (? = 0 OR length(embedding) = ?)"
            " FROM documents",
            [size, size],
        )
        return {(p, r): (i, h, bool(e)) for p, r, i, h, e in rows}

    def upsert_documents(
        self,
        documents: Sequence[SourceDocument],
        embeddings: np.ndarray,
        windows: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> list[int]:
        """Insert or replace documents with their embeddings, in one transaction; codes reset to NULL.

        ``windows``: per document, its embedded windows' ``((n, 2) char spans, (n, dim) vectors)``, stored
        in the ``windows`` table in the same transaction (:mod:`semhash.store.windows`); without them a
        re-embedded document's old windows are dropped (by trigger) and none are stored. Returns the ids
        of the rows, in order.
        """
        ids = []
        now = _now()
        with self.transaction(f"storing {len(documents)} embedded documents"):
            for doc, vector in zip(documents, np.asarray(embeddings, dtype="<f4"), strict=True):
                blob = vector.tobytes()
                cursor = self.db.execute(
                    "INSERT INTO documents (path, record, content_hash, text, n_chars, mtime, embedding, code,"
                    " recon_error, indexed_at, locations, encoding) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?, ?)"
                    " ON CONFLICT(path, record) DO UPDATE SET content_hash = excluded.content_hash,"
                    " text = excluded.text, n_chars = excluded.n_chars, mtime = excluded.mtime,"
                    " embedding = excluded.embedding, code = NULL, recon_error = NULL,"
                    " indexed_at = excluded.indexed_at, locations = excluded.locations,"
                    " encoding = excluded.encoding RETURNING id",
                    [
                        *(doc.path, doc.record, doc.content_hash, doc.text, len(doc.text), doc.mtime, blob, now),
                        *(locations_to_json(doc.locations), doc.encoding),
                    ],
                )
                ids.append(cursor.fetchone()[0])
                if windows is not None:
                    spans, vectors = windows[len(ids) - 1]
                    insert_windows(self.db, ids[-1], spans, vectors, doc.locations)
            self._bump_generation()
        return ids

    def windows(self, ids: Sequence[int]) -> dict[int, StoredWindows]:
        """The stored window vectors of these documents (:func:`semhash.store.windows.read_windows`)."""
        return read_windows(self.db, ids, self._int_meta("embedding_dim") or 0)

    def text_slices(self, spans: Sequence[tuple[int, int, int]]) -> dict[tuple[int, int], str]:
        """``{(id, start): text[start:end]}`` of ``(id, start, end)`` spans (see :mod:`semhash.store.windows`)."""
        return read_slices(self.db, spans)

    def window_counts(self) -> tuple[int, int]:
        """``(windows stored, documents that have them)``."""
        return window_counts(self.db)

    def document_locations(self, ids: Sequence[int]) -> dict[int, Locations]:
        """Where the pages or slides of documents start: ``{id: ((char_offset, page), ...)}``.

        Only documents that have pages are in it; :func:`semhash.types.page_at` finds a character's page.
        Empty for an index older than the column (read where it could not be upgraded).
        """
        out: dict[int, Locations] = {}
        try:
            rows = list(self._rows_by_id("id, locations", ids))
        except sqlite3.OperationalError:  # no such column: an older index opened read-only
            return out
        for doc_id, stored in rows:
            locations = locations_from_json(stored)
            if locations is not None:
                out[int(doc_id)] = locations
        return out

    def has_keyword_index(self) -> bool:
        """Whether the keyword index exists.

        An index older than schema 3, read where it could not be upgraded, has none.
        """
        row = self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [FTS_TABLE])
        return row.fetchone() is not None

    def keyword_search(self, match: str, limit: int) -> list[tuple[int, float]]:
        """``(id, bm25)`` of the best ``limit`` documents for an FTS5 ``MATCH`` expression, best first.

        ``bm25`` is FTS5's (lower is better; ties by id). Raises ``sqlite3.OperationalError`` when
        ``match`` is not valid FTS5 syntax (:func:`semhash.search.keyword.keyword_matches` then reads it as words).
        """
        rows = self.db.execute(
            f"SELECT rowid, bm25({FTS_TABLE}) AS score FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH ?"
            " ORDER BY score, rowid LIMIT ?",
            [match, int(limit)],
        )
        return [(int(i), float(score)) for i, score in rows]

    def content_hashes(self, ids: Sequence[int]) -> dict[int, str]:
        """``{id: content_hash}`` of these documents (missing ids left out)."""
        return {int(i): str(h) for i, h in self._rows_by_id("id, content_hash", ids)}

    def locations_with_hashes(self, hashes: Sequence[str]) -> dict[str, list[tuple[int, str, int]]]:
        """Every document holding one of these contents: ``{content_hash: [(id, path, record), ...]}``, id order."""
        out: dict[str, list[tuple[int, str, int]]] = {}
        unique = sorted(set(hashes))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                f"SELECT content_hash, id, path, record FROM documents WHERE content_hash IN ({marks}) ORDER BY id",
                chunk,
            )
            for h, i, path, record in rows:
                out.setdefault(str(h), []).append((int(i), str(path), int(record)))
        return out

    def delete_documents(self, ids: Sequence[int]) -> int:
        """Delete documents by id, in one transaction. Returns how many went."""
        if not ids:
            return 0
        with self.transaction(f"removing {len(ids)} documents"):
            for start in range(0, len(ids), 500):
                chunk = list(ids[start : start + 500])
                marks = ",".join("?" * len(chunk))
                self.db.execute(f"DELETE FROM documents WHERE id IN ({marks})", chunk)
            self._bump_generation()
        return len(ids)

    def ids_without_code(self) -> list[int]:
        """Documents embedded but not yet encoded (new, changed, or interrupted before encoding)."""
        return [r[0] for r in self.db.execute("SELECT id FROM documents WHERE code IS NULL ORDER BY id")]

    def set_codes(self, ids: Sequence[int], codes: Sequence[int], recon_errors: Sequence[float]) -> None:
        """Store codes (SQLite integer form) and reconstruction errors, in one transaction."""
        with self.transaction(f"storing the codes of {len(ids)} documents"):
            self.db.conn.executemany(
                "UPDATE documents SET code = ?, recon_error = ? WHERE id = ?",
                [(int(c), float(e), int(i)) for i, c, e in zip(ids, codes, recon_errors, strict=True)],
            )
            self._bump_generation()

    def clear_codes(self) -> None:
        """Forget every code (before re-encoding with a new model)."""
        with self.transaction("clearing the old codes"):
            self.db.execute("UPDATE documents SET code = NULL, recon_error = NULL")
            self._bump_generation()

    def embeddings(self, ids: Sequence[int] | None = None, dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, (n, dim) float32 embeddings)`` for the given ids (all documents when ``None``), id order."""
        dim = dim or self._int_meta("embedding_dim") or 0
        if ids is None:
            expected = self.db.execute("SELECT count(*) FROM documents WHERE embedding IS NOT NULL").fetchone()[0]
            rows = self.db.execute("SELECT id, embedding FROM documents WHERE embedding IS NOT NULL ORDER BY id")
            return self._embedding_rows(rows, dim, int(expected))
        pairs = sorted(self._rows_by_id("id, embedding", ids))
        return self._embedding_rows(iter(pairs), dim, len(pairs))

    def _embedding_rows(
        self, rows: Iterator[tuple[int, object]], dim: int, expected: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, matrix)`` of ``(id, blob)`` rows, written straight into one float32 array.

        At 10^6 x 384, a list of blobs, their join and a copy held 4.6 GB at once; this holds the 1.5 GB matrix.
        """
        out_ids: np.ndarray = np.empty(expected, np.int64)
        matrix: np.ndarray = np.empty((expected, dim), np.float32)
        count = 0
        damaged = []
        for doc_id, blob in rows:
            if not isinstance(blob, bytes) or len(blob) != 4 * dim:
                damaged.append(doc_id)
                continue
            if count == len(out_ids):  # rows added since the count: grow
                out_ids = np.concatenate([out_ids, np.empty(max(1, count), np.int64)])
                matrix = np.concatenate([matrix, np.empty((max(1, count), dim), np.float32)])
            out_ids[count] = doc_id
            matrix[count] = np.frombuffer(blob, dtype="<f4")
            count += 1
        if damaged:
            raise CorruptDatabaseError(
                f"{self.path}: {len(damaged)} stored embeddings are damaged (document id {damaged[0]} is not "
                f"{dim} float32 values): rerun `semhash index` on their folders to embed them again"
            )
        return out_ids[:count], matrix[:count]

    def texts(self, ids: Sequence[int]) -> list[str]:
        """The texts of documents, in the order of ``ids`` (every id must exist)."""
        found = dict(self._rows_by_id("id, text", ids))
        return [found[int(i)] for i in ids]

    def codes(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, codes)`` of every encoded document as int64 arrays (SQLite integer form), id order.

        Raises:
            CorruptDatabaseError: a stored code is not an integer of the active model's code length.
        """
        low, high = code_range(self.bits)
        bad = self.db.execute(
            "SELECT id, code FROM documents WHERE code IS NOT NULL"
            " AND (typeof(code) != 'integer' OR code < ? OR code > ?) LIMIT 1",
            [low, high],
        ).fetchone()
        if bad is not None:
            self._damaged_code(*bad)
        rows = self.db.execute("SELECT id, code FROM documents WHERE code IS NOT NULL ORDER BY id").fetchall()
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        arr = np.array(rows, dtype=np.int64)
        return arr[:, 0].copy(), arr[:, 1].copy()

    def documents(self, ids: Sequence[int]) -> dict[int, StoredDocument]:
        """Rows by id (missing ids are left out)."""
        rows = list(self._rows_by_id("id, path, record, text, code, recon_error, mtime", ids))
        check = self._code_check()
        return {row[0]: check(StoredDocument(*row)) for row in rows}

    def _code_check(self) -> Callable[[StoredDocument], StoredDocument]:
        """A check of each row's code (see :meth:`codes`), for the reads that build :class:`StoredDocument`."""
        bits = self.bits

        def check(doc: StoredDocument) -> StoredDocument:
            if doc.code is not None and not is_code(doc.code, bits):
                self._damaged_code(doc.id, doc.code)
            return doc

        return check

    def _damaged_code(self, doc_id: int, value: object) -> NoReturn:
        """Refuse a damaged code: a crafted or damaged database must not be read as if it were sound."""
        bits = self.bits
        what = f"a {bits}-bit code" if bits else "a code"
        shown = repr(value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise CorruptDatabaseError(
            f"{self.path} is damaged: document {doc_id} holds the code {shown} ({type(value).__name__}), not "
            f"{what}: run `semhash train --db {self.path}` to code every document again"
        )

    def _rows_by_id(self, columns: str, ids: Sequence[int]) -> Iterator[tuple]:
        """``SELECT columns`` of the documents with these ids (in no particular order; missing ids left out).

        Chunked, because SQLite caps the number of bound parameters in one statement.
        """
        for start in range(0, len(ids), 500):
            chunk = [int(i) for i in ids[start : start + 500]]
            marks = ",".join("?" * len(chunk))
            yield from self.db.execute(f"SELECT {columns} FROM documents WHERE id IN ({marks})", chunk)

    def find(self, path: str, record: int | None = None) -> list[StoredDocument]:
        """Documents stored for a file path (all its records, or one)."""
        sql = "SELECT id, path, record, text, code, recon_error, mtime FROM documents WHERE path = ?"
        params: list[object] = [path]
        if record is not None:
            sql += " AND record = ?"
            params.append(record)
        check = self._code_check()
        return [check(StoredDocument(*row)) for row in self.db.execute(sql + " ORDER BY record", params)]

    def iter_documents(self, batch: int = 1000) -> Iterator[StoredDocument]:
        """Every document, in id order, fetched in batches."""
        last = -1
        check = self._code_check()
        while True:
            rows = self.db.execute(
                "SELECT id, path, record, text, code, recon_error, mtime FROM documents WHERE id > ?"
                " ORDER BY id LIMIT ?",
                [last, batch],
            ).fetchall()
            if not rows:
                return
            for row in rows:
                yield check(StoredDocument(*row))
            last = rows[-1][0]

    # -- models ----------------------------------------------------------------------------------
    def save_model(self, weights: bytes, bits: int, input_dim: int, config: dict, stats: dict, trained_on: int) -> int:
        """Store a trained model and make it the active one; returns its id.

        Older rows stay as the training history (config, stats, date) but lose their weights: their codes
        are gone, and each model's weights and lexical projection take megabytes.
        """
        with self.transaction("saving the hashing model"):
            cursor = self.db.execute(
                "INSERT INTO models (created_at, bits, input_dim, config, stats, trained_on, weights)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                [_now(), bits, input_dim, json.dumps(config), json.dumps(stats), trained_on, weights],
            )
            model_id = cursor.fetchone()[0]
            self.db.execute("UPDATE models SET weights = NULL WHERE id != ?", [model_id])
            self.set_meta("model_id", model_id)
        return model_id

    def active_model(self) -> StoredModel | None:
        """The active model (weights included), or ``None`` before the first training."""
        model_id = self._int_meta("model_id")
        if model_id is None:
            return None
        size = self.db.execute("SELECT length(weights) FROM models WHERE id = ?", [model_id]).fetchone()
        if size is not None and (size[0] or 0) > MAX_MODEL_BYTES:
            raise CorruptModelError(
                f"the hashing model stored in {self.path} is unreadable ({size[0] / 2**20:.0f} MB, more than "
                f"{MAX_MODEL_BYTES // 2**20} MB): run `semhash train --db {self.path}` to rebuild it from the "
                "stored embeddings"
            )
        row = self.db.execute(
            "SELECT id, created_at, bits, input_dim, config, stats, trained_on, weights FROM models WHERE id = ?",
            [model_id],
        ).fetchone()
        if row is None:
            return None
        model_id, created_at, bits, input_dim, config, stats, trained_on, weights = row
        # Training history only: a damaged value reads as empty rather than failing every command.
        return StoredModel(
            id=int(model_id),
            created_at=str(created_at),
            bits=int(bits),
            input_dim=int(input_dim),
            config=json_object(config),
            stats=json_object(stats),
            trained_on=int(trained_on or 0),
            weights=bytes(weights) if weights is not None else None,
        )

    # -- the adapted encoder ------------------------------------------------------------------------
    def save_adapted_encoder(
        self, name: str, weights: bytes, config: dict, stats: dict, ids: Sequence[int], embeddings: np.ndarray
    ) -> None:
        """Switch the index to an adapted encoder, in one transaction.

        Written together: its weights, the documents' new embeddings (``ids`` must be every document), the
        recorded model name, and no codes (the old ones came from the old embeddings; ``semhash train``
        encodes again if the caller stops before it does).
        """
        vectors = np.asarray(embeddings, dtype="<f4")
        if len(ids) != len(vectors) or len(ids) != self.count():
            raise ValueError(f"{len(ids)} ids and {len(vectors)} embeddings for {self.count()} documents")
        with self.transaction("saving the adapted encoder"):
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS encoders (id INTEGER PRIMARY KEY, created_at TEXT, name TEXT,"
                " config TEXT, stats TEXT, weights BLOB)"
            )
            self.db.execute("UPDATE encoders SET weights = NULL")
            self.db.execute(
                "INSERT INTO encoders (created_at, name, config, stats, weights) VALUES (?, ?, ?, ?, ?)",
                [_now(), name, json.dumps(config), json.dumps(stats), weights],
            )
            self.db.conn.executemany(
                "UPDATE documents SET embedding = ?, code = NULL, recon_error = NULL WHERE id = ?",
                [(v.tobytes(), int(i)) for i, v in zip(ids, vectors, strict=True)],
            )
            self.set_meta("embedding_model", name)
            self.set_meta("embedding_dim", vectors.shape[1] if vectors.ndim == 2 else 0)
            self._bump_generation()

    def adapted_encoder(self, name: str) -> bytes | None:
        """The stored weights of the adapted encoder recorded as ``name`` (``None``: none stored).

        Raises:
            CorruptModelError: the blob is larger than any adapted encoder (damaged or crafted).
        """
        if "encoders" not in self.db.table_names():
            return None
        size = self.db.execute(
            "SELECT length(weights) FROM encoders WHERE name = ? ORDER BY id DESC LIMIT 1", [name]
        ).fetchone()
        if size is not None and (size[0] or 0) > MAX_MODEL_BYTES:
            raise CorruptModelError(
                f"the adapted encoder stored in {self.path} is unreadable ({size[0] / 2**20:.0f} MB, more than "
                f"{MAX_MODEL_BYTES // 2**20} MB): run `semhash train --adapt --db {self.path}` to adapt it again"
            )
        row = self.db.execute("SELECT weights FROM encoders WHERE name = ? ORDER BY id DESC LIMIT 1", [name]).fetchone()
        return bytes(row[0]) if row is not None and row[0] is not None else None

    # -- removing documents by path ----------------------------------------------------------------
    def ids_under(self, path: str, folders: bool = True) -> list[int]:
        """Documents of the file ``path`` (every record) or, with ``folders``, of any file under the folder ``path``."""
        if not folders:
            return [r[0] for r in self.db.execute("SELECT id FROM documents WHERE path = ? ORDER BY id", [path])]
        path = path.rstrip("/") or "/"
        prefix = path if path.endswith("/") else path + "/"
        # A range on the (path, record) index: every string that starts with "dir/" sorts in ["dir/", "dir0")
        # ("0" follows "/" in byte order, SQLite's BINARY collation).
        rows = self.db.execute(
            "SELECT id FROM documents WHERE path = ? OR (path >= ? AND path < ?) ORDER BY id",
            [path, prefix, prefix[:-1] + "0"],
        )
        return [r[0] for r in rows]

    def paths(self) -> list[str]:
        """Every distinct file path in the index, sorted."""
        return [r[0] for r in self.db.execute("SELECT DISTINCT path FROM documents ORDER BY path")]
