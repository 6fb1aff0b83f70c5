"""What rerank buys: precision of Hamming-only vs Hamming + cosine rerank vs exact float search.

On 20 Newsgroups (database = train posts, queries = test posts, labels only for scoring), with the
default training recipe at 32 bits, measures P@10 and P@100 for:

* Hamming only (``semhash query --no-rerank``): top-k by Hamming distance, ties by id;
* Hamming + rerank (the default): ``max(10 k, 100)`` Hamming candidates re-ordered by stored cosine;
* exact float cosine over every database embedding (the ceiling rerank approaches);

and the per-query latency of each search at this size, in the same run. Needs the cached embeddings from
``python -m benchmarks.datasets.newsgroups`` (``.cache/20ng/embeddings.npz``)::

    .venv/bin/python -m benchmarks.bench_rerank --out benchmarks/results/rerank.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import CACHE as WORK
from benchmarks.harness import result_path, write_result
from semhash.caches.hamming import CodeIndex
from semhash.config import MIN_RERANK_POOL, RERANK_POOL_FACTOR
from semhash.model import encode_codes
from semhash.train import train_hasher


def precision(found: np.ndarray, db_labels: np.ndarray, query_labels: np.ndarray) -> float:
    return float((db_labels[found] == query_labels[:, None]).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=WORK / "20ng" / "embeddings.npz")
    parser.add_argument("--data", type=Path, default=WORK / "20ng" / "20ng-stripped.jsonl")
    parser.add_argument("--bits", type=int, default=32)
    parser.add_argument("--queries", type=int, default=0, help="limit the number of test queries (0 = all)")
    parser.add_argument("--out", type=Path, default=result_path("rerank"))
    args = parser.parse_args()
    data = np.load(args.cache)
    train = data["split"] == "train"
    db, queries = data["embeddings"][train], data["embeddings"][~train]
    db_labels, query_labels = data["labels"][train], data["labels"][~train]
    # The JSONL and the cache are written by benchmarks/datasets/newsgroups.py in the same order; the hashes prove it.
    texts = [json.loads(line)["text"] for line in args.data.open(encoding="utf-8")]
    assert [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in texts] == data["sha256"].tolist()
    db_texts = [t for t, is_train in zip(texts, train, strict=True) if is_train]
    query_texts = [t for t, is_train in zip(texts, train, strict=True) if not is_train]
    if args.queries:
        queries, query_labels = queries[: args.queries], query_labels[: args.queries]
        query_texts = query_texts[: args.queries]
    started = time.perf_counter()
    model, _ = train_hasher(db, args.bits, device="cpu", texts=db_texts)
    train_seconds = time.perf_counter() - started
    ids = np.arange(len(db), dtype=np.int64)
    index = CodeIndex.build(ids, encode_codes(model, db, texts=db_texts), args.bits)
    query_codes = encode_codes(model, queries, texts=query_texts)
    result: dict = {"database": len(db), "queries": len(queries), "bits": args.bits, "train_seconds": train_seconds}
    for k in (10, 100):
        pool = max(k * RERANK_POOL_FACTOR, MIN_RERANK_POOL)
        t0 = time.perf_counter()
        hamming = np.stack([index.search(q[None], k)[1][0] for q in query_codes])
        t1 = time.perf_counter()
        reranked, tie_broken = [], []
        for q, e in zip(query_codes, queries, strict=True):
            dist, cand = index.search(q[None], pool)
            cos = db[cand[0]] @ e
            reranked.append(cand[0][np.lexsort((cand[0], -cos))][:k])
            tie_broken.append(cand[0][np.lexsort((cand[0], -cos, dist[0]))][:k])
        t2 = time.perf_counter()
        exact = []
        for e in queries:
            cos = db @ e
            top = np.argpartition(-cos, k)[:k]
            exact.append(top[np.lexsort((top, -cos[top]))])
        t3 = time.perf_counter()
        n = len(queries)
        result[f"k={k}"] = {
            "pool": pool,
            "hamming_only": precision(hamming, db_labels, query_labels),
            "hamming_rerank": precision(np.stack(reranked), db_labels, query_labels),
            "hamming_then_cosine": precision(np.stack(tie_broken), db_labels, query_labels),
            "float_exact": precision(np.stack(exact), db_labels, query_labels),
            "ms_per_query": {
                "hamming_only": (t1 - t0) / n * 1000,
                "hamming_rerank": (t2 - t1) / n * 1000,
                "float_exact_numpy": (t3 - t2) / n * 1000,
            },
        }
        print(json.dumps({f"k={k}": result[f"k={k}"]}), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, result)


if __name__ == "__main__":
    main()
