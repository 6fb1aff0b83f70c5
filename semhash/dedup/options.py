"""How duplicates are found and grouped: :class:`DedupOptions`, its defaults and limits, checked once."""

from __future__ import annotations

from dataclasses import dataclass

from semhash.errors import UsageError

#: Hamming radius of the candidate stage (bits, of 32). See BENCHMARKS.md for the calibration.
DEFAULT_RADIUS = 3
#: Cosine of stored embeddings at or above which a candidate pair is a near-duplicate.
DEFAULT_THRESHOLD = 0.8
#: Word-shingle Jaccard at or above which a near pair with a long document (more than one encoder window) is a
#: copy, not the same topic (:mod:`semhash.overlap`, 2-word shingles); pairs of two short texts keep the
#: cosine alone. Calibrated on the validation half of the long documentation set (``benchmarks/bench_dedup.py
#: longdoc``): at cosine 0.8, F1 0.992 at 0.30-0.35, 0.995 at 0.4, 0.997 at 0.5 (the best), 0.990 at 0.6, and
#: 0.214 with the cosine alone. Planted copies sit at Jaccard >= 0.75 (5th percentile), other pairs above the
#: cosine threshold at <= 0.16 (95th). BENCHMARKS.md, "Dedup: copy, not topic (issue 22)".
DEFAULT_MIN_OVERLAP = 0.5
CLUSTER_METHODS = ("centre", "components")
KEEP_RULES = ("first", "longest", "shortest", "newest")
#: Largest radius accepted: beyond it "near" stops meaning anything at 32 bits and the join explodes.
MAX_RADIUS = 8
#: Candidate pairs below this cosine (or below the threshold, if lower) are counted, not kept.
KEEP_FLOOR = 0.5
#: Most nearest neighbours per document taken as extra candidates (``--neighbours``).
MAX_NEIGHBOURS = 1000
#: ``--neighbours auto``: up to this many documents every pair's cosine is computed (the ``all-pairs`` stage,
#: exact). Its cost grows as n^2: about 1.5 * 10^11 flops at this size, a few seconds of BLAS on 2 cores.
EXACT_LIMIT = 20_000
#: ``--neighbours auto``: above ``EXACT_LIMIT``, every pair at or above the threshold inside k-means cells of
#: the full embeddings, each document against its nearest cells (:mod:`semhash.dedup.cells`). It replaced
#: the code join plus 10 nearest embeddings (to 200,000 documents) and the code join alone (above): learned
#: codes are topical, so at 10^6 radius 0 alone held 1.3 * 10^9 pairs and the budgeted join found 0.11 of
#: the planted copies; the neighbour search took 376 s. ``benchmarks/bench_dedup.py scale``, BENCHMARKS.md.
#: The words ``--neighbours`` accepts besides a number.
NEIGHBOUR_MODES = ("auto", "all")


@dataclass(frozen=True)
class CandidateStage:
    """Which candidate stage a run uses (see :func:`pair_candidate_stage`).

    Attributes:
        name: ``all-pairs`` (the cosine of every pair), ``cells`` (the pairs above the threshold inside
            k-means cells of the embeddings), ``codes+neighbours`` (the code join within the radius plus each
            document's ``neighbours`` nearest embeddings) or ``codes`` (the code join alone).
        neighbours: k of the neighbour search (0 unless ``codes+neighbours``).
    """

    name: str
    neighbours: int = 0

    def describe(self, radius: int, largest_block: int = 0) -> str:
        """A few words for summaries: what the candidates were.

        ``radius``: the one the code join used; ``largest_block``: the largest code block verified, 0 = all of them.
        """
        if self.name == "all-pairs":
            return "all pairs (exact)"
        if self.name == "cells":
            from semhash.dedup.cells import PROBES, TREES

            return (
                f"k-means cells of the embeddings ({TREES} trees, each document against its {PROBES} nearest "
                "cells; a pair counted once per tree)"
            )
        codes = f"codes within {radius} bits"
        if largest_block:
            codes += f" (codes of more than {largest_block} documents skipped: over the pair budget)"
        return f"{codes} + {self.neighbours} nearest embeddings" if self.neighbours else codes


