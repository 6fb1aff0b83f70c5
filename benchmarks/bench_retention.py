"""Retention of the rerank pool (issue 9): recall@10 against exact cosine, P@10 and latency per pool size.

The index: the first ``N`` stripped 20 Newsgroups posts (``benchmarks/datasets/newsgroups.py`` ``read_posts`` order)
whose embeddings are in ``--embeddings`` (the full ``embeddings.npz``, or the ``embeddings.partial.npz``
that the background embedding job writes: its first ``N`` posts), hashed at 32 bits by a model trained
on them (the default recipe, lexical features included). Queries:

* **short**: ``Subject:`` lines (``Re:`` removed, 3+ words, de-duplicated) from the raw posts, embedded
  here with the default encoder. Validation = subjects of train-split posts (the pool rule is chosen on
  these), test = subjects of test-split posts whose newsgroup is in the index (reported);
* **document**: stored embeddings of indexed posts (``semhash similar``: the post itself left out); two
  disjoint random halves for validation and test.

Smaller indexes (``--real-sizes``) are the first ``N`` real posts, coded by the same hasher (trained on
all ``n``), with the document queries among them. Larger indexes (``--sizes``) are synthetic: the ``N``
real rows, then noisy copies of them (unit embedding + Gaussian noise of ``--noise`` per component,
renormalised), coded by the same trained model with their source post's lexical vector; recall is
against exact cosine over the same synthetic matrix. For each index and pool size the search stage is
the one ``Searcher.search_embedding`` runs: Hamming top-``pool`` over the cached codes (ties by id) ->
cosines gathered from the memory-mapped float32 cache (:class:`semhash.caches.vectors.VectorCache`, a real file
in a temporary folder) -> sort; plus ``faiss:N`` (``--faiss-rows``: the same with faiss's top-N as the
candidate stage, the design it replaced) and ``exact`` (:meth:`VectorCache.scan`, every row). Pool 100
is the old default (the baseline of the same run).

``hybrid:P`` is the float candidate stage (:func:`semhash.search.candidates` with an
:class:`semhash.caches.ivf.EmbeddingIVF` built here on the same rows, its build time and size reported): the
Hamming pool of ``min(rule, HYBRID_HAMMING_POOL)`` joined by the IVF's top ``IVF_CANDIDATES`` from ``P``
probed cells, re-ranked by cosine; ``ivf:P`` is the same without the Hamming share. Latency is per
query, median and p90 in ms; the query's embedding time (encoder, one short query) is measured in the
same run. The ``rule`` flag marks what :func:`semhash.search.query_candidate_stage` runs by default: the pool
:func:`semhash.search.rerank_pool` gives below ``IVF_MIN_DOCS``, from there on ``hybrid:P`` with the ``P``
cells that hold about ``IVF_SCAN_ROWS`` rows (:meth:`semhash.caches.ivf.EmbeddingIVF.probes_for`).

    .venv/bin/python -m benchmarks.bench_retention --out benchmarks/results/retention.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import statistics
import tempfile
import time
from collections.abc import Sequence
from itertools import islice
from pathlib import Path

import faiss
import numpy as np
import torch

from benchmarks.datasets.newsgroups import DEFAULT_SOURCE, read_posts
from benchmarks.harness import CACHE as WORK
from benchmarks.harness import result_path, write_result
from semhash.caches.files import CacheStamp
from semhash.caches.hamming import CodeIndex
from semhash.caches.ivf import EmbeddingIVF
from semhash.caches.vectors import VectorCache
from semhash.codes import pack_bits, packed_to_ints
from semhash.config import HYBRID_HAMMING_POOL, IVF_MIN_DOCS, IVF_SCAN_ROWS
from semhash.model import HashingAutoencoder, encode_codes
from semhash.search import candidates, rerank_pool
from semhash.train import train_hasher

K = 10
_RE = re.compile(r"^\s*(re\s*:\s*)+", re.IGNORECASE)


def subjects(source: Path) -> dict[str, str]:
    """Raw record id -> its Subject line (``Re:`` removed)."""
    out = {}
    with gzip.open(source, "rt", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            head = record["text"].split("\n\n", 1)[0]
            for header in head.split("\n"):
                if header.lower().startswith("subject:"):
                    out[record["id"]] = _RE.sub("", header[8:].strip()).strip()
                    break
    return out


def code_rows(model: HashingAutoencoder, embeddings: np.ndarray, lexical: np.ndarray | None) -> np.ndarray:
    """Packed codes of embeddings joined by precomputed (weighted) lexical vectors of their source posts."""
    joined = embeddings if lexical is None else np.hstack([embeddings, lexical])
    joined = joined / np.maximum(np.linalg.norm(joined, axis=1, keepdims=True), 1e-12)
    model.eval()
    with torch.no_grad():
        bits = [(model.logits(torch.as_tensor(joined[s : s + 8192])) > 0).numpy() for s in range(0, len(joined), 8192)]
    return pack_bits(np.concatenate(bits))


def exact_tops(matrix: np.ndarray, queries: np.ndarray, exclude: list[int | None]) -> list[np.ndarray]:
    """Exact cosine top 10 of every query (float32, all rows), in blocks of rows so memory stays bounded."""
    best_s = np.full((len(queries), K), -np.inf, np.float32)
    best_i = np.zeros((len(queries), K), np.int64)
    for start in range(0, len(matrix), 100_000):
        scores = queries @ matrix[start : start + 100_000].T
        for q, x in enumerate(exclude):
            if x is not None and start <= x < start + len(scores[q]):
                scores[q, x - start] = -np.inf
        top = np.argpartition(-scores, K, axis=1)[:, :K]
        cand_s = np.hstack([best_s, np.take_along_axis(scores, top, 1)])
        cand_i = np.hstack([best_i, top + start])
        keep = np.argsort(-cand_s, axis=1, kind="stable")[:, :K]
        best_s, best_i = np.take_along_axis(cand_s, keep, 1), np.take_along_axis(cand_i, keep, 1)
    return list(best_i)


def search(
    vectors: VectorCache,
    emb: np.ndarray,
    code: int,
    pool: int,
    exclude: int | None,
    ivf: EmbeddingIVF | None = None,
    nprobe: int | None = None,
) -> np.ndarray:
    """The rerank stage of ``Searcher.search_embedding``: candidates (codes, + IVF) -> cosines -> top 10."""
    rows, dist = candidates(vectors, code, emb, pool, exclude=exclude, ivf=ivf, nprobe=nprobe)
    ids, cos = vectors.ids[rows], vectors.cosines_at(emb, rows)
    return ids[np.lexsort((ids, dist, -cos))][:K]


def faiss_search(
    index: CodeIndex, vectors: VectorCache, emb: np.ndarray, packed: np.ndarray, pool: int, exclude: int | None
) -> np.ndarray:
    """The same with faiss's top-``pool`` (ties by id) as the candidate stage: the previous design, for comparison."""
    d, i = index.search(packed[None], pool + (exclude is not None))
    ids, dist = i[0], d[0]
    keep = ids != exclude
    present, cos = vectors.cosines(emb, ids[keep])
    ids, dist = ids[keep][present], dist[keep][present]
    return ids[np.lexsort((ids, dist, -cos))][:K]


