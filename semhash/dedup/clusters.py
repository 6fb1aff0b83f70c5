"""Clusters of duplicates, and :class:`DedupResult`, which keeps every candidate pair for re-thresholding.

Exact groups are merged first (they are one unit). Then, with ``cluster="centre"`` (the default), units
are visited in ``keep`` order and each unvisited one becomes a centre that takes every unvisited unit
within the threshold *of the centre itself*: every member is provably similar to its cluster's
representative, so A~B and B~C never pull an unrelated C in with A (no chaining). ``cluster="components"``
takes connected components instead (union-find over accepted pairs): it finds more of a family of copies
of copies, at the risk of chaining; each duplicate then names the document it matched (``matched_id``),
which is the representative itself whenever that pair passed.

``keep`` picks each cluster's representative deterministically: ``first`` (lowest id, i.e. indexed
first), ``longest`` / ``shortest`` (characters), ``newest`` (file mtime); ties always go to the lowest id.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from semhash.dedup.options import DedupOptions
from semhash.dedup.verify import FINE_BINS, fine_bin
from semhash.errors import UsageError
from semhash.types import DuplicateCluster, DuplicatePair, format_location


@dataclass
class DocTable:
    """What clustering and reporting need about the documents that have any candidate or exact twin."""

    ids: np.ndarray  # int64, sorted
    n_chars: np.ndarray  # int64
    mtime: np.ndarray  # float64
    text_hash: np.ndarray  # int64, hash of the normalised text
    paths: list[str]
    records: list[int]

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """Row positions of document ids."""
        return np.searchsorted(self.ids, ids)

    def location(self, row: int) -> str:
        """``path`` or ``path#record``."""
        return format_location(self.paths[row], self.records[row])

    def priority(self, keep: str) -> np.ndarray:
        """Rank of every row under a keep rule (0 is kept first); ties go to the lowest id."""
        if keep == "first":
            order = np.argsort(self.ids, kind="stable")
        elif keep == "longest":
            order = np.lexsort((self.ids, -self.n_chars))
        elif keep == "shortest":
            order = np.lexsort((self.ids, self.n_chars))
        else:  # newest
            order = np.lexsort((self.ids, -self.mtime))
        rank = np.empty(len(order), np.int64)
        rank[order] = np.arange(len(order))
        return rank


@dataclass
class DedupStats:
    """Sizes and timings of one run."""

    documents: int = 0
    candidates: int = 0
    #: The candidate stage that ran (:func:`semhash.dedup.options.pair_candidate_stage`): ``all-pairs``, ``cells``,
    #: ``codes+neighbours`` or ``codes``; ``neighbours`` is its k (0 without a neighbour search).
    stage: str = "codes"
    neighbours: int = 0
    #: The radius the code join used (``-1``: no join: ``all-pairs`` and ``cells``).
    radius: int = -1
    #: 0, or the most documents a code block may hold to be verified (no stage caps blocks today; kept for
    #: the ``--json`` field).
    largest_block: int = 0
    #: ``cells``: the k-means cells and the documents in the largest (0 for the other stages).
    cells: int = 0
    largest_cell: int = 0
    #: ``cells``: pairs at or above the threshold found after the stage's pair budget
    #: (``semhash.dedup.cells.CELL_PAIR_BUDGET`` a document) was spent: counted, not kept (0: none);
    #: ``--neighbours all`` verifies every pair. A pair found from both of its documents' cells counts twice.
    unverified_pairs: int = 0
    unverified_lower_bound: bool = False
    #: Whether the index embeds with an adapted encoder (``semhash train --adapt``): it reads only each
    #: document's first window, and finds fewer duplicates (BENCHMARKS.md, issue 12).
    adapted_encoder: bool = False
    #: Whether the index embeds with the static tier (``--model static``): its default threshold (0.8) was
    #: chosen for MiniLM, and unrelated long documents' summed token vectors reach it (BENCHMARKS.md).
    static_tier: bool = False
    #: Where the candidate products ran: ``local``, or ``ray (T tasks on C CPUs)`` (``--engine ray``).
    engine: str = "local"
    exact_duplicates: int = 0
    #: Kept candidate pairs (cosine at or above the floor) with a long text, whose shingle overlap was measured.
    overlap_pairs: int = 0
    seconds_read: float = 0.0
    seconds_candidates: float = 0.0
    seconds_cosine: float = 0.0
    seconds_cluster: float = 0.0
    seconds_overlap: float = 0.0

    def to_dict(self) -> dict[str, object]:
        """Every field, and the total seconds (what ``--json`` and the server show)."""
        return {**asdict(self), "seconds": round(self.seconds, 3)}

    def unverified_note(self) -> str | None:
        """A sentence for summaries when the pair budget skipped candidate pairs, else None."""
        if not self.unverified_pairs:
            return None
        count = f"{'at least ' if self.unverified_lower_bound else ''}{self.unverified_pairs}"
        if self.stage == "cells":
            return (
                f"{count} pairs at or above the threshold were found but not kept (pair budget of the default "
                "candidate stage); --neighbours all verifies and keeps every pair (slower)"
            )
        return (
            f"{count} candidate pairs within --radius were not verified (pair budget of the default candidate "
            "stage); --neighbours 0 verifies every pair within --radius, --neighbours all every pair (slower)"
        )

    @property
    def seconds(self) -> float:
        """Total wall time."""
        return (
            self.seconds_read
            + self.seconds_candidates
            + self.seconds_cosine
            + self.seconds_overlap
            + self.seconds_cluster
        )


