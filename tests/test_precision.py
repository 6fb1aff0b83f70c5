"""An index's encoder precision (fp32 / int8 / bf16): recorded once, honoured by every later embedding, never mixed.

Unit tests use the fake encoder (an "int8" one is the same fake with ``precision = "int8"``); the parity
tests (``slow``) quantise the real model (int8) or run it on OpenVINO (bf16) and compare its embeddings and
codes with the fp32 reference.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import numpy as np
import pytest
from support import FAST_EPOCHS, FakeEncoder, write_corpus
from typer.testing import CliRunner

from semhash.cli import app
from semhash.codec import Codec
from semhash.config import DEFAULT_PRECISION, PRECISION_KEY
from semhash.errors import ModelMismatchError, RuntimeUnavailableError, UsageError
from semhash.ingest import IndexOptions, index_paths
from semhash.runtime import OnnxEncoder
from semhash.runtime.manifest import read_manifest
from semhash.runtime.precision import (
    asked_precision,
    check_precision,
    cpu_has_amx,
    default_cpu_precision,
    index_precision,
    new_index_precision,
    record_precision,
)
from semhash.store import Store

SAMPLE = Path(__file__).parent.parent / "data" / "sample"


class Int8Fake(FakeEncoder):
    """The fake encoder, declaring int8 embeddings (as the int8 ONNX encoder does)."""

    precision = "int8"


def _index(db: Path, root: Path, encoder: FakeEncoder, **options: object) -> None:
    index_paths(db, [root], IndexOptions(epochs=FAST_EPOCHS, device="cpu", runtime_export=False, **options), encoder)


# -- asking and recording -------------------------------------------------------------------------------
def test_the_flag_then_the_environment_then_the_default_choose_a_new_index_precision(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SEMHASH_PRECISION", raising=False)
    assert asked_precision(None) is None
    assert asked_precision("INT8") == "int8"
    assert asked_precision("bf16") == "bf16"
    with pytest.raises(UsageError, match="fp32, int8, bf16"):
        asked_precision("fp16")
    assert new_index_precision("cpu", "local") == default_cpu_precision()
    assert new_index_precision("cuda", "local") == new_index_precision("cpu", "ray") == "fp32"  # torch embeds
    monkeypatch.setenv("SEMHASH_PRECISION", "int8")
    assert new_index_precision("cpu", "local") == "int8"
    assert check_precision(None, "fp32", new_index_precision("cpu", "local")) == "fp32"  # the flag wins
    monkeypatch.setenv("SEMHASH_PRECISION", "fp16")
    with pytest.raises(UsageError, match="SEMHASH_PRECISION"):
        new_index_precision("cpu", "local")


def test_the_default_cpu_precision_is_bf16_only_with_amx_and_openvino(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    amx = tmp_path / "amx"
    amx.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_vnni amx_bf16 amx_tile amx_int8\n")
    plain = tmp_path / "plain"
    plain.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_vnni avx512_bf16\n")
    assert cpu_has_amx(amx) and not cpu_has_amx(plain) and not cpu_has_amx(tmp_path / "missing")
    assert default_cpu_precision(plain) == DEFAULT_PRECISION == "int8"
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: object() if name == "openvino" else None)
    assert default_cpu_precision(amx) == "bf16"
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)  # no OpenVINO: int8 even with AMX
    assert default_cpu_precision(amx) == "int8"


def test_openvino_windows_are_padded_to_a_few_shapes() -> None:
    """Every length becomes a multiple of 16 (masked zeros): OpenVINO keeps kernels per shape it meets."""
    from semhash.runtime.openvino_runner import LENGTH_STEP, padded

    rows = np.arange(1, 2 * 21 + 1).reshape(2, 21)
    out = padded(rows, LENGTH_STEP)
    assert out.shape == (2, 32) and (out[:, :21] == rows).all() and not out[:, 21:].any()
    assert padded(out, LENGTH_STEP) is out  # already a multiple: untouched
    assert {padded(np.ones((1, n)), LENGTH_STEP).shape[1] for n in range(1, 257)} == set(range(16, 257, 16))


def test_a_new_index_records_its_encoders_precision(tmp_path: Path) -> None:
    write_corpus(tmp_path / "c")
    _index(tmp_path / "a.db", tmp_path / "c", FakeEncoder())
    _index(tmp_path / "b.db", tmp_path / "c", Int8Fake())
    with Store.open(tmp_path / "a.db") as a, Store.open(tmp_path / "b.db") as b:
        assert (a.get_meta(PRECISION_KEY), b.get_meta(PRECISION_KEY)) == ("fp32", "int8")
        assert index_precision(b) == "int8"


def test_another_precision_is_refused_before_any_embedding(tmp_path: Path) -> None:
    paths = write_corpus(tmp_path / "c")
    db = tmp_path / "i.db"
    _index(db, tmp_path / "c", Int8Fake())
    paths["space"][0].write_text("a new text about a comet and its orbit", encoding="utf-8")
    fp32 = FakeEncoder()
    with pytest.raises(ModelMismatchError, match="int8"):
        _index(db, tmp_path / "c", fp32)
    assert fp32.calls == 0
    with pytest.raises(ModelMismatchError, match="--precision int8"):
        _index(db, tmp_path / "c", Int8Fake(), precision="fp32")
    _index(db, tmp_path / "c", Int8Fake())  # the index's own precision: new text embedded
    with Store.open(db) as store:
        assert index_precision(store) == "int8"


def test_the_cli_refuses_another_precision_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_corpus(tmp_path / "c")
    db = tmp_path / "i.db"
    _index(db, tmp_path / "c", Int8Fake())
    monkeypatch.setattr("semhash.embed.load_encoder", lambda *a, **k: FakeEncoder())
    result = CliRunner().invoke(app, ["index", str(tmp_path / "c"), "--db", str(db), "--precision", "fp32"])
    assert result.exit_code == 1
    assert "embeds at int8 precision, not fp32" in result.output
    assert len(result.output.strip().splitlines()) == 1
    bad = CliRunner().invoke(app, ["index", str(tmp_path / "c"), "--db", str(db), "--precision", "half"])
    assert bad.exit_code != 0
    assert "fp32, int8" in bad.output


def test_an_older_index_is_fp32_and_takes_no_int8_embeddings(tmp_path: Path) -> None:
    write_corpus(tmp_path / "c")
    db = tmp_path / "i.db"
    _index(db, tmp_path / "c", FakeEncoder())
    with Store.open(db) as store, store.transaction("an index from before the key"):
        store.db.execute("DELETE FROM meta WHERE key = ?", [PRECISION_KEY])
    with Store.open(db) as store:
        assert index_precision(store) == "fp32"
        assert check_precision(store, None) == "fp32"
        with pytest.raises(ModelMismatchError, match="fp32 embeddings"):
            record_precision(store, "int8")
        record_precision(store, "fp32")
        assert store.get_meta(PRECISION_KEY) == "fp32"


def test_ray_at_int8_is_refused(tmp_path: Path) -> None:
    write_corpus(tmp_path / "c")
    from semhash.ingest.run import embedding_precision

    with pytest.raises(UsageError, match="--engine ray"):
        embedding_precision(None, None, IndexOptions(precision="int8", engine="ray"))


# -- queries: an int8 index never embeds with torch -------------------------------------------------------
def test_an_int8_index_without_its_folder_embeds_with_the_int8_export_never_torch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_corpus(tmp_path / "c")
    db = tmp_path / "i.db"
    _index(db, tmp_path / "c", Int8Fake())
    asked: list[str] = []

    def int8(model: str | None, precision: str, max_windows: int = 0, quick_start: bool = False) -> FakeEncoder:
        asked.append(precision)
        return Int8Fake()

    def no_torch(*args: object, **kwargs: object) -> FakeEncoder:
        raise AssertionError("an int8 index embedded with torch")

    monkeypatch.setattr("semhash.codec.quantised_encoder", int8)
    monkeypatch.setattr("semhash.codec.torch_encoder", no_torch)
    with Store.open(db) as store:
        for runtime in ("auto", "torch"):
            codec = Codec.from_store(store, runtime, device="cpu")
            assert (codec.runtime, codec.precision) == ("torch", "int8")
            assert codec.embed(["a comet"]).shape == (1, 32)
    assert asked == ["int8", "int8"]


def test_an_int8_index_whose_encoder_cannot_be_built_refuses_to_embed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_corpus(tmp_path / "c")
    db = tmp_path / "i.db"
    _index(db, tmp_path / "c", Int8Fake())

    def missing(name: str, precision: str = "fp32") -> None:
        raise RuntimeUnavailableError("an int8 encoder needs onnxruntime and onnx (onnxruntime is missing)")

    monkeypatch.setattr("semhash.runtime.cache.cached_encoder", missing)
    with Store.open(db) as store:
        codec = Codec.from_store(store, device="cpu")
        with pytest.raises(RuntimeUnavailableError, match="embeds at int8 precision") as caught:
            codec.embed(["a comet"])
    assert "\n" not in str(caught.value)


# -- the folder ---------------------------------------------------------------------------------------------
def _manifest(folder: Path, **fields: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    entry = {"sha256": "0" * 64, "bytes": 1}
    raw = {
        "format": 1,
        "embedding_model": "m",
        "dim": 8,
        "max_seq_length": 16,
        "hasher": None,
        "files": {"encoder.onnx": entry, "tokenizer.json": entry},
    }
    (folder / "manifest.json").write_text(json.dumps({**raw, **fields}))
    return folder


def test_an_int8_folder_is_format_3_and_says_so(tmp_path: Path) -> None:
    assert read_manifest(_manifest(tmp_path / "a")).precision == "fp32"
    assert read_manifest(_manifest(tmp_path / "b", format=3, precision="int8")).precision == "int8"
    # An int8 manifest under an older format would be read as fp32 by an older semhash: refused.
    with pytest.raises(RuntimeUnavailableError, match="precision and format disagree"):
        read_manifest(_manifest(tmp_path / "c", precision="int8"))
    with pytest.raises(RuntimeUnavailableError, match="unknown precision"):
        read_manifest(_manifest(tmp_path / "d", format=3, precision="int4"))


# -- parity with the real model (slow) --------------------------------------------------------------------
@pytest.fixture(scope="module")
def encoders() -> tuple[object, object, list[str]]:
    """The real model's fp32 export (the torch path's embeddings to cosine 1.000000) and its int8 quantisation."""
    from semhash.config import DEFAULT_MODEL
    from semhash.runtime import OnnxEncoder
    from semhash.runtime.cache import cached_encoder

    texts = [p.read_text(encoding="utf-8") for p in sorted(SAMPLE.rglob("*")) if p.is_file()]
    texts.append("\n\n".join(texts[:12]))  # one long document: several windows, pooled
    return OnnxEncoder(cached_encoder(DEFAULT_MODEL)), OnnxEncoder(cached_encoder(DEFAULT_MODEL, "int8")), texts


@pytest.fixture(scope="module")
def bf16() -> OnnxEncoder:
    """The real model's fp32 export run by OpenVINO in bfloat16 (fp32 on a CPU without bfloat16 units)."""
    from semhash.config import DEFAULT_MODEL
    from semhash.runtime.cache import cached_encoder

    return OnnxEncoder(cached_encoder(DEFAULT_MODEL, "bf16"))


