"""Training the hashing model on a corpus's embeddings, on GPU when there is one, else CPU.

Plain reconstruction of a document's embedding from its code is a poor hashing objective (issue 3:
~0.38 P@100 on 20 Newsgroups at 32 bits, below ITQ's 0.45). The default recipe distils the corpus's own
neighbour structure into the encoder instead:

0. **Features.** When the texts are given (``semhash index`` / ``train`` / ``eval`` give them), the model
   reads each document's embedding joined by ``lexical_weight`` times its lexical vector (TF-IDF projected
   onto ``lexical_dim`` latent directions fitted on the corpus, :mod:`semhash.lexical`); the steps below
   work on these features. The words a sentence encoder weighs lightly tell topics apart: on 20 Newsgroups
   (32 bits) P@100 goes from 0.540 to 0.565.
1. **Neighbour graph.** Each database document's ``neighbours`` (20) nearest database documents, by
   cosine of the features.
2. **Smoothed embeddings** ``z``: each embedding averaged with its neighbours (``smoothing_hops`` rounds),
   renormalised. They tell topics apart much better than the raw embeddings (20 Newsgroups, MiniLM,
   float cosine P@100 0.48 raw, 0.55 when queries and database are both smoothed).
3. **Teacher codes**: ITQ (:func:`semhash.baselines.fit_itq`) fitted on the smoothed embeddings gives each
   database document ``bits`` target bits (0.55 P@100 on 20 Newsgroups, but only for smoothed queries).
4. **Student**: the MLP encoder reads the document's *own* embedding and predicts the teacher's bits
   (``teacher_weight``, binary cross-entropy on the logits). It learns to smooth: a query, coded from its
   own embedding alone (no neighbour look-up at query time), lands where its neighbourhood would have
   put it.

Loss terms (weights in :class:`TrainConfig`; 0 turns a term off; the defaults are the tuned recipe):

- ``teacher_weight`` (1.0) — BCE between the code logits and the teacher bits (above).
- ``target_weight`` (0.1) — the decoder reconstructs the smoothed embedding from the binary code (cosine
  loss); it gives :func:`semhash.model.reconstruction_error` (outlier scores) its meaning.
- ``balance_weight`` (0.1) — each bit on for half the corpus (squared mean of ``tanh(logits)``).
- ``decorrelation_weight`` (0.01) — off-diagonal covariance of the relaxed bits pushed to 0.
- ``pair_weight`` (0, tried: worse) — the inner products of the relaxed codes (``tanh(logits)``, over
  ``bits``) regress onto the standardised cosine similarities of the smoothed embeddings,
  ``clamp((cos(z_i, z_j) - mean) / (pair_scale * std), -1, 1)``, in each batch.
- ``contrast_weight`` (0, tried: worse) — InfoNCE between each document and a random graph neighbour,
  with in-batch negatives, at ``temperature``.
- ``cluster_weight`` (0, tried: worse than the teacher) — spherical k-means on the smoothed embeddings
  (one clustering per entry of ``clusters``) gives pseudo-labels; a linear head on the binary code
  predicts them (cross-entropy).

The binary bottleneck is a straight-through sign: the forward pass uses ``sign(logits)``, the gradient is
that of ``tanh(logits)``; a code bit is 1 where its logit is positive.

Device: the graph, the smoothing, the pseudo-labels and the training loop run on the given torch device
(ITQ is a small numpy fit on CPU). Batches are drawn from a CPU generator, so CPU and CUDA see the same
batches; results agree up to floating-point noise and dropout masks (a test marked ``gpu`` checks it).
On CPU, training is deterministic for a given seed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from semhash.config import DEFAULT_LEXICAL_WEIGHT
from semhash.lexical import LexicalProjection
from semhash.model import HashConfig, HashingAutoencoder


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`train_hasher` (defaults: the tuned 20 Newsgroups recipe)."""

    epochs: int = 60
    batch_size: int = 512
    lr: float = 2e-3
    weight_decay: float = 1e-4
    hidden: int = 1024
    dropout: float = 0.2
    seed: int = 0
    #: k of the cosine kNN graph of the corpus (capped at 5% of the corpus, at least 1).
    neighbours: int = 20
    #: small corpora get more epochs, so that training takes at least this many optimiser steps.
    min_steps: int = 400
    #: rounds of neighbour averaging for the smoothed targets.
    smoothing_hops: int = 1
    pair_weight: float = 0.0
    #: standard deviations of cosine similarity that map to a code similarity of +-1.
    pair_scale: float = 3.0
    #: InfoNCE between each document and a random graph neighbour (in-batch negatives).
    contrast_weight: float = 0.0
    temperature: float = 0.2
    #: Distillation: bits of ITQ fitted on the smoothed embeddings, predicted from the raw ones (BCE).
    teacher_weight: float = 1.0
    #: Input augmentation: the student reads ``normalize((1 - u) x_i + u x_j)``, ``j`` a random graph
    #: neighbour, ``u ~ U(0, neighbour_mix)``, and keeps ``i``'s targets (0 = off).
    neighbour_mix: float = 0.0
    cluster_weight: float = 0.0
    #: k-means centroids for the pseudo-labels (capped at a tenth of the corpus); one head per level.
    clusters: tuple[int, ...] = (64,)
    target_weight: float = 0.1
    balance_weight: float = 0.1
    decorrelation_weight: float = 0.01
    #: Lexical features (:mod:`semhash.lexical`): the model reads ``[embedding, lexical_weight * LSA]``
    #: of each document when its text is given to :func:`train_hasher` (0 = embedding only).
    lexical_weight: float = DEFAULT_LEXICAL_WEIGHT
    #: latent directions of the lexical vector, and the TF-IDF vocabulary they are taken from.
    lexical_dim: int = 128
    lexical_vocabulary: int = 20_000
    #: the vocabulary and the projection are fitted on at most this many documents (a seeded sample).
    lexical_fit_docs: int = 50_000
    #: torch CPU threads while training (0 = torch's default). One thread is 5-8x faster than two on a
    #: busy 2-core machine (OpenMP spin contention on small matrices) and about as fast on an idle one.
    cpu_threads: int = 1