@dataclass
class DedupResult:
    """Duplicates of an index, with every candidate pair kept for re-thresholding.

    Attributes:
        options: the options the clusters were made with.
        clusters: clusters of two or more documents, by the kept document's id.
        left, right: candidate pairs as document ids (``left < right``).
        hamming: their code distance; ``cosine``: the cosine of their stored embeddings.
        vetoed: per pair, whether the number veto rejects it (``None`` when it was not computed).
        overlap: per pair, the word-shingle Jaccard of its texts when either is long, NaN when both are short
            (:mod:`semhash.overlap`; ``None``: not computed, the cosine alone decides every pair).
        docs: the documents in any candidate pair or exact group.
        stats: sizes and timings.
    """

    options: DedupOptions
    clusters: list[DuplicateCluster]
    left: np.ndarray
    right: np.ndarray
    hamming: np.ndarray
    cosine: np.ndarray
    vetoed: np.ndarray | None
    docs: DocTable
    stats: DedupStats = field(default_factory=DedupStats)
    fine_histogram: np.ndarray | None = None
    floor: float = -1.0
    overlap: np.ndarray | None = None

    @property
    def overlap_rejected(self) -> int:
        """Candidate pairs at or above the threshold (and not vetoed) rejected for too few shared shingles.

        Their texts share too few shingles: the same topic, not a copy (``--min-overlap 0`` accepts them).
        """
        if self.overlap is None or self.options.min_overlap <= 0:
            return 0
        above = self.cosine >= self.options.threshold
        if self.options.number_veto and self.vetoed is not None:
            above &= ~self.vetoed
        measured = ~np.isnan(self.overlap)
        return int((above & measured & (self.overlap < self.options.min_overlap)).sum())

    @property
    def duplicates(self) -> list[DuplicatePair]:
        """Every duplicate of every cluster, cluster by cluster."""
        return [d for c in self.clusters for d in c.duplicates]

    @property
    def duplicate_ids(self) -> list[int]:
        """Ids of the documents that could be removed (one per cluster is kept)."""
        return sorted(d.duplicate_id for d in self.duplicates)

    def rethreshold(
        self,
        threshold: float | None = None,
        cluster: str | None = None,
        keep: str | None = None,
        number_veto: bool | None = None,
        min_overlap: float | None = None,
    ) -> DedupResult:
        """Re-cluster the stored candidate pairs with other settings (no database, no recomputation).

        Raises:
            UsageError: a setting is out of range, or ``number_veto`` is asked for but was not computed.
        """
        options = replace(
            self.options,
            threshold=self.options.threshold if threshold is None else threshold,
            cluster=cluster or self.options.cluster,
            keep=keep or self.options.keep,
            number_veto=self.options.number_veto if number_veto is None else number_veto,
            min_overlap=self.options.min_overlap if min_overlap is None else min_overlap,
        )
        if options.threshold < self.floor:
            raise UsageError(
                f"candidate pairs below cosine {self.floor} were counted, not kept: "
                f"run dedup again with --threshold {options.threshold}"
            )
        if options.number_veto and self.vetoed is None:
            raise UsageError("the number veto was not computed for this result: run dedup with number_veto=True")
        started = time.perf_counter()
        if options.min_overlap > 0 and self.overlap is None:
            raise UsageError("word-shingle overlap was not computed for this result: run dedup with min_overlap > 0")
        clusters = build_clusters(self.docs, self.left, self.right, self.cosine, self.vetoed, options, self.overlap)
        stats = replace(self.stats, seconds_cluster=time.perf_counter() - started)
        return replace(self, options=options, clusters=clusters, stats=stats)

    @property
    def kept_count(self) -> int:
        """Documents left once every duplicate is removed (the size of ``--write-unique``'s folder)."""
        return self.stats.documents - len(self.duplicate_ids)

    def reachable_sizes(self) -> tuple[int, int]:
        """``(smallest, largest)`` :attr:`kept_count` that re-thresholding the kept candidate pairs reaches.

        The largest keeps every near pair apart (threshold 1: exact duplicates always go); the smallest
        accepts every kept pair (threshold at the lowest kept cosine, never below the floor).
        """
        levels = self._levels()
        return self.rethreshold(float(levels[-1])).kept_count, self.rethreshold(float(levels[0])).kept_count

    def to_size(self, n: int) -> DedupResult:
        """Re-cluster at the highest threshold that leaves at most ``n`` documents (no database, no embedding).

        A binary search over the cosines of the kept candidate pairs (each step a :meth:`rethreshold`). The
        chosen threshold is ``result.options.threshold``; ``result.kept_count`` is ``n`` whenever some
        threshold gives exactly ``n`` (one more accepted pair can merge two clusters at once, or, with
        ``cluster="centre"``, regroup them, so a size may be skipped; the result then keeps fewer than ``n``).
        Calling it again with the same ``n`` gives the same result.

        Raises:
            UsageError: ``n`` is not positive, above the largest reachable size (exact duplicates always go),
                or below the smallest one the candidate pairs allow (the message gives that size: a larger
                radius finds more candidate pairs, a lower threshold keeps lower-cosine ones).
        """
        if n < 1:
            raise UsageError(f"--target must be at least 1 document, not {n}")
        levels = self._levels()
        largest = self.rethreshold(float(levels[0]))
        if n >= largest.kept_count:
            if n > largest.kept_count:
                raise UsageError(
                    f"--target {n} is more than the {largest.kept_count} documents left with no near-duplicate "
                    f"removed ({self.stats.documents} indexed, exact duplicates always go): ask for at most "
                    f"{largest.kept_count}"
                )
            return largest
        smallest = self.rethreshold(float(levels[-1]))
        if n < smallest.kept_count:
            if self.stats.stage == "all-pairs":  # every pair was a candidate: only the floor limits it
                raise UsageError(
                    f"--target {n} is not reachable: every pair at cosine >= {float(levels[-1]):.4f} leaves at "
                    f"least {smallest.kept_count} documents; a lower --threshold (which keeps lower-cosine pairs) "
                    "reaches further"
                )
            raise UsageError(
                f"--target {n} is not reachable: the candidate pairs at --radius {self.options.radius} (cosine >= "
                f"{float(levels[-1]):.4f}) leave at least {smallest.kept_count} documents; a larger --radius "
                f"(or a lower --threshold, which keeps lower-cosine pairs) reaches further"
            )
        # Invariant: levels[lo] leaves more than n, levels[hi] at most n (sizes shrink as the threshold drops).
        lo, hi, best = 0, len(levels) - 1, smallest
        while hi - lo > 1:
            mid = (lo + hi) // 2
            trial = self.rethreshold(float(levels[mid]))
            if trial.kept_count <= n:
                hi, best = mid, trial
            else:
                lo = mid
        return best

    def _levels(self) -> np.ndarray:
        """Thresholds worth trying, descending: 1.0, then every distinct kept cosine at or above the floor."""
        cosines = np.unique(self.cosine[self.cosine >= self.floor].astype(np.float64))[::-1]
        return np.r_[1.0, cosines[cosines < 1.0]]

    def histogram(self, bins: int = 20, low: float = 0.0) -> list[tuple[float, float, int]]:
        """``(from, to, count)`` of the cosines of *all* candidate pairs on ``bins`` equal bins of ``[low, 1]``.

        Cosines below ``low`` are counted in the first bin. Edges are exact to 0.01.
        """
        fine = self._fine()
        edges = np.linspace(low, 1.0, bins + 1)
        cuts = np.clip(np.round((edges + 1.0) * (FINE_BINS / 2)).astype(np.int64), 0, FINE_BINS)
        cuts[0], cuts[-1] = 0, FINE_BINS
        return [(float(edges[k]), float(edges[k + 1]), int(fine[cuts[k] : cuts[k + 1]].sum())) for k in range(bins)]

    def pairs_at(self, threshold: float) -> int:
        """How many candidate pairs have a cosine of at least ``threshold``.

        Counted before clustering; 0.01 steps below the kept floor.
        """
        if threshold >= self.floor:
            return int((self.cosine >= threshold).sum())
        cut = int(np.clip(np.round((threshold + 1.0) * (FINE_BINS / 2)), 0, FINE_BINS))
        return int(self._fine()[cut:].sum())

    def _fine(self) -> np.ndarray:
        if self.fine_histogram is not None:
            return self.fine_histogram
        return np.bincount(fine_bin(self.cosine), minlength=FINE_BINS)


