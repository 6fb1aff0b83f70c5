"""Latency of the rerank's candidate stages, interleaved query by query (issue 9).

``benchmarks/bench_retention.py`` measures recall and times each stage over all queries in turn; on a shared
machine the load drifts between those blocks. Here every query runs every stage back to back (in a rotating
order), so drift hits them alike, and each stage's median is also given as a ratio to the exact scan of
the same run. Stages: ``codes`` (the Hamming pool :func:`semhash.search.rerank_pool` gives, re-ranked),
``codes+ivf`` (the default from ``IVF_MIN_DOCS``: :func:`semhash.search.candidates` with the IVF),
``ivf`` (the IVF's candidates alone) and ``exact`` (:meth:`VectorCache.scan`).

The index: the stripped 20 Newsgroups embeddings, then noisy copies up to each size (as in
``bench_retention.py``), in a real memory-mapped vector cache; codes are random 32-bit values (the time of
the Hamming stage does not depend on what the codes mean; recall is ``bench_retention.py``'s business).
Queries: test-split subject lines embedded with the default encoder.

    .venv/bin/python -m benchmarks.bench_stage_latency --sizes 100000 1000000
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_retention import subjects
from benchmarks.datasets.newsgroups import DEFAULT_SOURCE, read_posts
from benchmarks.harness import CACHE as WORK
from benchmarks.harness import result_path, write_result
from semhash.caches.files import CacheStamp
from semhash.caches.ivf import EmbeddingIVF
from semhash.caches.vectors import VectorCache
from semhash.config import HYBRID_HAMMING_POOL, IVF_SCAN_ROWS
from semhash.search import candidates, rerank_pool

K = 10


def synthetic(emb: np.ndarray, size: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    """The real rows, then noisy unit copies of random real rows up to ``size``."""
    matrix = np.empty((size, emb.shape[1]), np.float32)
    matrix[: min(size, len(emb))] = emb[:size]
    for start in range(len(emb), size, 100_000):
        part = rng.integers(0, len(emb), min(100_000, size - start))
        noisy = emb[part] + rng.normal(0, noise, (len(part), emb.shape[1])).astype(np.float32)
        matrix[start : start + len(part)] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
    return matrix


def time_stages(
    vectors: VectorCache, ivf: EmbeddingIVF, queries: np.ndarray, codes: np.ndarray, rng: np.random.Generator
) -> list[dict]:
    """Every stage on every query, back to back in a rotating order: p50, p90 and the ratio to ``exact``."""
    size = vectors.size
    pool, share = rerank_pool(K, size), min(rerank_pool(K, size), HYBRID_HAMMING_POOL)
    probes = ivf.probes_for(IVF_SCAN_ROWS)

    def ranked(rows: np.ndarray, query: np.ndarray) -> np.ndarray:
        cos = vectors.cosines_at(query, rows)
        return vectors.ids[rows][np.argsort(-cos, kind="stable")[:K]]

    stages = {
        "codes": lambda q, c: ranked(candidates(vectors, c, q, pool)[0], q),
        "codes+ivf": lambda q, c: ranked(candidates(vectors, c, q, share, ivf=ivf, nprobe=probes)[0], q),
        "ivf": lambda q, c: ranked(candidates(vectors, c, q, 0, ivf=ivf, nprobe=probes)[0], q),
        "exact": lambda q, c: vectors.scan(q, K)[0],
    }
    times: dict[str, list[float]] = {name: [] for name in stages}
    names = list(stages)
    for n, query in enumerate(queries):
        code = int(codes[rng.integers(0, size)])  # a stored code: a realistic Hamming neighbourhood
        for name in names[n % len(names) :] + names[: n % len(names)]:
            start = time.perf_counter()
            stages[name](query, code)
            times[name].append((time.perf_counter() - start) * 1000)
    exact = statistics.median(times["exact"])
    rows = []
    for name, values in times.items():
        row = {
            "size": size,
            "stage": name,
            "ms_p50": round(statistics.median(values), 2),
            "ms_p90": round(float(np.percentile(values, 90)), 2),
            "vs_exact": round(statistics.median(values) / exact, 3),
            "pool": pool if name == "codes" else share if name == "codes+ivf" else None,
            "probes": probes if "ivf" in name else None,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embeddings", type=Path, default=WORK / "20ng" / "embeddings.npz")
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--noise", type=float, default=0.025)
    parser.add_argument("--out", type=Path, default=result_path("stage_latency"))
    args = parser.parse_args()
    emb = np.load(args.embeddings)["embeddings"].astype(np.float32)
    subject_of = subjects(DEFAULT_SOURCE)
    texts = sorted({subject_of.get(p.id, "") for p in read_posts(DEFAULT_SOURCE) if p.split == "test"})
    texts = [t for t in texts if len(t.split()) >= 3]
    rng = np.random.default_rng(0)
    texts = [texts[i] for i in sorted(rng.choice(len(texts), args.queries, replace=False))]
    from semhash.embed import load_encoder

    queries = np.asarray(load_encoder(device="cpu").encode(texts), np.float32)
    result: dict = {"queries": len(queries), "runs": []}
    for size in args.sizes:
        matrix = synthetic(emb, size, args.noise, rng)
        ids = np.arange(size, dtype=np.int64)
        codes = rng.integers(0, 2**32, size, dtype=np.uint64).astype(np.int64)
        t0 = time.perf_counter()
        ivf = EmbeddingIVF.build(ids, matrix)
        build_s = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:
            vectors = VectorCache.write(
                Path(tmp) / "v.vectors", CacheStamp("bench", 0), emb.shape[1], 32, [(ids, codes, matrix)]
            )
            del matrix
            result["runs"].extend(time_stages(vectors, ivf, queries, codes, rng))
            result["runs"].append({"size": size, "ivf_build_s": round(build_s, 1), "nlist": ivf.nlist})
            del vectors, ivf
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, result)


if __name__ == "__main__":
    main()
