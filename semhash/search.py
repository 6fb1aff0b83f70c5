"""``semhash query`` and ``semhash similar``: text -> embedding -> code -> Hamming search -> hits.

Ranking: the ``k`` nearest codes by Hamming distance, ties broken by id. With ``rerank`` (the default),
a larger pool of Hamming candidates (``max(10 k, 100)``) is re-ordered by the cosine of the stored float
embeddings: the 32-bit code finds the neighbourhood cheaply, the embedding orders it precisely (see the
README for the measured gain). ``radius`` instead returns every document within that many bits, the
classic semantic-hashing address lookup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from semhash.codes import from_sql_int, ints_to_packed
from semhash.config import DEFAULT_K, MIN_RERANK_POOL, RERANK_POOL_FACTOR
from semhash.corpus import ReadOptions, read_records, snippet
from semhash.embed import Encoder
from semhash.errors import CorpusError, DocumentNotFoundError, UsageError
from semhash.index import CodeIndex
from semhash.store import Store
from semhash.sync import load_index, require_documents
from semhash.types import Hit

if TYPE_CHECKING:
    from semhash.model import HashingAutoencoder


@dataclass
class QueryOptions:
    """How results are chosen."""

    k: int = DEFAULT_K
    rerank: bool = True
    radius: int | None = None
    device: str = "auto"

    def validate(self, bits: int) -> None:
        """Raise :class:`UsageError` for out-of-range values."""
        if self.k < 1:
            raise UsageError(f"-k must be at least 1, not {self.k}")
        if self.radius is not None and not 0 <= self.radius <= bits:
            raise UsageError(f"--radius must be between 0 and {bits}, not {self.radius}")


class Searcher:
    """An open index ready for queries: the store, the faiss index and (lazily) the models."""

    def __init__(self, db_path: str | Path, encoder: Encoder | None = None, device: str = "auto") -> None:
        self.store = Store.open(db_path)
        require_documents(self.store)
        self.index: CodeIndex = load_index(self.store)
        self.bits = self.index.bits
        self._encoder = encoder
        self._encoder_checked = False
        self._device = device
        self._hasher: HashingAutoencoder | None = None

    def close(self) -> None:
        """Close the database."""
        self.store.close()

    def __enter__(self) -> Searcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- models, loaded on first use -------------------------------------------------------------
    @property
    def encoder(self) -> Encoder:
        """The embedding model the index was built with."""
        if self._encoder is None:
            from semhash.device import resolve_device
            from semhash.embed import load_encoder

            self._encoder = load_encoder(self.store.embedding_model, resolve_device(self._device))
        if not self._encoder_checked:  # once per searcher, not once per query
            self.store.check_embedding_model(self._encoder.name, self._encoder.dim)
            self._encoder_checked = True
        return self._encoder

    def encode(self, embeddings: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        """Packed codes of documents (their embeddings and texts), with the index's hashing model."""
        if self._hasher is None:
            from semhash.model import model_from_bytes

            active = self.store.active_model()
            assert active is not None  # require_documents guarantees a trained model
            self._hasher = model_from_bytes(active["weights"])
        from semhash.model import encode_codes

        return encode_codes(self._hasher, embeddings, texts=texts)

    # -- queries ---------------------------------------------------------------------------------
    def query(self, text: str, options: QueryOptions | None = None) -> list[Hit]:
        """Documents most similar to ``text``."""
        if not text.strip():
            raise UsageError("the query text is empty")
        embedding = self.encoder.encode([text])
        return self.search_embedding(embedding[0], self.encode(embedding, [text])[0], options)

    def query_file(self, path: str | Path, options: QueryOptions | None = None) -> list[Hit]:
        """Documents most similar to the content of a file (any format ``semhash index`` reads)."""
        file = Path(path)
        if not file.is_file():
            raise CorpusError(f"{path}: no such file")
        try:
            texts = [t for _, t in read_records(file, file.read_bytes(), ReadOptions())]
        except ValueError as exc:
            raise CorpusError(f"{path}: {exc}") from None
        text = "\n".join(t.strip() for t in texts if t.strip())
        if not text:
            raise CorpusError(f"{path} holds no text")
        return self.query(text, options)

    def similar(self, path: str | Path, record: int | None = None, options: QueryOptions | None = None) -> list[Hit]:
        """Documents most similar to an indexed document (itself left out), from its stored embedding."""
        resolved = str(Path(path).expanduser().resolve())
        docs = self.store.find(resolved, record) or self.store.find(str(path), record)
        docs = [d for d in docs if d.code is not None]
        if not docs:
            raise DocumentNotFoundError(f"{path} is not in the index: run `semhash index` on its folder first")
        if len(docs) > 1:
            raise UsageError(f"{path} holds {len(docs)} records: pick one with --record N")
        doc = docs[0]
        _, embedding = self.store.embeddings([doc.id])
        code = ints_to_packed(np.array([doc.code], dtype=np.int64), self.bits)[0]
        return self.search_embedding(embedding[0], code, options, exclude=doc.id)

    def search_embedding(
        self,
        embedding: np.ndarray,
        code: np.ndarray,
        options: QueryOptions | None = None,
        exclude: int | None = None,
    ) -> list[Hit]:
        """Search with a query's embedding and packed code (the shared path of every query form)."""
        options = options or QueryOptions()
        options.validate(self.bits)
        query = code.reshape(1, -1)
        if options.radius is not None:
            ids, dist = self.index.within(query, options.radius)
            order = np.lexsort((ids, dist))
            ids, dist = ids[order], dist[order]
            limit = None
        else:
            want = options.k + (exclude is not None)
            pool = max(want * RERANK_POOL_FACTOR, MIN_RERANK_POOL) if options.rerank else want
            d, i = self.index.search(query, pool)
            ids, dist = i[0], d[0]
            limit = options.k
        keep = ids != exclude if exclude is not None else np.ones(len(ids), bool)
        ids, dist = ids[keep], dist[keep]
        stored_ids, vectors = self.store.embeddings(ids.tolist())
        by_id = dict(zip(stored_ids.tolist(), vectors, strict=True))
        cosines = np.array([float(by_id[i] @ embedding) for i in ids.tolist()], dtype=np.float32)
        if options.rerank:
            order = np.lexsort((ids, dist, -cosines))
            ids, dist, cosines = ids[order], dist[order], cosines[order]
        if limit is not None:
            ids, dist, cosines = ids[:limit], dist[:limit], cosines[:limit]
        docs = self.store.documents(ids.tolist())
        return [
            Hit(
                rank=rank,
                id=int(i),
                path=docs[int(i)].path,
                record=docs[int(i)].record,
                distance=int(dd),
                code=from_sql_int(docs[int(i)].code or 0) & ((1 << self.bits) - 1),
                cosine=float(c),
                snippet=snippet(docs[int(i)].text),
            )
            for rank, (i, dd, c) in enumerate(zip(ids, dist, cosines, strict=True), start=1)
        ]