def measure(
    index: CodeIndex,
    vectors: VectorCache,
    ivf: EmbeddingIVF | None,
    truths: Sequence[np.ndarray],
    queries: Sequence[tuple[np.ndarray, np.ndarray, int | None]],
    labels: Sequence[str | None],
    db_labels: np.ndarray | None,
    pool: int | str,
) -> dict:
    """Recall@10 vs exact cosine, P@10 (when labelled), latency over ``queries`` = [(emb, code, exclude)]."""
    recalls, precisions, times = [], [], []
    hamming = min(rerank_pool(K, vectors.size), HYBRID_HAMMING_POOL)
    for (emb, code, exclude), label, truth in zip(queries, labels, truths, strict=True):
        t0 = time.perf_counter()
        if pool == "exact":
            found, _ = vectors.scan(emb, K, exclude=exclude)
        elif isinstance(pool, str) and pool.startswith(("hybrid:", "ivf:")):  # "ivf:P": no Hamming share
            code_int = int(packed_to_ints(code[None])[0])
            share = hamming if pool.startswith("hybrid:") else 0
            found = search(vectors, emb, code_int, share, exclude, ivf=ivf, nprobe=int(pool.split(":")[1]))
        elif isinstance(pool, str):  # "faiss:N"
            found = faiss_search(index, vectors, emb, code, int(pool[6:]), exclude)
        else:
            found = search(vectors, emb, int(packed_to_ints(code[None])[0]), pool, exclude)
        times.append((time.perf_counter() - t0) * 1000)
        recalls.append(len(set(found.tolist()) & set(truth.tolist())) / K)
        if label is not None and db_labels is not None:
            precisions.append(float(np.mean(db_labels[found] == label)))
    return {
        "pool": pool,
        "recall@10": round(float(np.mean(recalls)), 3),
        "P@10": round(float(np.mean(precisions)), 3) if precisions else None,
        "ms_p50": round(statistics.median(times), 2),
        "ms_p90": round(float(np.percentile(times, 90)), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embeddings", type=Path, default=None, help="embeddings.npz or embeddings.partial.npz")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--sizes", type=int, nargs="*", default=[50_000, 100_000, 1_000_000])
    parser.add_argument(
        "--real-sizes", type=int, nargs="*", default=[10_000], help="smaller real indexes: the first N posts"
    )
    parser.add_argument("--pools", type=int, nargs="*", default=[100, 2000, 10000])
    parser.add_argument("--nprobes", type=int, nargs="*", default=[16, 32, 64, 128], help="hybrid:P rows")
    parser.add_argument("--faiss-rows", action="store_true", help="also the faiss:N candidate stage (slower)")
    parser.add_argument("--queries", type=int, default=200, help="per kind and split")
    parser.add_argument("--noise", type=float, default=0.025, help="per-component noise of synthetic copies")
    parser.add_argument("--splits", nargs="*", default=["validation", "test"])
    parser.add_argument("--out", type=Path, default=result_path("retention"))
    args = parser.parse_args()
    cache_dir = WORK / "20ng"
    path = args.embeddings or next(
        p for p in (cache_dir / "embeddings.npz", cache_dir / "embeddings.partial.npz") if p.exists()
    )
    emb = np.load(path)["embeddings"].astype(np.float32)
    n = len(emb)
    posts = list(islice(read_posts(args.source), n))
    texts = [p.text for p in posts]
    db_labels = np.array([p.label for p in posts])
    print(f"index: the first {n} posts ({path.name}), labels {len(set(db_labels.tolist()))}", flush=True)

    from semhash.embed import load_encoder

    encoder = load_encoder(device="cpu")
    subject_of = subjects(args.source)
    rng = np.random.default_rng(0)
    in_index = set(db_labels.tolist())
    pools: dict[str, list[tuple[str, str]]] = {"validation": [], "test": []}
    seen: set[str] = set()
    for post in read_posts(args.source):
        text = subject_of.get(post.id, "")
        if len(text.split()) < 3 or text.lower() in seen or post.label not in in_index:
            continue
        seen.add(text.lower())
        pools["validation" if post.split == "train" else "test"].append((text, post.label))
    short: dict[str, list[tuple[str, str]]] = {}
    for split, rows in pools.items():
        pick = rng.choice(len(rows), size=min(args.queries, len(rows)), replace=False)
        short[split] = [rows[i] for i in sorted(pick)]
    doc_rows = rng.permutation(n)
    docs = {"validation": doc_rows[: args.queries], "test": doc_rows[args.queries : 2 * args.queries]}

    t0 = time.perf_counter()
    model, _ = train_hasher(emb, 32, device="cpu", texts=texts)
    print(f"trained in {time.perf_counter() - t0:.0f} s", flush=True)
    lexical = None
    if model.lexical is not None:
        lexical = (model.lexical.weight * model.lexical.transform(texts)).astype(np.float32)
    real_codes = encode_codes(model, emb, texts=texts)
    assert np.array_equal(real_codes, code_rows(model, emb, lexical)), "lexical features do not match encode_codes"

    short_emb = {s: np.asarray(encoder.encode([t for t, _ in short[s]]), np.float32) for s in short}
    short_codes = {s: encode_codes(model, short_emb[s], texts=[t for t, _ in short[s]]) for s in short}
    times = []
    for text, _ in short["validation"][:50]:
        t0 = time.perf_counter()
        encoder.encode([text])
        times.append((time.perf_counter() - t0) * 1000)
    result: dict = {
        "embeddings": str(path.name),
        "real_posts": n,
        "queries_per_split": args.queries,
        "noise": args.noise,
        "embed_short_query_ms_p50": round(statistics.median(times), 2),
        "runs": [],
    }
    print(f"embedding one short query: {result['embed_short_query_ms_p50']} ms (median)", flush=True)

    for size in [*[s for s in args.real_sizes if s < n], n, *[s for s in args.sizes if s > n]]:
        if size <= n:  # the real posts (or their first ``size``: a smaller real index, same hasher)
            matrix, codes = emb[:size], real_codes[:size]
        else:
            src = np.concatenate([np.arange(n), rng.integers(0, n, size - n)])
            matrix = np.empty((size, emb.shape[1]), np.float32)
            codes = np.empty((size, 4), np.uint8)
            matrix[:n], codes[:n] = emb, real_codes
            for s in range(n, size, 100_000):
                part = src[s : s + 100_000]
                noisy = emb[part] + rng.normal(0, args.noise, (len(part), emb.shape[1])).astype(np.float32)
                noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
                matrix[s : s + len(part)] = noisy
                codes[s : s + len(part)] = code_rows(model, noisy, None if lexical is None else lexical[part])
        ids = np.arange(size, dtype=np.int64)
        index = CodeIndex.build(ids, codes, 32)
        t0 = time.perf_counter()
        ivf = EmbeddingIVF.build(ids, matrix)
        build = {
            "size": size,
            "ivf_build_s": round(time.perf_counter() - t0, 1),
            "ivf_nlist": ivf.nlist,
            "ivf_mb": round(len(faiss.serialize_index(ivf.index)) / 2**20, 1),
            "vectors_mb": round(matrix.nbytes / 2**20, 1),
        }
        result.setdefault("ivf_builds", []).append(build)
        print(json.dumps(build), flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            sql = packed_to_ints(codes).view(np.int64)
            vectors = VectorCache.write(
                Path(tmp) / "v.vectors", CacheStamp("bench", 0), emb.shape[1], 32, [(ids, sql, matrix)]
            )
            labels = db_labels[:size] if size <= n else None
            for split in args.splits:
                kinds = {
                    "short": (
                        [(e, c, None) for e, c in zip(short_emb[split], short_codes[split], strict=True)],
                        [lab for _, lab in short[split]],
                    ),
                    "document": (
                        [(matrix[r], codes[r], int(r)) for r in docs[split] if r < size],
                        [db_labels[r] for r in docs[split] if r < size],
                    ),
                }
                for kind, (queries, qlabels) in kinds.items():
                    truths = exact_tops(matrix, np.stack([e for e, _, _ in queries]), [x for _, _, x in queries])
                    rule_pool = rerank_pool(K, size)
                    probes = ivf.probes_for(IVF_SCAN_ROWS)
                    rule = rule_pool if size < IVF_MIN_DOCS else f"hybrid:{probes}"
                    pool_list: list = sorted({p for p in args.pools if p < size} | {rule_pool})
                    faiss_rows = [f"faiss:{rule_pool}"] if args.faiss_rows else []
                    hybrid_rows = [f"hybrid:{p}" for p in sorted(set(args.nprobes) | {probes})]
                    hybrid_rows.append(f"ivf:{probes}")  # what the codes' share adds
                    for pool in [*pool_list, *faiss_rows, *hybrid_rows, "exact"]:
                        row = measure(
                            index,
                            vectors,
                            ivf,
                            truths,
                            queries,
                            qlabels if labels is not None else [None] * len(queries),
                            labels,
                            pool,
                        )
                        row.update(size=size, synthetic=size > n, split=split, kind=kind, rule=pool == rule)
                        result["runs"].append(row)
                        print(json.dumps(row), flush=True)
            del vectors, ivf
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out, result)


if __name__ == "__main__":
    main()
