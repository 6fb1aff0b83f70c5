"""Benchmark of the engine (issue 2): indexing throughput, cold query time, Hamming search latency.

Run from the repository root::

    .venv/bin/python -m benchmarks.bench_engine --docs 1000 --out benchmarks/results/engine.json

1. Indexing: ``--docs`` raw 20 Newsgroups posts (seeded sample, written as ``.txt`` files) are indexed
   with ``semhash index`` (model load, reading, hashing, window pooling, SQLite, training, faiss all
   included), next to, in the same run on the same texts, (a) plain ``SentenceTransformer.encode``
   (which truncates every post to 256 tokens) and (b) the same model encoding exactly the windows
   semhash embeds (equal work), run before and after semhash (A-B-A, the mean is the baseline).
   Overhead = semhash time / (b) - 1: what the pipeline costs beyond the model itself.
2. Cold query: wall time of the ``semhash query`` command in a fresh process (Python start, imports,
   model load, search), median of 3.
3. Hamming search: per-query latency of ``CodeIndex.search`` (faiss ``IndexBinaryFlat``, k=10, ties by
   id) on 10^5, 10^6 and 10^7 random 32-bit codes, next to a numpy XOR+popcount scan of the same codes.
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import DATA, result_path, write_result

SOURCE = DATA / "20newsgroups" / "20ng.jsonl.gz"


def load_posts(n: int, seed: int = 0) -> list[str]:
    with gzip.open(SOURCE, "rt", encoding="utf-8") as handle:
        texts = [json.loads(line)["text"] for line in handle]
    random.Random(seed).shuffle(texts)
    return [t for t in texts if t.strip()][:n]


def bench_indexing(texts: list[str], work: Path) -> dict:
    from sentence_transformers import SentenceTransformer

    from semhash.embed import SentenceTransformerEncoder, default_model_path
    from semhash.ingest import IndexOptions, index_paths

    corpus = work / "corpus"
    corpus.mkdir()
    for i, text in enumerate(texts):
        (corpus / f"{i:06d}.txt").write_text(text.strip(), encoding="utf-8")
    files_text = [t.strip() for t in texts]

    plain_model = SentenceTransformer(str(default_model_path()), device="cpu")
    plain_model.encode(files_text[:64], batch_size=32)  # warm-up
    started = time.perf_counter()
    plain_model.encode(files_text, batch_size=32, normalize_embeddings=True)
    plain_seconds = time.perf_counter() - started

    encoder = SentenceTransformerEncoder(None, device="cpu")
    windows = [w for text in files_text for w, _ in encoder.windows(text)]
    started = time.perf_counter()
    plain_model.encode(windows, batch_size=32, normalize_embeddings=True)
    windows_seconds = time.perf_counter() - started

    started = time.perf_counter()
    report = index_paths(work / "bench.db", [corpus], IndexOptions(device="cpu"))
    index_seconds = time.perf_counter() - started
    # The baseline again after semhash (A-B-A): the mean of the two brackets any drift in machine load.
    started = time.perf_counter()
    plain_model.encode(windows, batch_size=32, normalize_embeddings=True)
    windows_seconds = (windows_seconds + time.perf_counter() - started) / 2
    n = len(texts)
    return {
        "documents": n,
        "windows": len(windows),
        "plain_encode_docs_per_s": n / plain_seconds,
        "window_encode_docs_per_s": n / windows_seconds,
        "semhash_index_docs_per_s": n / index_seconds,
        "semhash_embed_seconds": report.embed_seconds,
        "semhash_train_seconds": report.train_seconds,
        "semhash_total_seconds": index_seconds,
        "overhead_vs_window_encode": index_seconds / windows_seconds - 1,
        "overhead_vs_plain_encode": index_seconds / plain_seconds - 1,
        "db": str(work / "bench.db"),
    }


def bench_cold_query(db: str) -> dict:
    semhash = Path(sys.executable).with_name("semhash")
    times = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run(
            [str(semhash), "query", "graphics card drivers", "--db", db, "--json"], check=True, capture_output=True
        )
        times.append(time.perf_counter() - started)
    help_times = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([str(semhash), "--help"], check=True, capture_output=True)
        help_times.append(time.perf_counter() - started)
    from semhash.search import Searcher

    with Searcher(db, device="cpu") as searcher:
        searcher.query("warm-up query")
        queries = ["graphics card drivers", "space shuttle launch", "gun control laws", "hockey playoffs"] * 5
        started = time.perf_counter()
        for text in queries:
            searcher.query(text)
        warm_ms = (time.perf_counter() - started) / len(queries) * 1000
    import_started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import sentence_transformers"], check=True)
    import_seconds = time.perf_counter() - import_started
    return {
        "cold_query_seconds": statistics.median(times),
        "help_seconds": statistics.median(help_times),
        "python_plus_sentence_transformers_import_seconds": import_seconds,
        "warm_query_ms": warm_ms,
    }


def bench_hamming(sizes: list[int], k: int = 10) -> list[dict]:
    from semhash.caches.hamming import CodeIndex
    from semhash.codes import packed_to_ints

    rng = np.random.default_rng(0)
    rows = []
    for n in sizes:
        packed = rng.integers(0, 256, size=(n, 4), dtype=np.uint8)
        ids = np.arange(1, n + 1, dtype=np.int64)
        started = time.perf_counter()
        index = CodeIndex.build(ids, packed, 32)
        build_seconds = time.perf_counter() - started
        n_queries = 200 if n <= 10**6 else 50
        queries = rng.integers(0, 256, size=(n_queries, 4), dtype=np.uint8)
        started = time.perf_counter()
        for q in queries:
            index.search(q[None], k)
        faiss_ms = (time.perf_counter() - started) / n_queries * 1000
        values = packed_to_ints(packed).astype(np.uint32)
        started = time.perf_counter()
        for q in packed_to_ints(queries).astype(np.uint32):
            dist = np.bitwise_count(values ^ q)
            top = np.argpartition(dist, k)[:k]
            top[np.lexsort((top, dist[top]))]
        numpy_ms = (time.perf_counter() - started) / n_queries * 1000
        rows.append(
            {
                "codes": n,
                "build_seconds": build_seconds,
                "faiss_query_ms": faiss_ms,
                "numpy_query_ms": numpy_ms,
                "speedup_vs_numpy": numpy_ms / faiss_ms,
                "codes_mb": packed.nbytes / 2**20,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--sizes", default="100000,1000000,10000000")
    parser.add_argument("--out", type=Path, default=result_path("engine"))
    parser.add_argument("--skip-index", action="store_true")
    args = parser.parse_args()
    import os

    import torch

    result: dict = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"torch threads {torch.get_num_threads()}, no GPU"
        if not torch.cuda.is_available()
        else "GPU"
    }
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_index:
            result["indexing"] = bench_indexing(load_posts(args.docs), Path(tmp))
            result["query"] = bench_cold_query(result["indexing"]["db"])
            print(json.dumps(result["indexing"], indent=1), flush=True)
            print(json.dumps(result["query"], indent=1), flush=True)
        result["hamming"] = bench_hamming([int(s) for s in args.sizes.split(",")])
    for row in result["hamming"]:
        print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, result)


if __name__ == "__main__":
    main()
