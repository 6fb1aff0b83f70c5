"""Cold ``semhash query`` on an adapted index (``semhash train --adapt``): the exported ONNX path vs torch.

Run from the repository root (2-core CPU)::

    .venv/bin/python -m benchmarks.bench_cold_adapted              # data/sample, 5 repetitions per runtime
    .venv/bin/python -m benchmarks.bench_cold_adapted --reps 9 --keep /tmp/coldadapt   # keep (and reuse) the index

The index: ``data/sample`` indexed with the real model, then ``semhash train --adapt`` on a small sample
(``--adapt-docs``, one epoch), which exports the adapted encoder into ``<db>.runtime/``. Each repetition runs
``semhash query TEXT --db DB --json`` in a fresh process, alternating ``--runtime torch`` (the base model
loaded by sentence-transformers with the stored adapted layers swapped in) and ``--runtime onnx`` (the
export), so a busy machine slows both alike. Reported: the median wall time, the median CPU time (user +
system of the child, steadier than wall time on a shared machine), their ratios, and whether both runtimes
returned the same hits. A cold query's cost is start-up (imports, model load), so a small index measures it.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import ROOT

SEMHASH = str(Path(sys.executable).with_name("semhash"))
QUERY = "how do I fix a flat tyre on my bike"
RUNTIMES = ("torch", "onnx")


def _run(args: list[str]) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system) and stdout of one ``semhash`` child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([SEMHASH, *args], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def build(db: Path, adapt_docs: int) -> None:
    """Index ``data/sample`` and adapt its encoder (which exports the adapted runtime)."""
    _run(["index", str(ROOT / "data" / "sample"), "--db", str(db), "--device", "cpu"])
    adapt = ["--adapt", "--adapt-docs", str(adapt_docs), "--adapt-epochs", "1"]
    _run(["train", *adapt, "--db", str(db), "--device", "cpu"])
    info = json.loads(_run(["runtime", "info", "--db", str(db), "--json"])[2])
    if not info["fresh"] or "#adapted-" not in str(info.get("embedding_model")):
        raise SystemExit(f"no fresh adapted runtime at {info['folder']}: {info['reason']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="cold queries per runtime (alternating)")
    parser.add_argument("--adapt-docs", type=int, default=40, help="documents the adaptation trains on")
    parser.add_argument("--keep", type=Path, help="folder to keep (and reuse) the index in")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="semhash-cold-adapted-"))
    work.mkdir(parents=True, exist_ok=True)
    db = work / "adapted.db"
    try:
        if not db.exists():
            started = time.perf_counter()
            build(db, args.adapt_docs)
            print(f"built the adapted index in {time.perf_counter() - started:.0f} s", flush=True)
        times: dict[str, list[tuple[float, float]]] = {r: [] for r in RUNTIMES}
        hits: dict[str, list[str]] = {}
        for _ in range(args.reps):
            for runtime in RUNTIMES:
                wall, cpu, out = _run(["query", QUERY, "--db", str(db), "--json", "-k", "10", "--runtime", runtime])
                times[runtime].append((wall, cpu))
                hits[runtime] = [json.loads(line)["path"] for line in out.splitlines()]
        wall = {r: statistics.median(t[0] for t in v) for r, v in times.items()}
        cpu = {r: statistics.median(t[1] for t in v) for r, v in times.items()}
        print(
            f"cold `semhash query` on an adapted index (median of {args.reps}): "
            f"wall s torch {wall['torch']:.2f}, onnx {wall['onnx']:.2f} ({wall['torch'] / wall['onnx']:.1f}x); "
            f"CPU s torch {cpu['torch']:.2f}, onnx {cpu['onnx']:.2f} ({cpu['torch'] / cpu['onnx']:.1f}x); "
            f"same top-10 hits: {hits['torch'] == hits['onnx']}"
        )
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
