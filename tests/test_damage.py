"""A crafted or damaged index, and failing disks: never a wrong answer, never a traceback, nothing lost.

Real SQLite and faiss throughout; a full disk is SQLite's own ``database or disk is full`` (a tiny
``PRAGMA max_page_count``) or a write that fails with ``ENOSPC``.
"""

from __future__ import annotations

import errno
import io
import json
import shutil
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import pytest
import torch
from support import FAST_EPOCHS, TOPICS, FakeEncoder
from typer.testing import CliRunner

from semhash.caches.hamming import faiss_path_for
from semhash.caches.sync import load_index
from semhash.cli import app
from semhash.codes import ints_to_packed
from semhash.search import Searcher
from semhash.store import Store
from semhash.types import SourceDocument

runner = CliRunner()


def invoke(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def _error_line(output: str) -> str:
    """The one ``error:`` line of a failed command (and proof there is no traceback)."""
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, output
    return lines[0]


def _write_texts(root: Path, n: int, seed: int, size: int = 12) -> None:
    rng = np.random.default_rng(seed)
    topics = list(TOPICS.values())
    root.mkdir(parents=True)
    for i in range(n):
        words = topics[i % len(topics)].split()
        (root / f"doc-{i:03d}.txt").write_text(" ".join(rng.choice(words, size=size)) + f" item {seed} {i}")


# -- 1. a faiss file from another database -----------------------------------------------------------
def test_a_faiss_file_copied_from_another_database_is_rebuilt_not_served(
    tmp_path: Path, patch_encoder: FakeEncoder
) -> None:
    dbs = []
    for name, seed in (("a", 1), ("b", 2)):
        _write_texts(tmp_path / f"corpus-{name}", 40, seed)
        db = tmp_path / f"{name}.db"
        code, output = invoke("index", tmp_path / f"corpus-{name}", "--db", db, "--epochs", FAST_EPOCHS)
        assert code == 0, output
        dbs.append(db)
    a, b = dbs
    with Store.open(a) as sa, Store.open(b) as sb:
        assert sa.generation == sb.generation and sa.count() == sb.count() == 40  # same ids 1..40, same state
        b_ids, b_codes = sb.codes()
        bits = sb.bits or 32
    for suffix in (".faiss", ".faiss.json"):
        shutil.copyfile(f"{a}{suffix}", f"{b}{suffix}")
    with Searcher(b, encoder=patch_encoder) as searcher:
        packed = ints_to_packed(b_codes, bits)
        for doc_id, code in zip(b_ids.tolist(), packed, strict=True):
            found, _ = searcher.index.within(code[None, :], 0)
            assert doc_id in found.tolist()  # b's own code finds b's document: b's codes are served
    with Store.open(b) as sb:
        index = load_index(sb)  # the file's reader (dedup --against): a's file is rebuilt from b's codes
        pairs = zip(b_ids.tolist(), packed, strict=True)
        assert all(doc_id in index.within(code[None, :], 0)[0].tolist() for doc_id, code in pairs)
        sidecar = json.loads(Path(f"{b}.faiss.json").read_text())
        assert (
            sidecar["database_id"] == sb.database_id != json.loads(Path(f"{a}.faiss.json").read_text())["database_id"]
        )


def test_a_copied_database_that_changes_on_its_own_gets_a_state_of_its_own(tmp_path: Path) -> None:
    """``cp a.db b.db``: same id, same generation after the same number of changes, yet distinct states."""
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    with Store.open(a, create=True) as store:
        store.set_codes([], [], [])
    shutil.copyfile(a, b)
    with Store.open(a, write=True) as sa, Store.open(b, write=True) as sb:
        sa.set_codes([], [], [])
        sb.set_codes([], [], [])
        assert sa.database_id == sb.database_id and sa.generation == sb.generation
        assert sa.change_id != sb.change_id


def test_an_older_database_gets_an_id_when_opened_for_writing(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    Store.open(db, create=True).close()
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM meta WHERE key = 'database_id'")  # as an older semhash left it
    conn.commit()
    conn.close()
    with Store.open(db, write=True) as store:
        assert store.database_id is not None and len(store.database_id) == 32


# -- 2. a full disk ------------------------------------------------------------------------------------
def _fill_disk(store: Store) -> None:
    """No page more for this connection: SQLite's own SQLITE_FULL on the next write that needs one."""
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")


def test_disk_full_while_embedding_keeps_committed_batches_and_resumes(
    tmp_path: Path, patch_encoder: FakeEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = tmp_path / "corpus"
    _write_texts(corpus, 24, 3, size=900)  # ~6 KB per document: every batch needs new pages
    db = tmp_path / "s.db"
    original = Store.upsert_documents
    calls = []

    def upsert_then_fill(self: Store, documents: Sequence[SourceDocument], embeddings: np.ndarray) -> list[int]:
        if calls:
            _fill_disk(self)
        calls.append(len(documents))
        return original(self, documents, embeddings)

    monkeypatch.setattr(Store, "upsert_documents", upsert_then_fill)
    code, output = invoke("index", corpus, "--db", db, "--batch", 8, "--epochs", FAST_EPOCHS)
    assert code == 1
    line = _error_line(output)
    assert "disk is full" in line and "storing 8 embedded documents" in line and "rerun the same command" in line
    with Store.open(db) as store:
        assert store.count() == 8  # the first batch was committed and stays
    monkeypatch.setattr(Store, "upsert_documents", original)
    code, output = invoke("index", corpus, "--db", db, "--batch", 8, "--epochs", FAST_EPOCHS)
    assert code == 0, output
    assert "16 added, 0 updated, 0 removed, 8 unchanged; 24 documents" in output


def test_disk_full_while_saving_the_model_keeps_the_embeddings(
    tmp_path: Path, corpus: Path, patch_encoder: FakeEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "s.db"
    original = Store.save_model

    def fill_then_save(self: Store, *args: Any, **kwargs: Any) -> int:  # noqa: ANN401  (Store.save_model's arguments, passed through)
        _fill_disk(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Store, "save_model", fill_then_save)
    code, output = invoke("index", corpus, "--db", db, "--epochs", FAST_EPOCHS)
    assert code == 1
    line = _error_line(output)
    assert "disk is full" in line and "saving the hashing model" in line and "resume" in line
    with Store.open(db) as store:
        assert store.count() == 24 and store.active_model() is None
    monkeypatch.setattr(Store, "save_model", original)
    code, output = invoke("index", corpus, "--db", db, "--epochs", FAST_EPOCHS)
    assert code == 0, output
    assert "0 added" in output and "24 unchanged" in output and "trained the hashing model" in output
    assert len(patch_encoder.encoded) == 24  # the rerun embedded nothing again


def test_disk_full_while_writing_the_faiss_file(
    tmp_path: Path, corpus: Path, patch_encoder: FakeEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "s.db"
    real_open = open

    class FullFile(io.BytesIO):
        def write(self, data: object) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    def open_on_a_full_disk(file: str | Path, mode: str = "r", *args: Any, **kwargs: Any) -> IO[Any]:  # noqa: ANN401  (open()'s arguments, passed through)
        if ".faiss." in str(file) and str(file).endswith(".tmp") and "w" in mode:
            return FullFile()
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("semhash.caches.files.open", open_on_a_full_disk, raising=False)
    code, output = invoke("index", corpus, "--db", db, "--epochs", FAST_EPOCHS)
    assert code == 1
    line = _error_line(output)
    assert "disk is full" in line and "writing the faiss index" in line and "rerun the same command" in line
    assert not list(tmp_path.glob("*.tmp"))
    with Store.open(db) as store:
        assert store.count(encoded_only=True) == 24  # the database is complete
    monkeypatch.undo()
    monkeypatch.setattr("semhash.embed.load_encoder", lambda *a, **k: patch_encoder)
    code, output = invoke("index", corpus, "--db", db)
    assert code == 0 and "24 unchanged" in output
    assert faiss_path_for(db).exists()
    # a command that only reads serves the index from memory when the cache cannot be written
    faiss_path_for(db).unlink()
    monkeypatch.setattr("semhash.caches.files.open", open_on_a_full_disk, raising=False)
    code, output = invoke("query", "telescope galaxy", "--db", db, "-k", 3, "--json")
    assert code == 0 and len(output.splitlines()) == 3


# -- 4. a corrupt model blob ---------------------------------------------------------------------------
class _NotATensor:
    pass


def _pickled_object() -> bytes:
    buffer = io.BytesIO()
    torch.save({"config": "{}", "payload": _NotATensor()}, buffer)
    return buffer.getvalue()


def test_a_corrupt_model_blob_is_one_line_that_names_semhash_train(
    tmp_path: Path, corpus: Path, patch_encoder: FakeEncoder
) -> None:
    db = tmp_path / "s.db"
    assert invoke("index", corpus, "--db", db, "--epochs", FAST_EPOCHS)[0] == 0
    (corpus / "space" / "extra.txt").write_text("a new comet was seen near the moon")
    commands = [["query", "telescope"], ["index", corpus], ["dedup", corpus / "space", "--against"]]
    blobs = {"garbage": b"garbage", "empty": b"", "truncated zip": b"PK\x03\x04" + b"\x00" * 100}
    blobs["pickled object"] = _pickled_object()  # torch's own error here suggests weights_only=False
    for name, blob in blobs.items():
        conn = sqlite3.connect(db)
        conn.execute("UPDATE models SET weights = ?", [blob])
        conn.commit()
        conn.close()
        for args in commands if name == "garbage" else commands[:1]:
            code, output = invoke(*args, "--db", db)
            assert code == 1, (name, args, output)
            line = _error_line(output)
            assert "hashing model stored in the index is unreadable" in line and "semhash train" in line, name
            assert "weights_only" not in output
    code, output = invoke("train", "--db", db, "--epochs", FAST_EPOCHS)
    assert code == 0, output
    assert invoke("query", "telescope", "--db", db)[0] == 0


def test_an_oversized_model_blob_is_refused_before_loading(
    tmp_path: Path, corpus: Path, patch_encoder: FakeEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "s.db"
    assert invoke("index", corpus, "--db", db, "--epochs", FAST_EPOCHS)[0] == 0
    monkeypatch.setattr("semhash.store.store.MAX_MODEL_BYTES", 1000)
    code, output = invoke("query", "telescope", "--db", db)
    assert code == 1 and "unreadable" in _error_line(output) and "semhash train" in output


def test_a_model_with_an_absurd_shape_is_refused_before_allocation(tmp_path: Path) -> None:
    from semhash.errors import CorruptModelError
    from semhash.model import model_from_bytes

    buffer = io.BytesIO()
    config = {"input_dim": 10**9, "bits": 32, "hidden": 512, "dropout": 0.1, "lexical_dim": 0}
    torch.save({"config": json.dumps(config), "state": {}}, buffer)
    with pytest.raises(CorruptModelError, match="input_dim"):
        model_from_bytes(buffer.getvalue())


def test_a_damaged_embedding_is_embedded_again_by_index(
    tmp_path: Path, corpus: Path, patch_encoder: FakeEncoder
) -> None:
    db = tmp_path / "s.db"
    assert invoke("index", corpus, "--db", db, "--epochs", FAST_EPOCHS)[0] == 0
    conn = sqlite3.connect(db)
    conn.execute("UPDATE documents SET embedding = x'0000' WHERE id = 3")
    conn.commit()
    conn.close()
    # `index` left a rerank cache of the good vectors, stamped with a state this raw edit does not move;
    # without it the query reads the rows and meets the damage.
    for cache in tmp_path.glob("s.db.vectors*"):
        cache.unlink()
    code, output = invoke("query", "telescope", "--db", db)
    assert code == 1 and "damaged" in _error_line(output) and "semhash index" in output
    code, output = invoke("index", corpus, "--db", db)
    assert code == 0 and "1 updated" in output
    assert invoke("query", "telescope", "--db", db)[0] == 0


def test_a_damaged_meta_value_is_one_line(tmp_path: Path, corpus: Path, patch_encoder: FakeEncoder) -> None:
    db = tmp_path / "s.db"
    assert invoke("index", corpus, "--db", db, "--epochs", FAST_EPOCHS)[0] == 0
    conn = sqlite3.connect(db)
    conn.execute("UPDATE meta SET value = 'many' WHERE key = 'generation'")
    conn.commit()
    conn.close()
    code, output = invoke("query", "telescope", "--db", db)
    assert code == 1 and "meta 'generation'" in _error_line(output)
