"""Training the hashing autoencoder on a corpus's embeddings, on GPU when there is one, else CPU.

Baseline recipe (to be replaced by the tuned one of issue 3): reconstruct each document's
neighbour-averaged embedding from its code, keep bits balanced (each bit on for half the corpus) and
decorrelated.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from semhash.model import HashConfig, HashingAutoencoder


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`train_hasher`."""

    epochs: int = 30
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    hidden: int = 512
    seed: int = 0
    neighbours: int = 10
    balance_weight: float = 0.1
    decorrelation_weight: float = 0.01


def neighbour_average(embeddings: np.ndarray, k: int, block: int = 2048) -> np.ndarray:
    """Each row averaged with its ``k`` nearest rows by cosine (itself included), renormalised."""
    n = len(embeddings)
    k = min(k, n - 1)
    if k <= 0:
        return embeddings.copy()
    x = torch.as_tensor(embeddings, dtype=torch.float32)
    out = torch.empty_like(x)
    for start in range(0, n, block):
        sims = x[start : start + block] @ x.T
        idx = sims.topk(k + 1, dim=1).indices
        out[start : start + block] = nn.functional.normalize(x[idx].mean(dim=1), dim=1)
    return out.numpy()


def train_hasher(
    embeddings: np.ndarray,
    bits: int,
    config: TrainConfig | None = None,
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> tuple[HashingAutoencoder, dict[str, float]]:
    """Train a hashing autoencoder on ``(n, dim)`` unit embeddings.

    Args:
        embeddings: the corpus's embeddings (float32).
        bits: code length.
        config: hyper-parameters (defaults: :class:`TrainConfig`).
        device: resolved torch device.
        progress: called as ``progress(epoch, epochs)`` after each epoch.

    Returns:
        The trained model (on CPU, in eval mode) and statistics: final loss, seconds, bit balance.
    """
    config = config or TrainConfig()
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    x_all = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
    targets = torch.as_tensor(neighbour_average(x_all.numpy(), config.neighbours))
    model = HashingAutoencoder(HashConfig(input_dim=x_all.shape[1], bits=bits, hidden=config.hidden)).to(
        device
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    n = len(x_all)
    batch_size = max(2, min(config.batch_size, n))
    loss_value = float("nan")
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            if len(idx) < 2:
                continue
            x = x_all[idx].to(device)
            target = targets[idx].to(device)
            logits, code, recon = model(x)
            soft = torch.tanh(logits)
            recon_loss = (1 - nn.functional.cosine_similarity(recon, target, dim=1)).mean()
            balance = soft.mean(dim=0).pow(2).mean()
            centred = soft - soft.mean(dim=0)
            cov = centred.T @ centred / len(idx)
            decorrelation = (cov - torch.diag(torch.diag(cov))).pow(2).mean()
            loss = recon_loss + config.balance_weight * balance + config.decorrelation_weight * decorrelation
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_value = float(loss.detach())
        if progress:
            progress(epoch + 1, config.epochs)
    model.eval().cpu()
    with torch.no_grad():
        on = (model.logits(x_all) > 0).float().mean(dim=0)
    return model, {
        "loss": loss_value,
        "seconds": time.perf_counter() - started,
        "min_bit_usage": float(on.min()),
        "max_bit_usage": float(on.max()),
    }