# -- clustering-------------------------------------------------------------------------------------
def build_clusters(
    docs: DocTable,
    left: np.ndarray,
    right: np.ndarray,
    cosine: np.ndarray,
    vetoed: np.ndarray | None,
    options: DedupOptions,
    overlap: np.ndarray | None = None,
) -> list[DuplicateCluster]:
    """Clusters of exact groups and accepted near pairs (see the module docstring).

    A pair is accepted when its cosine reaches the threshold, the number veto (if asked for) does not reject
    it and, where ``overlap`` was measured (a long text in the pair), its shingle Jaccard reaches
    ``options.min_overlap``.
    """
    n = len(docs.ids)
    if n == 0:
        return []
    rank = docs.priority(options.keep)
    # Units: exact groups. unit_of[row] = row of the unit's representative (best rank in the group).
    order = np.lexsort((rank, docs.text_hash))
    keys_sorted = docs.text_hash[order]
    first = np.r_[True, keys_sorted[1:] != keys_sorted[:-1]]
    unit_of = np.empty(n, np.int64)
    unit_of[order] = order[np.flatnonzero(first)[np.cumsum(first) - 1]]
    # Accepted pairs, between units.
    li, ri = docs.rows(left), docs.rows(right)
    accept = cosine >= options.threshold
    if options.number_veto and vetoed is not None:
        accept &= ~vetoed
    jac = np.full(len(cosine), np.nan) if overlap is None else overlap.astype(np.float64)
    if options.min_overlap > 0:
        accept &= np.isnan(jac) | (jac >= options.min_overlap)
    same_text = docs.text_hash[li] == docs.text_hash[ri]
    accept &= ~same_text
    ua, ub, w = unit_of[li[accept]], unit_of[ri[accept]], cosine[accept].astype(np.float64)
    jw = jac[accept]
    between = ua != ub
    ua, ub, w, jw = ua[between], ub[between], w[between], jw[between]
    # One edge per unit pair (the strongest), both directions, sorted by (from, to).
    lo, hi = np.minimum(ua, ub), np.maximum(ua, ub)
    if len(lo):
        sort = np.lexsort((-w, hi, lo))
        lo, hi, w, jw = lo[sort], hi[sort], w[sort], jw[sort]
        firsts = np.r_[True, (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])]
        lo, hi, w, jw = lo[firsts], hi[firsts], w[firsts], jw[firsts]
    src, dst, weight = np.r_[lo, hi], np.r_[hi, lo], np.r_[w, w]
    sort = np.lexsort((dst, src))
    src, dst, weight = src[sort], dst[sort], weight[sort]
    # The shingle Jaccard of every accepted edge between units (NaN: two short texts), for the explanations.
    edge_overlap = {
        (int(a), int(b)): float(x)
        for a, b, x in zip(np.r_[lo, hi].tolist(), np.r_[hi, lo].tolist(), np.r_[jw, jw].tolist(), strict=True)
    }
    bounds = np.searchsorted(src, np.arange(n + 1))

    if options.cluster == "centre":
        centre_of, matched, score = _centre_clusters(n, rank, unit_of, src, dst, weight, bounds)
    else:
        centre_of, matched, score = _component_clusters(n, rank, unit_of, src, dst, weight, bounds)

    # Members: every row whose unit's centre is set, grouped by centre.
    members: dict[int, list[int]] = {}
    for row in np.flatnonzero(centre_of >= 0).tolist():
        members.setdefault(int(centre_of[row]), []).append(row)
    clusters = []
    for centre, rows in members.items():
        if len(rows) < 2:
            continue
        kept_id = int(docs.ids[centre])
        duplicates = []
        for row in sorted(rows, key=lambda r: rank[r]):
            if row == centre:
                continue
            unit = int(unit_of[row])
            jaccard: float | None = None
            if docs.text_hash[row] == docs.text_hash[centre]:
                matched_row, value, reason, measure = centre, 1.0, "exact", "text"
            elif row != unit:
                # An exact twin of another member: exact copies always cluster as exact, whatever else joins.
                matched_row, value, reason, measure = unit, 1.0, "exact", "text"
            else:
                matched_row, value, reason = int(matched[unit]), float(score[unit]), "near"
                x = edge_overlap.get((unit, int(unit_of[matched_row])), float("nan"))
                measure = "cosine" if np.isnan(x) else "cosine+overlap"
                jaccard = None if np.isnan(x) else round(x, 6)
            duplicates.append(
                DuplicatePair(
                    kept_id=kept_id,
                    kept_location=docs.location(centre),
                    duplicate_id=int(docs.ids[row]),
                    duplicate_location=docs.location(row),
                    matched_id=int(docs.ids[matched_row]),
                    score=round(value, 6),
                    reason=reason,
                    overlap=jaccard,
                    measure=measure,
                )
            )
        clusters.append(
            DuplicateCluster(cluster=0, kept_id=kept_id, kept_location=docs.location(centre), duplicates=duplicates)
        )
    clusters.sort(key=lambda c: c.kept_id)
    return [replace(c, cluster=k) for k, c in enumerate(clusters, start=1)]


