"""Candidates at scale: every pair above the threshold inside k-means cells of the full embeddings (no k).

A near copy is near: cosine >= 0.8 is an angle under ~37 degrees, so the candidate stage needs the pairs
within that radius, not each document's k nearest (a document with many copies loses some to a k; a
document with none wastes k slots). The stage:

1. Spherical k-means on the full 384-d unit embeddings (``n / CELL_SIZE`` cells in ``~sqrt(cells)`` groups,
   trained on a seeded sample of ``TRAIN_PER_CELL`` points a cell, ``KMEANS_ROUNDS`` rounds; no PCA: a reduced
   space inflates same-topic similarity and the candidate lists with it).
2. Every document goes to its nearest cell and probes its ``probes`` nearest cells (the same search).
3. For each cell, blockwise matrix products (BLAS) of the documents that probe it against the documents in
   it; only the pairs at or above ``floor`` are kept, so memory is the embeddings plus the accepted pairs.

A pair is found when either document probes the other's cell; what the stage can miss is a pair whose two
documents sit in cells that neither probes (measured in BENCHMARKS.md, "Dedup at scale"). Every product is
computed; only pairs found beyond an optional pair budget are dropped, and counted. Deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

#: Cells probed per document inside its group (its own and the next nearest). BENCHMARKS.md, "Dedup at scale".
PROBES = 2
#: Independent cell trees whose candidates are joined. With cells of 100 and cheap training, 3 trees cost what
#: 2 trees of 50-document cells did and find more (10^6 stand-in mixtures, CPU seconds at load ~15: 27.2 s,
#: recall 0.970 / 0.977 of planted copies / sampled pairs, against 28.2 s, 0.950 / 0.949; BENCHMARKS.md,
#: "Dedup at scale").
TREES = 3
#: Documents per cell on average (cells of 50 cost more to assign than the products they save).
CELL_SIZE = 100
#: k-means training points a group (the groups are trained on fewer points than the cells).
GROUP_TRAIN = 64
#: Nearest groups whose cells a document is assigned among (a group boundary is where the tree loses pairs; 10^5
#: mixtures of 7,936 real posts, planted-copy recall 2 / 3 / 4: 0.956 / 0.966 / 0.972 for 2.6 / 2.8 / 3.2 CPU s,
#: a fourth tree instead of a third group 0.970 for 3.3 s; full 20NG mixtures at 10^6, bench_dedup scale, 3 / 4:
#: planted 0.950 / 0.958, sampled 0.969 / 0.974, end to end 55.4 s at load ~3 / 59.3 s at load ~4).
GROUP_PROBES = 4
ASSIGN_BLOCK = 65_536
#: k-means training points per cell, and rounds (16 and 6 cost 2.5x the training for +0.005 recall at 10^6).
TRAIN_PER_CELL = 8
KMEANS_ROUNDS = 4
#: Train and place the next tree on a second thread while the current one is joined (same result either way).
AHEAD = True
#: Rows of one matrix product (bounds the similarity block to ROW_BLOCK x cell size floats).
ROW_BLOCK = 2048
#: Pairs above the floor kept a document, at most (memory stays bounded when a corpus is one big family of
#: near copies); beyond it they are counted in ``CellPairs.dropped`` and reported as unverified.
CELL_PAIR_BUDGET = 50


@dataclass
class CellPairs:
    """Pairs of rows whose cosine reached the floor, and what the stage computed."""

    i: np.ndarray  # int64 rows, i < j, sorted by (i, j)
    j: np.ndarray
    cosine: np.ndarray  # float32
    cells: int
    largest_cell: int
    #: Pairs compared: each cell's own pairs once, each visiting document against the cell's; summed over the
    #: trees (a pair two trees compare counts twice).
    products: int
    #: Pairs at or above the floor found after the pair budget was spent: counted, not kept (0: none).
    dropped: int = 0
    #: ``dropped`` is a lower bound: the budget ran out before the last tree, which was not run.
    dropped_lower_bound: bool = False


def cell_count(n: int) -> int:
    """Cells for ``n`` documents: one per ``CELL_SIZE`` documents, at least 1."""
    return max(1, round(n / CELL_SIZE))


def cell_pairs(
    matrix: np.ndarray,
    floor: float,
    *,
    cells: int | None = None,
    probes: int = PROBES,
    trees: int = TREES,
    seed: int = 0,
    budget: int | None = None,
    runner: CellRunner | None = None,
    assign: AssignRunner | None = None,
) -> CellPairs:
    """Distinct pairs ``(i, j)``, ``i < j``, with cosine >= ``floor`` among rows in cells either one probes.

    Args:
        matrix: ``(n, dim)`` unit embeddings, one row per document.
        floor: smallest cosine kept.
        cells: k-means cells (default :func:`cell_count`).
        probes: nearest cells each document is compared with (its own included).
        trees: independent cell trees (seeds ``seed``, ``seed + 1000``, ...): a pair is a candidate when any
            of them puts it in probed cells, so a boundary one tree cuts the next one rarely cuts too.
        seed: seed of the k-means samples and initialisations.
        budget: most pairs kept (found pairs, before duplicates found from both sides are merged); the
            pairs found after it is spent are counted in ``dropped``. ``None``: no limit.
        runner: where each cell's products run (:data:`CellRunner`; default :func:`run_here`, this process);
            any runner gives the same pairs, since it computes the same products and this process keeps them.
        assign: where each row's nearest cells are found (:data:`AssignRunner`; default
            :meth:`CellTree.nearest`, this process); the k-means trees are always trained here.
    """
    x = np.ascontiguousarray(matrix, dtype=np.float32)
    n = len(x)
    empty = np.zeros(0, np.int64)
    if n < 2:
        return CellPairs(empty, empty, np.zeros(0, np.float32), min(n, 1), n, 0)
    with _one_thread():
        return _cell_pairs(x, floor, cells, probes, trees, seed, budget, runner, assign)


class _Inline:
    """A stand-in for a one-thread executor that runs each task when it is submitted (``AHEAD`` off)."""

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def submit(self, fn: Callable[[int], tuple[int, np.ndarray]], arg: int) -> Future[tuple[int, np.ndarray]]:
        """``fn(arg)``, run now, as a finished future."""
        done: Future[tuple[int, np.ndarray]] = Future()
        done.set_result(fn(arg))
        return done


@contextmanager
def _one_thread() -> Iterator[None]:
    """BLAS and faiss on one thread.

    The stage is thousands of small products, and on a shared 2-core CPU two threads spinning on each other made
    it 3x slower (3 * 10^5 documents, one tree: 19 s against 6 s).
    """
    import faiss
    from threadpoolctl import threadpool_limits

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        faiss.omp_set_num_threads(before)


def _cell_pairs(
    x: np.ndarray,
    floor: float,
    cells: int | None,
    probes: int,
    trees: int,
    seed: int,
    budget: int | None,
    runner: CellRunner | None = None,
    assign: AssignRunner | None = None,
) -> CellPairs:
    """:func:`cell_pairs` on float32 rows, at least two."""
    import faiss

    n = len(x)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    count, largest, products, dropped = 0, 0, 0, 0
    known = np.zeros(0, np.int64)  # sorted keys i * n + j of the pairs kept so far
    partial = False
    size = min(cells or cell_count(n), n)

    def place(t: int) -> tuple[int, np.ndarray]:
        faiss.omp_set_num_threads(1)  # OpenMP's thread count is per calling thread: the worker's own
        tree = CellTree.train(x, size, seed + 1000 * t)
        reach = max(1, min(probes, tree.cells))
        return tree.cells, tree.nearest(x, reach) if assign is None else assign(tree, x, reach)

    # The next tree is trained and placed on a second thread (big products and faiss, outside the GIL) while the
    # current one is joined (many small products, mostly Python): the trees' pairs are joined in tree order, so
    # the result is the same as one after the other.
    with ThreadPoolExecutor(max_workers=1) if AHEAD else _Inline() as pool:
        ahead = pool.submit(place, 0)
        for t in range(max(1, trees)):
            if budget is not None and dropped:  # the budget is spent: later trees would only find more to drop
                partial = True
                break
            k, near = ahead.result()
            if t + 1 < max(1, trees):
                ahead = pool.submit(place, t + 1)
            room = None if budget is None else max(0, budget - len(known))
            i, j, cosine, big, done, lost = _join(x, near, k, floor, room, known, runner)
            parts.append((i, j, cosine))
            count, largest, products, dropped = count + k, max(largest, big), products + done, dropped + lost
            known = np.union1d(known, i * n + j)
    i = np.concatenate([p[0] for p in parts])
    j = np.concatenate([p[1] for p in parts])
    cosine = np.concatenate([p[2] for p in parts])
    order = np.lexsort((j, i))  # each pair once (later trees skip the known ones)
    return CellPairs(i[order], j[order], cosine[order], count, largest, products, dropped, partial)


@dataclass
class CellTree:
    """Two-level spherical k-means: ``~sqrt(cells)`` groups, each split into cells.

    Training and assignment then cost ``sqrt(cells)``, not ``cells``, products a document.
    """

    groups: np.ndarray  # (G, dim) group centroids
    centroids: list[np.ndarray]  # per group, its cells' centroids
    offsets: np.ndarray  # (G + 1,) first global cell number of each group

    @property
    def cells(self) -> int:
        """Cells in all."""
        return int(self.offsets[-1])

    @classmethod
    def train(cls, x: np.ndarray, cells: int, seed: int) -> CellTree:
        """Train on a seeded sample of ``TRAIN_PER_CELL`` rows a cell."""
        rng = np.random.default_rng(seed)
        sample = x[rng.choice(len(x), min(len(x), cells * TRAIN_PER_CELL), replace=False)]
        count = max(1, min(len(sample), round(np.sqrt(cells))))
        groups = _kmeans(sample[: count * GROUP_TRAIN], count, seed)  # the sample is in random order
        home = np.argmax(sample @ groups.T, axis=1)
        centroids = []
        for g in range(count):
            part = sample[home == g]
            k = max(1, min(len(part), round(cells * len(part) / len(sample))))
            centroids.append(_kmeans(part, k, seed + 1 + g) if len(part) else groups[g : g + 1])
        offsets = np.r_[0, np.cumsum([len(c) for c in centroids])].astype(np.int64)
        return cls(groups, centroids, offsets)

    def nearest(self, x: np.ndarray, probes: int) -> np.ndarray:
        """Each row's ``probes`` nearest cells (nearest first) among the cells of its ``GROUP_PROBES`` nearest groups.

        -1 where fewer exist. Blocks of ``ASSIGN_BLOCK`` rows (:meth:`nearest_block`), so that a Ray task given one
        block computes, product for product, what this loop does.
        """
        best = np.full((len(x), probes), -1, np.int64)
        for start in range(0, len(x), ASSIGN_BLOCK):
            best[start : start + ASSIGN_BLOCK] = self.nearest_block(x[start : start + ASSIGN_BLOCK], probes)
        return best

    def nearest_block(self, x: np.ndarray, probes: int) -> np.ndarray:
        """:meth:`nearest` of one block of rows.

        Rows are scored group by group (one product of the block's rows that reach a group against its cells),
        then each row keeps the best of its groups' candidates: no per-row Python work.
        """
        n = len(x)
        reach = min(GROUP_PROBES, len(self.groups))
        reached = np.empty((n, reach), np.int64)  # each row's nearest groups
        for start in range(0, n, ASSIGN_BLOCK):
            reached[start : start + ASSIGN_BLOCK] = _top(x[start : start + ASSIGN_BLOCK] @ self.groups.T, reach)[0]
        # One candidate list per (row, group) entry: that group's `probes` nearest cells to the row.
        cand = np.full((n * reach, probes), -1, np.int64)
        score = np.full((n * reach, probes), -np.inf, np.float32)
        flat = reached.ravel()
        entries_by_group = np.argsort(flat, kind="stable")
        bounds = np.searchsorted(flat[entries_by_group], np.arange(len(self.groups) + 1))
        for g in range(len(self.groups)):
            entries = entries_by_group[bounds[g] : bounds[g + 1]]
            for start in range(0, len(entries), ASSIGN_BLOCK):
                part = entries[start : start + ASSIGN_BLOCK]
                pick, value = _top(x[part // reach] @ self.centroids[g].T, probes)
                cand[part, : pick.shape[1]] = pick + self.offsets[g]
                score[part, : pick.shape[1]] = value
        cand, score = cand.reshape(n, reach * probes), score.reshape(n, reach * probes)
        if reach == 1:
            return cand
        pick, value = _top(score, probes)  # the groups' cells are disjoint: no cell twice
        best = np.take_along_axis(cand, pick, axis=1)
        best[value == -np.inf] = -1  # fewer cells than probes: argmax over -inf gives no cell
        return best


def _top(sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indices of each row's ``k`` largest values, largest first (ties: the lower index), and the values.

    At most ``sims.shape[1]`` columns. Overwrites ``sims``. Repeated ``argmax`` for the small ``k`` used here:
    ``argpartition`` across a short axis cost 20 s of the 10^6 run.
    """
    k = min(k, sims.shape[1])
    rows = np.arange(len(sims))
    if k > 4:
        order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        return order, np.take_along_axis(sims, order, axis=1)
    index = np.empty((len(sims), k), np.int64)
    value = np.empty((len(sims), k), np.float32)
    for t in range(k):
        index[:, t] = np.argmax(sims, axis=1)
        value[:, t] = sims[rows, index[:, t]]
        if t + 1 < k:
            sims[rows, index[:, t]] = -np.inf
    return index, value


def _kmeans(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """``k`` unit centroids of ``x`` (spherical k-means, ``KMEANS_ROUNDS`` rounds)."""
    import faiss

    if k <= 1 or len(x) <= k:
        chosen = x if len(x) <= k else x.mean(axis=0, keepdims=True)
        return (chosen / np.maximum(np.linalg.norm(chosen, axis=1, keepdims=True), 1e-12)).astype(np.float32)
    kmeans = faiss.Kmeans(x.shape[1], k, niter=KMEANS_ROUNDS, spherical=True, seed=seed, verbose=False)
    kmeans.cp.min_points_per_centroid = 1
    kmeans.cp.max_points_per_centroid = TRAIN_PER_CELL * 8
    kmeans.train(np.ascontiguousarray(x, dtype=np.float32))
    return np.asarray(kmeans.centroids, dtype=np.float32)


@dataclass
class CellWork:
    """One cell's share of the products: its members (rows of the matrix) and the rows that visit it."""

    cell: int
    members: np.ndarray  # rows whose own (nearest) cell it is
    visitors: np.ndarray  # rows that probe it besides their own cell


@dataclass
class CellFound:
    """What one cell's products found at or above the floor, before the driver filters and budgets them.

    Row ``i`` (a member or a visitor) with member ``j``; within the cell, the upper triangle only. A pair two
    visitors found from both sides is in two cells' results: the driver keeps it once. Rows as the runner was given.
    """

    cell: int
    i: np.ndarray
    j: np.ndarray
    cosine: np.ndarray
    products: int  # cosines computed


#: Runs cells' products: ``runner(matrix, work, floor)`` yields one :class:`CellFound` per :class:`CellWork`,
#: in the order given. :func:`run_here` in this process; :mod:`semhash.dedup.distributed` on Ray tasks.
CellRunner = Callable[[np.ndarray, Iterable[CellWork], float], Iterator[CellFound]]

#: Finds each row's nearest cells: ``assign(tree, matrix, probes)`` returns what ``tree.nearest(matrix, probes)``
#: does. :mod:`semhash.dedup.distributed` runs its ``ASSIGN_BLOCK`` blocks on Ray tasks.
AssignRunner = Callable[["CellTree", np.ndarray, int], np.ndarray]


def run_here(x: np.ndarray, work: Iterable[CellWork], floor: float) -> Iterator[CellFound]:
    """The default :data:`CellRunner`: each cell's products in this process, one after the other."""
    for cell in work:
        yield cell_products(x, cell, floor)


def cell_products(x: np.ndarray, work: CellWork, floor: float) -> CellFound:
    """One cell's products (its members and its visitors against its members), kept at or above ``floor``.

    One product for the usual cell, blocks of ``ROW_BLOCK`` rows for a big one: always the same shapes for the
    same cell, so a Ray task given only this cell's rows computes bit for bit what this process would.
    """
    members, visitors = work.members, work.visitors
    own = len(members)
    products = own * (own - 1) // 2 + len(visitors) * own
    queries = np.concatenate([members, visitors]) if len(visitors) else members
    hits: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    if len(queries) <= ROW_BLOCK:  # the usual cell: one gather, one product
        rows = x[queries]
        hits.append(_hits(queries, members, rows @ rows[:own].T, 0, own, floor))
    else:
        block = x[members]
        for start in range(0, len(queries), ROW_BLOCK):
            part = queries[start : start + ROW_BLOCK]
            hits.append(_hits(part, members, x[part] @ block.T, start, own, floor))
    i = np.concatenate([h[0] for h in hits]).astype(np.int64)
    j = np.concatenate([h[1] for h in hits]).astype(np.int64)
    cosine = np.concatenate([h[2] for h in hits]).astype(np.float32)
    return CellFound(work.cell, i, j, cosine, products)


def _hits(
    queries: np.ndarray, members: np.ndarray, sims: np.ndarray, start: int, own: int, floor: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hits of ``sims`` (rows ``queries``, the cell's rows ``start`` on; columns ``members``, ``own`` of them)."""
    r, col = np.nonzero(sims >= floor)
    if start < own:  # rows of the cell's own members: the upper triangle only (and not the diagonal)
        keep = (r + start >= own) | (col > r + start)
        r, col = r[keep], col[keep]
    return queries[r], members[col], sims[r, col]


def _join(
    x: np.ndarray,
    near: np.ndarray,
    k: int,
    floor: float,
    budget: int | None,
    known: np.ndarray,
    runner: CellRunner | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int, int]:
    """Pairs at or above ``floor`` between each cell and the rows that probe it, less the ``known`` keys.

    ``near``: each row's cells, its own first. Returns rows ``i < j`` (each pair once), cosines, the largest cell,
    cosines computed, pairs dropped (found after ``budget`` pairs were kept).

    One product a cell (:func:`cell_products`, run by ``runner``, default :func:`run_here`); the filtering of
    what the products found (pairs found from both sides, known pairs, budget) is done in bulk, in cell order,
    by :class:`_Found`.
    """
    n = len(x)
    home = near[:, 0]
    order = np.argsort(home, kind="stable")
    bounds = np.searchsorted(home[order], np.arange(k + 1))
    if near.shape[1] > 1:  # the documents that probe each cell besides their own, sorted by cell
        other: np.ndarray = near[:, 1:].ravel()
        rows_other: np.ndarray = np.repeat(np.arange(n, dtype=np.int64), near.shape[1] - 1)
        valid = other >= 0
        by = np.argsort(other[valid], kind="stable")
        other, rows_other = other[valid][by], rows_other[valid][by]
        other_bounds = np.searchsorted(other, np.arange(k + 1))
    else:
        rows_other, other_bounds = np.zeros(0, np.int64), np.zeros(k + 1, np.int64)
    found = _Found(near, floor, budget, known)
    products = 0
    work = (
        CellWork(c, order[bounds[c] : bounds[c + 1]], rows_other[other_bounds[c] : other_bounds[c + 1]])
        for c in range(k)
        if bounds[c + 1] > bounds[c]
    )
    for hits in (runner or run_here)(x, work, floor):  # in cell order, so the budget keeps the same pairs
        products += hits.products
        found.add(hits.i, hits.j, hits.cosine)
    i, j, cosine = found.result()
    return i, j, cosine, int(np.diff(bounds).max()), products, found.dropped


class _Found:
    """The pairs the products of one tree found: filtered, de-duplicated and budgeted in bulk.

    The products' hits are buffered as they come and filtered once ``FLUSH`` are waiting: kept are the pairs
    above the diagonal within a cell, a pair two visitors found from both sides once, pairs not ``known`` from an
    earlier tree; the first ``budget`` of them (in cell order) are kept, the others counted in ``dropped``.
    """

    FLUSH = 1 << 21

    def __init__(self, near: np.ndarray, floor: float, budget: int | None, known: np.ndarray) -> None:
        """Pairs at or above ``floor``; ``near``: each row's cells, its own first."""
        self.near, self.floor, self.known = near, floor, known
        self.room = np.iinfo(np.int64).max if budget is None else max(0, int(budget))
        self.kept = self.dropped = self.waiting = 0
        self.pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.parts: list[tuple[np.ndarray, np.ndarray]] = []  # sorted-later keys and cosines

    def add(self, a: np.ndarray, b: np.ndarray, cosine: np.ndarray) -> None:
        """One cell's hits (:class:`CellFound`: row ``a`` with member ``b``), filtered with the others later."""
        if len(a):
            self.pending.append((a, b, cosine))
            self.waiting += len(a)
            if self.waiting >= self.FLUSH:
                self._flush()

    def _flush(self) -> None:
        if not self.pending:
            return
        a = np.concatenate([p[0] for p in self.pending])
        b = np.concatenate([p[1] for p in self.pending])
        cos = np.concatenate([p[2] for p in self.pending])
        self.pending, self.waiting = [], 0
        n = len(self.near)
        home = self.near[:, 0]
        # A visitor a found b in b's cell; when b also probes a's cell it found a there too: keep it once.
        visiting = home[a] != home[b]
        if self.near.shape[1] > 1 and visiting.any():
            both = visiting & (self.near[b, 1:] == home[a][:, None]).any(axis=1)
            keep = ~both | (a < b)
            a, b, cos = a[keep], b[keep], cos[keep]
        key = np.minimum(a, b) * n + np.maximum(a, b)
        if len(self.known):
            at = np.minimum(np.searchsorted(self.known, key), len(self.known) - 1)
            new = self.known[at] != key
            key, cos = key[new], cos[new]
        take = max(0, min(len(key), self.room - self.kept))
        self.dropped += len(key) - take
        self.kept += take
        self.parts.append((key[:take], cos[:take].astype(np.float32)))

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows ``i < j`` sorted by ``(i, j)``, each pair once, and their cosines."""
        self._flush()
        if not self.parts:
            empty = np.zeros(0, np.int64)
            return empty, empty, np.zeros(0, np.float32)
        key = np.concatenate([p[0] for p in self.parts])
        cos = np.concatenate([p[1] for p in self.parts])
        key, first = np.unique(key, return_index=True)
        n = len(self.near)
        return key // n, key % n, np.clip(cos[first], -1.0, 1.0).astype(np.float32)
