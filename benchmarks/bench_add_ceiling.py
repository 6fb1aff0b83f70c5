"""Issue 20's add target, bounded: how fast can the 400 added posts be *embedded*, at each window cap?

``bench_index_20ng.py`` times ``semhash index add/`` (400 test posts added to an index of the train split)
against ``SentenceTransformer.encode`` of the same texts, which embeds each post's first 256 tokens only. The
index embeds every window of a post (up to ``--max-windows``, default 64). This script measures the part
of that run no pipeline work can remove, the encoder's own time, in one process:

- ``SentenceTransformer.encode`` of the texts (the packaged model, batches of 32, truncation at 256 tokens),
  run first and last; its mean is the baseline;
- semhash's default encoder for an index on this machine (bf16 on a CPU with AMX, else int8; as many
  windows at once as there are cores), ``encode_windows`` of the same texts (windows cut, embedded, pooled,
  window vectors kept, as the index stores them), at each cap of ``--caps``: one warm-up run over the texts
  (every padded length's kernels compiled, which the index run pays once per process), then the best of two.

Each row's documents/s over the baseline's is a ceiling for ``semhash index``'s ratio at that cap: the index
run also starts a process, loads the encoder, reads files, writes SQLite and codes.

Then where the forward passes' time goes at the default cap: one window of each padded length timed alone
on one thread (ms, best of a few), each of the posts' windows costed by its length, and the share of that
cost in full-length windows and in windows after a post's first. Same seeded sample as
``bench_index_20ng.py`` (its ``--seed`` and ``--add``)::

    .venv/bin/python -m benchmarks.bench_add_ceiling --out benchmarks/results/add_ceiling.json
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path
from typing import Any

from benchmarks.datasets.newsgroups import DEFAULT_SOURCE, read_posts
from benchmarks.harness import write_result
from semhash.runtime.manifest import Manifest


def window_cost_shares(folder: Manifest, texts: list[str], cap: int) -> dict[str, Any]:
    """The default cap's windows costed one by one: the shares of full windows and of non-first windows."""
    import numpy as np

    from semhash.runtime import OnnxEncoder
    from semhash.runtime.openvino_runner import LENGTH_STEP

    encoder = OnnxEncoder(folder, workers=1, threads=1, max_windows=cap)
    full = encoder.max_seq_length
    step = LENGTH_STEP
    ms: dict[int, float] = {}
    for length in range(step, full + 1, step):
        row = [[101] + [1000] * (length - 2) + [102]]
        encoder._run(row)  # the shape's first run compiles its kernels
        times = []
        for _ in range(3):
            started = time.perf_counter()
            encoder._run(row)
            times.append(time.perf_counter() - started)
        ms[length] = 1000 * min(times)
    total = full_cost = after_first = 0.0
    windows = 0
    for spans in encoder._spans_of(texts):
        for i, (_, _, n_tokens) in enumerate(spans):
            padded = min(full, -(-(n_tokens + 2) // step) * step)
            cost = ms[padded]
            total += cost
            full_cost += cost if padded == full else 0.0
            after_first += cost if i else 0.0
            windows += 1
    return {
        "cap": cap,
        "windows": windows,
        "ms_by_length": ms,
        "full_share": float(np.float64(full_cost) / total),
        "after_first_share": float(np.float64(after_first) / total),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="the 20 Newsgroups jsonl.gz")
    parser.add_argument("--add", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--caps", default="64,16,8,4,2,1", help="--max-windows values to time")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    test = [p for p in read_posts(args.source) if p.split == "test"]
    random.Random(args.seed).shuffle(test)  # bench_index_20ng.py's draw: the same 400 posts
    texts = [p.text for p in test[: args.add]]

    from sentence_transformers import SentenceTransformer

    from semhash.config import DEFAULT_MODEL
    from semhash.embed import resolve_model
    from semhash.runtime import OnnxEncoder
    from semhash.runtime.cache import cached_encoder
    from semhash.runtime.onnx_encoder import default_threads
    from semhash.runtime.precision import default_cpu_precision

    model = SentenceTransformer(resolve_model(None)[1], device="cpu")
    model.encode(texts[:8])

    def st_encode() -> float:
        started = time.perf_counter()
        model.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
        return time.perf_counter() - started

    precision = default_cpu_precision()
    folder = cached_encoder(DEFAULT_MODEL, precision)
    caps = [int(c) for c in args.caps.split(",")]
    baseline = [st_encode()]
    rows: dict[str, dict[str, Any]] = {}
    for cap in caps:
        encoder = OnnxEncoder(folder, workers=default_threads(), max_windows=cap)
        encoder.encode_windows(texts)  # warm-up: every padded length's kernels compiled (a per-process cost)
        windows_before = encoder.stats.windows
        times = []
        for _ in range(2):
            started = time.perf_counter()
            encoder.encode_windows(texts)
            times.append(time.perf_counter() - started)
        seconds = min(times)
        rows[str(cap)] = {"seconds": seconds, "runs": times, "windows": (encoder.stats.windows - windows_before) // 2}
    baseline.append(st_encode())
    shares = window_cost_shares(folder, texts, caps[0])
    encode_rate = len(texts) / (sum(baseline) / len(baseline))
    runs = ", ".join(f"{s:.2f}" for s in baseline)
    print(f"{len(texts)} posts; encode {runs} s ({encode_rate:.1f} docs/s); semhash's encoder at {precision}, "
          f"{default_threads()} windows at once; load {os.getloadavg()[0]:.2f}")  # fmt: skip
    print("| --max-windows | windows | embed s | docs/s | x encode (ceiling of the add run) |")
    print("|---:|---:|---:|---:|---:|")
    for cap, row in rows.items():
        row["docs_per_s"] = len(texts) / row["seconds"]
        row["over_encode"] = row["docs_per_s"] / encode_rate
        cells = [cap, row["windows"], f"{row['seconds']:.2f}", f"{row['docs_per_s']:.1f}", f"{row['over_encode']:.2f}x"]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    ms = ", ".join(f"{length}: {cost:.1f}" for length, cost in shares["ms_by_length"].items())
    print(f"cap {caps[0]}: {shares['windows']} windows; ms a window alone by padded length: {ms}")
    print(f"share of the forward passes' time: full windows {shares['full_share']:.2f}, "
          f"windows after a post's first {shares['after_first_share']:.2f}")  # fmt: skip
    if args.out:
        write_result(
            args.out,
            {
                "posts": len(texts),
                "precision": precision,
                "workers": default_threads(),
                "encode_seconds": baseline,
                "encode_docs_per_s": encode_rate,
                "caps": rows,
                "window_cost_shares": shares,
            },
        )


if __name__ == "__main__":
    main()
