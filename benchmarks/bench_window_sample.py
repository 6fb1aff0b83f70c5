"""Issue 20: how close is a long document's embedding from a sample of its windows to the one from all of them?

Run from the repository root::

    .venv/bin/python -m benchmarks.bench_window_sample --budget 4000

Documents: the text files, HTML pages and gzipped changelogs/NEWS of ``/usr/share/doc`` (read as ``semhash
index`` reads them; ``.gz`` files decompressed), one copy of each text, at least two windows long. A seeded
sample per length bucket (windows of 254 tokens), within ``--budget`` windows in all, is embedded window by
window with the exported encoder (the per-model cache; cosine >= 0.9999 to the torch path). For caps of K
windows, the pooled embedding (token-weighted mean, as semhash pools) of the first K windows (``prefix``: what
``--max-windows`` did before issue 20) and of K windows evenly spread, first and last kept (``spread``), is
compared with the pooled embedding of every window: cosine, by bucket. Also counts the 20 Newsgroups posts
longer than each cap (``--source``): only those could change.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import random
import time
from pathlib import Path

import numpy as np

from benchmarks.datasets.newsgroups import DEFAULT_SOURCE, read_posts
from semhash.embed import spread_windows

BUCKETS = ((2, 4), (5, 16), (17, 64), (65, 256), (257, 1024))
CAPS = (4, 8, 16, 32, 64)
TEXT_SUFFIXES = (".txt", ".html", ".htm", ".md", ".rst")


def doc_texts(root: Path) -> list[tuple[str, str]]:
    """``(path, text)`` of each distinct text under ``root``."""
    from semhash.corpus import read_file

    seen: set[str] = set()
    out = []
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        name = path.name.lower()
        try:
            if name.endswith(".gz") and not name.endswith((".ps.gz", ".pdf.gz", ".tar.gz")):
                with gzip.open(path, "rb") as handle:
                    raw = handle.read(20_000_000)
                if b"\0" in raw[:4096]:
                    continue
                text = raw.decode("utf-8", "replace").strip()
            elif name.endswith(TEXT_SUFFIXES):
                docs = read_file(path)
                text = docs[0].text if docs else ""
            else:
                continue
        except (OSError, ValueError, EOFError):
            continue
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if text and digest not in seen:
            seen.add(digest)
            out.append((str(path), text))
    return out


def pooled(vectors: np.ndarray, weights: np.ndarray) -> np.ndarray:
    total = (vectors.astype(np.float64) * weights[:, None]).sum(axis=0)
    return total / max(float(np.linalg.norm(total)), 1e-12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("/usr/share/doc"))
    parser.add_argument("--budget", type=int, default=4000, help="windows embedded in all")
    parser.add_argument("--per-bucket", type=int, default=12, help="documents per length bucket at most")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="the 20 Newsgroups jsonl.gz")
    args = parser.parse_args()

    from semhash.config import DEFAULT_MODEL
    from semhash.runtime import OnnxEncoder
    from semhash.runtime.cache import cached_encoder

    print(f"load: {os.getloadavg()}")
    encoder = OnnxEncoder(cached_encoder(DEFAULT_MODEL))
    texts = doc_texts(args.root)
    spans = {path: encoder.windows(text) for path, text in texts}
    rng = random.Random(args.seed)
    chosen: list[str] = []
    budget = args.budget
    # Longest bucket first, so the documents the cap is for get their share of the budget.
    for low, high in reversed(BUCKETS):
        members = [p for p, w in spans.items() if low <= len(w) <= high]
        rng.shuffle(members)
        share = budget // 2 if high > 256 else budget  # the longest documents take at most half of it
        taken = 0
        for path in members[: args.per_bucket]:
            n = len(spans[path])
            if n > share - taken:
                continue
            chosen.append(path)
            taken += n
        budget -= taken
    bucket_of = {path: next(b for b in BUCKETS if b[0] <= len(spans[path]) <= b[1]) for path in chosen}
    print(f"{len(texts)} distinct texts; chosen {len(chosen)}, {sum(len(spans[p]) for p in chosen)} windows")
    results: dict[tuple[tuple[int, int], int, str], list[float]] = {}
    started = time.perf_counter()
    embedded = 0
    for path in chosen:
        pieces = spans[path]
        vectors = encoder.embed_windows([piece for piece, _ in pieces])
        embedded += len(pieces)
        weights = np.asarray([n for _, n in pieces], dtype=np.float64)
        full = pooled(vectors, weights)
        n = len(pieces)
        for cap in CAPS:
            if n <= cap:
                continue
            for method, rows in (("prefix", list(range(cap))), ("spread", spread_windows(n, cap))):
                cos = float(pooled(vectors[rows], weights[rows]) @ full)
                results.setdefault((bucket_of[path], cap, method), []).append(cos)
    seconds = time.perf_counter() - started
    rate = embedded / seconds
    print(f"embedded {embedded} windows in {seconds:.0f} s ({rate:.1f} windows/s); load: {os.getloadavg()}")
    print("\n| windows | docs | cap | prefix: mean cos | prefix: min | spread: mean cos | spread: min | windows kept |")
    print("|---|---|---|---|---|---|---|---|")
    for bucket in BUCKETS:
        docs = [p for p in chosen if bucket_of[p] == bucket]
        if not docs:
            continue
        mean_n = np.mean([len(spans[p]) for p in docs])
        for cap in CAPS:
            prefix, spread = results.get((bucket, cap, "prefix")), results.get((bucket, cap, "spread"))
            if not prefix or not spread:
                continue
            kept = np.mean([min(cap, len(spans[p])) / len(spans[p]) for p in docs])
            print(f"| {bucket[0]}-{bucket[1]} (mean {mean_n:.0f}) | {len(prefix)}/{len(docs)} | {cap} | "
                  f"{np.mean(prefix):.4f} | {min(prefix):.4f} | {np.mean(spread):.4f} | {min(spread):.4f} | "
                  f"{kept:.0%} |")  # fmt: skip
    # The windows of the whole folder, at each cap: what a cap saves on /usr/share/doc.
    counts = np.asarray([len(w) for w in spans.values()])
    print(f"\n/usr/share/doc: {len(counts)} texts, {counts.sum()} windows")
    for cap in CAPS:
        kept = np.minimum(counts, cap).sum()
        print(f"  cap {cap}: {kept} windows ({kept / counts.sum():.0%}), {(counts > cap).sum()} texts capped")
    if args.source.exists():
        posts = [p.text for p in read_posts(args.source)]
        windows = np.asarray([len(w) for w in (encoder.windows(t) for t in posts)])
        print(f"20 Newsgroups: {len(posts)} posts, {windows.sum()} windows, median {np.median(windows):.0f}")
        for cap in CAPS:
            print(f"  cap {cap}: {(windows > cap).sum()} posts longer ({(windows > cap).mean():.2%})")


if __name__ == "__main__":
    main()
