"""Load test of ``semhash serve``'s query endpoint on loopback, at 10^5 and 10^6 documents.

Each database holds a real hashing model (trained by ``semhash index`` on ``data/sample`` with the packaged
model; its exported runtime beside it) plus synthetic documents written straight into the store: random unit
embeddings and random codes (what a query's rerank reads and what the Hamming stage scans have the real sizes;
the texts are short). The query texts are real and distinct.

Servers run as subprocesses, one per *variant* of the serving process's thread settings, all started before
the load; ``clients`` threads (each one keep-alive connection, as a browser or an HTTP client library keeps)
send ``GET /api/query`` in blocks that rotate over the variants, so every variant sees the same background
load (this machine is shared). Per variant: p50 / p99 latency and queries per second. Then, in a subprocess
with the same settings, one query is timed stage by stage (embedding, hashing, search) to show what dominates.

    .venv/bin/python -m benchmarks.bench_serve --sizes 100000 --requests 1000 --clients 1
    .venv/bin/python -m benchmarks.bench_serve --sizes 100000 --requests 1000 --clients 4 --variants shipped,before

Variants (only the thread settings differ; the code is the same):

* ``shipped``: ``semhash serve`` as it is (one BLAS thread, onnxruntime not spinning, default intra-op threads).
* ``before``: the settings before issue 9's serving work: BLAS on every core, onnxruntime spinning.
* ``ort1``: as shipped, with one onnxruntime intra-op thread.
* ``spin``: as shipped, with onnxruntime spinning (BLAS still one thread).

``--modes semantic,hybrid`` sends each variant's requests in every ranking mode (``mode=`` in the query
string, rotating in the same blocks: one server per variant serves them all). ``--texts 20ng`` gives the
synthetic documents texts of realistic length and vocabulary (the 20 Newsgroups posts cycled, each with its
copy number) instead of ``synthetic document N``, so the keyword index that ``hybrid`` reads has real
posting lists (cached as ``nN-20ng.db``).

Databases are cached under ``.cache/bench_serve/`` (a 10^6 database takes ~1.6 GB, mostly embeddings).
"""

from __future__ import annotations

import argparse
import functools
import http.client
import itertools
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks.harness import CACHE as WORK
from benchmarks.harness import ROOT

CACHE = WORK / "bench_serve"
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
VARIANTS = ("shipped", "before", "ort1", "spin")


def query_text(i: int) -> str:
    """The ``i``-th query: a real one with a counter, so no two requests embed the same text."""
    return f"{QUERIES[i % len(QUERIES)]} ({i})"


def synthetic_texts(kind: str, lo: int, count: int) -> list[str]:
    """Texts of synthetic documents ``lo`` to ``lo + count``: ``short`` (``synthetic document N``) or ``20ng``.

    ``20ng``: the stripped 20 Newsgroups posts cycled, each with its copy number (no two texts equal).
    """
    if kind == "short":
        return [f"synthetic document {lo + j}" for j in range(count)]
    posts = _posts()
    return [f"{posts[i % len(posts)]}\n(copy {i // len(posts)})" for i in range(lo, lo + count)]


@functools.cache
def _posts() -> list[str]:
    from benchmarks.datasets.newsgroups import read_posts

    return [post.text for post in read_posts()]