def _centre_clusters(
    n: int,
    rank: np.ndarray,
    unit_of: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    weight: np.ndarray,
    bounds: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy star clustering: units in keep order; an unassigned unit takes its unassigned neighbours."""
    unit_centre = np.full(n, -1, np.int64)
    matched = np.full(n, -1, np.int64)
    score = np.zeros(n, np.float64)
    units = np.flatnonzero(unit_of == np.arange(n))
    sizes = np.bincount(unit_of, minlength=n)
    involved = units[(sizes[units] > 1) | (bounds[units + 1] > bounds[units])]
    involved = involved[np.argsort(rank[involved], kind="stable")]
    starts, ends = bounds[:-1].tolist(), bounds[1:].tolist()
    dst_list, weight_list = dst.tolist(), weight.tolist()
    assigned = unit_centre  # alias: -1 = free
    for u in involved.tolist():
        if assigned[u] >= 0:
            continue
        assigned[u] = u
        matched[u], score[u] = u, 1.0
        for k in range(starts[u], ends[u]):
            v = dst_list[k]
            if assigned[v] < 0:
                assigned[v] = u
                matched[v], score[v] = u, weight_list[k]
    return _spread(unit_centre, unit_of), matched, score


def _component_clusters(
    n: int,
    rank: np.ndarray,
    unit_of: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    weight: np.ndarray,
    bounds: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Connected components (label propagation with pointer jumping); the best-ranked unit is the centre."""
    label = np.arange(n)
    while True:
        new = label.copy()
        np.minimum.at(new, src, label[dst])
        new = new[new]
        if np.array_equal(new, label):
            break
        label = new
    # Centre: the best-ranked unit of each component.
    units = np.flatnonzero(unit_of == np.arange(n))
    order = units[np.lexsort((rank[units], label[units]))]
    first = np.r_[True, label[order][1:] != label[order][:-1]]
    best = np.full(n, -1, np.int64)
    best[label[order[first]]] = order[first]
    unit_centre = np.full(n, -1, np.int64)
    sizes = np.bincount(unit_of, minlength=n)
    linked = (bounds[units + 1] > bounds[units]) | (sizes[units] > 1)
    unit_centre[units[linked]] = best[label[units[linked]]]
    # Matched: the centre when the pair passed, else the most similar neighbour (ties: lowest rank).
    matched = np.full(n, -1, np.int64)
    score = np.zeros(n, np.float64)
    for u in units[linked].tolist():
        c = int(unit_centre[u])
        lo, hi = int(bounds[u]), int(bounds[u + 1])
        if c == u:
            matched[u], score[u] = u, 1.0
            continue
        neighbours, weights = dst[lo:hi], weight[lo:hi]
        direct = np.flatnonzero(neighbours == c)
        if len(direct):
            matched[u], score[u] = c, float(weights[direct[0]])
        else:
            pick = np.lexsort((rank[neighbours], -weights))[0]
            matched[u], score[u] = int(neighbours[pick]), float(weights[pick])
    return _spread(unit_centre, unit_of), matched, score


def _spread(unit_centre: np.ndarray, unit_of: np.ndarray) -> np.ndarray:
    """Centre of every row, from the centre of its unit."""
    return unit_centre[unit_of]
