"""Warm query latency with and without the lexical features, on the same index, in one process.

Run from the repository root after ``make demo`` (which builds ``.cache/sample.db``)::

    .venv/bin/python -m benchmarks.bench_lexical_query

Copies the index twice, retrains one copy with ``lexical_weight=0`` (an embedding-only model; no re-embedding),
then times the same queries on both, alternating rounds, and prints the medians and their ratio.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.harness import ROOT
from semhash.ingest import retrain_index
from semhash.search import Searcher

QUERIES = ["graphics card drivers", "space shuttle launch", "gun control laws", "hockey playoffs"] * 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=ROOT / ".cache" / "sample.db")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lexical, plain = Path(tmp) / "lexical.db", Path(tmp) / "plain.db"
        shutil.copy(args.db, lexical)
        shutil.copy(args.db, plain)
        retrain_index(lexical, device="cpu")  # the default recipe, whatever model the source index holds
        retrain_index(plain, device="cpu", lexical_weight=0.0)
        with Searcher(lexical, device="cpu") as a:
            a.query("warm-up")
            b = Searcher(plain, encoder=a.encoder)  # one loaded sentence-transformers model for both
            b.query("warm-up")
            times: dict[str, list[float]] = {"lexical": [], "embedding-only": []}
            for _ in range(args.rounds):
                for name, searcher in (("lexical", a), ("embedding-only", b)):
                    started = time.perf_counter()
                    for text in QUERIES:
                        searcher.query(text)
                    times[name].append((time.perf_counter() - started) / len(QUERIES) * 1000)
            b.close()
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name in times:
        print(f"{name}: median {medians[name]:.2f} ms/query over {args.rounds} rounds of {len(QUERIES)}")
    print(f"ratio lexical / embedding-only: {medians['lexical'] / medians['embedding-only']:.3f}")


if __name__ == "__main__":
    main()
