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
* ``--per-hit-windows 8,512,...``: the passage stage's cost for one hit by its stored windows (synthetic vectors
  in a scratch database: the read and the dot product), since ``index`` keeps every window by default;
* ``--snippet-words``: of the judged questions' top 10, how many hits show a query word in their snippet, from
  the stored passage and from the text's opening (the snippet before);
* ``--newsgroups FILE``: the windows of every 20 Newsgroups post (the indexer's own windowing, tokenizer only,
  all windows as ``index`` keeps by default, and with ``--max-windows 8``), and their size at the bytes per row
  measured in a scratch ``windows`` table (with a vector, and NULL for one-window documents).

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
                embedding, code = searcher.embed_and_code(question["query"])
                t1 = time.perf_counter()
                hits = searcher.search_embedding(embedding, code, QueryOptions(), text=question["query"])
                t2 = time.perf_counter()
                found = searcher.passages(hits, question["query"], embedding)
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


def per_hit_windows(sizes: list[int], reps: int = 5, dim: int = 384) -> dict:
    """Ms to read one document's stored windows and find its best one, by its number of windows (synthetic)."""
    from semhash.search.passages import best_window
    from semhash.store import Store
    from semhash.types import SourceDocument

    rng = np.random.default_rng(0)
    query = rng.standard_normal(dim).astype(np.float32)
    query /= np.linalg.norm(query)
    out = {}
    with tempfile.TemporaryDirectory() as scratch:
        for n in sizes:
            path = Path(scratch) / f"w{n}.db"
            vectors = rng.standard_normal((n, dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            spans = np.stack([np.arange(n) * 1000, np.arange(n) * 1000 + 1000], axis=1)
            doc = SourceDocument(path=f"/doc{n}", record=0, text="x" * (n * 1000), content_hash="h", mtime=0.0)
            with Store.open(path, create=True) as store:
                store.check_embedding_model("bench", dim)
                store.upsert_documents([doc], vectors[:1], [(spans, vectors)])
                times = []
                for _ in range(reps):
                    t0 = time.perf_counter()
                    best_window(store.windows([1])[1], query)
                    times.append(1000 * (time.perf_counter() - t0))
            out[str(n)] = round(statistics.median(times), 2)
    return {"reps": reps, "ms_median_by_windows": out}


def relayout(db: Path) -> dict:
    """Bring an index built before one-window documents stored a NULL vector to the shipped layout, then VACUUM.

    The one window of a one-window document has the document's own embedding as its vector (the pool of one
    window), so setting it NULL is exactly what ``index`` writes now.
    """
    import sqlite3

    import sqlite_utils

    from semhash.store.schema import MIGRATIONS

    conn = sqlite3.connect(db)
    try:
        # The table as the shipped migration makes it (an early build declared the vector NOT NULL).
        conn.execute("CREATE TEMP TABLE kept AS SELECT * FROM windows")
        conn.execute("DROP TABLE windows")
        MIGRATIONS[3](sqlite_utils.Database(conn))
        conn.execute("INSERT INTO windows SELECT * FROM kept")
        changed = conn.execute(
            "UPDATE windows SET vector = NULL WHERE vector IS NOT NULL AND doc_id IN"
            " (SELECT doc_id FROM windows GROUP BY doc_id HAVING count(*) = 1)"
        ).rowcount
        conn.commit()
        conn.execute("VACUUM")
    finally:
        conn.close()
    return {"one_window_rows_set_null": changed}


def row_bytes(rows: int = 20_000, dim: int = 384) -> dict:
    """Bytes per ``windows`` row (table + index, ``dbstat``) with a vector and without (one-window documents)."""
    import sqlite3

    import sqlite_utils

    from semhash.store.schema import apply_migrations
    from semhash.store.windows import insert_windows

    out = {}
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as scratch:
        for kind, per_doc in (("vector", 2), ("null", 1)):
            path = Path(scratch) / f"{kind}.db"
            conn = sqlite3.connect(path)
            db = sqlite_utils.Database(conn)
            apply_migrations(db, 0)
            spans = np.array([(i * 1000, i * 1000 + 1000) for i in range(per_doc)])
            for doc_id in range(rows // per_doc):
                vectors = rng.standard_normal((per_doc, dim)).astype(np.float16)
                insert_windows(db, doc_id + 1, spans, vectors, None)
            conn.commit()
            sizes = dict(conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall())
            conn.close()
            out[kind] = round((sizes["windows"] + sizes["windows_doc"]) / rows, 1)
    return {"rows": rows, "bytes_per_row": out}


def snippet_words(db: Path, spec: dict) -> dict:
    """How many top-10 hits show a query word in their snippet: the stored passage's against the text's opening.

    A proxy for "the snippet shows the part that matched": the words are the query's marked terms
    (:func:`semhash.search.snippets.query_terms`), looked for in the 240-character snippet of each.
    """
    from semhash.corpus import snippet
    from semhash.search import QueryOptions, Searcher
    from semhash.search.snippets import clean_markup, highlights, query_terms

    passage_hits = opening_hits = hits_seen = 0
    with Searcher(db, device="cpu", runtime="torch") as searcher:
        for question in spec["questions"]:
            terms = query_terms(question["query"])
            hits = searcher.query(question["query"], QueryOptions())
            texts = searcher.store.documents([h.id for h in hits])
            for hit in hits:
                hits_seen += 1
                passage_hits += bool(highlights(hit.snippet, terms))
                opening_hits += bool(highlights(clean_markup(snippet(texts[hit.id].text, 240)), terms))
    return {
        "questions": len(spec["questions"]),
        "hits": hits_seen,
        "passage_snippet_with_a_query_word": passage_hits,
        "opening_snippet_with_a_query_word": opening_hits,
    }


def newsgroups_windows(path: Path) -> dict:
    """Every post's windows as the indexer cuts them (all, and at most 8), and their size at the measured row bytes."""
    from semhash.embed import EncodeStats, SentenceTransformerEncoder, chunked_spans, spread_windows

    encoder = SentenceTransformerEncoder(device="cpu")
    stats = EncodeStats()
    every = capped = posts = chars = single = 0
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
            single += n == 1
    dim = encoder.dim
    sizes = row_bytes(dim=dim)["bytes_per_row"]
    shipped = (every - single) * sizes["vector"] + single * sizes["null"]
    return {
        "posts": posts,
        "one_window_posts": single,
        "text_chars": chars,
        "windows_all": every,
        "windows_max_8": capped,
        "windows_per_post": round(every / max(1, posts), 2),
        "bytes_per_row_measured": sizes,
        "windows_bytes_shipped_layout": round(shipped),
        "windows_bytes_every_window_a_vector": round(every * sizes["vector"]),
        "windows_bytes_shipped_layout_max_8": round((capped - single) * sizes["vector"] + single * sizes["null"]),
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
    parser.add_argument("--snippet-words", action="store_true", help="Query words in passage vs opening snippets.")
    parser.add_argument("--query-reps", type=int, default=3)
    parser.add_argument("--newsgroups", type=Path)
    parser.add_argument("--per-hit-windows", default="", help="Comma-separated window counts (e.g. 8,512,32768).")
    parser.add_argument("--skip-storage", action="store_true")
    parser.add_argument("--relayout", action="store_true", help="Apply the shipped one-window layout to --db first.")
    parser.add_argument("--index-result", type=json.loads, help="The index stage's printed dict, from an earlier run.")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/passage_windows.json"))
    args = parser.parse_args()
    spec = json.loads(QUERIES.read_text())
    result: dict[str, object] = {"load_before": os.getloadavg()}
    if args.index:
        result["index"] = index_folder(args.db, spec, args.max_windows)
        print("index", result["index"], flush=True)
    elif args.index_result:
        result["index"] = {**args.index_result, "from_an_earlier_run": True}
    if args.per_hit_windows:
        result["per_hit_windows"] = per_hit_windows([int(n) for n in args.per_hit_windows.split(",")])
        print("per_hit_windows", result["per_hit_windows"], flush=True)
    if args.relayout:
        result["relayout"] = relayout(args.db)
        print("relayout", result["relayout"], flush=True)
    if args.skip_storage:
        write_result(args.out, result)
        return
    result["storage"] = size = storage(args.db)
    print("storage", size, flush=True)
    if args.store_reps:
        result["store_cost"] = store_cost(args.db, args.store_reps)
        print("store_cost", result["store_cost"], flush=True)
    if args.queries:
        result["queries"] = query_latency(args.db, spec, args.query_reps)
        print("queries", result["queries"], flush=True)
    if args.snippet_words:
        result["snippet_words"] = snippet_words(args.db, spec)
        print("snippet_words", result["snippet_words"], flush=True)
    if args.newsgroups:
        result["newsgroups"] = newsgroups_windows(args.newsgroups)
        print("newsgroups", result["newsgroups"], flush=True)
    result["load_after"] = os.getloadavg()
    write_result(args.out, result)


if __name__ == "__main__":
    main()