def knn_graph(x: torch.Tensor, k: int, block: int = 2048) -> torch.Tensor:
    """``(n, k)`` indices of each row's ``k`` most cosine-similar other rows (rows are unit vectors)."""
    n = x.shape[0]
    out = torch.empty((n, k), dtype=torch.long, device=x.device)
    for start in range(0, n, block):
        sims = x[start : start + block] @ x.T
        rows = torch.arange(sims.shape[0], device=x.device)
        sims[rows, rows + start] = -float("inf")
        out[start : start + block] = sims.topk(k, dim=1).indices
    return out


def smooth(x: torch.Tensor, graph: torch.Tensor, hops: int = 1) -> torch.Tensor:
    """Average each row with its graph neighbours, ``hops`` times, renormalising each time."""
    z = x
    for _ in range(hops):
        z = nn.functional.normalize(z + z[graph].sum(dim=1), dim=1)
    return z


def neighbour_average(embeddings: np.ndarray, k: int, block: int = 2048) -> np.ndarray:
    """Each row averaged with its ``k`` nearest rows by cosine (itself included), renormalised."""
    x = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
    k = min(k, len(x) - 1)
    if k <= 0:
        return x.numpy().copy()
    return smooth(x, knn_graph(x, k, block)).numpy()


def spherical_kmeans(x: torch.Tensor, clusters: int, generator: torch.Generator, iterations: int = 30) -> torch.Tensor:
    """Cluster assignments of unit rows by spherical k-means with k-means++ seeding."""
    n = x.shape[0]
    first = int(torch.randint(n, (1,), generator=generator))
    centres = [x[first]]
    nearest = torch.full((n,), float("inf"), device=x.device)
    for _ in range(1, clusters):
        nearest = torch.minimum(nearest, (2 - 2 * (x @ centres[-1])).clamp_min(0))
        weights = nearest.cpu().double() + 1e-12
        pick = int(torch.multinomial(weights / weights.sum(), 1, generator=generator))
        centres.append(x[pick])
    centroids = torch.stack(centres)
    for _ in range(iterations):
        assign = (x @ centroids.T).argmax(dim=1)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        filled = torch.bincount(assign, minlength=clusters) > 0
        centroids[filled] = nn.functional.normalize(sums[filled], dim=1)
    return (x @ centroids.T).argmax(dim=1)


