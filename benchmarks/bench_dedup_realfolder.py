"""Dedup on a real documentation folder, judged by reading (issue 22): a seeded sample of reported near pairs.

Run from the repository root, after indexing a real folder and deduplicating it at the defaults::

    semhash index /usr/share/doc --db /tmp/rf-dedup/doc.db --max-windows 64
    semhash dedup --db /tmp/rf-dedup/doc.db --json > /tmp/rf-dedup/dedup.jsonl
    python -m benchmarks.bench_dedup_realfolder sample --db /tmp/rf-dedup/doc.db \
        --dedup /tmp/rf-dedup/dedup.jsonl --out benchmarks/results/realfolder_dedup_judged.json
    # read both files of every sampled pair, write "judgement" and "why" into the file, then:
    python -m benchmarks.bench_dedup_realfolder summarise --out benchmarks/results/realfolder_dedup_judged.json
    python -m benchmarks.bench_dedup_realfolder templated --db /tmp/rf-dedup/doc.db   # short git notes, MRPC

``sample`` draws ``--n`` (30) of the reported *near* duplicates (``random.Random(--seed)``, default 0; a
reported duplicate is the pair (duplicate, the document it matched)) and writes, for each, the two paths, the
cosine, the overlap and measure the run reported, and what a reader needs beside the texts: their stored
lengths, whether each is longer than one encoder window, their 2-word shingle Jaccard (measured for every
pair, also where the run did not need it) and a line diff count of the stored texts. The fields
``judgement`` (``copy``, ``borderline`` or ``different``) and ``why`` are left for the reader.
It also summarises every reported near pair (not only the sample) by measure and by their Jaccard, so a
systematic wrong verdict shows beyond the sample. ``summarise`` counts the judgements (overall and by
measure) into the same file. ``templated`` studies the short git release notes behind most wrong verdicts:
every pair of one-window notes above cosine 0.8, by what differs between them, and what each check would keep
(the number veto, a higher threshold, a short-text shingle gate, an IDF-weighted overlap), beside MRPC's
paraphrase pairs, which any such default would have to keep.

The judging itself is a person's: nothing here decides whether two texts are the same document.
"""

from __future__ import annotations

import argparse
import collections
import difflib
import itertools
import json
import math
import random
import re
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.harness import write_result
from semhash.dedup.text import numbers_conflict
from semhash.overlap import is_long, jaccard, shingle_set

JUDGEMENTS = ("copy", "borderline", "different")
#: A git release note's own lines: its title, its "Fixes since" line and their underlines.
_OWN_LINES = re.compile(r"^\s*(git v?[\d.]+ release notes|fixes since v?[\d.]+|[=-]+)\s*$", re.IGNORECASE)
_VERSION = re.compile(r"v?\d+(?:\.\d+)+")
#: Jaccard buckets for the summary of every reported near pair.
BUCKETS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.01)


def read_rows(path: Path) -> list[dict[str, object]]:
    """The duplicate rows of a ``semhash dedup --json`` output (lines without ``reason`` are skipped)."""
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            if "reason" in row:
                rows.append(row)
    return rows


def read_texts(db: Path, ids: set[int]) -> dict[int, tuple[str, str]]:
    """``id -> (path, stored text)`` for the documents ``ids`` of the index ``db`` (read only)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        marks = ",".join("?" * len(ids))
        cur = con.execute(f"select id, path, text from documents where id in ({marks})", sorted(ids))
        return {int(i): (str(p), str(t)) for i, p, t in cur}
    finally:
        con.close()


def _bucket(value: float) -> str:
    """The :data:`BUCKETS` range ``value`` falls in, as ``"lo-hi"``."""
    for lo, hi in itertools.pairwise(BUCKETS):
        if lo <= value < hi:
            return f"{lo:.1f}-{min(hi, 1.0):.1f}"
    return "nan"


def pair_facts(a: tuple[str, str], b: tuple[str, str]) -> dict[str, object]:
    """What a reader needs beside the texts: lengths, long or short, 2-word Jaccard, a line diff count."""
    (path_a, text_a), (path_b, text_b) = a, b
    diff = [
        line
        for line in difflib.unified_diff(text_a.splitlines(), text_b.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    return {
        "chars": [len(text_a), len(text_b)],
        "long": [is_long(text_a), is_long(text_b)],
        "jaccard_2w": round(jaccard(shingle_set(text_a), shingle_set(text_b)), 4),
        "diff_lines": len(diff),
        "lines": [len(text_a.splitlines()), len(text_b.splitlines())],
        "same_folder": str(Path(path_a).parent) == str(Path(path_b).parent),
    }


def sample(db: Path, dedup: Path, n: int, seed: int, out: Path) -> None:
    """Draw ``n`` reported near pairs and write them, with the run's counts, to ``out`` for judging."""
    rows = read_rows(dedup)
    near = [r for r in rows if r["reason"] == "near"]
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    documents = int(con.execute("select count(*) from documents").fetchone()[0])
    con.close()
    ids = {int(str(r["duplicate_id"])) for r in near} | {int(str(r["matched_id"])) for r in near}
    texts = read_texts(db, ids)
    # Every reported near pair, not only the sample: measure and Jaccard, to see a systematic verdict.
    everyone: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for r in near:
        facts = pair_facts(texts[int(str(r["duplicate_id"]))], texts[int(str(r["matched_id"]))])
        everyone[str(r["measure"])][_bucket(float(str(facts["jaccard_2w"])))] += 1
    picked = random.Random(seed).sample(near, min(n, len(near)))
    pairs = []
    for r in picked:
        dup, match = int(str(r["duplicate_id"])), int(str(r["matched_id"]))
        pairs.append(
            {
                "duplicate": texts[dup][0],
                "matched": texts[match][0],
                "cosine": r["score"],
                "overlap": r["overlap"],
                "measure": r["measure"],
                "reason": r["reason"],
                **pair_facts(texts[dup], texts[match]),
                "judgement": None,
                "why": None,
            }
        )
    folders = collections.Counter(str(Path(str(r["duplicate_location"])).parent) for r in rows)
    result = {
        "documents": documents,
        "duplicates": len(rows),
        "exact": len(rows) - len(near),
        "near": len(near),
        "clusters": len({r["cluster"] for r in rows}),
        "near_by_measure": dict(collections.Counter(str(r["measure"]) for r in near)),
        "near_by_measure_and_jaccard_2w": {k: dict(sorted(v.items())) for k, v in everyone.items()},
        "duplicates_by_folder": dict(folders.most_common(15)),
        "sample": {"n": len(pairs), "seed": seed, "from": "reported near duplicates (duplicate, matched)"},
        "pairs": pairs,
    }
    write_result(out, result)
    print(f"{len(pairs)} of {len(near)} near pairs written to {out}", file=sys.stderr)


