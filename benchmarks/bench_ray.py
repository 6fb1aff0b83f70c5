"""Benchmark of ``semhash index --engine ray`` against the single-process path, in one run.

Run from the repository root (needs the ``ray`` extra: ``pip install -e ".[ray]"``)::

    .venv/bin/python -m benchmarks.bench_ray --docs 500 --workers 2 --out benchmarks/results/ray.json

It writes ``--docs`` 20 Newsgroups posts (stripped as in benchmarks/datasets/newsgroups.py, one ``.txt`` file each)
and indexes them four times, each into a fresh database, on CPU, with the real default model:

1. ``local``: the single-process path (torch's own threads on every core), then ``local-1-thread``: the
   same with one torch thread, as each Ray actor runs (on a busy machine torch's threads spin against each
   other: this run tells the engine's effect from that one);
2. ``ray-cold``: ``--engine ray --workers N`` as a user runs it: Ray is started and stopped by the run;
3. ``ray-warm``: the same with Ray already running (started and timed by this script), as when
   joining a cluster with ``--address``: what remains is Ray Data's pipeline and the actors' model loads.

For each: the embedding phase's wall time (``embed_seconds``: the scan excluded, Ray's start-up and the
actors' model loads included) and documents per second; the engine's overhead as the ratio to the local
run; and, as a check, the smallest cosine between the local and Ray embeddings of the same document.
Training is cut to ``--epochs`` (it runs in the driver either way and is not what is compared).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import write_result


def write_posts(folder: Path, n: int) -> int:
    """Write the first ``n`` stripped 20 Newsgroups posts as text files; returns their total characters."""
    from benchmarks.datasets.newsgroups import read_posts

    folder.mkdir(parents=True, exist_ok=True)
    chars = 0
    for i, post in enumerate(read_posts()):
        if i == n:
            break
        (folder / f"{i:06d}.txt").write_text(post.text, encoding="utf-8")
        chars += len(post.text.strip())
    return chars


def embeddings_by_path(db: Path) -> dict[str, np.ndarray]:
    from semhash.store import Store

    with Store.open(db) as store:
        states = store.document_states()
        ids, vectors = store.embeddings([s[0] for s in states.values()])
    row = {int(i): k for k, i in enumerate(ids)}
    return {key[0]: vectors[row[state[0]]] for key, state in states.items()}


def run(name: str, db: Path, corpus: Path, epochs: int, **engine: object) -> dict:
    from semhash.ingest import IndexOptions, index_paths

    started = time.perf_counter()
    report = index_paths(db, [corpus], IndexOptions(device="cpu", epochs=epochs, **engine))  # type: ignore[arg-type]
    total = time.perf_counter() - started
    result = {
        "run": name,
        "documents": report.added,
        "embed_seconds": round(report.embed_seconds, 2),
        "docs_per_second": round(report.added / report.embed_seconds, 1),
        "total_seconds": round(total, 2),
        "load_average": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result), flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    import ray

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        chars = write_posts(root / "posts", args.docs)
        print(f"{args.docs} posts, {chars} characters, machine {platform.machine()} x{os.cpu_count()}", flush=True)
        local = run("local", root / "local.db", root / "posts", args.epochs)
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # what each Ray actor uses: separates Ray's effect from torch's threading
        try:
            local_1t = run("local-1-thread", root / "local1.db", root / "posts", args.epochs)
        finally:
            torch.set_num_threads(threads)
        cold = run("ray-cold", root / "cold.db", root / "posts", args.epochs, engine="ray", workers=args.workers)
        t0 = time.perf_counter()
        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
        ray_start = time.perf_counter() - t0
        try:
            warm = run("ray-warm", root / "warm.db", root / "posts", args.epochs, engine="ray", workers=args.workers)
        finally:
            ray.shutdown()
        reference = embeddings_by_path(root / "local.db")
        cosine = min(
            float(vector @ reference[path])
            for db in ("cold.db", "warm.db")
            for path, vector in embeddings_by_path(root / db).items()
        )
    summary = {
        "docs": args.docs,
        "characters": chars,
        "workers": args.workers,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, CPU only",
        "runs": [local, local_1t, cold, warm],
        "local_1_thread_over_local": round(local_1t["embed_seconds"] / local["embed_seconds"], 2),
        "ray_init_seconds": round(ray_start, 2),
        "ray_cold_over_local": round(cold["embed_seconds"] / local["embed_seconds"], 2),
        "ray_warm_over_local": round(warm["embed_seconds"] / local["embed_seconds"], 2),
        "ray_warm_docs_per_second_per_worker": round(warm["docs_per_second"] / args.workers, 1),
        "min_cosine_ray_vs_local": round(cosine, 6),
    }
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_result(args.out, summary, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