@pytest.mark.slow
def test_int8_embeddings_stay_within_tolerance_of_fp32(encoders: tuple) -> None:
    fp32, int8, texts = encoders
    assert (fp32.precision, int8.precision) == ("fp32", "int8")
    reference, quantised = fp32.encode(texts), int8.encode(texts)
    cosine = (reference * quantised).sum(axis=1)
    # Measured on these texts: min 0.9885, mean 0.9939 (500 20NG posts: min 0.9625, mean 0.9931).
    assert cosine.min() >= 0.97
    assert cosine.mean() >= 0.99
    assert cosine[-1] >= 0.97  # the pooled long document
    # One window per run: a text's int8 embedding does not depend on what it is embedded with.
    assert int8.batch_size == 1
    np.testing.assert_array_equal(int8.encode(texts[3:4]), quantised[3:4])


@pytest.mark.slow
def test_bf16_embeddings_stay_within_tolerance_of_fp32(encoders: tuple, bf16: OnnxEncoder) -> None:
    fp32, _, texts = encoders
    assert bf16.precision == "bf16" and bf16.graph == "encoder.onnx"
    manifest = bf16.manifest
    # The fp32 export's own graph, its files hard-linked (or copied), without onnxruntime's optimised pair.
    assert manifest.optimized is None and set(manifest.files) == {"encoder.onnx", "tokenizer.json"}
    assert manifest.files["encoder.onnx"] == fp32.manifest.files["encoder.onnx"]
    assert json.loads((manifest.folder / "manifest.json").read_text())["format"] == 3
    reference, half = fp32.encode(texts), bf16.encode(texts)
    cosine = (reference * half).sum(axis=1)
    # Measured on these 131 texts (AMX): min 0.99997; 450 windows of 20NG posts: min 0.99995 (int8: 0.978).
    assert cosine.min() >= 0.999
    assert cosine[-1] >= 0.999  # the pooled long document
    assert bf16.batch_size == 1
    np.testing.assert_allclose(bf16.encode(texts[3:4]), half[3:4], atol=1e-6)


