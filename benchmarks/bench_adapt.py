r"""``semhash train --adapt`` (issue 12): P@100, frozen vs adapted encoder, on 20 Newsgroups or any corpus.

Run from the repository root (a 2-core CPU: the first step is the long one)::

    .venv/bin/python -m benchmarks.datasets.adapt_cache   # once: frozen lower layers of every post (first window)
    .venv/bin/python -m benchmarks.bench_adapt --seeds 0 --out benchmarks/results/adapt.json
    .venv/bin/python -m benchmarks.bench_adapt --set lr=1e-4 --set epochs=3   # a variant (AdaptConfig fields)
    # another corpus (the eval JSONL, its embeddings cache, its adapt_cache.py output), three code lengths:
    .venv/bin/python -m benchmarks.datasets.adapt_cache --data .cache/debian/debian.jsonl --out .cache/debian/lower.npz
    .venv/bin/python -m benchmarks.bench_adapt --data .cache/debian/debian.jsonl \
        --embeddings .cache/debian/embeddings.npz --cache .cache/debian/lower.npz --seeds 0,1,2 --bits 16,32,64

Protocol: that of ``benchmarks/bench_hashing.py`` (database = the ``train`` split, queries = the ``test``
split; on 20 Newsgroups the bydate split, 11,014 train posts and 7,317 test posts; P@100 over the Hamming
ranking, ties by id, labels only for scoring), plus P@10 of the default search (the ``max(10 k, 100)`` =
100 Hamming candidates re-ranked by cosine of the stored embeddings, :mod:`semhash.search`).

Code lengths: the adaptation runs once per seed, for ``--adapt-bits`` teacher bits (default 32, the
index's default code length; the adaptation's default loss is the contrastive term alone, which does not
depend on the code length); then each row's hashing model is trained for every width of ``--bits`` on the
same vectors. With one width the result keys are ``"<split> <row>"`` as before; with several,
``"<split> <row> @<bits>"``.

What runs is :func:`semhash.adapt.adapt_top`, the training step of ``semhash train --adapt``, on the same
cached token states the command computes (``benchmarks/datasets/adapt_cache.py`` stores them for every post, so the
re-embedding through the adapted top layers reuses them: equal to the command's re-embedding, checked by
``tests/test_adapt.py``). Targets come from the frozen encoder's stored (window-pooled) embeddings and the
lexical vector, as in an index. Settings are chosen on a **validation slice**: a seeded 10% of the
database serves as queries against the other 90%; the adaptation trains only on documents of that 90%,
never on the validation slice or the test queries. The test table uses the whole database as usual.

Rows: ``frozen (index default)`` = the stored embeddings (254-token windows, all of them, pooled);
``frozen, adapted protocol`` = the frozen encoder embedding like the adapted one (first 126-token window);
``adapted`` = the adapted encoder. Each row's hashing model is the default recipe trained on its embeddings.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.harness import CACHE as WORK
from benchmarks.harness import result_path, write_result
from semhash.adapt import AdaptConfig, adapt_top, embed_states, sample_documents, split_encoder
from semhash.adapted import set_window
from semhash.codes import hamming_matrix
from semhash.embed import SentenceTransformerEncoder
from semhash.metrics import label_matrix, ranking_metrics
from semhash.model import encode_codes
from semhash.train import TrainConfig, _fit_lexical, build_targets, train_hasher

DATA = WORK / "20ng" / "20ng-stripped.jsonl"
EMBEDDINGS = WORK / "20ng" / "embeddings.npz"
CACHE = WORK / "adapt" / "lower.npz"


def with_overrides(items: list[str]) -> AdaptConfig:
    """:class:`AdaptConfig` with ``FIELD=VALUE`` overrides, each of its field's type."""
    config = AdaptConfig()
    types = {f.name: type(getattr(config, f.name)) for f in dataclasses.fields(config)}
    for item in items:
        name, _, value = item.partition("=")
        if name not in types or not value:
            raise ValueError(f"expected FIELD=VALUE with an AdaptConfig field, got {item!r}")
        setattr(config, name, types[name](value))
    return config


def rerank_p10(q_codes: np.ndarray, d_codes: np.ndarray, q_vec: np.ndarray, d_vec: np.ndarray,
               q_lab: np.ndarray, d_lab: np.ndarray, pool: int = 100, block: int = 512) -> float:  # fmt: skip
    """P@10 of the default search: ``pool`` Hamming candidates (ties by id) re-ranked by cosine."""
    hits = []
    for start in range(0, len(q_codes), block):
        dist = hamming_matrix(q_codes[start : start + block], d_codes)
        # Stable sort on distance: ties in database (id) order, as the index returns them.
        candidates = np.argsort(dist, axis=1, kind="stable")[:, :pool]
        cos = np.einsum("qd,qkd->qk", q_vec[start : start + block], d_vec[candidates])
        top = np.take_along_axis(candidates, np.argsort(-cos, axis=1, kind="stable")[:, :10], axis=1)
        relevant = (d_lab[top] & q_lab[start : start + block, None]).any(axis=2)
        hits.append(relevant.mean(axis=1))
    return float(np.concatenate(hits).mean())


