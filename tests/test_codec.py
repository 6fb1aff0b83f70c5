"""The codec: one text -> code path, the typed stored model, the lexical transform, and the fast query runtime."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support import FAST_EPOCHS, FakeEncoder, topic_texts, write_corpus
from typer.testing import CliRunner

from semhash.cli import app
from semhash.codec import Codec, TorchHasher
from semhash.codes import ints_to_packed
from semhash.errors import RuntimeUnavailableError
from semhash.ingest import IndexOptions, index_paths
from semhash.lexical import MAX_LEXICAL_CHARS, LexicalProjection, tokenize
from semhash.model import HashingAutoencoder
from semhash.runtime import NumpyHasher, runtime_folder
from semhash.runtime.folder import check_fresh
from semhash.store import Store, StoredModel

SAMPLE = Path(__file__).parent.parent / "data" / "sample"
# pandas: sqlite-utils would import it when installed (see semhash.store), 0.2 s of a cold query.
HEAVY = ("torch", "sentence_transformers", "transformers", "sklearn", "scipy", "pandas")


# -- the stored model ------------------------------------------------------------------------------
def test_active_model_is_a_typed_frozen_record(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db", create=True) as store:
        model_id = store.save_model(b"weights", 16, 4, {"seed": 3}, {"loss": 0.5}, trained_on=7)
        active = store.active_model()
    assert isinstance(active, StoredModel)
    assert (active.id, active.bits, active.input_dim, active.trained_on) == (model_id, 16, 4, 7)
    assert active.config == {"seed": 3} and active.stats == {"loss": 0.5} and active.weights == b"weights"
    assert active.checksum == hashlib.sha256(b"weights").hexdigest()
    with pytest.raises(dataclasses.FrozenInstanceError):
        active.bits = 32  # type: ignore[misc]


# -- one lexical transform -------------------------------------------------------------------------
def test_stop_words_are_scikit_learns_list() -> None:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    from semhash.lexical import ENGLISH_STOP_WORDS as copied

    assert copied == frozenset(ENGLISH_STOP_WORDS)


def test_transform_equals_the_sparse_tfidf_product() -> None:
    texts, _ = topic_texts()
    projection = LexicalProjection.fit(texts, dim=6)
    assert projection is not None
    queries = [*texts[:10], "rocket rocket moon and the flour", "nothing known here"]
    sparse_rows = np.asarray(
        projection._tfidf([tokenize(t, projection.stop_words) for t in queries]) @ projection.components
    )
    norms = np.linalg.norm(sparse_rows, axis=1, keepdims=True)
    expected = np.divide(sparse_rows, norms, out=np.zeros_like(sparse_rows), where=norms > 0)
    np.testing.assert_allclose(projection.transform(queries), expected, atol=1e-6)


def _numpy_hasher(model: HashingAutoencoder) -> NumpyHasher:
    from semhash.runtime.export import _hasher_arrays

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **_hasher_arrays(model))
    return NumpyHasher.from_bytes(buffer.getvalue())


def test_the_numpy_hasher_reads_the_same_text_prefix_as_the_torch_model() -> None:
    from semhash.train import TrainConfig, train_hasher

    texts, _ = topic_texts()
    embeddings = FakeEncoder().encode(texts)
    model, _ = train_hasher(embeddings, 16, TrainConfig(epochs=2, hidden=32, min_steps=0), texts=texts)
    hasher = _numpy_hasher(model)
    assert hasher.lexical is not None and hasher.lexical is not model.lexical
    # Words past the lexical cap must not count, on either path (the old numpy copy read the whole text).
    long_text = "x " * (MAX_LEXICAL_CHARS // 2) + " ".join(["rocket moon galaxy"] * 50)
    features = hasher.features(embeddings[:1], [long_text])
    np.testing.assert_allclose(features, model.features(embeddings[:1], [long_text]), atol=1e-6)
    np.testing.assert_array_equal(hasher.encode(embeddings, texts), TorchHasher(model).encode(embeddings, texts))


def test_the_numpy_hasher_gives_the_torch_models_codes_and_reconstruction_errors() -> None:
    from semhash.runtime.export import _hasher_arrays
    from semhash.train import TrainConfig, train_hasher

    texts, _ = topic_texts()
    embeddings = FakeEncoder().encode(texts)
    model, _ = train_hasher(embeddings, 16, TrainConfig(epochs=2, hidden=32, min_steps=0), texts=texts)
    buffer = io.BytesIO()
    np.savez(buffer, **_hasher_arrays(model))
    hasher = NumpyHasher.from_bytes(buffer.getvalue(), decoder=True)
    codes, errors = hasher.encode_with_errors(embeddings, texts)
    torch_codes, torch_errors = TorchHasher(model).encode_with_errors(embeddings, texts)
    np.testing.assert_array_equal(codes, torch_codes)
    np.testing.assert_allclose(errors, torch_errors, atol=1e-5)
    assert errors.std() > 0  # not a constant: the documents are reconstructed differently
    # A query loads no decoder; a file from before the decoder was exported still loads, without one.
    assert NumpyHasher.from_bytes(buffer.getvalue()).decoder is None
    older = {k: v for k, v in _hasher_arrays(model).items() if not k.startswith("decoder")}
    meta = json.loads(bytes(older["meta"]).decode("utf-8"))
    del meta["decoder_layers"]
    older["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **older)
    without = NumpyHasher.from_bytes(buffer.getvalue(), decoder=True)
    assert without.decoder is None
    np.testing.assert_array_equal(without.encode(embeddings, texts), torch_codes)
    with pytest.raises(ValueError, match="no decoder"):
        without.encode_with_errors(embeddings, texts)


def test_the_query_side_modules_import_no_heavy_library() -> None:
    probe = (
        "import sys\nimport semhash.lexical, semhash.codec, semhash.search, semhash.runtime\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.fixture
def fake_index(tmp_path: Path) -> tuple[Path, Path, FakeEncoder]:
    root = tmp_path / "corpus"
    write_corpus(root)
    encoder = FakeEncoder()
    db = tmp_path / "fake.db"
    report = index_paths(db, [root], IndexOptions(epochs=FAST_EPOCHS, device="cpu"), encoder=encoder)
    assert report.trained and not report.warnings  # a fake encoder is not exported, and that is no warning
    return root, db, encoder


def test_the_codec_gives_the_stored_codes(fake_index: tuple[Path, Path, FakeEncoder]) -> None:
    _, db, encoder = fake_index
    with Store.open(db) as store:
        codec = Codec.from_store(store, "auto", device="cpu", encoder=encoder)
        ids, stored = store.codes()
        docs = store.documents(ids.tolist())
        texts = [docs[i].text for i in ids.tolist()]
        embeddings, packed = codec.encode(texts)
    assert codec.runtime == "torch" and codec.note is not None and "no exported runtime" in codec.note
    assert not runtime_folder(db).exists()
    np.testing.assert_array_equal(packed, ints_to_packed(stored, codec.bits))
    assert embeddings.shape == (len(texts), encoder.dim)


def test_runtime_onnx_without_a_runtime_is_one_clear_error(
    fake_index: tuple[Path, Path, FakeEncoder], patch_encoder: FakeEncoder
) -> None:
    _, db, _ = fake_index
    runner = CliRunner()
    result = runner.invoke(app, ["query", "rocket moon", "--db", str(db), "--runtime", "onnx"])
    assert result.exit_code == 1 and "no exported runtime" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["query", "rocket moon", "--db", str(db), "--runtime", "jax"])
    assert result.exit_code == 2 and "--runtime" in result.output
    result = runner.invoke(app, ["query", "rocket moon", "--db", str(db), "--json"], env={"SEMHASH_RUNTIME": "torch"})
    assert result.exit_code == 0 and json.loads(result.output.splitlines()[0])["rank"] == 1
    result = runner.invoke(app, ["runtime", "info", "--db", str(db), "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["fresh"] is False


def test_a_stale_runtime_is_refused_by_its_freshness_check(tmp_path: Path) -> None:
    from semhash.runtime.manifest import Manifest

    model = StoredModel(3, "now", 32, 384, {}, {}, 10, b"w")
    base = Manifest(tmp_path, "m", 384, 256, {"id": 3, "checksum": model.checksum, "bits": 32}, {}, {})
    check_fresh(base, "m", model)
    for manifest, embedding_model in (
        (dataclasses.replace(base, hasher={"id": 2, "checksum": model.checksum, "bits": 32}), "m"),
        (dataclasses.replace(base, hasher={"id": 3, "checksum": "0" * 64, "bits": 32}), "m"),
        (base, "another-model"),
    ):
        with pytest.raises(RuntimeUnavailableError, match="semhash runtime build"):
            check_fresh(manifest, embedding_model, model)


# -- the real model: the fast path end to end --------------------------------------------------------
QUERY = "how do I fix a flat tyre on my bike"
CHILD = """
import json, sys
from semhash.cli import app
try:
    app(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
print(json.dumps([m for m in {heavy!r} if m in sys.modules]))
"""


def _cli(*args: str) -> tuple[list[dict], list[str]]:
    """Run the CLI in a fresh interpreter: its JSON lines and the heavy modules it imported."""
    result = subprocess.run(
        [sys.executable, "-c", CHILD.format(heavy=HEAVY), *args], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    return [json.loads(line) for line in lines[:-1]], json.loads(lines[-1])


@pytest.fixture(scope="module")
def real_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample corpus indexed with the real model (which writes the runtime beside it)."""
    db = tmp_path_factory.mktemp("real") / "sample.db"
    with pytest.MonkeyPatch.context() as mp:  # a first index embeds with the export (issue 20, opt-in)
        mp.setenv("SEMHASH_INDEX_EXPORT", "1")
        result = CliRunner().invoke(app, ["index", str(SAMPLE), "--db", str(db), "--device", "cpu", "--epochs", "20"])
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output
    return db


@pytest.mark.slow
def test_index_writes_a_fresh_runtime_and_query_runs_without_torch(real_index: Path) -> None:
    folder = runtime_folder(real_index)
    assert (folder / "manifest.json").is_file()
    from semhash.runtime.manifest import read_manifest

    # The fp32 export is cached once per model (another test of the session may add the model's int8 one).
    cached = [f for f in (Path(os.environ["SEMHASH_CACHE"]) / "onnx").iterdir() if read_manifest(f).precision == "fp32"]
    assert len(cached) == 1
    assert os.stat(cached[0] / "encoder.onnx").st_ino == os.stat(folder / "encoder.onnx").st_ino  # hard link
    fast, heavy = _cli("query", QUERY, "--db", str(real_index), "--json", "-k", "5")
    assert heavy == []  # no torch, sentence-transformers, transformers, scikit-learn (nor scipy)
    slow, heavy_torch = _cli("query", QUERY, "--db", str(real_index), "--json", "-k", "5", "--runtime", "torch")
    assert "torch" in heavy_torch
    assert fast[0]["id"] == slow[0]["id"] and "cycling" in fast[0]["path"]
    assert len({h["id"] for h in fast} & {h["id"] for h in slow}) >= 4
    similar, heavy = _cli("similar", fast[0]["path"], "--db", str(real_index), "--json", "-k", "3")
    assert heavy == [] and len(similar) == 3


@pytest.mark.slow
def test_adding_files_codes_them_with_the_sealed_hasher_without_torch(tmp_path: Path) -> None:
    """An incremental index (no retraining) codes new documents with the runtime's numpy model: no torch."""
    from semhash.model import model_from_bytes

    corpus = tmp_path / "c"
    corpus.mkdir()
    for path in sorted(SAMPLE.rglob("*.txt"))[:40]:
        (corpus / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    db = tmp_path / "i.db"
    result = CliRunner().invoke(app, ["index", str(corpus), "--db", str(db), "--device", "cpu", "--epochs", "5"])
    assert result.exit_code == 0, result.output
    (corpus / "new.txt").write_text("Comets grow a tail of dust and gas as they near the sun.", encoding="utf-8")
    lines, heavy = _cli("index", str(corpus), "--db", str(db), "--json")
    assert lines[0]["added"] == 1 and not lines[0]["trained"]
    assert "torch" not in heavy
    with Store.open(db) as store:
        (new_id,) = [i for i, p in store.db.execute("SELECT id, path FROM documents") if p.endswith("new.txt")]
        code, error = store.db.execute("SELECT code, recon_error FROM documents WHERE id = ?", [new_id]).fetchone()
        ids, embeddings = store.embeddings([new_id])
        active = store.active_model()
        assert active is not None and active.weights is not None
        model = model_from_bytes(active.weights)
        texts = store.texts(ids.tolist()) if model.lexical is not None else None
    torch_codes, torch_errors = TorchHasher(model).encode_with_errors(embeddings, texts)
    assert ints_to_packed([code], model.config.bits).tolist() == torch_codes.tolist()
    assert abs(error - float(torch_errors[0])) < 1e-5


@pytest.mark.slow
def test_codec_parity_on_the_sample_corpus(real_index: Path) -> None:
    with Store.open(real_index) as store:
        fast = Codec.from_store(store, "onnx")
        ids, stored_embeddings = store.embeddings()
        texts = store.texts(ids.tolist())
        code_ids, stored_codes = store.codes()
        embeddings, packed = fast.encode(texts)
    assert fast.runtime == "onnx" and type(fast.encoder).__name__ == "OnnxEncoder"
    assert (embeddings * stored_embeddings).sum(axis=1).min() >= 0.9999
    order = {int(i): k for k, i in enumerate(ids.tolist())}
    torch_codes = ints_to_packed(stored_codes, fast.bits)[[order[int(i)] for i in code_ids.tolist()]]
    same = (packed[[order[int(i)] for i in code_ids.tolist()]] == torch_codes).all(axis=1)
    assert same.mean() >= 0.995


@pytest.mark.slow
def test_a_first_index_embeds_with_the_export_it_then_seals_and_torch_agrees(real_index: Path) -> None:
    from semhash.embed import SentenceTransformerEncoder
    from semhash.model import encode_codes, model_from_bytes
    from semhash.runtime.cache import encoder_cache_folder
    from semhash.runtime.manifest import read_manifest

    with Store.open(real_index) as store:
        ids, stored = store.embeddings()  # embedded by the first index, on the cached export
        texts = store.texts(ids.tolist())
        code_ids, stored_codes = store.codes()
        model = store.active_model()
        name = store.embedding_model
    assert model is not None and name is not None
    # The folder the index sealed holds the very encoder files of the cache the first index embedded with.
    cached, sealed = read_manifest(encoder_cache_folder(name)), read_manifest(runtime_folder(real_index))
    for file in ("encoder.onnx", "tokenizer.json"):
        assert sealed.files[file]["sha256"] == cached.files[file]["sha256"]
    # Within the parity tolerance of the torch path: embeddings and codes (issue 20 must not change results).
    torch_embeddings = SentenceTransformerEncoder(device="cpu").encode(texts)
    assert (torch_embeddings * stored).sum(axis=1).min() >= 0.9999
    order = {int(i): k for k, i in enumerate(ids.tolist())}
    rows = [order[int(i)] for i in code_ids.tolist()]
    torch_codes = encode_codes(model_from_bytes(model.weights), torch_embeddings[rows], "cpu",
                               texts=[texts[r] for r in rows])  # fmt: skip
    same = (ints_to_packed(stored_codes, model.bits) == torch_codes).all(axis=1)
    assert same.mean() >= 0.995


@pytest.mark.slow
def test_a_first_index_with_the_export_cached_never_loads_the_torch_encoder(
    real_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_torch(*args: object, **kwargs: object) -> None:
        raise AssertionError("the torch encoder was loaded although the cached export can embed")

    monkeypatch.setenv("SEMHASH_INDEX_EXPORT", "1")
    monkeypatch.setattr("semhash.embed.load_encoder", no_torch)
    db = tmp_path / "second.db"
    report = index_paths(db, [SAMPLE], IndexOptions(device="cpu", epochs=FAST_EPOCHS))
    assert report.warnings == [] and report.encoded == report.added > 0
    with Store.open(db) as store:
        assert Codec.from_store(store).runtime == "onnx"  # written and sealed after training
        _, embeddings = store.embeddings()
    with Store.open(real_index) as store:
        _, first = store.embeddings()
    np.testing.assert_allclose(embeddings, first, atol=1e-6)  # the same export, the same embeddings


@pytest.mark.slow
def test_train_refreshes_the_hasher_and_stale_or_damaged_runtimes_fall_back(
    real_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    db = tmp_path / "copy.db"
    shutil.copy(real_index, db)
    runner = CliRunner()
    # A copied database has no runtime: auto uses torch, `runtime build` makes one from the cache.
    assert json.loads(runner.invoke(app, ["runtime", "info", "--db", str(db), "--json"]).output)["fresh"] is False
    result = runner.invoke(app, ["runtime", "build", "--db", str(db)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["train", "--db", str(db), "--epochs", "3", "--seed", "1"])
    assert result.exit_code == 0 and "warning" not in result.output, result.output
    with Store.open(db) as store:
        model = store.active_model()
        assert model is not None and Codec.from_store(store).runtime == "onnx"  # retrained, and still fresh
    # Indexing embeds with the exported encoder when the runtime is there (the torch one is never loaded).
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "note.txt").write_text("A new note about patching a bicycle inner tube.", encoding="utf-8")

    def no_torch(*args: object, **kwargs: object) -> None:
        raise AssertionError("the torch encoder was loaded although the runtime can embed")

    monkeypatch.setattr("semhash.embed.load_encoder", no_torch)
    report = index_paths(db, [extra], IndexOptions(device="cpu"))
    assert report.added == 1 and report.encoded == 1
    monkeypatch.undo()
    manifest_path = runtime_folder(db) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["hasher"]["id"] == model.id and manifest["hasher"]["checksum"] == model.checksum
    # Stale: the runtime's hasher is another model's. auto falls back, onnx refuses.
    manifest["hasher"]["id"] = model.id + 100
    manifest_path.write_text(json.dumps(manifest))
    with Store.open(db) as store:
        stale = Codec.from_store(store, device="cpu")
        assert stale.runtime == "torch" and stale.note is not None and "another hashing model" in stale.note
        torch_embedding, torch_code = stale.encode([QUERY])
    result = runner.invoke(app, ["query", QUERY, "--db", str(db), "--runtime", "onnx"])
    assert result.exit_code == 1 and "another hashing model" in result.output
    # Damaged: a truncated encoder passes the manifest check, fails its size check at load: torch takes over.
    assert runner.invoke(app, ["runtime", "build", "--db", str(db)]).exit_code == 0
    encoder_file = runtime_folder(db) / "encoder.onnx"
    data = encoder_file.read_bytes()
    encoder_file.unlink()  # a hard link into the cache: replace it, never write through it
    encoder_file.write_bytes(data[: len(data) // 2])
    with Store.open(db) as store:
        damaged = Codec.from_store(store, device="cpu")
        # The manifest is fine, but every file is checked before the runtime is chosen (issue 18): torch.
        assert damaged.runtime == "torch" and damaged.note is not None and "encoder.onnx" in damaged.note
        embedding, code = damaged.encode([QUERY])
    np.testing.assert_allclose(embedding, torch_embedding, atol=1e-6)
    np.testing.assert_array_equal(code, torch_code)
    result = runner.invoke(app, ["query", QUERY, "--db", str(db), "--runtime", "onnx"])
    assert result.exit_code == 1 and "encoder.onnx" in result.output
    assert runner.invoke(app, ["runtime", "clear", "--db", str(db)]).exit_code == 0
    assert not runtime_folder(db).exists()
