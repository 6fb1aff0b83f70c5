"""SQLite storage, the source of truth: documents, their embeddings and codes, and the hashing model.

* :mod:`semhash.store.schema`: the tables and columns (documented there), migrations, the schema version;
* :mod:`semhash.store.connect`: opening (read-only ways in, write errors), transactions, ``meta`` and the
  generation that stamps every cache beside the database;
* :mod:`semhash.store.records`: the rows read back (:class:`StoredDocument`, :class:`StoredModel`);
* :mod:`semhash.store.windows`: the stored window vectors (:class:`StoredWindows`), for passages;
* :mod:`semhash.store.store`: :class:`Store`, the reads and writes of documents, codes and models.

The store never imports torch or faiss, nor the caches beside the database (:mod:`semhash.caches`).
"""

from semhash.store.records import StoredDocument, StoredModel
from semhash.store.schema import FTS_TABLE, FTS_TOKENIZER, SCHEMA_VERSION, WINDOWS_TABLE
from semhash.store.store import MAX_MODEL_BYTES, Store
from semhash.store.windows import WINDOW_DTYPE, StoredWindows

__all__ = [
    "FTS_TABLE",
    "FTS_TOKENIZER",
    "MAX_MODEL_BYTES",
    "SCHEMA_VERSION",
    "WINDOWS_TABLE",
    "WINDOW_DTYPE",
    "Store",
    "StoredDocument",
    "StoredModel",
    "StoredWindows",
]