@pytest.mark.slow
def test_a_bf16_encoder_without_openvino_is_one_clear_refusal(
    bf16: OnnxEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from semhash.config import DEFAULT_MODEL
    from semhash.encoders import quantised_encoder

    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino raises ImportError
    with pytest.raises(RuntimeUnavailableError, match="pip install openvino"):
        OnnxEncoder(bf16.manifest)
    with pytest.raises(RuntimeUnavailableError, match="install openvino, or index into another --db"):
        quantised_encoder(DEFAULT_MODEL, "bf16")


def _bits_differing(fp32: OnnxEncoder, other: OnnxEncoder, texts: list[str]) -> np.ndarray:
    """Per text, the bits by which ``other``'s code differs from fp32's, under a hasher trained on fp32's embeddings."""
    from semhash.model import encode_codes
    from semhash.train import TrainConfig, train_hasher

    reference, embeddings = fp32.encode(texts), other.encode(texts)
    hasher, _ = train_hasher(reference, 32, TrainConfig(epochs=15, hidden=128, min_steps=0), texts=texts)
    differing = encode_codes(hasher, reference, texts=texts) ^ encode_codes(hasher, embeddings, texts=texts)
    return np.unpackbits(differing, axis=1).sum(axis=1)


@pytest.mark.slow
def test_a_cpu_without_bf16_kernels_runs_a_bf16_folder_at_fp32() -> None:
    """OpenVINO limited to AVX2 kernels on a CPU that reports bfloat16 cannot build them: fp32 runs instead."""
    import os
    import subprocess
    import sys

    child = (
        "from semhash.config import DEFAULT_MODEL\n"
        "from semhash.runtime import OnnxEncoder\n"
        "from semhash.runtime.cache import cached_encoder\n"
        "texts = ['Comets grow a tail near the sun.', 'A recipe for bread with rye flour.']\n"
        "half = OnnxEncoder(cached_encoder(DEFAULT_MODEL, 'bf16')).encode(texts)\n"
        "full = OnnxEncoder(cached_encoder(DEFAULT_MODEL)).encode(texts)\n"
        "print(float((half * full).sum(axis=1).min()))\n"
    )
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    result = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout.strip().splitlines()[-1]) >= 0.9999


