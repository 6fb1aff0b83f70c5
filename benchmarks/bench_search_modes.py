r"""Issue 21: semantic, keyword and hybrid ranking on real folders, and the no-good-match floor.

Each judged query set (``benchmarks/datasets/search_modes/*_queries.json``: questions written before any
search, relevant files judged from ``grep -ril`` and reading) is run against an index of the folders it
names (its own ``--db``, built first with ``--index``). Reported per set, and over all sets pooled, per
split (validation: choose settings; test: report) and mode: relevant-in-top-5 and nDCG@10 (binary
relevance) over the questions that have an answer, and the median query time; then, for the weak flag,
the precision and recall of "best cosine below the floor" as a detector of the questions with no answer,
for a sweep of floors (chosen on the pooled validation half). ``choice`` names the mode with the best
pooled validation nDCG@10 (the default's measurement) and its pooled test numbers.

Usage (the two sets; one ``--db`` per ``--queries``, in the same order):
    PYTHONPATH=$PWD OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.bench_search_modes \
        --queries benchmarks/datasets/search_modes/usr_share_doc_queries.json \
                  benchmarks/datasets/search_modes/nodejs_api_queries.json \
        --db /tmp/doc.db /tmp/node.db --index --out benchmarks/results/search_modes.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.harness import write_result

SETS = Path(__file__).resolve().parent / "datasets" / "search_modes"
QUERIES = [SETS / "usr_share_doc_queries.json", SETS / "nodejs_api_queries.json"]
MODES = ("semantic", "keyword", "hybrid")


def ndcg(ranked: list[bool], n_relevant: int, k: int = 10) -> float:
    """Binary-relevance nDCG@k of a ranking (``ranked[i]``: the hit at rank i+1 is relevant)."""
    dcg = sum(1 / math.log2(i + 2) for i, hit in enumerate(ranked[:k]) if hit)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(n_relevant, k)))
    return dcg / ideal if ideal else 0.0


def build(db: Path, spec: dict, max_windows: int) -> float:
    """Index the spec's package folders into ``db``; returns seconds."""
    root = Path(spec["root"])
    paths = [str(root / p) for p in spec["packages"]]
    includes = [arg for pattern in spec["include"] for arg in ("--include", pattern)]
    cmd = [sys.executable, "-m", "semhash.cli", "index", *paths, "--db", str(db), *includes, "--quiet"]
    cmd += ["--max-windows", str(max_windows)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def run(db: Path, spec: dict, k: int, name: str = "") -> list[dict]:
    """Every question in every mode: the ranked relative paths (a hit's copies count as the hit), cosines, time.

    Each row is tagged with its set's ``name`` (``set``), so rows of several sets can be scored pooled.
    """
    from semhash.search import QueryOptions, Searcher

    root = spec["root"].rstrip("/") + "/"
    rows = []
    with Searcher(db, device="cpu", runtime="torch") as searcher:
        searcher.warm()
        for question in spec["questions"]:
            row = {**question, "set": name, "modes": {}}
            for mode in MODES:
                t0 = time.perf_counter()
                hits = searcher.query(question["query"], QueryOptions(k=k, mode=mode))
                seconds = time.perf_counter() - t0
                ranked = [[p.removeprefix(root) for p in (h.path, *h.copies)] for h in hits]
                row["modes"][mode] = {
                    "ranked": ranked,
                    "cosines": [round(float(h.cosine or 0), 4) for h in hits],
                    "best": hits.best,
                    "weak": hits.weak,
                    "seconds": seconds,
                }
            rows.append(row)
    return rows


def passage_latency(db: Path, spec: dict, k: int, count: int) -> dict:
    """Median query time (ms) of the first ``count`` questions without and with ``passages`` (semantic mode).

    Also how many windows were embedded per query.
    """
    from semhash.search import MAX_PASSAGE_WINDOWS, QueryOptions, Searcher, passage_windows

    out: dict = {}
    with Searcher(db, device="cpu", runtime="torch") as searcher:
        searcher.warm()
        for passages in (False, True):
            times, windows = [], []
            for question in spec["questions"][:count]:
                t0 = time.perf_counter()
                hits = searcher.query(question["query"], QueryOptions(k=k, passages=passages))
                times.append(time.perf_counter() - t0)
                texts = searcher.store.texts([h.id for h in hits])
                spans = [len(passage_windows(t, most=MAX_PASSAGE_WINDOWS)) for t in texts]
                windows.append(sum(n for n in spans if n > 1))
            out["with_passages" if passages else "without"] = {
                "ms_median": round(1000 * statistics.median(times), 1),
                "ms_max": round(1000 * max(times), 1),
                "windows_embedded_median": statistics.median(windows) if passages else 0,
            }
    return out


def score(rows: list[dict], split: str, k: int) -> dict:
    """Relevant-in-top-5 and nDCG@k per mode (and per kind of question) over the answerable questions.

    Also how many answerable questions each mode ranks better (nDCG) than semantic (``wins_vs_semantic``) and
    worse (``losses_vs_semantic``): with a few dozen questions, the means hide how many questions moved.
    """
    out: dict = {}
    chosen = [r for r in rows if r["split"] == split and r["relevant"]]
    for mode in MODES:
        per_kind: dict[str, list[tuple[float, float]]] = {}
        for row in chosen:
            relevant = set(row["relevant"])
            flags = [bool(relevant & set(paths)) for paths in row["modes"][mode]["ranked"]]
            found = float(any(flags[:5]))
            per_kind.setdefault("all", []).append((found, ndcg(flags, len(relevant), k)))
            per_kind.setdefault(row["kind"], []).append((found, ndcg(flags, len(relevant), k)))
        out[mode] = {
            kind: {
                "questions": len(pairs),
                "relevant_in_top5": round(statistics.fmean(p[0] for p in pairs), 3),
                f"ndcg@{k}": round(statistics.fmean(p[1] for p in pairs), 3),
            }
            for kind, pairs in per_kind.items()
        }
        times = [r["modes"][mode]["seconds"] for r in rows if r["split"] == split]
        out[mode]["ms_median"] = round(1000 * statistics.median(times), 1)
        deltas = [gain(row, mode, k) - gain(row, "semantic", k) for row in chosen]
        out[mode]["wins_vs_semantic"] = sum(d > 1e-9 for d in deltas)
        out[mode]["losses_vs_semantic"] = sum(d < -1e-9 for d in deltas)
    return out


def gain(row: dict, mode: str, k: int) -> float:
    """nDCG@k of one answerable question's ranking in ``mode``."""
    relevant = set(row["relevant"])
    return ndcg([bool(relevant & set(paths)) for paths in row["modes"][mode]["ranked"]], len(relevant), k)


def floors(rows: list[dict], split: str, mode: str) -> list[dict]:
    """Precision and recall of ``weak`` (best cosine below the floor) at finding the questions with no answer."""
    chosen = [r for r in rows if r["split"] == split]
    out = []
    for step in range(20, 56, 2):
        floor = step / 100
        weak = [(r["modes"][mode]["best"] or 0.0) < floor for r in chosen]
        none = [not r["relevant"] for r in chosen]
        tp = sum(w and n for w, n in zip(weak, none, strict=True))
        flagged, positives = sum(weak), sum(none)
        precision = tp / flagged if flagged else 1.0
        recall = tp / positives if positives else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out.append({"floor": floor, "flagged": flagged, "precision": round(precision, 3), "recall": round(recall, 3),
                    "f1": round(f1, 3)})  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, nargs="+", required=True, help="one database per --queries file")
    parser.add_argument("--queries", type=Path, nargs="+", default=QUERIES)
    parser.add_argument("--index", action="store_true", help="index the spec's folders into --db first")
    parser.add_argument("--max-windows", type=int, default=8)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--passages", type=int, default=0, help="also time --passages on the first N questions")
    args = parser.parse_args()
    if len(args.db) != len(args.queries):
        parser.error(f"{len(args.queries)} --queries files need as many --db paths, not {len(args.db)}")
    specs = {path.stem: json.loads(path.read_text()) for path in args.queries}
    report: dict = {
        "db": [str(db) for db in args.db],
        "queries": {name: len(s["questions"]) for name, s in specs.items()},
    }
    rows: list[dict] = []
    for (name, spec), db in zip(specs.items(), args.db, strict=True):
        if args.index:
            report[f"index_seconds_{name}"] = round(build(db, spec, args.max_windows), 1)
        rows += run(db, spec, args.k, name)
    groups = {name: [r for r in rows if r["set"] == name] for name in specs} | (
        {"pooled": rows} if len(specs) > 1 else {}
    )
    for group, members in groups.items():
        for split in ("validation", "test"):
            report[f"{group}_{split}" if len(specs) > 1 else split] = score(members, split, args.k)
    for split in ("validation", "test"):
        for mode in ("semantic", "hybrid"):
            report[f"{split}_floors_{mode}"] = floors(rows, split, mode)
    chosen = report["pooled_validation" if len(specs) > 1 else "validation"]
    best = max(MODES, key=lambda mode: chosen[mode]["all"][f"ndcg@{args.k}"])
    report["choice"] = {
        "mode": best,
        "by": "pooled validation nDCG",
        "test": report["pooled_test" if len(specs) > 1 else "test"][best]["all"],
    }
    if args.passages:
        report["passages"] = passage_latency(args.db[0], specs[args.queries[0].stem], args.k, args.passages)
    report["load_average"] = [round(x, 2) for x in os.getloadavg()]
    report["rows"] = rows
    text = json.dumps({key: value for key, value in report.items() if key != "rows"}, indent=1)
    print(text)
    if args.out:
        write_result(args.out, report)


if __name__ == "__main__":
    main()
