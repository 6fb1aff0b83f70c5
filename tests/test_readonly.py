"""A database that cannot be written: the commands that write say so in one line, the others still work.

The tests run as root, and root ignores file permissions, so the commands run in a child process that
drops to the unprivileged ``nobody`` user (65534) first; as another user, plain permissions do the same.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import FAST_EPOCHS, FakeEncoder, write_corpus
from typer.testing import CliRunner

from semhash.cli import app

NOBODY = 65534
TESTS = Path(__file__).parent

# Runs CLI commands with the fake encoder; prints [[exit code, output], ...] as JSON.
# Everything is imported before dropping to `nobody`, who cannot read this interpreter's files under /root.
CHILD = """
import json, os, sys
sys.path.insert(0, {tests!r})
from support import FakeEncoder
import semhash.embed
encoder = FakeEncoder()
semhash.embed.load_encoder = lambda *a, **k: encoder
from typer.testing import CliRunner
from semhash.cli import app
import semhash.dedup, semhash.device, semhash.info, semhash.ingest, semhash.model, semhash.outliers
import semhash.search, semhash.train, urllib.parse, rich.progress, csv
import sqlite3
runner = CliRunner()
runner.invoke(app, ["--help"])
for db in sys.argv[2:]:  # load each stored model once, for the modules torch and numpy import on the way
    conn = sqlite3.connect("file:" + db + "?mode=ro&immutable=1", uri=True)
    semhash.model.model_from_bytes(conn.execute("SELECT weights FROM models WHERE weights IS NOT NULL").fetchone()[0])
    conn.close()
if os.geteuid() == 0:
    os.setgid({nobody}); os.setuid({nobody})
results = []
for args in json.loads(sys.argv[1]):
    result = runner.invoke(app, args)
    results.append([result.exit_code, result.output])
print(json.dumps(results))
"""


def _run_unprivileged(commands: list[list[str]], dbs: list[Path]) -> list[tuple[int, str]]:
    code = CHILD.format(tests=str(TESTS), nobody=NOBODY)
    result = subprocess.run(
        [sys.executable, "-c", code, json.dumps(commands), *map(str, dbs)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HOME": "/tmp"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [(c, out) for c, out in json.loads(result.stdout.splitlines()[-1])]


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder every user can reach (pytest's own tmp folders are private to root)."""
    if os.geteuid() != 0 and sys.platform != "linux":
        pytest.skip("needs Linux permissions")
    path = Path(tempfile.mkdtemp(prefix="semhash-ro-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for sub in path.rglob("*"):
            if sub.is_dir():
                sub.chmod(0o755)
        shutil.rmtree(path)


def _build(folder: Path, corpus: Path) -> Path:
    folder.mkdir()
    db = folder / "s.db"
    encoder = FakeEncoder()
    import semhash.embed

    before = semhash.embed.load_encoder
    semhash.embed.load_encoder = lambda *a, **k: encoder  # type: ignore[assignment]
    try:
        result = CliRunner().invoke(app, ["index", str(corpus), "--db", str(db), "--epochs", str(FAST_EPOCHS)])
    finally:
        semhash.embed.load_encoder = before  # type: ignore[assignment]
    assert result.exit_code == 0, result.output
    return db


def _readers(db: Path, corpus: Path) -> list[list[str]]:
    return [
        ["query", "telescope galaxy", "--db", str(db), "--json", "-k", "3"],
        ["similar", str(corpus / "bikes" / "bikes-1.txt"), "--db", str(db), "--json", "-k", "3"],
        ["info", "--db", str(db), "--json"],
        ["dedup", "--db", str(db), "--json"],
        ["outliers", "--db", str(db), "--json", "-k", "3"],
    ]


def _writers(db: Path, corpus: Path) -> list[list[str]]:
    return [
        ["index", str(corpus), "--db", str(db)],
        ["train", "--db", str(db), "--epochs", "1"],
        ["remove", str(corpus / "bikes"), "--db", str(db)],
    ]


def test_read_only_file_and_read_only_folder(shared_dir: Path) -> None:
    corpus = shared_dir / "corpus"
    write_corpus(corpus)
    file_db = _build(shared_dir / "file", corpus)
    folder_db = _build(shared_dir / "folder", corpus)
    (corpus / "space" / "new.txt").write_text("a new comet near the moon")  # so that `index` has work to write
    for path in corpus.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    # 1. the file is read-only, its folder is writable (WAL files and the faiss cache can be written there)
    file_db.parent.chmod(0o777)
    file_db.chmod(0o444)
    # 2. the folder is read-only (SQLite cannot create the WAL's -shm file), the file is writable;
    # without a faiss file, readers must rebuild the index in memory
    Path(f"{folder_db}.faiss").unlink()
    folder_db.chmod(0o666)
    folder_db.parent.chmod(0o555)
    commands = [*_writers(file_db, corpus), *_readers(file_db, corpus)]
    commands += [*_writers(folder_db, corpus), *_readers(folder_db, corpus)]
    results = _run_unprivileged(commands, [file_db, folder_db])
    for args, (code, output) in zip(commands, results, strict=True):
        where = "read-only folder" if str(folder_db) in args else "read-only"
        if args[0] in ("index", "train", "remove"):
            assert code == 1, (args, output)
            assert output.startswith("error: ") and len(output.strip().splitlines()) == 1, (args, output)
            assert where in output and "not a semhash database" not in output, (args, output)
            assert "query, similar, info, dedup and outliers still read it" in output
        else:
            assert code == 0, (args, output)
            assert output.strip(), args
    assert json.loads(results[3][1].splitlines()[0])["path"].startswith(str(corpus / "space"))
    assert not Path(f"{folder_db}.faiss").exists()  # nothing could be written there
    with sqlite3.connect(file_db) as conn:
        assert conn.execute("SELECT count(*) FROM documents").fetchone()[0] == 24  # untouched


def test_read_only_folder_beside_a_pending_write_ahead_log_is_a_clear_error(shared_dir: Path) -> None:
    corpus = shared_dir / "corpus"
    write_corpus(corpus, per_topic=2)
    db = _build(shared_dir / "folder", corpus)
    holder = sqlite3.connect(db, isolation_level=None)  # a writer that has not merged its log yet
    holder.execute("PRAGMA wal_autocheckpoint = 0")
    holder.execute("INSERT INTO meta (key, value) VALUES ('note', 'not merged yet')")
    try:
        assert Path(f"{db}-wal").stat().st_size > 0
        Path(f"{db}-shm").unlink()  # as after a crash on another machine: the log alone was copied
        db.parent.chmod(0o555)
        [(code, output)] = _run_unprivileged([["info", "--db", str(db)]], [])
    finally:
        db.parent.chmod(0o755)
        holder.close()
    assert code == 1 and "write-ahead log" in output and len(output.strip().splitlines()) == 1, output
