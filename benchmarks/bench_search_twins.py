r"""Issue 21: folding near-identical twins among search hits, calibrated on real twins, and what it costs a query.

The set (:mod:`benchmarks.datasets.twins`): the Node.js API pages shipped as ``.md`` and ``.html`` (twins)
against different API pages, git's release notes of different versions and different git man pages, indexed
with the packaged model (``--max-windows 8``). For every pair of one half it computes the twin check's two
numbers, the cosine of the stored embeddings and the word-shingle Jaccard of the stored texts (each cut to a
number of characters: the cost bound), and sweeps the gate, the threshold and the cut on the validation half;
the test half reports the chosen setting's precision and recall per kind of pair.

Then the cost, in this process on the same index: the judged questions of ``bench_search_modes`` and the
Node.js pages' titles, embedded once, each searched (``k`` 10, default options) with the twin check and with it
switched off (the gate set above 1), alternating; the median search time of each and the time spent in the
check itself (:meth:`semhash.search.twins.TwinCheck.fold`), and which pairs it folded in those top 10s.

Usage:
    SEMHASH_BENCH_CACHE=/work/bench-cache PYTHONPATH=$PWD OMP_NUM_THREADS=1 .venv/bin/python \
        -m benchmarks.bench_search_twins --out benchmarks/results/search_twins.json
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np

from benchmarks.datasets import twins as dataset
from benchmarks.harness import CACHE, write_result

DB = CACHE / "twins" / "twins.db"
QUERIES = Path(__file__).resolve().parent / "datasets" / "search_modes" / "usr_share_doc_queries.json"
#: The sweep: characters compared (``None``: the whole text), cosine gates, Jaccard thresholds.
CHARS = (8_000, 16_000, 32_000, 64_000, None)
GATES = (0.0, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9)
THRESHOLDS = tuple(round(x, 2) for x in np.arange(0.3, 0.96, 0.05))
KINDS = ("twin", "sibling", "relnotes", "man")
#: Release notes whose number-masked words are this similar (edit similarity) are one note re-issued.
REISSUE_RATIO = 0.9
SPLITS = ("validation", "test")


def build(db: Path) -> float:
    """Index the set's folders into ``db`` (the packaged model, 8 windows a document); returns seconds."""
    includes = [arg for pattern in dataset.INCLUDE for arg in ("--include", pattern)]
    cmd = [sys.executable, "-m", "semhash.cli", "index", *map(str, dataset.folders()), "--db", str(db), *includes]
    cmd += ["--max-windows", "8", "--device", "cpu", "--quiet"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def stored(db: Path, docs: list[dataset.Document]) -> tuple[dict[Path, str], dict[Path, np.ndarray]]:
    """Each document's stored text and unit embedding, by path."""
    from semhash.store import Store

    texts, vectors = {}, {}
    with Store.open(db) as store:
        for doc in docs:
            (row,) = store.find(str(doc.path))
            texts[doc.path] = row.text
            vectors[doc.path] = store.embeddings([row.id])[1][0]
    return texts, vectors


def reissue(a: str, b: str) -> bool:
    """Whether two release notes are one announcement re-issued: their words, every number masked, 90% the same.

    By edit similarity of the word sequences (:class:`difflib.SequenceMatcher`), not by shingles: git re-issues
    a security note under each maintained version (2.22.2, 2.23.1 and 2.24.1 differ in their title alone).
    """
    wa, wb = (re.sub(r"\d+", "0", t).split() for t in (a, b))
    return difflib.SequenceMatcher(None, wa, wb, autojunk=False).ratio() >= REISSUE_RATIO


def features(pairs: list[dataset.Pair], texts: dict[Path, str], vectors: dict[Path, np.ndarray]) -> list[dict]:
    """Per pair: kind, half, cosine, the Jaccard at every cut of :data:`CHARS`, and (release notes) :func:`reissue`."""
    from semhash.overlap import jaccard, shingle_set

    sets = {cut: {p: shingle_set(t[:cut] if cut else t) for p, t in texts.items()} for cut in CHARS}
    rows = []
    for pair in pairs:
        a, b = pair.a.path, pair.b.path
        overlaps = {str(cut): jaccard(sets[cut][a], sets[cut][b]) for cut in CHARS}
        row: dict[str, object] = {
            "a": a.name,
            "b": b.name,
            "kind": pair.kind,
            "split": pair.a.split,
            "cosine": float(vectors[a] @ vectors[b]),
            "jaccard": overlaps,
        }
        if pair.kind == "relnotes":
            # a pair sharing under a third of its word pairs cannot have 90% of its words in the same order
            row["reissue"] = overlaps["None"] >= 0.3 and reissue(texts[a], texts[b])
        rows.append(row)
    return rows


def score(rows: list[dict], cut: int | None, gate: float, threshold: float) -> dict:
    """Precision and recall of "fold" (cosine >= gate and Jaccard >= threshold) over ``rows``, false folds by kind.

    ``precision``: twins among the folds that are not re-issued release notes (those are one text: neither right
    nor wrong here, counted in ``reissues_folded``); ``precision_all_notes_negative``: every release-note pair
    counted as wrong.
    """
    folded = [r for r in rows if r["cosine"] >= gate and r["jaccard"][str(cut)] >= threshold]
    tp = sum(r["kind"] == "twin" for r in folded)
    twins = sum(r["kind"] == "twin" for r in rows)
    reissues = sum(bool(r.get("reissue")) for r in folded)
    false = [r for r in folded if r["kind"] != "twin" and not r.get("reissue")]
    return {
        "chars": cut,
        "gate": gate,
        "threshold": threshold,
        "twins": twins,
        "folded_twins": tp,
        "recall": tp / twins if twins else 0.0,
        "precision": tp / (tp + len(false)) if tp + len(false) else 1.0,
        "false_folds": {k: sum(r["kind"] == k for r in false) for k in ("sibling", "relnotes", "man")},
        "reissues_folded": reissues,
        "reissues": sum(bool(r.get("reissue")) for r in rows),
        "precision_all_notes_negative": tp / len(folded) if folded else 1.0,
    }


def choose(rows: list[dict]) -> tuple[dict, list[dict]]:
    """The setting chosen on validation, and the whole sweep.

    The rule: no false fold (a different API page, man page, or release note that is not a re-issue); among
    those settings with a bounded cut, the highest recall; ties to the smaller cut (cheaper), then the higher
    gate (fewer texts compared), then the higher threshold (more margin).
    """
    valid = [r for r in rows if r["split"] == "validation"]
    sweep = [score(valid, cut, gate, t) for cut in CHARS for gate in GATES for t in THRESHOLDS]
    ok = [s for s in sweep if s["chars"] is not None and not any(s["false_folds"].values())]
    best = max(ok, key=lambda s: (s["recall"], -s["chars"], s["gate"], s["threshold"]))
    return best, sweep


def timed() -> tuple[list[float], type]:
    """A list of seconds and a :class:`~semhash.search.twins.TwinCheck` whose every fold appends its time to it."""
    from semhash.search.twins import TwinCheck

    spent: list[float] = []

    class Timed(TwinCheck):
        """The twin check, timed."""

        def fold(self, ids: list[int], texts: dict[int, str], limit: int) -> tuple[list[int], dict]:
            t0 = time.perf_counter()
            try:
                return super().fold(ids, texts, limit)
            finally:
                spent.append(time.perf_counter() - t0)

    return spent, Timed


def latency(db: Path, k: int, repeats: int) -> dict:
    """In-process search time without the twin check, with it (cold and warm shingle cache), and what it folded."""
    import semhash.search.searcher as searcher_module
    import semhash.search.twins as twins
    from semhash.search import QueryOptions, Searcher

    questions = [q["query"] for q in json.loads(QUERIES.read_text())["questions"]]
    titles = []
    for md in sorted(dataset.NODE_API.glob("*.md")):
        first = md.read_text(errors="replace").lstrip().splitlines()[0]
        titles.append(first.lstrip("# ").strip())
    queries = questions + titles
    spent, timed_check = timed()
    times: dict[str, list[float]] = {"off": [], "cold": [], "warm": []}
    check_ms: dict[str, list[float]] = {"cold": [], "warm": []}
    groups: list[dict] = []
    timed_fold = mock.patch.object(searcher_module, "TwinCheck", timed_check)
    # off: a gate above every cosine, so no text is compared (the fold's walk remains); cold: no shingle set kept
    # from an earlier query (every text shingled); warm: the same query again, its texts' sets kept (as served)
    # "first" (not measured): the query's rows read once, so no variant pays for reading them from disk first
    settings = {"first": (2.0, 0), "off": (2.0, 0), "cold": (twins.TWIN_COSINE, 0)}
    settings["prime"] = settings["warm"] = (twins.TWIN_COSINE, twins.CACHE_HASHES)
    with Searcher(db, device="cpu", runtime="torch") as searcher, timed_fold:
        searcher.warm()
        embedded = [searcher.embed_and_code(q) for q in queries]
        for repeat in range(repeats):
            for (embedding, code), query in zip(embedded, queries, strict=True):
                for variant, (gate, kept) in settings.items():
                    with mock.patch.object(twins, "TWIN_COSINE", gate), mock.patch.object(twins, "CACHE_HASHES", kept):
                        spent.clear()
                        t0 = time.perf_counter()
                        hits = searcher.search_embedding(embedding, code, QueryOptions(k=k), text=query)
                        ms = (time.perf_counter() - t0) * 1000
                    if variant in times:
                        times[variant].append(ms)
                    if variant in check_ms:
                        check_ms[variant].append(sum(spent) * 1000)
                    if variant != "cold" or repeat:
                        continue
                    for hit in hits:
                        near = [f.location for f in hit.folded if f.overlap is not None]
                        if near:
                            groups.append({"query": query, "hit": Path(hit.path).name,
                                           "twins": [Path(p).name for p in near]})  # fmt: skip
    same_page = sum(all(Path(t).stem == Path(g["hit"]).stem for t in g["twins"]) for g in groups)
    return {
        "queries": len(queries),
        "repeats": repeats,
        "k": k,
        "search_ms_median": {v: statistics.median(t) for v, t in times.items()},
        "check_ms_median": {v: statistics.median(t) for v, t in check_ms.items()},
        "check_ms_p90": {v: float(np.percentile(t, 90)) for v, t in check_ms.items()},
        "check_ms_max": {v: max(t) for v, t in check_ms.items()},
        "folded_groups": len(groups),
        "folded_groups_same_page": same_page,
        "groups": groups,
    }


def worst_case(k: int, repeats: int) -> dict:
    """The check's bound: ``k`` hits, all at cosine 1 (every pair compared), each a real text of ``TWIN_CHARS``.

    No pair folds (ten different Node.js pages), so every text is shingled and every pair's Jaccard computed.
    """
    from semhash.caches.vectors import VectorCache
    from semhash.search.twins import TWIN_CHARS, TwinCheck

    pages = sorted(dataset.NODE_API.glob("*.md"), key=lambda p: -p.stat().st_size)[:k]
    texts = {i: p.read_text(errors="replace")[:TWIN_CHARS] for i, p in enumerate(pages)}
    one = np.ones((k, 8), np.float32) / np.sqrt(8)
    vectors = VectorCache.in_memory(8, 32, [(np.arange(k), np.zeros(k, np.int64), one)])
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        kept, _folded = TwinCheck(vectors).fold(list(range(k)), texts, k)
        times.append((time.perf_counter() - t0) * 1000)
        assert len(kept) == k
    return {"k": k, "chars": TWIN_CHARS, "ms_median": statistics.median(times), "ms_max": max(times)}


def at_scale(size: int, k: int, repeats: int) -> dict:
    """In-process search time with and without the check on ``bench_serve``'s synthetic index of ``size`` documents.

    Its synthetic embeddings are random (no pair of them passes the gate; the sample corpus's real documents, which
    the queries find, may), so this is the check's cost when nothing or little folds, its shingle sets kept across
    queries as served. Built once under ``CACHE/twins`` (not ``bench_serve``'s own folder).
    """
    import benchmarks.bench_serve as bench_serve
    import semhash.search.searcher as searcher_module
    import semhash.search.twins as twins
    from semhash.search import QueryOptions, Searcher

    with mock.patch.object(bench_serve, "CACHE", CACHE / "twins"):
        db = bench_serve.build_db(size)
    spent, timed_check = timed()
    times: dict[bool, list[float]] = {True: [], False: []}
    check_ms: list[float] = []
    with Searcher(db, device="cpu") as searcher, mock.patch.object(searcher_module, "TwinCheck", timed_check):
        searcher.warm()
        embedded = [searcher.embed_and_code(bench_serve.query_text(i)) for i in range(len(bench_serve.QUERIES))]
        for repeat in range(repeats):
            for embedding, code in embedded:
                searcher.search_embedding(embedding, code, QueryOptions(k=k))  # its rows read once, not measured
                for on in (True, False) if repeat % 2 else (False, True):  # each first in half of the repeats
                    with mock.patch.object(twins, "TWIN_COSINE", twins.TWIN_COSINE if on else 2.0):
                        spent.clear()
                        t0 = time.perf_counter()
                        searcher.search_embedding(embedding, code, QueryOptions(k=k))
                        times[on].append((time.perf_counter() - t0) * 1000)
                    if on:
                        check_ms.append(sum(spent) * 1000)
    return {
        "documents": size,
        "searches": len(times[True]),
        "search_ms_median_with_check": statistics.median(times[True]),
        "search_ms_median_without": statistics.median(times[False]),
        "check_ms_median": statistics.median(check_ms),
        "check_ms_max": max(check_ms),
    }


def main() -> None:
    """Build (when asked or missing), sweep on validation, report on test, time the check."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", type=Path, default=DB)
    parser.add_argument("--index", action="store_true", help="(Re)build the index first.")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scale", type=int, default=100_000, help="Documents of the synthetic index (0: skip).")
    parser.add_argument("--out", default="search_twins")
    args = parser.parse_args()
    docs = dataset.documents()
    seconds = build(args.db) if args.index or not args.db.exists() else None
    texts, vectors = stored(args.db, docs)
    rows = features(dataset.pairs(docs), texts, vectors)
    best, sweep = choose(rows)
    test = [r for r in rows if r["split"] == "test"]
    chosen = (best["chars"], best["gate"], best["threshold"])
    reported = {
        "validation": best,
        "test": score(test, *chosen),
        "test_at_cosine_alone": [score(test, None, g, 0.0) for g in (0.85, 0.88, 0.9, 0.95)],
    }
    cut = str(best["chars"])

    def folds(r: dict) -> bool:
        return r["cosine"] >= best["gate"] and r["jaccard"][cut] >= best["threshold"]

    twins_test = sorted((r for r in test if r["kind"] == "twin"), key=lambda r: r["jaccard"][cut])
    false_test = [r for r in test if r["kind"] != "twin" and folds(r)]
    print(json.dumps(reported, indent=1))
    missed = [(r["a"], round(r["cosine"], 3), round(r["jaccard"][cut], 3)) for r in twins_test if not folds(r)]
    print("test twins missed:", missed)
    print("test false folds:", [(r["a"], r["b"], r["kind"], r.get("reissue")) for r in false_test])
    cost = latency(args.db, args.k, args.repeats)
    print(json.dumps({k: v for k, v in cost.items() if k != "groups"}, indent=1))
    bound = worst_case(args.k, 20)
    print("worst case:", bound)
    scale = at_scale(args.scale, args.k, 30) if args.scale else None
    print("at scale:", scale)
    pairs = {s: {k: sum(r["kind"] == k and r["split"] == s for r in rows) for k in KINDS} for s in SPLITS}
    write_result(
        args.out,
        {
            "index_seconds": seconds,
            "pairs": pairs,
            "chosen": {"chars": best["chars"], "gate": best["gate"], "threshold": best["threshold"]},
            **reported,
            "test_twins_missed": [r for r in twins_test if not folds(r)],
            "test_false_folds": false_test,
            "latency": cost,
            "worst_case": bound,
            "at_scale": scale,
            "sweep": sweep,
        },
    )


if __name__ == "__main__":
    main()
