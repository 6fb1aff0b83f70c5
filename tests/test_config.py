"""``semhash.config``: every ``SEMHASH_*`` name is defined there and read through its typed readers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from semhash import config
from semhash.config import ENV_CACHE, ENV_INDEX_EXPORT, cache_root, env_flag, env_text

PACKAGE = Path(__file__).parent.parent / "semhash"


@pytest.mark.parametrize(
    ("raw", "on"),
    [("1", True), ("true", True), (" YES ", True), ("On", True), ("0", False), ("no", False), ("", False)],
)
def test_env_flag_reads_yes_values(monkeypatch: pytest.MonkeyPatch, raw: str, on: bool) -> None:
    monkeypatch.setenv(ENV_INDEX_EXPORT, raw)
    assert env_flag(ENV_INDEX_EXPORT) is on


def test_env_text_is_the_raw_value_or_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_INDEX_EXPORT, raising=False)
    assert env_text(ENV_INDEX_EXPORT) == "" and env_text(ENV_INDEX_EXPORT, "x") == "x"
    assert env_flag(ENV_INDEX_EXPORT) is False
    monkeypatch.setenv(ENV_INDEX_EXPORT, " 1 ")
    assert env_text(ENV_INDEX_EXPORT) == " 1 "


def test_cache_root_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENV_CACHE, str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c"
    monkeypatch.delenv(ENV_CACHE)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_root() == tmp_path / "x" / "semhash"


def _string_constants(module: Path) -> set[str]:
    """String literals of a module that are not docstrings."""
    tree = ast.parse(module.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    }


def test_every_semhash_variable_is_named_in_config_only() -> None:
    """A ``SEMHASH_*`` name written anywhere else in the package (not in a docstring) would be a second home."""
    names = {value for name, value in vars(config).items() if name.startswith("ENV_")}
    assert all(value.startswith("SEMHASH_") for value in names)
    elsewhere = {
        str(path.relative_to(PACKAGE)): sorted(s for s in _string_constants(path) if s.startswith("SEMHASH_"))
        for path in PACKAGE.rglob("*.py")
        if path.name != "config.py"
    }
    assert {path: found for path, found in elsewhere.items() if found} == {}
