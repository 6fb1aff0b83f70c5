"""``semhash train`` and ``semhash info``: bits checked before any work, the stopping rule shown honestly."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

import numpy as np
from support import FAST_EPOCHS, FakeEncoder
from typer.testing import CliRunner

from semhash.cli import app
from semhash.info import epochs_rule
from semhash.train import TrainConfig, train_hasher

runner = CliRunner()


def invoke(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def models(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT id, bits, created_at FROM models").fetchall()


def test_train_bits_zero_is_a_usage_error_before_any_work(
    tmp_path: Path, corpus: Path, patch_encoder: FakeEncoder
) -> None:
    """``--bits 0`` used to be taken for "the index's bits" and train 32 bits; now it is refused like ``index``."""
    db = tmp_path / "s.db"
    assert invoke("index", corpus, "--db", db, "--epochs", FAST_EPOCHS, "--device", "cpu")[0] == 0
    before = models(db)
    for bits in (0, 12, 72):
        code, output = invoke("train", "--db", db, "--bits", bits, "--epochs", 1)
        assert code == 2, output
        assert f"--bits must be a multiple of 8 between 8 and 64, not {bits}" in output
    assert models(db) == before
    # The same refusal as `index`, even when there is no index at all (checked before the database is opened).
    assert invoke("train", "--db", tmp_path / "absent.db", "--bits", 0)[0] == 2
    assert invoke("index", corpus, "--db", db, "--bits", 0)[0] == 2


def test_explicit_epochs_are_recorded_and_shown(tmp_path: Path, corpus: Path, patch_encoder: FakeEncoder) -> None:
    db = tmp_path / "s.db"
    assert invoke("index", corpus, "--db", db, "--epochs", 2, "--device", "cpu")[0] == 0
    code, output = invoke("train", "--db", db, "--epochs", 3, "--bits", 16)
    assert code == 0, output
    assert "3 epochs, --epochs" in output and "held-out teacher-bit agreement" in output
    code, output = invoke("info", "--db", db, "--json")
    info = json.loads(output)
    assert info["epochs"] == 3 and info["epochs_rule"] == "--epochs 3" and 0 <= info["val_agreement"] <= 1
    code, output = invoke("info", "--db", db)
    shown = " ".join(output.split())  # the table wraps long cells
    assert code == 0 and "24 documents, 3 epochs (--epochs 3); held-out teacher-bit agreement" in shown
    code, output = invoke("train", "--db", db, "--epochs", 0)
    assert code == 2 and "--epochs" in output


def test_the_automatic_rule_is_described_from_what_training_recorded() -> None:
    x = np.random.default_rng(0).standard_normal((40, 8)).astype(np.float32)
    auto = TrainConfig(auto_epochs=2, min_steps=9, batch_size=16, hidden=32)
    _, stats = train_hasher(x, 8, auto)
    config = dataclasses.asdict(auto)
    assert stats["epochs"] == 3  # 38 documents: 3 steps an epoch, 9 steps need 3 epochs
    assert epochs_rule(config, stats) == "auto: max(2 epochs, 9 steps)"
    assert epochs_rule(dataclasses.asdict(TrainConfig(epochs=4)), {"epochs": 4.0, "epochs_auto": 0.0}) == "--epochs 4"
    assert epochs_rule({"epochs": 60}, {"epochs": 400.0}) is None  # a model trained before the rule was recorded
