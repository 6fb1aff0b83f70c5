"""Benchmark of indexing one huge file beside small ones (issue 8): peak memory and wall time.

Run from the repository root::

    .venv/bin/python -m benchmarks.bench_large_file --out benchmarks/results/large_file.json

It writes a corpus of one ``--mb`` MB ``.txt`` file (20 Newsgroups posts concatenated, real text) and
``--small`` small ``.txt`` files (one post each), then runs ``semhash index`` on it as a subprocess, each
run in a fresh database, and measures the child's peak RSS (``getrusage(RUSAGE_CHILDREN).ru_maxrss`` in a
small wrapper process, so each run is measured alone) and its wall time:

1. ``--max-windows 8``: a complete run (read, embed, store the 50 MB text, train, encode, faiss).
2. no window cap: the huge file really embedded, window chunk after window chunk. On a 2-core CPU the
   whole 50 MB (about 50,000 windows) takes far longer than a benchmark should, so the run is interrupted
   (SIGINT, as Ctrl-C) after ``--full-seconds``; the peak RSS is then that of the steady state of
   embedding the huge document, and the database shows what was committed (the small files).
   ``--full-seconds 0`` runs it to the end.
3. with ``--baseline-code DIR`` (a checkout of the old code, e.g. ``git worktree add /tmp/old 53de4eb``):
   run 1 again with that code, interrupted after ``--baseline-seconds``, for the before/after comparison.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import DATA, ROOT, write_result

SOURCE = DATA / "20newsgroups" / "20ng.jsonl.gz"

# Runs one command, interrupts it (SIGINT) after a timeout, and prints its peak RSS and wall time as JSON.
WRAPPER = """
import json, resource, signal, subprocess, sys, time
timeout = float(sys.argv[1]) or None
started = time.perf_counter()
child = subprocess.Popen(sys.argv[2:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
interrupted = False
try:
    child.wait(timeout=timeout)
except subprocess.TimeoutExpired:
    interrupted = True
    child.send_signal(signal.SIGINT)
    try:
        child.wait(timeout=120)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
stdout = child.stdout.read().decode(errors="replace")
stderr = child.stderr.read().decode(errors="replace")
print(json.dumps({
    "seconds": time.perf_counter() - started,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    "returncode": child.returncode,
    "interrupted": interrupted,
    "stdout": stdout[-5000:],
    "stderr_tail": stderr[-300:],
}))
"""

# `semhash` from a given source tree (the old code for the baseline): run with `-P` and PYTHONPATH=<tree>, so the
# tree comes first on the path (before the working directory's and the editable install's semhash).
LAUNCH = "import sys; sys.argv[0] = 'semhash'; from semhash.cli import app; app()"


def write_corpus(root: Path, mb: float, small: int) -> tuple[Path, int]:
    """One ``mb`` MB file of concatenated posts and ``small`` one-post files; returns the big file and its size."""
    root.mkdir(parents=True, exist_ok=True)
    target = int(mb * 1024 * 1024)
    big = root / "huge.txt"
    written = 0
    small_written = 0
    with gzip.open(SOURCE, "rt", encoding="utf-8") as source, big.open("w", encoding="utf-8") as out:
        while written < target:
            for line in source:
                text = json.loads(line)["text"].strip()
                if not text:
                    continue
                if small_written < small and 200 < len(text) < 3000:
                    (root / f"small-{small_written:02d}.txt").write_text(text, encoding="utf-8")
                    small_written += 1
                    continue
                out.write(text + "\n\n")
                written += len(text.encode("utf-8")) + 2
                if written >= target:
                    break
            source.seek(0)  # the corpus is ~20 MB of text: cycle through it again
    return big, big.stat().st_size


def run_index(code: Path, corpus: Path, db: Path, extra: list[str], timeout: float) -> dict:
    """``semhash index`` in a fresh process, measured by the wrapper."""
    cmd = [sys.executable, "-P", "-c", LAUNCH, "index", str(corpus), "--db", str(db), "--device", "cpu", "--json"]
    out = subprocess.run(
        [sys.executable, "-c", WRAPPER, str(timeout), *cmd, *extra],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(code)},
    )
    result = json.loads(out.stdout)
    try:  # the index report (--json) of a run that finished: where its time went
        report = json.loads(result.pop("stdout"))
        result["report"] = {k: report[k] for k in ("embed_seconds", "train_seconds", "seconds", "windows", "added")}
    except (json.JSONDecodeError, KeyError):
        pass
    result["command"] = f"semhash index {corpus} --db {db} --device cpu --json {' '.join(extra)}".strip()
    result["code"] = str(code)
    result.update(committed(db))
    return result


def committed(db: Path) -> dict:
    """What the run left in the database: documents, small ones, whether the huge one is in."""
    if not db.exists():
        return {"committed_documents": 0, "committed_small": 0, "huge_committed": False}
    with sqlite3.connect(db) as conn:
        paths = [row[0] for row in conn.execute("SELECT path FROM documents")]
    return {
        "committed_documents": len(paths),
        "committed_small": sum(1 for p in paths if Path(p).name.startswith("small-")),
        "huge_committed": any(Path(p).name == "huge.txt" for p in paths),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=50.0, help="size of the huge file in MB")
    parser.add_argument("--small", type=int, default=20, help="small files beside it")
    parser.add_argument("--full-seconds", type=float, default=240, help="interrupt the uncapped run (0 = never)")
    parser.add_argument("--skip-full", action="store_true", help="only the --max-windows 8 run")
    parser.add_argument("--baseline-code", type=Path, help="source tree of the old code, for run 3")
    parser.add_argument("--baseline-seconds", type=float, default=180, help="interrupt the baseline after this")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()

    results: dict = {"machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "runs": []}
    with tempfile.TemporaryDirectory(prefix="semhash-large-") as tmp:
        work = Path(tmp)
        corpus = work / "corpus"
        big, size = write_corpus(corpus, args.mb, args.small)
        results["huge_file_bytes"] = size
        results["small_files"] = args.small
        print(f"corpus: {big} ({size / 1e6:.1f} MB) + {args.small} small files", flush=True)
        plan = [("max_windows_8", ROOT, ["--max-windows", "8"], 0.0)]
        if not args.skip_full:
            plan.append(("uncapped", ROOT, [], args.full_seconds))
        if args.baseline_code:
            plan.append(
                ("baseline_max_windows_8", args.baseline_code.resolve(), ["--max-windows", "8"], args.baseline_seconds)
            )
        for name, code, extra, timeout in plan:
            started = time.strftime("%H:%M:%S")
            result = run_index(code, corpus, work / f"{name}.db", extra, timeout)
            result["name"] = name
            results["runs"].append(result)
            print(
                f"{started} {name}: {result['seconds']:.1f} s, peak RSS {result['peak_rss_mb']:.0f} MB, "
                f"rc {result['returncode']}{' (interrupted)' if result['interrupted'] else ''}, "
                f"committed {result['committed_documents']} documents ({result['committed_small']} small, "
                f"huge {'in' if result['huge_committed'] else 'not in'})",
                flush=True,
            )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_result(args.out, results, indent=2)


if __name__ == "__main__":
    main()
