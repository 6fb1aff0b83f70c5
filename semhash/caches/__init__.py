"""The rebuildable caches beside the database, each a file (or two) with a JSON sidecar, never the truth.

* :mod:`semhash.caches.files`: the plumbing they share (stamp, sidecar, checksum, atomic write, stat key);
* :mod:`semhash.caches.hamming`: ``<db>.faiss``, the faiss binary Hamming index of the codes;
* :mod:`semhash.caches.vectors`: ``<db>.vectors`` and ``.vectors.ids``, the float32 embeddings and codes,
  memory-mapped; :mod:`semhash.caches.scan`: the numpy searches over them (Hamming pool, cosine scans);
* :mod:`semhash.caches.ivf`: ``<db>.ivf``, the float candidate stage of large indexes;
* :mod:`semhash.caches.sync`: the one place that reads the store and loads, checks or rebuilds the caches.

Nothing is imported here, so that a module that needs only :mod:`semhash.caches.files` (the runtime
folder's stamps) does not load faiss.

**Copies of a code, and the faiss file on the query path** (measured for issue 19; the first half of the fold
is done: the searcher no longer reads ``<db>.faiss``). A code is held four times: ``documents.code`` (the
truth), SQLite's ``idx_documents_code`` (used: the covering index of ``count(encoded_only)`` and
``ids_without_code``), ``<db>.vectors.ids`` (id and code of every row, read by the default query's Hamming
pool beside the vectors of the same stamp) and ``<db>.faiss`` (the same ids and codes at the same stamp). A
default ``semhash query`` (strace of the sample index) opens ``.faiss`` and ``.faiss.json``, reads, checksums
and deserialises the file, and never searches it: the pool comes from ``.vectors.ids``. Its only readers are
``query --radius`` / ``--no-rerank``, ``similar`` with those options, ``dedup --against`` and ``info``
(freshness). Loading it costs 0.6 ms at 10^4 codes, 14 ms at 10^5 (of a 0.42 s cold query) and 140 ms at 10^6
(11.4 MiB, mostly faiss building the id map of ``IndexBinaryIDMap2``), every cold query; building the same
index in memory from the vector cache's ids and codes (:func:`semhash.caches.sync.code_index_of`, same
results) costs 5 / 12 / 99 ms, and only the queries that search it pay. So ``.faiss`` is the redundant copy.
Done: the searcher builds its ``CodeIndex`` lazily from its snapshot's vector cache
(``semhash.search.searcher._Snapshot.codes``), so no query reads the file. Next: ``dedup --against`` the same
way, then ``index``/``train`` no longer writing ``<db>.faiss`` (a storage-format change: README's file list
and ``info``'s "fresh" line follow).
"""
