"""Issue 20: documents/s of a *first* ``semhash index``, torch vs the exported encoder, against ST.encode.

Run from the repository root (the 20 Newsgroups file is the shared one, see ``benchmarks/datasets/newsgroups.py``)::

    .venv/bin/python -m benchmarks.bench_first_index --docs 400

Writes ``--docs`` posts (a seeded sample) as text files, then in the same run:

- ``st-encode``: ``SentenceTransformer.encode`` of the posts' windows, in this process, model loaded (the
  issue's baseline; timed before and after the index runs, averaged);
- ``before`` / ``after``: a first index of the folder in a fresh interpreter (imports, model, scan, embed,
  train, codes, runtime export, faiss), ``SEMHASH_INDEX_EXPORT=0`` (torch embeds, as before issue 20) and
  ``=1`` (the per-model export embeds); each with a warm export cache (the usual case after the first index
  on a machine) and an empty one (the very first index: the export is made during the run either way).

docs/s is documents over the whole run's wall time (``whole``) and over its embedding phase (``embed``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.datasets.newsgroups import DEFAULT_SOURCE, read_posts
from benchmarks.harness import ROOT

CHILD = """
import json, sys, time
t0 = time.perf_counter()
from semhash.ingest import IndexOptions, index_paths
report = index_paths(sys.argv[1], [sys.argv[2]], IndexOptions(device="cpu"))
print(json.dumps({"embedded": report.embedded, "windows": report.windows, "embed_s": report.embed_seconds,
                  "train_s": report.train_seconds, "run_s": time.perf_counter() - t0, "warnings": report.warnings,
                  "torch_encoder": "sentence_transformers" in sys.modules}))
"""


def index_once(folder: Path, db: Path, cache: Path, export: bool) -> dict[str, Any]:
    env = {**os.environ, "SEMHASH_CACHE": str(cache), "SEMHASH_INDEX_EXPORT": "1" if export else "0"}
    env["PYTHONPATH"] = str(ROOT)
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, str(db), str(folder)], env=env, capture_output=True,
                         text=True, check=True)  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=2, help="before/after pairs with a warm export cache")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="the 20 Newsgroups jsonl.gz")
    args = parser.parse_args()

    from semhash.embed import SentenceTransformerEncoder

    posts = [p.text for p in read_posts(args.source) if p.split == "train"]
    texts = random.Random(args.seed).sample(posts, args.docs)
    encoder = SentenceTransformerEncoder(device="cpu")
    windows = [piece for text in texts for piece, _ in encoder.windows(text)]
    model = encoder._model

    def st_encode() -> float:
        started = time.perf_counter()
        model.encode(windows, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
        return time.perf_counter() - started

    model.encode(windows[:8])  # warm-up
    print(f"{len(texts)} posts, {len(windows)} windows; load: {os.getloadavg()}")
    st = [st_encode()]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "corpus"
        folder.mkdir()
        for i, text in enumerate(texts):
            (folder / f"{i:04d}.txt").write_text(text, encoding="utf-8")
        warm = Path(tmp) / "warm-cache"
        index_once(folder, Path(tmp) / "prime.db", warm, export=True)  # fills the warm cache
        # Alternated, so a busier minute slows both alike; st-encode between the rounds.
        runs = [("before, cache warm", False, warm), ("after, cache warm", True, warm)] * args.rounds
        runs += [("before, cache empty", False, None), ("after, cache empty", True, None)]
        for k, (label, export, cache) in enumerate(runs):
            result = index_once(folder, Path(tmp) / f"{k}.db", cache or Path(tmp) / f"cold-{k}", export)
            rows.append((label, result))
            if k % 2 == 1:
                st.append(st_encode())
    st_rate = len(texts) / (sum(st) / len(st))
    print(f"st-encode: {st_rate:.1f} docs/s (runs {', '.join(f'{s:.1f}' for s in st)} s); load: {os.getloadavg()}")
    print("| first index | wall s | docs/s whole | x st-encode | embed s | docs/s embed | x st-encode |")
    print("|---|---|---|---|---|---|---|")
    for label, r in rows:
        n = float(r["embedded"])
        wall, embed = float(r["wall_s"]), float(r["embed_s"])
        print(f"| {label} | {wall:.1f} | {n / wall:.1f} | {n / wall / st_rate:.2f} | {embed:.1f} | "
              f"{n / embed:.1f} | {n / embed / st_rate:.2f} |")  # fmt: skip
        if r["warnings"]:
            print(f"  warnings: {r['warnings']}")
    for label in ("before, cache warm", "after, cache warm"):
        mine = [r for name, r in rows if name == label]
        docs = sum(float(r["embedded"]) for r in mine)
        whole, embed = docs / sum(float(r["wall_s"]) for r in mine), docs / sum(float(r["embed_s"]) for r in mine)
        torch_loaded = sorted({bool(r["torch_encoder"]) for r in mine})
        print(f"{label}, all rounds: {whole:.2f} docs/s whole ({whole / st_rate:.2f}x st-encode), {embed:.2f} docs/s"
              f" embedding ({embed / st_rate:.2f}x); sentence-transformers loaded: {torch_loaded}")  # fmt: skip


if __name__ == "__main__":
    main()
