"""``benchmarks/datasets/build_longdoc.py``: the long-document near-duplicate set (issue 22), on a fake doc tree."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

from benchmarks.datasets import build_longdoc


def notes(seed: int, version: str) -> str:
    """A release-notes-like text of ~2,500 characters in paragraphs, with version numbers."""
    rng = random.Random(seed)
    words = [f"word{k}" for k in range(300)]
    paras = [f"Release {version} notes", f"Fixes since v{version}"]
    paras += [" ".join(rng.choice(words) for _ in range(40)) + f" (see {version}.1)" for _ in range(8)]
    return "\n\n".join(paras)


def doc_tree(root: Path) -> Path:
    (root / "tool" / "RelNotes").mkdir(parents=True)
    (root / "other").mkdir()
    for k in range(6):
        (root / "tool" / "RelNotes" / f"2.{k}.0.txt").write_text(notes(k, f"2.{k}"))
    with gzip.open(root / "other" / "changelog.gz", "wt") as handle:
        handle.write(notes(10, "1.0"))
    (root / "other" / "README").write_text(notes(11, "3.1"))
    (root / "other" / "copy-of-README").write_text(notes(11, "3.1").upper())  # a natural copy: dropped
    (root / "other" / "copyright").write_text(notes(12, "9.9"))  # licences are skipped
    (root / "other" / "page.html").write_text(notes(13, "9.8"))  # markup is skipped
    (root / "other" / "short.txt").write_text("too short")
    return root


def test_the_set_is_real_files_with_planted_copies_split_in_two(tmp_path: Path) -> None:
    rows = build_longdoc.build(doc_tree(tmp_path / "doc"), seed=0)
    originals = [r for r in rows if r["original"] is None]
    sources = {Path(r["source"]).name for r in originals}
    assert sources == {f"2.{k}.0.txt" for k in range(6)} | {"changelog.gz", "README"}
    assert {r["split"] for r in rows} == {"validation", "test"}
    by_id = {r["id"]: r for r in rows}
    copies = [r for r in rows if r["original"] is not None]
    assert copies, "half of each split's originals get an edited copy"
    for copy in copies:
        original = by_id[copy["original"]]
        assert original["split"] == copy["split"] and original["source"] == copy["source"]
        assert copy["kind"] in build_longdoc.EDITS and copy["text"] != original["text"]
    # Each family is spread over both halves (file by file).
    family = [r["split"] for r in originals if r["family"] == "tool/RelNotes"]
    assert family.count("validation") == family.count("test") == 3


def test_the_set_is_deterministic(tmp_path: Path) -> None:
    tree = doc_tree(tmp_path / "doc")
    assert build_longdoc.build(tree, seed=0) == build_longdoc.build(tree, seed=0)
    assert build_longdoc.build(tree, seed=0) != build_longdoc.build(tree, seed=1)


def test_edits() -> None:
    rng = random.Random(0)
    text = notes(1, "2.1")
    assert build_longdoc.bump("v2.30.1 and 1.2") == "v2.30.2 and 1.3"
    assert build_longdoc.edit("version", text, "", ["x"], rng) == build_longdoc.bump(text)
    reordered = build_longdoc.edit("reorder", text, "", ["x"], rng)
    assert sorted(reordered.split("\n\n")) == sorted(text.split("\n\n")) and reordered != text
    deleted = build_longdoc.edit("delete", text, "", ["x"], rng)
    assert set(deleted.split("\n\n")) < set(text.split("\n\n"))
    inserted = build_longdoc.edit("insert", text, notes(2, "9.9"), ["x"], rng)
    assert set(text.split("\n\n")) < set(inserted.split("\n\n"))
