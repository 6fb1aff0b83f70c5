"""The real-folder dedup judging benchmark: sampling near pairs from a dedup JSON and counting judgements.

No model: a small SQLite table stands in for the index (only ``documents(id, path, text)`` is read).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from benchmarks import bench_dedup_realfolder as bench

LONG = " ".join(f"word{k}" for k in range(400))  # over one encoder window


def _index(tmp_path: Path) -> Path:
    db = tmp_path / "doc.db"
    con = sqlite3.connect(db)
    con.execute("create table documents (id integer primary key, path text, text text)")
    rows = [
        (1, "/d/a.txt", "Git v1 Release Notes\n\nfix the parser"),
        (2, "/d/b.txt", "Git v2 Release Notes\n\nfix the parser"),
        (3, "/d/c.txt", LONG),
        (4, "/e/c.txt", LONG + " tail"),
        (5, "/d/x.txt", "exact"),
        (6, "/d/y.txt", "exact"),
    ]
    con.executemany("insert into documents values (?, ?, ?)", rows)
    con.commit()
    con.close()
    return db


def _dedup(tmp_path: Path) -> Path:
    def row(cluster: int, dup: int, match: int, reason: str, measure: str) -> dict[str, object]:
        return {
            "cluster": cluster,
            "kept_id": match,
            "kept_location": f"/d/{match}",
            "duplicate_id": dup,
            "duplicate_location": f"/d/{dup}",
            "matched_id": match,
            "score": 0.9,
            "reason": reason,
            "overlap": None if measure != "cosine+overlap" else 0.99,
            "measure": measure,
        }

    lines = [row(1, 2, 1, "near", "cosine"), row(2, 4, 3, "near", "cosine+overlap"), row(3, 6, 5, "exact", "text")]
    path = tmp_path / "dedup.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [*lines, {"from": 0.5, "to": 0.6, "pairs": 3}]) + "\n")
    return path


def test_pair_facts_measure_both_texts() -> None:
    """Lengths, long or short, the 2-word Jaccard and the changed lines of two stored texts."""
    facts = bench.pair_facts(("/d/a", "one two three\nfour"), ("/d/b", "one two three\nfive"))
    assert facts["chars"] == [18, 18]
    assert facts["long"] == [False, False]
    assert facts["jaccard_2w"] == pytest.approx(0.5)  # {one two, two three} shared of 4 distinct shingles
    assert facts["diff_lines"] == 2
    assert facts["same_folder"] is True


def test_sample_draws_only_near_pairs_and_counts_the_run(tmp_path: Path) -> None:
    """Exact duplicates and histogram lines are left out of the sample; the run's counts are written."""
    out = tmp_path / "judged.json"
    bench.sample(_index(tmp_path), _dedup(tmp_path), n=30, seed=0, out=out)
    result = json.loads(out.read_text())
    assert (result["documents"], result["duplicates"], result["exact"], result["near"]) == (6, 3, 1, 2)
    assert result["clusters"] == 3
    assert result["near_by_measure"] == {"cosine": 1, "cosine+overlap": 1}
    assert {(p["duplicate"], p["matched"]) for p in result["pairs"]} == {
        ("/d/b.txt", "/d/a.txt"),
        ("/e/c.txt", "/d/c.txt"),
    }
    assert all(p["judgement"] is None for p in result["pairs"])


def test_summarise_counts_judgements_and_refuses_gaps(tmp_path: Path) -> None:
    """Every pair needs a judgement and a reason; the shares are counted overall and by measure."""
    out = tmp_path / "judged.json"
    bench.sample(_index(tmp_path), _dedup(tmp_path), n=30, seed=0, out=out)
    with pytest.raises(SystemExit, match="no judgement"):
        bench.summarise(out)
    result = json.loads(out.read_text())
    for pair in result["pairs"]:
        pair["judgement"] = "copy" if pair["measure"] == "cosine+overlap" else "different"
        pair["why"] = "read"
    out.write_text(json.dumps(result))
    bench.summarise(out)
    judged = json.loads(out.read_text())["judged"]
    assert (judged["copy"], judged["different"], judged["share_copy"]) == (1, 1, 0.5)
    assert judged["by_measure"] == {"cosine": {"different": 1}, "cosine+overlap": {"copy": 1}}


def test_a_release_note_body_drops_only_its_own_lines() -> None:
    """Title and "Fixes since" lines go (a backport under a new version is the same body); cited versions stay."""
    a = "Git v2.4.10 Release Notes\n=====\n\nFixes since v2.4.9\n-----\n\n * cap xdiff input\n   at 1GB"
    b = "Git v2.3.10 Release Notes\n=====\n\nFixes since v2.3.9\n-----\n\n * cap xdiff input at 1GB"
    c = "Git v2.18.3 Release Notes\n=====\n\nThis release merges the fix that appears in v2.17.4."
    d = "Git v2.33.5 Release Notes\n=====\n\nThis release merges the fix that appears in v2.30.6."
    assert bench._body(a) == bench._body(b) == "* cap xdiff input at 1GB"
    assert bench._body(c) != bench._body(d)
    assert bench._VERSION.sub("V", bench._body(c)) == bench._VERSION.sub("V", bench._body(d))
