"""Benchmark of ``semhash outliers``: how well does the score spot documents of an unseen newsgroup?

Protocol (one *fold* per held-out group):

1. The index is trained (:func:`semhash.train.train_hasher`, default recipe, texts given for the lexical
   features) on the *train* posts of every chosen group but one, the held-out group.
2. A mixed batch is added: the *test* posts of the held-out group (positives) and the test posts of the
   groups the model was trained on (negatives). The new batch is coded with
   :func:`semhash.model.encode_with_errors`, as ``semhash index`` does when it adds documents.
3. Each score ranks the batch; AUROC of "held-out group" vs "trained groups" (1.0: every post of the new
   group ranks above every other one; 0.5: chance). Scores, all on the same embeddings:

   * ``recon``: the stored reconstruction error (the old ``semhash outliers`` score);
   * ``knn``: 1 - cosine to the k-th nearest indexed document (k = 10), the usual kNN baseline (what
     ``semhash outliers --score knn`` computes: the batch is indexed, so its posts are neighbours too);
   * ``knn_trained``: the same distance to the posts the model was trained on only;
   * ``centroid``: 1 - cosine to the mean of the indexed embeddings;
   * ``combined``: ``semhash outliers --score combined`` (:func:`semhash.outliers.combined_scores`): the
     mean of the robust z-scores of ``recon`` and ``knn``.

AUROCs are averaged over the folds. Drift (:func:`semhash.neighbourhood.drift_statistics`): the share of a batch
above the trained-on posts' 95th percentile (5% expected without drift), by kNN distance (what
:func:`semhash.neighbourhood.drift_warning` uses) and by reconstruction error, for a half-and-half batch (every
held-out test post and as many test posts of the trained groups) and for the trained groups' test posts.

Subset (CPU budget; the full embedding is slow on a shared 2-core machine): the groups in ``GROUPS``,
``--train-per-group`` train posts and ``--test-per-group`` test posts of each (first ones in file order),
stripped as in :mod:`newsgroups` (headers, footers, quotes), embedded with the default MiniLM encoder
(window pooling) and cached in ``.cache/outliers/embeddings.npz``.

Usage::

    python -m benchmarks.bench_outliers embed          # the subset's embeddings (cached)
    python -m benchmarks.bench_outliers run [--folds 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import CACHE as WORK

CACHE = WORK / "outliers"
GROUPS = [
    "sci.space",
    "rec.autos",
    "comp.graphics",
    "talk.politics.guns",
    "sci.med",
    "rec.sport.hockey",
    "misc.forsale",
    "alt.atheism",
]


def embed(train_per_group: int, test_per_group: int) -> Path:
    """Embed the subset (see the module docstring) into ``CACHE/embeddings.npz``; returns the path."""
    from benchmarks.datasets.newsgroups import read_posts
    from semhash.embed import load_encoder

    path = CACHE / "embeddings.npz"
    if path.exists():
        return path
    quota = {(g, s): train_per_group if s == "train" else test_per_group for g in GROUPS for s in ("train", "test")}
    posts = []
    for post in read_posts():
        key = (post.label, post.split)
        if quota.get(key, 0) > 0:
            quota[key] -= 1
            posts.append(post)
    encoder = load_encoder(device="cpu")
    started = time.perf_counter()
    chunks = []
    for start in range(0, len(posts), 128):
        chunks.append(encoder.encode([p.text for p in posts[start : start + 128]]))
        print(f"{start + len(chunks[-1])}/{len(posts)} embedded, {time.perf_counter() - started:.0f} s", flush=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        texts=np.array([p.text for p in posts]),
        labels=np.array([p.label for p in posts]),
        split=np.array([p.split for p in posts]),
        embeddings=np.concatenate(chunks).astype(np.float32),
        model=np.array(encoder.name),
    )
    return path


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["embed", "run"])
    parser.add_argument("--train-per-group", type=int, default=200)
    parser.add_argument("--test-per-group", type=int, default=100)
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args(argv)
    path = embed(args.train_per_group, args.test_per_group)
    if args.stage == "run":
        run(path, args.folds)
    return 0


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with mid-ranks for ties)."""
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def fold(data: dict[str, np.ndarray], held: str, neighbours: int) -> dict[str, float]:
    """Train without ``held``, add the mixed test batch, score; AUROC per score and drift numbers."""
    from semhash.config import DEFAULT_BITS
    from semhash.model import encode_with_errors
    from semhash.neighbourhood import _search_kth, drift_statistics, inner_product_index, knn_distances
    from semhash.outliers import combined_scores
    from semhash.train import TrainConfig, train_hasher

    texts, labels, split, emb = data["texts"], data["labels"], data["split"], data["embeddings"]
    train = np.flatnonzero((split == "train") & (labels != held))
    batch = np.flatnonzero(split == "test")
    started = time.perf_counter()
    model, _ = train_hasher(emb[train], DEFAULT_BITS, TrainConfig(), texts=[str(t) for t in texts[train]])
    seconds = time.perf_counter() - started
    index = np.r_[train, batch]  # the index after `semhash index` added the batch
    _, recon = encode_with_errors(model, emb[index], texts=[str(t) for t in texts[index]])
    x = emb[index]
    ids = np.arange(len(index))
    knn = knn_distances(x, x, neighbours, ids, ids)
    centre = x.mean(axis=0)
    centroid = 1.0 - x @ (centre / np.linalg.norm(centre))
    scores = {
        "recon": recon.astype(np.float64),
        "knn": knn,
        "centroid": centroid,
        "combined": combined_scores(recon, knn),
    }
    in_batch = np.arange(len(train), len(index))
    positive = labels[batch] == held
    out = {name: auroc(values[in_batch], positive) for name, values in scores.items()}
    # The kNN distance to the trained-on posts only (the batch's posts cannot vouch for each other).
    ref_index = inner_product_index(np.ascontiguousarray(emb[train]), 0)
    ref_ids = np.arange(len(train))
    loo = _search_kth(ref_index, ref_ids, emb[train], ref_ids, neighbours)
    to_train = _search_kth(ref_index, ref_ids, emb[batch], np.full(len(batch), -1), neighbours)
    out["knn_trained"] = auroc(to_train, positive)
    # Drift, against the trained-on posts: a half-and-half batch (every held-out post and as many posts of
    # the trained groups) and a batch of the trained groups only.
    recon_train, recon_batch = recon[: len(train)], recon[len(train) :]
    half = positive | (np.cumsum(~positive) <= positive.sum()) & ~positive
    for name, rows in (("mixed", half), ("known", ~positive)):
        by_knn = drift_statistics(loo, to_train[rows])
        by_recon = drift_statistics(recon_train, recon_batch[rows])
        out[f"drift_knn_{name}_share"], out[f"drift_knn_{name}_fires"] = by_knn.share_above, float(by_knn.drifted)
        out[f"drift_recon_{name}_share"] = by_recon.share_above
        out[f"drift_recon_{name}_fires"] = float(by_recon.drifted)
    out["recon_median_trained"] = float(np.median(recon_train))
    out["recon_median_known_new"] = float(np.median(recon_batch[~positive]))
    out["recon_median_heldout"] = float(np.median(recon_batch[positive]))
    out["train_seconds"] = seconds
    out["n_train"], out["n_batch"], out["n_positive"] = len(train), len(batch), int(positive.sum())
    return out


