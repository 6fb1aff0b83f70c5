"""``semhash train --adapt``: the adapted encoder is trained, stored with the index, and used by every query.

End to end with the real packaged all-MiniLM-L6-v2 (a few steps on ten short documents, on CPU), real
SQLite and real faiss; the stored-format checks need no model. The adapted encoder is exported to the
torch-free runtime (ONNX) too: its embeddings and the query's hits are the torch adapted encoder's.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from support import SMALL_DOCS, FakeEncoder
from typer.testing import CliRunner

from semhash.adapt import AdaptConfig, adapt_loss, embed_states, first_windows, lower_states, split_encoder
from semhash.adapted import (
    AdaptedSpec,
    adapted_name,
    base_of,
    encoder_to_bytes,
    is_adapted,
    load_adapted_encoder,
    set_window,
    spec_from_bytes,
)
from semhash.api import SemanticIndex
from semhash.cli import app
from semhash.errors import CorruptModelError
from semhash.store import Store

DOCS = {
    **SMALL_DOCS,
    "space/long.txt": " ".join(["The astronauts trained for the moon mission."] * 60),
}


def _write(root: Path) -> Path:
    corpus = root / "corpus"
    for name, text in DOCS.items():
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        (corpus / name).write_text(text)
    return corpus


# -- the stored format (no model) -------------------------------------------------------------------
def _blob(layers: int = 1) -> bytes:
    spec = AdaptedSpec(base_model="sentence-transformers/all-MiniLM-L6-v2", layers=layers, max_seq_length=128)
    return encoder_to_bytes(spec, [{"w": torch.ones(2, 2)} for _ in range(layers)])


def test_blob_round_trip_and_name() -> None:
    blob = _blob(2)
    spec, states = spec_from_bytes(blob)
    assert spec.layers == 2 and spec.max_seq_length == 128 and spec.windows == 1
    assert torch.equal(states[1]["w"], torch.ones(2, 2))
    name = adapted_name(spec.base_model, blob)
    assert is_adapted(name) and not is_adapted(spec.base_model) and base_of(name) == spec.base_model
    assert adapted_name(spec.base_model, _blob(1)) != name  # the checksum names the weights


@pytest.mark.parametrize(
    "damage",
    [b"", b"not torch at all", "truncate", "pickle", "layers"],
)
def test_damaged_blob_is_one_clear_error(damage: bytes | str, tmp_path: Path) -> None:
    import io
    import pickle

    if damage == "truncate":
        blob = _blob()[:100]
    elif damage == "pickle":
        blob = pickle.dumps({"spec": object()})
    elif damage == "layers":  # a spec that claims more layers than it holds
        buffer = io.BytesIO()
        torch.save({"spec": json.dumps({"base_model": "m", "layers": 3, "max_seq_length": 128, "windows": 1}),
                    "layers": [{}]}, buffer)  # fmt: skip
        blob = buffer.getvalue()
    else:
        assert isinstance(damage, bytes)
        blob = damage
    with pytest.raises(CorruptModelError, match=r"adapted encoder stored in the index is unreadable.*train --adapt"):
        spec_from_bytes(blob)


def test_a_blob_whose_checksum_is_not_the_recorded_name_is_refused() -> None:
    name = adapted_name("sentence-transformers/all-MiniLM-L6-v2", _blob(1))
    with pytest.raises(CorruptModelError, match="checksum"):
        load_adapted_encoder(name, _blob(2), "cpu")
    with pytest.raises(CorruptModelError, match="checksum"):
        load_adapted_encoder(name, None, "cpu")


def test_adapt_loss_terms_have_gradients() -> None:
    from semhash.adapt import HashHead

    torch.manual_seed(0)
    embedded = torch.nn.functional.normalize(torch.randn(8, 6, requires_grad=True), dim=1)
    lexical = torch.randn(8, 2)
    smoothed = torch.nn.functional.normalize(torch.randn(8, 8), dim=1)
    teacher = (torch.randn(8, 16) > 0).float()
    head = HashHead(8, 16, 32)
    parts = adapt_loss(embedded, lexical, head, smoothed, teacher, AdaptConfig(teacher_weight=1.0))
    assert set(parts) == {"teacher", "contrastive", "balance", "decorrelation", "loss"}
    parts["loss"].backward()
    assert head.net[0].weight.grad is not None and head.net[0].weight.grad.abs().sum() > 0


class _PoolTop(torch.nn.Module):
    """A stand-in for the top layers: one linear map of the token states, mean-pooled, unit length."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(dim, dim)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights = mask.unsqueeze(-1).float()
        pooled = (self.linear(states) * weights).sum(dim=1) / weights.sum(dim=1)
        return torch.nn.functional.normalize(pooled, dim=1)


