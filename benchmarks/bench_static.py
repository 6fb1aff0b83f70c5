"""The static tier (``--model static``, :mod:`semhash.static`): its speed against MiniLM, and what it costs in quality.

Run from the repository root (``SEMHASH_BENCH_CACHE`` holds ``20ng/20ng-stripped.jsonl`` and the dedup sets of
``benchmarks/bench_dedup.py prepare``)::

    python -m benchmarks.bench_static --docs 1000 --rounds 3 --seeds 0,1,2
    python -m benchmarks.bench_static --stages speed,index     # only some stages (the result file is merged)

Stages (each writes its part of ``benchmarks/results/static.json``):

- ``speed``: documents/s of :class:`~semhash.static.StaticEncoder` ``.encode`` and of ``SentenceTransformer.encode``
  (the packaged all-MiniLM-L6-v2, its defaults: batch 32, truncation at 256 tokens) on the same 20NG posts,
  interleaved round by round in one process; the ratio is the issue's ">= 50x" target.
- ``index``: ``semhash index DIR --model static`` end to end (a child process: reading, embedding, training the
  hashing model, codes, caches) on those posts written as files, as documents/s beside ST.encode's.
- ``p100``: 20NG P@100 at 32 bits (:func:`semhash.evaluate.evaluate`, the protocol of ``bench_hashing.py``)
  with static embeddings; MiniLM's in the same run when its embeddings cache (``20ng/embeddings.npz``) exists.
- ``dedup``: duplicate-pair F1 on the 20NG near-dup set and MRPC (``bench_dedup.py``'s sets, stores and
  scoring, with its ``model`` switch) from static embeddings; MiniLM's beside them where its embeddings are
  cached (``dedup/ng-emb.npz``, ``dedup/mrpc-emb.npz``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import CACHE, ROOT, result_path, write_result

DATA = CACHE / "20ng" / "20ng-stripped.jsonl"
MINILM_CACHE = CACHE / "20ng" / "embeddings.npz"
STAGES = ("speed", "index", "p100", "dedup")


def load_posts(n: int) -> list[str]:
    """``n`` non-empty stripped 20NG posts, spread evenly over the file (so every newsgroup is in)."""
    posts = [row["text"] for row in map(json.loads, DATA.read_text().splitlines()) if row["text"].strip()]
    step = max(1, len(posts) // n)
    return posts[::step][:n]


def load() -> str:
    """The 1/5/15-minute load average, for the record (the machine is shared)."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def speed(texts: list[str], rounds: int) -> dict:
    """StaticEncoder.encode vs SentenceTransformer.encode on ``texts``, interleaved ``rounds`` times."""
    import torch
    from sentence_transformers import SentenceTransformer

    from semhash.embed import default_model_path
    from semhash.static import StaticEncoder

    started = time.perf_counter()
    static = StaticEncoder.load(progress=print)
    static_load = time.perf_counter() - started
    model = SentenceTransformer(str(default_model_path()), device="cpu")
    static.encode(texts[:16])
    model.encode(texts[:16])  # warm both (first-call allocations)
    rows = []
    for r in range(rounds):
        load_before = load()
        t0 = time.perf_counter()
        static.encode(texts)
        t1 = time.perf_counter()
        model.encode(texts)
        t2 = time.perf_counter()
        rows.append({"static_s": t1 - t0, "st_s": t2 - t1, "ratio": (t2 - t1) / (t1 - t0), "load": load_before})
        print(f"round {r}: static {len(texts) / (t1 - t0):,.0f} docs/s, ST {len(texts) / (t2 - t1):,.1f} docs/s, "
              f"ratio {rows[-1]['ratio']:.0f}x (load {load_before})", flush=True)  # fmt: skip
    static_s = float(np.median([row["static_s"] for row in rows]))
    st_s = float(np.median([row["st_s"] for row in rows]))
    return {
        "docs": len(texts),
        "mean_chars": float(np.mean([len(t) for t in texts])),
        "torch_threads": torch.get_num_threads(),
        "static_table_load_s": static_load,
        "rounds": rows,
        "static_docs_per_s": len(texts) / static_s,
        "st_docs_per_s": len(texts) / st_s,
        "ratio_median": st_s / static_s,
    }


