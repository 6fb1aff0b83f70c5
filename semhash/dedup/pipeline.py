"""The in-index dedup service: read the stored codes and texts, join, verify, cluster (no torch)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semhash.adapted import is_adapted
from semhash.config import STATIC_MODEL
from semhash.dedup.allpairs import all_pairs
from semhash.dedup.ann import neighbour_pairs
from semhash.dedup.cells import CELL_PAIR_BUDGET, cell_pairs
from semhash.dedup.clusters import DedupResult, DedupStats, DocTable, build_clusters
from semhash.dedup.distributed import DedupEngine, Runners, runners
from semhash.dedup.options import DedupOptions, check_radius, pair_candidate_stage
from semhash.dedup.text import normalized_text_hash, numbers_conflict
from semhash.dedup.verify import FINE_BINS, CodeBlocks, fine_bin
from semhash.errors import IndexMissingError
from semhash.overlap import pair_overlaps
from semhash.store import Store


def check_encoded(store: Store, options: DedupOptions) -> int:
    """The store's code length, once it holds encoded documents and ``options.radius`` fits it.

    Raises:
        IndexMissingError: no encoded document yet.
        UsageError: the radius exceeds the code length.
    """
    bits = store.bits
    if bits is None or store.count(encoded_only=True) == 0:
        raise IndexMissingError(f"the index at {store.path} holds no document yet: run `semhash index DIR` first")
    check_radius(options.radius, bits)
    return bits


def dedup_index(
    db_path: str | Path, options: DedupOptions | None = None, engine: DedupEngine | None = None
) -> DedupResult:
    """Exact and near-duplicates among the documents of the index at ``db_path`` (torch-free).

    ``engine``: where the candidate products run (``None``: here; :mod:`semhash.dedup.distributed`: the same
    pairs on Ray tasks).

    Raises:
        IndexMissingError: no index, or no encoded document in it.
        UsageError: an option is out of range, or not one the engine runs.
        EngineUnavailableError: ``engine`` is Ray, which is not installed.
        EngineError: the Ray cluster failed.
    """
    options = options or DedupOptions()
    if engine is not None:
        engine.check(options)  # before the index is opened: a missing Ray extra is the first thing said
    with Store.open(db_path) as store:
        check_encoded(store, options)
        return dedup_store(store, options, engine)


def dedup_store(store: Store, options: DedupOptions, engine: DedupEngine | None = None) -> DedupResult:
    """:func:`dedup_index` on an open store."""
    if engine is not None:
        engine.check(options)
    with runners(engine) as run:  # a Ray session (when asked) for the run, stopped at its end
        result = _dedup_store(store, options, run)
        result.stats.engine = run.describe() if run else "local"
        return result


def _dedup_store(store: Store, options: DedupOptions, run: Runners | None) -> DedupResult:
    """:func:`dedup_store`, its candidate products in ``run`` (``None``: in this process)."""
    stats = DedupStats()
    started = time.perf_counter()
    bits = store.bits or 32
    ids, codes = store.codes()
    keys = np.empty(len(ids), np.int64)
    lengths = np.empty(len(ids), np.int64)
    mtimes = np.empty(len(ids), np.float64)
    row_of = {int(i): k for k, i in enumerate(ids.tolist())}
    for doc in store.iter_documents(batch=10000):
        k = row_of.get(doc.id)
        if k is not None:
            keys[k], lengths[k], mtimes[k] = normalized_text_hash(doc.text), len(doc.text), doc.mtime
    stats.documents = len(ids)
    stats.adapted_encoder = is_adapted(store.embedding_model)
    stats.static_tier = store.embedding_model == STATIC_MODEL
    stats.seconds_read = time.perf_counter() - started

    stage = pair_candidate_stage(len(ids), options.neighbours)
    stats.stage, stats.neighbours = stage.name, stage.neighbours
    if stage.name == "all-pairs":
        started = time.perf_counter()
        matrix, slot = embeddings_for(store, ids, np.arange(len(ids)))
        runner = run.bands if run else None
        i, j, cosine, fine = all_pairs(_in_row_order(matrix, slot), options.floor, runner=runner)
        dist = _hamming(codes, bits, i, j)
        stats.candidates = len(ids) * (len(ids) - 1) // 2
    elif stage.name == "cells":
        started = time.perf_counter()
        matrix, slot = embeddings_for(store, ids, np.arange(len(ids)))
        # Only pairs at the threshold are kept: below it, same-topic pairs inside a cell would fill memory.
        floor = max(options.floor, options.threshold)
        found = cell_pairs(
            _in_row_order(matrix, slot),
            floor,
            budget=CELL_PAIR_BUDGET * len(ids),
            runner=run.cells if run else None,
            assign=run.assign if run else None,
        )
        del matrix
        i, j, cosine = found.i, found.j, found.cosine
        fine = np.bincount(fine_bin(cosine), minlength=FINE_BINS)
        dist = _hamming(codes, bits, i, j)
        stats.candidates, stats.cells, stats.largest_cell = found.products, found.cells, found.largest_cell
        stats.unverified_pairs, stats.unverified_lower_bound = found.dropped, found.dropped_lower_bound
        stats.seconds_candidates = time.perf_counter() - started
        started = time.perf_counter()
    else:  # a number given: the code join at exactly --radius (plus k nearest embeddings)
        started = time.perf_counter()
        blocks = CodeBlocks.build(codes, bits, options.radius)
        stats.radius = options.radius
        stats.candidates = blocks.candidate_count
        stats.seconds_candidates = time.perf_counter() - started

        started = time.perf_counter()
        rows = np.arange(len(ids)) if stage.neighbours else blocks.rows_with_candidates()
        matrix, slot = embeddings_for(store, ids, rows)
        i, j, dist, cosine, fine = blocks.verify(matrix, slot, options.floor)
        if stage.neighbours:
            extra = neighbour_candidates(matrix, slot, codes, bits, stats.radius, stage.neighbours, options.floor)
            stats.candidates += extra.count
            fine += extra.histogram
            i, j, dist, cosine = _sorted_union((i, j, dist, cosine), extra.pairs)
    involved = np.union1d(np.union1d(i, j), _rows_in_exact_groups(keys))
    vetoed = None
    involved_ids = ids[involved]
    docs_of = store.documents(involved_ids.tolist())
    if options.number_veto:
        texts = {int(x): docs_of[int(x)].text for x in involved_ids.tolist()}
        vetoed = np.fromiter(
            (
                numbers_conflict(texts[int(ids[a])], texts[int(ids[b])])
                for a, b in zip(i.tolist(), j.tolist(), strict=True)
            ),
            dtype=bool,
            count=len(i),
        )
    stats.seconds_cosine = time.perf_counter() - started

    started = time.perf_counter()
    overlap = None
    if options.min_overlap > 0:  # copy, not topic: the texts of pairs with a long document must overlap
        texts_of = {int(x): docs_of[int(x)].text for x in involved_ids.tolist()}
        overlap = pair_overlaps(texts_of, ids[i], ids[j])
        stats.overlap_pairs = int((~np.isnan(overlap)).sum())
    stats.seconds_overlap = time.perf_counter() - started

    started = time.perf_counter()
    docs = DocTable(
        ids=involved_ids,
        n_chars=lengths[involved],
        mtime=mtimes[involved],
        text_hash=keys[involved],
        paths=[docs_of[int(x)].path for x in involved_ids.tolist()],
        records=[docs_of[int(x)].record for x in involved_ids.tolist()],
    )
    left, right = ids[i], ids[j]
    clusters = build_clusters(docs, left, right, cosine, vetoed, options, overlap)
    stats.exact_duplicates = len(involved) - len(np.unique(keys[involved])) if len(involved) else 0
    stats.seconds_cluster = time.perf_counter() - started
    floor = max(options.floor, options.threshold) if stage.name == "cells" else options.floor
    return DedupResult(options, clusters, left, right, dist, cosine, vetoed, docs, stats, fine, floor, overlap)


def embeddings_for(store: Store, ids: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stored embeddings of ``rows`` (positions into ``ids``) and each row's line in the matrix."""
    slot = np.full(len(ids), -1, np.int64)
    if len(rows) == 0:
        return np.zeros((0, 1), np.float32), slot
    if len(rows) > len(ids) // 2:  # one scan of the table beats many look-ups
        stored_ids, matrix = store.embeddings()
        line = np.searchsorted(stored_ids, ids)
        ok = (line < len(stored_ids)) & (stored_ids[np.minimum(line, len(stored_ids) - 1)] == ids)
        slot[ok] = line[ok]
    else:
        stored_ids, matrix = store.embeddings(ids[rows].tolist())
        if len(stored_ids) == len(rows):
            slot[rows] = np.arange(len(rows))  # both in id order
    if (slot[rows] < 0).any():
        raise IndexMissingError(f"{store.path} has documents without embeddings: run `semhash index DIR` again")
    return matrix, slot


