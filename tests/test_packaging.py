"""What the distribution promises: one version source, the package's data files shipped."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import semhash

ROOT = Path(__file__).parent.parent


def test_the_version_has_one_source() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"], "the version lives in semhash/__init__.py"
    assert pyproject["project"]["dynamic"] == ["version"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "semhash.__version__"}
    assert importlib.metadata.version("semhash-engine") == semhash.__version__


def test_the_changelog_names_the_current_version_or_unreleased_work() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog or f"## [{semhash.__version__}]" in changelog
    assert f"## [{semhash.__version__}]" in changelog
