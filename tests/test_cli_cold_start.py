"""The CLI's start and end.

Rich on first use, a quick-start encoder for `query`, and no teardown after a read-only command (the process ends
with os._exit once its output is flushed), exit codes unchanged.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support import FAST_EPOCHS, FakeEncoder
from typer.testing import CliRunner

from semhash.cli import app
from semhash.errors import IndexMissingError
from semhash.ingest import IndexOptions, index_paths

# The child registers an atexit handler: it runs when the interpreter tears down, not after os._exit.
CHILD = """
import atexit, sys
atexit.register(lambda: print("TEARDOWN", file=sys.stderr))
from semhash.cli import main
sys.argv = ["semhash", *sys.argv[1:]]
main()
"""


def _semhash(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def indexed(tmp_path: Path, corpus: Path) -> tuple[Path, Path]:
    db = tmp_path / "fake.db"
    index_paths(db, [corpus], IndexOptions(epochs=FAST_EPOCHS, device="cpu"), encoder=FakeEncoder())
    return db, next(p for p in sorted(corpus.rglob("*.txt")))


def test_importing_the_cli_imports_no_rich() -> None:
    probe = "import sys; import semhash.cli; print(sorted(m for m in sys.modules if m.split('.')[0] == 'rich'))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_a_read_only_command_skips_the_teardown_with_the_same_output(indexed: tuple[Path, Path]) -> None:
    db, doc = indexed
    args = ["similar", str(doc), "--db", str(db), "-k", "3"]
    for extra in (["--json"], []):  # JSON lines, and the rich table
        child = _semhash(*args, *extra)
        assert child.returncode == 0, child.stderr
        assert "TEARDOWN" not in child.stderr  # ended by os._exit ...
        expected = CliRunner().invoke(app, [*args, *extra], terminal_width=80)
        assert expected.exit_code == 0
        if extra:  # ... after every line reached the pipe
            assert child.stdout == expected.stdout and len(child.stdout.splitlines()) == 3
            assert all(json.loads(line)["path"] for line in child.stdout.splitlines())
        else:
            assert str(doc.parent.name) in child.stdout and "cosine" in child.stdout


def test_failures_and_writing_commands_exit_the_ordinary_way(indexed: tuple[Path, Path], tmp_path: Path) -> None:
    db, _ = indexed
    missing = _semhash("similar", str(tmp_path / "absent.txt"), "--db", str(db))
    assert missing.returncode == 1 and "TEARDOWN" in missing.stderr
    assert missing.stderr.splitlines()[0].startswith("error: ") and "Traceback" not in missing.stderr
    usage = _semhash("query", "--db", str(db))  # neither a text nor --file
    assert usage.returncode == 2 and "TEARDOWN" in usage.stderr
    info = _semhash("info", "--db", str(db), "--json")
    assert info.returncode == 0 and "TEARDOWN" in info.stderr and json.loads(info.stdout)


def test_query_starts_its_searcher_for_one_query(indexed: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import semhash.search

    seen: list[bool] = []

    class Recording(semhash.search.Searcher):
        def __init__(self, *args: object, quick_start: bool = False, **kwargs: object) -> None:
            seen.append(quick_start)
            raise IndexMissingError("stop here")

    monkeypatch.setattr(semhash.search, "Searcher", Recording)
    db, doc = indexed
    assert CliRunner().invoke(app, ["query", "some text", "--db", str(db)]).exit_code == 1
    assert CliRunner().invoke(app, ["similar", str(doc), "--db", str(db)]).exit_code == 1
    assert seen == [True, False]  # `similar` embeds nothing: no encoder to start


def test_opening_the_store_loads_no_sqlite_utils_plugins(indexed: tuple[Path, Path]) -> None:
    db, _ = indexed
    probe = (
        "import sys; from semhash.store import Store; import sqlite_utils.plugins as plugins\n"
        f"Store.open({str(db)!r}).close()\n"
        "print(plugins._plugins_loaded, 'importlib.metadata' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]  # no entry-point scan of every installed package
