"""Load test of ``semhash serve``'s query endpoint on loopback, at 10^5 and 10^6 documents.

Each database holds a real hashing model (trained by ``semhash index`` on ``data/sample`` with the packaged
model) plus synthetic documents written straight into the store: random unit embeddings and random codes
(what a query's rerank reads and what faiss scans have the real sizes; the texts are short). The query
texts are real. The server runs as a subprocess (``semhash serve``); 4 client threads send a bounded number
of requests (default 2,000) and the loop stops by itself. Then, in this process, the same query path is
timed stage by stage (embedding + hashing the text, faiss scan, rerank row reads) to show what dominates.

    .venv/bin/python scripts/bench_serve.py --sizes 100000 1000000 --requests 2000 --clients 4

On a busy 2-core machine torch's default 2-thread OpenMP team made one query's embedding 10-15x slower than
one thread (the same effect ``semhash.index`` works around for faiss): compare with ``OMP_NUM_THREADS=1``.

Databases are cached under ``.cache/bench_serve/`` (a 10^6 database takes ~1.6 GB, mostly embeddings).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "bench_serve"
QUERIES = [
    "how do I fix a flat tyre on my bike",
    "planets and moons of the solar system",
    "a simple recipe for bread",
    "when should I prune roses",
    "symptoms of the flu and how vaccines work",
    "python list comprehension example",
    "the rocket launch was delayed by weather",
    "growing tomatoes in a small garden",
]


def build_db(n: int) -> Path:
    """A database with the sample corpus (real model) plus synthetic documents up to ``n``."""
    from semhash.store import Store
    from semhash.types import SourceDocument

    db = CACHE / f"n{n}.db"
    if db.exists():
        return db
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = CACHE / f"n{n}.tmp.db"
    for leftover in CACHE.glob(f"n{n}.tmp.db*"):
        leftover.unlink()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "semhash.cli",
            "index",
            str(ROOT / "data" / "sample"),
            "--db",
            str(tmp),
            "--device",
            "cpu",
        ],
        check=True,
    )
    rng = np.random.default_rng(0)
    with Store.open(tmp) as store:
        dim = int(store.get_meta("embedding_dim") or 0)
        start = store.count()
        chunk = 50_000
        for lo in range(start, n, chunk):
            count = min(chunk, n - lo)
            emb = rng.standard_normal((count, dim)).astype(np.float32)
            emb /= np.linalg.norm(emb, axis=1, keepdims=True)
            docs = [SourceDocument(f"synthetic/{lo + j}.txt", 0, f"synthetic document {lo + j}", f"h{lo + j}", 0.0)
                    for j in range(count)]  # fmt: skip
            ids = store.upsert_documents(docs, emb)
            codes = rng.integers(-(2**31), 2**31, size=count, dtype=np.int64)
            store.set_codes(ids, codes.tolist(), [0.0] * count)
            print(f"  {lo + count:,} documents", file=sys.stderr)
    tmp.rename(db)
    for suffix in ("-wal", "-shm"):
        if Path(f"{tmp}{suffix}").exists():
            Path(f"{tmp}{suffix}").rename(f"{db}{suffix}")
    return db


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load(base: str, requests: int, clients: int) -> tuple[list[float], float, int]:
    """``requests`` GET /api/query from ``clients`` threads; returns latencies (s), wall time, errors."""
    import httpx

    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    counter = iter(range(requests))

    def client(_: int) -> None:
        nonlocal errors
        with httpx.Client(base_url=base, timeout=60) as http:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                t0 = time.perf_counter()
                response = http.get("/api/query", params={"q": QUERIES[i % len(QUERIES)], "k": 10})
                dt = time.perf_counter() - t0
                with lock:
                    latencies.append(dt)
                    errors += response.status_code != 200

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return latencies, time.perf_counter() - t0, errors


def breakdown(db: Path, repeats: int = 200) -> dict[str, float]:
    """Median milliseconds of each stage of one query, in this process (one thread).

    ``faiss`` (pool of 100) and ``rows`` (their embeddings, 10 documents) are timed apart; ``search`` is
    :meth:`Searcher.search_embedding` doing both plus the rerank; ``total`` is embed + hash + search.
    """
    from semhash.search import QueryOptions, Searcher

    stages: dict[str, list[float]] = {"embed": [], "hash": [], "faiss": [], "rows": [], "search": [], "total": []}
    with Searcher(db, device="cpu") as searcher:
        searcher.query(QUERIES[0])  # warm up: models loaded
        for i in range(repeats):
            text = QUERIES[i % len(QUERIES)]
            t0 = time.perf_counter()
            embedding = np.asarray(searcher.encoder.encode([text]), dtype=np.float32)
            t1 = time.perf_counter()
            code = searcher.encode(embedding, [text])[0]
            t2 = time.perf_counter()
            _, ids = searcher.index.search(code.reshape(1, -1), 100)
            t3 = time.perf_counter()
            searcher.store.embeddings(ids[0].tolist())
            searcher.store.documents(ids[0][:10].tolist())
            t4 = time.perf_counter()
            searcher.search_embedding(embedding[0], code, QueryOptions(k=10))
            t5 = time.perf_counter()
            stages["embed"].append(t1 - t0)
            stages["hash"].append(t2 - t1)
            stages["faiss"].append(t3 - t2)
            stages["rows"].append(t4 - t3)
            stages["search"].append(t5 - t4)  # faiss + rows + rerank + hits, as a query runs it
            stages["total"].append((t2 - t0) + (t5 - t4))
    return {k: statistics.median(v) * 1000 for k, v in stages.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--skip-load", action="store_true", help="Only the in-process breakdown.")
    args = parser.parse_args()
    for n in args.sizes:
        db = build_db(n)
        if not args.skip_load:
            run_load(db, n, args.requests, args.clients)
        # On a worker thread, as the server runs a query (uvicorn's thread pool).
        with ThreadPoolExecutor(1) as pool:
            stages = pool.submit(breakdown, db).result()
        parts = ", ".join(f"{k} {v:.2f} ms" for k, v in stages.items())
        print(f"  n={n:,}: one query in-process (median, one worker thread): {parts}")


def run_load(db: Path, n: int, requests: int, clients: int) -> None:
    """Start ``semhash serve`` on ``db`` and print the latency and throughput of the load loop."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "semhash.cli", "serve", "--db", str(db), "--port", str(port), "--device", "cpu"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        import httpx

        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(base + "/api/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start: {server.stderr.read() if server.stderr else ''}")
            time.sleep(0.5)
        load(base, 50, clients)  # warm-up (faiss loaded, caches filled)
        latencies, wall, errors = load(base, requests, clients)
    finally:
        server.terminate()
        server.wait(30)
    lat = np.array(latencies) * 1000
    print(
        f"n={n:,}: {len(lat)} requests, {clients} clients, errors {errors}: "
        f"p50 {np.percentile(lat, 50):.1f} ms, p99 {np.percentile(lat, 99):.1f} ms, {len(lat) / wall:.1f} queries/s"
    )


if __name__ == "__main__":
    main()
