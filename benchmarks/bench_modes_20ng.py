r"""Issue 21: the search modes on 20 Newsgroups subject-line queries (P@10, recall@10 against exact cosine).

The same short queries as :mod:`benchmarks.bench_retention` (``Subject:`` lines, ``Re:`` removed, 3+ words,
de-duplicated, 200 a split drawn with seed 0; validation = train-split posts' subjects, test = test-split
posts' subjects), but searched through the whole query path of an indexed database (:class:`Searcher`,
the keyword index included), once per ``--mode``: ``semantic`` and ``hybrid`` (and ``keyword``) rank the
same embedded query. Per mode and split: **P@10** (hits from the query's newsgroup), **recall@10** (hits in
the exact cosine top 10 of the stored embeddings) and the median search time (the query embedded once, before).
``exact`` is the exact cosine ranking itself (its recall is 1 by definition).

The database is built without re-embedding: the stored posts' texts (``read_posts`` order, the first ``N``
whose embeddings are in ``--embeddings``: the full ``embeddings.npz`` or the background job's
``embeddings.partial.npz``; ``--posts N``: its first ``N``) and their embeddings are written into a
:class:`Store` (the keyword index kept by the schema's triggers), and the hashing model is trained and codes
written by the indexer's own stage (:func:`semhash.ingest.hashing.train_and_encode`). Copies are not folded
(``collapse=False``), so a ranking is compared row for row with the exact one.

    SEMHASH_BENCH_CACHE=/work/bench-cache PYTHONPATH=$PWD OMP_NUM_THREADS=1 .venv/bin/python \
        -m benchmarks.bench_modes_20ng --out benchmarks/results/modes_20ng.json
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import time
from itertools import islice
from pathlib import Path

import numpy as np

from benchmarks.bench_retention import K, subjects
from benchmarks.datasets.newsgroups import DEFAULT_SOURCE, Post, read_posts
from benchmarks.harness import CACHE as WORK
from benchmarks.harness import result_path, write_result

MODES = ("semantic", "hybrid", "keyword")


def build_db(db: Path, posts: list[Post], emb: np.ndarray) -> dict[str, float]:
    """Write ``posts`` with their embeddings into a new store at ``db``, train the hasher, code every post.

    Returns the seconds of the two stages (``write``: rows, embeddings and the keyword index's triggers;
    ``train_and_code``). Nothing is embedded.
    """
    from semhash.config import DEFAULT_MODEL
    from semhash.ingest.hashing import train_and_encode
    from semhash.ingest.options import IndexOptions
    from semhash.store import Store
    from semhash.types import IndexReport, SourceDocument

    tmp = db.with_name(db.name + ".tmp")
    for leftover in db.parent.glob(tmp.name + "*"):
        leftover.unlink()
    out = {}
    with Store.open(tmp, create=True) as store:
        store.check_embedding_model(DEFAULT_MODEL, emb.shape[1])
        t0 = time.perf_counter()
        for lo in range(0, len(posts), 2000):
            docs = [
                SourceDocument(f"20ng/{p.id}", 0, p.text, hashlib.sha256(p.text.encode()).hexdigest(), 0.0)
                for p in posts[lo : lo + 2000]
            ]
            store.upsert_documents(docs, emb[lo : lo + 2000])
        out["write"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        train_and_encode(store, IndexOptions(device="cpu", runtime_export=False), IndexReport(), None)
        out["train_and_code"] = time.perf_counter() - t0
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{tmp}{suffix}").exists():
            Path(f"{tmp}{suffix}").rename(f"{db}{suffix}")
    return out


def queries(source: Path, labels: set[str], count: int) -> dict[str, list[tuple[str, str]]]:
    """``(subject, newsgroup)`` per split: :mod:`benchmarks.bench_retention`'s short queries, same draw."""
    subject_of = subjects(source)
    pools: dict[str, list[tuple[str, str]]] = {"validation": [], "test": []}
    seen: set[str] = set()
    for post in read_posts(source):
        text = subject_of.get(post.id, "")
        if len(text.split()) < 3 or text.lower() in seen or post.label not in labels:
            continue
        seen.add(text.lower())
        pools["validation" if post.split == "train" else "test"].append((text, post.label))
    rng = np.random.default_rng(0)
    out = {}
    for split, rows in pools.items():
        pick = rng.choice(len(rows), size=min(count, len(rows)), replace=False)
        out[split] = [rows[i] for i in sorted(pick)]
    return out


