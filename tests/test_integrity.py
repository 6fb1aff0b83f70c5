"""Issue 18: a crash while switching models, crafted cache files and damaged codes.

Real SQLite, real faiss, the deterministic fake encoder; the crash is a real ``os._exit`` in a child process.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support import FAST_EPOCHS, FakeEncoder
from typer.testing import CliRunner

from semhash.cli import app
from semhash.codes import packed_to_ints, to_sql_int
from semhash.ingest import IndexOptions, index_paths, retrain_index
from semhash.model import encode_codes, model_from_bytes
from semhash.store import Store

runner = CliRunner()
REPO = Path(__file__).parent.parent


def invoke(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def _one_error_line(output: str) -> str:
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, output
    return lines[0]


@pytest.fixture
def indexed(tmp_path: Path, corpus: Path, fake_encoder: FakeEncoder) -> Path:
    db = tmp_path / "s.db"
    index_paths(db, [corpus], IndexOptions(epochs=FAST_EPOCHS, device="cpu"), encoder=fake_encoder)
    return db


def _codes_agree_with_the_active_model(db: Path) -> tuple[int, bool]:
    """``(active model id, whether every stored code is the one the active model gives its document)``."""
    with Store.open(db) as store:
        model = store.active_model()
        assert model is not None and model.weights is not None
        ids, stored = store.codes()
        assert len(ids) == store.count()  # every document has a code
        _, embeddings = store.embeddings(ids.tolist())
        hasher = model_from_bytes(model.weights)
        texts = store.texts(ids.tolist()) if hasher.lexical is not None else None
        packed = encode_codes(hasher, embeddings, "cpu", texts=texts)
        expected = [to_sql_int(v, model.bits) for v in packed_to_ints(packed)]
        return model.id, expected == stored.tolist()


# -- 1. kill -9 right after the new model is saved -----------------------------------------------------
CRASH_AFTER_SAVE = textwrap.dedent(
    """
    import os, sys
    from semhash.store import Store
    from semhash.ingest import retrain_index

    save = Store.save_model

    def save_then_die(self, *args, **kwargs):
        model_id = save(self, *args, **kwargs)
        os._exit(9)  # as kill -9: no cleanup, no rollback by Python

    Store.save_model = save_then_die
    retrain_index(sys.argv[1], epochs=2, seed=1, device="cpu")
    """
)


@pytest.mark.process
def test_a_crash_right_after_the_model_is_saved_leaves_one_models_codes(
    indexed: Path, patch_encoder: FakeEncoder
) -> None:
    old_id, consistent = _codes_agree_with_the_active_model(indexed)
    assert consistent
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    child = subprocess.run(
        [sys.executable, "-c", CRASH_AFTER_SAVE, str(indexed)], env=env, capture_output=True, text=True, timeout=300
    )
    assert child.returncode == 9, child.stderr
    # The index answers with one model: the old one and its codes (the switch was rolled back whole).
    model_id, consistent = _codes_agree_with_the_active_model(indexed)
    assert consistent and model_id == old_id
    code, output = invoke("query", "planet orbit telescope", "--db", indexed, "--json", "--runtime", "torch")
    assert code == 0, output
    # A rerun completes: a new model, every code its own.
    retrain_index(indexed, epochs=2, seed=1, device="cpu")
    model_id, consistent = _codes_agree_with_the_active_model(indexed)
    assert consistent and model_id != old_id


def test_the_model_and_its_codes_are_stored_in_one_transaction(indexed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure while the new codes are written (here the first batch) keeps the old model and codes."""
    old_id, _ = _codes_agree_with_the_active_model(indexed)

    def fail(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(Store, "set_codes", fail)
    with pytest.raises(sqlite3.OperationalError):
        retrain_index(indexed, epochs=2, seed=1, device="cpu")
    monkeypatch.undo()
    model_id, consistent = _codes_agree_with_the_active_model(indexed)
    assert consistent and model_id == old_id
    with sqlite3.connect(indexed) as conn:
        assert conn.execute("SELECT count(*) FROM models").fetchone()[0] == 1


def test_index_after_a_retrain_codes_new_documents_with_the_new_model(
    indexed: Path, corpus: Path, fake_encoder: FakeEncoder
) -> None:
    retrain_index(indexed, epochs=2, seed=1, device="cpu")
    (corpus / "space" / "new.txt").write_text("rocket comet nebula galaxy moon")
    index_paths(indexed, [corpus], IndexOptions(device="cpu"), encoder=fake_encoder)
    _, consistent = _codes_agree_with_the_active_model(indexed)
    assert consistent


# -- 6. a code stored as something else than an integer code ------------------------------------------
@pytest.mark.parametrize("value", ["'abc'", "x'00ff'", "1.5", str(1 << 40), "-1"])
def test_a_damaged_code_is_one_line_from_query_dedup_and_info_and_train_repairs_it(
    tmp_path: Path, corpus: Path, patch_encoder: FakeEncoder, value: str
) -> None:
    db = tmp_path / "s.db"
    assert invoke("index", corpus, "--db", db, "--epochs", FAST_EPOCHS, "--device", "cpu")[0] == 0
    with sqlite3.connect(db) as conn:  # text, blob, real, or out of range for 32-bit codes
        conn.execute(f"UPDATE documents SET code = {value} WHERE id = 3")
    commands = [("query", "planet orbit telescope", "-k", "30", "--runtime", "torch"), ("dedup",), ("info",)]
    for command in commands:
        code, output = invoke(*command, "--db", db)
        assert code == 1, (command, output)
        line = _one_error_line(output)
        assert "document 3" in line and "semhash train" in line, line
    assert invoke("train", "--db", db, "--epochs", 2)[0] == 0
    for command in commands:
        code, output = invoke(*command, "--db", db)
        assert code == 0, (command, output)


# -- 4. <db>.runtime as a symbolic link to another folder -------------------------------------------------
@pytest.fixture
def linked_runtime(tmp_path: Path, indexed: Path) -> tuple[Path, Path]:
    """The index's runtime path made a link to another folder, which holds a file of its own."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("not semhash's")
    Path(f"{indexed}.runtime").symlink_to(elsewhere, target_is_directory=True)
    return indexed, elsewhere


def test_runtime_commands_refuse_a_linked_runtime_folder_in_one_line(
    linked_runtime: tuple[Path, Path], patch_encoder: FakeEncoder
) -> None:
    db, elsewhere = linked_runtime
    for command in (("runtime", "clear"), ("runtime", "build")):
        code, output = invoke(*command, "--db", db)
        assert code == 1, (command, output)
        assert "symbolic link" in _one_error_line(output)
    code, output = invoke("runtime", "info", "--db", db)
    assert code == 0 and "symbolic link" in output, output
    code, output = invoke("query", "planet orbit", "--db", db, "--runtime", "onnx")
    assert code == 1 and "symbolic link" in _one_error_line(output)
    code, output = invoke("query", "planet orbit", "--db", db, "--json")  # auto: torch, the link left alone
    assert code == 0, output
    assert sorted(p.name for p in elsewhere.iterdir()) == ["keep.txt"]
    assert Path(f"{db}.runtime").is_symlink()


def test_the_automatic_export_after_train_refuses_a_linked_runtime_folder(
    linked_runtime: tuple[Path, Path], patch_encoder: FakeEncoder
) -> None:
    db, elsewhere = linked_runtime
    code, output = invoke("train", "--db", db, "--epochs", 2)
    assert code == 0, output
    warnings = [line for line in output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "symbolic link" in warnings[0], output
    assert sorted(p.name for p in elsewhere.iterdir()) == ["keep.txt"]


# -- 5. a FIFO (or another non-regular file) in a cache file's place ------------------------------------
QUERY_CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv.pop(1))
    from support import FakeEncoder
    import semhash.embed
    encoder = FakeEncoder()
    semhash.embed.load_encoder = lambda *args, **kwargs: encoder
    from semhash.cli import main
    sys.argv = ["semhash", *sys.argv[1:]]
    main()
    """
)


