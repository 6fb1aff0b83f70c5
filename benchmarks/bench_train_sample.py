r"""How many documents must the hashing model train on? P@100 on 20 Newsgroups vs the training sample.

Run from the repository root, after ``python -m benchmarks.datasets.newsgroups`` (or while it runs: see below)::

    .venv/bin/python -m benchmarks.bench_train_sample --sizes 1000,2000,5000,11000 \
        --out benchmarks/results/train_sample.json

What ``IndexOptions.max_train_docs`` does, measured: the model is trained (32 bits, seed 0, the default
recipe, lexical features included) on a seeded sample of ``size`` database documents, then *every*
database document and every query is coded with it, and P@100 (Hamming ranking, ties by database
order; :func:`semhash.metrics.ranking_metrics`) is scored against the whole database. The float cosine
ranking of the same embeddings is the ceiling.

Embeddings: ``--embeddings`` (default ``.cache/20ng/embeddings.npz`` of the main checkout, written by
benchmarks/datasets/newsgroups.py: database = the ``train`` split, queries = the ``test`` split). When only its
``.partial.npz`` exists (the embedding still running), the posts embedded so far are used, all from the
train split (the file is in read_posts order: train first, newsgroup by newsgroup): a seeded random
``--queries`` of them are the queries, the rest the database; the output says which.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import CACHE, write_result

DEFAULT_EMBEDDINGS = CACHE / "20ng" / "embeddings.npz"


def load(path: Path, n_queries: int) -> tuple[dict, str]:
    """Database and query embeddings, texts and labels, and a note on where they came from."""
    from benchmarks.datasets.newsgroups import read_posts

    posts = list(read_posts())
    if path.is_file():
        with np.load(path, allow_pickle=False) as data:
            vectors = data["embeddings"].astype(np.float32)
            split = data["split"].astype(str)
        is_query = split == "test"
        note = f"{path}: train split = database, test split = queries"
    else:
        partial = path.with_suffix(".partial.npz")
        with np.load(partial, allow_pickle=False) as data:
            vectors = data["embeddings"].astype(np.float32)
        posts = posts[: len(vectors)]
        assert all(p.split == "train" for p in posts), "the partial file reaches the test split: use the full one"
        # The file is in newsgroup order: a seeded random set of queries, so that they share the database's topics.
        is_query = np.zeros(len(vectors), dtype=bool)
        is_query[np.random.default_rng(1234).choice(len(vectors), n_queries, replace=False)] = True
        groups = len({p.label for p in posts})
        note = (
            f"{partial} ({len(vectors)} train posts embedded so far, {groups} of the 20 newsgroups): "
            f"{n_queries} seeded random ones = queries, the rest = database"
        )
    texts = [p.text for p in posts]
    labels = [[p.label] for p in posts]
    return {"vectors": vectors, "texts": texts, "labels": labels, "is_query": is_query}, note


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embeddings", type=Path, default=DEFAULT_EMBEDDINGS)
    parser.add_argument("--sizes", default="1000,2000,5000,11000")
    parser.add_argument("--queries", type=int, default=1000, help="queries taken from a partial file")
    parser.add_argument("--bits", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    from semhash.codes import hamming_matrix
    from semhash.metrics import label_matrix, ranking_metrics
    from semhash.model import encode_codes
    from semhash.train import TrainConfig, train_hasher

    data, note = load(args.embeddings, args.queries)
    q = data["is_query"]
    db, queries = data["vectors"][~q], data["vectors"][q]
    db_texts = [t for t, is_q in zip(data["texts"], q, strict=True) if not is_q]
    query_texts = [t for t, is_q in zip(data["texts"], q, strict=True) if is_q]
    vocabulary = sorted({name for item in data["labels"] for name in item})
    multi_hot = label_matrix(data["labels"], vocabulary)
    db_labels, query_labels = multi_hot[~q], multi_hot[q]
    print(f"{note}; database {len(db)}, queries {len(queries)}", flush=True)

    def p_at_100(distances: object) -> float:
        return ranking_metrics(distances, query_labels, db_labels, (100,), with_map=False)["p@100"]  # type: ignore[arg-type]

    ceiling = p_at_100(lambda a, b: -(queries[a:b] @ db.T))
    rows = []
    for size in sorted({min(int(s), len(db)) for s in args.sizes.split(",")}):
        # The same sampling as semhash.ingest.hashing._training_set: seeded, without replacement, in corpus order.
        keep = np.sort(np.random.default_rng(args.seed).choice(len(db), size, replace=False))
        started = time.perf_counter()
        model, _ = train_hasher(
            db[keep], args.bits, TrainConfig(seed=args.seed), device="cpu", texts=[db_texts[i] for i in keep]
        )
        seconds = time.perf_counter() - started
        db_codes = encode_codes(model, db, device="cpu", texts=db_texts)
        query_codes = encode_codes(model, queries, device="cpu", texts=query_texts)
        score = p_at_100(lambda a, b, qc=query_codes, dc=db_codes: hamming_matrix(qc[a:b], dc))
        row = {"train_docs": size, "p@100": round(score, 4), "train_seconds": round(seconds, 1)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    summary = {
        "data": note,
        "database": len(db),
        "queries": len(queries),
        "bits": args.bits,
        "seed": args.seed,
        "float_cosine_p@100": round(ceiling, 4),
        "runs": rows,
    }
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_result(args.out, summary, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