def measure(db: Path, emb: np.ndarray, labels: np.ndarray, asked: list[tuple[str, str]]) -> dict[str, dict]:
    """P@10, recall@10 against exact cosine and the median search ms of every mode (and of ``exact``)."""
    from semhash.search import QueryOptions, Searcher

    with Searcher(db, device="cpu", runtime="torch") as searcher:
        searcher.warm()
        ids, _ = searcher.store.embeddings()
        row_of = {int(i): r for r, i in enumerate(ids.tolist())}  # store id -> row of ``emb`` (written in order)
        scores: dict[str, dict[str, list[float]]] = {m: {"P": [], "R": [], "ms": []} for m in ("exact", *MODES)}
        for text, label in asked:
            embedding, code = searcher.embed_and_code(text)
            t0 = time.perf_counter()
            truth = np.argsort(-(emb @ embedding), kind="stable")[:K]
            exact_ms = 1000 * (time.perf_counter() - t0)
            found = {"exact": (truth.tolist(), exact_ms)}
            for mode in MODES:
                t0 = time.perf_counter()
                hits = searcher.search_embedding(
                    embedding, code, QueryOptions(k=K, mode=mode, collapse=False), text=text
                )
                found[mode] = ([row_of[h.id] for h in hits], 1000 * (time.perf_counter() - t0))
            for mode, (rows, ms) in found.items():
                scores[mode]["P"].append(sum(labels[r] == label for r in rows) / K)
                scores[mode]["R"].append(len(set(rows) & set(truth.tolist())) / K)
                scores[mode]["ms"].append(ms)
    return {
        mode: {
            "P@10": round(statistics.fmean(s["P"]), 3),
            "recall@10": round(statistics.fmean(s["R"]), 3),
            "ms_p50": round(statistics.median(s["ms"]), 2),
        }
        for mode, s in scores.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embeddings", type=Path, default=None, help="embeddings.npz or embeddings.partial.npz")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--queries", type=int, default=200, help="per split")
    parser.add_argument("--posts", type=int, default=None, help="index only the first N posts of --embeddings")
    parser.add_argument("--db", type=Path, default=None, help="default: the bench cache's 20ng/modes-N.db")
    parser.add_argument("--out", type=Path, default=result_path("modes_20ng"))
    args = parser.parse_args()
    cache_dir = WORK / "20ng"
    path = args.embeddings or next(
        p for p in (cache_dir / "embeddings.npz", cache_dir / "embeddings.partial.npz") if p.exists()
    )
    stored = np.load(path)
    emb = stored["embeddings"][: args.posts].astype(np.float32)
    posts = list(islice(read_posts(args.source), len(emb)))
    emb = emb[: len(posts)]
    if "ids" in stored.files and stored["ids"][: len(posts)].tolist() != [p.id for p in posts]:
        raise SystemExit(f"{path}: its rows are not the posts in read_posts order")
    labels = np.array([p.label for p in posts])
    db = args.db or cache_dir / f"modes-{len(posts)}.db"
    result: dict = {"embeddings": path.name, "posts": len(posts), "db": str(db), "load_start": os.getloadavg()[0]}
    if not db.exists():
        result["build_seconds"] = {k: round(v, 1) for k, v in build_db(db, posts, emb).items()}
    print(f"index: {len(posts)} posts ({path.name}) in {db}", flush=True)
    asked = queries(args.source, set(labels.tolist()), args.queries)
    for split, rows in asked.items():
        result[split] = measure(db, emb, labels, rows)
        print(split, result[split], flush=True)
    result["load_end"] = os.getloadavg()[0]
    write_result(args.out, result)


if __name__ == "__main__":
    main()