def train_hasher(
    embeddings: np.ndarray,
    bits: int,
    config: TrainConfig | None = None,
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
    texts: Sequence[str] | None = None,
) -> tuple[HashingAutoencoder, dict[str, float]]:
    """Train a hashing autoencoder on ``(n, dim)`` unit embeddings (see the module docstring).

    Args:
        embeddings: the corpus's embeddings (float32, L2-normalised).
        bits: code length.
        config: hyper-parameters (defaults: :class:`TrainConfig`).
        device: resolved torch device (``"cpu"``, ``"cuda"``...).
        progress: called as ``progress(epoch, epochs)`` after each epoch.
        texts: the documents' texts, in the order of ``embeddings``. With them (and a non-zero
            ``lexical_weight``) the model also reads lexical features, and encoding it needs texts too;
            without them it reads the embeddings alone.

    Returns:
        The trained model (on CPU, in eval mode) and statistics: final loss terms, seconds, bit usage.
    """
    config = config or TrainConfig()
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if texts is not None and len(texts) != len(embeddings):
        raise ValueError(f"{len(texts)} texts for {len(embeddings)} embeddings")
    started = time.perf_counter()
    lexical = None
    if texts is not None and config.lexical_weight > 0:
        lexical = _fit_lexical(texts, config)
    features = lexical.features(embeddings, texts) if lexical is not None and texts is not None else embeddings
    lexical_seconds = time.perf_counter() - started
    previous_threads = torch.get_num_threads()
    if config.cpu_threads > 0 and device == "cpu":
        torch.set_num_threads(config.cpu_threads)
    try:
        lexical_dim = lexical.dim if lexical is not None else 0
        model, stats = _train(features, bits, config, device, progress, lexical_dim)
    finally:
        torch.set_num_threads(previous_threads)
    model.lexical = lexical
    stats["lexical_dim"] = float(lexical_dim)
    stats["lexical_terms"] = float(len(lexical.vocabulary) if lexical is not None else 0)
    stats["lexical_seconds"] = lexical_seconds
    stats["seconds"] += lexical_seconds
    return model, stats


def _fit_lexical(texts: Sequence[str], config: TrainConfig) -> LexicalProjection | None:
    """The lexical projection, fitted on (a seeded sample of at most ``lexical_fit_docs`` of) the texts."""
    sample: Sequence[str] = texts
    if len(texts) > config.lexical_fit_docs:
        rng = np.random.default_rng(config.seed)
        sample = [texts[i] for i in sorted(rng.choice(len(texts), config.lexical_fit_docs, replace=False))]
    return LexicalProjection.fit(
        sample,
        dim=config.lexical_dim,
        vocabulary=config.lexical_vocabulary,
        weight=config.lexical_weight,
        seed=config.seed,
    )


