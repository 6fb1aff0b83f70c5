"""Training the hashing model on a corpus's embeddings, on GPU when there is one, else CPU.

Plain reconstruction of a document's embedding from its code is a poor hashing objective (issue 3:
~0.38 P@100 on 20 Newsgroups at 32 bits, below ITQ's 0.45). The recipe distils the corpus's own
neighbour structure into the encoder instead (BENCHMARKS.md, "What was tried", lists the objectives
that lost to it):

0. **Features.** When the texts are given (``semhash index`` / ``train`` / ``eval`` give them), the model
   reads each document's embedding joined by ``lexical_weight`` times its lexical vector (TF-IDF projected
   onto ``lexical_dim`` latent directions fitted on the corpus, :mod:`semhash.lexical`); the steps below
   work on these features. The words a sentence encoder weighs lightly tell topics apart: on 20 Newsgroups
   (32 bits) P@100 goes from 0.540 to 0.565.
1. **Neighbour graph.** Each document's ``neighbours`` (20) nearest documents, by cosine of the features.
2. **Smoothed features** ``z``: each row averaged with its neighbours (``smoothing_hops`` rounds),
   renormalised. They tell topics apart much better than the raw features (20 Newsgroups, MiniLM,
   float cosine P@100 0.48 raw, 0.55 when queries and database are both smoothed).
3. **Teacher bits**: ITQ (:func:`semhash.baselines.fit_itq`) fitted on the smoothed features gives each
   document ``bits`` target bits (0.55 P@100 on 20 Newsgroups, but only for smoothed queries).
4. **Student**: the MLP encoder reads the document's *own* features and predicts the teacher's bits. It
   learns to smooth: a query, coded from its own features alone (no neighbour look-up at query time),
   lands where its neighbourhood would have put it.

The student's loss (:func:`loss_terms`; weights in :class:`TrainConfig`, 0 turns a term off):

- ``teacher_weight`` (1.0): binary cross-entropy between the code logits and the teacher bits.
- ``target_weight`` (0.1): the decoder reconstructs the smoothed features from the binary code (cosine
  loss); it gives :func:`semhash.model.reconstruction_error` (outlier scores) its meaning.
- ``balance_weight`` (0.1): each bit on for half the documents (squared mean of ``tanh(logits)``).
- ``decorrelation_weight`` (0.01): off-diagonal covariance of the relaxed bits pushed to 0.

The binary bottleneck is a straight-through sign: the forward pass uses ``sign(logits)``, the gradient is
that of ``tanh(logits)``; a code bit is 1 where its logit is positive.

**Validation.** A seeded ``holdout_fraction`` of the documents (5%, at most ``holdout_max``) takes part
in the graph and the teacher (they are the corpus's structure, not labels) but never in a gradient step.
After each epoch the student codes them from their own features, as it will code queries, and the
statistics record its agreement with their teacher bits and its loss on them (``val_*``).

**Stopping rule.** ``epochs=N`` runs exactly ``N`` epochs. ``epochs=None`` (the default) is the automatic
rule of :func:`planned_epochs`: ``max(auto_epochs, enough epochs for min_steps optimiser steps)``, so a
small corpus still gets enough updates. The statistics record the epochs and steps run and which rule
chose them.

Device: the graph, the smoothing and the training loop run on the given (resolved) torch device (ITQ is a
small numpy fit on CPU). Batches are drawn from a CPU generator, so CPU and CUDA see the same batches;
results agree up to floating-point noise and dropout masks (a test marked ``gpu`` checks it). On CPU,
training is deterministic for a given seed.
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

#: Scalar statistics, plus the per-epoch validation curves (``val_*_by_epoch``) as lists.
TrainStats = dict[str, float | list[float]]


@dataclass
class LoopConfig:
    """What every training loop of semhash has: the optimiser's steps, a hold-out, threads, the code losses.

    :class:`TrainConfig` (the hashing model) and :class:`semhash.adapt.AdaptConfig` (the encoder's top
    layers) derive from it; each sets its own defaults, so a field's default is read in the subclass.
    """

    #: epochs to run (``TrainConfig``: ``None`` = the automatic rule, :func:`planned_epochs`).
    epochs: int | None = None
    batch_size: int = 512
    lr: float = 2e-3
    seed: int = 0
    #: share of the documents held out of the gradient steps for the validation signal (0 = none).
    holdout_fraction: float = 0.05
    #: weights of the code losses (0 turns a term off): the teacher bits, bit balance, bit decorrelation.
    teacher_weight: float = 1.0
    balance_weight: float = 0.1
    decorrelation_weight: float = 0.01
    #: torch CPU threads while training (0 = torch's default). One thread is 5-8x faster than two on a
    #: busy 2-core machine (OpenMP spin contention on small matrices) and about as fast on an idle one.
    cpu_threads: int = 1


@dataclass
class TrainConfig(LoopConfig):
    """Hyper-parameters of :func:`train_hasher` (defaults: the tuned 20 Newsgroups recipe).

    Beside :class:`LoopConfig`'s fields (defaults: ``epochs=None`` (the automatic rule), ``batch_size=512``,
    ``lr=2e-3``, ``seed=0``, ``holdout_fraction=0.05``, ``teacher_weight=1.0``, ``balance_weight=0.1``,
    ``decorrelation_weight=0.01``, ``cpu_threads=1``), the fields below.
    """

    #: the automatic rule's floor in epochs ...
    auto_epochs: int = 60
    #: ... raised on small corpora until training takes at least this many optimiser steps.
    min_steps: int = 400
    weight_decay: float = 1e-4
    hidden: int = 1024
    dropout: float = 0.2
    #: at most this many documents held out (``holdout_fraction`` of them otherwise).
    holdout_max: int = 1000
    #: k of the cosine kNN graph of the corpus (capped at 5% of the corpus, at least 1).
    neighbours: int = 20
    #: rounds of neighbour averaging for the smoothed targets.
    smoothing_hops: int = 1
    target_weight: float = 0.1
    #: Lexical features (:mod:`semhash.lexical`): the model reads ``[embedding, lexical_weight * LSA]``
    #: of each document when its text is given to :func:`train_hasher` (0 = embedding only).
    lexical_weight: float = DEFAULT_LEXICAL_WEIGHT
    #: latent directions of the lexical vector, and the TF-IDF vocabulary they are taken from.
    lexical_dim: int = 128
    lexical_vocabulary: int = 20_000
    #: the vocabulary and the projection are fitted on at most this many documents (a seeded sample).
    lexical_fit_docs: int = 50_000

    def __post_init__(self) -> None:
        if self.epochs is not None and self.epochs < 0:
            raise ValueError(f"epochs must be 0 or more (or None for the automatic rule), not {self.epochs}")


def planned_epochs(config: TrainConfig, steps_per_epoch: int) -> int:
    """Epochs to run: ``config.epochs`` when given, else ``max(auto_epochs, ceil(min_steps / steps_per_epoch))``."""
    if config.epochs is not None:
        return config.epochs
    return max(config.auto_epochs, -(-config.min_steps // max(1, steps_per_epoch)))


# -- the corpus's structure: graph, smoothing, teacher ---------------------------------------------


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


def itq_teacher(smoothed: torch.Tensor, bits: int, seed: int) -> torch.Tensor:
    """``(n, bits)`` 0/1 teacher bits: ITQ fitted on the smoothed rows (a small numpy fit on CPU)."""
    from semhash.baselines import fit_itq

    z = smoothed.cpu().numpy().astype(np.float64)
    itq = fit_itq(z, bits, seed=seed)
    return torch.as_tensor(((z - itq.mean) @ itq.projection >= 0).astype(np.float32), device=smoothed.device)


@dataclass
class Targets:
    """What the student learns from, one row per document."""

    #: the unit features the student reads.
    x: torch.Tensor
    #: the neighbour-smoothed features the decoder reconstructs.
    smoothed: torch.Tensor
    #: the teacher bits (``None`` when the teacher is off or the corpus has one document).
    teacher: torch.Tensor | None
    #: k of the graph actually used (0: no graph).
    neighbours: int


def build_targets(features: np.ndarray, bits: int, config: TrainConfig, device: str) -> Targets:
    """Steps 1-3 of the recipe: kNN graph, smoothed features, ITQ teacher bits."""
    x = nn.functional.normalize(torch.as_tensor(np.asarray(features, dtype=np.float32)).to(device), dim=1)
    n = x.shape[0]
    k = min(config.neighbours, max(1, n // 20), n - 1)
    smoothed = smooth(x, knn_graph(x, k), config.smoothing_hops) if k > 0 else x
    teacher = itq_teacher(smoothed, bits, config.seed) if config.teacher_weight > 0 and n >= 2 else None
    return Targets(x=x, smoothed=smoothed, teacher=teacher, neighbours=max(k, 0))


# -- the student's loss ---------------------------------------------------------------------------


def loss_terms(
    model: HashingAutoencoder, targets: Targets, idx: torch.Tensor, config: TrainConfig
) -> dict[str, torch.Tensor]:
    """The weighted loss terms of the documents ``idx`` (a batch), by name; their sum is the loss."""
    logits, _code, recon = model(targets.x[idx])
    soft = torch.tanh(logits)
    parts: dict[str, torch.Tensor] = {}
    if targets.teacher is not None:
        bce = nn.functional.binary_cross_entropy_with_logits(logits, targets.teacher[idx])
        parts["teacher"] = config.teacher_weight * bce
    if config.target_weight:
        cos = nn.functional.cosine_similarity(recon, targets.smoothed[idx], dim=1)
        parts["target"] = config.target_weight * (1 - cos).mean()
    if config.balance_weight:
        parts["balance"] = config.balance_weight * soft.mean(dim=0).pow(2).mean()
    if config.decorrelation_weight:
        centred = soft - soft.mean(dim=0)
        cov = centred.T @ centred / len(idx)
        parts["decorrelation"] = config.decorrelation_weight * (cov - torch.diag(torch.diag(cov))).pow(2).mean()
    # Every term off: a zero that still has a gradient, so the optimiser step below stays valid.
    parts["loss"] = torch.stack(list(parts.values())).sum() if parts else soft.sum() * 0
    return parts


@torch.no_grad()
def validate(model: HashingAutoencoder, targets: Targets, idx: torch.Tensor, config: TrainConfig) -> dict[str, float]:
    """Loss and teacher-bit agreement of the held-out documents ``idx`` (eval mode: no dropout)."""
    model.eval()
    out = {"val_loss": float(loss_terms(model, targets, idx, config)["loss"])}
    if targets.teacher is not None:
        predicted = (model.logits(targets.x[idx]) > 0).float()
        out["val_agreement"] = float((predicted == targets.teacher[idx]).float().mean())
    return out


# -- the loop -------------------------------------------------------------------------------------


def holdout_split(n: int, config: TrainConfig, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded ``(train, held-out)`` document indices; nothing is held out of a corpus too small to spare it."""
    held = min(int(n * config.holdout_fraction), config.holdout_max)
    if held < 1 or n - held < 2:
        return torch.arange(n), torch.arange(0)
    order = torch.randperm(n, generator=generator)
    return order[held:].sort().values, order[:held].sort().values