def score(vectors: np.ndarray, texts: list[str], labels: np.ndarray, db: np.ndarray, queries: np.ndarray,
          bits: int, seed: int, device: str = "cpu") -> dict[str, float]:  # fmt: skip
    """Train the default recipe on ``vectors[db]`` and score the queries: P@100, P@10 rerank, float P@100."""
    started = time.perf_counter()
    db_texts = [texts[i] for i in db]
    q_texts = [texts[i] for i in queries]
    model, _ = train_hasher(vectors[db], bits, TrainConfig(seed=seed), device=device, texts=db_texts)
    d_codes = encode_codes(model, vectors[db], device=device, texts=db_texts)
    q_codes = encode_codes(model, vectors[queries], device=device, texts=q_texts)
    q_lab, d_lab = labels[queries], labels[db]
    out = ranking_metrics(lambda a, b: hamming_matrix(q_codes[a:b], d_codes), q_lab, d_lab, (100,), False)
    floats = ranking_metrics(lambda a, b: -(vectors[queries][a:b] @ vectors[db].T), q_lab, d_lab, (100,), False)
    # A database under 100 documents (an --every smoke test) gives precision at its size: "p@<n>".
    return {
        "p@100": next(iter(out.values())),
        "p@10_rerank": rerank_p10(q_codes, d_codes, vectors[queries], vectors[db], q_lab, d_lab),
        "float_p@100": next(iter(floats.values())),
        "seconds": time.perf_counter() - started,
    }


