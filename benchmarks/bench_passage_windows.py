r"""Issue 21: the matched passage from window vectors stored at index time: storage, index time, query latency.

Stages (each optional):

* ``--index``: index the judged real folder of ``bench_search_modes`` (``/usr/share/doc``'s 31 package folders,
  ``--max-windows 8``, torch, in process) into ``--db``, recording the run's embed seconds and windows;
* storage (always, on ``--db``): rows, bytes of the ``windows`` table and its index (SQLite's ``dbstat``), per
  window and against the whole file;
* ``--store-reps N``: what storing the windows adds to indexing: the index's own documents, embeddings and
  window vectors written again into a scratch database, with and without their windows, interleaved ``N``
  times (no model: the storage cost alone), set against the embed seconds per window of ``--index``;
* ``--queries``: the 48 judged questions, in process on the same index (torch, one thread): the query embedded
  and coded, the search, then the passages from stored windows; medians of each, and the ratio of the query with
  passages to the query without;
* ``--newsgroups FILE``: the windows of every 20 Newsgroups post (the indexer's own windowing, tokenizer only,
  all windows as ``index`` keeps by default, and with ``--max-windows 8``), and their size at the bytes per window
  measured above.

Usage:
    PYTHONPATH=$PWD OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.bench_passage_windows --db /tmp/pw.db --index \
        --store-reps 5 --queries --newsgroups $SEMHASH_BENCH_CACHE/20ng/20ng-stripped.jsonl \
        --out benchmarks/results/passage_windows.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_search_modes import QUERIES
from benchmarks.harness import write_result


def index_folder(db: Path, spec: dict, max_windows: int) -> dict:
    """Index the spec's folders in process; the report's seconds, embed seconds and windows."""
    from semhash.corpus import ReadOptions
    from semhash.ingest import IndexOptions, index_paths

    root = Path(spec["root"])
    options = IndexOptions(
        device="cpu", max_windows=max_windows, read=ReadOptions(include=spec["include"]), runtime_export=False
    )
    t0 = time.perf_counter()
    report = index_paths(db, [str(root / p) for p in spec["packages"]], options)
    return {
        "seconds": round(time.perf_counter() - t0, 1),
        "embed_seconds": round(report.embed_seconds, 1),
        "windows_embedded": report.windows,
        "documents": report.total_documents,
        "embed_ms_per_window": round(1000 * report.embed_seconds / max(1, report.windows), 2),
    }


def storage(db: Path) -> dict:
    """The ``windows`` table's rows and bytes (table + index, from ``dbstat``), per window and of the file."""
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        sizes = dict(conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall())
        windows, docs = conn.execute("SELECT count(*), count(DISTINCT doc_id) FROM windows").fetchone()
        total_docs = conn.execute("SELECT count(*) FROM documents").fetchone()[0]
        text_chars = conn.execute("SELECT sum(n_chars) FROM documents").fetchone()[0]
        page = conn.execute("PRAGMA page_size").fetchone()[0] * conn.execute("PRAGMA page_count").fetchone()[0]
    finally:
        conn.close()
    table = int(sizes.get("windows", 0)) + int(sizes.get("windows_doc", 0))
    return {
        "documents": total_docs,
        "documents_with_windows": docs,
        "windows": windows,
        "windows_per_document": round(windows / max(1, docs), 2),
        "text_chars": text_chars,
        "windows_table_bytes": int(sizes.get("windows", 0)),
        "windows_index_bytes": int(sizes.get("windows_doc", 0)),
        "bytes_per_window": round(table / max(1, windows), 1),
        "documents_table_bytes": int(sizes.get("documents", 0)),
        "database_bytes": page,
        "windows_share_of_database": round(table / max(1, page), 3),
    }


def store_cost(db: Path, reps: int) -> dict:
    """Seconds to write the index's documents with and without their windows (scratch databases, interleaved)."""
    from semhash.store import Store
    from semhash.types import SourceDocument

    with Store.open(db) as store:
        ids, embeddings = store.embeddings()
        rows = store.documents(ids.tolist())
        windows = store.windows(ids.tolist())
    docs = [
        SourceDocument(path=rows[i].path, record=rows[i].record, text=rows[i].text, content_hash=str(i), mtime=0.0)
        for i in ids.tolist()
    ]
    spans = [
        (np.stack([windows[i].starts, windows[i].ends], axis=1), windows[i].vectors)
        if i in windows
        else (np.zeros((0, 2), np.int64), np.zeros((0, embeddings.shape[1]), np.float16))
        for i in ids.tolist()
    ]
    n_windows = sum(len(s) for s, _ in spans)
    times: dict[str, list[float]] = {"without": [], "with": []}
    with tempfile.TemporaryDirectory() as scratch:
        for rep in range(reps):
            for kind in ("without", "with"):
                path = Path(scratch) / f"{kind}-{rep}.db"
                with Store.open(path, create=True) as target:
                    target.check_embedding_model("bench", embeddings.shape[1])
                    t0 = time.perf_counter()
                    for start in range(0, len(docs), 64):  # the indexer's batches of 64 documents
                        chunk = slice(start, start + 64)
                        target.upsert_documents(
                            docs[chunk], embeddings[chunk], spans[chunk] if kind == "with" else None
                        )
                    times[kind].append(time.perf_counter() - t0)
    without, with_ = statistics.median(times["without"]), statistics.median(times["with"])
    return {
        "reps": reps,
        "documents": len(docs),
        "windows": n_windows,
        "store_seconds_without_windows": round(without, 3),
        "store_seconds_with_windows": round(with_, 3),
        "added_ms_per_window": round(1000 * (with_ - without) / max(1, n_windows), 3),
        "all_seconds": {k: [round(x, 3) for x in v] for k, v in times.items()},
    }


