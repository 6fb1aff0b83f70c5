r"""Hashing quality on 20 Newsgroups (issue 3) or another labelled corpus (issue 12): BENCHMARKS.md's tables.

Run from the repository root::

    .venv/bin/python -m benchmarks.datasets.newsgroups            # once: stripped JSONL + embeddings (~35 min, 2 CPUs)
    .venv/bin/python -m benchmarks.bench_hashing --bits 16,32,64 --seeds 0,1,2 --out benchmarks/results/hashing.json
    .venv/bin/python -m benchmarks.bench_hashing --bits 32 --seeds 0 --set lexical_weight=1.0   # a variant
    # another corpus: any eval JSONL ("train" = database, "test" = queries) and its embeddings cache
    .venv/bin/python -m benchmarks.datasets.debian_corpus         # once: Debian package descriptions by section
    .venv/bin/python -m benchmarks.bench_hashing --data .cache/debian/debian.jsonl \
        --cache .cache/debian/embeddings.npz --out benchmarks/results/hashing-debian.json

Protocol (VDSH, NASH, AMMI, SNUH): scikit-learn's ``remove=("headers", "footers", "quotes")`` stripping,
empty documents dropped; database = the bydate train split, queries = the test split, each query coded
from its own embedding; P@100 over the Hamming ranking, ties broken by database (id) order; labels only
for scoring. Everything is computed by :func:`semhash.evaluate.evaluate` (``semhash eval`` runs the same
code), which reads embeddings from the cache written by ``benchmarks/datasets/newsgroups.py``. The published rows
(other papers' 20 Newsgroups numbers) are shown only for a corpus whose file name starts with ``20ng``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

from benchmarks.harness import CACHE as WORK
from benchmarks.harness import result_path, write_result
from semhash.evaluate import FLOAT, OURS, EvalReport, evaluate
from semhash.train import TrainConfig

DATA = WORK / "20ng" / "20ng-stripped.jsonl"
CACHE = WORK / "20ng" / "embeddings.npz"
#: Unsupervised P@100 on 20 Newsgroups at 32 bits, as quoted in issue 3 (SNUH, ACL 2021 and its baselines).
PUBLISHED = {"SNUH": {32: 0.6387}, "AMMI": {32: 0.5956}, "NASH": {32: 0.5671}, "VDSH": {32: 0.4327}}
ORDER = [OURS, "itq", "pca-sign", "lsh"]


def markdown(report: EvalReport, metric: str, published: bool = True) -> str:
    """One row per method, one column per code length: ``mean ± std`` over seeds (+ ``PUBLISHED`` if asked)."""
    rows = report.summary(metric)
    bits = sorted({r.bits for r in rows if r.bits is not None})
    cell = {(r.method, r.bits): r for r in rows}
    lines = ["| method | " + " | ".join(f"{b} bits" for b in bits) + " |", "|---|" + "---:|" * len(bits)]
    for method in ORDER:
        cells = []
        for b in bits:
            r = cell.get((method, b))
            cells.append("" if r is None else f"{r.mean:.4f} ± {r.std:.4f}" if r.runs > 1 else f"{r.mean:.4f}")
        name = f"**{method}** (ours)" if method == OURS else method
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    float_row = cell.get((FLOAT, None))
    if float_row is not None:
        lines.append("| float cosine, 384-d (not a code) | " + " | ".join(f"{float_row.mean:.4f}" for _ in bits) + " |")
    if metric == "p@100" and published:
        for name, values in PUBLISHED.items():
            lines.append(
                f"| {name} (published) | " + " | ".join(f"{values[b]:.4f}" if b in values else "" for b in bits) + " |"
            )
    return "\n".join(lines)


def recipe_with(overrides: list[str]) -> TrainConfig:
    """The default :class:`TrainConfig` with ``FIELD=VALUE`` overrides, each value of its field's type.

    ``epochs`` (``None`` by default: the automatic stopping rule) takes an integer, or ``auto``.
    """
    config = TrainConfig()
    types = {f.name: type(getattr(config, f.name)) for f in dataclasses.fields(config)}
    types["epochs"] = int
    for item in overrides:
        name, _, value = item.partition("=")
        if name not in types or not value:
            raise ValueError(f"expected FIELD=VALUE with a TrainConfig field, got {item!r}")
        if name == "epochs" and value == "auto":
            config.epochs = None
        elif types[name] is tuple:
            setattr(config, name, tuple(int(v) for v in value.split(",")))
        else:
            setattr(config, name, types[name](value))
    return config


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--bits", default="16,32,64")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=result_path("hashing"))
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a TrainConfig field of the recipe, e.g. --set lexical_weight=1.0 (repeatable)",
    )
    args = parser.parse_args(argv)
    if not args.data.is_file():
        print(f"no {args.data}: run benchmarks.datasets.newsgroups (or .debian_corpus) first", file=sys.stderr)
        return 1
    try:
        train_config = recipe_with(args.set)
    except ValueError as exc:
        print(f"--set: {exc}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    report = evaluate(
        args.data,
        bits=args.bits,
        seeds=args.seeds,
        ks=(100,),
        with_map=True,
        device=args.device,
        cache=args.cache,
        train_config=train_config,
        progress=lambda line: print(f"[{time.perf_counter() - started:6.0f} s] {line}", file=sys.stderr, flush=True),
    )
    wall = time.perf_counter() - started
    train_seconds = [s.extra["train_seconds"] for s in report.scores if s.method == OURS]
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, {args.device}"
    print(f"{report.n_database} database documents, {report.n_queries} queries, {report.n_labels} labels; {machine}")
    print(f"{report.split_note}; {report.cached} embeddings from cache, {report.embedded} embedded")
    print(f"training: {min(train_seconds):.0f}-{max(train_seconds):.0f} s per model; whole run {wall:.0f} s\n")
    # The published numbers are 20 Newsgroups numbers: beside another corpus's rows they would mislead.
    published = args.data.name.startswith("20ng")
    print("P@100\n\n" + markdown(report, "p@100", published) + "\n\nmAP\n\n" + markdown(report, "map"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, {"wall_seconds": wall, "machine": machine, "report": asdict(report)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