@dataclass
class NeighbourCandidates:
    """Pairs found by the embedding neighbour search that the code stage did not have."""

    pairs: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # rows i < j, hamming, cosine (>= floor)
    count: int  # every such pair, below the floor too
    histogram: np.ndarray  # their cosines, in FINE_BINS bins


def neighbour_candidates(
    matrix: np.ndarray, slot: np.ndarray, codes: np.ndarray, bits: int, radius: int, k: int, floor: float
) -> NeighbourCandidates:
    """Each row's ``k`` nearest embeddings, less the pairs within ``radius`` (the code join's; -1: no join)."""
    i, j, cos = neighbour_pairs(_in_row_order(matrix, slot), k)
    dist = _hamming(codes, bits, i, j)
    new = dist > radius  # within the radius: the code stage already verified it
    i, j, dist, cos = i[new], j[new], dist[new], cos[new]
    histogram = np.bincount(fine_bin(cos), minlength=FINE_BINS)
    keep = cos >= floor
    return NeighbourCandidates((i[keep], j[keep], dist[keep], cos[keep]), len(i), histogram)


def _in_row_order(matrix: np.ndarray, slot: np.ndarray) -> np.ndarray:
    """The embeddings of every row, row ``k`` at line ``k`` (no copy when they already are)."""
    return matrix if np.array_equal(slot, np.arange(len(slot))) else matrix[slot]


def _hamming(codes: np.ndarray, bits: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Hamming distance between the codes of rows ``i`` and ``j`` (SQLite int64 or uint64 codes)."""
    unsigned = np.asarray(codes).astype(np.int64).view(np.uint64)
    if bits < 64:
        unsigned = unsigned & np.uint64((1 << bits) - 1)
    return np.bitwise_count(unsigned[i] ^ unsigned[j]).astype(np.int8)


def _sorted_union(
    first: tuple[np.ndarray, ...], second: tuple[np.ndarray, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two disjoint ``(i, j, hamming, cosine)`` lists as one, sorted by ``(i, j)``."""
    i, j = np.r_[first[0], second[0]].astype(np.int64), np.r_[first[1], second[1]].astype(np.int64)
    d, c = np.r_[first[2], second[2]].astype(np.int8), np.r_[first[3], second[3]].astype(np.float32)
    order = np.lexsort((j, i))
    return i[order], j[order], d[order], c[order]


def _rows_in_exact_groups(keys: np.ndarray) -> np.ndarray:
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    return np.flatnonzero(counts[inverse] > 1)
