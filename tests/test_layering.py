"""The architecture's import rules (ARCHITECTURE.md), checked on the source's AST."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "semhash"

# Higher layers may import lower ones, never the reverse.
LAYERS = {
    "cli": 5,
    "api": 4,
    "serve": 5,
    "ingest": 3, "search": 3, "dedup": 3, "evaluate": 3, "info": 3, "outliers": 3,
    "engine": 2.75,  # above encoders: its workers load the encoder semhash.encoders chooses
    "codec": 2.5, "encoders": 2.5, "train": 2.5, "adapt": 2.5, "neighbourhood": 2.5,
    "corpus": 2, "embed": 2, "model": 2, "store": 2, "caches": 2, "device": 2, "baselines": 2, "runtime": 2,
    "adapted": 2, "extract": 2, "static": 2,
    "lexical": 1.5,
    "blobs": 1.5,  # the safe reader of stored weights: errors + a lazy torch import
    # word-shingle overlap of two texts (re + numpy): below the services because two of them share it, dedup's
    # verify stage and search's folding of near-identical twins, and services never import each other
    "overlap": 1.5,
    "errors": 1, "types": 1, "config": 1, "codes": 1, "metrics": 1, "privacy": 1, "fileio": 1,
}  # fmt: skip
NO_TORCH = (
    "blobs",
    "encoders",
    "codes",
    "lexical",
    "overlap",
    "metrics",
    "store",
    "caches",
    "info",
    "dedup",
    "outliers",
    "corpus",
    "extract",
    "types",
    "errors",
    "config",
    "privacy",
    "fileio",
)


# Imports between two different modules of the same layer, each with its reason. Anything else inside a layer
# fails: a new edge is a design decision, written here, not an accident of which floor a module sits on.
SAME_LAYER = {
    ("codes", "config"): "the default width and bit order",
    ("codes", "errors"): "a bad width is a UsageError",
    ("privacy", "config"): "the SEMHASH_* names it reads",
    ("types", "config"): "result defaults (the outlier score)",
    ("embed", "device"): "the device is chosen once, where the model loads",
    ("adapted", "embed"): "an adapted encoder is the frozen encoder with trained top layers",
    ("static", "embed"): "the static tier is distilled from the packaged model and keeps the encoders' statistics",
    ("corpus", "extract"): "the corpus reads documents through the format readers",
    ("caches", "store"): "caches.sync alone rebuilds the caches from the store (SQLite is the truth)",
    ("runtime", "caches"): "the runtime's stamps use the one sidecar/stamp/atomic-write plumbing",
    ("runtime", "embed"): "the export traces the encoder; the ONNX encoder pools windows the same way",
    ("runtime", "model"): "the export writes the hashing model's arrays",
    ("runtime", "store"): "runtime.folder seals the folder in the index it belongs to",
    ("runtime", "adapted"): "runtime.folder exports an adapted encoder with the index",
    ("codec", "encoders"): "the codec asks the one chooser for its encoder",
    ("adapt", "train"): "adapting trains the hashing model with the same loop",
    ("cli", "serve"): "`semhash serve` starts the server",
}


def _modules() -> dict[Path, str]:
    """Every source file and the layer name it belongs to: a package's modules share the package's name."""
    files = {p: p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    for package in (p.parent for p in PACKAGE.glob("*/__init__.py")):
        files.update({p: package.name for p in package.glob("*.py")})
    return files


def _semhash_imports(module: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("semhash."):
            names.add(node.module.split(".")[1])
        elif isinstance(node, ast.ImportFrom) and node.module == "semhash":  # from semhash import api
            names.update(a.name for a in node.names if a.name in LAYERS)
        elif isinstance(node, ast.Import):
            names.update(a.name.split(".")[1] for a in node.names if a.name.startswith("semhash."))
    return names


def test_every_module_has_a_layer() -> None:
    modules = set(_modules().values())
    assert modules <= set(LAYERS), f"give these modules a layer: {sorted(modules - set(LAYERS))}"
    assert "dedup" in modules  # packages are found, not skipped


def test_no_module_imports_a_higher_layer() -> None:
    for path, name in _modules().items():
        for imported in _semhash_imports(path) - {name}:  # a package's modules may import each other
            assert LAYERS[imported] <= LAYERS[name], f"{path.relative_to(PACKAGE)} must not import {imported}"
            if LAYERS[imported] == LAYERS[name] == 3:
                raise AssertionError(f"services stay independent: {path.relative_to(PACKAGE)} imports {imported}")


def test_imports_inside_a_layer_are_on_the_allow_list() -> None:
    seen: set[tuple[str, str]] = set()
    for path, name in _modules().items():
        for imported in _semhash_imports(path) - {name}:
            if LAYERS[imported] == LAYERS[name]:
                edge = (name, imported)
                assert edge in SAME_LAYER, (
                    f"{path.relative_to(PACKAGE)} imports {imported} on its own layer (add it to SAME_LAYER with why)"
                )
                seen.add(edge)
    assert set(SAME_LAYER) == seen, f"allowed but unused, remove: {sorted(set(SAME_LAYER) - seen)}"


def test_store_and_index_never_import_each_other() -> None:
    # The store never imports the caches, and of the caches only sync (which keeps them in step) reads the store.
    for module in (PACKAGE / "store").glob("*.py"):
        assert "caches" not in _semhash_imports(module), module.name
    for module in (PACKAGE / "caches").glob("*.py"):
        assert module.stem == "sync" or "store" not in _semhash_imports(module), module.name


def test_storage_side_modules_run_without_torch() -> None:
    # Every module of a package is imported too (semhash.dedup.against must not load torch on import).
    present = [
        f"{name}.{path.stem}" if path.stem != "__init__" and path.parent != PACKAGE else name
        for path, name in sorted(_modules().items())
        if name in NO_TORCH
    ]
    assert "dedup.against" in present and "dedup" in present
    probe = (
        "import importlib, sys\n"
        f"for m in {present!r}: importlib.import_module('semhash.' + m)\n"
        "print([m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
