"""Cold ``semhash query`` wall time on a 100,000-document index: the torch path vs the exported fast path.

Run from the repository root (2-core CPU; nothing else heavy running)::

    .venv/bin/python -m benchmarks.bench_cold_query                  # 2,000 real posts -> 100,000 rows, 5 reps
    .venv/bin/python -m benchmarks.bench_cold_query --reps 7 --keep /tmp/coldq   # keep (and reuse) the index

The index: ``--real`` 20 Newsgroups posts indexed with the real model by ``semhash index`` (which trains
the hashing model and writes ``<db>.runtime/``), then replicated through the Store (same texts,
embeddings and codes under synthetic paths) up to ``--rows`` documents, and the faiss file rebuilt. Each
repetition runs ``semhash query TEXT --db DB --json`` in a fresh process, alternating ``--runtime torch``
and ``--runtime onnx`` (the fast path), so a busy machine slows both alike; the report is the median wall
time, the median CPU time (user + system of the child: steadier than wall time on a shared machine) and
the ratio. Then the fast path is broken down: ``python -X importtime`` (largest cumulative imports) and the
stages of one cold query timed in a fresh process (imports, store open, faiss load with its sidecar
checksum, runtime checks, ONNX session, query), as ``semhash query`` runs them (a quick-start searcher).
A kept index whose runtime predates the optimised ONNX graph gets one (``semhash runtime build``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.datasets.newsgroups import DEFAULT_SOURCE, read_posts

QUERY = "how do I fix a flat tyre on my bike"
SEMHASH = str(Path(sys.executable).with_name("semhash"))

STAGES = """
import time, sys, json
t = [time.perf_counter()]
marks = []
def mark(name):
    t.append(time.perf_counter()); marks.append((name, t[-1] - t[-2]))