def cell_key(split: str, name: str, bits: int, widths: list[int]) -> str:
    """The result key of one score: ``"<split> <row>"`` with one code length (as before), else ``... @<bits>``."""
    return f"{split} {name}" if len(widths) == 1 else f"{split} {name} @{bits}"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--embeddings", type=Path, default=EMBEDDINGS)
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--bits", default="32", help="code lengths of the hashing models, e.g. 16,32,64")
    parser.add_argument("--adapt-bits", type=int, default=32, help="teacher bits of the adaptation's targets")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--skip-test", action="store_true", help="validation slice only")
    parser.add_argument(
        "--skip-frozen-first", action="store_true", help="no 'frozen, adapted protocol' row (saves a pass)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="where to adapt, embed and train (cpu, cuda, ...)")
    parser.add_argument("--model", default=None, help="the base model (name or folder) [default: packaged]")
    parser.add_argument("--only-adapted", action="store_true", help="score the adapted row only (variants)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--every", type=int, default=1, help="every Nth post only (a smoke test)")
    parser.add_argument("--out", type=Path, default=result_path("adapt"))
    args = parser.parse_args(argv)
    config = with_overrides(args.set)
    widths = [int(b) for b in str(args.bits).split(",")]
    log_start = time.perf_counter()

    def say(line: str) -> None:
        print(f"[{time.perf_counter() - log_start:6.0f} s] {line}", file=sys.stderr, flush=True)

    json_rows = [json.loads(line) for line in args.data.open(encoding="utf-8")]
    rows = json_rows[:: args.every]
    texts = [r["text"] for r in rows]
    labels = label_matrix([r["labels"] for r in rows], sorted({x for r in rows for x in r["labels"]}))
    is_query = np.array([r["split"] == "test" for r in rows])
    cached = np.load(args.embeddings)
    if "ids" in cached and [str(i) for i in cached["ids"]] != [str(r["id"]) for r in json_rows]:
        raise SystemExit(f"{args.embeddings} does not hold the embeddings of {args.data}, in its order")
    frozen = cached["embeddings"][:: args.every].astype(np.float32)
    meta = np.load(args.cache)
    if int(meta["layers"]) != config.layers or int(meta["max_seq_length"]) != config.max_seq_length:
        raise SystemExit(f"{args.cache} caches {meta['layers']} layers at {meta['max_seq_length']} tokens")
    offsets = meta["offsets"]
    flat = torch.from_numpy(np.load(args.cache.with_suffix(".states.npy")))
    states = [flat[offsets[i] : offsets[i + 1]] for i in range(len(texts))]
    say(f"{len(texts)} posts, {int(offsets[-1])} cached tokens; cache took {float(meta['seconds']):.0f} s")

    database = np.flatnonzero(~is_query)
    queries = np.flatnonzero(is_query)
    rng = np.random.default_rng(12345)
    val = np.sort(rng.choice(database, int(len(database) * args.val_fraction), replace=False))
    db_minus_val = np.setdiff1d(database, val)

    # One thread: on this shared 2-core machine two spin against each other (3x slower per step, measured).
    torch.set_num_threads(args.threads)
    encoder = SentenceTransformerEncoder(args.model, device=args.device, max_windows=1)
    set_window(encoder, config.max_seq_length)
    args.out.parent.mkdir(parents=True, exist_ok=True)

    results: dict[str, Any] = {"config": dataclasses.asdict(config), "runs": []}
    frozen_first: np.ndarray | None = None
    for seed in [int(s) for s in args.seeds.split(",")]:
        cfg = dataclasses.replace(config, seed=seed)
        train_config = TrainConfig(seed=seed)
        # Targets from the index's features of the adaptation's corpus (database minus the validation slice).
        corpus_texts = [texts[i] for i in db_minus_val]
        lexical = _fit_lexical(corpus_texts, train_config)
        assert lexical is not None
        features = lexical.features(frozen[db_minus_val], corpus_texts)
        targets = build_targets(features, args.adapt_bits, train_config, args.device)
        picked = sample_documents(len(db_minus_val), cfg)
        top = split_encoder(encoder, cfg.layers)
        t0 = time.perf_counter()

        def step_line(done: int, total: int) -> None:
            if done % 10 == 0 or done == total:
                say(f"step {done}/{total}")

        sample_states = [states[db_minus_val[i]] for i in picked]
        stats = adapt_top(top, sample_states, targets, picked, lexical.dim, cfg, args.device, progress=step_line)
        adapt_seconds = time.perf_counter() - t0
        say(f"seed {seed}: adapted on {len(picked)} posts in {adapt_seconds:.0f} s: {stats}")
        t0 = time.perf_counter()
        adapted = embed_states(top, states, args.device)
        reembed_seconds = time.perf_counter() - t0
        say(f"adapted top layers over every post: {reembed_seconds:.0f} s")
        np.save(args.out.with_suffix(f".adapted-{seed}.npy"), adapted)
        run: dict = {"seed": seed, "adapt_seconds": adapt_seconds, "reembed_top_seconds": reembed_seconds,
                     "adapt_stats": stats}  # fmt: skip
        names = ["adapted"] + ([] if args.only_adapted else ["frozen (index default)"])
        names += [] if args.skip_frozen_first or args.only_adapted else ["frozen, adapted protocol"]
        for name in names:
            if name == "frozen, adapted protocol" and frozen_first is None:
                t0 = time.perf_counter()
                frozen_first = embed_states(split_encoder(encoder, config.layers), states, args.device)
                results["frozen_top_seconds"] = time.perf_counter() - t0
                say(f"frozen top layers over every post: {results['frozen_top_seconds']:.0f} s")
            vectors = {"adapted": adapted, "frozen (index default)": frozen}.get(name, frozen_first)
            assert vectors is not None
            splits = [("val", db_minus_val, val)] + ([] if args.skip_test else [("test", database, queries)])
            for split, db_rows, q_rows in splits:
                for bits in widths:
                    key = cell_key(split, name, bits, widths)
                    cell = score(vectors, texts, labels, db_rows, q_rows, bits, seed, args.device)
                    run[key] = {**cell, "bits": bits}
                    say(f"seed {seed} {key}: {run[key]}")
                    args.out.write_text(json.dumps({**results, "partial": run}, indent=1, default=float))
        results["runs"].append(run)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    results.update(machine=machine, cache_seconds=float(meta["seconds"]), threads=args.threads, bits=widths,
                   adapt_bits=args.adapt_bits, data=str(args.data), device=args.device)  # fmt: skip
    write_result(args.out, results)
    for split in ("val", "test"):
        for bits in widths:
            print(f"\n{split}, {bits} bits: P@100 / P@10 rerank / float P@100, mean over seeds ({machine})")
            for name in ("frozen (index default)", "frozen, adapted protocol", "adapted"):
                key = cell_key(split, name, bits, widths)
                cells = [r[key] for r in results["runs"] if key in r]
                if cells:
                    mean = {k: np.mean([c[k] for c in cells]) for k in ("p@100", "p@10_rerank", "float_p@100")}
                    std = np.std([c["p@100"] for c in cells])
                    print(f"| {name} | {mean['p@100']:.4f} ± {std:.4f} | {mean['p@10_rerank']:.4f} "
                          f"| {mean['float_p@100']:.4f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
