"""Adapting the encoder to the corpus with the hashing objective (``semhash train --adapt``, issue 12).

The default recipe (:mod:`semhash.train`) trains a small student on *frozen* embeddings; it already
matches its teacher (ITQ on kNN-smoothed features), so the next gain has to come from the encoder. This
module fine-tunes the top ``layers`` transformer layers of the sentence-transformers encoder on the
indexed corpus, unsupervised, end to end with a hashing head:

1. **Targets** from the current features (stored embeddings + lexical vector): the kNN graph, the
   smoothed features ``z`` and the ITQ teacher bits, exactly as :func:`semhash.train.build_targets`.
2. **Frozen lower layers, cached once.** The first window (``max_seq_length`` tokens) of each training
   document goes through the embeddings and the lower transformer layers once, without gradients; the
   token states are kept (float16). Each step then runs only the top layers (dropout on: two passes of
   one document are two views), mean-pools, normalises, joins the document's lexical vector, and a
   hashing head predicts the code logits.
3. **Loss** (weights in :class:`AdaptConfig`):

   - ``teacher_weight``: binary cross-entropy of the head's logits against the teacher bits
     (distillation of the smoothed teacher's bits, end to end through the top layers);
   - ``contrastive_weight``: InfoNCE between the document's adapted features and the smoothed
     features of the batch (its own smoothed row, the kNN-graph consensus, is the positive, the others'
     are the negatives): the encoder learns to put a document where its neighbourhood is;
   - ``balance_weight`` / ``decorrelation_weight``: each bit on for half the documents, bits uncorrelated.

The head is scaffolding: after adaptation the corpus is re-embedded with the adapted encoder and the
default recipe trains the index's hashing model on the new embeddings, so indexing, querying and the
stored model stay what they were. Only the adapted layers are stored (:mod:`semhash.adapted`).

Validation: a seeded ``holdout_fraction`` of the training sample never takes a gradient step; when the head
learns the teacher bits (``teacher_weight > 0``), its agreement with their teacher bits is recorded after
each epoch (``val_agreement_by_epoch``). Under the default, contrastive-only loss the head never sees those
bits and its agreement is chance (~0.5), so nothing is recorded rather than a number that looks like a score.

Where it lands (``benchmarks/bench_adapt.py``, 20 Newsgroups, 32 bits, a 2-core CPU budget of ~90 steps on
3,000 posts, top 2 of 6 layers, first 128-token window): no gain yet. On the validation slice the
contrastive term alone (the default) ties the frozen encoder (P@100 0.5915 vs 0.5919); the teacher-bit
term lowers P@100 (0.516 alone, 0.580 beside the contrastive term) even where it raises float cosine
P@100. What bounds it here: one window of 128 tokens per post (the frozen index pools every 254-token
window), few steps. Over 3 seeds the test P@100 is 0.556 against the frozen default's 0.566, and the same
recipe, unchanged, on a second corpus (Debian package descriptions by section, ``benchmarks/datasets/debian_corpus.py``)
loses as little: 0.613 against 0.619 at 32 bits. The feature (train, store, load, query consistency) is
independent of that. On a GPU, ``tools/gpu_check.sh``'s adapt stage runs the recipe with every database
document and more steps.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from semhash.adapted import AdaptedSpec, encoder_to_bytes, set_window, transformer_layers
from semhash.train import LoopConfig, Targets, TrainConfig

if TYPE_CHECKING:
    from transformers import PretrainedConfig

    from semhash.embed import SentenceTransformerEncoder
    from semhash.store import Store

#: Scalar statistics and per-epoch curves.
AdaptStats = dict[str, float | list[float]]


@dataclass
class AdaptConfig(LoopConfig):
    """Hyper-parameters of :func:`adapt_encoder`: :class:`~semhash.train.LoopConfig`'s, with defaults of its own.

    The defaults are the one setting measured on 20 Newsgroups (``benchmarks/bench_adapt.py``; a CPU budget:
    about 100 optimiser steps), not a tuned optimum. ``holdout_fraction`` (0.05), ``seed`` (0),
    ``balance_weight`` (0.1) and ``decorrelation_weight`` (0.01) keep :class:`~semhash.train.LoopConfig`'s.
    """

    #: top transformer layers fine-tuned (the others stay frozen and are run once per document).
    layers: int = 2
    #: tokens per window of the adapted encoder (special tokens included).
    max_seq_length: int = 128
    #: windows embedded per document by the adapted encoder (0 = all; 1 = the first).
    windows: int = 1
    #: documents the adaptation trains on (a seeded sample; the whole corpus is re-embedded after).
    max_docs: int = 3000
    epochs: int = 1
    batch_size: int = 32
    #: learning rate of the transformer layers, and of the (scaffolding) hashing head. Few steps on a CPU
    #: budget, so a rate above the usual full fine-tuning one (2e-5) for the two top layers.
    lr: float = 1e-4
    head_lr: float = 1e-3
    head_hidden: int = 1024
    #: off by default: on 20 Newsgroups' validation slice it costs 0.07 P@100 alone, 0.01 beside the
    #: contrastive term (benchmarks/bench_adapt.py).
    teacher_weight: float = 0.0
    contrastive_weight: float = 1.0
    temperature: float = 0.05
    #: torch CPU threads while adapting (0 = torch's default).
    cpu_threads: int = 0

    def __post_init__(self) -> None:
        if self.layers < 1:
            raise ValueError(f"layers must be at least 1, not {self.layers}")
        if self.max_seq_length < 8:
            raise ValueError(f"max_seq_length must be at least 8, not {self.max_seq_length}")
        if self.epochs < 0 or self.max_docs < 2 or self.windows < 0:
            raise ValueError("epochs must be 0 or more, max_docs at least 2, windows 0 or more")

    def spec(self, base_model: str) -> AdaptedSpec:
        """The stored description of an encoder adapted with this configuration."""
        return AdaptedSpec(
            base_model=base_model, layers=self.layers, max_seq_length=self.max_seq_length, windows=self.windows
        )


# -- the encoder cut in two -------------------------------------------------------------------------
class TopStack(nn.Module):
    """The top transformer layers of an encoder, then its mean pooling and L2 normalisation."""

    def __init__(self, layers: Sequence[nn.Module], config: PretrainedConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.config = config

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(batch, tokens, dim)`` states after the frozen layers and their 0/1 mask -> unit embeddings."""
        from transformers.masking_utils import create_bidirectional_mask

        hidden = states
        attention = create_bidirectional_mask(config=self.config, inputs_embeds=hidden, attention_mask=mask)
        for layer in self.layers:
            out = layer(hidden, attention_mask=attention)
            hidden = out[0] if isinstance(out, tuple) else out
        weights = mask.to(hidden.dtype).unsqueeze(-1)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, dim=1)