#: A fresh process whose two threads run their first OpenVINO inference at the same moment (a barrier).
_FIRST_RUNS_AT_ONCE = """
import sys, threading
import numpy as np
from pathlib import Path
from semhash.runtime.openvino_runner import OpenVinoRunner
runner = OpenVinoRunner(Path(sys.argv[1]), streams=2, threads=2)
barrier = threading.Barrier(2)
def first_run():
    barrier.wait()
    ids = np.array([[101, 2000, 102]], dtype=np.int64)
    runner.run({"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)})
threads = [threading.Thread(target=first_run) for _ in range(2)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print("done")
"""


@pytest.mark.slow
@pytest.mark.process
def test_two_threads_first_openvino_runs_at_once_never_hang() -> None:
    """Two worker threads' first inference at once once deadlocked in OpenVINO's bindings (2 of 20 processes).

    ``OpenVinoRunner`` now runs once in the thread that builds it. Without that, eight fresh processes hit the
    hang with a probability of about 0.55 (0.1 each); with it, none may.
    """
    import subprocess
    import sys

    pytest.importorskip("openvino")
    from semhash.config import DEFAULT_MODEL
    from semhash.runtime.cache import cached_encoder
    from semhash.runtime.manifest import ENCODER_FILE

    graph = cached_encoder(DEFAULT_MODEL, "bf16").folder / ENCODER_FILE
    for _ in range(8):
        try:
            result = subprocess.run(
                [sys.executable, "-c", _FIRST_RUNS_AT_ONCE, str(graph)], capture_output=True, text=True, timeout=60
            )
        except subprocess.TimeoutExpired:
            pytest.fail("two threads' first OpenVINO runs at once hung (60 s)")
        assert result.returncode == 0 and result.stdout.strip() == "done", result.stderr[-2000:]