def build_db(n: int, texts: str = "short") -> Path:
    """A database with the sample corpus (real model) plus synthetic documents up to ``n`` (:func:`synthetic_texts`)."""
    from semhash.runtime import runtime_folder
    from semhash.store import Store
    from semhash.types import SourceDocument

    name = f"n{n}" if texts == "short" else f"n{n}-{texts}"
    db = CACHE / f"{name}.db"
    tmp = CACHE / f"{name}.tmp.db"
    if db.exists():
        # A database cached by an older version of this script left its runtime folder at the temporary
        # name, so its server silently ran the torch path: move it where the codec looks.
        if runtime_folder(tmp).is_dir() and not runtime_folder(db).exists():
            runtime_folder(tmp).rename(runtime_folder(db))
        return db
    CACHE.mkdir(parents=True, exist_ok=True)
    for leftover in CACHE.glob(f"{name}.tmp.db*"):
        shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    subprocess.run(
        [sys.executable, "-m", "semhash.cli", "index", str(ROOT / "data" / "sample"), "--db", str(tmp),
         "--device", "cpu"],
        check=True,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    with Store.open(tmp) as store:
        dim = int(store.get_meta("embedding_dim") or 0)
        start = store.count()
        chunk = 50_000
        for lo in range(start, n, chunk):
            count = min(chunk, n - lo)
            emb = rng.standard_normal((count, dim)).astype(np.float32)
            emb /= np.linalg.norm(emb, axis=1, keepdims=True)
            docs = [SourceDocument(f"synthetic/{lo + j}.txt", 0, text, f"h{lo + j}", 0.0)
                    for j, text in enumerate(synthetic_texts(texts, lo, count))]  # fmt: skip
            ids = store.upsert_documents(docs, emb)
            codes = rng.integers(0, 2**32, size=count, dtype=np.int64)  # 32-bit codes are stored unsigned
            store.set_codes(ids, codes.tolist(), [0.0] * count)
            print(f"  {lo + count:,} documents", file=sys.stderr)
    # The caches (faiss index, rerank vectors) hold the sample corpus's codes only: rebuilt on first use.
    for suffix in (".faiss", ".faiss.json", ".vectors", ".vectors.ids", ".vectors.json"):
        Path(f"{tmp}{suffix}").unlink(missing_ok=True)
    # The runtime folder holds the models, which the synthetic rows do not change: it goes with the database.
    runtime_folder(tmp).rename(runtime_folder(db))
    tmp.rename(db)
    for suffix in ("-wal", "-shm"):
        if Path(f"{tmp}{suffix}").exists():
            Path(f"{tmp}{suffix}").rename(f"{db}{suffix}")
    return db


def apply_variant(variant: str) -> None:
    """Set this process's thread settings as ``variant`` has them (before any model is loaded)."""
    import semhash.runtime.onnx_encoder as onnx_encoder
    from semhash.serve import limit_blas_threads

    if variant in ("before", "spin"):
        onnx_encoder.SPINNING = "1"
    if variant == "ort1":
        onnx_encoder.default_threads = lambda: 1  # type: ignore[assignment]
    if variant != "before":
        limit_blas_threads()


def serve_variant(db: Path, port: int, variant: str) -> None:
    """Run ``semhash serve`` on ``db`` with ``variant``'s thread settings (the server subprocess)."""
    import semhash.serve.server as serve_module

    apply_variant(variant)
    if variant == "before":
        serve_module.limit_blas_threads = lambda: None  # what serve() did before issue 9's change
    serve_module.serve(db, port=port, device="cpu")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Client:
    """One keep-alive HTTP/1.1 connection (``http.client``: the least client-side work in Python)."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def query(self, text: str, k: int = 10, mode: str | None = None) -> tuple[int, dict[str, float]]:
        """Status and the server's stages (ms, from its ``Server-Timing`` header) of one query.

        ``mode``: the ranking (``None``: the server's default).
        """
        params: dict[str, str | int] = {"q": text, "k": k}
        if mode:
            params["mode"] = mode
        self.connection.request("GET", "/api/query?" + urllib.parse.urlencode(params))
        response = self.connection.getresponse()
        response.read()
        return response.status, parse_server_timing(response.getheader("Server-Timing") or "")

    def close(self) -> None:
        """Close the connection."""
        self.connection.close()


def parse_server_timing(value: str) -> dict[str, float]:
    """``{"code": 4.1, "search": 3.2, ...}`` from ``code;dur=4.1, search;dur=3.2``."""
    stages = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        name, _, dur = part.partition(";dur=")
        stages[name] = float(dur)
    return stages


def start_servers(db: Path, variants: list[str]) -> dict[str, tuple[subprocess.Popen, int]]:
    """One server per variant, each answering ``/api/health`` before this returns."""
    servers = {}
    for variant in variants:
        port = free_port()
        command = [sys.executable, __file__, "--serve-variant", variant, "--db", str(db), "--port", str(port)]
        servers[variant] = (subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), port)
    for variant, (server, port) in servers.items():
        deadline = time.monotonic() + 300
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/api/health")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                stop_servers(servers)
                err = server.stderr.read().decode(errors="replace") if server.stderr else ""
                raise SystemExit(f"server {variant} did not start: {err[-2000:]}")
            time.sleep(0.5)
    return servers


def stop_servers(servers: dict[str, tuple[subprocess.Popen, int]]) -> None:
    for server, _ in servers.values():
        server.terminate()
    for server, _ in servers.values():
        server.wait(30)


def run_load(
    db: Path, variants: list[str], requests: int, clients: int, block: int, modes: Sequence[str | None] = (None,)
) -> dict[str, dict[str, float]]:
    """``requests`` queries per variant and mode from ``clients`` threads, in rotating blocks of ``block`` requests.

    Results are keyed by variant, or ``variant/mode`` when ``modes`` names modes (``None``: the default).
    """
    from semhash.search import Searcher

    with Searcher(db):  # the caches (faiss index, rerank vectors) written once, not by every server at once
        pass
    servers = start_servers(db, sorted(set(variants)))
    targets = {(f"{v}/{m}" if m else v): (v, m) for v in variants for m in modes}
    variants = list(targets)  # from here on, a "variant" is a (server, mode) pair
    try:
        connections = {t: [Client(servers[v][1]) for _ in range(clients)] for t, (v, _) in targets.items()}
        latencies: dict[str, list[float]] = {v: [] for v in variants}
        timings: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
        walls = dict.fromkeys(variants, 0.0)
        errors = dict.fromkeys(variants, 0)
        counter = iter(range(10**9))
        lock = threading.Lock()

        def client(connection: Client, quota: int, out: list[tuple[float, dict[str, float]]], mode: str | None) -> int:
            # The server closes a connection idle for 5 s (uvicorn's keep-alive timeout), as while the other
            # variants had their blocks: start each block on a fresh one (one loopback connect, ~0.1 ms).
            connection.close()
            bad = 0
            for _ in range(quota):
                with lock:
                    i = next(counter)
                t0 = time.perf_counter()
                status, stages = connection.query(query_text(i), mode=mode)
                out.append((time.perf_counter() - t0, stages))
                bad += status != 200
            return bad

        def send(variant: str, count: int, record: bool) -> None:
            quotas = [count // clients + (j < count % clients) for j in range(clients)]
            out: list[tuple[float, dict[str, float]]] = []
            t0 = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                bad = sum(
                    pool.map(client, connections[variant], quotas, [out] * clients, [targets[variant][1]] * clients)
                )
            if record:
                walls[variant] += time.perf_counter() - t0
                latencies[variant].extend(seconds for seconds, _ in out)
                timings[variant].extend(stages for _, stages in out)
                errors[variant] += bad

        for variant in variants:
            send(variant, 50, record=False)  # warm-up: caches loaded, connections open
        load = os.getloadavg()[0]
        for start in range(0, requests, block):
            for variant in variants:
                send(variant, min(block, requests - start), record=True)
        for conns in connections.values():
            for connection in conns:
                connection.close()
    finally:
        stop_servers(servers)
    results = {}
    for variant in variants:
        lat = np.array(latencies[variant]) * 1000
        names = ("code", "search", "json")
        stages = {name: np.array([t.get(name, np.nan) for t in timings[variant]]) for name in names}
        inside = sum(stages.values())
        results[variant] = {
            "p50": float(np.percentile(lat, 50)),
            "p99": float(np.percentile(lat, 99)),
            "qps": len(lat) / walls[variant],
            "errors": errors[variant],
            "load_before": load,
            "load_after": os.getloadavg()[0],
            # the server's stages, request by request (Server-Timing); "outside" is the rest of the latency:
            # HTTP parsing and writing, FastAPI, the thread-pool hop, the client, waiting for a core
            **{name: float(np.nanmedian(v)) for name, v in stages.items()},
            "outside": float(np.nanmedian(lat - inside)),
        }
    return results


def breakdown(db: Path, repeats: int = 200) -> dict[str, float]:
    """Median milliseconds of each stage of one query, in this process, on one worker thread (as served).

    ``embed`` and ``hash`` are the query text's embedding and code; ``search`` is
    :meth:`Searcher.search_embedding` (candidates, rerank, row reads, hits); ``json`` is the response body;
    ``total`` is their sum, query by query. Each stage is timed twice: wall clock, and the CPU time of the
    whole process (``*_cpu``: every thread, onnxruntime's included), which is what the stage costs whatever
    else runs on the machine; on a busy machine the wall clock also holds the waits for a free core.
    """
    from semhash.search import QueryOptions, Searcher

    names = ("embed", "hash", "search", "json", "total")
    stages: dict[str, list[float]] = {name: [] for name in names} | {f"{name}_cpu": [] for name in names}
    with Searcher(db, device="cpu") as searcher:
        searcher.query(QUERIES[0])  # warm up: models loaded
        runtime = searcher.runtime
        for i in range(repeats):
            text = query_text(i)
            marks = [(time.perf_counter(), time.process_time())]
            embedding = np.asarray(searcher.encoder.encode([text]), dtype=np.float32)
            marks.append((time.perf_counter(), time.process_time()))
            code = searcher.encode(embedding, [text])[0]
            marks.append((time.perf_counter(), time.process_time()))
            hits = searcher.search_embedding(embedding[0], code, QueryOptions(k=10))
            marks.append((time.perf_counter(), time.process_time()))
            json.dumps({"query": text, "hits": [h.to_dict() for h in hits]})
            marks.append((time.perf_counter(), time.process_time()))
            spans = [(b[0] - a[0], b[1] - a[1]) for a, b in itertools.pairwise(marks)]
            spans.append((marks[-1][0] - marks[0][0], marks[-1][1] - marks[0][1]))
            for name, (wall, cpu) in zip(names, spans, strict=True):
                stages[name].append(wall)
                stages[f"{name}_cpu"].append(cpu)
            time.sleep(0.005)  # requests arrive apart, as in the load loop with one client
    out = {k: statistics.median(v) * 1000 for k, v in stages.items()}
    out["onnx"] = float(runtime == "onnx")
    return out


def breakdown_variant(db: Path, variant: str) -> None:
    """Print the breakdown of one variant as JSON (the subprocess of ``--breakdown-variant``)."""
    apply_variant(variant)
    with ThreadPoolExecutor(1) as pool:  # a worker thread, as uvicorn's thread pool runs a query
        print(json.dumps(pool.submit(breakdown, db).result()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--requests", type=int, default=1000, help="Recorded requests per variant.")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--block", type=int, default=50, help="Requests in a row to one variant.")
    parser.add_argument("--variants", default="shipped", help=f"Comma-separated, of {', '.join(VARIANTS)}.")
    parser.add_argument("--modes", default="", help="Comma-separated ranking modes to send (default: the server's).")
    parser.add_argument("--texts", choices=("short", "20ng"), default="short", help="The synthetic documents' texts.")
    parser.add_argument("--skip-load", action="store_true", help="Only the in-process breakdown.")
    parser.add_argument("--skip-breakdown", action="store_true", help="Only the load (the servers' own timings).")
    parser.add_argument("--serve-variant", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--breakdown-variant", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_variant:
        return serve_variant(args.db, args.port, args.serve_variant)
    if args.breakdown_variant:
        return breakdown_variant(args.db, args.breakdown_variant)
    variants = args.variants.split(",")
    if unknown := set(variants) - set(VARIANTS):
        parser.error(f"unknown variants {sorted(unknown)}: pick from {', '.join(VARIANTS)}")
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the start")
    for n in args.sizes:
        db = build_db(n, args.texts)
        if not args.skip_load:
            modes = [m for m in args.modes.split(",") if m] or [None]
            results = run_load(db, variants, args.requests, args.clients, args.block, modes)
            for variant, r in results.items():
                print(
                    f"n={n:,} {variant}: {args.requests} requests, {args.clients} clients, errors {r['errors']}: "
                    f"p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms, {r['qps']:.1f} queries/s "
                    f"(load {r['load_before']:.1f} -> {r['load_after']:.1f})"
                )
                print(
                    f"  served stages (median ms, Server-Timing): code {r['code']:.2f} (embed + hash + lock wait), "
                    f"search {r['search']:.2f}, json {r['json']:.2f}, outside the endpoint {r['outside']:.2f}"
                )
        for variant in [] if args.skip_breakdown else variants:
            command = [sys.executable, __file__, "--breakdown-variant", variant, "--db", str(db)]
            stages = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
            runtime = "onnx" if stages.pop("onnx") else "torch (no runtime folder!)"
            parts = ", ".join(f"{k} {v:.2f}/{stages[k + '_cpu']:.2f}" for k, v in stages.items() if "_cpu" not in k)
            print(f"  n={n:,} {variant}: one query in-process ({runtime}, median ms wall/CPU, worker thread): {parts}")
        print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
