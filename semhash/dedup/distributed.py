"""``semhash dedup --engine ray``: the candidate stage's products on Ray tasks, everything else in this process.

The driver (the ``semhash dedup`` process) reads the store, trains the partition, filters, clusters and reports,
as the local path does; the products of embeddings with centroids and with each other, where the time goes, run
on Ray:

- ``cells`` (above 20,000 documents): the driver trains the k-means cell trees on their sample
  (:mod:`semhash.dedup.cells`); tasks find every document's nearest cells (blocks of ``ASSIGN_BLOCK`` rows
  against the tree, which goes to the object store once); the driver cuts each tree's cells, in cell order, into
  tasks of about ``TASK_ROWS`` rows: a task's payload is the embeddings of just its cells' members and visitors
  (put in the object store by the driver), it computes each cell's blockwise products with
  :func:`~semhash.dedup.cells.cell_products` and sends back only the pairs at or above the floor. The driver
  takes them as tasks finish (``ray.wait``, a bounded window of tasks: :mod:`semhash.engine.ray_tasks`) and
  filters them (a pair seen from both cells, a pair an earlier tree found, the pair budget) in cell order,
  exactly as the local loop does.
- ``all-pairs`` (up to 20,000 documents, or ``--neighbours all``): the embeddings go to the object store once;
  each task computes one band of rows against the rows after it (:func:`~semhash.dedup.allpairs.band_pairs`).

Same pairs as the local path, by construction: each product is the same float32 matrix product of the same
rows in the same shapes (one BLAS thread per task, as the local stage runs), and the driver filters, budgets
and orders them with the local code. Tested on a local Ray cluster (``tests/test_dedup_ray.py``); on a cluster
of different CPUs the BLAS kernels may differ in the last bit, which can move a pair sitting exactly at the
floor. The code-join stages (``--neighbours K``) run only locally.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from semhash.dedup import cells as cell_stage  # its ASSIGN_BLOCK read at run time
from semhash.dedup.allpairs import Band, band_pairs
from semhash.dedup.cells import CellFound, CellTree, CellWork, cell_products
from semhash.dedup.options import DedupOptions
from semhash.engine import check_engine, import_ray
from semhash.engine.ray_tasks import RayTasks, ray_tasks
from semhash.errors import UsageError

#: Most rows (members and visitors, counted with repeats) in one cells task: ~30 MB of float32 384-d embeddings,
#: a fraction of a second of products on one core; at 10^5 documents, 2 trees, about 20 tasks.
TASK_ROWS = 20_000
#: Fewer rows a task on small collections, so that each tree makes at least this many tasks per CPU (load balance).
TASKS_PER_CPU = 4
MIN_TASK_ROWS = 1_000


@dataclass(frozen=True)
class DedupEngine:
    """Where the candidate products run: ``local`` (this process) or ``ray`` (Ray tasks).

    Attributes:
        engine: ``local`` or ``ray``.
        address: ``ray``: the cluster to join (``None``: start Ray locally, unless already running).
        workers: ``ray``: CPUs of a local start; on a cluster, tasks in flight are at most twice this (default:
            the cluster's CPUs).
    """

    engine: str = "local"
    address: str | None = None
    workers: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "engine", check_engine(self.engine, self.address, self.workers))

    def check(self, options: DedupOptions, against: bool = False) -> None:
        """Refuse what only runs locally, before any work; import Ray now, so a missing extra fails first.

        Raises:
            UsageError: ``--engine ray`` with ``--against`` or with the code join (``--neighbours K``).
            EngineUnavailableError: Ray is not installed.
        """
        if self.engine == "local":
            return
        if against:
            raise UsageError("--engine ray works on the index itself, not with --against")
        if isinstance(options.neighbours, int):
            raise UsageError(
                "--engine ray runs the cells and all-pairs stages (--neighbours auto or all); "
                "the code join (--neighbours K) runs only locally: drop --engine ray or --neighbours"
            )
        import_ray()


@dataclass
class Runners:
    """The candidate stages' runners on one Ray session (:meth:`assign`, :meth:`cells`, :meth:`bands`)."""

    tasks: RayTasks

    def assign(self, tree: CellTree, x: np.ndarray, probes: int) -> np.ndarray:
        """The :data:`~semhash.dedup.cells.AssignRunner` on Ray: one task a block of ``ASSIGN_BLOCK`` rows.

        The local loop's blocks, so each block's products have the local shapes (the same nearest cells).
        """
        step = cell_stage.ASSIGN_BLOCK
        blocks = ((x[start : start + step], probes) for start in range(0, len(x), step))
        return np.concatenate(list(self.tasks.map(_assign_task, blocks, tree)))

    def cells(self, x: np.ndarray, work: Iterable[CellWork], floor: float) -> Iterator[CellFound]:
        """The :data:`~semhash.dedup.cells.CellRunner` on Ray: runs of whole cells, about ``TASK_ROWS`` rows a task."""
        # A document is a member of one cell and visits PROBES - 1 = 1 other: about 2n rows a tree.
        per_task = min(TASK_ROWS, max(MIN_TASK_ROWS, 2 * len(x) // (TASKS_PER_CPU * self.tasks.counts.cpus)))
        for found in self.tasks.map(_cells_task, _cell_batches(x, work, floor, per_task), None):
            yield from found

    def bands(self, x: np.ndarray, bands: Iterable[tuple[int, int]], floor: float) -> Iterator[Band]:
        """The :data:`~semhash.dedup.allpairs.BandRunner` on Ray: a task a band, the matrix shared once."""
        return self.tasks.map(_band_task, ((start, stop, floor) for start, stop in bands), x)

    def describe(self) -> str:
        """``ray (T tasks on C CPUs)``, for the stats."""
        return f"ray ({self.tasks.counts.tasks} tasks on {self.tasks.counts.cpus} CPUs)"


@contextmanager
def runners(engine: DedupEngine | None) -> Iterator[Runners | None]:
    """The Ray runners of ``engine`` for the duration of the block (``None``: local, nothing is started)."""
    if engine is None or engine.engine == "local":
        yield None
        return
    with ray_tasks(engine.address, engine.workers) as tasks:
        yield Runners(tasks)


@dataclass
class CellBatch:
    """One task's cells: the embeddings of the rows they touch, and each cell's members and visitors among them."""

    rows: np.ndarray  # sorted matrix rows of every member and visitor
    x: np.ndarray  # their embeddings, row k of ``x`` is matrix row ``rows[k]``
    work: list[CellWork]  # members and visitors as positions in ``rows``
    floor: float


def _cell_batches(x: np.ndarray, work: Iterable[CellWork], floor: float, per_task: int) -> Iterator[CellBatch]:
    """Consecutive cells, about ``per_task`` rows a batch (a cell is never split), in cell order."""
    group: list[CellWork] = []
    size = 0
    for cell in work:
        group.append(cell)
        size += len(cell.members) + len(cell.visitors)
        if size >= per_task:
            yield _batch(x, group, floor)
            group, size = [], 0
    if group:
        yield _batch(x, group, floor)


def _batch(x: np.ndarray, group: list[CellWork], floor: float) -> CellBatch:
    """The payload of ``group``: neighbouring cells share many visitors, so each row is sent once."""
    rows = np.unique(np.concatenate([np.r_[c.members, c.visitors] for c in group]))
    local = [CellWork(c.cell, np.searchsorted(rows, c.members), np.searchsorted(rows, c.visitors)) for c in group]
    return CellBatch(rows, x[rows], local, floor)


def _cells_task(batch: CellBatch, _: None) -> list[CellFound]:
    """A Ray task: each cell's products (:func:`cell_products`), rows mapped back to the matrix's."""
    found = []
    for cell in batch.work:
        f = cell_products(batch.x, cell, batch.floor)
        rows = batch.rows
        found.append(CellFound(f.cell, rows[f.i], rows[f.j], f.cosine, f.products))
    return found


def _assign_task(block: tuple[np.ndarray, int], tree: CellTree) -> np.ndarray:
    """A Ray task: the nearest cells of one block of rows (:meth:`CellTree.nearest_block`)."""
    xb, probes = block
    return tree.nearest_block(xb, probes)


def _band_task(band: tuple[int, int, float], x: np.ndarray) -> Band:
    """A Ray task: one all-pairs band (:func:`band_pairs`) of the shared embeddings."""
    start, stop, floor = band
    return band_pairs(x, start, stop, floor)
