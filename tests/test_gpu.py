"""The GPU path: CUDA agrees with the CPU (skipped without a GPU), and the GPU check script runs anywhere.

This file imports only the torch side of semhash (no faiss, no SQLite), so that ``tools/gpu_check.sh`` can run
it on a GPU machine that has torch and sentence-transformers but none of semhash's storage dependencies.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from support import topic_texts

from benchmarks.harness import DATA
from semhash.codes import unpack_bits
from semhash.model import encode_codes
from semhash.train import TrainConfig, train_hasher

ROOT = Path(__file__).resolve().parents[1]
NEWSGROUPS = DATA / "20newsgroups" / "20ng.jsonl.gz"
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _clustered(n: int, dim: int, clusters: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)) * 2
    x = centres[np.arange(n) % clusters] + rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.gpu
@needs_cuda
def test_cpu_and_gpu_training_agree() -> None:
    """Same seed, same batches: CUDA and CPU models (lexical features included) give (nearly) the same codes."""
    x = _clustered(n=400, dim=64, clusters=8)
    texts = topic_texts(per_topic=134)[0][:400]
    config = dataclasses.replace(TrainConfig(hidden=128), dropout=0.0, epochs=10, lexical_dim=8)
    cpu_model, cpu_stats = train_hasher(x, 32, config, device="cpu", texts=texts)
    gpu_model, gpu_stats = train_hasher(x, 32, config, device="cuda", texts=texts)
    assert gpu_model.lexical is not None
    cpu_bits = unpack_bits(encode_codes(cpu_model, x, texts=texts))
    gpu_bits = unpack_bits(encode_codes(gpu_model, x, device="cuda", texts=texts))
    assert (cpu_bits == gpu_bits).mean() > 0.97
    assert abs(cpu_stats["loss"] - gpu_stats["loss"]) < 0.05
    # The returned model is on CPU, whichever device trained it.
    assert next(gpu_model.parameters()).device.type == "cpu"


@pytest.mark.gpu
@pytest.mark.slow
@needs_cuda
def test_gpu_embeddings_agree_with_cpu() -> None:
    """The real model, window pooling included, embeds the same on CUDA as on the CPU."""
    from semhash.embed import SentenceTransformerEncoder

    model = os.environ.get("SEMHASH_GPU_MODEL") or None
    texts = [p.read_text() for p in sorted((ROOT / "data" / "sample").rglob("*.txt"))][:40]
    texts.append(" ".join(texts))  # one long document: several windows
    cpu = SentenceTransformerEncoder(model, device="cpu").encode(texts)
    gpu = SentenceTransformerEncoder(model, device="cuda").encode(texts)
    assert np.sum(cpu * gpu, axis=1).min() > 0.9999


@pytest.mark.slow
@pytest.mark.skipif(not NEWSGROUPS.exists(), reason=f"needs {NEWSGROUPS}")
def test_gpu_check_script_dry_run(tmp_path: Path) -> None:
    """``python -m tools.gpu_check --dry-run`` runs every step on the CPU and writes its JSON report."""
    command = [sys.executable, "-m", "tools.gpu_check", "--dry-run", "--docs", "24", "--epochs", "1"]
    result = subprocess.run(
        [*command, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["dry_run"] is True
    assert report["embedding"]["documents"] == 24 and report["embedding"]["docs_per_s"] > 0
    assert report["embedding"]["windows"] >= 24
    (run,) = report["training"]
    assert run["device"] == "cpu" and 0.0 <= run["p@100"] <= 1.0 and run["train_seconds"] > 0