import semhash.cli
mark("import semhash.cli")
from semhash.cli.fastpath import parse
from semhash.cli.query import query_command
parse(query_command, [sys.argv[3], "--db", sys.argv[1], "--json"])
mark("command line (semhash.cli.fastpath, as `semhash query` reads it)")
from semhash.search import QueryOptions, Searcher
mark("import semhash.search (faiss, corpus...)")
from semhash.caches.hamming import faiss_path_for
db = sys.argv[1]
searcher = Searcher(db, runtime=sys.argv[2], quick_start=True)
mark("Searcher: store open + faiss load (incl. sidecar sha256 of %d MB)"
     % (faiss_path_for(searcher.db_path).stat().st_size // 2**20))
codec = searcher.codec
mark("codec: active model + runtime manifest/freshness")
encoder = searcher.encoder
mark("encoder load (%s: file checks (stamps) + session / model load)" % codec.runtime)
hasher = codec.hasher
mark("hasher load")
embedding, code = searcher.embed_and_code(sys.argv[3])
mark("query: embed + code")
hits = searcher.search_embedding(embedding, code, QueryOptions(k=10))
mark("query: faiss search + rerank + rows")
print(json.dumps(marks))
"""


def _run(args: list[str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(args, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def build(db: Path, real: int, rows: int, work: Path) -> None:
    """Index ``real`` posts with the real model, then replicate rows up to ``rows`` documents."""
    import numpy as np

    from semhash.caches.sync import build_index
    from semhash.store import Store
    from semhash.types import SourceDocument

    posts = [p for p in read_posts(DEFAULT_SOURCE) if p.split == "train"][:real]
    corpus = work / "posts.jsonl"
    with corpus.open("w", encoding="utf-8") as handle:
        for post in posts:
            handle.write(json.dumps({"text": post.text}) + "\n")
    started = time.perf_counter()
    subprocess.run([SEMHASH, "index", str(corpus), "--db", str(db), "--device", "cpu"], check=True)
    print(f"indexed {len(posts)} real posts in {time.perf_counter() - started:.0f} s", flush=True)
    with Store.open(db, write=True) as store:
        ids, codes = store.codes()
        _, embeddings = store.embeddings(ids.tolist())
        texts = store.texts(ids.tolist())
        made = len(ids)
        batch = 5000
        while made < rows:
            n = min(batch, rows - made)
            pick = np.arange(made, made + n) % len(ids)
            docs = [SourceDocument(f"/synthetic/{made + k}.txt", 0, texts[j], f"s{made + k}", 0.0)
                    for k, j in enumerate(pick)]  # fmt: skip
            new_ids = store.upsert_documents(docs, embeddings[pick])
            store.set_codes(new_ids, codes[pick].tolist(), [0.0] * n)
            made += n
        build_index(store)
        print(f"replicated to {store.count()} documents", flush=True)


def importtime(db: Path) -> list[tuple[float, str]]:
    """The largest cumulative imports of a cold fast-path query (``python -X importtime``)."""
    code = "import sys; from semhash.cli import main; sys.argv = ['semhash'] + sys.argv[1:]; main()"
    args = [sys.executable, "-X", "importtime", "-c", code, "query", QUERY, "--db", str(db), "--json"]
    result = subprocess.run(args, capture_output=True, text=True)
    rows = []
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
            if cumulative.isdigit() and not name.startswith(" "):
                rows.append((int(cumulative) / 1e6, name.strip()))
    top = sorted((r for r in rows if "." not in r[1]), reverse=True)[:12]
    return top


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", type=int, default=2000, help="real posts indexed with the model")
    parser.add_argument("--rows", type=int, default=100_000, help="documents in the index")
    parser.add_argument("--reps", type=int, default=5, help="cold queries per runtime")
    parser.add_argument("--keep", type=Path, help="folder for the index (reused when it holds one)")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="semhash-coldq-"))
    work.mkdir(parents=True, exist_ok=True)
    db = work / "cold.db"
    try:
        if not db.exists():
            build(db, args.real, args.rows, work)
        runtime = db.with_name(db.name + ".runtime")
        manifest = runtime / "manifest.json"
        if not manifest.exists() or not json.loads(manifest.read_text()).get("optimized"):
            subprocess.run([SEMHASH, "runtime", "build", "--db", str(db)], check=True)
        print(f"index: {db} ({db.stat().st_size / 2**20:.0f} MB), runtime {runtime}", flush=True)
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        base = [SEMHASH, "query", QUERY, "--db", str(db), "--json"]
        times: dict[str, list[tuple[float, float]]] = {"torch": [], "fast": []}
        _run([*base, "--runtime", "onnx"])  # warm the OS file cache once for both (same files but the model)
        _run([*base, "--runtime", "torch"])
        for _ in range(args.reps):
            times["torch"].append(_run([*base, "--runtime", "torch"]))
            times["fast"].append(_run([*base, "--runtime", "onnx"]))
        wall = {k: statistics.median(t[0] for t in v) for k, v in times.items()}
        cpu = {k: statistics.median(t[1] for t in v) for k, v in times.items()}
        print(f"\ncold `semhash query` (median of {args.reps}): wall s torch {wall['torch']:.2f}, "
              f"fast path {wall['fast']:.2f}, ratio {wall['torch'] / wall['fast']:.1f}x; "
              f"CPU s torch {cpu['torch']:.2f}, fast path {cpu['fast']:.2f}")  # fmt: skip
        print("  torch wall:", " ".join(f"{t[0]:.2f}" for t in times["torch"]))
        print("  fast wall: ", " ".join(f"{t[0]:.2f}" for t in times["fast"]))
        helps = _run([SEMHASH, "--help"])
        print(f"`semhash --help`: {helps[0]:.2f} s")
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        for name in ("onnx", "torch"):
            result = subprocess.run([sys.executable, "-c", STAGES, str(db), name, QUERY], capture_output=True,
                                    text=True, check=True)  # fmt: skip
            print(f"\nstages of one cold query, runtime {name} (s):")
            for stage, seconds in json.loads(result.stdout.splitlines()[-1]):
                print(f"  {seconds:7.3f}  {stage}")
        print("\nlargest cumulative imports, fast path (python -X importtime, s):")
        for seconds, name in importtime(db):
            print(f"  {seconds:7.3f}  {name}")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
