"""semhash dedup: candidates, verification, clustering, re-thresholding, --against, the CLI and its errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support import DEDUP_DIM, FAST_EPOCHS, FakeEncoder, invoke_dedup, make_store, unit
from typer.testing import CliRunner

import semhash.dedup as dd
from semhash.cli import app
from semhash.codes import hamming_matrix, ints_to_packed
from semhash.dedup import DedupOptions, candidate_pairs, dedup_index, find_existing, numbers_conflict
from semhash.dedup import join as dedup_join
from semhash.dedup import verify as dedup_verify
from semhash.errors import UsageError
from semhash.ingest import IndexOptions, index_paths
from semhash.store import Store

runner = CliRunner()


def by_id(result: dd.DedupResult) -> dict[int, tuple[int, str]]:
    return {d.duplicate_id: (d.kept_id, d.reason) for d in result.duplicates}


def test_exact_and_near_duplicates_explained(seven_docs_db: Path) -> None:
    result = dedup_index(seven_docs_db, DedupOptions(radius=2, threshold=0.9, neighbours=0))  # the code stage alone
    assert by_id(result) == {2: (1, "exact"), 4: (3, "near")}
    near = next(d for d in result.duplicates if d.reason == "near")
    assert near.score == pytest.approx(np.cos(np.radians(4)), abs=1e-5)
    assert near.kept_location.endswith("doc2.txt") and near.duplicate_location.endswith("doc3.txt")
    assert [c.cluster for c in result.clusters] == [1, 2]
    assert result.duplicate_ids == [2, 4]
    # The cosine twin 24 bits away is never a candidate: candidates come from the codes only.
    assert 7 not in set(result.left) | set(result.right)


def test_rethreshold_and_histogram_need_no_database(seven_docs_db: Path) -> None:
    result = dedup_index(seven_docs_db, DedupOptions(radius=2, threshold=0.9, neighbours=0))
    seven_docs_db.unlink()
    lower = result.rethreshold(0.7)
    assert lower.options.threshold == 0.7
    assert by_id(lower) == {2: (1, "exact"), 4: (3, "near"), 6: (3, "near")}
    assert by_id(lower.rethreshold(0.9)) == by_id(result)
    assert by_id(result.rethreshold(keep="longest"))[3] == (4, "near")
    hist = result.histogram(bins=10)
    assert sum(count for _, _, count in hist) == result.stats.candidates == 4
    assert len(result.cosine) == 4
    assert result.pairs_at(0.9) == int((result.cosine >= 0.9).sum()) == 2
    assert result.pairs_at(-1.0) == 4
    with pytest.raises(UsageError, match="counted, not kept"):
        result.rethreshold(0.3)
    with pytest.raises(UsageError, match="number veto"):
        result.rethreshold(number_veto=True)
    with pytest.raises(UsageError, match="--threshold"):
        result.rethreshold(1.5)


def test_pairs_below_the_floor_are_counted_not_kept(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    make_store(path, [("one text", unit(0), 7), ("another", unit(80), 7), ("third", unit(85), 7)], tmp_path / "f")
    result = dedup_index(path, DedupOptions(radius=0))
    assert result.stats.candidates == 3 and len(result.cosine) == 1  # cos 80 and 85 degrees < 0.5
    assert sum(c for _, _, c in result.histogram()) == 3 and result.pairs_at(-1.0) == 3
    assert dedup_index(path, DedupOptions(radius=0, threshold=0.0)).cosine.size == 3  # a lower threshold keeps more


def chain_store(tmp_path: Path) -> Path:
    """A~B and B~C above 0.9, A~C below it: the chaining case."""
    path = tmp_path / "chain.db"
    make_store(
        path,
        [("alpha one", unit(0), 0b00), ("alpha two", unit(20), 0b01), ("alpha three", unit(40), 0b11)],
        tmp_path / "chain",
    )
    return path


def test_centre_clusters_never_chain_components_do(tmp_path: Path) -> None:
    path = chain_store(tmp_path)
    centre = dedup_index(path, DedupOptions(radius=2, threshold=0.9, cluster="centre"))
    assert by_id(centre) == {2: (1, "near")}
    components = centre.rethreshold(cluster="components")
    assert by_id(components) == {2: (1, "near"), 3: (1, "near")}
    via = {d.duplicate_id: d.matched_id for d in components.duplicates}
    assert via == {2: 1, 3: 2}  # C is explained by the member it is similar to
    assert {d.duplicate_id: d.score for d in components.duplicates}[3] == pytest.approx(np.cos(np.radians(20)), 1e-5)


def test_keep_rules_are_deterministic(tmp_path: Path) -> None:
    path = tmp_path / "k.db"
    texts = ["same words here", "same words here, longer", "same words here, much much longer", "same"]
    make_store(
        path,
        [(t, unit(k), 0b1) for k, t in enumerate(texts)],
        tmp_path / "k",
        mtimes=[5.0, 9.0, 1.0, 9.0],
    )
    result = dedup_index(path, DedupOptions(radius=0, threshold=0.9))
    kept = {rule: result.rethreshold(keep=rule).clusters[0].kept_id for rule in dd.KEEP_RULES}
    assert kept == {"first": 1, "longest": 3, "shortest": 4, "newest": 2}  # newest: tie 9.0 goes to the lower id


def test_number_veto(tmp_path: Path) -> None:
    assert numbers_conflict("sold in 1998 for $2.5 billion", "sold in 1998 for $1.8 billion")
    assert not numbers_conflict("sold in 1998 for $2.5 billion", "sold for $2.5 billion")  # removal is no conflict
    assert not numbers_conflict("1,000 people", "1000 people")
    path = tmp_path / "n.db"
    make_store(
        path,
        [("Revenue was 2.5 billion in 1998", unit(0), 0), ("Revenue was 1.8 billion in 1998", unit(5), 1)],
        tmp_path / "n",
    )
    assert len(dedup_index(path, DedupOptions(radius=1)).duplicates) == 1
    vetoed = dedup_index(path, DedupOptions(radius=1, number_veto=True))
    assert vetoed.duplicates == [] and vetoed.rethreshold(number_veto=False).duplicates


@pytest.mark.parametrize("radius", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("bitmap", [False, True])
@pytest.mark.parametrize("bits", [16, 32, 64])
def test_candidate_pairs_equal_brute_force(
    radius: int, bitmap: bool, bits: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    if bitmap:
        monkeypatch.setattr(dedup_join, "_BITMAP_MIN_TABLE", 0)
    rng = np.random.default_rng(radius)
    centres = rng.integers(0, 2 ** min(bits, 63), 15, dtype=np.uint64)
    flips = rng.random((400, bits)) < 0.05
    flip_values = (flips * (np.uint64(1) << np.arange(bits, dtype=np.uint64))).sum(1, dtype=np.uint64)
    codes = centres[rng.integers(0, 15, 400)] ^ flip_values
    signed = codes.view(np.int64)  # SQLite's form
    i, j, d = candidate_pairs(signed, bits, radius)
    packed = ints_to_packed(signed, bits)
    full = hamming_matrix(packed, packed)
    want_i, want_j = np.nonzero(np.triu(full <= radius, 1))
    assert list(zip(i.tolist(), j.tolist(), strict=True)) == list(zip(want_i.tolist(), want_j.tolist(), strict=True))
    assert (d == full[i, j]).all()


def test_in_index_dedup_does_not_import_torch(seven_docs_db: Path) -> None:
    probe = (
        "import sys\n"
        "from semhash.dedup import dedup_index, DedupOptions\n"
        f"r = dedup_index({str(seven_docs_db)!r}, DedupOptions(radius=2))\n"
        "assert r.duplicates\n"
        "print([m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_find_existing_reports_matches_without_adding(tmp_path: Path, corpus: Path) -> None:
    db = tmp_path / "s.db"
    encoder = FakeEncoder()
    index_paths(db, [corpus], IndexOptions(epochs=FAST_EPOCHS, device="cpu"), encoder=encoder)
    new = tmp_path / "new"
    new.mkdir()
    space = sorted((corpus / "space").glob("*.txt"))[0]
    (new / "copy.txt").write_text("  " + space.read_text().upper() + "\n")
    (new / "novel.txt").write_text("zebra xylophone quartz vortex")
    with Store.open(db) as store:
        before = store.count()
    result = find_existing(db, [new], DedupOptions(radius=4, threshold=0.95), encoder=encoder)
    with Store.open(db) as store:
        assert store.count() == before
    assert [Path(d.path).name for d in result.documents] == ["copy.txt", "novel.txt"]
    assert result.existing == [0]
    first = result.matches[0][0]
    assert first.reason == "exact" and first.score == 1.0 and first.location == str(space.resolve())
    assert result.matches[1] == []
    assert result.rethreshold(-1.0).matches[0]  # every candidate passes at -1


# -- CLI -----------------------------------------------------------------------------------------------


def test_cli_defaults_match_the_library() -> None:
    import inspect

    from semhash.cli.duplicates import dedup_command

    params = inspect.signature(dedup_command).parameters
    assert params["radius"].default.default == dd.DEFAULT_RADIUS
    # --threshold defaults to None, which means the library's default (and lets dedup tell "not given" apart).
    assert params["threshold"].default.default is None
    assert f"[default: {dd.DEFAULT_THRESHOLD}]" in params["threshold"].default.help


def test_cli_table_json_csv_list(seven_docs_db: Path) -> None:
    code, output = invoke_dedup("--db", seven_docs_db, "--neighbours", 0, "--radius", 2, "--threshold", 0.9)
    assert code == 0, output
    assert "doc0.txt" in output and "exact" in output and "near" in output
    assert "7 documents: 2 clusters, 2 duplicates (1 exact, 1 near)" in output
    code, output = invoke_dedup("--db", seven_docs_db, "--neighbours", 0, "--radius", 2, "--threshold", 0.9, "--json")
    rows = [json.loads(line) for line in output.splitlines()]
    assert [(r["cluster"], r["kept_id"], r["duplicate_id"], r["reason"]) for r in rows] == [
        (1, 1, 2, "exact"),
        (2, 3, 4, "near"),
    ]
    assert rows[0]["duplicate_location"].endswith("doc1.txt")
    code, output = invoke_dedup("--db", seven_docs_db, "--neighbours", 0, "--radius", 2, "--threshold", 0.9, "--csv")
    lines = output.splitlines()
    assert lines[0].startswith("cluster,kept_id,kept_location") and len(lines) == 3
    code, output = invoke_dedup(
        "--db", seven_docs_db, "--neighbours", 0, "--radius", 2, "--threshold", 0.9, "--list-duplicates"
    )
    assert [Path(p).name for p in output.split()] == ["doc1.txt", "doc3.txt"]
    code, output = invoke_dedup(
        "--db", seven_docs_db, "--neighbours", 0, "--radius", 2, "--threshold", 0.5, "--cluster", "components", "--json"
    )
    assert code == 0 and len(output.splitlines()) == 3


def test_cli_histogram(seven_docs_db: Path) -> None:
    code, output = invoke_dedup(
        "--db", seven_docs_db, "--neighbours", 0, "--radius", 2, "--threshold", 0.9, "--histogram"
    )
    assert code == 0, output
    assert "candidate pairs from codes within 2 bits" in output
    code, output = invoke_dedup(
        "--db", seven_docs_db, "--neighbours", 0, "--radius", 2, "--threshold", 0.9, "--histogram", "--json"
    )
    assert sum(json.loads(line)["pairs"] for line in output.splitlines()) == 4


def test_cli_write_unique_copies_and_never_touches_sources(seven_docs_db: Path, tmp_path: Path) -> None:
    before = {p.name: p.read_text() for p in (tmp_path / "docs").iterdir()}
    code, output = invoke_dedup(
        "--db",
        seven_docs_db,
        "--neighbours",
        0,
        "--radius",
        2,
        "--threshold",
        0.9,
        "--write-unique",
        tmp_path / "unique",
    )
    assert code == 0, output
    assert "wrote 5 unique documents" in output
    written = sorted(p.name for p in (tmp_path / "unique").rglob("*.txt"))
    assert written == ["doc0.txt", "doc2.txt", "doc4.txt", "doc5.txt", "doc6.txt"]
    assert {p.name: p.read_text() for p in (tmp_path / "docs").iterdir()} == before


def test_cli_against(tmp_path: Path, corpus: Path, patch_encoder: FakeEncoder) -> None:
    db = tmp_path / "s.db"
    indexed = runner.invoke(app, ["index", str(corpus), "--db", str(db), "--epochs", str(FAST_EPOCHS)])
    assert indexed.exit_code == 0, indexed.output
    new = tmp_path / "new"
    new.mkdir()
    (new / "copy.txt").write_text(sorted((corpus / "food").glob("*.txt"))[1].read_text())
    (new / "novel.txt").write_text("zebra xylophone quartz vortex")
    code, output = invoke_dedup(new, "--against", "--db", db)
    assert code == 0, output
    assert "1 of 2 new documents already exist in the index" in output and "exact" in output
    code, output = invoke_dedup(new, "--against", "--db", db, "--json")
    rows = [json.loads(line) for line in output.splitlines()]
    assert rows[0]["new_location"].endswith("copy.txt") and rows[0]["reason"] == "exact"
    code, output = invoke_dedup(new, "--against", "--db", db, "--list-duplicates")
    assert output.split() == [str(new / "copy.txt")]


@pytest.mark.parametrize(
    ("args", "exit_code", "message"),
    [
        (["--radius", "9"], 2, "--radius must be between 0 and 8"),
        (["--radius", "-1"], 2, "--radius must be between 0 and 8"),
        (["--threshold", "1.5"], 2, "--threshold must be a cosine between -1 and 1"),
        (["--cluster", "stars"], 2, "--cluster must be one of centre, components"),
        (["--keep", "oldest"], 2, "--keep must be one of first, longest, shortest, newest"),
        (["--json", "--csv"], 2, "give --json or --csv, not both"),
        (["somewhere"], 2, "semhash dedup PATH... --against"),
        (["--against"], 2, "semhash dedup PATH... --against"),
    ],
)
def test_cli_usage_errors(seven_docs_db: Path, args: list[str], exit_code: int, message: str) -> None:
    code, output = invoke_dedup("--db", seven_docs_db, *args)
    assert code == exit_code, output
    assert output.startswith("error: ") and message in output


def test_cli_output_folder_that_exists(seven_docs_db: Path, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    code, output = invoke_dedup("--db", seven_docs_db, "--write-unique", tmp_path / "out")
    assert code == 2 and "error: --write-unique" in output and "already exists" in output


def test_cli_missing_and_empty_index(tmp_path: Path) -> None:
    code, output = invoke_dedup("--db", tmp_path / "none.db")
    assert code == 1 and "error: no index at" in output
    Store.open(tmp_path / "empty.db", create=True).close()
    code, output = invoke_dedup("--db", tmp_path / "empty.db")
    assert code == 1 and "holds no document yet" in output


def test_cli_against_missing_path(seven_docs_db: Path, tmp_path: Path) -> None:
    code, output = invoke_dedup(tmp_path / "nope", "--against", "--db", seven_docs_db)
    assert code == 1 and "no such file or folder" in output


@pytest.mark.parametrize("small_block", [0, 4, 10**9])
def test_block_verification_equals_pairwise(small_block: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dedup_verify, "SMALL_BLOCK", small_block)
    rng = np.random.default_rng(7)
    centres = rng.integers(0, 2**32, 6, dtype=np.uint64)
    flips = rng.random((300, 32)) < 0.03
    codes = centres[rng.integers(0, 6, 300)] ^ (flips * (1 << np.arange(32, dtype=np.uint64))).sum(1).astype(np.uint64)
    emb = rng.standard_normal((300, DEDUP_DIM)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    slot = np.arange(300)
    blocks = dd.CodeBlocks.build(codes, 32, 2)
    i, j, d, cos, fine = blocks.verify(emb, slot, floor=-1.0)
    want_i, want_j, want_d = candidate_pairs(codes, 32, 2)
    assert blocks.candidate_count == len(want_i) == len(i) == fine.sum()
    assert (i == want_i).all() and (j == want_j).all() and (d == want_d).all()
    np.testing.assert_allclose(cos, np.einsum("ij,ij->i", emb[i], emb[j]), atol=1e-5)
    ki, _, _, kc, kfine = blocks.verify(emb, slot, floor=0.3)
    assert (kc >= 0.3).all() and len(ki) == int((cos >= 0.3).sum()) and kfine.sum() == fine.sum()
