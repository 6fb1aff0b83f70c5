"""The runtime folder of an adapted encoder: its manifest's ``windows`` and format, and the freshness check.

No model here: the export itself, its parity with the torch adapted encoder and the query on it are in
tests/test_adapt.py (the real model, one adaptation for the module).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from semhash.errors import RuntimeUnavailableError
from semhash.runtime.folder import check_fresh
from semhash.runtime.manifest import (
    ENCODER_FILE,
    MANIFEST,
    RUNTIME_FORMAT,
    TOKENIZER_FILE,
    WINDOWED_FORMAT,
    Manifest,
    read_manifest,
)
from semhash.runtime.onnx_encoder import capped_windows
from semhash.store import StoredModel

FROZEN = "sentence-transformers/all-MiniLM-L6-v2"
ADAPTED = f"{FROZEN}#adapted-0123456789ab"


def _write_manifest(folder: Path, **fields: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    entry = {"sha256": "0" * 64, "bytes": 1}
    raw = {
        "format": RUNTIME_FORMAT,
        "embedding_model": FROZEN,
        "dim": 384,
        "max_seq_length": 256,
        "hasher": None,
        "versions": {},
        "files": {ENCODER_FILE: entry, TOKENIZER_FILE: entry},
        "optimized": None,
        **fields,
    }
    raw = {k: v for k, v in raw.items() if v is not ...}
    (folder / MANIFEST).write_text(json.dumps(raw))
    return folder


def test_a_folder_that_caps_the_windows_is_format_2(tmp_path: Path) -> None:
    manifest = read_manifest(
        _write_manifest(tmp_path, format=WINDOWED_FORMAT, embedding_model=ADAPTED, max_seq_length=128, windows=1)
    )
    assert (manifest.embedding_model, manifest.max_seq_length, manifest.windows) == (ADAPTED, 128, 1)
    assert manifest.to_json()["format"] == WINDOWED_FORMAT and manifest.to_json()["windows"] == 1
    # A folder written before `windows` existed (a frozen encoder's) reads as "every window".
    old = read_manifest(_write_manifest(tmp_path / "old", windows=...))
    assert old.windows == 0 and old.to_json()["format"] == RUNTIME_FORMAT


@pytest.mark.parametrize(
    "fields",
    [
        {"format": RUNTIME_FORMAT, "windows": 1},  # what an older semhash would read as "every window"
        {"format": WINDOWED_FORMAT, "windows": 0},
        {"format": WINDOWED_FORMAT, "windows": True},
        {"format": WINDOWED_FORMAT, "windows": -1},
        {"format": WINDOWED_FORMAT, "windows": "1"},
        {"format": WINDOWED_FORMAT, "windows": 1 << 40},
        {"format": 3, "windows": 1},
    ],
)
def test_a_manifest_whose_windows_and_format_disagree_is_refused(tmp_path: Path, fields: dict[str, Any]) -> None:
    with pytest.raises(RuntimeUnavailableError, match="re-export it"):
        read_manifest(_write_manifest(tmp_path, embedding_model=ADAPTED, **fields))


def test_a_frozen_export_never_serves_adapted_codes_nor_the_reverse(tmp_path: Path) -> None:
    model = StoredModel(3, "now", 32, 384, {}, {}, 10, b"w")
    hasher = {"id": 3, "checksum": model.checksum, "bits": 32}
    frozen = Manifest(tmp_path, FROZEN, 384, 256, hasher, {}, {})
    adapted = Manifest(tmp_path, ADAPTED, 384, 128, hasher, {}, {}, windows=1)
    check_fresh(frozen, FROZEN, model)
    check_fresh(adapted, ADAPTED, model)
    with pytest.raises(RuntimeUnavailableError, match="semhash runtime build"):
        check_fresh(frozen, ADAPTED, model)
    with pytest.raises(RuntimeUnavailableError, match="semhash runtime build"):
        check_fresh(adapted, FROZEN, model)
    # Another adaptation of the same base model is another encoder.
    with pytest.raises(RuntimeUnavailableError, match="semhash runtime build"):
        check_fresh(adapted, f"{FROZEN}#adapted-ba9876543210", model)


@pytest.mark.parametrize(
    ("asked", "cap", "windows"),
    [(0, 0, 0), (3, 0, 3), (0, 1, 1), (3, 1, 1), (1, 4, 1), (5, 4, 4)],
)
def test_the_manifests_windows_bound_the_callers(asked: int, cap: int, windows: int) -> None:
    assert capped_windows(asked, cap) == windows
