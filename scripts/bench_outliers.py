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
   * ``knn``: 1 - cosine to the k-th nearest indexed document (k = 10), the usual kNN baseline;
   * ``centroid``: 1 - cosine to the mean of the indexed embeddings;
   * ``combined``: the new default of ``semhash outliers``
     (:func:`semhash.outliers.combined_scores`): the mean of the robust z-scores of ``recon`` and ``knn``.

AUROCs are averaged over the folds; the drift statistic (:func:`semhash.outliers.drift_statistics`) is also
reported for each fold's mixed batch and for a batch of trained groups only.

Subset (CPU budget; the full embedding is slow on a shared 2-core machine): the groups in ``GROUPS``,
``--train-per-group`` train posts and ``--test-per-group`` test posts of each (first ones in file order),
stripped as in :mod:`newsgroups` (headers, footers, quotes), embedded with the default MiniLM encoder
(window pooling) and cached in ``.cache/outliers/embeddings.npz``.

Usage::

    python scripts/bench_outliers.py embed          # the subset's embeddings (cached)
    python scripts/bench_outliers.py run [--folds 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
CACHE = ROOT / ".cache" / "outliers"
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
    from newsgroups import read_posts

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


def run(path: Path, folds: int) -> None:  # filled in below
    raise NotImplementedError


if __name__ == "__main__":
    sys.exit(main())