def pair_candidate_stage(documents: int, neighbours: int | str) -> CandidateStage:
    """The candidate stage for ``documents`` encoded documents and a ``neighbours`` setting.

    ``"auto"``: all pairs up to :data:`EXACT_LIMIT` documents, the cell stage above. ``"all"``: all pairs at
    any size. A number ``k``: the code join (at exactly ``--radius``) plus ``k`` nearest embeddings (``0``:
    the code join alone).
    """
    if neighbours == "all" or (neighbours == "auto" and documents <= EXACT_LIMIT):
        return CandidateStage("all-pairs")
    if neighbours == "auto":
        return CandidateStage("cells")
    k = int(neighbours)
    return CandidateStage("codes+neighbours", k) if k else CandidateStage("codes")


def parse_neighbours(value: int | str) -> int | str:
    """``--neighbours`` as given on a command line: ``auto``, ``all`` or a number (checked by the options)."""
    if isinstance(value, int):
        return value
    text = str(value).strip().lower()
    if text in NEIGHBOUR_MODES:
        return text
    try:
        return int(text)
    except ValueError:
        raise UsageError(
            f"--neighbours must be auto, all or a number between 0 and {MAX_NEIGHBOURS}, not {value!r}"
        ) from None


def check_radius(radius: int, bits: int | None = None) -> None:
    """Raise :class:`UsageError` unless ``0 <= radius <= min(bits, MAX_RADIUS)``.

    The one radius check: :class:`DedupOptions` calls it without ``bits`` (the code length is not known
    until the index is open), the dedup services call it again with the index's code length.
    """
    limit = MAX_RADIUS if bits is None else min(bits, MAX_RADIUS)
    if not 0 <= radius <= limit:
        raise UsageError(f"--radius must be between 0 and {limit} bits, not {radius}")


@dataclass(frozen=True)
class DedupOptions:
    """How duplicates are found and grouped; out-of-range values raise :class:`UsageError` on creation.

    Attributes:
        radius: Hamming radius of the candidate stage, in bits.
        threshold: cosine of stored embeddings at or above which a candidate pair is a near-duplicate.
        cluster: ``"centre"`` (no chaining) or ``"components"`` (connected components).
        keep: which document of a cluster is kept: ``first``, ``longest``, ``shortest`` or ``newest``.
        number_veto: reject near pairs whose texts each hold a number the other lacks.
        min_overlap: a near pair in which either text is longer than one encoder window must also share this
            much of its word shingles (Jaccard, :mod:`semhash.overlap`); 0 = the cosine alone for
            every pair (the behaviour before issue 22).
        neighbours: the candidate stage (:func:`pair_candidate_stage`): ``"auto"`` (the default: every pair up to
            ``EXACT_LIMIT`` documents, the pairs above the threshold inside k-means cells above), ``"all"``
            (every pair), or ``k``: the code join plus each document's ``k`` nearest stored embeddings
            (faiss; :mod:`semhash.dedup.ann`); 0 = the code stage alone (the behaviour before ``auto``).
    """

    radius: int = DEFAULT_RADIUS
    threshold: float = DEFAULT_THRESHOLD
    cluster: str = "centre"
    keep: str = "first"
    number_veto: bool = False
    neighbours: int | str = "auto"
    min_overlap: float = DEFAULT_MIN_OVERLAP

    def __post_init__(self) -> None:
        # Every way of making options (the CLI, the API, dataclasses.replace in rethreshold) passes here.
        check_radius(self.radius)
        if not -1.0 <= self.threshold <= 1.0:
            raise UsageError(f"--threshold must be a cosine between -1 and 1, not {self.threshold}")
        if not 0.0 <= self.min_overlap <= 1.0:
            raise UsageError(f"--min-overlap must be a Jaccard between 0 and 1, not {self.min_overlap}")
        if self.cluster not in CLUSTER_METHODS:
            raise UsageError(f"--cluster must be one of {', '.join(CLUSTER_METHODS)}, not {self.cluster!r}")
        if isinstance(self.neighbours, str):
            if self.neighbours not in NEIGHBOUR_MODES:
                raise UsageError(
                    f"--neighbours must be auto, all or a number between 0 and {MAX_NEIGHBOURS}, "
                    f"not {self.neighbours!r}"
                )
        elif type(self.neighbours) is not int or not 0 <= self.neighbours <= MAX_NEIGHBOURS:  # no bool, no float
            raise UsageError(f"--neighbours must be between 0 and {MAX_NEIGHBOURS}, not {self.neighbours}")
        if self.keep not in KEEP_RULES:
            raise UsageError(f"--keep must be one of {', '.join(KEEP_RULES)}, not {self.keep!r}")

    @property
    def floor(self) -> float:
        """Cosine below which candidate pairs are only counted (so a result can be re-thresholded down to it)."""
        return min(self.threshold, KEEP_FLOOR)
