"""Plain dataclasses passed between layers; services return these, only the CLI prints them."""

from __future__ import annotations

import bisect
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from semhash.config import DEFAULT_OUTLIER_SCORE

#: ``(char_offset, page_or_slide)`` boundaries of a document, ascending by offset: the page (PDF) or slide
#: (PPTX, ODP) that starts at that character of the document's text and runs to the next boundary.
Locations = tuple[tuple[int, int], ...]


def format_location(path: str, record: int) -> str:
    """How a document is named everywhere: ``path`` for one-document files, ``path#record`` for records."""
    return path if record == 0 else f"{path}#{record}"


@dataclass(frozen=True)
class SourceDocument:
    """A document read from disk, before it is embedded.

    ``path`` is the file; ``record`` numbers the document inside a JSON/JSONL/CSV file
    (0 for one-document files), so ``(path, record)`` identifies a document.
    """

    path: str
    record: int
    text: str
    content_hash: str
    mtime: float
    #: where each page or slide starts in ``text`` (``None``: the format has no pages).
    locations: Locations | None = None
    #: the encoding a text file was decoded from (``None``: not a text format, e.g. a PDF).
    encoding: str | None = None


def page_at(locations: Sequence[Sequence[int]] | None, char_offset: int) -> int | None:
    """The page (or slide) holding character ``char_offset`` of a document; ``None`` when it has no pages.

    ``locations`` as stored (:func:`locations_from_json`) or as read: ``(char_offset, page)`` boundaries,
    ascending. An offset before the first boundary is on the first page.
    """
    if not locations:
        return None
    starts = [int(start) for start, _ in locations]
    index = max(bisect.bisect_right(starts, char_offset) - 1, 0)
    return int(locations[index][1])


def locations_to_json(locations: Locations | None) -> str | None:
    """The stored form of a document's locations (``documents.locations``): a JSON list of pairs, or NULL."""
    return json.dumps([[int(a), int(b)] for a, b in locations], separators=(",", ":")) if locations else None


def locations_from_json(stored: str | None) -> Locations | None:
    """A ``documents.locations`` value read back; anything damaged reads as ``None`` (no pages), never an error."""
    if not stored:
        return None
    try:
        pairs = json.loads(stored)
        out = tuple((int(a), int(b)) for a, b in pairs)
    except (ValueError, TypeError, RecursionError):
        return None
    return out or None


@dataclass(frozen=True)
class SkippedFile:
    r"""A file the corpus reader did not index, and why.

    ``kind`` is a short label to count by (``binary``, ``undecodable``, ``malformed``, ``too large``,
    ``no text layer``, ``encrypted``, ``needs extra``, ``not a regular file``, ``unreadable``,
    ``undecodable name``, ``symlink outside``, ``broken symlink``, ``alias``: see :mod:`semhash.extract`);
    ``reason`` is the one line a user reads. ``path`` is printable: a name that is not valid UTF-8 shows
    its odd bytes as ``\xNN``.
    """

    path: str
    reason: str
    kind: str = "unreadable"


@dataclass(frozen=True)
class PassedOver:
    """Files not read by design, counted by why and by extension rather than listed (a folder can hold thousands).

    ``reason`` is ``unsupported type``, ``hidden`` or ``excluded``; ``example`` is one of them.
    """

    reason: str
    extension: str
    count: int
    example: str


#: How each reason a file was passed over reads in a summary.
PASSED_OVER_LABELS = {
    "unsupported type": "of unsupported types",
    "hidden": "hidden (files and folders)",
    "excluded": "left out by --include/--exclude",
}