def train_epoch(
    model: HashingAutoencoder,
    targets: Targets,
    train_idx: torch.Tensor,
    config: TrainConfig,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    generator: torch.Generator,
) -> dict[str, float]:
    """One pass over the training documents in a seeded order; returns the last batch's loss terms."""
    model.train()
    device = targets.x.device
    order = train_idx[torch.randperm(len(train_idx), generator=generator)].to(device)
    size = batch_size(config, len(train_idx))
    terms: dict[str, float] = {}
    for start in range(0, len(order), size):
        idx = order[start : start + size]
        if len(idx) < 2:  # a last batch of one: balance and decorrelation need two, skip it
            continue
        parts = loss_terms(model, targets, idx, config)
        optimizer.zero_grad(set_to_none=True)
        parts["loss"].backward()
        optimizer.step()
        scheduler.step()
        terms = {name: float(value.detach()) for name, value in parts.items()}
    return terms


def batch_size(config: TrainConfig, n_train: int) -> int:
    """The batch size for ``n_train`` training documents (never above it, at least 2)."""
    return max(2, min(config.batch_size, n_train))


def steps_per_epoch(config: TrainConfig, n_train: int) -> int:
    """Optimiser steps in one epoch: the batches of at least two documents."""
    size = batch_size(config, n_train)
    return n_train // size + int(n_train % size >= 2)