@pytest.mark.slow
def test_bf16_codes_agree_with_fp32_codes(encoders: tuple, bf16: OnnxEncoder) -> None:
    fp32, _, texts = encoders
    bits = _bits_differing(fp32, bf16, texts)
    # Measured (2 seeds, AMX): 98-100% of codes equal, at most 1 bit differing; int8: 76-78% equal.
    assert (bits == 0).mean() >= 0.9
    assert bits.max() <= 2


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "int8", "bf16"])
def test_windows_run_at_once_give_the_embeddings_of_one_at_a_time(
    encoders: tuple, bf16: OnnxEncoder, precision: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Indexing's encoder (``bulk``: two windows at once, one intra-op thread each) embeds as a query's does."""
    import threading

    from semhash.config import DEFAULT_MODEL
    from semhash.encoders import onnx_encoder
    from semhash.runtime.cache import cached_encoder

    fp32, int8, texts = encoders
    alone = {"fp32": fp32, "int8": int8, "bf16": bf16}[precision]
    monkeypatch.setattr("semhash.runtime.onnx_encoder.default_threads", lambda: 2)  # as on the 2-core CI machine
    bulk = cast(OnnxEncoder, onnx_encoder(cached_encoder(DEFAULT_MODEL, precision), bulk=True))
    assert (bulk.workers, alone.workers) == (2, 1)
    threads: set[str] = set()
    run = bulk._run

    def run_and_note(rows: list[list[int]]) -> np.ndarray:
        threads.add(threading.current_thread().name)
        return run(rows)

    monkeypatch.setattr(bulk, "_run", run_and_note)
    together = bulk.encode(texts)
    assert len(threads) == 2 and all(name.startswith("semhash-onnx") for name in threads)
    # One intra-op thread instead of two sums in another order: equal to float rounding, not bit for bit
    # (bf16: OpenVINO's throughput streams may pick other kernels than its latency mode, still bf16's rounding).
    np.testing.assert_allclose(together, alone.encode(texts), atol=2e-6 if precision != "bf16" else 2e-3)
    _, windows = bulk.encode_windows(texts[-1:])
    assert len(windows.vectors) > 1  # the long document's windows, each its own run on the pool


@pytest.mark.slow
def test_an_interrupted_embedding_drops_the_windows_not_started(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while windows run at once: the queued ones are cancelled, not run before the process may exit."""
    import threading

    from semhash.config import DEFAULT_MODEL
    from semhash.encoders import onnx_encoder
    from semhash.runtime.cache import cached_encoder

    monkeypatch.setattr("semhash.runtime.onnx_encoder.default_threads", lambda: 2)
    bulk = cast(OnnxEncoder, onnx_encoder(cached_encoder(DEFAULT_MODEL, "int8"), bulk=True))
    calls = 0
    lock = threading.Lock()
    run = bulk._run

    def run_then_interrupt(rows: list[list[int]]) -> np.ndarray:
        nonlocal calls
        with lock:
            calls += 1
            if calls == 3:
                raise KeyboardInterrupt
        return run(rows)

    monkeypatch.setattr(bulk, "_run", run_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        bulk.embed_windows([f"window number {k} of an interrupted batch" for k in range(200)])
    assert bulk._pool is not None
    bulk._pool.shutdown(wait=True)  # whatever was still running has finished: nothing queued may start after
    assert calls < 50, calls  # a few (the workers run ahead of the interrupted wait), never the 200


@pytest.mark.slow
def test_int8_codes_agree_with_fp32_codes(encoders: tuple) -> None:
    fp32, int8, texts = encoders
    bits = _bits_differing(fp32, int8, texts)
    # Measured (2 seeds): 76-78% of codes equal, 0.25 bits of 32 differing on average, at most 2.
    assert (bits == 0).mean() >= 0.65
    assert bits.mean() <= 0.5
    assert bits.max() <= 4


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["int8", "bf16"])
def test_an_int8_or_bf16_index_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, precision: str) -> None:
    """``--precision int8`` (bf16) indexes with that encoder, seals a folder of it, and queries embed with it."""
    from semhash.runtime import runtime_folder

    root = tmp_path / "c"
    root.mkdir()
    for path in sorted(SAMPLE.rglob("*.txt"))[:16]:
        (root / path.name).write_text(path.read_text(encoding="utf-8")[:1500], encoding="utf-8")
    db = tmp_path / "i.db"

    def no_torch(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a {precision} index embedded with torch")

    monkeypatch.setattr("semhash.encoders.torch_encoder", no_torch)
    monkeypatch.setattr("semhash.codec.torch_encoder", no_torch)
    index_paths(db, [root], IndexOptions(epochs=FAST_EPOCHS, device="cpu", precision=precision))
    manifest = read_manifest(runtime_folder(db))
    assert manifest.precision == precision
    with Store.open(db) as store:
        assert index_precision(store) == precision
        codec = Codec.from_store(store, device="cpu")
        assert (codec.runtime, codec.precision) == ("onnx", precision)
        ids, stored = store.embeddings()
        texts = store.texts(ids.tolist())
        again = codec.embed(texts[:4])
    np.testing.assert_allclose(again, stored[:4], atol=1e-5)  # the stored embeddings are that encoder's
    (root / "new.txt").write_text("A comet's tail points away from the sun.", encoding="utf-8")
    index_paths(db, [root], IndexOptions(device="cpu"))  # the recorded precision, not asked again
    result = CliRunner().invoke(app, ["query", "comet tail", "--db", str(db), "--json", "-k", "1"])
    assert result.exit_code == 0, result.output
    assert "new.txt" in result.output


def test_without_onnxruntime_a_new_index_at_the_default_precision_falls_back_to_torch_at_fp32(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, patch_encoder: FakeEncoder
) -> None:
    write_corpus(tmp_path / "c")
    monkeypatch.delenv("SEMHASH_PRECISION", raising=False)

    def missing(*args: object, **kwargs: object) -> None:
        raise RuntimeUnavailableError("an int8 encoder needs onnxruntime and onnx (onnxruntime is missing)")

    monkeypatch.setattr("semhash.encoders.quantised_encoder", missing)
    options = IndexOptions(epochs=FAST_EPOCHS, device="cpu", runtime_export=False)
    report = index_paths(tmp_path / "d.db", [tmp_path / "c"], options)
    with Store.open(tmp_path / "d.db") as store:
        assert store.get_meta(PRECISION_KEY) == "fp32"
    assert patch_encoder.calls > 0  # torch's (here the fake) encoder embedded
    if default_cpu_precision() != "fp32":
        assert any("indexing at fp32 with torch" in w for w in report.warnings)
    # Asked for explicitly, int8 is never swapped for fp32: one clear error instead.
    with pytest.raises(RuntimeUnavailableError, match="onnxruntime"):
        index_paths(tmp_path / "e.db", [tmp_path / "c"], IndexOptions(device="cpu", precision="int8"))
    assert not (tmp_path / "e.db").exists()
