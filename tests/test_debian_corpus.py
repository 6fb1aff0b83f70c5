"""benchmarks/datasets/debian_corpus.py: parsing and selection of the Debian corpus, on synthetic snippets."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from benchmarks.datasets import debian_corpus as dc

PACKAGES = """\
Package: 0ad
Version: 0.0.26-3
Description: Real-time strategy game
Description-md5: m-0ad
Tag: game::strategy, interface::graphical,
 x11::application
Section: games

Package: 0ad-data-common
Source: 0ad (0.0.26-3)
Description: Real-time strategy game (common data)
Description-md5: m-0ad-common
Section: games

Package: libfoo1
Source: foo
Description: foo library
Description-md5: m-libfoo
Section: libs

Package: foo-tools
Source: foo (1.0-1)
Description: foo tools
Description-md5: m-footools
Section: contrib/science

Package: foo
Description: foo itself
Description-md5: m-foo
Section: non-free/science

Package: bar-doc
Source: bar
Description: bar manual
Description-md5: m-bardoc
Section: doc

Package: bar-utils
Source: bar
Description: bar utilities
Description-md5: m-barutils
Section: science

Package: oldgame
Description: transitional dummy package
Description-md5: m-old
Section: games

Package: twin
Description: Twin text
Description-md5: m-twin
Section: games

Package: twin2
Description: Twin text
Description-md5: m-twin
Section: games

Package: nodesc
Description: missing translation
Description-md5: m-none
Section: games

Package: chess
Description: chess engine
Description-md5: m-chess
Section: games
"""

TRANSLATIONS = """\
Package: 0ad
Description-md5: m-0ad
Description-en: Real-time strategy game
 A game of ancient warfare.
 .
 With many civilisations.

Package: 0ad-data-common
Description-md5: m-0ad-common
Description-en: Real-time strategy game (common data)
 Data files.

Package: libfoo1
Description-md5: m-libfoo
Description-en: foo library
 The library.

Package: foo-tools
Description-md5: m-footools
Description-en: foo tools
 Tools for foo.

Package: foo
Description-md5: m-foo
Description-en: foo itself
 Computes foo.

Package: bar-doc
Description-md5: m-bardoc
Description-en: bar manual
 Manual.

Package: bar-utils
Description-md5: m-barutils
Description-en: bar utilities
 Utilities.

Package: oldgame
Description-md5: m-old
Description-en: transitional dummy package
 This package can be removed.

Package: twin
Description-md5: m-twin
Description-en: Twin text
 Same words.

Package: chess
Description-md5: m-chess
Description-en: chess engine
 Plays chess.