def plural(n: int, word: str) -> str:
    """``1 file``, ``2 files``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def skip_summary(skipped: Sequence[SkippedFile], empty: int, passed_over: Sequence[PassedOver], top: int = 6) -> str:
    """One line accounting for every file not indexed.

    Skipped by kind, empty documents, passed over by reason with the commonest extensions, e.g. ``skipped 3 files
    (2 binary, 1 alias), 0 empty documents; 812 files of unsupported types (.gz 700, (none) 100, .png 12)``.
    """
    kinds: dict[str, int] = {}
    for item in skipped:
        kinds[item.kind] = kinds.get(item.kind, 0) + 1
    by_kind = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))
    line = f"skipped {plural(len(skipped), 'file')}" + (f" ({by_kind})" if by_kind else "")
    line += f", {plural(empty, 'empty document')}"
    reasons: dict[str, list[PassedOver]] = {}
    for row in passed_over:
        reasons.setdefault(row.reason, []).append(row)
    for reason, rows in reasons.items():
        rows = sorted(rows, key=lambda r: (-r.count, r.extension))
        exts = ", ".join(f"{r.extension} {r.count}" for r in rows[:top]) + (", ..." if len(rows) > top else "")
        total = sum(r.count for r in rows)
        line += f"; {plural(total, 'file')} {PASSED_OVER_LABELS.get(reason, reason)} ({exts})"
    return line


@dataclass(frozen=True)
class FileNote:
    """Something worth knowing about a file that was indexed.

    ``kind`` is ``encoding`` (decoded from ``detail``, not UTF-8) or ``truncated`` (its text was cut at ``detail``
    characters).
    """

    path: str
    kind: str
    detail: str


@dataclass(frozen=True)
class Folded:
    """A document folded into a hit, and why.

    ``why`` is ``same content`` (the same content hash: an exact copy) or ``near-identical text`` (a twin: its text
    shares ``overlap`` of its word shingles with the hit's, Jaccard; :mod:`semhash.search.twins`). ``overlap`` is
    ``None`` for an exact copy (nothing to measure).
    """

    location: str
    why: str
    overlap: float | None = None


@dataclass(frozen=True)
class Hit:
    """One search result. ``cosine`` is ``None`` when embeddings were not consulted; ``bits`` is the code length.

    ``stage`` names the query's candidate stage (:func:`semhash.search.query_candidate_stage`): ``codes``,
    ``codes+ivf``, ``exact`` or ``hamming``, with ``+fts`` in hybrid mode, or ``fts`` in keyword mode.
    ``mode`` is the query's ranking (``semantic``, ``keyword`` or ``hybrid``); ``bm25`` the keyword index's
    score (FTS5's, negated so that higher is better; ``None`` when the words did not match); ``score`` the
    value the ranking sorted by (the cosine, ``bm25``, or the reciprocal-rank-fusion sum). ``copies``: the
    locations of other documents folded into this hit (the same content, or near-identical text); ``folded``:
    the same documents, in the same order, each with why it folded (:class:`Folded`).
    """

    rank: int
    id: int
    path: str
    record: int
    distance: int
    code: int
    cosine: float | None
    snippet: str
    bits: int = 32
    stage: str = "codes"
    mode: str = "semantic"
    bm25: float | None = None
    score: float | None = None
    copies: list[str] = field(default_factory=list)
    folded: list[Folded] = field(default_factory=list)
    #: the window of the text that best matches the query (:mod:`semhash.search.passages`): ``{"start", "end",
    #: "page", "cosine", "source", "text", "highlights", "snippet_highlights"}`` (character offsets into the
    #: stored text; ``page`` where it starts, or ``None``); ``None`` for a document without window vectors.
    passage: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (CLI ``--json``, ``semhash serve``): the code as ``bits / 4`` hex digits, the location."""
        row = asdict(self)
        row["code"] = f"{self.code:0{self.bits // 4}x}"
        row["location"] = self.location
        return row

    @property
    def location(self) -> str:
        """``path`` for one-document files, ``path#record`` for records of JSON/CSV files."""
        return format_location(self.path, self.record)


class Hits(list[Hit]):
    """A query's hits, best first, and whether the best one is weak.

    ``weak``: no hit, or ``best`` (the best cosine of a document to the query: of the hits, and in hybrid
    mode of the semantic ranking's first too) is below ``floor`` (:data:`semhash.search.WEAK_COSINE`): the
    index probably holds no good answer. A list, so code that iterates hits keeps working.
    """

    def __init__(
        self, hits: Sequence[Hit] = (), weak: bool = False, floor: float | None = None, best: float | None = None
    ) -> None:
        super().__init__(hits)
        self.weak = weak
        self.floor = floor
        self.best = best


@dataclass
class IndexReport:
    """What one ``semhash index`` run did."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    encoded: int = 0
    trained: bool = False
    skipped_files: list[SkippedFile] = field(default_factory=list)
    empty_documents: int = 0
    #: files under the paths given that were not read on purpose (unsupported type, hidden, excluded), counted.
    passed_over: list[PassedOver] = field(default_factory=list)
    #: files read in an encoding other than UTF-8, or whose text was truncated.
    file_notes: list[FileNote] = field(default_factory=list)
    #: files read (indexed, unchanged or empty) in this run.
    files_read: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0
    train_seconds: float = 0.0
    windows: int = 0
    total_documents: int = 0
    #: :func:`semhash.train.train_hasher`'s statistics: numbers, and per-epoch validation curves as lists.
    train_stats: dict[str, float | list[float]] = field(default_factory=dict)
    #: ``semhash train --adapt``: seconds adapting the encoder and re-embedding, and its statistics.
    adapt_seconds: float = 0.0
    adapt_stats: dict[str, float | list[float]] = field(default_factory=dict)
    #: added documents whose content is stored under another path whose file is gone (a moved folder?).
    same_content_elsewhere: int = 0
    #: a warning line when the documents added to a trained index are markedly unlike it (``None``: no drift).
    drift_warning: str | None = None
    #: one-line warnings that did not stop the run (e.g. the fast query runtime could not be exported).
    warnings: list[str] = field(default_factory=list)

    @property
    def embedded(self) -> int:
        """Documents that went through the embedding model in this run."""
        return self.added + self.updated

    @property
    def docs_per_second(self) -> float:
        """Embedded documents per second of wall time (0 when nothing was embedded)."""
        return self.embedded / self.seconds if self.seconds > 0 and self.embedded else 0.0


@dataclass(frozen=True)
class IndexInfo:
    """What ``semhash info`` shows."""

    db_path: str
    documents: int
    encoded: int
    model_name: str | None
    embedding_dim: int | None
    bits: int | None
    schema_version: int
    trained_at: str | None
    trained_on: int | None
    bit_usage: list[float]
    db_bytes: int
    index_path: str
    index_bytes: int
    index_fresh: bool
    #: the hashing model's lexical vector: directions and vocabulary size (0, 0: it reads the embedding only).
    lexical_dim: int = 0
    lexical_terms: int = 0
    #: epochs the hashing model was trained for, and the rule that chose them ("auto: ..." or "--epochs N").
    epochs: int | None = None
    epochs_rule: str | None = None
    #: held-out documents' agreement with their teacher bits after training (None: none held out, or older model).
    val_agreement: float | None = None
    #: most windows embedded per document (0: every window; None: not recorded, an older index).
    max_windows: int | None = None
    #: window vectors stored for passages (schema 4's ``windows`` table), and the documents that have them.
    windows: int = 0
    documents_with_windows: int = 0
    #: the encoder precision of the stored embeddings (``fp32`` or ``int8``; ``semhash index --precision``).
    embedding_precision: str = "fp32"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (CLI ``--json``, ``semhash serve``)."""
        return asdict(self)


@dataclass(frozen=True)
class DuplicatePair:
    """One duplicate, explained: which document is kept, which one duplicates it, the score and why.

    ``matched_id`` is the document the duplicate was matched to: the kept one, except in
    ``components`` clusters, where it can be another member it is linked through. ``score`` is the
    cosine of the matched pair's stored embeddings (1.0 for exact duplicates); ``reason`` is ``exact``
    (same text once casefolded and whitespace-collapsed) or ``near``. ``measure`` says what decided it:
    ``text`` (the normalised texts are equal), ``cosine`` (two short texts: the cosine alone) or
    ``cosine+overlap`` (a long text: the cosine and the word-shingle Jaccard ``overlap``, which is ``None``
    where it was not measured).
    """

    kept_id: int
    kept_location: str
    duplicate_id: int
    duplicate_location: str
    matched_id: int
    score: float
    reason: str
    overlap: float | None = None
    measure: str = "cosine"


@dataclass(frozen=True)
class DuplicateCluster:
    """A group of duplicates: the kept document and the others (numbered from 1 by the kept id)."""

    cluster: int
    kept_id: int
    kept_location: str
    duplicates: list[DuplicatePair]


@dataclass(frozen=True)
class ExistingMatch:
    """A stored document that a new document duplicates (``semhash dedup --against``).

    ``hamming`` is the code distance (-1 when an exact match lay outside the radius). ``measure`` and
    ``overlap`` are as in :class:`DuplicatePair`.
    """

    id: int
    location: str
    score: float
    reason: str
    hamming: int
    overlap: float | None = None
    measure: str = "cosine"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (``semhash serve``'s ``/api/exists``)."""
        return asdict(self)


@dataclass(frozen=True)
class PlannedFile:
    """One file of an :class:`IndexPlan`: its characters to embed and the windows they are estimated at."""

    path: str
    characters: int
    windows: int


@dataclass(frozen=True)
class IndexPlan:
    """What an ``index`` run is about to embed, said before the model loads (the first thing a user sees).

    ``windows`` is an estimate: characters divided by :data:`semhash.config.CHARS_PER_WINDOW_ESTIMATE`
    per document (at least one window each, at most ``max_windows`` when set); progress reporting
    corrects it from the windows actually cut once some are done.
    """

    files: int
    documents: int
    characters: int
    windows: int
    max_windows: int
    #: the files with the most estimated windows, largest first.
    largest: tuple[PlannedFile, ...] = ()

    @property
    def largest_share(self) -> float:
        """The share of the estimated windows that :attr:`largest` hold (0-1)."""
        return sum(f.windows for f in self.largest) / self.windows if self.windows else 0.0

    def to_dict(self) -> dict[str, object]:
        """JSON-ready fields."""
        return {
            "files": self.files,
            "documents": self.documents,
            "characters": self.characters,
            "windows_estimate": self.windows,
            "max_windows": self.max_windows,
            "largest": [{"path": f.path, "characters": f.characters, "windows": f.windows} for f in self.largest],
        }


@dataclass
class RemoveReport:
    """What ``semhash remove`` did: documents removed in all, and per path asked for."""

    removed: int = 0
    #: each path as given -> documents removed under it.
    paths: dict[str, int] = field(default_factory=dict)
    total_documents: int = 0


@dataclass(frozen=True)
class Outlier:
    """One document and how unlike the others it is.

    Attributes:
        recon_error: the stored reconstruction error.
        z_score: the robust z-score of the ranking score (``score``).
        knn_distance: 1 - cosine to the ``neighbours``-th nearest document (``None`` for ``score="recon"``).
        score: which score ranked it: ``combined``, ``knn`` or ``recon``.
    """

    rank: int
    id: int
    path: str
    record: int
    recon_error: float
    z_score: float
    snippet: str
    knn_distance: float | None = None
    score: str = DEFAULT_OUTLIER_SCORE

    @property
    def location(self) -> str:
        """``path`` or ``path#record``."""
        return format_location(self.path, self.record)


@dataclass(frozen=True)
class WriteSummary:
    """What ``--write-unique`` wrote.

    Attributes:
        written: documents written in all.
        copied: one-document files copied byte for byte (their content checked against the index).
        from_index: one-document files written from the stored text: the file is gone, changed since it
            was indexed, or is not what the index says it is (a crafted path).
        records: records of JSON/JSONL/CSV files, written as JSONL lines.
    """

    written: int = 0
    copied: int = 0
    from_index: int = 0
    records: int = 0

    def describe(self, out: str | Path) -> str:
        """One line for the CLI."""
        line = f"wrote {self.written} unique documents to {out}"
        if self.from_index:
            line += (
                f" ({self.from_index} from the text stored in the index: their file is gone, changed since "
                "indexing, or not the file the index describes)"
            )
        return line