def train_hasher(
    embeddings: np.ndarray,
    bits: int,
    config: TrainConfig | None = None,
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
    texts: Sequence[str] | None = None,
) -> tuple[HashingAutoencoder, TrainStats]:
    """Train a hashing autoencoder on ``(n, dim)`` unit embeddings (see the module docstring).

    Args:
        embeddings: the corpus's embeddings (float32, L2-normalised).
        bits: code length.
        config: hyper-parameters (defaults: :class:`TrainConfig`).
        device: resolved torch device (``"cpu"``, ``"cuda"``...; see :mod:`semhash.device`).
        progress: called as ``progress(epoch, epochs)`` after each epoch; ``epochs`` is the number the
            stopping rule chose, known before the first epoch.
        texts: the documents' texts, in the order of ``embeddings``. With them (and a non-zero
            ``lexical_weight``) the model also reads lexical features, and encoding it needs texts too;
            without them it reads the embeddings alone.

    Returns:
        The trained model (on CPU, in eval mode) and its statistics: the last batch's loss terms
        (``loss``, ``loss_<term>``), the stopping rule (``epochs``, ``epochs_auto``, ``steps``), the
        validation signal (``holdout``, ``val_loss``, ``val_agreement`` and their ``_by_epoch`` lists),
        bit usage, the lexical vector's size and seconds.
    """
    config = config or TrainConfig()
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if texts is not None and len(texts) != len(embeddings):
        raise ValueError(f"{len(texts)} texts for {len(embeddings)} embeddings")
    started = time.perf_counter()
    lexical = _fit_lexical(texts, config) if texts is not None and config.lexical_weight > 0 else None
    features = lexical.features(embeddings, texts) if lexical is not None and texts is not None else embeddings
    lexical_seconds = time.perf_counter() - started
    previous_threads = torch.get_num_threads()
    if config.cpu_threads > 0 and device == "cpu":
        torch.set_num_threads(config.cpu_threads)
    try:
        model, stats = _fit(features, bits, config, device, progress, lexical.dim if lexical is not None else 0)
    finally:
        torch.set_num_threads(previous_threads)
    model.lexical = lexical
    stats["lexical_dim"] = float(lexical.dim if lexical is not None else 0)
    stats["lexical_terms"] = float(len(lexical.vocabulary) if lexical is not None else 0)
    stats["lexical_seconds"] = lexical_seconds
    stats["seconds"] = time.perf_counter() - started
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