def summarise(out: Path) -> None:
    """Count the judgements in ``out`` (overall and by measure) and write the counts back into it."""
    result = json.loads(out.read_text())
    run = result.pop("run", None)
    pairs = result["pairs"]
    missing = [k for k, p in enumerate(pairs) if p.get("judgement") not in JUDGEMENTS or not p.get("why")]
    if missing:
        raise SystemExit(f"pairs {missing} have no judgement (one of {', '.join(JUDGEMENTS)}) and why")
    overall = collections.Counter(p["judgement"] for p in pairs)
    by_measure: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for p in pairs:
        by_measure[p["measure"]][p["judgement"]] += 1
    result["judged"] = {
        "copy": overall["copy"],
        "borderline": overall["borderline"],
        "different": overall["different"],
        "share_copy": round(overall["copy"] / len(pairs), 3),
        "by_measure": {k: dict(v) for k, v in by_measure.items()},
    }
    if run is not None:
        result["run"] = run  # the run that drew the sample; the judging adds nothing to time
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["judged"], indent=1))


_IDF_WORD = re.compile(r"\w+(?:[.\-]\w+)*")  # keeps v2.17.4, CVE-2018-17456 and pip_list whole


def _idf_overlap(texts: list[str]) -> Callable[[str, str], float]:
    """An overlap of two texts' word sets weighted by each word's IDF in ``texts`` (template words weigh little)."""
    df = collections.Counter(w for t in texts for w in set(_IDF_WORD.findall(t.casefold())))
    n = len(texts)

    def overlap(a: str, b: str) -> float:
        wa, wb = set(_IDF_WORD.findall(a.casefold())), set(_IDF_WORD.findall(b.casefold()))
        union = sum(math.log((n + 1) / (df.get(w, 0) + 1)) for w in wa | wb)
        return sum(math.log((n + 1) / (df.get(w, 0) + 1)) for w in wa & wb) / union if union else 0.0

    return overlap


def _body(text: str) -> str:
    """A release note less its own lines (title, "Fixes since"), whitespace collapsed."""
    return " ".join(" ".join(line for line in text.splitlines() if not _OWN_LINES.match(line)).split())


