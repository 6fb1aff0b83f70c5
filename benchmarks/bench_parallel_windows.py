"""Issue 20: windows run at once on one intra-op thread each, against one at a time on every core.

Run from the repository root::

    .venv/bin/python -m benchmarks.bench_parallel_windows --out benchmarks/results/parallel_windows.json

The exported encoder (``OnnxEncoder``, one window per ``session.run``) embeds the same windows, round by
round in one process, three ways: one window at a time with every core as intra-op threads (what indexing
did before, and what a query does), one at a time on one thread, and ``workers`` windows at once, each on
its own Python thread with one intra-op thread (what indexing does now: ``onnx_encoder(..., bulk=True)``).
Two sets: ``--posts`` 20 Newsgroups test posts (mostly one short window each) and ``--long`` full windows of
a long text (default: dpkg's changelog). Every precision (fp32, int8, and bf16 on OpenVINO). Also checks the
embeddings agree, within a precision and against fp32 (``min_cosine_to_fp32``).
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import time
from pathlib import Path

import numpy as np

from benchmarks.datasets.newsgroups import DEFAULT_SOURCE, read_posts
from benchmarks.harness import write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=300)
    parser.add_argument("--long", type=Path, default=Path("/usr/share/doc/dpkg/changelog.gz"))
    parser.add_argument("--long-windows", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from semhash.config import DEFAULT_MODEL
    from semhash.runtime import OnnxEncoder
    from semhash.runtime.cache import cached_encoder
    from semhash.runtime.onnx_encoder import default_threads

    cores = default_threads()
    posts = [p.text for p in read_posts(args.source) if p.split == "test"]
    texts = random.Random(0).sample(posts, args.posts)
    opener = gzip.open if args.long.suffix == ".gz" else open
    with opener(args.long, "rt", encoding="utf-8", errors="replace") as handle:
        long_text = handle.read()
    results: dict[str, dict[str, object]] = {}
    reference: dict[str, np.ndarray] = {}  # fp32's embeddings of each set, one at a time
    for precision in ("fp32", "int8", "bf16"):
        manifest = cached_encoder(DEFAULT_MODEL, precision)
        ways = {
            f"one at a time, {cores} intra-op threads": OnnxEncoder(manifest, threads=cores),
            "one at a time, 1 thread": OnnxEncoder(manifest, threads=1),
            f"{cores} at once, 1 thread each": OnnxEncoder(manifest, workers=cores),
        }
        first = next(iter(ways.values()))
        sets = {
            "posts": [w for t in texts for w, _ in first.windows(t)],
            "long": [w for w, _ in first.windows(long_text)][: args.long_windows],
        }
        for set_name, pieces in sets.items():
            seconds: dict[str, list[float]] = {name: [] for name in ways}
            vectors = {}
            for _ in range(args.rounds):
                for name, encoder in ways.items():
                    started = time.perf_counter()
                    vectors[name] = encoder.embed_windows(pieces)
                    seconds[name].append(time.perf_counter() - started)
            baseline = min(seconds[next(iter(ways))])
            agree = min(float((vectors[name] * vectors[next(iter(ways))]).sum(axis=1).min()) for name in ways)
            reference.setdefault(set_name, vectors[next(iter(ways))])
            to_fp32 = min(float((vectors[name] * reference[set_name]).sum(axis=1).min()) for name in ways)
            row = {
                name: {"windows_per_s": len(pieces) / min(s), "x_baseline": baseline / min(s), "seconds": s}
                for name, s in seconds.items()
            }
            results[f"{precision} {set_name}"] = {
                "windows": len(pieces),
                "ways": row,
                "min_cosine": agree,
                "min_cosine_to_fp32": to_fp32,
            }
            load = os.getloadavg()[0]
            print(f"{precision} {set_name} ({len(pieces)} windows, load {load:.2f}); min cosine {agree:.7f}", end="")
            print(f", to fp32 {to_fp32:.6f}")
            for name, s in seconds.items():
                print(f"  {name}: {len(pieces) / min(s):.1f} windows/s ({baseline / min(s):.2f}x)", flush=True)
    if args.out:
        write_result(args.out, {"cores": cores, "results": results, "numpy": np.__version__})


if __name__ == "__main__":
    main()
