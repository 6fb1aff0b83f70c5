"""Issue 18: the exported runtime is the one the index sealed, and ``runtime info`` verifies what it claims.

The real model on the sample corpus (its encoder export is cached for the session), real ONNX files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import BinaryIO

import pytest
from typer.testing import CliRunner

from semhash.cli import app
from semhash.codec import Codec
from semhash.runtime import runtime_folder
from semhash.runtime.manifest import ENCODER_FILE, MANIFEST, OPTIMIZED_WEIGHTS, file_entry
from semhash.runtime.stamp import write_stamps
from semhash.store import Store

SAMPLE = Path(__file__).parent.parent / "data" / "sample"
QUERY = "how do I fix a flat tyre on my bike"

pytestmark = pytest.mark.slow
runner = CliRunner()


def invoke(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def sealed_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample corpus indexed with the real model; indexing exports (and seals) the runtime beside it."""
    db = tmp_path_factory.mktemp("sealed") / "sample.db"
    code, output = invoke("index", SAMPLE, "--db", db, "--device", "cpu", "--epochs", "5")
    assert code == 0 and "warning" not in output, output
    return db


@pytest.fixture
def index_copy(sealed_index: Path, tmp_path: Path) -> Path:
    """A copy of the index with a copy of its runtime folder (new inodes: the seal's stats no longer hold)."""
    db = tmp_path / "sample.db"
    shutil.copy(sealed_index, db)
    shutil.copytree(runtime_folder(sealed_index), runtime_folder(db))
    return db


def _info(db: Path) -> dict:
    code, output = invoke("runtime", "info", "--db", db, "--json")
    assert code == 0, output
    return json.loads(output)


def _hash_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    from semhash.runtime import manifest as manifest_module

    calls: list[str] = []
    file_digest = manifest_module.hashlib.file_digest

    def counting(handle: BinaryIO, digest: str) -> hashlib._Hash:
        calls.append(Path(handle.name).name)
        return file_digest(handle, digest)

    monkeypatch.setattr(manifest_module.hashlib, "file_digest", counting)
    return calls


def _forge(folder: Path, name: str) -> None:
    """What someone who may write the folder can do.

    Alter a file's weights, then re-stamp the manifest (and the folder's own ``verified.json``) to match, so that
    the folder checks out against itself.
    """
    target = folder / name
    data = bytearray(target.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4096] = bytes(4096)  # a block of weights zeroed: still a loadable model
    target.unlink()
    target.write_bytes(bytes(data))
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"][name] = file_entry(target)
    (folder / MANIFEST).unlink()
    (folder / MANIFEST).write_text(json.dumps(manifest))
    write_stamps(folder, {name: (manifest["files"][name]["sha256"], target.stat())})


def test_a_sealed_runtime_is_used_and_not_hashed_again_while_its_stats_hold(
    index_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _hash_calls(monkeypatch)
    with Store.open(index_copy) as store:
        # Copied files: new inodes, so each is hashed once against the sealed manifest, and the seal renewed.
        assert Codec.from_store(store).runtime == "onnx"
        assert ENCODER_FILE in calls and OPTIMIZED_WEIGHTS in calls
        calls.clear()
        codec = Codec.from_store(store)
        codec.encoder  # noqa: B018  (loads the ONNX session: every file checked again)
        assert codec.runtime == "onnx" and calls == []  # one stat per file, no hash
    assert _info(index_copy)["fresh"] is True


@pytest.mark.parametrize("name", [OPTIMIZED_WEIGHTS, ENCODER_FILE])
def test_a_forged_runtime_with_a_restamped_manifest_is_not_served(index_copy: Path, name: str) -> None:
    folder = runtime_folder(index_copy)
    _forge(folder, name)
    forged = file_entry(folder / name)["sha256"]
    with Store.open(index_copy) as store:
        codec = Codec.from_store(store)
        assert codec.runtime == "torch"  # the torch path, not the forged encoder
        assert codec.note is not None and "semhash runtime build" in codec.note
    info = _info(index_copy)
    assert info["fresh"] is False and "manifest.json" in info["reason"] and "altered" in info["reason"]
    code, output = invoke("query", QUERY, "--db", index_copy, "--runtime", "onnx")
    assert code == 1 and "Traceback" not in output and "semhash runtime build" in output, output
    # `runtime build` does not bless the forged files: it exports the encoder again and seals that.
    code, output = invoke("runtime", "build", "--db", index_copy)
    assert code == 0, output
    assert _info(index_copy)["fresh"] is True
    assert file_entry(folder / name)["sha256"] != forged
    with Store.open(index_copy) as store:
        assert Codec.from_store(store).runtime == "onnx"


def test_a_truncated_weights_file_is_not_fresh_in_runtime_info_nor_used(index_copy: Path) -> None:
    folder = runtime_folder(index_copy)
    assert _info(index_copy)["fresh"] is True  # and the seal now vouches for these very files
    target = folder / OPTIMIZED_WEIGHTS
    with target.open("r+b") as handle:  # in place, the manifest unchanged
        handle.truncate(target.stat().st_size // 2)
    info = _info(index_copy)
    assert info["fresh"] is False and OPTIMIZED_WEIGHTS in info["reason"], info
    code, output = invoke("runtime", "info", "--db", index_copy)
    assert code == 0 and "fresh: queries use it" not in output and OPTIMIZED_WEIGHTS in output, output
    with Store.open(index_copy) as store:
        codec = Codec.from_store(store)
        assert codec.runtime == "torch" and codec.note is not None and OPTIMIZED_WEIGHTS in codec.note
    code, output = invoke("query", QUERY, "--db", index_copy, "--runtime", "onnx")
    assert code == 1 and "Traceback" not in output and OPTIMIZED_WEIGHTS in output, output


def test_a_fifo_as_the_weights_is_refused_in_one_line(index_copy: Path) -> None:
    target = runtime_folder(index_copy) / OPTIMIZED_WEIGHTS
    target.unlink()
    os.mkfifo(target)
    info = _info(index_copy)
    assert info["fresh"] is False and "not a regular file" in info["reason"], info
    code, output = invoke("query", QUERY, "--db", index_copy, "--json", "-k", "3")  # auto: torch, no hang
    assert code == 0, output


def test_a_runtime_folder_without_a_seal_is_not_used(index_copy: Path) -> None:
    """A folder exported by an older semhash (or copied in from another index) carries no seal of this index."""
    with Store.open(index_copy, write=True) as store, store.transaction():
        store.db.execute("DELETE FROM meta WHERE key = 'runtime_seal'")
    info = _info(index_copy)
    assert info["fresh"] is False and "not one this index recorded" in info["reason"]
    assert invoke("runtime", "build", "--db", index_copy)[0] == 0
    assert _info(index_copy)["fresh"] is True