def index_end_to_end(texts: list[str], st_docs_per_s: float | None) -> dict:
    """``semhash index DIR --model static --json`` on ``texts`` written as files, timed from outside."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "posts"
        folder.mkdir()
        for k, text in enumerate(texts):
            (folder / f"{k:05d}.txt").write_text(text)
        command = [sys.executable, "-m", "semhash.cli", "index", str(folder), "--db", f"{tmp}/s.db"]
        command += ["--model", "static", "--json"]
        load_before = load()
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=True)
        wall = time.perf_counter() - started
    report = json.loads(done.stdout)
    out = {"docs": len(texts), "wall_s": wall, "docs_per_s": len(texts) / wall, "load": load_before}
    out["report"] = {k: v for k, v in report.items() if isinstance(v, int | float | bool)}
    if st_docs_per_s:
        out["vs_st_encode"] = out["docs_per_s"] / st_docs_per_s
    print(f"semhash index --model static: {len(texts)} docs in {wall:.1f} s ({out['docs_per_s']:.1f} docs/s)")
    return out


def p100(seeds: str) -> dict:
    """20NG P@100 at 32 bits from static embeddings, and from MiniLM's when their cache exists."""
    from semhash.evaluate import FLOAT, OURS, evaluate
    from semhash.static import StaticEncoder, static_key

    runs = {"static": {"cache": CACHE / "20ng" / f"embeddings-static-{static_key()}.npz"}}
    runs["static"]["encoder"] = StaticEncoder.load(progress=print)
    if MINILM_CACHE.exists():
        runs["minilm"] = {"cache": MINILM_CACHE}
    out: dict = {}
    for name, kwargs in runs.items():
        started = time.perf_counter()
        report = evaluate(DATA, bits="32", seeds=seeds, baselines=(), with_map=False, progress=print, **kwargs)
        summary = {(r.method, r.bits): r for r in report.summary("p@100")}
        ours = summary[(OURS, 32)]
        per_seed = {s.seed: s.metrics["p@100"] for s in report.scores if s.method == OURS}
        out[name] = {"p100_32": [ours.mean, ours.std], "per_seed": per_seed, "float": summary[(FLOAT, None)].mean}
        out[name]["seconds"], out[name]["embed_seconds"] = time.perf_counter() - started, report.embed_seconds
        print(name, json.dumps(out[name]), flush=True)
    return out


def dedup_summary(dataset: str, runs: dict, cosine: dict) -> dict:
    """F1 at semhash's defaults and the best of the grid (oracle), and the all-pairs cosine's."""
    from semhash.dedup import DEFAULT_RADIUS, DEFAULT_THRESHOLD

    grid = [g for g in runs["grid"] if not g["number_veto"]]
    default = next(
        g for g in grid
        if g["radius"] == DEFAULT_RADIUS and g["threshold"] == DEFAULT_THRESHOLD and g["cluster"] == "centre"
    )  # fmt: skip
    best = max(grid, key=lambda g: g["f1"])
    cos_default = next(g for g in cosine["grid"] if g["threshold"] == DEFAULT_THRESHOLD)
    return {
        "defaults": default,
        "best": best,
        "cosine_all_pairs_at_default": cos_default,
        "cosine_all_pairs_best": max(cosine["grid"], key=lambda g: g["f1"]),
        "candidate_recall": runs["candidate_recall"],
    }


def dedup() -> dict:
    """Duplicate-pair F1 from static embeddings (and MiniLM's where cached), through bench_dedup's code."""
    from benchmarks.bench_dedup import CACHE as DEDUP
    from benchmarks.bench_dedup import build_store, cosine_all_pairs, embed, semhash_runs
    from semhash.config import STATIC_MODEL
    from semhash.static import static_key

    out: dict = {}
    for dataset in ("ng", "mrpc"):
        truth = json.loads((DEDUP / f"{dataset}.json").read_text())
        texts = truth["texts"]
        variants = {"static": embed(texts, DEDUP / f"{dataset}-emb-static-{static_key()}.npz", model="static")}
        if (DEDUP / f"{dataset}-emb.npz").exists():
            variants["minilm"] = np.load(DEDUP / f"{dataset}-emb.npz")["embeddings"]
        for name, embeddings in variants.items():
            started = time.perf_counter()
            model = STATIC_MODEL if name == "static" else None
            db = build_store(f"{dataset}-bench-static-{name}", texts, embeddings, model=model)
            runs = semhash_runs(dataset, db, truth, len(texts))
            row = dedup_summary(dataset, runs, cosine_all_pairs(dataset, embeddings, truth))
            row["seconds"] = time.perf_counter() - started
            out.setdefault(dataset, {})[name] = row
            d, b = row["defaults"], row["best"]
            print(f"[{dataset}/{name}] F1 defaults {d['f1']:.3f} (P {d['precision']:.3f} R {d['recall']:.3f}), "
                  f"best {b['f1']:.3f} (radius {b['radius']}, {b['threshold']})", flush=True)  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the stages asked for; merge their results into the result file."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1000, help="20NG posts for the speed and index stages")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--out", type=Path, default=result_path("static"))
    args = parser.parse_args(argv)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = set(stages) - set(STAGES)
    if unknown:
        parser.error(f"unknown stage(s) {sorted(unknown)}: choose from {', '.join(STAGES)}")
    result: dict = json.loads(args.out.read_text()) if args.out.exists() else {}
    result.pop("run", None)
    texts = load_posts(args.docs) if {"speed", "index"} & set(stages) else []
    for stage in stages:
        started, load_before = time.perf_counter(), load()
        if stage == "speed":
            part = speed(texts, args.rounds)
        elif stage == "index":
            part = index_end_to_end(texts, (result.get("speed") or {}).get("st_docs_per_s"))
        elif stage == "p100":
            part = p100(args.seeds)
        else:
            part = dedup()
        part["stage_s"], part["load_before"], part["load_after"] = time.perf_counter() - started, load_before, load()
        result[stage] = part
        write_result(args.out, result, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
