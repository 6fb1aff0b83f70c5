"""Exploration for issue 22 part 3: the cell stage (:mod:`semhash.dedup.cells`) alone, on mixture embeddings.

Usage::

    OMP_NUM_THREADS=2 [TREES=T] [GP=G] python -m benchmarks.bench_dedup_range N [CELLS|-] [PROBES]

Embeddings as ``bench_dedup.py scale``'s mixtures (3 real posts of one newsgroup, Dirichlet weights, plus
0.6 x shaped Gaussian noise; 5% planted near copies at cosine uniform in [0.82, 0.99]), from the real
MiniLM embeddings in ``--folder``'s ``embeddings.npz`` (default ``.cache/20ng``). Prints one JSON line:
seconds of the stage, peak RSS (``VmHWM``, data generation included), cells, largest cell, cosines computed,
pairs kept, recall of planted copies and of the pairs all-pairs cosine accepts for 1,000 sampled documents.
``TREES`` and ``GP`` (group probes) override the stage's constants. What it showed (flat vs two-level cells,
probes, trees, PCA placement, threads): BENCHMARKS.md, "Dedup at scale".
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

import semhash.dedup.cells as cells_module
from benchmarks.bench_dedup import plant_near_copies, topic_mixture
from semhash.dedup.cells import PROBES, cell_pairs

THRESHOLD = 0.8


def mixture_embeddings(n: int, folder: Path, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The embedding half of ``bench_dedup.mixture`` (same draws in the same order): ``(emb, planted)``."""
    data = np.load(folder / "embeddings.npz")
    real = data["embeddings"].astype(np.float32)
    _, group = np.unique(data["labels"], return_inverse=True)
    rng = np.random.default_rng(seed)
    emb, _, shaped = topic_mixture(real, group, n, rng)
    near, src = plant_near_copies(emb, shaped, rng)
    return emb, np.stack([np.minimum(near, src), np.maximum(near, src)], axis=1)


def main() -> None:
    n = int(sys.argv[1])
    cells = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2] != "-" else None
    probes = int(sys.argv[3]) if len(sys.argv) > 3 else PROBES
    folder = Path(os.environ.get("NG_FOLDER", ".cache/20ng"))
    emb, planted = mixture_embeddings(n, folder)
    cells_module.GROUP_PROBES = int(os.environ.get("GP", cells_module.GROUP_PROBES))
    trees = int(os.environ.get("TREES", cells_module.TREES))
    started, cpu = time.perf_counter(), time.process_time()
    found = cell_pairs(emb, THRESHOLD, cells=cells, probes=probes, trees=trees)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    got = set(zip(found.i.tolist(), found.j.tolist(), strict=True))
    planted_set = {(int(a), int(b)) for a, b in planted if emb[a] @ emb[b] >= THRESHOLD}
    probe = np.sort(np.random.default_rng(1).choice(n, min(n, 1000), replace=False))
    truth = set()
    for start in range(0, len(probe), 200):
        rows = probe[start : start + 200]
        r, c = np.nonzero(emb[rows] @ emb.T >= THRESHOLD)
        truth |= {(min(a, b), max(a, b)) for a, b in zip(rows[r].tolist(), c.tolist(), strict=True) if a != b}
    with open("/proc/self/status") as status:
        hwm = next(round(int(x.split()[1]) / 1024) for x in status if x.startswith("VmHWM"))
    print(
        json.dumps(
            {
                "n": n,
                "cells": found.cells,
                "probes": probes,
                "trees": trees,
                "group_probes": cells_module.GROUP_PROBES,
                "seconds": round(seconds, 2),
                "cpu_seconds": round(cpu, 2),
                "peak_rss_mib": hwm,
                "largest_cell": found.largest_cell,
                "products": found.products,
                "pairs": len(found.i),
                "planted_recall": round(len(planted_set & got) / max(1, len(planted_set)), 4),
                "sampled_recall": round(len(truth & got) / max(1, len(truth)), 4),
                "sampled_pairs": len(truth),
                "load": os.getloadavg()[0],
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
