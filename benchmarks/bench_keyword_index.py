r"""Issue 21: the keyword index's size and build time at 10^4-10^6 documents, and its share of ``index`` time.

Each size is written twice into a new store (the store's own schema and migrations, in a temporary folder):
``with`` as shipped (the FTS5 table kept in step by the schema's insert trigger), and ``without`` (the same
store with the FTS5 table and its triggers dropped before the first row). Both write the same rows in
transactions of 5,000 with :meth:`Store.upsert_documents`: texts of realistic length and vocabulary (the
20 Newsgroups posts, cycled, each with its copy number so no two texts are equal) and random unit 384-d
float32 embeddings (what the indexer stores). Then, on the ``without`` store, the schema's migration that
adds the keyword index to an existing database (``_migrate_3``: create, triggers, ``rebuild``) is timed:
what upgrading an index of that size costs once.

Reported per size: seconds of both writes and of the migration, the FTS5 tables' bytes (``dbstat``) and the
database's bytes, and the keyword index's share: ``with - without`` against ``without + embedding``, where
``embedding`` is the indexer's encoder (torch, one thread, window pooling as ``semhash index`` has it)
timed on ``--embed-sample`` of the same texts in the same run and scaled to the size: the stage that
dominates ``index`` (training and coding are left out: training reads at most ``DEFAULT_MAX_TRAIN_DOCS``).

    SEMHASH_BENCH_CACHE=/work/bench-cache PYTHONPATH=$PWD OMP_NUM_THREADS=1 .venv/bin/python \
        -m benchmarks.bench_keyword_index --sizes 10000 100000 1000000 --out benchmarks/results/keyword_index.json
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import numpy as np

from benchmarks.datasets.newsgroups import DEFAULT_SOURCE, read_posts
from benchmarks.harness import result_path, write_result

CHUNK = 5000


def texts(posts: list[str], n: int) -> Iterator[list[str]]:
    """``n`` distinct texts in chunks of ``CHUNK``: the posts cycled, each with its copy number appended."""
    for lo in range(0, n, CHUNK):
        yield [f"{posts[i % len(posts)]}\n(copy {i // len(posts)})" for i in range(lo, min(n, lo + CHUNK))]


def write(db: Path, posts: list[str], n: int, keyword_index: bool) -> float:
    """Seconds to write ``n`` documents into a new store at ``db`` (``keyword_index=False``: FTS5 dropped first)."""
    from semhash.store import FTS_TABLE, Store
    from semhash.types import SourceDocument

    rng = np.random.default_rng(0)
    with Store.open(db, create=True) as store:
        if not keyword_index:
            for trigger in ("insert", "delete", "update"):
                store.db.execute(f"DROP TRIGGER {FTS_TABLE}_{trigger}")
            store.db.execute(f"DROP TABLE {FTS_TABLE}")
        seconds = 0.0
        for lo, chunk in enumerate(texts(posts, n)):
            emb = rng.standard_normal((len(chunk), 384)).astype(np.float32)
            emb /= np.linalg.norm(emb, axis=1, keepdims=True)
            docs = [
                SourceDocument(f"synthetic/{lo * CHUNK + j}.txt", 0, t, hashlib.sha256(t.encode()).hexdigest(), 0.0)
                for j, t in enumerate(chunk)
            ]
            t0 = time.perf_counter()
            store.upsert_documents(docs, emb)
            seconds += time.perf_counter() - t0
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return seconds


def sizes_of(db: Path) -> dict[str, int]:
    """Bytes of the whole database and of the FTS5 tables (``documents_fts*``, from ``dbstat``)."""
    import sqlite3

    from semhash.store import FTS_TABLE

    with sqlite3.connect(db) as connection:
        fts = connection.execute("SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name LIKE ?", [FTS_TABLE + "%"])
        return {"db_bytes": db.stat().st_size, "fts_bytes": int(fts.fetchone()[0])}


def migrate(db: Path) -> float:
    """Seconds of the migration that adds the keyword index to an existing database (create + ``rebuild``)."""
    from semhash.store import Store
    from semhash.store.schema import _migrate_3

    with Store.open(db) as store:
        t0 = time.perf_counter()
        with store.transaction("adding the keyword index"):
            _migrate_3(store.db)
        seconds = time.perf_counter() - t0
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return seconds


def embed_seconds_per_doc(posts: list[str], sample: int) -> float:
    """The indexer's encoder's seconds per document on ``sample`` of the texts (batches of 64, sorted by length)."""
    from semhash.embed import load_encoder

    encoder = load_encoder(device="cpu")
    batch = sorted(posts[:sample], key=len)
    encoder.encode(batch[:8])  # warm-up
    t0 = time.perf_counter()
    for lo in range(0, len(batch), 64):
        encoder.encode(batch[lo : lo + 64])
    return (time.perf_counter() - t0) / len(batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--embed-sample", type=int, default=256, help="texts timed through the encoder")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--dir", type=Path, default=None, help="where the databases are written (then deleted)")
    parser.add_argument("--out", type=Path, default=result_path("keyword_index"))
    args = parser.parse_args()
    posts = [p.text for p in islice(read_posts(args.source), 20_000)]
    result: dict = {
        "texts": f"{len(posts)} 20NG posts cycled",
        "mean_chars": round(float(np.mean([len(p) for p in posts]))),
    }
    result["load_start"] = os.getloadavg()[0]
    embed = embed_seconds_per_doc(posts, args.embed_sample)
    result["embed_ms_per_doc"] = round(1000 * embed, 2)
    print(f"embedding: {1000 * embed:.1f} ms a document (load {os.getloadavg()[0]:.1f})", flush=True)
    result["runs"] = []
    folder = Path(tempfile.mkdtemp(prefix="kwbench-", dir=args.dir))
    try:
        for n in args.sizes:
            row: dict = {"documents": n, "load_before": os.getloadavg()[0]}
            row["write_without_s"] = round(write(folder / "without.db", posts, n, keyword_index=False), 2)
            row |= {f"without_{k}": v for k, v in sizes_of(folder / "without.db").items()}
            row["write_with_s"] = round(write(folder / "with.db", posts, n, keyword_index=True), 2)
            row |= {f"with_{k}": v for k, v in sizes_of(folder / "with.db").items()}
            row["migration_s"] = round(migrate(folder / "without.db"), 2)
            added = row["write_with_s"] - row["write_without_s"]
            row["fts_added_s"] = round(added, 2)
            row["fts_share_of_write"] = round(added / row["write_without_s"], 3)
            row["fts_share_of_index"] = round(added / (row["write_without_s"] + embed * n), 4)
            row["load_after"] = os.getloadavg()[0]
            print(row, flush=True)
            result["runs"].append(row)
            for leftover in folder.iterdir():
                leftover.unlink()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    write_result(args.out, result)


if __name__ == "__main__":
    main()
