"""semhash.cli.fastpath: `semhash query`'s command line read without typer, exactly as typer reads it, or not at all."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer
import typer.main

from semhash.cli import app
from semhash.cli.fastpath import parse
from semhash.cli.query import query_command

READ = [
    ["hello"],
    ["hello world", "--json"],
    ["--json", "hello", "-k", "5"],
    ["hello", "-k5", "--db", "x.db"],
    ["hello", "--top=3", "--no-rerank"],
    ["hello", "--radius", "0", "--pool", "7", "--exact", "--device", "cpu", "--runtime", "onnx"],
    ["--file", "notes.txt", "--db=y.db", "--rerank"],
    ["-k", "+4", "hello"],
    ["hello", "--mode", "hybrid", "--no-collapse", "--passages"],
    ["--mode=keyword", '"a phrase" prefix*', "--collapse"],
]
LEFT_TO_TYPER = [
    ["hello", "-k", "0"],  # below min=1: typer's message
    ["hello", "-k", "x"],
    ["hello", "--radius", "-1"],
    ["--help"],
    ["hello", "-k", "1", "-k", "2"],  # repeated
    ["a", "b"],  # a second argument
    ["hello", "--", "x"],
    ["-x"],
    ["hello", "--json=1"],
    ["hello", "--db"],  # no value
    ["hello", "--db="],
    ["hello", "--unknown"],
]


def _typer_params(args: list[str]) -> dict:
    command = typer.main.get_command(app).commands["query"]  # type: ignore[attr-defined]
    return dict(command.make_context("query", list(args)).params)


@pytest.mark.parametrize("args", READ, ids=" ".join)
def test_parse_gives_typers_arguments(args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SEMHASH_DB", "SEMHASH_DEVICE", "SEMHASH_RUNTIME", "SEMHASH_MODE"):
        monkeypatch.delenv(name, raising=False)
    assert parse(query_command, args) == _typer_params(args)


def test_parse_reads_the_environment_as_typer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEMHASH_DB", "from-env.db")
    monkeypatch.setenv("SEMHASH_DEVICE", "cpu")
    monkeypatch.setenv("SEMHASH_RUNTIME", "torch")
    for args in (["hello"], ["hello", "--db", "flag.db", "--runtime", "onnx"]):
        parsed = parse(query_command, args)
        assert parsed == _typer_params(args)
        assert parsed is not None and parsed["device"] == "cpu"
    assert parse(query_command, ["hello"])["db"] == Path("from-env.db")  # type: ignore[index]
    monkeypatch.setenv("SEMHASH_DB", "")  # an empty variable: typer decides what it means
    assert parse(query_command, ["hello"]) is None


@pytest.mark.parametrize("args", LEFT_TO_TYPER, ids=" ".join)
def test_anything_unusual_is_left_to_typer(args: list[str]) -> None:
    assert parse(query_command, args, environ={}) is None


def test_a_command_with_a_declaration_it_does_not_know_is_left_to_typer() -> None:
    def with_callback(name: str = typer.Option("x", "--name", callback=lambda v: v)) -> None:
        pass

    def with_list(names: list[str] = typer.Option([], "--name")) -> None:
        pass

    def plain(name: str = typer.Option("x", "--name")) -> None:
        pass

    assert parse(with_callback, [], environ={}) is None
    assert parse(with_list, [], environ={}) is None
    assert parse(plain, ["--name", "y"], environ={}) == {"name": "y"}


CHILD = """
import atexit, sys
atexit.register(lambda: print("pydantic" in sys.modules, file=sys.stderr))
from semhash.cli import main
sys.argv = ["semhash", *sys.argv[1:]]
main()
"""


def test_the_quick_path_keeps_typers_exit_codes_and_messages(tmp_path: Path) -> None:
    db = str(tmp_path / "absent.db")
    quick = subprocess.run([sys.executable, "-c", CHILD, "query", "hello", "--db", db], capture_output=True, text=True)
    message = f"error: no index at {db}: run `semhash index DIR` first (or pass --db)"
    assert quick.returncode == 1 and quick.stderr.splitlines() == [message, "False"]  # no pydantic imported
    usage = subprocess.run([sys.executable, "-c", CHILD, "query", "hello", "-k", "0"], capture_output=True, text=True)
    assert usage.returncode == 2 and "-k" in usage.stderr and usage.stderr.splitlines()[-1] == "True"  # typer's
    both = subprocess.run([sys.executable, "-c", CHILD, "query", "--db", db], capture_output=True, text=True)
    assert both.returncode == 2 and both.stderr.startswith("error: give a query text or --file")