def _unit_embeddings(blobs: list[bytes]) -> np.ndarray:
    """Stored embeddings (little-endian float32 blobs, as the store writes them) as unit rows."""
    matrix = np.stack([np.frombuffer(b, dtype="<f4") for b in blobs]).astype(np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def templated(db: Path, out: Path, threshold: float = 0.8) -> None:
    """Short templated release notes: every pair of one-window git notes above ``threshold``, by what differs.

    Classes (mechanical, from the text): ``same_body`` (identical once the note's own title and "Fixes since"
    lines are dropped: a backported fix under a new version number), ``same_but_cited_versions`` (the same
    sentence citing other releases) and ``different_body``. For each: cosines, 2-word Jaccard, and how many
    pairs the number veto, a higher threshold and a short-text shingle gate would keep. Beside them, the
    2-word Jaccard of MRPC's paraphrase pairs, which the same gate would have to keep, and an IDF-weighted word
    overlap (IDF over the folder, or over MRPC) of the judged sample's short pairs and of MRPC's paraphrases: does
    weighting template words down separate them? Written into ``out``.
    """
    from benchmarks.bench_dedup import load_mrpc

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute("select text, embedding from documents where path like '%/git/RelNotes/%'").fetchall()
    finally:
        con.close()
    texts = [str(t) for t, _ in rows]
    unit = _unit_embeddings([bytes(e) for _, e in rows])
    sims = unit @ unit.T
    short = [not is_long(t) for t in texts]
    sets = [shingle_set(t) for t in texts]
    found: dict[str, list[tuple[float, float, bool]]] = collections.defaultdict(list)
    for a in range(len(texts)):
        for b in range(a + 1, len(texts)):
            if sims[a, b] >= threshold and short[a] and short[b]:
                ba, bb = _body(texts[a]), _body(texts[b])
                kind = (
                    "same_body"
                    if ba == bb
                    else "same_but_cited_versions"
                    if _VERSION.sub("V", ba) == _VERSION.sub("V", bb)
                    else "different_body"
                )
                found[kind].append((float(sims[a, b]), jaccard(sets[a], sets[b]), numbers_conflict(texts[a], texts[b])))
    classes = {}
    for kind, values in found.items():
        cos = np.array([v[0] for v in values])
        jac = np.array([v[1] for v in values])
        veto = np.array([v[2] for v in values])
        classes[kind] = {
            "pairs": len(values),
            "cosine_p5_p50_p95": np.percentile(cos, [5, 50, 95]).round(3).tolist(),
            "jaccard_2w_p5_p50_p95": np.percentile(jac, [5, 50, 95]).round(3).tolist(),
            "kept_at_threshold_0.95": int((cos >= 0.95).sum()),
            "kept_by_number_veto": int((~veto).sum()),
            "kept_at_jaccard_0.5": int((jac >= 0.5).sum()),
            "kept_at_jaccard_0.7": int((jac >= 0.7).sum()),
        }
    _, mrpc, labelled = load_mrpc()
    para = np.array([jaccard(shingle_set(mrpc[a]), shingle_set(mrpc[b])) for a, b, label in labelled if label == 1])
    mrpc_idf = _idf_overlap(mrpc)
    para_idf = np.array([mrpc_idf(mrpc[a], mrpc[b]) for a, b, label in labelled if label == 1])
    result = json.loads(out.read_text()) if out.exists() else {}
    run = result.pop("run", None)
    # The judged sample's short pairs (when judged): does an IDF-weighted word overlap separate them?
    idf_by_judgement: dict[str, list[float]] = collections.defaultdict(list)
    short_pairs = [p for p in result.get("pairs", []) if p.get("measure") == "cosine" and p.get("judgement")]
    if short_pairs:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            folder = dict(con.execute("select path, text from documents").fetchall())
        finally:
            con.close()
        folder_idf = _idf_overlap(list(folder.values()))
        for p in short_pairs:
            idf_by_judgement[p["judgement"]].append(round(folder_idf(folder[p["duplicate"]], folder[p["matched"]]), 3))
    result["templated_short_notes"] = {
        "git_notes": len(texts),
        "one_window_notes": int(sum(short)),
        "threshold": threshold,
        "pairs_above_threshold": classes,
        "mrpc_paraphrase_pairs": {
            "pairs": len(para),
            "jaccard_2w_p5_p25_p50_p75": np.percentile(para, [5, 25, 50, 75]).round(3).tolist(),
            "share_at_jaccard_0.5": round(float((para >= 0.5).mean()), 3),
            "share_at_jaccard_0.7": round(float((para >= 0.7).mean()), 3),
            "idf_overlap_p5_p25_p50": np.percentile(para_idf, [5, 25, 50]).round(3).tolist(),
            "share_at_idf_overlap_0.4": round(float((para_idf >= 0.4).mean()), 3),
        },
        "sample_short_pairs_idf_overlap": {k: sorted(v) for k, v in idf_by_judgement.items()},
    }
    if run is not None:
        result["run"] = run
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["templated_short_notes"], indent=1))


def main(argv: list[str] | None = None) -> int:
    """Command line: ``sample`` or ``summarise``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="stage", required=True)
    s = sub.add_parser("sample", help="draw the near pairs to judge")
    s.add_argument("--db", type=Path, required=True)
    s.add_argument("--dedup", type=Path, required=True, help="output of `semhash dedup --json`")
    s.add_argument("--n", type=int, default=30)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", type=Path, default=Path("benchmarks/results/realfolder_dedup_judged.json"))
    m = sub.add_parser("summarise", help="count the judgements")
    m.add_argument("--out", type=Path, default=Path("benchmarks/results/realfolder_dedup_judged.json"))
    t = sub.add_parser("templated", help="short templated git release notes: what differs in pairs above 0.8")
    t.add_argument("--db", type=Path, required=True)
    t.add_argument("--out", type=Path, default=Path("benchmarks/results/realfolder_dedup_judged.json"))
    args = parser.parse_args(argv)
    if args.stage == "sample":
        sample(args.db, args.dedup, args.n, args.seed, args.out)
    elif args.stage == "templated":
        templated(args.db, args.out)
    else:
        summarise(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
