"""The rebuildable caches beside the database, each a file (or two) with a JSON sidecar, never the truth.

* :mod:`semhash.caches.files`: the plumbing they share (stamp, sidecar, checksum, atomic write, stat key);
* :mod:`semhash.caches.hamming`: ``<db>.faiss``, the faiss binary Hamming index of the codes;
* :mod:`semhash.caches.vectors`: ``<db>.vectors`` and ``.vectors.ids``, the float32 embeddings and codes,
  memory-mapped; :mod:`semhash.caches.scan`: the numpy searches over them (Hamming pool, cosine scans);
* :mod:`semhash.caches.ivf`: ``<db>.ivf``, the float candidate stage of large indexes;
* :mod:`semhash.caches.sync`: the one place that reads the store and loads, checks or rebuilds the caches.

Nothing is imported here, so that a module that needs only :mod:`semhash.caches.files` (the runtime
folder's stamps) does not load faiss.
"""
