"""Copy, not topic (issue 22): near pairs with a long text must also share word shingles; exact stays exact."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
from pathlib import Path

import numpy as np
import pytest
from support import FAST_EPOCHS, FakeEncoder
from typer.testing import CliRunner

from semhash.cli import app
from semhash.codes import to_sql_int
from semhash.dedup import DedupOptions, DedupResult, dedup_index, find_existing
from semhash.errors import UsageError
from semhash.ingest import IndexOptions, index_paths
from semhash.overlap import WINDOW_TOKENS, is_long, jaccard, pair_overlaps, shingle_set
from semhash.store import Store
from semhash.types import SourceDocument

runner = CliRunner()
DIM = 8
WORDS = [f"w{k}" for k in range(400)]


def prose(seed: int, n: int = 400) -> str:
    """``n`` words drawn from a 400-word vocabulary (long: more than one window)."""
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n))


def unit(angle_deg: float) -> np.ndarray:
    v = np.zeros(DIM)
    v[0], v[1] = np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))
    return v


def make_store(path: Path, docs: list[tuple[str, np.ndarray]]) -> list[int]:
    """A store of ``(text, embedding)`` documents, all on one code (the candidate stage is all pairs anyway)."""
    sources = [
        SourceDocument(f"/docs/doc{k}.txt", 0, text, hashlib.sha256(text.encode()).hexdigest(), float(k))
        for k, (text, _) in enumerate(docs)
    ]
    with Store.open(path, create=True) as store:
        store.check_embedding_model("fake", DIM)
        ids = store.upsert_documents(sources, np.array([d[1] for d in docs], dtype=np.float32))
        store.save_model(b"", bits=32, input_dim=DIM, config={}, stats={}, trained_on=len(docs))
        store.set_codes(ids, [to_sql_int(0, 32)] * len(docs), [0.0] * len(docs))
    return ids


# -- the measure ---------------------------------------------------------------------------------------
def test_is_long_counts_pre_tokens_beyond_one_window() -> None:
    assert not is_long(" ".join(["word"] * WINDOW_TOKENS))
    assert is_long(" ".join(["word"] * (WINDOW_TOKENS + 1)))
    # Punctuation marks are pre-tokens of their own: 130 words and 130 commas fill more than one window.
    assert is_long(", ".join(["word"] * 130) + ",")
    assert not is_long("A short sentence, as in MRPC.")


def test_cjk_ideographs_count_one_by_one() -> None:
    """BERT splits CJK ideographs into tokens of their own: a page of Chinese is long though it has no spaces."""
    assert is_long("\u65e5\u672c\u8a9e" * 90)  # 270 ideographs
    assert not is_long("\u65e5\u672c" * 120)
    assert not is_long("\u3072\u3089" * 200)  # kana are not split by BERT: no certain second window
    copy = "\u6771\u4eac\u306f\u65e5\u672c\u306e\u9996\u90fd\u3067\u3059"
    assert len(shingle_set(copy)) == 9  # 10 characters: 9 character pairs
    assert jaccard(shingle_set(copy), shingle_set(copy + "\u3002")) == 1.0


def test_shingles_ignore_case_spacing_and_punctuation() -> None:
    a = shingle_set("The quick brown fox jumps over the lazy dog")
    b = shingle_set("the QUICK brown\n\n  fox -- jumps over, the lazy dog!")
    assert np.array_equal(a, b) and len(a) == 8  # 9 words: 8 word pairs
    assert jaccard(a, b) == 1.0
    assert len(shingle_set("one")) == 1 and len(shingle_set("...")) == 0
    assert len(shingle_set("a b c d e", words=3)) == 3
    assert jaccard(shingle_set(""), shingle_set("")) == 0.0


def test_jaccard_of_an_edited_copy_and_of_another_text() -> None:
    text = prose(1)
    words = text.split()
    edited = " ".join(words[:200] + words[240:])  # 10% deleted from the middle
    assert 0.8 < jaccard(shingle_set(text), shingle_set(edited)) < 1.0
    assert jaccard(shingle_set(text), shingle_set(prose(2))) < 0.05  # same vocabulary, different text


def test_pair_overlaps_measures_only_pairs_with_a_long_text() -> None:
    texts = {1: "a short one", 2: "another short one", 3: prose(1), 4: prose(1)}
    got = pair_overlaps(texts, np.array([1, 1, 3]), np.array([2, 3, 4]))
    assert np.isnan(got[0]) and got[1] == 0.0 and got[2] == 1.0


# -- the service -----------------------------------------------------------------------------------------
@pytest.fixture
def topical(tmp_path: Path) -> Path:
    """Long documents on one topic (cosine 1), one edited copy among them, and a short near pair."""
    base = prose(1)
    words = base.split()
    path = tmp_path / "t.db"
    make_store(
        path,
        [
            (base, unit(0)),  # 1
            (prose(2), unit(0)),  # 2: same topic (same embedding), different text
            (" ".join([*words[:150], "inserted", "words", "here", *words[150:380]]), unit(3)),  # 3: edited copy of 1
            (prose(3), unit(2)),  # 4: same topic again
            ("A slow green turtle crosses the road.", unit(60)),  # 5
            ("The slow green turtle crossed a road!", unit(63)),  # 6: short near pair of 5 (cosine 0.999)
        ],
    )
    return path


def explained(result: DedupResult) -> dict[int, tuple[int, str, str, float | None]]:
    return {d.duplicate_id: (d.kept_id, d.reason, d.measure, d.overlap) for d in result.duplicates}


def test_long_documents_on_one_topic_are_not_duplicates(topical: Path) -> None:
    result = dedup_index(topical, DedupOptions())
    got = explained(result)
    assert set(got) == {3, 6}
    kept, reason, measure, overlap = got[3]
    assert (kept, reason, measure) == (1, "near", "cosine+overlap") and overlap is not None and overlap > 0.8
    assert got[6] == (5, "near", "cosine", None)  # two short texts: the cosine alone, as before
    # Pairs 1-2, 1-4, 2-4, 2-3, 3-4 pass the cosine but share no text.
    assert result.overlap_rejected == 5
    assert result.stats.overlap_pairs >= 6


def test_min_overlap_zero_is_the_cosine_alone(topical: Path) -> None:
    cosine_only = dedup_index(topical, DedupOptions(min_overlap=0.0))
    assert set(explained(cosine_only)) == {2, 3, 4, 6}
    assert cosine_only.overlap is None and cosine_only.overlap_rejected == 0
    assert {d.measure for d in cosine_only.duplicates} == {"cosine"}
    # Rethresholding needs the overlaps it was not asked to measure.
    with pytest.raises(UsageError, match="overlap was not computed"):
        cosine_only.rethreshold(min_overlap=0.5)


def test_rethreshold_changes_min_overlap_without_the_database(topical: Path) -> None:
    result = dedup_index(topical, DedupOptions())
    assert set(explained(result.rethreshold(min_overlap=0.0))) == {2, 3, 4, 6}
    assert set(explained(result.rethreshold(min_overlap=1.0))) == {6}  # the copy is edited: Jaccard < 1
    assert set(explained(result.rethreshold(min_overlap=0.5))) == {3, 6}


def test_min_overlap_is_checked() -> None:
    with pytest.raises(UsageError, match="--min-overlap"):
        DedupOptions(min_overlap=1.5)


def test_exact_twins_stay_exact_when_a_third_document_joins(tmp_path: Path) -> None:
    """Byte-identical files are reported as exact copies of each other, whatever near document is kept."""
    path = tmp_path / "x.db"
    make_store(
        path,
        [
            ("The slow green turtle crossed a road!", unit(3)),  # 1: kept (first), near the twins
            ("A slow green turtle crosses the road.", unit(0)),  # 2
            ("A slow green turtle crosses the road.", unit(0)),  # 3: byte-identical to 2
        ],
    )
    result = dedup_index(path)
    for cluster in ("centre", "components"):
        got = {
            d.duplicate_id: (d.matched_id, d.reason, d.measure, d.score)
            for d in result.rethreshold(cluster=cluster).duplicates
        }
        assert got[2][1:3] == ("near", "cosine") and got[2][0] == 1
        assert got[3] == (2, "exact", "text", 1.0)


def test_cli_json_and_csv_explain_each_duplicate(topical: Path) -> None:
    out = runner.invoke(app, ["dedup", "--db", str(topical), "--json"])
    assert out.exit_code == 0, out.output
    rows = {r["duplicate_id"]: r for r in map(json.loads, out.stdout.splitlines())}
    assert rows[3]["reason"] == "near" and rows[3]["measure"] == "cosine+overlap" and rows[3]["overlap"] > 0.8
    assert rows[6]["measure"] == "cosine" and rows[6]["overlap"] is None
    out = runner.invoke(app, ["dedup", "--db", str(topical), "--csv"])
    assert out.exit_code == 0, out.output
    header = next(csv.reader(io.StringIO(out.stdout)))
    assert header[-3:] == ["reason", "overlap", "measure"]
    out = runner.invoke(app, ["dedup", "--db", str(topical)])
    assert "5 pairs at or above the threshold were not taken" in out.stdout
    assert "--min-overlap 0" in out.stdout
    out = runner.invoke(app, ["dedup", "--db", str(topical), "--min-overlap", "0", "--json"])
    assert {json.loads(line)["duplicate_id"] for line in out.stdout.splitlines()} == {2, 3, 4, 6}


def test_against_checks_overlap_for_long_new_documents(tmp_path: Path, corpus: Path) -> None:
    """``--against``: a long new file on an indexed document's topic is not "existing"; its edited copy is."""
    rng = random.Random(0)
    few = WORDS[:40]  # 40 words: every long text has nearly the same bag of words (fake encoder cosine ~ 1)
    base = " ".join(rng.choice(few) for _ in range(400))
    (corpus / "long").mkdir()
    (corpus / "long" / "base.txt").write_text(base)
    db = tmp_path / "s.db"
    encoder = FakeEncoder()
    index_paths(db, [corpus], IndexOptions(epochs=FAST_EPOCHS, device="cpu"), encoder=encoder)
    new = tmp_path / "new"
    new.mkdir()
    words = base.split()
    (new / "copy.txt").write_text(" ".join([*words[:100], "an", "added", "clause", *words[100:390]]))
    (new / "topic.txt").write_text(" ".join(rng.choice(few) for _ in range(400)))
    options = DedupOptions(radius=8, threshold=0.8)
    result = find_existing(db, [new], options, encoder=encoder)
    names = [Path(d.path).name for d in result.documents]
    cosine_only = result.rethreshold(0.8, min_overlap=0.0)
    assert [names[k] for k in cosine_only.existing] == ["copy.txt", "topic.txt"]  # both on the topic
    assert [names[k] for k in result.existing] == ["copy.txt"]
    match = result.matches[names.index("copy.txt")][0]
    assert match.measure == "cosine+overlap" and match.overlap is not None and match.overlap > 0.8
    with pytest.raises(UsageError, match="not measured"):
        find_existing(db, [new], DedupOptions(radius=8, min_overlap=0.0), encoder=encoder).rethreshold(0.8, 0.5)


def test_cli_default_min_overlap_is_the_library_one() -> None:
    import inspect

    from semhash.cli.duplicates import dedup_command
    from semhash.dedup import DEFAULT_MIN_OVERLAP

    assert inspect.signature(dedup_command).parameters["min_overlap"].default.default == DEFAULT_MIN_OVERLAP
    assert DedupOptions().min_overlap == DEFAULT_MIN_OVERLAP