"""


def _docs(min_docs: int = 1) -> list[dc.Document]:
    binaries = dc.read_binaries(dc.stanzas(PACKAGES.splitlines(keepends=True)))
    descriptions = dc.read_descriptions(dc.stanzas(TRANSLATIONS.splitlines(keepends=True)))
    return dc.select(binaries, descriptions, min_docs)


def test_stanzas_keep_continuation_lines_and_split_on_blank_lines() -> None:
    records = list(dc.stanzas(PACKAGES.splitlines(keepends=True)))
    assert len(records) == 12
    assert records[0]["Tag"] == "game::strategy, interface::graphical,\n x11::application"
    assert records[1]["Source"] == "0ad (0.0.26-3)"


def test_binaries_strip_source_versions_and_area_prefixes() -> None:
    binaries = {b.name: b for b in dc.read_binaries(dc.stanzas(PACKAGES.splitlines()))}
    assert binaries["0ad-data-common"].source == "0ad"
    assert binaries["0ad"].source == "0ad"  # no Source field: the package is its own source
    assert binaries["foo-tools"].section == "science"
    assert binaries["foo"].section == "science"


def test_description_text_is_short_newline_long_with_blank_lines() -> None:
    raw = "Real-time strategy game\n A game of ancient warfare.\n .\n With many civilisations.\n   verbatim"
    text = dc.description_text(raw)
    assert text == "Real-time strategy game\nA game of ancient warfare.\n\nWith many civilisations.\n  verbatim"
    assert dc.description_text("Only a short line") == "Only a short line"


def test_select_keeps_one_topical_binary_per_source_and_distinct_texts() -> None:
    docs = {d.name: d for d in _docs()}
    # 0ad: the binary named like its source; foo: the source-named binary, not foo-tools (first in file);
    # bar: its only topical binary (bar-doc is in doc); twin2 repeats twin's text; oldgame is transitional;
    # nodesc has no English text; libfoo1 is in libs.
    assert set(docs) == {"0ad", "foo", "bar-utils", "twin", "chess"}
    assert docs["0ad"].text.startswith("Real-time strategy game\nA game of ancient warfare.")
    assert docs["foo"].section == "science"


def test_select_drops_small_sections() -> None:
    # games: 0ad, twin, chess; science: foo, bar-utils
    assert {d.section for d in _docs(min_docs=2)} == {"games", "science"}
    assert {d.name for d in _docs(min_docs=3)} == {"0ad", "twin", "chess"}
    assert _docs(min_docs=4) == []


def test_stratified_split_is_seeded_per_section_and_database_first() -> None:
    docs = [dc.Document(f"{s}{i}", f"text {s} {i}", s) for s in ("a", "b") for i in range(10)]
    posts = dc.stratified_split(docs, 0.6, seed=0)
    assert [p.split for p in posts] == ["train"] * 12 + ["test"] * 8
    assert Counter((p.label, p.split) for p in posts) == {
        ("a", "train"): 6, ("a", "test"): 4, ("b", "train"): 6, ("b", "test"): 4,
    }  # fmt: skip
    assert posts == dc.stratified_split(docs, 0.6, seed=0)
    assert [p.id for p in posts] != [p.id for p in dc.stratified_split(docs, 0.6, seed=1)]


def test_chance_precision_is_the_mean_label_share() -> None:
    database = [["a"], ["a"], ["a"], ["b"]]
    assert dc.chance_precision(database, [["a"], ["b"]]) == pytest.approx((3 / 4 + 1 / 4) / 2)
    assert dc.chance_precision(database, [["c"]]) == 0.0


def test_release_sha256_reads_the_sha256_section(tmp_path: Path) -> None:
    release = tmp_path / "InRelease"
    release.write_text(
        "Origin: Debian\nMD5Sum:\n aaaa 10 main/i18n/Translation-en.xz\nSHA256:\n"
        " bbbb 10 main/i18n/Translation-en\n cccc 10 main/i18n/Translation-en.xz\n"
    )
    assert dc.release_sha256(release, "main/i18n/Translation-en.xz") == "cccc"
    assert dc.release_sha256(release, "main/missing") is None
    assert dc.release_sha256(tmp_path / "absent", "x") is None


def test_main_writes_the_eval_jsonl_from_local_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    packages = tmp_path / "Packages.gz"
    translations = tmp_path / "Translation-en"
    with gzip.open(packages, "wt", encoding="utf-8") as handle:
        handle.write(PACKAGES)
    translations.write_text(TRANSLATIONS, encoding="utf-8")
    out = tmp_path / "out"
    argv = ["--packages", str(packages), "--translations", str(translations), "--out", str(out)]
    assert dc.main([*argv, "--min-docs", "1", "--no-embed"]) == 0
    rows = [json.loads(line) for line in (out / "debian.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {r["id"] for r in rows} == {"0ad", "foo", "bar-utils", "twin", "chess"}
    assert all(set(r) == {"id", "text", "labels", "split"} and len(r["labels"]) == 1 for r in rows)
    assert {r["split"] for r in rows} <= {"train", "test"}
    stats = json.loads((out / "debian-stats.json").read_text())
    assert stats["documents"] == 5 and stats["sections"] == {"games": 3, "science": 2}
    assert "chance P@100" in capsys.readouterr().out


def test_main_refuses_a_missing_local_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = dc.main(["--packages", str(tmp_path / "nope"), "--out", str(tmp_path), "--no-embed"])
    assert code == 1
    assert "apt-get update" in capsys.readouterr().err
