"""Stage 1 of benchmarks/bench_adapt.py: the frozen lower layers' token states of every document of a corpus.

The first window (``--max-seq-length`` tokens) of each post goes through the default encoder's embeddings
and its lower layers (all but the top ``--layers``) once; the states are saved as float16 (one array of
all tokens, plus offsets), so the benchmark re-embeds the corpus with adapted top layers without running
the frozen ones again. Exactly what ``semhash train --adapt`` computes for its training sample.

    .venv/bin/python -m benchmarks.datasets.adapt_cache     # 20 Newsgroups: ~20-30 min on a busy 2-core CPU, 1.5 GB
    .venv/bin/python -m benchmarks.datasets.adapt_cache --data .cache/debian/debian.jsonl --out .cache/debian/lower.npz

``--data`` is an eval JSONL (``{"id", "text", "labels", "split"}``, one document a line; default: the
stripped 20 Newsgroups of ``benchmarks/datasets/newsgroups.py``); the cache keeps its documents in file order.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.harness import CACHE
from semhash.adapt import first_windows, lower_states
from semhash.adapted import set_window
from semhash.embed import SentenceTransformerEncoder

DATA = CACHE / "20ng" / "20ng-stripped.jsonl"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--every", type=int, default=1, help="every Nth post only (a smoke test)")
    parser.add_argument("--out", type=Path, default=CACHE / "adapt" / "lower.npz")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--device", default="cpu", help="where the frozen layers run (cpu, cuda, ...)")
    parser.add_argument("--model", default=None, help="the base model (name or folder) [default: packaged]")
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    texts = [json.loads(line)["text"] for line in args.data.open(encoding="utf-8")]
    texts = texts[:: args.every]
    encoder = SentenceTransformerEncoder(args.model, device=args.device, max_windows=1)
    set_window(encoder, args.max_seq_length)
    windows = first_windows(encoder, texts)
    started = time.perf_counter()
    parts: list[torch.Tensor] = []
    chunk = 1024
    for start in range(0, len(windows), chunk):
        parts.extend(lower_states(encoder, windows[start : start + chunk], args.layers))
        print(f"{start + chunk}/{len(windows)} {time.perf_counter() - started:.0f} s", flush=True)
    lengths = np.array([p.shape[0] for p in parts])
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out.with_suffix(".states.npy"), torch.cat(parts).numpy())
    np.savez(args.out, offsets=offsets, layers=args.layers, max_seq_length=args.max_seq_length,
             seconds=time.perf_counter() - started)  # fmt: skip
    print(f"done: {len(parts)} windows, {offsets[-1]} tokens, {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