def _train(
    embeddings: np.ndarray,
    bits: int,
    config: TrainConfig,
    device: str,
    progress: Callable[[int, int], None] | None,
    lexical_dim: int,
) -> tuple[HashingAutoencoder, dict[str, float]]:
    """The training loop of :func:`train_hasher` on the feature matrix, under its thread setting."""
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    x_all = torch.as_tensor(np.asarray(embeddings, dtype=np.float32)).to(device)
    x_all = nn.functional.normalize(x_all, dim=1)
    n = x_all.shape[0]

    k = min(config.neighbours, max(1, n // 20), n - 1)
    graph = knn_graph(x_all, k) if k > 0 else None
    targets = smooth(x_all, graph, config.smoothing_hops) if graph is not None else x_all
    use_contrast = config.contrast_weight > 0 and graph is not None
    levels = [min(int(c), max(2, n // 10)) for c in config.clusters] if config.cluster_weight > 0 and n >= 4 else []
    pseudo = [spherical_kmeans(targets, c, generator) for c in levels]

    # Scale of the pairwise targets: mean and spread of the smoothed cosine similarities.
    sample = targets[torch.randperm(n, generator=generator)[:2048].to(device)]
    sims = sample @ sample.T
    off = sims[~torch.eye(len(sample), dtype=torch.bool, device=device)]
    sim_mean = float(off.mean()) if off.numel() else 0.0
    sim_std = float(off.std()) if off.numel() > 1 else 1.0
    sim_std = max(sim_std, 1e-6)

    model = HashingAutoencoder(
        HashConfig(
            input_dim=x_all.shape[1] - lexical_dim,
            bits=bits,
            hidden=config.hidden,
            dropout=config.dropout,
            lexical_dim=lexical_dim,
        )
    ).to(device)
    teacher = None
    if config.teacher_weight > 0 and n >= 2:
        from semhash.baselines import fit_itq

        smoothed = targets.cpu().numpy().astype(np.float64)
        itq = fit_itq(smoothed, bits, seed=config.seed)
        teacher_bits = ((smoothed - itq.mean) @ itq.projection >= 0).astype(np.float32)
        teacher = torch.as_tensor(teacher_bits, device=device)
    heads = nn.ModuleList([nn.Linear(bits, c) for c in levels]).to(device)
    params = list(model.parameters()) + list(heads.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    batch_size = max(2, min(config.batch_size, n))
    steps_per_epoch = max(1, -(-n // batch_size))
    epochs = max(config.epochs, -(-config.min_steps // steps_per_epoch)) if config.epochs > 0 else 0
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=max(1, epochs * steps_per_epoch), pct_start=0.1
    )
    terms: dict[str, float] = {}
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(n, generator=generator).to(device)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            if len(idx) < 2:  # a last batch of one: nothing to compare, skip it
                continue
            if use_contrast and graph is not None:
                anchors = idx[: max(1, len(idx) // 2)]
                pick = torch.randint(graph.shape[1], (len(anchors),), generator=generator).to(device)
                idx = torch.cat([anchors, graph[anchors, pick]])
            inputs = x_all[idx]
            if config.neighbour_mix > 0 and graph is not None:
                pick = torch.randint(graph.shape[1], (len(idx),), generator=generator).to(device)
                u = torch.rand((len(idx), 1), generator=generator).to(device) * config.neighbour_mix
                inputs = nn.functional.normalize((1 - u) * inputs + u * x_all[graph[idx, pick]], dim=1)
            logits, code, recon = model(inputs)
            soft = torch.tanh(logits)
            parts: dict[str, torch.Tensor] = {}
            if config.pair_weight:
                z = targets[idx]
                wanted = ((z @ z.T - sim_mean) / (config.pair_scale * sim_std)).clamp(-1, 1)
                parts["pair"] = config.pair_weight * (soft @ soft.T / bits - wanted).pow(2).mean()
            if use_contrast:
                half = len(idx) // 2
                a = nn.functional.normalize(soft[:half], dim=1)
                b = nn.functional.normalize(soft[half:], dim=1)
                sim = a @ b.T / config.temperature
                labels = torch.arange(half, device=device)
                nce = nn.functional.cross_entropy(sim, labels) + nn.functional.cross_entropy(sim.T, labels)
                parts["contrast"] = config.contrast_weight * nce / 2
            if teacher is not None:
                bce = nn.functional.binary_cross_entropy_with_logits(logits, teacher[idx])
                parts["teacher"] = config.teacher_weight * bce
            if levels:
                ce = [nn.functional.cross_entropy(h(code), p[idx]) for h, p in zip(heads, pseudo, strict=True)]
                parts["cluster"] = config.cluster_weight * torch.stack(ce).mean()
            if config.target_weight:
                cos = nn.functional.cosine_similarity(recon, targets[idx], dim=1)
                parts["target"] = config.target_weight * (1 - cos).mean()
            if config.balance_weight:
                parts["balance"] = config.balance_weight * soft.mean(dim=0).pow(2).mean()
            if config.decorrelation_weight:
                centred = soft - soft.mean(dim=0)
                cov = centred.T @ centred / len(idx)
                parts["decorrelation"] = config.decorrelation_weight * (cov - torch.diag(torch.diag(cov))).pow(2).mean()
            loss = torch.stack(list(parts.values())).sum() if parts else soft.sum() * 0
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            terms = {name: float(value.detach()) for name, value in parts.items()}
            terms["loss"] = float(loss.detach())
        if progress:
            progress(epoch + 1, epochs)
    model.eval().cpu()
    with torch.no_grad():
        on = (model.logits(x_all.cpu()) > 0).float().mean(dim=0)
    stats = {f"loss_{name}" if name != "loss" else name: value for name, value in terms.items()}
    stats.update(
        {
            "seconds": time.perf_counter() - started,
            "min_bit_usage": float(on.min()),
            "max_bit_usage": float(on.max()),
            "dead_bits": float(((on == 0) | (on == 1)).sum()),
            "epochs": float(epochs),
            "neighbours": float(k),
        }
    )
    return model, stats
