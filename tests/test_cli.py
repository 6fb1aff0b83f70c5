"""Every command through typer's CliRunner: happy paths, error paths, exit codes and messages."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from support import FAST_EPOCHS, FakeEncoder
from typer.testing import CliRunner

from semhash.cli import app

runner = CliRunner()


def invoke(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


@pytest.fixture
def indexed_db(tmp_path: Path, corpus: Path, patch_encoder: FakeEncoder) -> Path:
    path = tmp_path / "s.db"
    code, output = invoke("index", corpus, "--db", path, "--epochs", FAST_EPOCHS, "--device", "cpu")
    assert code == 0, output
    return path


def test_index_prints_a_summary(tmp_path: Path, corpus: Path, patch_encoder: FakeEncoder) -> None:
    (corpus / "bin.txt").write_bytes(b"\x00\x00")
    code, output = invoke("index", corpus, "--db", tmp_path / "s.db", "--epochs", 2, "-v")
    assert code == 0, output
    assert "24 added, 0 updated, 0 removed, 0 unchanged; 24 documents" in output
    assert "trained the hashing model" in output
    assert "skipped 1 file (1 binary)" in output and "bin.txt: binary file" in output
    code, output = invoke("index", corpus, "--db", tmp_path / "s.db", "--json")
    assert code == 0
    report = json.loads(output)
    assert report["unchanged"] == 24 and report["added"] == 0


def test_db_from_environment(tmp_path: Path, corpus: Path, patch_encoder: FakeEncoder) -> None:
    target = tmp_path / "env.db"
    result = runner.invoke(app, ["index", str(corpus), "--epochs", "2"], env={"SEMHASH_DB": str(target)})
    assert result.exit_code == 0, result.output
    assert target.exists()


def test_query_table_and_json(indexed_db: Path) -> None:
    code, output = invoke("query", "telescope galaxy", "--db", indexed_db, "-k", 3)
    assert code == 0, output
    assert "space" in output and "cosine" in output
    code, output = invoke("query", "telescope galaxy", "--db", indexed_db, "-k", 3, "--json", "--no-rerank")
    rows = [json.loads(line) for line in output.splitlines()]
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert all(len(r["code"]) == 8 for r in rows)
    assert [(r["distance"], r["id"]) for r in rows] == sorted((r["distance"], r["id"]) for r in rows)


def test_query_radius_and_file(indexed_db: Path, tmp_path: Path) -> None:
    code, output = invoke("query", "oven", "--db", indexed_db, "--radius", 32, "--json")
    assert code == 0 and len(output.splitlines()) == 24
    q = tmp_path / "q.txt"
    q.write_text("bicycle chain gear")
    code, output = invoke("query", "--file", q, "--db", indexed_db, "--json", "-k", 2)
    assert code == 0 and all("/bikes/" in json.loads(line)["path"] for line in output.splitlines())


def test_similar_and_info_and_train(indexed_db: Path, corpus: Path) -> None:
    code, output = invoke("similar", corpus / "bikes" / "bikes-1.txt", "--db", indexed_db, "--json", "-k", 3)
    assert code == 0, output
    assert len(output.splitlines()) == 3
    code, output = invoke("info", "--db", indexed_db)
    assert code == 0 and "24 (24 encoded)" in output and "32 bits" in output and "fresh" in output
    info = json.loads(invoke("info", "--db", indexed_db, "--json")[1])
    assert info["documents"] == 24 and len(info["bit_usage"]) == 32
    assert info["lexical_dim"] >= 2 and info["lexical_terms"] > info["lexical_dim"]
    assert f"embedding + {info['lexical_dim']}-d lexical vector" in output
    code, output = invoke("train", "--db", indexed_db, "--bits", 16, "--epochs", 2)
    assert code == 0 and "encoded 24" in output
    assert json.loads(invoke("info", "--db", indexed_db, "--json")[1])["bits"] == 16
    code, output = invoke("train", "--db", indexed_db, "--epochs", 2, "--lexical-weight", 0)
    assert code == 0, output
    code, output = invoke("info", "--db", indexed_db)
    assert (
        "embedding only" in output and json.loads(invoke("info", "--db", indexed_db, "--json")[1])["lexical_dim"] == 0
    )
    code, output = invoke("train", "--db", indexed_db, "--lexical-weight", -1)
    assert code == 2 and "lexical-weight" in output


@pytest.mark.parametrize(
    ("args", "exit_code", "message"),
    [
        (["index", "/no/such/dir"], 1, "no such file or folder"),
        (["index", "{corpus}", "--bits", "12"], 2, "multiple of 8"),
        (["query", "x"], 1, "run `semhash index DIR` first"),
        (["query"], 2, "give a query text or --file"),
        (["info"], 1, "no index at"),
        (["similar", "x.txt"], 1, "no index at"),
        (["train"], 1, "no index at"),
        (["index", "{corpus}", "--device", "tpu"], 2, "--device must be one of"),
    ],
)
def test_error_paths_are_one_line(
    tmp_path: Path, corpus: Path, patch_encoder: FakeEncoder, args: list[str], exit_code: int, message: str
) -> None:
    args = [a.replace("{corpus}", str(corpus)) for a in args] + ["--db", str(tmp_path / "none.db")]
    code, output = invoke(*args)
    assert code == exit_code, output
    assert message in output
    assert "Traceback" not in output


def test_errors_on_an_existing_index(indexed_db: Path, corpus: Path, tmp_path: Path) -> None:
    code, output = invoke("index", corpus, "--db", indexed_db, "--model", "some-other-model")
    assert code == 1 and "was built with model 'fake-bow'" in output
    code, output = invoke("query", "x", "--db", indexed_db, "--radius", 33)
    assert code == 2 and "--radius must be between 0 and 32" in output
    code, output = invoke("similar", tmp_path / "unindexed.txt", "--db", indexed_db)
    assert code == 1 and "not in the index" in output
    empty = tmp_path / "empty"
    empty.mkdir()
    code, output = invoke("index", empty, "--db", tmp_path / "fresh.db")
    assert code == 1 and "no documents found" in output


def test_corrupt_faiss_file_and_newer_schema(indexed_db: Path, corpus: Path) -> None:
    Path(f"{indexed_db}.faiss").write_bytes(b"garbage")
    code, output = invoke("query", "oven", "--db", indexed_db)
    assert code == 0, output  # a query never reads the faiss file
    assert invoke("query", "oven", "--db", indexed_db, "--no-rerank")[0] == 0  # nor does faiss's own ranking
    assert invoke("info", "--db", indexed_db)[1].count("fresh)") == 0  # the checksum tells it is not the file written
    code, output = invoke("index", corpus, "--db", indexed_db)
    assert code == 0, output
    assert invoke("info", "--db", indexed_db)[1].count("fresh)") == 1  # rebuilt by the next index
    conn = sqlite3.connect(indexed_db)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    code, output = invoke("info", "--db", indexed_db)
    assert code == 1 and "newer than this semhash reads" in output


@pytest.mark.process
def test_locked_database(indexed_db: Path, corpus: Path) -> None:
    (corpus / "space" / "extra.txt").write_text("a new comet was seen")
    holder = sqlite3.connect(indexed_db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        code, output = invoke("index", corpus, "--db", indexed_db)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert code == 1 and "locked by another process" in output


def test_interrupted_index_exits_130_and_resumes(tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flaky = FakeEncoder(fail_after=2)
    monkeypatch.setattr("semhash.embed.load_encoder", lambda *a, **k: flaky)
    db = tmp_path / "s.db"
    code, output = invoke("index", corpus, "--db", db, "--batch", 5, "--epochs", 2)
    assert code == 130 and "rerun the same command to resume" in output
    fresh = FakeEncoder()
    monkeypatch.setattr("semhash.embed.load_encoder", lambda *a, **k: fresh)
    code, output = invoke("index", corpus, "--db", db, "--batch", 5, "--epochs", 2)
    assert code == 0 and "14 added" in output and "10 unchanged" in output
    assert len(fresh.encoded) == 14


def test_help_is_fast_and_imports_no_torch() -> None:
    probe = (
        "import sys; from semhash.cli import app; "
        "print(sorted(m for m in ('torch', 'numpy', 'faiss') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
    result = subprocess.run([sys.executable, "-m", "semhash.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "index" in result.stdout and "query" in result.stdout


def test_every_command_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for command in app.registered_commands:
        name = command.name or command.callback.__name__  # type: ignore[union-attr]
        assert f"semhash {name}" in readme, f"`semhash {name}` is missing from README.md"


def test_query_on_an_index_emptied_by_a_rerun(tmp_path: Path, patch_encoder: FakeEncoder) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("a short note")
    db = tmp_path / "s.db"
    assert invoke("index", folder, "--db", db, "--epochs", 2)[0] == 0
    (folder / "a.txt").unlink()
    code, output = invoke("index", folder, "--db", db)
    assert code == 0 and "1 removed" in output and "0 documents in the index" in output
    code, output = invoke("query", "note", "--db", db)
    assert code == 1 and "holds no document yet" in output


def test_outliers_ranks_the_odd_document_first(tmp_path: Path, corpus: Path, patch_encoder: FakeEncoder) -> None:
    (corpus / "odd.txt").write_text("quarterly tax filing deadline invoice accountant spreadsheet audit")
    db = tmp_path / "s.db"
    assert invoke("index", corpus, "--db", db, "--epochs", 30)[0] == 0
    code, output = invoke("outliers", "--db", db, "--json", "-k", 3)
    assert code == 0, output
    rows = [json.loads(line) for line in output.splitlines()]
    assert rows[0]["path"].endswith("odd.txt")
    assert rows[0]["recon_error"] >= rows[1]["recon_error"] >= rows[2]["recon_error"]
    code, output = invoke("outliers", "--db", db, "--min-z", 1000)
    assert code == 0
    assert invoke("outliers", "--db", tmp_path / "none.db")[0] == 1


def test_verbose_lists_the_skipped_files_when_every_file_was_skipped(
    tmp_path: Path, patch_encoder: FakeEncoder
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "bin.txt").write_bytes(b"\x00\x01\x02")
    (folder / "bad.json").write_text("{not json")
    code, output = invoke("index", folder, "--db", tmp_path / "s.db", "--verbose")
    assert code == 1 and "error: no documents found" in output
    assert "bin.txt: binary file" in output and "bad.json: " in output
    code, output = invoke("index", folder, "--db", tmp_path / "s.db")
    assert code == 1 and "--verbose lists them" in output and "bin.txt" not in output
    assert not (tmp_path / "s.db").exists()


def test_a_moved_folder_is_pointed_out_then_pruned(tmp_path: Path, corpus: Path, patch_encoder: FakeEncoder) -> None:
    db = tmp_path / "s.db"
    assert invoke("index", corpus, "--db", db, "--epochs", FAST_EPOCHS)[0] == 0
    moved = corpus.rename(tmp_path / "corpus2")
    code, output = invoke("index", moved, "--db", db)
    assert code == 0, output
    assert "24 added" in output and "48 documents in the index" in output
    assert "24 new documents have the same content as documents under other paths" in output
    assert "run `semhash index --prune`" in output
    code, output = invoke("index", "--prune", "--db", db)
    assert code == 0, output
    assert "24 removed" in output and "24 documents in the index" in output
    info = json.loads(invoke("info", "--db", db, "--json")[1])
    assert info["documents"] == 24 and info["index_fresh"]
    code, output = invoke("query", "telescope galaxy", "--db", db, "--json", "--radius", 32)
    assert code == 0 and all(json.loads(line)["path"].startswith(str(moved)) for line in output.splitlines())
    assert len(output.splitlines()) == 24
    code, output = invoke("index", "--db", db)
    assert code == 2 and "--prune" in output


def test_index_prune_with_paths_and_no_hint_for_copies(
    tmp_path: Path, corpus: Path, patch_encoder: FakeEncoder
) -> None:
    db = tmp_path / "s.db"
    other = tmp_path / "other"
    other.mkdir()
    (other / "gone.txt").write_text("a note about a comet")
    assert invoke("index", corpus, other, "--db", db, "--epochs", FAST_EPOCHS)[0] == 0
    (other / "gone.txt").unlink()
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "space-0.txt").write_text((corpus / "space" / "space-0.txt").read_text())  # a copy: its original stays
    code, output = invoke("index", copy, "--db", db)
    assert code == 0 and "1 added" in output and "same content" not in output
    code, output = invoke("index", copy, "--db", db, "--prune")
    assert code == 0 and "1 removed" in output and "25 documents in the index" in output


def test_remove_files_and_folders_gone_or_not(tmp_path: Path, corpus: Path, patch_encoder: FakeEncoder) -> None:
    db = tmp_path / "s.db"
    assert invoke("index", corpus, "--db", db, "--epochs", FAST_EPOCHS)[0] == 0
    gone = corpus / "food" / "food-1.txt"
    gone.unlink()
    code, output = invoke("remove", corpus / "bikes", gone, "--db", db)
    assert code == 0, output
    assert "bikes: 8 documents removed" in output and "food-1.txt: 1 documents removed" in output
    assert "15 documents left" in output
    assert (corpus / "bikes" / "bikes-1.txt").exists()  # the files themselves are untouched
    code, output = invoke("query", "bicycle chain", "--db", db, "--json", "--radius", 32)
    paths = [json.loads(line)["path"] for line in output.splitlines()]
    assert len(paths) == 15 and not any("/bikes/" in p or p == str(gone) for p in paths)
    assert json.loads(invoke("info", "--db", db, "--json")[1])["index_fresh"]
    code, output = invoke("remove", tmp_path / "elsewhere", "--db", db)
    assert code == 1 and "no indexed document lies under" in output
    report = json.loads(invoke("remove", corpus / "space", "--db", db, "--json")[1])
    assert report["removed"] == 8 and report["total_documents"] == 7
    # a prefix of a folder's name is not that folder
    assert invoke("remove", str(corpus / "foo"), "--db", db)[0] == 1


def test_python_api_remove_and_prune(tmp_path: Path, corpus: Path, patch_encoder: FakeEncoder) -> None:
    from semhash import SemanticIndex

    index = SemanticIndex(tmp_path / "s.db", encoder=patch_encoder)
    index.index([corpus], epochs=FAST_EPOCHS)
    (corpus / "space" / "space-2.txt").unlink()
    assert index.prune().removed == 1
    report = index.remove([corpus / "food"])
    assert report.removed == 8 and report.total_documents == 15
    assert index.info().documents == 15 and index.info().index_fresh


def _main(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str]:
    """``semhash ARGS`` through the real entry point (typer's CliRunner keeps click's own usage box)."""
    from semhash.cli import main

    monkeypatch.setattr(sys, "argv", ["semhash", *args])
    # An earlier test's successful `query` marks the process read-only-done, and main() would then end it
    # with os._exit (see its docstring): these commands fail before doing anything, so start clean.
    monkeypatch.setattr("semhash.cli.exits._read_only_done", False)
    with pytest.raises(SystemExit) as exit_info:
        main()
    return int(exit_info.value.code or 0), capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["query", "--foo", "x"], "No such option: --foo"),
        (["bogus"], "No such command 'bogus'"),
        (["dedup", "--radius", "three"], "Invalid value for '--radius'"),
        (["similar"], "Missing argument"),
        (["runtime", "frobnicate"], "No such command 'frobnicate'"),
    ],
)
def test_usage_errors_are_one_line_with_the_help_hint(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, args: list[str], words: str
) -> None:
    """Issue 18: click's three-line box (Usage / Try / Error) broke the README's promise of one ``error:`` line."""
    code, stderr = _main(capsys, monkeypatch, *args)
    assert code == 2
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and words in lines[0] and "--help" in lines[0]


def _float_options() -> list[tuple[str, str]]:
    """Every (command path, option) of the CLI whose value is a float, read from the command functions."""
    import inspect
    import typing

    import typer

    found = []

    def walk(group: typer.Typer, path: list[str]) -> None:
        for info in group.registered_commands:
            assert info.callback is not None
            hints = typing.get_type_hints(inspect.unwrap(info.callback))
            name = info.name or info.callback.__name__
            for param in inspect.signature(info.callback).parameters.values():
                decls = getattr(param.default, "param_decls", None) or ()
                if float in typing.get_args(hints[param.name]) or hints[param.name] is float:
                    found.append((" ".join([*path, name]), max(decls, key=len)))
        for sub in group.registered_groups:
            assert sub.typer_instance is not None
            walk(sub.typer_instance, [*path, sub.name or ""])

    walk(app, [])
    return found


def test_every_float_option_is_found() -> None:
    options = dict(_float_options())
    assert {"dedup", "outliers", "index", "train"} <= set(options)


@pytest.mark.parametrize(("command", "option"), _float_options())
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_float_options_refuse_nan_and_infinities(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, command: str, option: str, value: str
) -> None:
    """Issue 18: ``outliers --min-z nan`` was accepted (NaN fails every comparison, so every check passed)."""
    code, stderr = _main(capsys, monkeypatch, *command.split(), f"{option}={value}", "--db", "/nonexistent/x.db")
    assert code == 2, stderr
    assert stderr.startswith("error: Invalid value for") and option in stderr, stderr
