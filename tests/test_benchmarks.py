"""The benchmark suite's shape: every ``benchmarks/bench_*.py`` imports without doing work, nothing edits sys.path.

Quick and model-free: each benchmark module is parsed (only imports, definitions and constants at module level,
``main()`` behind ``if __name__ == "__main__"``) and imported as ``benchmarks.NAME``, the way
``python -m benchmarks.NAME`` runs it from the repository root; the harness stamps a result with its run.
"""

from __future__ import annotations

import ast
import importlib
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHES = sorted((ROOT / "benchmarks").glob("bench_*.py"))
# Every Python file of the benchmarks and tools, for the sys.path check.
PYTHON_FILES = sorted([*(ROOT / "benchmarks").rglob("*.py"), *(ROOT / "tools").rglob("*.py")])
# Module-level statements that do no work: imports, definitions, constants (and a constant list extended).
QUIET = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign, ast.AugAssign)


def _is_main_guard(node: ast.stmt) -> bool:
    """Whether ``node`` is ``if __name__ == "__main__":``."""
    return isinstance(node, ast.If) and ast.unparse(node.test).replace("'", '"') == '__name__ == "__main__"'


def test_the_suite_is_there() -> None:
    """The benchmarks are in benchmarks/, and scripts/ holds none."""
    assert len(BENCHES) >= 20
    assert not list(ROOT.glob("scripts/*.py")), "scripts/ is gone: benchmarks/, benchmarks/datasets/, tools/"


@pytest.mark.parametrize("path", BENCHES, ids=lambda p: p.stem)
def test_benchmark_does_no_work_at_import(path: Path) -> None:
    """Only imports, definitions and constants at module level; ``main()`` behind the ``__main__`` guard."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    loud = [
        f"line {node.lineno}: {type(node).__name__}"
        for node in tree.body
        if not isinstance(node, QUIET)
        and not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))
        and not _is_main_guard(node)
    ]
    assert not loud, f"{path.name} does work at import: {loud}"
    assert any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body), f"{path.name}: no main()"
    assert any(_is_main_guard(n) for n in tree.body), f'{path.name}: no `if __name__ == "__main__"`'


@pytest.mark.parametrize("path", BENCHES, ids=lambda p: p.stem)
def test_benchmark_imports_as_a_module(path: Path) -> None:
    """``benchmarks.NAME`` imports from the repository root (its imports of other modules resolve)."""
    module = importlib.import_module(f"benchmarks.{path.stem}")
    assert callable(module.main)


def test_no_sys_path_edits() -> None:
    """Benchmarks and tools import each other through ``benchmarks.*``, never by editing ``sys.path``."""
    edits = [str(p.relative_to(ROOT)) for p in PYTHON_FILES if "sys.path.insert" in p.read_text(encoding="utf-8")]
    assert not edits, f"sys.path.insert left in {edits}: import through benchmarks.* instead"


def test_harness_stamps_a_result(tmp_path: Path) -> None:
    """``write_result`` adds the run (machine, commit, command, date); a bare name goes to ``RESULTS``."""
    from benchmarks import harness

    written = harness.write_result(tmp_path / "x.json", {"p_at_100": 0.5})
    result = json.loads(written.read_text())
    assert result["p_at_100"] == 0.5
    run = result["run"]
    assert set(run) == {"machine", "commit", "command", "date"}
    assert run["machine"]["cores"] and run["machine"]["cpu"]
    assert harness.result_path("rerank") == harness.RESULTS / "rerank.json"