def one_cycle(optimizer: torch.optim.Optimizer, lr: float, total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Warm up over the first 10% of the steps (at least 2), then anneal; a constant rate for under 4 steps.

    torch's OneCycleLR divides by the length of its warm-up, so an explicit ``--epochs`` that gives a short run
    (10 steps: a warm-up of 0) must not reach it.
    """
    if total_steps < 4:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _step: 1.0)
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=total_steps, pct_start=max(0.1, 2 / total_steps)
    )


def _fit(
    features: np.ndarray,
    bits: int,
    config: TrainConfig,
    device: str,
    progress: Callable[[int, int], None] | None,
    lexical_dim: int,
) -> tuple[HashingAutoencoder, TrainStats]:
    """Targets, model, optimiser, then the epochs with a validation pass after each."""
    torch.manual_seed(config.seed)  # weights and dropout
    generator = torch.Generator().manual_seed(config.seed)  # held-out split and batch order, on CPU
    targets = build_targets(features, bits, config, device)
    n = targets.x.shape[0]
    train_idx, val_idx = holdout_split(n, config, generator)
    val_idx = val_idx.to(device)

    model = HashingAutoencoder(
        HashConfig(
            input_dim=targets.x.shape[1] - lexical_dim,
            bits=bits,
            hidden=config.hidden,
            dropout=config.dropout,
            lexical_dim=lexical_dim,
        )
    ).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = steps_per_epoch(config, len(train_idx))
    epochs = planned_epochs(config, steps)
    scheduler = one_cycle(optimizer, config.lr, epochs * steps)

    terms: dict[str, float] = {}
    curves: dict[str, list[float]] = {"val_loss": [], "val_agreement": []}
    for epoch in range(epochs):
        terms = train_epoch(model, targets, train_idx, config, optimizer, scheduler, generator) or terms
        if len(val_idx):
            for name, value in validate(model, targets, val_idx, config).items():
                curves[name].append(value)
        if progress:
            progress(epoch + 1, epochs)

    model.eval().cpu()
    with torch.no_grad():
        on = (model.logits(targets.x.cpu()) > 0).float().mean(dim=0)
    stats: TrainStats = {name if name == "loss" else f"loss_{name}": value for name, value in terms.items()}
    stats.update(
        {
            "epochs": float(epochs),
            "epochs_auto": float(config.epochs is None),
            "steps": float(epochs * steps),
            "holdout": float(len(val_idx)),
            "neighbours": float(targets.neighbours),
            "min_bit_usage": float(on.min()),
            "max_bit_usage": float(on.max()),
            "dead_bits": float(((on == 0) | (on == 1)).sum()),
        }
    )
    for name, curve in curves.items():
        if curve:
            stats[name] = curve[-1]
            stats[f"{name}_by_epoch"] = curve
    return model, stats
