"""Dedup F1 of an int8 (or bf16) index next to an fp32 one: MRPC and the 20 Newsgroups near-duplicate set (issue 20).

Run from the repository root (``SEMHASH_BENCH_CACHE`` shared; the sets are ``bench_dedup``'s, built here when
missing)::

    python -m benchmarks.bench_int8_dedup --out benchmarks/results/int8-dedup.json

Each set is embedded twice, with the exported fp32 encoder (``bench_dedup.embed``: the cosine-1.000000 copy
of the torch path, cached as ``dedup/<set>-emb.npz``) and with the int8 encoder that ``semhash index
--precision int8`` uses (:func:`semhash.runtime.cache.cached_encoder` at ``int8``, cached as
``dedup/<set>-emb-int8.npz``). Each goes through the product path of ``bench_dedup`` (a store, the hashing
model trained by ``retrain_index``, ``dedup_index``); scored are the pairs at the defaults (``DedupOptions()``)
and the best F1 over the re-thresholding grid (0.60-0.99) at the default radius. ``--precision bf16`` scores the
bf16 encoder instead (``dedup/<set>-emb-bf16.npz``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_dedup import CACHE, build_newsgroups, build_store, cluster_labels, load_mrpc, score
from benchmarks.harness import write_result


def _sets() -> dict[str, dict]:
    """The MRPC and 20NG near-dup sets, as ``bench_dedup prepare`` writes them (built now when missing)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    if not (CACHE / "mrpc.json").exists():
        ids, texts, pairs = load_mrpc()
        (CACHE / "mrpc.json").write_text(json.dumps({"ids": ids, "texts": texts, "pairs": pairs}))
    if not (CACHE / "ng.json").exists():
        (CACHE / "ng.json").write_text(json.dumps(build_newsgroups()))
    # MRPC first: its short sentences are the cheap half of the embedding.
    return {name: json.loads((CACHE / f"{name}.json").read_text()) for name in ("mrpc", "ng")}


def _embed(texts: list[str], path: Path, precision: str) -> np.ndarray:
    """Embeddings of ``texts`` at ``precision``, cached in ``path`` (fp32: ``bench_dedup.embed``)."""
    if precision == "fp32":
        from benchmarks.bench_dedup import embed

        return embed(texts, path)
    if path.exists():
        return np.load(path)["embeddings"]
    from semhash.config import DEFAULT_MODEL
    from semhash.runtime import OnnxEncoder
    from semhash.runtime.cache import cached_encoder
    from semhash.runtime.onnx_encoder import default_threads

    encoder = OnnxEncoder(cached_encoder(DEFAULT_MODEL, precision), workers=default_threads())
    started = time.perf_counter()
    chunks = []
    for start in range(0, len(texts), 256):
        chunks.append(encoder.encode(texts[start : start + 256]))
        seconds = time.perf_counter() - started
        print(f"  {path.stem}: {start + len(chunks[-1])}/{len(texts)} in {seconds:.0f} s", flush=True)
    embeddings = np.concatenate(chunks).astype(np.float32)
    np.savez(path, embeddings=embeddings)
    return embeddings


def _f1(name: str, db: Path, data: dict, n: int) -> dict:
    """F1 at the defaults and the best over the threshold grid (default radius, centre clusters)."""
    from semhash.dedup import DedupOptions, dedup_index

    result = dedup_index(db, DedupOptions())
    default = score(name, cluster_labels(n, result.clusters), data)
    grid = []
    for t in [round(t, 2) for t in np.arange(0.60, 0.991, 0.01)]:
        grid.append({"threshold": t} | score(name, cluster_labels(n, result.rethreshold(t).clusters), data))
    best = max(grid, key=lambda row: row["f1"])
    return {"default": default, "best": best}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--sets", default="mrpc,ng", help="comma-separated: mrpc, ng")
    parser.add_argument("--precision", choices=("int8", "bf16"), default="int8")
    args = parser.parse_args()
    other = args.precision
    rows: dict = {}
    for name, data in _sets().items():
        if name not in args.sets.split(","):
            continue
        texts = data["texts"]
        vectors = {}
        for precision in ("fp32", other):
            suffix = "" if precision == "fp32" else f"-{precision}"
            vectors[precision] = _embed(texts, CACHE / f"{name}-emb{suffix}.npz", precision)
            db = build_store(f"{name}{suffix}", texts, vectors[precision])
            rows.setdefault(name, {})[precision] = _f1(name, db, data, len(texts))
            print(name, precision, json.dumps(rows[name][precision]), flush=True)
        cos = (vectors["fp32"] * vectors[other]).sum(axis=1)
        rows[name]["cosine"] = {"min": float(cos.min()), "p1": float(np.percentile(cos, 1)), "mean": float(cos.mean())}
    print(f"load average after: {os.getloadavg()}")
    for name, row in rows.items():
        for precision in ("fp32", other):
            d, b = row[precision]["default"], row[precision]["best"]
            print(
                f"| {name} | {precision} | {d['precision']:.4f} | {d['recall']:.4f} | {d['f1']:.4f} | "
                f"{b['f1']:.4f} at {b['threshold']:.2f} |"
            )
    if args.out:
        write_result(args.out, rows, indent=2)


if __name__ == "__main__":
    main()
