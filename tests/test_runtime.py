"""The exported torch-free runtime (ONNX encoder + numpy hasher): parity with the torch path, and safe loading."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from semhash.embed import Encoder, SentenceTransformerEncoder
from semhash.errors import SemhashError
from semhash.model import HashConfig, HashingAutoencoder, encode_codes, model_from_bytes, model_to_bytes
from semhash.runtime import NumpyHasher, OnnxEncoder, RuntimeUnavailableError, load_runtime, runtime_folder
from semhash.runtime.export import export_encoder, export_hasher, export_runtime
from semhash.runtime.manifest import ENCODER_FILE, HASHER_FILE, MANIFEST, TOKENIZER_FILE, read_manifest
from semhash.runtime.numpy_hasher import gelu
from semhash.runtime.onnx_encoder import window_spans
from semhash.train import TrainConfig, train_hasher

SAMPLE = Path(__file__).parent.parent / "data" / "sample"
FAST = TrainConfig(epochs=15, hidden=128, min_steps=0)


@dataclasses.dataclass
class Exported:
    folder: Path
    texts: list[str]
    embeddings: np.ndarray  # the torch path's
    torch_encoder: SentenceTransformerEncoder
    hasher: HashingAutoencoder


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """The real model on the sample corpus: torch embeddings, a hasher trained on them, one export."""
    texts = [p.read_text(encoding="utf-8") for p in sorted(SAMPLE.rglob("*")) if p.is_file()]
    encoder = SentenceTransformerEncoder(device="cpu")
    embeddings = encoder.encode(texts)
    trained, _ = train_hasher(embeddings, 32, FAST, texts=texts)
    hasher = model_from_bytes(model_to_bytes(trained))  # as the store gives it back
    folder = tmp_path_factory.mktemp("rt") / "sample.db.runtime"
    export_runtime(None, hasher, folder, hasher_id=7, hasher_checksum="abc")
    return Exported(folder, texts, embeddings, encoder, hasher)


pytestmark = pytest.mark.slow


def test_embeddings_and_codes_match_the_torch_path(exported: Exported) -> None:
    runtime = load_runtime(exported.folder)
    assert isinstance(runtime.encoder, Encoder) and runtime.encoder.dim == exported.torch_encoder.dim
    embeddings = runtime.encoder.encode(exported.texts)
    cosine = (embeddings * exported.embeddings).sum(axis=1)
    assert cosine.min() >= 0.9999
    assert runtime.hasher is not None
    torch_codes = encode_codes(exported.hasher, exported.embeddings, texts=exported.texts)
    # Same inputs: the numpy MLP gives the torch model's codes.
    assert np.array_equal(runtime.hasher.encode(exported.embeddings, exported.texts), torch_codes)
    # The whole runtime path against the whole torch path.
    same = (runtime.hasher.encode(embeddings, exported.texts) == torch_codes).all(axis=1)
    assert same.mean() >= 0.995
    manifest = read_manifest(exported.folder)
    assert manifest.hasher == {"id": 7, "checksum": "abc", "bits": 32}
    assert manifest.max_seq_length == exported.torch_encoder.max_tokens + 2


def test_long_texts_are_windowed_and_pooled_as_the_torch_path(exported: Exported) -> None:
    long_texts = [" ".join(exported.texts[:6]), exported.texts[0] * 5, "", "word"]
    runtime_encoder = OnnxEncoder(exported.folder, max_windows=0)
    for text in long_texts:
        assert runtime_encoder.windows(text) == exported.torch_encoder.windows(text)
    embeddings = runtime_encoder.encode(long_texts)
    assert runtime_encoder.stats.windows == sum(len(exported.torch_encoder.windows(t)) for t in long_texts) > 4
    reference = exported.torch_encoder.encode(long_texts)
    assert (embeddings * reference).sum(axis=1).min() >= 0.9999
    capped = OnnxEncoder(exported.folder, max_windows=2)
    capped.encode(long_texts)
    assert capped.stats.windows == sum(min(2, len(exported.torch_encoder.windows(t))) for t in long_texts)
    assert capped.stats.capped_documents >= 1


def test_window_spans_cut_at_token_offsets() -> None:
    offsets = [(0, 3), (4, 7), (8, 11), (12, 15), (16, 19)]
    assert window_spans(offsets, 19, 5) == [(0, 19, 5)]
    assert window_spans(offsets, 21, 2) == [(0, 8, 2), (8, 16, 2), (16, 21, 1)]
    assert window_spans([], 0, 4) == [(0, 0, 1)]


def test_query_path_imports_no_torch_nor_scikit_learn(exported: Exported) -> None:
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "from semhash.runtime import load_runtime\n"
        f"runtime = load_runtime(Path({str(exported.folder)!r}))\n"
        "texts = ['how do I fix a flat tyre', 'planting tomatoes in spring']\n"
        "codes = runtime.hasher.encode(runtime.encoder.encode(texts), texts)\n"
        "assert codes.shape == (2, 4), codes.shape\n"
        "heavy = ('torch', 'sentence_transformers', 'transformers', 'sklearn')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_exact_gelu_matches_torch() -> None:
    import torch

    x = np.linspace(-6, 6, 1001, dtype=np.float32)
    np.testing.assert_allclose(gelu(x), torch.nn.GELU()(torch.from_numpy(x)).numpy(), rtol=1e-6, atol=1e-6)


def _clone(folder: Path, dest: Path) -> Path:
    """A copy of a runtime folder whose files are hard links (damage must replace files, never edit them)."""
    dest.mkdir()
    for path in folder.iterdir():
        os.link(path, dest / path.name)
    return dest


def _replace(path: Path, data: bytes) -> None:
    path.unlink()
    path.write_bytes(data)


def _damage_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    _replace(path, bytes(data))


def _edit_manifest(folder: Path, **changes: object) -> None:
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest.update(changes)
    _replace(folder / MANIFEST, json.dumps(manifest).encode())


DAMAGES = {
    "no manifest": lambda f: (f / MANIFEST).unlink(),
    "manifest not json": lambda f: _replace(f / MANIFEST, b"{not json"),
    "other format": lambda f: _edit_manifest(f, format=99),
    "missing encoder": lambda f: (f / ENCODER_FILE).unlink(),
    "truncated encoder": lambda f: _replace(f / ENCODER_FILE, (f / ENCODER_FILE).read_bytes()[:1000]),
    "flipped byte in the encoder": lambda f: _damage_bytes(f / ENCODER_FILE),
    "flipped byte in the hasher": lambda f: _damage_bytes(f / HASHER_FILE),
    "tokenizer missing": lambda f: (f / TOKENIZER_FILE).unlink(),
    "path in the manifest": lambda f: _edit_manifest(f, files={"../../etc/passwd": {"sha256": "0" * 64, "bytes": 1}}),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_folder_is_a_clear_error(exported: Exported, tmp_path: Path, damage: str) -> None:
    folder = _clone(exported.folder, tmp_path / "copy.runtime")
    DAMAGES[damage](folder)
    with pytest.raises(RuntimeUnavailableError) as info:
        load_runtime(folder)
    assert isinstance(info.value, SemhashError)
    message = str(info.value)
    assert str(folder) in message and "\n" not in message


def test_no_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeUnavailableError, match="no exported runtime at"):
        load_runtime(tmp_path / "absent.runtime")


def test_export_encoder_keeps_the_hasher(exported: Exported, tmp_path: Path) -> None:
    folder = _clone(exported.folder, tmp_path / "copy.runtime")
    before = read_manifest(folder)
    export_encoder(None, folder)
    after = read_manifest(folder)
    assert after.hasher == before.hasher and after.files[HASHER_FILE] == before.files[HASHER_FILE]
    assert load_runtime(folder).hasher is not None


def test_a_hasher_file_with_pickled_objects_is_refused(exported: Exported, tmp_path: Path) -> None:
    folder = _clone(exported.folder, tmp_path / "copy.runtime")
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.array([{"format": 1}], dtype=object))
    _replace(folder / HASHER_FILE, buffer.getvalue())
    manifest = json.loads((folder / MANIFEST).read_text())
    from semhash.runtime.manifest import file_entry

    manifest["files"][HASHER_FILE] = file_entry(folder / HASHER_FILE)  # a consistent manifest: only the content is bad
    _replace(folder / MANIFEST, json.dumps(manifest).encode())
    with pytest.raises(RuntimeUnavailableError, match=r"unusable hasher\.npz"):
        NumpyHasher.load(folder)


def test_export_hasher_replaces_only_the_hasher(exported: Exported, tmp_path: Path) -> None:
    folder = _clone(exported.folder, tmp_path / "copy.runtime")
    before = read_manifest(folder)
    retrained, _ = train_hasher(exported.embeddings, 16, dataclasses.replace(FAST, seed=1), texts=None)
    export_hasher(retrained, folder, hasher_id=8, hasher_checksum="def")
    after = read_manifest(folder)
    assert after.hasher == {"id": 8, "checksum": "def", "bits": 16}
    for name in (ENCODER_FILE, TOKENIZER_FILE):
        assert after.files[name] == before.files[name]
    assert after.files[HASHER_FILE] != before.files[HASHER_FILE]
    runtime = load_runtime(folder)
    assert runtime.hasher is not None and runtime.hasher.lexical is None
    assert np.array_equal(
        runtime.hasher.encode(exported.embeddings[:20]), encode_codes(retrained, exported.embeddings[:20])
    )
    assert [p.name for p in tmp_path.iterdir()] == ["copy.runtime"]  # no temporary folder left behind


def test_a_failed_export_leaves_the_old_folder(
    exported: Exported, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _clone(exported.folder, tmp_path / "copy.runtime")
    before = (folder / MANIFEST).read_bytes()

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", broken)
    with pytest.raises(OSError, match="disk full"):
        export_hasher(exported.hasher, folder)
    assert (folder / MANIFEST).read_bytes() == before
    load_runtime(folder)
    assert [p.name for p in tmp_path.iterdir()] == ["copy.runtime"]


def test_export_hasher_needs_a_matching_runtime(exported: Exported, tmp_path: Path) -> None:
    with pytest.raises(RuntimeUnavailableError, match="export it first"):
        export_hasher(exported.hasher, tmp_path / "none.runtime")
    other = HashingAutoencoder(HashConfig(input_dim=32))
    with pytest.raises(RuntimeUnavailableError, match="384 dims"):
        export_hasher(other, exported.folder)


def test_export_hasher_refuses_to_bless_a_damaged_encoder(exported: Exported, tmp_path: Path) -> None:
    folder = _clone(exported.folder, tmp_path / "copy.runtime")
    _damage_bytes(folder / TOKENIZER_FILE)
    with pytest.raises(RuntimeUnavailableError, match=r"damaged tokenizer\.json"):
        export_hasher(exported.hasher, folder)


def test_runtime_folder_sits_beside_the_database(tmp_path: Path) -> None:
    assert runtime_folder(tmp_path / "x.db") == tmp_path / "x.db.runtime"
