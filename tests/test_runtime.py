"""The exported torch-free runtime (ONNX encoder + numpy hasher): parity with the torch path, and safe loading."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pytest

from semhash.embed import Encoder, SentenceTransformerEncoder
from semhash.errors import RuntimeUnavailableError, SemhashError
from semhash.model import HashConfig, HashingAutoencoder, encode_codes, model_from_bytes, model_to_bytes
from semhash.runtime import NumpyHasher, OnnxEncoder, load_runtime, runtime_folder
from semhash.runtime.export import export_encoder, export_hasher, export_runtime, refresh_optimized
from semhash.runtime.manifest import (
    ENCODER_FILE,
    HASHER_FILE,
    MANIFEST,
    OPTIMIZED_FILE,
    OPTIMIZED_WEIGHTS,
    TOKENIZER_FILE,
    read_manifest,
)
from semhash.runtime.numpy_hasher import gelu
from semhash.runtime.onnx_encoder import external_locations_ok, window_spans
from semhash.runtime.stamp import STAMP_FILE
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
    saved = exported.torch_encoder.max_windows
    exported.torch_encoder.max_windows = 2
    try:  # the same windows kept (evenly spread, first and last) on both paths
        for text in long_texts:
            assert capped.windows(text) == exported.torch_encoder.windows(text)
    finally:
        exported.torch_encoder.max_windows = saved


def test_encode_long_on_the_export_cuts_the_torch_paths_windows_in_chunks_and_agrees(exported: Exported) -> None:
    """Issue 20: a document longer than a batch is embedded on the export too, in bounded memory."""
    text = ("\n\n".join(exported.texts) + " café naïve " + "x" * 300 + " end.").strip()  # ~60+ windows
    encoder = OnnxEncoder(exported.folder, max_windows=0)
    torch_encoder = exported.torch_encoder
    seen: list[int] = []
    vector = encoder.encode_long(text, progress=seen.append, chunk_chars=3000, window_chunk=8)
    every = encoder.windows(text)  # the whole text tokenised at once
    assert encoder.stats.windows == len(every) == len(torch_encoder.windows(text)) > 16
    assert seen == sorted(seen) and len(seen) == -(-len(every) // 8) and seen[-1] == len(text)
    assert float(vector @ torch_encoder.encode([text])[0]) >= 0.9999
    assert float(vector @ encoder.encode([text])[0]) >= 0.99999
    # Capped: the same windows kept as the torch path (evenly spread, first and last).
    capped = OnnxEncoder(exported.folder, max_windows=5)
    saved = torch_encoder.max_windows
    torch_encoder.max_windows = 5
    try:
        reference = torch_encoder.encode_long(text)
    finally:
        torch_encoder.max_windows = saved
    assert float(capped.encode_long(text, chunk_chars=3000) @ reference) >= 0.9999
    assert capped.stats.windows == 5 and capped.stats.capped_documents == 1


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
    "flipped byte in the optimised weights": lambda f: _damage_bytes(f / OPTIMIZED_WEIGHTS),
    "optimised graph missing": lambda f: (f / OPTIMIZED_FILE).unlink(),
    "half an optimised pair listed": lambda f: _edit_manifest(
        f, files={k: v for k, v in json.loads((f / MANIFEST).read_text())["files"].items() if k != OPTIMIZED_FILE}
    ),
    "optimised record without its files": lambda f: _edit_manifest(
        f,
        files={
            k: v
            for k, v in json.loads((f / MANIFEST).read_text())["files"].items()
            if k not in (OPTIMIZED_FILE, OPTIMIZED_WEIGHTS)
        },
    ),
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

    monkeypatch.setattr(np, "savez", broken)
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


# -- cold start: the optimised graph, verified stamps, the quick-start session ---------------------------
def _hash_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every sha256 the runtime computes (of a file streamed or of bytes read)."""
    from semhash.runtime import manifest as manifest_module

    calls: list[str] = []
    file_digest, sha256_bytes = manifest_module.hashlib.file_digest, manifest_module.sha256_bytes

    def counting_file_digest(handle: BinaryIO, digest: str) -> hashlib._Hash:
        calls.append(Path(handle.name).name)
        return file_digest(handle, digest)

    def counting_sha256_bytes(data: bytes) -> str:
        calls.append(f"{len(data)} bytes")
        return sha256_bytes(data)

    monkeypatch.setattr(manifest_module.hashlib, "file_digest", counting_file_digest)
    monkeypatch.setattr(manifest_module, "sha256_bytes", counting_sha256_bytes)
    return calls