@pytest.mark.parametrize("teacher_weight", [0.0, 1.0])
def test_held_out_teacher_agreement_is_recorded_only_when_the_head_learns_the_bits(teacher_weight: float) -> None:
    from semhash.adapt import adapt_top
    from semhash.train import Targets

    torch.manual_seed(0)
    n, dim, lexical_dim, bits = 40, 6, 2, 16
    states = [torch.randn(3 + i % 4, dim).half() for i in range(n)]
    features = torch.nn.functional.normalize(torch.randn(n, dim + lexical_dim), dim=1)
    targets = Targets(x=features, smoothed=features, teacher=(torch.randn(n, bits) > 0).float(), neighbours=5)
    config = AdaptConfig(teacher_weight=teacher_weight, batch_size=8, epochs=2, head_hidden=16)
    stats = adapt_top(_PoolTop(dim), states, targets, np.arange(n), lexical_dim, config)
    assert stats["adapt_holdout"] == 2 and stats["adapt_steps"] == 8
    if teacher_weight:
        curve = stats["adapt_val_agreement_by_epoch"]
        assert isinstance(curve, list) and len(curve) == 2 and stats["adapt_val_agreement"] == curve[-1]
    else:  # the contrastive-only head never sees the bits: its agreement would be chance, not a score
        assert "adapt_val_agreement" not in stats and "adapt_val_agreement_by_epoch" not in stats


# -- the real model ------------------------------------------------------------------------------
@pytest.mark.slow
def test_cached_lower_layers_plus_top_layers_equal_the_encoder() -> None:
    """The adaptation's split (frozen layers cached once, top layers run per step) is the encoder itself."""
    from semhash.embed import SentenceTransformerEncoder

    encoder = SentenceTransformerEncoder(None, max_windows=1)
    set_window(encoder, 32)
    texts = list(DOCS.values())
    states = lower_states(encoder, first_windows(encoder, texts), layers=2)
    split = embed_states(split_encoder(encoder, 2), states, "cpu")
    np.testing.assert_allclose(split, encoder.encode(texts), atol=1e-4)


