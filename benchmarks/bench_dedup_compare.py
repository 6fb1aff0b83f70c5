r"""Dedup side by side (issue 22): semhash, MinishLab's semhash and datasketch MinHash LSH, one run, same data.

Usage (from the repository root; ``SEMHASH_BENCH_CACHE`` as for every bench)::

    python -m benchmarks.datasets.build_longdoc                  # the long-document set, once
    python -m benchmarks.bench_dedup_compare embed --sizes 20000,100000   # MiniLM embeddings, cached, resumable
    python -m benchmarks.bench_dedup_compare distill   # optional: model2vec from the packaged MiniLM (torch)
    python -m benchmarks.bench_dedup_compare run --sizes 20000,100000 [--minish-static DIR]
                                                   # -> benchmarks/results/dedup_compare.json
    python -m benchmarks.bench_dedup_compare static --sizes 20000   # or: add the static rows to a finished run
    python -m benchmarks.bench_dedup_compare calibrate-minhash --sizes 20000   # + MinHash tuned on validation

Data (the same records and, where a tool takes embeddings, the same embeddings for every tool):

* **ag_news-like, 10% of words replaced** (MinishLab's near-copy protocol): :mod:`benchmarks.datasets.agnews_like`
  (20-50-word chunks of the stripped 20 Newsgroups posts, exact and natural near copies removed, a quarter of
  each set planted copies with 10% of words replaced by random vocabulary words); 20k and 100k records.
* **Long documents** (issue 22's set, ``benchmarks/datasets/build_longdoc.py``): its *test* half, scored as
  ``bench_dedup.py longdoc`` scores it.

Tools, each at its documented defaults (nothing is tuned on these sets):

* **semhash** (this package): the product path of ``bench_dedup.py``: a store with the embeddings, the hashing
  model trained as ``semhash index`` would, then ``dedup_index`` with ``DedupOptions()`` (threshold 0.8, the
  long-document overlap check). Seconds excl. embedding: store writing + hashing model training (what
  ``semhash index`` adds to embedding) + ``dedup_index`` (the result's ``details`` keep ``dedup_index`` alone);
  incl.: plus the MiniLM embedding of the set (ONNX encoder, ``OMP_NUM_THREADS`` as run, measured per part).
* **MinishLab semhash** (PyPI ``semhash``, its own virtualenv: ``SEMHASH_MINISH_PYTHON``; run as a subprocess from
  ``/tmp`` so this process never imports it): ``SemHash.from_embeddings`` on our MiniLM embeddings (an encoder
  object that refuses to encode: every vector is precomputed), ``self_deduplicate()`` at its default
  threshold 0.9. Optional row: a model2vec static model *distilled locally from our packaged MiniLM*
  (``--minish-static DIR``; not MinishLab's shipped potion-base-8M, which cannot be downloaded here), passed
  as ``model=`` to ``SemHash.from_records``, so it embeds the texts itself. Version 0.5.0 has no lexical mode.
* **datasketch MinHash LSH** (2.0.0, in the MinishLab virtualenv, as a subprocess): word 3-gram shingles
  (lower-cased ``\\w+`` tokens), 128 permutations, ``MinHashLSH(threshold=0.8)`` (text-dedup's defaults but
  3-grams for short records), every LSH candidate pair a duplicate (no Jaccard re-check, as text-dedup
  does). Seconds: signatures + LSH inside that process; no embedding.

Scoring: every pair of records in one predicted group (semhash's clusters; MinishLab's and MinHash's
connected components of reported pairs) is a predicted pair; against the planted (original, copy) pairs:
precision, recall, F1.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.bench_dedup import components
from benchmarks.datasets.dedup_sets import agnews_validation, exact_pairs, longdoc_test, longdoc_validation
from benchmarks.dedup_outside import distill_static, run_minhash, run_minish
from benchmarks.harness import CACHE as WORK
from benchmarks.harness import machine, write_result

CACHE = WORK / "dedup-compare"
PART = 2000
#: The ag_news-like set sizes (records): MinishLab's 20k and 100k.
SIZES = (20_000, 100_000)
MINHASH_TOOL = "datasketch MinHash LSH"


# -- embeddings --------------------------------------------------------------------------------------------
def _digest(texts: Sequence[str]) -> str:
    """A short content hash of a text list: its embedding cache folder changes when the set does."""
    return hashlib.sha256("\0".join(texts).encode()).hexdigest()[:12]


def agnews_order() -> list[str]:
    """Every distinct text of the ag_news-like sets (``SIZES``), the smallest set's first.

    The smaller set's texts are a prefix, so it is embedded first and a run of it alone needs only its parts.
    """
    from benchmarks.datasets.agnews_like import build

    seen: dict[str, None] = {}
    for n in SIZES:
        for text in build(n)["texts"]:
            seen.setdefault(text, None)
    return list(seen)


def embed_parts(texts: list[str], folder: Path, count: int | None = None) -> tuple[np.ndarray, float]:
    """MiniLM embeddings of ``texts`` (what ``semhash index`` stores), cached in parts of ``PART`` texts.

    Resumable: each part is written when done. Returns the embeddings and the seconds the parts took to
    embed (stored with each part, so a cached run still reports them). With ``count``, only the parts that
    hold the first ``count`` texts.
    """
    folder.mkdir(parents=True, exist_ok=True)
    n_parts = (min(len(texts), count or len(texts)) + PART - 1) // PART
    encoder = None
    chunks: list[np.ndarray] = []
    seconds = 0.0
    for part in range(n_parts):
        path = folder / f"part-{part:04d}.npz"
        if not path.exists():
            if encoder is None:
                from benchmarks.bench_dedup import _fast_encoder

                encoder = _fast_encoder()
            started = time.perf_counter()
            emb = encoder.encode(texts[part * PART : (part + 1) * PART]).astype(np.float32)
            took = time.perf_counter() - started
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, embeddings=emb, seconds=took, load=os.getloadavg()[0])
            tmp.rename(path)
            print(f"  {folder.name}: part {part + 1}/{n_parts} in {took:.0f} s", flush=True)
        with np.load(path) as data:
            chunks.append(data["embeddings"])
            seconds += float(data["seconds"])
    return np.concatenate(chunks), seconds


def agnews_embeddings(sizes: Sequence[int]) -> tuple[dict[str, int], np.ndarray, float]:
    """Row of each ag_news-like text, their embeddings, and seconds per text spent embedding."""
    from benchmarks.datasets.agnews_like import build

    texts = agnews_order()
    count = len({t for n in sizes for t in build(n)["texts"]})
    emb, seconds = embed_parts(texts, CACHE / f"agnews-{_digest(texts)}", count)
    return {t: k for k, t in enumerate(texts[: len(emb)])}, emb, seconds / len(emb)


def longdoc_embeddings(texts: list[str]) -> tuple[np.ndarray, float]:
    """MiniLM embeddings of the long-document test half (window pooling), and seconds per text."""
    emb, seconds = embed_parts(texts, CACHE / f"longdoc-test-{_digest(texts)}")
    return emb, seconds / len(texts)


# -- scoring -----------------------------------------------------------------------------------------------


def score(label: np.ndarray, gold: Sequence[Sequence[int]]) -> dict[str, float | int]:
    """Precision, recall and F1 of the pairs sharing a label, against the gold pairs."""
    _, counts = np.unique(label, return_counts=True)
    predicted = int((counts * (counts - 1) // 2).sum())
    tp = sum(int(label[i] == label[j]) for i, j in gold)
    p = tp / predicted if predicted else 0.0
    r = tp / len(gold) if gold else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f1, 4), "predicted_pairs": predicted}


# -- the tools ---------------------------------------------------------------------------------------------
def run_semhash(name: str, texts: list[str], emb: np.ndarray) -> tuple[np.ndarray, float, dict[str, object]]:
    """Our product path at its defaults: store + hashing model (as ``semhash index``), ``dedup_index``.

    Returns the cluster label per row, the seconds of all of it, and the run's details.
    """
    from benchmarks.bench_dedup import CACHE as DEDUP_CACHE
    from benchmarks.bench_dedup import build_store, cluster_labels
    from semhash.dedup import DedupOptions, dedup_index

    db = DEDUP_CACHE / f"{name}.db"
    for stale in db.parent.glob(f"{db.name}*"):  # a fresh store each run, so its writing and training are timed
        if stale.is_dir():
            shutil.rmtree(stale)
        else:
            stale.unlink()
    DEDUP_CACHE.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    build_store(name, texts, emb)
    store_seconds = time.perf_counter() - started
    started = time.perf_counter()
    result = dedup_index(db, DedupOptions())
    seconds = time.perf_counter() - started
    stats = {
        "dedup_seconds": round(seconds, 2),
        "store_and_training_seconds": round(store_seconds, 2),
        "stage": str(result.stats.stage),
        "threshold": result.options.threshold,
        "unverified_pairs": int(getattr(result.stats, "unverified_pairs", 0)),
    }
    return cluster_labels(len(texts), result.clusters), store_seconds + seconds, stats


# -- one data set, every tool ------------------------------------------------------------------------------
def _row(
    tool: str, data: str, gold: Sequence[Sequence[int]], label: np.ndarray, excl: float | None, incl: float
) -> dict:
    return {
        "tool": tool,
        "data": data,
        "records": len(label),
        "gold_pairs": len(gold),
        **score(label, gold),
        "seconds_excl_embedding": None if excl is None else round(excl, 2),
        "seconds_incl_embedding": round(incl, 2),
    }


def compare(name: str, data: dict[str, list], emb: np.ndarray, embed_seconds: float, static: Path | None) -> list[dict]:
    """Every tool on one data set (same texts; same embeddings where a tool takes them)."""
    texts, gold = data["texts"], data["pairs"]
    n = len(texts)
    rows = []
    label, work, stats = run_semhash(f"compare-{name}", texts, emb)
    rows.append(_row("semhash (ours, defaults)", name, gold, label, work, work + embed_seconds) | {"details": stats})
    print(f"[{name}] {json.dumps(rows[-1])}", flush=True)
    minish = run_minish(texts, emb, None, timeout=3000)
    if "edges" in minish:
        label = components(n, [tuple(e) for e in minish.pop("edges")])
        secs = float(minish["seconds"])
        rows.append(
            _row("MinishLab semhash 0.5.0 (our MiniLM embeddings)", name, gold, label, secs, secs + embed_seconds)
            | {"details": minish}
        )
    else:
        rows.append({"tool": "MinishLab semhash 0.5.0 (our MiniLM embeddings)", "data": name, "error": minish})
    print(f"[{name}] {json.dumps(rows[-1])}", flush=True)
    if static is not None:
        rows.append(static_rows(data, name, static))
        print(f"[{name}] {json.dumps(rows[-1])}", flush=True)
    minhash = run_minhash(texts)
    if "edges" in minhash:
        label = components(n, [tuple(e) for e in minhash.pop("edges")])
        secs = minhash["signature_seconds"] + minhash["lsh_seconds"]
        rows.append(_row(MINHASH_TOOL, name, gold, label, secs, secs) | {"details": minhash})
    else:
        rows.append({"tool": MINHASH_TOOL, "data": name, "error": minhash})
    print(f"[{name}] {json.dumps(rows[-1])}", flush=True)
    return rows


def markdown(rows: Sequence[dict]) -> str:
    """The BENCHMARKS.md table of the rows."""
    out = [
        "| tool | data | records | recall | precision | F1 | s excl. embedding | s incl. embedding |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['tool']} | {r['data']} | | {r['error']} | | | | |")
            continue
        excl = "-" if r["seconds_excl_embedding"] is None else f"{r['seconds_excl_embedding']:.1f}"
        out.append(
            f"| {r['tool']} | {r['data']} | {r['records']:,} | {r['recall']:.3f} | {r['precision']:.3f} | "
            f"{r['f1']:.3f} | {excl} | {r['seconds_incl_embedding']:.1f} |"
        )
    return "\n".join(out)


def run(sizes: Sequence[int], static: Path | None, out: str) -> None:
    """Every tool on the ag_news-like sets and the long-document test half; writes ``out`` as it goes."""
    from benchmarks.datasets.agnews_like import build

    result: dict = {"machine_at_start": machine(), "rows": [], "sets": {}}
    rows_of, emb_all, per_text = agnews_embeddings(sizes)
    for n in sorted(sizes):
        data = build(n)
        emb = emb_all[[rows_of[t] for t in data["texts"]]]
        name = f"agnews-like-{n // 1000}k"
        result["sets"][name] = {
            "records": n,
            "gold_pairs": len(data["pairs"]),
            "exact_duplicate_pairs": exact_pairs(data["texts"]),
            "embedding_seconds": round(per_text * n, 1),
        }
        result["rows"] += compare(name, data, emb, per_text * n, static)
        write_result(out, result)
    longdoc = longdoc_test()
    emb, per_text = longdoc_embeddings(longdoc["texts"])
    result["sets"]["longdoc-test"] = {
        "records": len(longdoc["texts"]),
        "gold_pairs": len(longdoc["pairs"]),
        "exact_duplicate_pairs": exact_pairs(longdoc["texts"]),
        "embedding_seconds": round(per_text * len(longdoc["texts"]), 1),
    }
    result["rows"] += compare("longdoc-test", longdoc, emb, per_text * len(longdoc["texts"]), static)
    write_result(out, result)
    result["machine_at_end"] = machine()
    write_result(out, result)
    print(markdown(result["rows"]), flush=True)


STATIC_TOOL = "MinishLab semhash 0.5.0 (model2vec distilled here from MiniLM; not potion-base-8M)"


def static_rows(data: dict[str, list], name: str, static: Path) -> dict:
    """MinishLab's semhash with the distilled static model (it embeds the texts itself) on one set."""
    minish = run_minish(data["texts"], None, static, timeout=3000)
    if "edges" not in minish:
        return {"tool": STATIC_TOOL, "data": name, "error": minish}
    label = components(len(data["texts"]), [tuple(e) for e in minish.pop("edges")])
    return _row(STATIC_TOOL, name, data["pairs"], label, None, float(minish["seconds"])) | {"details": minish}