def _cli_child(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The CLI in a child process with the fake encoder (a hang is a failed test, not a hung suite)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", QUERY_CHILD, str(Path(__file__).parent), *map(str, args)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.process
@pytest.mark.parametrize("suffix", [".faiss.json", ".faiss", ".vectors.json", ".vectors", ".vectors.ids"])
def test_a_fifo_in_a_cache_files_place_is_a_damaged_cache_never_a_hang(indexed: Path, suffix: str) -> None:
    query = ("query", "planet orbit telescope", "--db", indexed, "--json", "--runtime", "torch")
    expected = _cli_child(*query)
    assert expected.returncode == 0, expected.stderr
    cache = Path(f"{indexed}{suffix}")
    assert cache.is_file()
    cache.unlink()
    os.mkfifo(cache)
    child = _cli_child(*query)
    assert child.returncode == 0, child.stderr
    assert child.stdout == expected.stdout
    if suffix.startswith(".vectors"):  # the query's own cache: replaced by a regular file
        assert cache.is_file() and not cache.is_symlink()
    else:  # a query never opens the faiss file (the searcher builds its rows from the vectors)
        assert stat.S_ISFIFO(cache.lstat().st_mode)


def test_a_linked_cache_file_is_not_read(indexed: Path, tmp_path: Path) -> None:
    """A sidecar that is a link (here to a copy of the genuine one) is not followed: the cache is rebuilt."""
    from semhash.caches.hamming import CodeIndex
    from semhash.caches.sync import stamp_of

    side = Path(f"{indexed}.faiss.json")
    copy = tmp_path / "copy.json"
    copy.write_bytes(side.read_bytes())
    side.unlink()
    side.symlink_to(copy)
    with Store.open(indexed) as store:
        assert store.bits is not None
        assert CodeIndex.load(Path(f"{indexed}.faiss"), stamp_of(store), store.bits) is None


def test_a_fifo_as_the_runtime_stamp_or_manifest_is_refused_never_waited_on(tmp_path: Path) -> None:
    """A small runtime folder (no model needed): its stamp file, then its manifest, replaced by FIFOs."""
    script = textwrap.dedent(
        """
        import json, os, sys
        from pathlib import Path
        from semhash.errors import RuntimeUnavailableError
        from semhash.runtime.manifest import file_entry, read_checked, read_manifest
        folder = Path(sys.argv[1])
        folder.mkdir()
        (folder / "tokenizer.json").write_bytes(b"{}")
        (folder / "encoder.onnx").write_bytes(b"graph")
        files = {n: file_entry(folder / n) for n in ("tokenizer.json", "encoder.onnx")}
        manifest = {"format": 1, "embedding_model": "m", "dim": 4, "max_seq_length": 8, "hasher": None,
                    "versions": {}, "files": files, "optimized": None}
        (folder / "manifest.json").write_text(json.dumps(manifest))
        os.mkfifo(folder / "verified.json")
        assert read_checked(read_manifest(folder), "tokenizer.json") == b"{}"
        os.mkfifo(folder / "weights")
        os.replace(folder / "weights", folder / "encoder.onnx")
        try:
            read_checked(read_manifest(folder), "encoder.onnx")
        except RuntimeUnavailableError as exc:
            print(exc)
        (folder / "manifest.json").unlink()
        os.mkfifo(folder / "manifest.json")
        try:
            read_manifest(folder)
        except RuntimeUnavailableError as exc:
            print(exc)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "x.runtime")], env=env, capture_output=True, text=True, timeout=60
    )
    assert child.returncode == 0, child.stderr
    lines = child.stdout.splitlines()
    assert len(lines) == 2 and "encoder.onnx that is not a regular file" in lines[0] and "manifest.json" in lines[1]


def test_a_fifo_in_place_of_the_ivf_file_is_rebuilt_never_waited_on(tmp_path: Path) -> None:
    """The IVF stage (large indexes only) loads through the same checks; a FIFO there is a stale cache."""
    script = textwrap.dedent(
        """
        import os, sys
        import numpy as np
        from semhash.caches.files import CacheStamp
        from semhash.caches.ivf import EmbeddingIVF
        rng = np.random.default_rng(0)
        rows = rng.standard_normal((400, 16)).astype(np.float32)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        ids = np.arange(400, dtype=np.int64)
        stamp = CacheStamp("db", 1, "change")
        path = sys.argv[1]
        EmbeddingIVF.build(ids, rows, nlist=8).save(path, stamp)
        assert EmbeddingIVF.load(path, stamp, 16, 400) is not None
        os.unlink(path)
        os.mkfifo(path)
        print(EmbeddingIVF.load(path, stamp, 16, 400))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    child = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "s.db.ivf")], env=env, capture_output=True, text=True, timeout=60
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "None"
