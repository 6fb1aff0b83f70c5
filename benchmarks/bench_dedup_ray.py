"""``semhash dedup --engine ray`` against the local path at 10^5 documents: the same pairs and clusters, and the times.

Usage::

    SEMHASH_BENCH_CACHE=/work/bench-cache python -m benchmarks.bench_dedup_ray --docs 100000 --workers 2

Documents: mixtures of three real 20NG MiniLM embeddings of one of 20 k-means groups plus noise shaped like them
(``bench_dedup.topic_mixture``), 5% planted near copies (``plant_near_copies``), 1% exact copies (same text up to
case, same embedding); random 32-bit codes (the cells stage reads embeddings only). The real embeddings are the
first 4,096 rows of ``20ng/embeddings.npz`` (``dedup-ray/ng-partial.npz``, a copy of them taken while that file
was being computed, when it is absent).

Stages, each ``dedup_index`` at the defaults (the cells stage above 20,000 documents) in a fresh process:
``local``; ``ray`` (a local Ray session of ``--workers`` CPUs started by the run, its start included); ``ray,
killed``: the same with ``SEMHASH_TEST_KILL_AFTER=5`` (the sixth task kills its worker process once; Ray retries
it); ``ray already running``: the process starts Ray before the clock starts, the run joins it. Each run's kept
pairs (rows, cosines, Hamming distances) and clusters are compared with the local run's, bit for bit. Then, in
this process on one thread, the parts of the cells stage: k-means training, cell assignment, and the cells'
products (:func:`semhash.dedup.cells.cell_products` over every cell): the per-core verification throughput that
BENCHMARKS.md extrapolates from. Results: ``benchmarks/results/dedup_ray.json``; ``--paper`` recomputes the
on-paper figures for 10^8 and 10^9 from it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_dedup import plant_near_copies, topic_mixture
from benchmarks.harness import CACHE, ROOT

WORK = CACHE / "dedup-ray"
RESULTS = ROOT / "benchmarks" / "results" / "dedup_ray.json"
REAL_ROWS = 4096
GROUPS = 20
GREEK = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]
GREEK += ["lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau"]


def real_embeddings() -> np.ndarray:
    """The first ``REAL_ROWS`` 20NG MiniLM embeddings (unit float32)."""
    full = CACHE / "20ng" / "embeddings.npz"
    source = full if full.exists() else WORK / "ng-partial.npz"
    return np.load(source)["embeddings"][:REAL_ROWS].astype(np.float32)


def mixture(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """``n`` texts and unit embeddings (see the module docstring)."""
    import faiss

    real = real_embeddings()
    km = faiss.Kmeans(real.shape[1], GROUPS, niter=20, seed=1, spherical=True)
    km.train(real)
    group = km.index.search(real, 1)[1].ravel()
    rng = np.random.default_rng(seed)
    emb, _, shaped = topic_mixture(real, group, n, rng)
    plant_near_copies(emb, shaped, rng)
    picks = rng.integers(0, len(GREEK), (n, 8))
    texts = [f"doc {k} " + " ".join(GREEK[p] for p in row) for k, row in enumerate(picks.tolist())]
    exact = rng.choice(n, n // 100, replace=False)
    for k, other in zip(exact.tolist(), rng.integers(0, n, len(exact)).tolist(), strict=True):
        texts[k], emb[k] = texts[other].upper(), emb[other]
    return texts, emb


def build(n: int) -> tuple[Path, np.ndarray]:
    """The store of :func:`mixture` (cached: deterministic) and its embeddings."""
    from semhash.codes import to_sql_int
    from semhash.store import Store
    from semhash.types import SourceDocument

    texts, emb = mixture(n)
    db = WORK / f"mixture-{n}.db"
    if db.exists():
        with Store.open(db) as store:
            if store.count(encoded_only=True) == n:
                return db, emb
        db.unlink()
    WORK.mkdir(parents=True, exist_ok=True)
    codes = np.random.default_rng(1).integers(0, 2**32, n)
    with Store.open(db, create=True) as store:
        store.check_embedding_model("sentence-transformers/all-MiniLM-L6-v2", emb.shape[1])
        for start in range(0, n, 20_000):
            docs = [
                SourceDocument(f"/mix/{k:07d}.txt", 0, texts[k], hashlib.sha256(texts[k].encode()).hexdigest(), k)
                for k in range(start, min(start + 20_000, n))
            ]
            ids = store.upsert_documents(docs, emb[start : start + len(docs)])
            store.set_codes(ids, [to_sql_int(int(c), 32) for c in codes[start : start + len(docs)]], [0.0] * len(ids))
        store.save_model(b"", bits=32, input_dim=emb.shape[1], config={}, stats={}, trained_on=n)
    return db, emb


RUN = """
import json, pickle, sys, time
from semhash.dedup import DedupEngine, DedupOptions, dedup_index
db, engine, workers, out, warm = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5] == "warm"
if warm:  # Ray already running: the run joins the session instead of starting one
    import ray
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
t = time.perf_counter()
r = dedup_index(db, DedupOptions(), DedupEngine(engine, workers=workers if engine == 'ray' else None))
wall = time.perf_counter() - t
hwm = [round(int(x.split()[1]) / 1024) for x in open('/proc/self/status') if x.startswith('VmHWM')][0]
with open(out, 'wb') as f:
    pickle.dump({'left': r.left, 'right': r.right, 'cosine': r.cosine, 'hamming': r.hamming,
                 'clusters': r.clusters}, f)