def query_latency(db: Path, spec: dict, reps: int) -> dict:
    """Median ms of embedding, searching and the stored passages, per judged question, in process."""
    from semhash.search import QueryOptions, Searcher

    embed_ms: list[float] = []
    search_ms: list[float] = []
    passage_ms: list[float] = []
    with_stored = 0
    hits_seen = 0
    with Searcher(db, device="cpu", runtime="torch") as searcher:
        searcher.warm()
        for question in spec["questions"]:
            for _ in range(reps):
                t0 = time.perf_counter()
                embedding, code = searcher.embed_and_code(question["q"])
                t1 = time.perf_counter()
                hits = searcher.search_embedding(embedding, code, QueryOptions(), text=question["q"])
                t2 = time.perf_counter()
                found = searcher.passages(hits, question["q"], embedding)
                t3 = time.perf_counter()
                embed_ms.append(1000 * (t1 - t0))
                search_ms.append(1000 * (t2 - t1))
                passage_ms.append(1000 * (t3 - t2))
            hits_seen += len(found)
            with_stored += sum(1 for h in found if h.passage is not None and h.passage["source"] == "stored")
    query = [e + s for e, s in zip(embed_ms, search_ms, strict=True)]
    full = [q + p for q, p in zip(query, passage_ms, strict=True)]
    return {
        "questions": len(spec["questions"]),
        "reps": reps,
        "k": QueryOptions().k,
        "hits_with_stored_passage": f"{with_stored}/{hits_seen}",
        "embed_ms_median": round(statistics.median(embed_ms), 2),
        "search_ms_median": round(statistics.median(search_ms), 2),
        "passages_ms_median": round(statistics.median(passage_ms), 2),
        "passages_ms_p90": round(float(np.percentile(passage_ms, 90)), 2),
        "query_ms_median_without": round(statistics.median(query), 2),
        "query_ms_median_with": round(statistics.median(full), 2),
        "ratio_with_to_without": round(statistics.median(full) / statistics.median(query), 3),
        "search_ratio_with_to_without": round(
            statistics.median([s + p for s, p in zip(search_ms, passage_ms, strict=True)])
            / statistics.median(search_ms),
            3,
        ),
    }


def newsgroups_windows(path: Path, bytes_per_window: float) -> dict:
    """Every post's windows as the indexer cuts them (all, and at most 8), and their size at ``bytes_per_window``."""
    from semhash.embed import EncodeStats, SentenceTransformerEncoder, chunked_spans, spread_windows

    encoder = SentenceTransformerEncoder(device="cpu")
    stats = EncodeStats()
    every = capped = posts = chars = 0
    t0 = time.perf_counter()
    with path.open() as lines:
        for line in lines:
            text = json.loads(line)["text"]
            if not text.strip():
                continue
            n = sum(1 for _ in chunked_spans(text, encoder._tokenize_chunk, encoder.max_tokens, 200_000, stats))
            posts += 1
            chars += len(text)
            every += n
            capped += len(spread_windows(n, 8))
    dim = encoder.dim
    return {
        "posts": posts,
        "text_chars": chars,
        "windows_all": every,
        "windows_max_8": capped,
        "windows_per_post": round(every / max(1, posts), 2),
        "bytes_per_window_used": bytes_per_window,
        "windows_bytes_all": round(every * bytes_per_window),
        "windows_bytes_max_8": round(capped * bytes_per_window),
        "document_embeddings_bytes": posts * 4 * dim,
        "tokenize_seconds": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    """Run the stages asked for and write the result file."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--index", action="store_true", help="Index the judged folder into --db first.")
    parser.add_argument("--max-windows", type=int, default=8)
    parser.add_argument("--store-reps", type=int, default=0)
    parser.add_argument("--queries", action="store_true")
    parser.add_argument("--query-reps", type=int, default=3)
    parser.add_argument("--newsgroups", type=Path)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/passage_windows.json"))
    args = parser.parse_args()
    spec = json.loads(QUERIES.read_text())
    result: dict[str, object] = {"load_before": os.getloadavg()}
    if args.index:
        result["index"] = index_folder(args.db, spec, args.max_windows)
        print("index", result["index"], flush=True)
    result["storage"] = size = storage(args.db)
    print("storage", size, flush=True)
    if args.store_reps:
        result["store_cost"] = store_cost(args.db, args.store_reps)
        print("store_cost", result["store_cost"], flush=True)
    if args.queries:
        result["queries"] = query_latency(args.db, spec, args.query_reps)
        print("queries", result["queries"], flush=True)
    if args.newsgroups:
        result["newsgroups"] = newsgroups_windows(args.newsgroups, float(size["bytes_per_window"]))
        print("newsgroups", result["newsgroups"], flush=True)
    result["load_after"] = os.getloadavg()
    write_result(args.out, result)


if __name__ == "__main__":
    main()
