"""The one place an encoder is chosen (semhash.encoders) and the one reader of stored weights (semhash.blobs)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from support import FAST_EPOCHS, FakeEncoder

from semhash.blobs import read_blob
from semhash.encoders import (
    ReadWeights,
    cached_indexing_encoder,
    index_encoder,
    resolve_runtime,
    shipped_weights,
    torch_encoder,
)
from semhash.errors import CorruptModelError, UsageError
from semhash.ingest import IndexOptions, index_paths
from semhash.runtime import RuntimeUnavailableError, runtime_folder
from semhash.store import Store

ADAPTED = "base-model#adapted-0123456789ab"


# -- choosing the runtime --------------------------------------------------------------------------
def test_runtime_choice_flag_then_environment_then_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEMHASH_RUNTIME", raising=False)
    assert resolve_runtime(None) == "auto"
    monkeypatch.setenv("SEMHASH_RUNTIME", "torch")
    assert resolve_runtime(None) == "torch" and resolve_runtime("ONNX") == "onnx"
    with pytest.raises(UsageError, match="--runtime"):
        resolve_runtime("tensorflow")


# -- choosing the torch encoder ------------------------------------------------------------------
def test_torch_encoder_loads_the_named_model_through_embed(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple] = []
    fake = FakeEncoder()

    def recorder(*args: object) -> FakeEncoder:
        calls.append(args)
        return fake

    monkeypatch.setattr("semhash.embed.load_encoder", recorder)
    assert torch_encoder("some-model", "cpu", 3) is fake
    assert calls == [("some-model", "cpu", 3)]


def test_an_adapted_name_without_its_weights_never_loads_another_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*args: object) -> None:
        raise AssertionError("the frozen model must not stand in for an adapted one")

    monkeypatch.setattr("semhash.embed.load_encoder", never)
    for weights in (None, ReadWeights("another#adapted-000000000000", b"blob"), ReadWeights(ADAPTED, b"not it")):
        with pytest.raises(CorruptModelError, match="adapted encoder"):
            torch_encoder(ADAPTED, "cpu", 0, weights)


def test_read_weights_answer_only_for_their_name() -> None:
    weights = ReadWeights(ADAPTED, b"blob")
    assert weights.adapted_encoder(ADAPTED) == b"blob" and weights.adapted_encoder("other") is None


def test_a_frozen_index_ships_no_weights_to_its_workers(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db", create=True) as store:
        assert shipped_weights(store, "sentence-transformers/all-MiniLM-L6-v2") is None
        with pytest.raises(CorruptModelError):
            shipped_weights(store, ADAPTED)  # recorded as adapted, no blob stored: nothing travels


def test_indexing_without_a_runtime_folder_embeds_with_torch(
    tmp_path: Path, patch_encoder: FakeEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SEMHASH_INDEX_EXPORT", raising=False)
    chosen = index_encoder(tmp_path / "none.db", None, None, "cpu")
    assert chosen.encoder is patch_encoder and chosen.warning is None


# -- a first index on the exported encoder (issue 20) ------------------------------------------------
def test_a_failed_export_before_indexing_warns_once_and_torch_embeds(
    corpus: Path, tmp_path: Path, patch_encoder: FakeEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def broken(name: str) -> None:
        calls.append(name)
        raise RuntimeUnavailableError("no exporter here")

    monkeypatch.setenv("SEMHASH_INDEX_EXPORT", "1")
    monkeypatch.setattr("semhash.runtime.cache.cached_encoder", broken)
    report = index_paths(tmp_path / "s.db", [corpus], IndexOptions(device="cpu", epochs=FAST_EPOCHS))
    assert calls and report.added > 0 and patch_encoder.calls > 0  # the loaded (torch) encoder embedded
    assert [w for w in report.warnings if "fast indexing" in w] == report.warnings
    assert len(report.warnings) == 1 and "no exporter here" in report.warnings[0]
    assert not runtime_folder(tmp_path / "s.db").exists()


@pytest.mark.parametrize(
    ("env", "device"),
    [({"SEMHASH_INDEX_EXPORT": "0"}, "cpu"), ({"SEMHASH_RUNTIME": "torch"}, "cpu"), ({}, "cuda"), (None, "cpu")],
)
def test_no_export_before_indexing_by_default_when_turned_off_or_on_a_gpu(
    env: dict[str, str] | None, device: str, monkeypatch: pytest.MonkeyPatch
) -> None:

    def never(name: str) -> None:
        raise AssertionError("exported although it should not")

    if env is None:  # the default: off
        monkeypatch.delenv("SEMHASH_INDEX_EXPORT", raising=False)
    else:
        monkeypatch.setenv("SEMHASH_INDEX_EXPORT", "1")
        for key, value in env.items():
            monkeypatch.setenv(key, value)
    monkeypatch.setattr("semhash.runtime.cache.cached_encoder", never)
    found = cached_indexing_encoder(None, device)
    assert found.encoder is None and found.warning is None


# -- the one reader of stored blobs ----------------------------------------------------------------
UNREADABLE = "unreadable ({why})"


def _saved(payload: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def test_every_bad_blob_is_one_corrupt_model_error() -> None:
    def parse(payload: dict, config: str) -> str:
        if config == "refuse":
            raise CorruptModelError(UNREADABLE.format(why="refused"))
        raise ValueError("a parse that trips")

    cases = {
        None: "no weights stored",
        b"": "no weights stored",
        b"not torch at all": "unreadable (",
        _saved({"other": "x"}): "not a model",
        _saved(["config"]): "not a model",
        _saved({"config": "refuse"}): "refused",
        _saved({"config": "{}"}): "ValueError",
    }
    for blob, message in cases.items():
        with pytest.raises(CorruptModelError, match=message.replace("(", r"\(")):
            read_blob(blob, "config", UNREADABLE, "not a model", parse)


def test_a_good_blob_reaches_its_parser() -> None:
    blob = _saved({"config": "{}", "state": torch.zeros(2)})
    assert read_blob(blob, "config", UNREADABLE, "not a model", lambda payload, config: (config, len(payload))) == (
        "{}",
        2,
    )


# -- the exported encoder for indexing ----------------------------------------------------------------
def test_a_long_document_embedded_by_torch_counts_in_the_index_encoders_windows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At fp32 a document too long for one batch goes to torch; the run's summary must still count its windows."""
    import numpy as np

    import semhash.encoders as encoders
    from semhash.embed import EncodeStats

    class LongTorch:
        stats = EncodeStats()

        def encode_long(self, text: str, progress: object = None, keep: object = None) -> np.ndarray:
            self.stats.documents += 1
            self.stats.windows += 7
            return np.ones(4, dtype=np.float32) / 2

    class Exported:
        name, dim, precision = "m", 4, "fp32"
        stats = EncodeStats(documents=3, windows=5)

        def encode(self, texts: Sequence[str]) -> np.ndarray:
            return np.zeros((len(texts), 4), dtype=np.float32)

    monkeypatch.setattr(encoders, "torch_encoder", lambda *args: LongTorch())
    fast = encoders.FastIndexEncoder(Exported(), "m", "cpu", 0)
    fast.encode_long("x" * 10)
    fast.encode_long("y" * 10)
    assert fast.stats == EncodeStats(documents=5, windows=19)  # 3 + 2 documents, 5 + 2 x 7 windows