def split_encoder(encoder: SentenceTransformerEncoder, layers: int) -> TopStack:
    """A trainable copy of ``encoder``'s top ``layers`` transformer layers (the encoder itself is untouched)."""
    stack = transformer_layers(encoder)
    if not 1 <= layers < len(stack):
        raise ValueError(f"cannot adapt {layers} of the model's {len(stack)} layers (at least 1, fewer than all)")
    auto_model: Any = encoder._model[0].auto_model
    return TopStack([copy.deepcopy(layer) for layer in stack[len(stack) - layers :]], auto_model.config)


@torch.no_grad()
def lower_states(
    encoder: SentenceTransformerEncoder,
    windows: Sequence[str],
    layers: int,
    batch: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> list[torch.Tensor]:
    """Token states of each window after the encoder's frozen layers (all but the top ``layers``), float16.

    Windows are tokenised as the encoder's sentence-transformers model does (special tokens, truncation to
    its ``max_seq_length``). One ``(tokens, dim)`` tensor per window, padding removed.
    """
    model: Any = encoder._model
    auto_model: Any = model[0].auto_model
    stack = transformer_layers(encoder)
    keep = len(stack) - layers
    device = next(auto_model.parameters()).device
    out: list[torch.Tensor] = [torch.empty(0)] * len(windows)
    order = sorted(range(len(windows)), key=lambda i: len(windows[i]))  # similar lengths share a batch
    try:
        # Run the model with only its lower layers: its own embeddings and masks, nothing re-implemented.
        auto_model.encoder.layer = nn.ModuleList(list(stack)[:keep])  # the same layer objects, fewer of them
        auto_model.eval()
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            features = model.tokenizer(
                [windows[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=model.max_seq_length,
                return_tensors="pt",
            )
            features = {k: v.to(device) for k, v in features.items()}
            hidden = auto_model(**features).last_hidden_state
            lengths = features["attention_mask"].sum(dim=1).tolist()
            for row, i in enumerate(idx):
                out[i] = hidden[row, : int(lengths[row])].to(torch.float16).cpu()
            if progress:
                progress(min(start + batch, len(order)), len(order))
    finally:
        auto_model.encoder.layer = stack
    return out


def pad(states: Sequence[torch.Tensor], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A padded float32 batch of token states and its 0/1 attention mask."""
    longest = max(int(s.shape[0]) for s in states)
    dim = int(states[0].shape[1])
    batch = torch.zeros((len(states), longest, dim), dtype=torch.float32)
    mask = torch.zeros((len(states), longest), dtype=torch.long)
    for row, s in enumerate(states):
        batch[row, : s.shape[0]] = s.float()
        mask[row, : s.shape[0]] = 1
    return batch.to(device), mask.to(device)


@torch.no_grad()
def embed_states(top: TopStack, states: Sequence[torch.Tensor], device: str, batch: int = 64) -> np.ndarray:
    """Unit embeddings of cached windows through ``top`` (eval mode), in the order given."""
    top.eval().to(device)
    order = sorted(range(len(states)), key=lambda i: int(states[i].shape[0]))
    out: np.ndarray = np.zeros((len(states), 0), dtype=np.float32)
    rows: dict[int, np.ndarray] = {}
    for start in range(0, len(order), batch):
        idx = order[start : start + batch]
        x, mask = pad([states[i] for i in idx], device)
        vectors = top(x, mask).cpu().numpy()
        rows.update(zip(idx, vectors, strict=True))
    if rows:
        out = np.stack([rows[i] for i in range(len(states))]).astype(np.float32)
    return out


# -- the loss -------------------------------------------------------------------------------------
class HashHead(nn.Module):
    """The scaffolding hashing head: features -> ``bits`` logits."""

    def __init__(self, feature_dim: int, bits: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(feature_dim, hidden), nn.GELU(), nn.Linear(hidden, bits))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Code logits (a bit is on where its logit is positive)."""
        return self.net(x)


def adapt_loss(
    embedded: torch.Tensor,
    lexical: torch.Tensor | None,
    head: HashHead,
    smoothed: torch.Tensor,
    teacher: torch.Tensor | None,
    config: AdaptConfig,
) -> dict[str, torch.Tensor]:
    """The weighted loss terms of one batch, by name; ``loss`` is their sum."""
    features = embedded if lexical is None else torch.cat([embedded, lexical], dim=1)
    unit = nn.functional.normalize(features, dim=1)
    logits = head(unit)
    soft = torch.tanh(logits)
    parts: dict[str, torch.Tensor] = {}
    if teacher is not None and config.teacher_weight:
        bce = nn.functional.binary_cross_entropy_with_logits(logits, teacher)
        parts["teacher"] = config.teacher_weight * bce
    if config.contrastive_weight:
        similarity = unit @ smoothed.T / config.temperature
        labels = torch.arange(len(unit), device=unit.device)
        parts["contrastive"] = config.contrastive_weight * nn.functional.cross_entropy(similarity, labels)
    if config.balance_weight:
        parts["balance"] = config.balance_weight * soft.mean(dim=0).pow(2).mean()
    if config.decorrelation_weight:
        centred = soft - soft.mean(dim=0)
        cov = centred.T @ centred / len(unit)
        parts["decorrelation"] = config.decorrelation_weight * (cov - torch.diag(torch.diag(cov))).pow(2).mean()
    parts["loss"] = torch.stack(list(parts.values())).sum() if parts else soft.sum() * 0
    return parts


# -- the loop -------------------------------------------------------------------------------------
def sample_documents(n: int, config: AdaptConfig) -> np.ndarray:
    """Sorted indices of the (seeded) documents the adaptation trains on."""
    if n <= config.max_docs:
        return np.arange(n)
    return np.sort(np.random.default_rng(config.seed).choice(n, config.max_docs, replace=False))


def adapt_top(
    top: TopStack,
    states: Sequence[torch.Tensor],
    targets: Targets,
    rows: np.ndarray,
    lexical_dim: int,
    config: AdaptConfig,
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> AdaptStats:
    """Fine-tune ``top`` in place on the cached ``states`` of the documents ``rows`` (their rows in ``targets``).

    ``targets`` holds the features (embedding, then ``lexical_dim`` lexical columns), the smoothed features
    and the teacher bits of the whole corpus; the lexical columns of a document are taken as they are.
    """
    if len(states) != len(rows):
        raise ValueError(f"{len(states)} cached documents for {len(rows)} rows")
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    n = len(rows)
    held = int(n * config.holdout_fraction) if n * config.holdout_fraction >= 1 and n >= 20 else 0
    order = torch.randperm(n, generator=generator)
    train_idx, val_idx = order[held:], order[:held]
    top.to(device).train()
    bits = targets.teacher.shape[1] if targets.teacher is not None else 32
    head = HashHead(targets.x.shape[1], bits, config.head_hidden).to(device)
    optimizer = torch.optim.AdamW(
        [{"params": top.parameters(), "lr": config.lr}, {"params": head.parameters(), "lr": config.head_lr}],
        weight_decay=0.01,
    )
    size = max(2, min(config.batch_size, len(train_idx)))
    steps = config.epochs * max(1, len(train_idx) // size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / max(1, steps // 10)) * max(0.0, 1 - step / max(1, steps))
    )
    rows_t = torch.as_tensor(rows, dtype=torch.long)
    dim = targets.x.shape[1] - lexical_dim
    curves: dict[str, list[float]] = {"val_agreement": [], "loss": []}
    started = time.perf_counter()
    step = 0
    for _epoch in range(config.epochs):
        top.train()
        head.train()
        shuffled = train_idx[torch.randperm(len(train_idx), generator=generator)]
        for start in range(0, len(shuffled) - size + 1, size):
            idx = shuffled[start : start + size]
            corpus_rows = rows_t[idx].to(targets.x.device)
            x, mask = pad([states[int(i)] for i in idx], device)
            embedded = top(x, mask)
            lexical = targets.x[corpus_rows, dim:].to(device) if lexical_dim else None
            teacher = targets.teacher[corpus_rows].to(device) if targets.teacher is not None else None
            parts = adapt_loss(embedded, lexical, head, targets.smoothed[corpus_rows].to(device), teacher, config)
            optimizer.zero_grad(set_to_none=True)
            parts["loss"].backward()
            optimizer.step()
            scheduler.step()
            step += 1
            curves["loss"].append(float(parts["loss"].detach()))
            if progress:
                progress(step, steps)
        if len(val_idx) and targets.teacher is not None and config.teacher_weight > 0:
            curves["val_agreement"].append(_agreement(top, head, states, targets, rows_t, val_idx, dim, device))
    stats: AdaptStats = {
        "adapt_steps": float(step),
        "adapt_docs": float(n),
        "adapt_holdout": float(len(val_idx)),
        "adapt_seconds": time.perf_counter() - started,
    }
    if curves["loss"]:
        stats["adapt_loss"] = curves["loss"][-1]
    if curves["val_agreement"]:
        stats["adapt_val_agreement"] = curves["val_agreement"][-1]
        stats["adapt_val_agreement_by_epoch"] = curves["val_agreement"]
    top.eval()
    return stats


@torch.no_grad()
def _agreement(
    top: TopStack,
    head: HashHead,
    states: Sequence[torch.Tensor],
    targets: Targets,
    rows: torch.Tensor,
    val_idx: torch.Tensor,
    dim: int,
    device: str,
) -> float:
    """Share of the held-out documents' teacher bits the head gets right (eval mode)."""
    assert targets.teacher is not None
    top.eval()
    head.eval()
    agree = []
    for start in range(0, len(val_idx), 64):
        idx = val_idx[start : start + 64]
        corpus_rows = rows[idx].to(targets.x.device)
        x, mask = pad([states[int(i)] for i in idx], device)
        features = top(x, mask)
        if targets.x.shape[1] > dim:
            features = torch.cat([features, targets.x[corpus_rows, dim:].to(device)], dim=1)
        predicted = (head(nn.functional.normalize(features, dim=1)) > 0).float()
        agree.append((predicted == targets.teacher[corpus_rows].to(device)).float().mean(dim=1))
    return float(torch.cat(agree).mean())


def first_windows(encoder: SentenceTransformerEncoder, texts: Sequence[str]) -> list[str]:
    """The first window of each text, cut as the (window-resized) encoder cuts it."""
    return [next(iter(encoder.iter_windows(text)), ("", 1))[0] for text in texts]


def adapt_encoder(
    encoder: SentenceTransformerEncoder,
    texts: Sequence[str],
    targets: Targets,
    lexical_dim: int,
    config: AdaptConfig,
    device: str = "cpu",
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[bytes, AdaptStats]:
    """Adapt ``encoder`` (in place) to the corpus ``texts`` and return its stored blob and statistics.

    ``targets`` are :func:`semhash.train.build_targets` of the corpus's current features, row ``i`` for
    ``texts[i]``. After the call the encoder embeds with the adapted layers, its window length and window
    limit; its name is left for the caller to set (it depends on the blob).
    """
    started = time.perf_counter()
    previous_threads = torch.get_num_threads()
    if config.cpu_threads > 0 and device == "cpu":
        torch.set_num_threads(config.cpu_threads)
    try:
        set_window(encoder, config.max_seq_length)
        rows = sample_documents(len(texts), config)
        windows = first_windows(encoder, [texts[i] for i in rows])
        cache = lower_states(
            encoder, windows, config.layers, progress=(lambda d, t: progress("adapt-cache", d, t)) if progress else None
        )
        top = split_encoder(encoder, config.layers)
        stats = adapt_top(
            top, cache, targets, rows, lexical_dim, config, device,
            progress=(lambda d, t: progress("adapt", d, t)) if progress else None,
        )  # fmt: skip
    finally:
        torch.set_num_threads(previous_threads)
    stack = transformer_layers(encoder)
    states = [layer.state_dict() for layer in top.layers]
    for layer, state in zip(stack[len(stack) - config.layers :], states, strict=True):
        layer.load_state_dict(state)
    encoder.max_windows = config.windows
    encoder._model.eval()
    blob = encoder_to_bytes(config.spec(base_model=encoder.name), states)
    stats["adapt_total_seconds"] = time.perf_counter() - started
    return blob, stats


# -- the index's encoder, adapted ---------------------------------------------------------------------
def adapt_store(
    store: Store,
    bits: int,
    device: str,
    train_config: TrainConfig,
    config: AdaptConfig,
    progress: Callable[[str, int, int], None] | None = None,
    embed_batch: int = 256,
) -> AdaptStats:
    """Adapt the index's base encoder to its documents, re-embed them all, and switch the index to it.

    The targets come from the stored embeddings and texts, read as the hashing model reads them (the
    lexical vector of ``train_config``). The base model is the index's (an index adapted before starts again
    from its base model, with its current embeddings as the corpus's structure). Everything is written in one
    transaction at the end (:meth:`semhash.store.Store.save_adapted_encoder`), codes cleared: the caller
    trains the hashing model on the new embeddings and encodes (``semhash train`` does it again if stopped).

    Raises:
        CorpusError: the index holds fewer than two documents.
    """
    from semhash.adapted import adapted_name, base_of
    from semhash.embed import SentenceTransformerEncoder
    from semhash.errors import CorpusError, UsageError
    from semhash.runtime.precision import index_precision
    from semhash.train import _fit_lexical, build_targets

    recorded = store.embedding_model
    if index_precision(store) != "fp32":  # it re-embeds with torch, at fp32: the index's embeddings would mix
        raise UsageError(f"{store.path} embeds at {index_precision(store)} precision: --adapt needs an fp32 index")
    ids, embeddings = store.embeddings()
    if recorded is None or len(ids) < 2:
        raise CorpusError(f"{store.path} holds fewer than two embedded documents: nothing to adapt the encoder to")
    texts = store.texts(ids.tolist())
    lexical = _fit_lexical(texts, train_config) if train_config.lexical_weight > 0 else None
    features = lexical.features(embeddings, texts) if lexical is not None else embeddings
    targets = build_targets(features, bits, train_config, device)
    encoder = SentenceTransformerEncoder(base_of(recorded), device=device)
    if encoder.dim != embeddings.shape[1]:
        raise UsageError(f"the base model {encoder.name!r} is {encoder.dim}-d, the index's embeddings are not")
    blob, stats = adapt_encoder(encoder, texts, targets, lexical.dim if lexical else 0, config, device, progress)
    started = time.perf_counter()
    vectors = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    for start in range(0, len(texts), embed_batch):
        vectors[start : start + embed_batch] = encoder.encode(texts[start : start + embed_batch])
        if progress:
            progress("embed", min(start + embed_batch, len(texts)), len(texts))
    stats["reembed_seconds"] = time.perf_counter() - started
    name = adapted_name(base_of(recorded), blob)
    config_record = {**asdict(config), "bits": bits, "seconds": stats.get("adapt_total_seconds", 0.0)}
    store.save_adapted_encoder(name, blob, config_record, {"name": name, **stats}, ids.tolist(), vectors)
    return stats