s = r.stats
print(json.dumps({'seconds': round(wall, 2), 'stage': s.stage, 'engine': s.engine, 'read': round(s.seconds_read, 2),
                  'candidates_stage': round(s.seconds_candidates, 2), 'cluster': round(s.seconds_cluster, 2),
                  'products': s.candidates, 'kept_pairs': len(r.left), 'duplicates': len(r.duplicates),
                  'clusters': len(r.clusters), 'cells': s.cells, 'peak_rss_mib': hwm}))
"""


def timed(db: Path, engine: str, workers: int, kill: bool, warm: bool = False) -> tuple[dict, dict]:
    """One ``dedup_index`` run in a fresh process: its stats row and its pairs and clusters."""
    import pickle

    out = WORK / f"run-{engine}.pkl"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("SEMHASH_TEST_KILL_AFTER", None)
    if kill:
        env["SEMHASH_TEST_KILL_AFTER"] = "5"
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(db), engine, str(workers), str(out), "warm" if warm else "cold"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    row = json.loads(done.stdout.strip().splitlines()[-1])
    row["load_after"] = round(os.getloadavg()[0], 2)
    with out.open("rb") as f:
        result = pickle.load(f)
    out.unlink()
    return row, result


def same(got: dict, want: dict) -> bool:
    """Pairs (rows, cosines bit for bit, Hamming) and clusters identical."""
    arrays = all(np.array_equal(got[k], want[k]) for k in ("left", "right", "cosine", "hamming"))
    return arrays and got["clusters"] == want["clusters"]


def throughput(emb: np.ndarray, floor: float) -> dict:
    """The cells stage's parts on one thread: k-means, assignment, and every cell's products (one tree)."""
    from threadpoolctl import threadpool_limits

    from semhash.dedup import cells

    x = np.ascontiguousarray(emb, dtype=np.float32)
    with threadpool_limits(limits=1):
        t = time.perf_counter()
        tree = cells.CellTree.train(x, cells.cell_count(len(x)), 0)
        train = time.perf_counter() - t
        t = time.perf_counter()
        near = tree.nearest(x, cells.PROBES)
        assign = time.perf_counter() - t
        home = near[:, 0]
        order = np.argsort(home, kind="stable")
        bounds = np.searchsorted(home[order], np.arange(tree.cells + 1))
        other = near[:, 1:].ravel()
        rows_other = np.repeat(np.arange(len(x)), near.shape[1] - 1)
        by = np.argsort(other, kind="stable")
        other, rows_other = other[by], rows_other[by]
        other_bounds = np.searchsorted(other, np.arange(tree.cells + 1))
        t = time.perf_counter()
        products = found = 0
        for c in range(tree.cells):
            work = cells.CellWork(
                c, order[bounds[c] : bounds[c + 1]], rows_other[other_bounds[c] : other_bounds[c + 1]]
            )
            if len(work.members):
                f = cells.cell_products(x, work, floor)
                products += f.products
                found += len(f.own_i) + len(f.visit_i)
        verify = time.perf_counter() - t
        # What the cells tasks of this tree would be sent: each batch's distinct rows (members and visitors).
        from semhash.dedup.distributed import TASK_ROWS, _cell_batches

        work = (
            cells.CellWork(c, order[bounds[c] : bounds[c + 1]], rows_other[other_bounds[c] : other_bounds[c + 1]])
            for c in range(tree.cells)
            if bounds[c + 1] > bounds[c]
        )
        sent_rows = sum(len(batch.rows) for batch in _cell_batches(x, work, floor, TASK_ROWS))
    groups = len(tree.groups)
    # Assignment: every group centroid, then the cells of the GROUP_PROBES nearest groups (about cells / groups each).
    assign_dots = len(x) * (groups + cells.GROUP_PROBES * tree.cells / groups)
    return {
        "documents": len(x),
        "cells": tree.cells,
        "groups": groups,
        "assign_dots_per_document": round(assign_dots / len(x)),
        "assign_dots_per_core_second": round(assign_dots / assign),
        "kmeans_seconds": round(train, 2),
        "assign_seconds": round(assign, 2),
        "products": products,
        "pairs_found": found,
        "products_seconds": round(verify, 2),
        "products_per_core_second": round(products / verify),
        "products_per_document": round(products / len(x), 1),
        "cells_task_rows_sent_per_document": round(sent_rows / len(x), 3),
        "load_after": round(os.getloadavg()[0], 2),
    }


# -- on paper: 10^8 and 10^9 documents, from the measured rates and these assumptions ---------------------------
DIM = 384
#: Candidate products a document a tree: measured 125 at 10^5 (this run) and 170 at 10^6 ("Dedup at scale":
#: 3.4 x 10^8 for 2 trees); cells stay ~50 documents, the largest grows slowly: 200 assumed at 10^8-10^9.
PRODUCTS_PER_DOC_TREE = 200
#: Kept pairs a document a tree as found (both sides): 0.056 measured here; a crawl with many copies finds more,
#: and the pair budget caps it at 50 (CELL_PAIR_BUDGET).
PAIRS_PER_DOC_TREE = (0.056, 50)
CORES_PER_NODE = 16
NODE_GBIT = 10  # each node's network, Gbit/s; the driver sends every payload
NODES = (10, 100)


def on_paper(measured: dict) -> dict:
    """Memory, shuffle bytes and hours at 10^8 and 10^9 from ``measured`` (``throughput_one_tree``, ``runs``)."""
    from semhash.dedup import cells

    t = measured["throughput_one_tree"]
    n0 = t["documents"]
    read_per_doc = measured["runs"]["local"]["read"] / n0
    out = {}
    for n in (10**8, 10**9):
        n_cells = n / cells.CELL_SIZE
        groups = np.sqrt(n_cells)
        trees = cells.TREES
        assign_dots = trees * n * (groups + cells.GROUP_PROBES * n_cells / groups)
        products = trees * n * PRODUCTS_PER_DOC_TREE
        core_hours = {
            "assign": assign_dots / t["assign_dots_per_core_second"] / 3600,
            "products": products / t["products_per_core_second"] / 3600,
        }
        # k-means: sample 16 a cell, each point against its group's cells, 6 rounds: grows as n^1.5 (one thread).
        train_hours = trees * t["kmeans_seconds"] * (n / n0) ** 1.5 / 3600
        row_bytes = {"float32": 4 * DIM, "float16": 2 * DIM}
        # Assignment blocks send each row once; cells tasks each batch's distinct rows (measured per document).
        per_doc = 1 + t.get("cells_task_rows_sent_per_document", 2.0)
        sent = {k: trees * per_doc * n * b for k, b in row_bytes.items()}
        back = {
            f"pairs at {p} a document a tree": trees * n * (16 + p * 20) for p in PAIRS_PER_DOC_TREE
        }  # 2 int64 nearest cells + 20-byte pairs (2 int64 rows + float32)
        driver = {f"embeddings {k}": n * b for k, b in row_bytes.items()} | {
            "ids, codes, text hashes, lengths, mtimes (8 B each)": 40 * n,
            "nearest cells, one tree at a time (2 x int64)": 16 * n,
            "cell centroids float32, all trees": trees * n_cells * 4 * DIM,
        }
        hours = {}
        for nodes in NODES:
            spread = (core_hours["assign"] + core_hours["products"]) / (nodes * CORES_PER_NODE)
            network = sent["float32"] / (NODE_GBIT / 8 * 1e9) / 3600
            hours[f"{nodes} nodes"] = {
                "ray tasks (assign + products)": round(spread, 2),
                "driver network (float32 payloads)": round(network, 2),
                "driver read of the store": round(read_per_doc * n / 3600, 2),
                "driver k-means training (one thread)": round(train_hours, 1),
            }
        out[f"{n:.0e}"] = {
            "cells": int(n_cells),
            "core_hours": {k: round(v, 1) for k, v in core_hours.items()},
            "sent_gb": {k: round(v / 1e9) for k, v in sent.items()},
            "back_gb": {k: round(v / 1e9, 1) for k, v in back.items()},
            "driver_gb": {k: round(v / 1e9, 1) for k, v in driver.items()},
            "worker_task_mb": {
                "cells task payload (TASK_ROWS rows, float32)": round(20_000 * 4 * DIM / 1e6),
                "assign task payload (ASSIGN_BLOCK rows, float32)": round(cells.ASSIGN_BLOCK * 4 * DIM / 1e6),
                "one tree's centroids, once per node (float32)": round(n_cells * 4 * DIM / 1e6),
            },
            "hours": hours,
        }
    return out


def main() -> None:
    """Build, run the three stages, compare, measure the throughput, write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--paper", action="store_true", help="only recompute the on-paper figures from the results")
    args = parser.parse_args()
    if args.paper:
        report = json.loads(RESULTS.read_text())
        report["on_paper"] = on_paper(report)
        RESULTS.write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps(report["on_paper"], indent=2))
        return
    started = time.perf_counter()
    db, emb = build(args.docs)
    print(f"store of {args.docs} documents ready in {time.perf_counter() - started:.0f} s", flush=True)
    report: dict = {"documents": args.docs, "workers": args.workers, "load_before": round(os.getloadavg()[0], 2)}
    local, want = timed(db, "local", args.workers, kill=False)
    print("local", local, flush=True)
    runs = {"local": local}
    for name, kill, warm in (("ray", False, False), ("ray, killed", True, False), ("ray already running", False, True)):
        row, got = timed(db, "ray", args.workers, kill, warm)
        row["identical_to_local"] = same(got, want)
        runs[name] = row
        print(name, row, flush=True)
    report["runs"] = runs
    report["throughput_one_tree"] = throughput(emb, 0.8)
    print("throughput", report["throughput_one_tree"], flush=True)
    report["on_paper"] = on_paper(report)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
