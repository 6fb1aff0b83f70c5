"""Candidates at scale: every pair above the threshold inside k-means cells of the full embeddings (no k).

A near copy is near: cosine >= 0.8 is an angle under ~37 degrees, so the candidate stage needs the pairs
within that radius, not each document's k nearest (a document with many copies loses some to a k; a
document with none wastes k slots). The stage:

1. Spherical k-means on the full 384-d unit embeddings (``~sqrt(n)`` cells, trained on a seeded sample of
   ``TRAIN_PER_CELL`` points a cell, ``KMEANS_ROUNDS`` rounds; no PCA: a reduced space inflates same-topic
   similarity and the candidate lists with it).
2. Every document goes to its nearest cell and probes its ``probes`` nearest cells (the same search).
3. For each cell, blockwise matrix products (BLAS) of the documents that probe it against the documents in
   it; only the pairs at or above ``floor`` are kept, so memory is the embeddings plus the accepted pairs.

A pair is found when either document probes the other's cell; what the stage can miss is a pair whose two
documents sit in cells that neither probes (measured in BENCHMARKS.md, "Dedup at scale"). Nothing is
skipped by a budget, so there is no unverified count: every product is computed. Deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

#: Cells probed per document inside its group (its own and the next nearest). BENCHMARKS.md, "Dedup at scale".
PROBES = 2
#: Independent cell trees whose candidates are joined (BENCHMARKS.md, "Dedup at scale": 2 trees at 10^6,
#: recall 0.959 / 0.955 in 62 s; 3 trees, 0.959 / 0.978 in 86 s).
TREES = 2
#: Documents per cell on average.
CELL_SIZE = 50
#: k-means training points a group (the groups are trained on fewer points than the cells).
GROUP_TRAIN = 64
#: Nearest groups whose cells a document is assigned among.
GROUP_PROBES = 2
ASSIGN_BLOCK = 65_536
#: k-means training points per cell, and rounds.
TRAIN_PER_CELL = 16
KMEANS_ROUNDS = 6
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
    runner: CellRunner | None,
    assign: AssignRunner | None,
) -> CellPairs:
    """:func:`cell_pairs` on float32 rows, at least two."""
    n = len(x)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    count, largest, products, dropped = 0, 0, 0, 0
    known = np.zeros(0, np.int64)  # sorted keys i * n + j of the pairs kept so far
    partial = False
    for t in range(max(1, trees)):
        if budget is not None and dropped:  # the budget is spent: later trees would only find more to drop
            partial = True
            break
        tree = CellTree.train(x, min(cells or cell_count(n), n), seed + 1000 * t)
        reach = max(1, min(probes, tree.cells))
        near = tree.nearest(x, reach) if assign is None else assign(tree, x, reach)
        room = None if budget is None else max(0, budget - len(known))
        i, j, cosine, big, done, lost = _join(x, near, tree.cells, floor, room, known, runner)
        parts.append((i, j, cosine))
        count, largest, products, dropped = count + tree.cells, max(largest, big), products + done, dropped + lost
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

        -1 where fewer exist. Blocks of ``ASSIGN_BLOCK`` rows (:meth:`nearest_block`): a Ray task given one block
        computes what this loop does.
        """
        best = np.full((len(x), probes), -1, np.int64)
        for start in range(0, len(x), ASSIGN_BLOCK):
            best[start : start + ASSIGN_BLOCK] = self.nearest_block(x[start : start + ASSIGN_BLOCK], probes)
        return best

    def nearest_block(self, xb: np.ndarray, probes: int) -> np.ndarray:
        """:meth:`nearest` of one block of rows (its products' shapes depend on the block: keep the boundaries)."""
        best = np.full((len(xb), probes), -1, np.int64)
        score = np.full((len(xb), probes), -np.inf, np.float32)
        reach = min(GROUP_PROBES, len(self.groups))
        sims = xb @ self.groups.T
        top = (
            np.argpartition(-sims, reach - 1, axis=1)[:, :reach] if reach < sims.shape[1] else np.argsort(-sims, axis=1)
        )
        for g in np.unique(top):
            rows = np.flatnonzero((top == g).any(axis=1))
            local = xb[rows] @ self.centroids[g].T
            m = min(probes, local.shape[1])
            pick = np.argpartition(-local, m - 1, axis=1)[:, :m] if m < local.shape[1] else np.argsort(-local, axis=1)
            both_cells = np.hstack([best[rows], pick + self.offsets[g]])
            both_score = np.hstack([score[rows], np.take_along_axis(local, pick, axis=1)])
            order = np.argsort(-both_score, axis=1, kind="stable")[:, :probes]
            best[rows] = np.take_along_axis(both_cells, order, axis=1)
            score[rows] = np.take_along_axis(both_score, order, axis=1)
        return best


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

    ``own``: pairs of members (the upper triangle, ``i`` first in the band); ``visit``: visitor ``i`` with
    member ``j`` (a pair two cells see is in both: the driver keeps it once). Rows as the runner was given.
    """

    cell: int
    own_i: np.ndarray
    own_j: np.ndarray
    own_cosine: np.ndarray
    visit_i: np.ndarray
    visit_j: np.ndarray
    visit_cosine: np.ndarray
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
    """The cosines of one cell's members with each other and with its visitors, kept at or above ``floor``.

    Blocks of ``ROW_BLOCK`` rows, always the same shapes for the same cell, so a Ray task given only this
    cell's rows computes bit for bit what this process would (float32 BLAS sums in a shape-fixed order).
    """
    members, visitors = work.members, work.visitors
    block = x[members]
    found: list[list[np.ndarray]] = [[], [], [], [], [], []]
    products = 0
    for start in range(0, len(members), ROW_BLOCK):  # within the cell: the upper triangle
        sims = block[start : start + ROW_BLOCK] @ block.T
        rows_here = sims.shape[0]  # pairs (r, col) with col > r: the upper triangle of this band
        products += rows_here * len(members) - rows_here * (2 * start + rows_here + 1) // 2
        r, col = np.nonzero(sims >= floor)
        keep = col > r + start
        r, col = r[keep], col[keep]
        for part, values in zip(found[:3], (members[r + start], members[col], sims[r, col]), strict=True):
            part.append(values)
    for start in range(0, len(visitors), ROW_BLOCK):
        rows = visitors[start : start + ROW_BLOCK]
        sims = x[rows] @ block.T
        products += sims.size
        r, col = np.nonzero(sims >= floor)
        for part, values in zip(found[3:], (rows[r], members[col], sims[r, col]), strict=True):
            part.append(values)
    rows_of = [np.concatenate(p).astype(np.int64) if p else np.zeros(0, np.int64) for p in found[0:2] + found[3:5]]
    cos_of = [np.concatenate(p).astype(np.float32) if p else np.zeros(0, np.float32) for p in (found[2], found[5])]
    return CellFound(work.cell, rows_of[0], rows_of[1], cos_of[0], rows_of[2], rows_of[3], cos_of[1], products)


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

    ``near``: each row's cells, its own first. The products run in ``runner`` (default :func:`run_here`);
    what they find is filtered and budgeted here, in cell order. Returns rows ``i < j`` (each pair once),
    cosines, the largest cell, cosines computed, pairs dropped (found after ``budget`` pairs were kept).
    """
    n = len(x)
    empty = np.zeros(0, np.int64)
    home = near[:, 0]
    order = np.argsort(home, kind="stable")
    bounds = np.searchsorted(home[order], np.arange(k + 1))
    if near.shape[1] > 1:  # the documents that probe each cell besides their own, sorted by cell
        other = near[:, 1:].ravel()
        rows_other = np.repeat(np.arange(n, dtype=np.int64), near.shape[1] - 1)
        valid = other >= 0
        by = np.argsort(other[valid], kind="stable")
        other, rows_other = other[valid][by], rows_other[valid][by]
        other_bounds = np.searchsorted(other, np.arange(k + 1))
    else:
        rows_other, other_bounds = empty, np.zeros(k + 1, np.int64)
    parts_i: list[np.ndarray] = []
    parts_j: list[np.ndarray] = []
    parts_c: list[np.ndarray] = []
    products, kept, dropped = 0, 0, 0
    room = np.iinfo(np.int64).max if budget is None else max(0, int(budget))

    def collect(a: np.ndarray, b: np.ndarray, cos: np.ndarray, visiting: bool) -> None:
        nonlocal kept, dropped
        keep = a != b
        if visiting:  # a probes b's cell; when b also probes a's, the pair is found twice: keep it once
            both = (near[b, 1:] == home[a][:, None]).any(axis=1)
            keep &= ~both | (a < b)
        a, b, cos = a[keep], b[keep], cos[keep]
        if len(known):
            key = np.minimum(a, b) * n + np.maximum(a, b)
            at = np.minimum(np.searchsorted(known, key), len(known) - 1)
            new = known[at] != key
            a, b, cos = a[new], b[new], cos[new]
        take = min(len(a), room - kept)
        dropped += len(a) - take
        kept += take
        parts_i.append(np.minimum(a[:take], b[:take]).astype(np.int64))
        parts_j.append(np.maximum(a[:take], b[:take]).astype(np.int64))
        parts_c.append(cos[:take].astype(np.float32))

    work = (
        CellWork(c, order[bounds[c] : bounds[c + 1]], rows_other[other_bounds[c] : other_bounds[c + 1]])
        for c in range(k)
        if bounds[c + 1] > bounds[c]
    )
    for found in (runner or run_here)(x, work, floor):  # in cell order, so the budget keeps the same pairs
        products += found.products
        collect(found.own_i, found.own_j, found.own_cosine, False)
        collect(found.visit_i, found.visit_j, found.visit_cosine, True)
    if not parts_i:
        return empty, empty, np.zeros(0, np.float32), int(np.diff(bounds).max()), products, dropped
    i, j, cos = np.concatenate(parts_i), np.concatenate(parts_j), np.concatenate(parts_c)
    key, first = np.unique(i * n + j, return_index=True)
    cosine = np.clip(cos[first], -1.0, 1.0).astype(np.float32)
    return key // n, key % n, cosine, int(np.diff(bounds).max()), products, dropped