def test_the_export_has_an_optimised_graph_with_external_weights(exported: Exported) -> None:
    import onnxruntime

    manifest = read_manifest(exported.folder)
    assert manifest.optimized == {"onnxruntime": onnxruntime.__version__}
    assert {OPTIMIZED_FILE, OPTIMIZED_WEIGHTS} <= set(manifest.files)
    graph = (exported.folder / OPTIMIZED_FILE).read_bytes()
    assert len(graph) < 2 << 20 and external_locations_ok(graph)  # the weights are in the other file
    assert (exported.folder / OPTIMIZED_WEIGHTS).stat().st_size > 50 << 20


def test_the_optimised_graph_gives_the_portable_graphs_embeddings(exported: Exported, tmp_path: Path) -> None:
    texts = [*exported.texts[:8], "how do I fix a flat tyre on my bike", exported.texts[0] * 3]
    optimised = OnnxEncoder(exported.folder)
    assert optimised.graph == OPTIMIZED_FILE
    portable_folder = _clone(exported.folder, tmp_path / "portable.runtime")
    _edit_manifest(portable_folder, optimized={"onnxruntime": "0.0.0"})  # written by another onnxruntime
    portable = OnnxEncoder(portable_folder)
    assert portable.graph == ENCODER_FILE
    reference = portable.encode(texts)
    np.testing.assert_array_equal(optimised.encode(texts), reference)  # bit-identical
    quick = OnnxEncoder(exported.folder, quick_start=True)
    assert quick.graph == OPTIMIZED_FILE
    embeddings = quick.encode(texts)
    assert (embeddings * reference).sum(axis=1).min() >= 0.9999
    hasher = NumpyHasher.load(exported.folder)
    np.testing.assert_array_equal(hasher.encode(embeddings, texts), hasher.encode(reference, texts))
    options = quick._session.get_session_options()
    assert options.get_session_config_entry("session.disable_prepacking") == "1"
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_a_verified_folder_is_not_hashed_again(
    exported: Exported, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _clone(exported.folder, tmp_path / "copy.runtime")  # new links: the stamps no longer match
    calls = _hash_calls(monkeypatch)
    load_runtime(folder)
    assert set(calls) >= {ENCODER_FILE, OPTIMIZED_WEIGHTS}  # hashed once, then stamped
    assert json.loads((folder / STAMP_FILE).read_text())["files"].keys() == read_manifest(folder).files.keys()
    calls.clear()
    load_runtime(folder)
    assert calls == []  # only stat() this time


def test_a_stamped_file_damaged_in_place_is_still_refused(exported: Exported, tmp_path: Path) -> None:
    folder = _clone(exported.folder, tmp_path / "copy.runtime")
    load_runtime(folder)  # stamps every file of the copy
    target = folder / OPTIMIZED_WEIGHTS
    data = bytearray(target.read_bytes())
    target.unlink()  # a hard link to the fixture's file: replace it, keep the copy's stamp
    target.write_bytes(bytes(data))
    load_runtime(folder)  # same content, new inode: hashed again, stamped again
    before = target.stat()
    data[len(data) // 2] ^= 0xFF
    with target.open("r+b") as handle:  # same size, same inode, and the old mtime put back
        handle.write(bytes(data))
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = target.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    with pytest.raises(RuntimeUnavailableError, match=r"encoder\.opt\.weights whose sha256 differs"):
        load_runtime(folder)


def test_a_forged_or_malformed_stamp_only_costs_a_hash(exported: Exported, tmp_path: Path) -> None:
    from semhash.caches.files import stat_key
    from semhash.runtime.stamp import MAX_STAMP_BYTES, read_stamps

    folder = _clone(exported.folder, tmp_path / "copy.runtime")
    _damage_bytes(folder / HASHER_FILE)
    # A stamp for the damaged file's exact stat, but recorded with another sha256 than the manifest's.
    forged = {HASHER_FILE: {"sha256": "0" * 64, "stat": stat_key((folder / HASHER_FILE).stat())}}
    malformed = json.dumps({"format": 1, "files": {HASHER_FILE: {"sha256": 1, "stat": "x"}}}).encode()
    for stamp in (json.dumps({"format": 1, "files": forged}).encode(), b"{not json", malformed):
        _replace(folder / STAMP_FILE, stamp)
        with pytest.raises(RuntimeUnavailableError, match="differs from the manifest"):
            NumpyHasher.load(folder)
    _replace(folder / STAMP_FILE, b" " * (MAX_STAMP_BYTES + 1))
    assert read_stamps(folder) == {}


def test_a_folder_that_cannot_be_written_loads_without_its_stamp(
    exported: Exported, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from semhash.runtime import stamp

    folder = _clone(exported.folder, tmp_path / "copy.runtime")
    (folder / STAMP_FILE).unlink()

    def read_only(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")  # what creating a file raises in a read-only folder

    monkeypatch.setattr(stamp, "write_atomically", read_only)
    calls = _hash_calls(monkeypatch)
    assert load_runtime(folder).hasher is not None and load_runtime(folder).hasher is not None
    assert not (folder / STAMP_FILE).exists() and calls.count(ENCODER_FILE) == 2  # hashed each time, as before


def test_an_optimised_graph_naming_another_weights_file_is_not_loaded(exported: Exported, tmp_path: Path) -> None:
    from semhash.runtime.manifest import file_entry

    assert not external_locations_ok(b"\x0a\x08location\x12\x0b/etc/passwd")
    assert not external_locations_ok(b"no external data at all")
    folder = _clone(exported.folder, tmp_path / "copy.runtime")
    graph = (folder / OPTIMIZED_FILE).read_bytes()
    elsewhere = graph.replace(OPTIMIZED_WEIGHTS.encode(), b"encoder.opt.weightz")  # same length, another file
    assert elsewhere != graph and not external_locations_ok(elsewhere)
    os.link(folder / OPTIMIZED_WEIGHTS, folder / "encoder.opt.weightz")
    _replace(folder / OPTIMIZED_FILE, elsewhere)
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"][OPTIMIZED_FILE] = file_entry(folder / OPTIMIZED_FILE)  # consistent: only the content is odd
    _replace(folder / MANIFEST, json.dumps(manifest).encode())
    encoder = OnnxEncoder(folder)
    assert encoder.graph == ENCODER_FILE  # the portable graph, weights inline
    assert encoder.encode(["a short text"]).shape == (1, exported.torch_encoder.dim)


def test_export_hasher_keeps_a_current_optimised_graph_and_refreshes_another(
    exported: Exported, tmp_path: Path
) -> None:
    import onnxruntime

    folder = _clone(exported.folder, tmp_path / "copy.runtime")
    export_hasher(exported.hasher, folder, hasher_id=9, hasher_checksum="x")
    assert os.stat(folder / OPTIMIZED_WEIGHTS).st_ino == os.stat(exported.folder / OPTIMIZED_WEIGHTS).st_ino
    # An export from before the optimised graph (or another onnxruntime): `runtime build` adds one.
    old = _clone(exported.folder, tmp_path / "old.runtime")
    manifest = json.loads((old / MANIFEST).read_text())
    for name in (OPTIMIZED_FILE, OPTIMIZED_WEIGHTS):
        del manifest["files"][name]
        (old / name).unlink()
    manifest["optimized"] = None
    _replace(old / MANIFEST, json.dumps(manifest).encode())
    assert OnnxEncoder(old).graph == ENCODER_FILE
    assert refresh_optimized(old).optimized == {"onnxruntime": onnxruntime.__version__}
    assert OnnxEncoder(old).graph == OPTIMIZED_FILE
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


SPY = """
import json, os, sys
real_exit = os._exit
def spy(code):
    heavy = ("pydantic", "rich", "torch", "sentence_transformers", "sklearn")
    print(json.dumps(sorted(m for m in heavy if m in sys.modules)), file=sys.stderr, flush=True)
    real_exit(code)
os._exit = spy
from semhash.cli import main
sys.argv = ["semhash", *sys.argv[1:]]
main()
"""


def test_a_cold_cli_query_on_the_fast_path_gives_the_searchers_hits(exported: Exported, tmp_path: Path) -> None:
    from semhash.ingest import IndexOptions, index_paths
    from semhash.runtime.folder import seal_runtime
    from semhash.search import QueryOptions, Searcher
    from semhash.store import Store

    db = tmp_path / "sample.db"
    index_paths(db, [SAMPLE], IndexOptions(epochs=5, device="cpu"), encoder=OnnxEncoder(exported.folder))
    with Store.open(db) as store:
        model = store.active_model()
    assert model is not None
    export_hasher(
        model_from_bytes(model.weights), runtime_folder(db), hasher_id=model.id, hasher_checksum=model.checksum,
        source=exported.folder,
    )  # fmt: skip
    with Store.open(db) as store:  # the index vouches for the folder it exported (semhash.runtime.seal)
        seal_runtime(store)
    query = "how do I fix a flat tyre on my bike"
    child = subprocess.run(
        [sys.executable, "-c", SPY, "query", query, "--db", str(db), "--json", "-k", "4", "--runtime", "onnx"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stderr) == []  # ended by os._exit, parsed without typer, no torch
    with Searcher(db, runtime="onnx", quick_start=True) as searcher:
        expected = searcher.query(query, QueryOptions(k=4))
        assert searcher.runtime == "onnx"
    # --json rows also carry the result's "no good match" flag (semhash.types.Hits.weak)
    rows = [{**hit.to_dict(), "weak": expected.weak} for hit in expected]
    assert [json.loads(line) for line in child.stdout.splitlines()] == rows


def test_the_export_hands_back_the_torch_paths_windows(exported: Exported) -> None:
    """Issue 21: window vectors for the passage index, from the exported encoder as from torch."""
    text = "\n\n".join(exported.texts[:6])  # several windows
    texts = [exported.texts[0], text]
    encoder = OnnxEncoder(exported.folder, max_windows=0)
    pooled, windows = encoder.encode_windows(texts)
    reference, torch_windows = exported.torch_encoder.encode_windows(texts)
    assert np.array_equal(windows.spans, torch_windows.spans) and np.array_equal(windows.owner, torch_windows.owner)
    assert len(windows.of(1)[0]) > 1 and windows.vectors.dtype == np.float16
    cosines = (windows.vectors.astype(np.float32) * torch_windows.vectors.astype(np.float32)).sum(axis=1)
    assert cosines.min() >= 0.999
    assert np.allclose(pooled, encoder.encode(texts), atol=1e-6) and (pooled * reference).sum(axis=1).min() >= 0.9999
    kept: list[tuple[int, int, np.ndarray]] = []
    encoder.encode_long(text, keep=kept, chunk_chars=3000, window_chunk=4)
    assert [(a, b) for a, b, _ in kept] == [tuple(s) for s in windows.of(1)[0].tolist()]
