"""Issue 20's targets on 20 Newsgroups: the whole corpus indexed as an incremental user would, end to end.

Run from the repository root (the 20 Newsgroups file is the shared one, see ``benchmarks/datasets/newsgroups.py``)::

    .venv/bin/python -m benchmarks.bench_index_20ng --out benchmarks/results/index_20ng.json

1. **The folders.** The 18,331 stripped posts as text files, one a post: ``train/`` (the train split),
   ``add/`` (``--add`` test posts, a seeded sample) and ``rest/`` (the other test posts).
2. **The runs.** ``semhash index train/``, then ``semhash index add/``, then ``semhash index rest/``, into one
   fresh database at the defaults, each a fresh ``semhash`` process (imports, model, scan, embed, codes,
   caches; the first one trains the hashing model), with a fresh ``SEMHASH_CACHE`` unless ``--cache`` is
   given: a machine's first index exports and quantises the encoder, and that is part of what is timed.
   Each run's wall time, peak RSS (``VmHWM``) and its ``--json`` report are kept; stderr goes to a log.
3. **The baseline.** ``SentenceTransformer.encode`` of the ``add/`` texts in this process (the packaged
   model, its defaults: batches of 32, truncation at 256 tokens, so it does less work than semhash's windows
   on long posts), timed right before and right after the ``add/`` run; the ratio is semhash's documents/s
   for that run (its whole wall time, process start included) over ``encode``'s (the mean of the two). The
   ``rest/`` run's documents/s over that same ``encode`` rate is printed too (``rest_over_add_encode``: other
   posts of the same test split, so a comparison of rates, not of one set of texts).

Issue 20's targets: the whole thing, training included, in <= 8 minutes on the 2-core CPU; the ``add/`` run
at >= 2x ``encode``'s documents/s. ``--train N --rest N`` take seeded samples for a quick check.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.datasets.newsgroups import DEFAULT_SOURCE, Post, read_posts
from benchmarks.harness import ROOT, run_with_peak_rss, write_result

SEMHASH = [sys.executable, "-m", "semhash.cli"]


def write_posts(folder: Path, posts: list[Post]) -> None:
    """One ``.txt`` file a post, under its label's folder (as a mail or news archive is laid out)."""
    for post in posts:
        target = folder / post.label / f"{post.id.replace('/', '_')}.txt"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(post.text, encoding="utf-8")


def index_run(folder: Path, db: Path, log: Path, env: dict[str, str], extra: list[str]) -> dict[str, Any]:
    """``semhash index FOLDER --db DB --json`` in a fresh process: wall s, peak RSS MB and its JSON report."""
    report = log.with_suffix(".json")
    command = [*SEMHASH, "index", str(folder), "--db", str(db), "--json", *extra]
    result: dict[str, Any] = dict(run_with_peak_rss(command, log, stdout=report, env=env))
    if result["code"] != 0:
        raise SystemExit(f"semhash index {folder} failed ({result['code']}): {log.read_text()[-2000:]}")
    result["report"] = json.loads(report.read_text())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="the 20 Newsgroups jsonl.gz")
    parser.add_argument("--add", type=int, default=400, help="test posts added on their own, timed against encode")
    parser.add_argument("--train", type=int, default=0, help="a seeded sample of the train posts (0: all)")
    parser.add_argument("--rest", type=int, default=0, help="a seeded sample of the other test posts (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=None, help="SEMHASH_CACHE (default: a fresh, empty one)")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a new temporary one)")
    parser.add_argument("--index-arg", action="append", default=[], help="passed to every `semhash index`")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    posts = list(read_posts(args.source))
    rng = random.Random(args.seed)
    train = [p for p in posts if p.split == "train"]
    test = [p for p in posts if p.split == "test"]
    rng.shuffle(test)
    add, rest = test[: args.add], test[args.add :]
    if args.train:
        train = rng.sample(train, args.train)
    if args.rest:
        rest = rng.sample(rest, args.rest)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-20ng-"))
    folders = {"train": train, "add": add, "rest": rest}
    for name, chosen in folders.items():
        write_posts(work / name, chosen)
    env = {**os.environ, "SEMHASH_CACHE": str(args.cache or work / "cache"), "PYTHONPATH": str(ROOT)}
    for name in ("SEMHASH_PRECISION", "SEMHASH_DB", "SEMHASH_MODEL", "SEMHASH_INDEX_EXPORT"):
        env.pop(name, None)  # the defaults, as a new user has them
    print(f"{len(train)} train, {len(add)} add, {len(rest)} rest posts in {work}; load {os.getloadavg()}", flush=True)

    from sentence_transformers import SentenceTransformer

    from semhash.embed import resolve_model

    model = SentenceTransformer(resolve_model(None)[1], device="cpu")  # the packaged copy: no hub
    add_texts = [p.text for p in add]
    model.encode(add_texts[:8])  # warm-up

    def st_encode() -> float:
        started = time.perf_counter()
        model.encode(add_texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
        return time.perf_counter() - started

    db = work / "ng.db"
    runs: dict[str, dict[str, Any]] = {}
    encode_s: list[float] = []
    loads = [os.getloadavg()[0]]
    for name in folders:
        if name == "add":
            encode_s.append(st_encode())
        runs[name] = index_run(work / name, db, work / f"{name}.log", env, args.index_arg)
        loads.append(os.getloadavg()[0])
        if name == "add":
            encode_s.append(st_encode())
        r = runs[name]
        print(f"{name}: {r['report']['added']} added, {r['report']['windows']} windows, {r['seconds']:.1f} s "
              f"(embed {r['report']['embed_seconds']:.1f} s, train {r['report']['train_seconds']:.1f} s), "
              f"peak RSS {r['peak_rss_mb']:.0f} MB; load {loads[-1]:.2f}", flush=True)  # fmt: skip
    encode_rate = len(add) / (sum(encode_s) / len(encode_s))
    add_rate = len(add) / runs["add"]["seconds"]
    total = sum(r["seconds"] for r in runs.values())
    summary = {
        "posts": {name: len(chosen) for name, chosen in folders.items()},
        "total_seconds": total,
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs.values()),
        "add_docs_per_s": add_rate,
        "encode_seconds": encode_s,
        "encode_docs_per_s": encode_rate,
        "add_over_encode": add_rate / encode_rate,
        "rest_docs_per_s": len(rest) / runs["rest"]["seconds"],
        "rest_over_add_encode": len(rest) / runs["rest"]["seconds"] / encode_rate,
        "load_1min": loads,
        "index_args": args.index_arg,
        "runs": runs,
    }
    print(f"all {sum(len(c) for c in folders.values())} posts in {total:.0f} s ({total / 60:.1f} min), "
          f"peak RSS {summary['peak_rss_mb']:.0f} MB")  # fmt: skip
    print(f"add: {add_rate:.2f} docs/s; SentenceTransformer.encode of the same texts {encode_rate:.2f} docs/s "
          f"(runs {', '.join(f'{s:.1f}' for s in encode_s)} s): {add_rate / encode_rate:.2f}x")  # fmt: skip
    rest_rate, rest_ratio = summary["rest_docs_per_s"], summary["rest_over_add_encode"]
    print(f"rest: {rest_rate:.2f} docs/s, {rest_ratio:.2f}x encode's rate on add/")
    if args.out:
        write_result(args.out, summary)


if __name__ == "__main__":
    main()