@pytest.fixture(scope="module")
def adapted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """A real index, its runtime folder exported, then `semhash train --adapt` (a few steps on CPU)."""
    root = tmp_path_factory.mktemp("adapt")
    corpus = _write(root)
    db = root / "a.db"
    runner = CliRunner()
    result = runner.invoke(app, ["index", str(corpus), "--db", str(db), "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    assert (root / "a.db.runtime").is_dir()  # the fast path exists before adapting
    frozen_runtime = json.loads((root / "a.db.runtime" / "manifest.json").read_text())["embedding_model"]
    with Store.open(db) as store:
        _, frozen = store.embeddings()
    # The API's face of `semhash train --adapt` (the CLI's wiring is checked below), with a learning rate
    # that moves the weights visibly in a few steps.
    report = SemanticIndex(db, device="cpu").train(adapt=AdaptConfig(epochs=3, lr=1e-3), epochs=2)
    return db, corpus, {"report": asdict(report), "frozen": frozen, "frozen_runtime": frozen_runtime}


@pytest.mark.slow
def test_adapt_stores_the_encoder_and_re_embeds_with_it(adapted: tuple[Path, Path, dict]) -> None:
    db, _, extra = adapted
    report = extra["report"]
    assert report["adapt_stats"]["adapt_steps"] >= 1 and report["trained"] and report["encoded"] == len(DOCS)
    with Store.open(db) as store:
        name = store.embedding_model
        assert name is not None and is_adapted(name)
        blob = store.adapted_encoder(name)
        ids, embeddings = store.embeddings()
        texts = store.texts(ids.tolist())
        assert len(store.ids_without_code()) == 0
    assert not np.allclose(embeddings, extra["frozen"], atol=1e-3)  # the encoder did change
    # The stored encoder loads back and made the stored embeddings.
    encoder = load_adapted_encoder(name, blob, "cpu")
    np.testing.assert_allclose(encoder.encode(texts), embeddings, atol=1e-4)


@pytest.mark.slow
def test_adapt_exports_the_adapted_encoder_and_its_embeddings_are_the_torch_ones(
    adapted: tuple[Path, Path, dict],
) -> None:
    from semhash.codec import Codec
    from semhash.runtime import OnnxEncoder, runtime_folder
    from semhash.runtime.cache import encoder_cache_folder
    from semhash.runtime.manifest import WINDOWED_FORMAT, read_manifest

    db, _, extra = adapted
    assert not extra["report"]["warnings"]  # the export did not fail
    with Store.open(db) as store:
        name = store.embedding_model
        assert name is not None and is_adapted(name)
        torch_encoder = load_adapted_encoder(name, store.adapted_encoder(name), "cpu")
        codec = Codec.from_store(store, device="cpu")
    # The frozen encoder's folder was replaced by the adapted encoder's, made for the index's hashing model.
    manifest = read_manifest(runtime_folder(db))
    assert manifest.embedding_model == name != extra["frozen_runtime"]
    assert (manifest.max_seq_length, manifest.windows) == (128, 1)
    assert json.loads((runtime_folder(db) / "manifest.json").read_text())["format"] == WINDOWED_FORMAT
    assert codec.runtime == "onnx" and codec.note is None
    # Never cached as if it were a model of its own: it belongs to this index.
    assert not encoder_cache_folder(name).exists()
    # Parity, the long document included (the first 128-token window only, as the torch adapted encoder).
    texts = [*DOCS.values(), "how do I repair a punctured bike wheel"]
    onnx = codec.encoder
    assert isinstance(onnx, OnnxEncoder)
    embeddings = codec.embed(texts)
    cosine = (embeddings * torch_encoder.encode(texts)).sum(axis=1)
    assert cosine.min() >= 0.9999, cosine.min()
    assert onnx.stats.capped_documents == torch_encoder.stats.capped_documents == 1


@pytest.mark.slow
def test_a_query_on_an_adapted_index_runs_on_onnx_with_the_torch_hits(adapted: tuple[Path, Path, dict]) -> None:
    db, _, _ = adapted
    query = "how do I repair a punctured bike wheel"
    runner = CliRunner()
    hits = {}
    for runtime in ("onnx", "torch"):  # `--runtime onnx` fails rather than fall back
        result = runner.invoke(app, ["query", query, "--db", str(db), "--json", "-k", "4", "--runtime", runtime])
        assert result.exit_code == 0, result.output
        hits[runtime] = [json.loads(line) for line in result.output.splitlines()]
    assert len(hits["onnx"]) == 4
    assert [h["path"] for h in hits["onnx"]] == [h["path"] for h in hits["torch"]]
    assert [h["distance"] for h in hits["onnx"]] == [h["distance"] for h in hits["torch"]]
    np.testing.assert_allclose([h["cosine"] for h in hits["onnx"]], [h["cosine"] for h in hits["torch"]], atol=1e-4)


@pytest.mark.slow
def test_the_fast_path_reads_no_adapted_weights_and_a_broken_export_falls_back_to_them(
    adapted: tuple[Path, Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from semhash.codec import Codec
    from semhash.runtime import runtime_folder

    db, _, _ = adapted
    copy = tmp_path / "copy.db"
    with sqlite3.connect(db) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    source.close()
    target.close()
    shutil.copytree(runtime_folder(db), runtime_folder(copy))
    reads: list[str] = []
    original = Store.adapted_encoder

    def counted(store: Store, name: str) -> bytes | None:
        reads.append(name)
        return original(store, name)

    monkeypatch.setattr(Store, "adapted_encoder", counted)
    query = ["how do I repair a punctured bike wheel"]
    with Store.open(copy) as store:
        fast = Codec.from_store(store, device="cpu")
        slow = Codec.from_store(store, device="cpu")
    assert fast.embed(query).shape == (1, 384) and fast.runtime == "onnx"
    assert reads == []  # megabytes of weights a cold query does not need
    (runtime_folder(copy) / "tokenizer.json").unlink()  # broken after the freshness check: torch takes over
    embedded = slow.embed(query)
    assert slow.runtime == "torch" and reads == [slow.embedding_model]
    assert slow.note is not None and "tokenizer.json" in slow.note
    np.testing.assert_allclose(embedded, fast.embed(query), atol=1e-5)


@pytest.mark.slow
def test_indexing_more_documents_into_an_adapted_index_uses_the_adapted_encoder(
    adapted: tuple[Path, Path, dict],
) -> None:
    from semhash.ingest import IndexOptions, index_paths

    db, corpus, _ = adapted
    extra = corpus / "bikes" / "gears.txt"
    extra.write_text("Shift to a lower gear before you climb a steep hill on your bike.")
    result = CliRunner().invoke(app, ["index", str(corpus), "--db", str(db), "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["added"] == 1
    # A document longer than a batch: the exported encoder's indexing path hands it to the torch adapted
    # encoder's bounded-memory path, read from the index.
    huge = corpus / "bikes" / "touring.txt"
    huge.write_text("Pack the panniers low and keep the heavy gear close to the frame. " * 60)
    report = index_paths(db, [corpus], IndexOptions(device="cpu", batch_chars=2000))
    assert report.added == 1
    with Store.open(db) as store:
        name = store.embedding_model
        assert name is not None and is_adapted(name)
        ids = [store.find(str(path.resolve()))[0].id for path in (extra, huge)]
        _, vectors = store.embeddings(ids)
        encoder = load_adapted_encoder(name, store.adapted_encoder(name), "cpu")
    np.testing.assert_allclose(vectors, encoder.encode([extra.read_text(), huge.read_text()]), atol=1e-4)


@pytest.mark.slow
def test_a_damaged_stored_encoder_is_one_line_error(adapted: tuple[Path, Path, dict], tmp_path: Path) -> None:
    db, _, _ = adapted
    copy = tmp_path / "damaged.db"
    source = sqlite3.connect(db)
    target = sqlite3.connect(copy)
    source.backup(target)
    source.close()
    target.execute("UPDATE encoders SET weights = ?", [b"\x00" * 64])
    target.commit()
    target.close()
    result = CliRunner().invoke(app, ["query", "bike wheel", "--db", str(copy)])
    assert result.exit_code == 1
    assert "adapted encoder stored in the index is unreadable" in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_runtime_build_and_a_plain_retrain_keep_the_adapted_export(adapted: tuple[Path, Path, dict]) -> None:
    """Last of the module's adapted-index tests: it replaces the index's hashing model."""
    from semhash.runtime import runtime_folder
    from semhash.runtime.manifest import read_manifest

    db, _, _ = adapted
    runner = CliRunner()
    assert runner.invoke(app, ["runtime", "clear", "--db", str(db)]).exit_code == 0
    result = runner.invoke(app, ["runtime", "build", "--db", str(db)])
    assert result.exit_code == 0, result.output
    with Store.open(db) as store:
        name = store.embedding_model
    assert read_manifest(runtime_folder(db)).embedding_model == name
    result = runner.invoke(app, ["train", "--db", str(db), "--epochs", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["warnings"] == []
    info = runner.invoke(app, ["runtime", "info", "--db", str(db), "--json"])
    assert json.loads(info.output)["fresh"] is True  # the new hashing model beside the kept adapted encoder
    assert read_manifest(runtime_folder(db)).windows == 1


@pytest.mark.slow
def test_dedup_of_an_adapted_index_warns_that_it_finds_fewer_duplicates(
    adapted: tuple[Path, Path, dict], tmp_path: Path
) -> None:
    db, corpus, _ = adapted
    result = CliRunner().invoke(app, ["dedup", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    assert "warning: this index embeds with an adapted encoder" in result.stderr
    assert "adapted" not in result.stdout  # the JSON lines stay clean
    frozen = tmp_path / "frozen.db"
    assert CliRunner().invoke(app, ["index", str(corpus), "--db", str(frozen), "--device", "cpu"]).exit_code == 0
    plain = CliRunner().invoke(app, ["dedup", "--db", str(frozen), "--json"])
    assert plain.exit_code == 0 and "warning" not in plain.stderr
    from semhash.dedup import dedup_index  # the fact behind the warning, for API users too

    assert dedup_index(db).stats.adapted_encoder and not dedup_index(frozen).stats.adapted_encoder


def test_adapt_options_need_adapt(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", "--adapt-docs", "10", "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 2
    assert "add --adapt" in result.output


def test_cli_adapt_passes_its_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from semhash.types import IndexReport

    seen: dict[str, Any] = {}

    def fake(db: Path, **options: object) -> IndexReport:
        seen.update(options)
        return IndexReport(trained=True, adapt_stats={"adapt_docs": 10.0, "adapt_steps": 2.0})

    monkeypatch.setattr("semhash.ingest.retrain_index", fake)
    result = CliRunner().invoke(
        app, ["train", "--adapt", "--adapt-docs", "10", "--adapt-epochs", "1", "--seed", "3", "--db", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert isinstance(seen["adapt"], AdaptConfig)
    assert (seen["adapt"].max_docs, seen["adapt"].epochs, seen["adapt"].seed) == (10, 1, 3)
    assert "adapted the encoder's top 2 layers on 10 documents (2 steps)" in result.output
    result = CliRunner().invoke(app, ["train", "--db", str(tmp_path)])
    assert seen["adapt"] is None  # the frozen recipe stays the default


def test_a_long_lived_searcher_drops_the_frozen_encoder_once_the_index_is_adapted(fake_encoder: FakeEncoder) -> None:
    """Search keeps the loaded encoder across retrainings; after `--adapt` it must load the adapted one."""
    from semhash.codec import Codec
    from semhash.store import StoredModel

    model = StoredModel(id=1, created_at="", bits=32, input_dim=32, config={}, stats={}, trained_on=0, weights=None)
    before = Codec(model, "sentence-transformers/all-MiniLM-L6-v2", encoder=fake_encoder)
    after = Codec(model, adapted_name("sentence-transformers/all-MiniLM-L6-v2", _blob()))
    after.keep_encoder(before)
    assert after._encoder is None
    retrained = Codec(model, "sentence-transformers/all-MiniLM-L6-v2")
    retrained.keep_encoder(before)
    assert retrained._encoder is fake_encoder


def _fake_adapted_index(tmp_path: Path, fake_encoder: FakeEncoder) -> tuple[Path, str, bytes]:
    """An index of the fake encoder switched to a (fake) adapted encoder through the store alone."""
    from semhash.ingest import IndexOptions, index_paths

    corpus = _write(tmp_path)
    db = tmp_path / "fake.db"
    index_paths(db, [corpus], IndexOptions(device="cpu", epochs=1), encoder=fake_encoder)
    blob = _blob()
    name = adapted_name("fake-bow", blob)
    with Store.open(db, write=True) as store:
        ids, embeddings = store.embeddings()
        generation = store.generation
        store.save_adapted_encoder(name, blob, {"layers": 1}, {}, ids.tolist(), embeddings[:, ::-1])
        assert store.generation > generation
    return db, name, blob


def test_the_store_switches_to_the_adapted_encoder_in_one_step(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    db, name, blob = _fake_adapted_index(tmp_path, fake_encoder)
    with Store.open(db) as store:
        assert store.embedding_model == name
        assert store.adapted_encoder(name) == blob
        assert store.adapted_encoder("fake-bow") is None
        assert len(store.ids_without_code()) == store.count()  # old codes came from the old embeddings
        with pytest.raises(ValueError, match="documents"):
            store.save_adapted_encoder(name, blob, {}, {}, [1], np.zeros((1, 32)))
