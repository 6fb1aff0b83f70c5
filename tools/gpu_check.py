"""The GPU path, measured (issue 10): embedding and training on CUDA, and codes as good as the CPU's.

On a machine with a CUDA GPU (see ``tools/gpu_check.sh``, which sets up a venv and runs this after the
``gpu``-marked tests) it measures, on the stripped 20 Newsgroups posts:

1. **Embedding** with semhash's encoder (window pooling, fp32, ``--batch-size`` windows per forward pass) on
   the GPU: docs/s and windows/s. The same windows are also encoded with the transformer cast to fp16, to
   state what half precision would give (speed, and the cosine of its embeddings to the fp32 ones); the
   product path stays fp32, so that GPU and CPU indexes hold the same embeddings.
2. **Training** the default hashing model (32 bits, the recipe of :mod:`semhash.train`) on the database side
   (bydate train split) on the GPU and on the CPU, from the same fp32 embeddings: seconds per model.
3. **Quality**: P@100 of the test-split queries against the database for each trained model (the protocol
   of ``benchmarks/bench_hashing.py``), GPU seeds next to CPU seeds, and whether they agree within the spread of
   the seeds.

Everything goes to ``<out>/gpu_check.json`` (``--out``, default ``$OUT`` or ``benchmarks/results/gpu``) and a short
summary is printed. ``--dry-run`` runs every step on the CPU on a small slice (``--docs 120``, 2 epochs), so
CI proves the script works without a GPU; the numbers of a dry run mean nothing.

Run::

    python -m tools.gpu_check --dry-run                       # anywhere (CI runs it)
    bash tools/gpu_prepare.sh && <device> bash tools/gpu_check.sh   # see gpu_check.sh
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from benchmarks.datasets.newsgroups import DEFAULT_SOURCE, Post, read_posts
from benchmarks.harness import RESULTS
from semhash.codes import hamming_matrix
from semhash.metrics import label_matrix, ranking_metrics

if TYPE_CHECKING:
    from semhash.model import HashingAutoencoder


def pick_posts(source: Path, limit: int | None) -> list[Post]:
    """The stripped posts; with ``limit``, a seeded sample keeping both splits (3/4 train, 1/4 test)."""
    posts = list(read_posts(source))
    if limit is None:
        return posts
    rng = np.random.default_rng(0)
    train = [p for p in posts if p.split == "train"]
    test = [p for p in posts if p.split == "test"]
    n_train = limit * 3 // 4
    pick_train = sorted(rng.choice(len(train), n_train, replace=False))
    pick_test = sorted(rng.choice(len(test), limit - n_train, replace=False))
    return [train[i] for i in pick_train] + [test[i] for i in pick_test]


def cuda_sync() -> None:
    """Wait for queued GPU work, so wall-clock timings are honest."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def measure_embedding(posts: list[Post], model: str | None, device: str, batch_size: int) -> tuple[np.ndarray, dict]:
    """fp32 embeddings with semhash's encoder, and the fp16 comparison on the same windows."""
    from semhash.embed import SentenceTransformerEncoder

    encoder = SentenceTransformerEncoder(model, device=device, batch_size=batch_size)
    texts = [p.text for p in posts]
    encoder.encode(texts[:8])  # warm-up: CUDA context, kernels
    cuda_sync()
    windows_before = encoder.stats.windows
    started = time.perf_counter()
    embeddings = encoder.encode(texts)
    cuda_sync()
    seconds = time.perf_counter() - started
    windows = encoder.stats.windows - windows_before
    result: dict[str, object] = {
        "model": encoder.name,
        "device": device,
        "batch_size": batch_size,
        "precision": "fp32",
        "documents": len(texts),
        "windows": windows,
        "seconds": seconds,
        "docs_per_s": len(texts) / seconds,
        "windows_per_s": windows / seconds,
    }
    # fp16: the same windows through the transformer cast to half precision (informational).
    if device != "cpu":
        pieces = [piece for text in texts for piece, _ in encoder.windows(text)]
        st_model = encoder._model  # the loaded SentenceTransformer (no second load)
        reference = st_model.encode(pieces, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
        st_model.half()
        st_model.encode(pieces[:8], batch_size=batch_size)
        cuda_sync()
        started = time.perf_counter()
        half = st_model.encode(pieces, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
        cuda_sync()
        half_seconds = time.perf_counter() - started
        cosines = np.sum(half.astype(np.float32) * reference, axis=1)
        result["fp16"] = {
            "windows_per_s": len(pieces) / half_seconds,
            "speedup_vs_fp32": (len(pieces) / half_seconds) / (windows / seconds),
            "min_cosine_to_fp32": float(cosines.min()),
            "mean_cosine_to_fp32": float(cosines.mean()),
        }
        st_model.float()
    return embeddings, result


def precision_at_100(
    model: HashingAutoencoder,
    queries: np.ndarray,
    db: np.ndarray,
    query_texts: list[str],
    db_texts: list[str],
    query_labels: np.ndarray,
    db_labels: np.ndarray,
    device: str,
) -> float:
    """P@100 of the Hamming ranking (ties by database order), the protocol of ``bench_hashing.py``.

    A database smaller than 100 (a dry run) gives precision at its size.
    """
    from semhash.model import encode_codes

    query_codes = encode_codes(model, queries, device=device, texts=query_texts)
    db_codes = encode_codes(model, db, device=device, texts=db_texts)
    metrics = ranking_metrics(
        lambda a, b: hamming_matrix(query_codes[a:b], db_codes), query_labels, db_labels, [100], False
    )
    return float(next(iter(metrics.values())))


def measure_training(
    posts: list[Post], embeddings: np.ndarray, devices: dict[str, list[int]], epochs: int | None
) -> list[dict]:
    """Train the default 32-bit model per device and seed; seconds and P@100 of each."""
    from semhash.train import TrainConfig, train_hasher

    is_query = np.array([p.split == "test" for p in posts])
    labels = label_matrix([[p.label] for p in posts], sorted({p.label for p in posts}))
    db, queries = embeddings[~is_query], embeddings[is_query]
    db_texts = [p.text for p, q in zip(posts, is_query, strict=True) if not q]
    query_texts = [p.text for p, q in zip(posts, is_query, strict=True) if q]
    runs = []
    for device, seeds in devices.items():
        for seed in seeds:
            config = TrainConfig(seed=seed)
            if epochs is not None:
                config = dataclasses.replace(config, epochs=epochs)
            cuda_sync()
            started = time.perf_counter()
            model, stats = train_hasher(db, 32, config, device=device, texts=db_texts)
            cuda_sync()
            seconds = time.perf_counter() - started
            p100 = precision_at_100(
                model, queries, db, query_texts, db_texts, labels[is_query], labels[~is_query], device
            )
            runs.append({"device": device, "seed": seed, "train_seconds": seconds, "p@100": p100, "stats": stats})
            print(f"  trained on {device}, seed {seed}: {seconds:.1f} s, P@100 {p100:.4f}", flush=True)
    return runs


def agreement(runs: list[dict]) -> dict:
    """GPU vs CPU P@100: agree when the gap of the means is within the larger seed spread (at least 0.005)."""
    by_device: dict[str, list[float]] = {}
    for run in runs:
        by_device.setdefault("cpu" if run["device"] == "cpu" else "gpu", []).append(run["p@100"])
    if set(by_device) != {"cpu", "gpu"}:
        return {"compared": False}
    spread = max(max(np.ptp(v) for v in by_device.values()), 0.005)
    gap = abs(float(np.mean(by_device["gpu"])) - float(np.mean(by_device["cpu"])))
    return {"compared": True, "gap": gap, "allowed": float(spread), "agree": bool(gap <= spread)}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="CPU only, a small slice: proves the script runs")
    parser.add_argument("--data", type=Path, default=DEFAULT_SOURCE, help="20ng.jsonl.gz")
    parser.add_argument("--model", default=None, help="sentence-transformers directory (default: packaged)")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or RESULTS / "gpu"))
    parser.add_argument("--docs", type=int, default=None, help="use this many posts (default: all; dry run 120)")
    parser.add_argument("--batch-size", type=int, default=256, help="windows per forward pass on the GPU")
    parser.add_argument("--gpu-seeds", default="0,1,2")
    parser.add_argument("--cpu-seeds", default="0,1")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the recipe's)")
    args = parser.parse_args(argv)

    import torch

    has_cuda = torch.cuda.is_available()
    if not has_cuda and not args.dry_run:
        print("error: no CUDA GPU visible to torch: run with --dry-run, or on a GPU machine", file=sys.stderr)
        return 1
    if args.dry_run:
        args.docs = args.docs or 120
        args.epochs = args.epochs or 2
        args.batch_size = min(args.batch_size, 32)
    gpu = "cuda" if has_cuda else "cpu"
    seeds = {gpu: [int(s) for s in args.gpu_seeds.split(",")]}
    if gpu != "cpu":
        seeds["cpu"] = [int(s) for s in args.cpu_seeds.split(",")]
    elif args.dry_run:
        seeds = {"cpu": [0]}
    report: dict[str, object] = {
        "dry_run": args.dry_run,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if has_cuda else None,
        "cpu_count": os.cpu_count(),
    }
    started = time.perf_counter()
    posts = pick_posts(args.data, args.docs)
    print(f"{len(posts)} posts; embedding on {gpu}", flush=True)
    embeddings, report["embedding"] = measure_embedding(posts, args.model, gpu, args.batch_size)
    print(f"  {report['embedding']}", flush=True)
    report["training"] = measure_training(posts, embeddings, seeds, args.epochs)
    report["agreement"] = agreement(report["training"])  # type: ignore[arg-type]
    report["seconds"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=float))
    print(f"wrote {args.out / 'gpu_check.json'} ({report['seconds']:.0f} s); agreement: {report['agreement']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
