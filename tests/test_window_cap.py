"""The window cap (``index --max-windows``) is recorded in the index and kept by every later embedding."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from semhash.cli import app
from semhash.codec import Codec
from semhash.config import DEFAULT_MAX_WINDOWS
from semhash.errors import UsageError
from semhash.ingest import IndexOptions, index_paths
from semhash.ingest.run import window_cap
from semhash.store import Store
from tests.support import FAST_EPOCHS, FakeEncoder

DOCS = {
    "a.txt": "The quick brown fox jumps over the lazy dog.",
    "b.txt": "A slow green turtle crosses the busy road.",
    "c.txt": "Pasta is cooked in salted boiling water.",
}


def write_corpus(folder: Path, docs: dict[str, str]) -> Path:
    folder.mkdir(parents=True)
    for name, text in docs.items():
        (folder / name).write_text(text)
    return folder


def _index(db: Path, folder: Path, max_windows: int | None = None) -> None:
    options = IndexOptions(max_windows=max_windows, epochs=FAST_EPOCHS, runtime_export=False)
    index_paths(db, [folder], options, encoder=FakeEncoder())


def _recorded(db: Path) -> int | None:
    with Store.open(db) as store:
        return store.max_windows


def test_a_new_index_records_the_default_cap(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "docs", DOCS)
    _index(tmp_path / "i.db", folder)
    assert _recorded(tmp_path / "i.db") == DEFAULT_MAX_WINDOWS == 64


def test_an_explicit_cap_is_recorded_and_kept_by_later_runs(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "docs", DOCS)
    db = tmp_path / "i.db"
    _index(db, folder, max_windows=0)
    assert _recorded(db) == 0
    (folder / "d.txt").write_text("Another document about turtles and roads.")
    _index(db, folder)  # no --max-windows: the recorded 0, not the default
    assert _recorded(db) == 0
    with Store.open(db) as store:
        assert window_cap(store, None) == 0
        assert window_cap(store, 0) == 0


def test_another_cap_on_an_index_with_documents_is_refused(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "docs", DOCS)
    db = tmp_path / "i.db"
    _index(db, folder, max_windows=16)
    (folder / "d.txt").write_text("Another document about turtles and roads.")
    with pytest.raises(UsageError, match=r"at most 16 windows .* --max-windows 8 would mix"):
        _index(db, folder, max_windows=8)
    with Store.open(db) as store:
        assert store.count() == 3  # refused before any work


def test_an_index_from_before_the_record_keeps_embedding_whole_documents(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "docs", DOCS)
    db = tmp_path / "i.db"
    _index(db, folder)
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM meta WHERE key = 'max_windows'")
    with Store.open(db) as store:
        assert store.max_windows is None
        assert window_cap(store, None) == 0  # the old default
        assert window_cap(store, 32) == 32  # unknown before: what the user says now is taken and recorded


def test_an_empty_or_missing_index_takes_what_is_asked() -> None:
    assert window_cap(None, None) == DEFAULT_MAX_WINDOWS
    assert window_cap(None, 0) == 0
    assert window_cap(None, 5) == 5


def test_a_negative_cap_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--max-windows must be 0"):
        IndexOptions(max_windows=-1)


def test_a_damaged_record_is_a_corrupt_database(tmp_path: Path) -> None:
    from semhash.errors import CorruptDatabaseError

    folder = write_corpus(tmp_path / "docs", DOCS)
    db = tmp_path / "i.db"
    _index(db, folder)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE meta SET value = '-3' WHERE key = 'max_windows'")
    with Store.open(db) as store, pytest.raises(CorruptDatabaseError, match="max_windows"):
        _ = store.max_windows


def test_the_codec_embeds_long_texts_with_the_recorded_cap(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "docs", DOCS)
    db = tmp_path / "i.db"
    _index(db, folder, max_windows=12)
    with Store.open(db) as store:
        assert Codec.from_store(store, "torch", encoder=FakeEncoder()).max_windows == 12
        assert Codec.from_store(store, "torch", encoder=FakeEncoder(), max_windows=3).max_windows == 3


def test_the_cli_refuses_another_cap_in_one_line_with_exit_2(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "docs", DOCS)
    db = tmp_path / "i.db"
    _index(db, folder, max_windows=16)
    result = CliRunner().invoke(app, ["index", str(folder), "--db", str(db), "--max-windows", "8"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "at most 16 windows" in lines[0], result.output


def test_info_shows_the_cap(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "docs", DOCS)
    db = tmp_path / "i.db"
    _index(db, folder, max_windows=0)
    result = CliRunner().invoke(app, ["info", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    assert '"max_windows": 0' in result.output
    result = CliRunner().invoke(app, ["info", "--db", str(db)])
    assert "every window" in result.output