def run(path: Path, folds: int, neighbours: int = 10) -> None:
    """Every fold, then the mean AUROC per score (a markdown table on stdout)."""
    loaded = np.load(path)
    data = {key: loaded[key] for key in ("texts", "labels", "split", "embeddings")}
    counts = {s: int((data["split"] == s).sum()) for s in ("train", "test")}
    print(f"subset: {len(GROUPS)} groups, {counts['train']} train + {counts['test']} test posts ({path})")
    rows = []
    for held in GROUPS[:folds]:
        result = fold(data, held, neighbours)
        rows.append(result)
        print(
            f"{held}: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()),
            flush=True,
        )
    names = ["recon", "knn", "knn_trained", "centroid", "combined"]
    print("\n| held-out group | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for held, result in zip(GROUPS[:folds], rows, strict=True):
        print(f"| {held} | " + " | ".join(f"{result[n]:.3f}" for n in names) + " |")
    print(f"| **mean of {folds}** | " + " | ".join(f"**{np.mean([r[n] for r in rows]):.3f}**" for n in names) + " |")
    extra = [k for k in rows[0] if k not in names]
    print("\nmeans: " + ", ".join(f"{k} {np.mean([r[k] for r in rows]):.3f}" for k in extra))


if __name__ == "__main__":
    sys.exit(main())
