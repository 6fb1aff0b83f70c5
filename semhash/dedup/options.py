"""How duplicates are found and grouped: :class:`DedupOptions`, its defaults and limits, checked once."""

from __future__ import annotations

from dataclasses import dataclass

from semhash.errors import UsageError

#: Hamming radius of the candidate stage (bits, of 32). See BENCHMARKS.md for the calibration.
DEFAULT_RADIUS = 3
#: Cosine of stored embeddings at or above which a candidate pair is a near-duplicate.
DEFAULT_THRESHOLD = 0.8
CLUSTER_METHODS = ("centre", "components")
KEEP_RULES = ("first", "longest", "shortest", "newest")
#: Largest radius accepted: beyond it "near" stops meaning anything at 32 bits and the join explodes.
MAX_RADIUS = 8
#: Candidate pairs below this cosine (or below the threshold, if lower) are counted, not kept.
KEEP_FLOOR = 0.5
#: Most nearest neighbours per document taken as extra candidates (``--neighbours``).
MAX_NEIGHBOURS = 1000


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
        neighbours: also take each document's ``neighbours`` nearest stored embeddings as candidates
            (faiss; :mod:`semhash.dedup.ann`); 0 = the code stage alone.
    """

    radius: int = DEFAULT_RADIUS
    threshold: float = DEFAULT_THRESHOLD
    cluster: str = "centre"
    keep: str = "first"
    number_veto: bool = False
    neighbours: int = 0

    def __post_init__(self) -> None:
        # Every way of making options (the CLI, the API, dataclasses.replace in rethreshold) passes here.
        check_radius(self.radius)
        if not -1.0 <= self.threshold <= 1.0:
            raise UsageError(f"--threshold must be a cosine between -1 and 1, not {self.threshold}")
        if self.cluster not in CLUSTER_METHODS:
            raise UsageError(f"--cluster must be one of {', '.join(CLUSTER_METHODS)}, not {self.cluster!r}")
        if not 0 <= self.neighbours <= MAX_NEIGHBOURS:
            raise UsageError(f"--neighbours must be between 0 and {MAX_NEIGHBOURS}, not {self.neighbours}")
        if self.keep not in KEEP_RULES:
            raise UsageError(f"--keep must be one of {', '.join(KEEP_RULES)}, not {self.keep!r}")

    @property
    def floor(self) -> float:
        """Cosine below which candidate pairs are only counted (so a result can be re-thresholded down to it)."""
        return min(self.threshold, KEEP_FLOOR)