def add_static(sizes: Sequence[int], static: Path, out: str) -> None:
    """Add the distilled-static-model rows to a finished ``run``'s result (same sets; a later process)."""
    from benchmarks.datasets.agnews_like import build
    from benchmarks.harness import result_path

    path = result_path(out) if "/" not in out else Path(out)
    result = json.loads(path.read_text())
    result.pop("run", None)
    sets = [(f"agnews-like-{n // 1000}k", build(n)) for n in sorted(sizes)] + [("longdoc-test", longdoc_test())]
    for name, data in sets:
        row = static_rows(data, name, static) | {"added_by": "static stage, after the run"}
        result["rows"] = [r for r in result["rows"] if not (r["tool"] == STATIC_TOOL and r["data"] == name)]
        result["rows"].append(row)
        print(f"[{name}] {json.dumps(row)}", flush=True)
    result["machine_at_static"] = machine()
    write_result(path, result)
    print(markdown(result["rows"]), flush=True)


MINHASH_GRID = [(ngram, t) for ngram in (1, 2, 3) for t in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)]


def calibrate_minhash(sizes: Sequence[int], out: str) -> None:
    """MinHash's shingle length and LSH threshold by F1 on each family's validation set, then its test rows.

    Added to a finished ``run``'s result: the grid, the choice, and the calibrated row per test set.
    """
    from benchmarks.datasets.agnews_like import build
    from benchmarks.harness import result_path

    path = result_path(out) if "/" not in out else Path(out)
    result = json.loads(path.read_text())
    result.pop("run", None)
    families = [
        ("agnews-like", agnews_validation(), [(f"agnews-like-{n // 1000}k", build(n)) for n in sorted(sizes)]),
        ("longdoc", longdoc_validation(), [("longdoc-test", longdoc_test())]),
    ]
    result.setdefault("minhash_calibration", {})
    for family, val, tests in families:
        grid = []
        for ngram, t in MINHASH_GRID:
            got = run_minhash(val["texts"], ngram=ngram, threshold=t)
            label = components(len(val["texts"]), [tuple(e) for e in got.pop("edges", [])])
            grid.append({"ngram": ngram, "threshold": t} | score(label, val["pairs"]))
        best = max(grid, key=lambda r: r["f1"])
        result["minhash_calibration"][family] = {"validation_records": len(val["texts"]), "best": best, "grid": grid}
        print(f"[{family} validation] best {json.dumps(best)}", flush=True)
        tool = f"datasketch MinHash LSH (calibrated: {best['ngram']}-word shingles, threshold {best['threshold']})"
        for name, data in tests:
            settings = [(tool, int(best["ngram"]), float(best["threshold"]))]
            if not any(r["tool"] == MINHASH_TOOL and r["data"] == name for r in result["rows"]):
                settings.append((MINHASH_TOOL, 3, 0.8))  # a set ``run`` did not reach (no MiniLM embeddings)
            for label_tool, ngram, threshold in settings:
                got = run_minhash(data["texts"], ngram=ngram, threshold=threshold)
                label = components(len(data["texts"]), [tuple(e) for e in got.pop("edges")])
                secs = got["signature_seconds"] + got["lsh_seconds"]
                row = _row(label_tool, name, data["pairs"], label, secs, secs) | {"details": got}
                result["rows"] = [r for r in result["rows"] if not (r["tool"] == label_tool and r["data"] == name)]
                result["rows"].append(row)
                print(f"[{name}] {json.dumps(row)}", flush=True)
    result["machine_at_calibration"] = machine()
    write_result(path, result)
    print(markdown(result["rows"]), flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run a stage (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=["embed", "distill", "run", "static", "calibrate-minhash"])
    parser.add_argument("--sizes", default="20000,100000", help="ag_news-like sets to run (of 20000,100000)")
    parser.add_argument("--minish-static", type=Path, default=None, help="a model2vec model folder (optional row)")
    parser.add_argument("--out", default="dedup_compare", help="result file name or path")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    if not set(sizes) <= set(SIZES):
        parser.error(f"--sizes: choose from {','.join(map(str, SIZES))}")
    if args.stage == "distill":
        distill_static(args.minish_static or CACHE / "m2v-minilm-distilled")
        return 0
    if args.stage == "embed":
        longdoc_embeddings(longdoc_test()["texts"])
        agnews_embeddings(sizes)
        return 0
    if args.stage == "calibrate-minhash":
        calibrate_minhash(sizes, args.out)
        return 0
    if args.stage == "static":
        add_static(sizes, args.minish_static or CACHE / "m2v-minilm-distilled", args.out)
        return 0
    run(sizes, args.minish_static, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
