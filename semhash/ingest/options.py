"""What ``semhash index`` can be told (:class:`IndexOptions`), and the callbacks it reports through."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from semhash.config import DEFAULT_BATCH_DOCS, DEFAULT_MAX_WINDOWS
from semhash.corpus import ReadOptions
from semhash.engine import check_engine
from semhash.errors import UsageError
from semhash.runtime.precision import asked_precision
from semhash.types import IndexPlan

#: ``progress(phase, done, total)``; phases: "embed" (characters of the new and changed documents, reported
#: after each batch and after each window chunk of a huge document; documents when ``--adapt`` re-embeds),
#: "adapt-cache" and "adapt" (``--adapt``: windows through the frozen layers, then optimiser steps),
#: "train" (epochs), "encode" (documents). Beside "embed", the local engine also reports "documents"
#: (documents committed of those to embed) and "windows" (windows embedded of the plan's estimate, which
#: a reporter may correct from the characters-per-window ratio measured so far).
Progress = Callable[[str, int, int], None]

#: ``on_plan(plan)``: called once, before the model loads, with what the run is about to embed.
PlanCallback = Callable[[IndexPlan], None]

#: Files named by :func:`plan_index` as the largest of a run.
PLAN_LARGEST_FILES = 3

#: Characters embedded and committed together (beside ``batch_docs``): bounds a batch's memory and the work
#: an interruption can lose; a longer document is embedded alone, in window chunks.
DEFAULT_BATCH_CHARS = 200_000

#: Documents the hashing model trains on at most (a seeded sample beyond): the neighbour graph of
#: :func:`semhash.train.train_hasher` grows as n^2 (200,000 documents: minutes on one GPU, most of an hour
#: on CPU) while P@100 on 20 Newsgroups barely moves past 5,000 (benchmarks/bench_train_sample.py).
DEFAULT_MAX_TRAIN_DOCS = 200_000


@dataclass
class IndexOptions:
    """Everything ``semhash index`` can be told."""

    model: str | None = None
    device: str = "auto"
    bits: int | None = None
    retrain: bool = False
    batch_docs: int = DEFAULT_BATCH_DOCS
    #: most characters in one batch; a longer document is a batch of its own, embedded in window chunks.
    batch_chars: int = DEFAULT_BATCH_CHARS
    #: most model windows embedded per document, evenly spread (0 = all). ``None``: the index's recorded cap,
    #: or :data:`~semhash.config.DEFAULT_MAX_WINDOWS` for a new index (:func:`semhash.ingest.run.window_cap`).
    max_windows: int | None = None
    read: ReadOptions = field(default_factory=ReadOptions)
    epochs: int | None = None
    seed: int = 0
    #: weight of the lexical vector in the hashing model's input (0 = embedding only; ``None`` = the recipe's).
    lexical_weight: float | None = None
    #: also remove every document whose file no longer exists, anywhere in the index.
    prune: bool = False
    # -- where embedding runs (semhash/engine): "local" (this process) or "ray" ---------------------------
    engine: str = "local"
    #: ``--engine ray``: the Ray cluster to join (``None``: start Ray locally with ``workers`` CPUs).
    address: str | None = None
    #: ``--engine ray``: embedding actors (``None``: one per CPU, or per GPU, that Ray reports).
    workers: int | None = None
    #: the hashing model trains on a seeded sample of this many documents when the corpus is larger
    #: (its kNN graph costs O(n^2); quality saturates long before: see benchmarks/bench_train_sample.py).
    max_train_docs: int = DEFAULT_MAX_TRAIN_DOCS
    #: (re)write ``<db>.runtime/`` (the torch-free query path) after training.
    runtime_export: bool = True
    #: the encoder may be exported now when no export of it exists (``semhash index``: a real model was loaded).
    export_encoder: bool = False
    #: ``--precision``: ``fp32`` or ``int8`` (``None``: the index's recorded one, for a new index
    #: ``SEMHASH_PRECISION``, else the default); see :mod:`semhash.runtime.precision`.
    precision: str | None = None

    def __post_init__(self) -> None:
        # Checked here, so that `index` and `train` both refuse it before any work.
        if self.epochs is not None and self.epochs < 1:
            raise UsageError(f"--epochs must be 1 or more, not {self.epochs}")
        if self.lexical_weight is not None and not self.lexical_weight >= 0:  # also rejects NaN
            raise UsageError(f"--lexical-weight must be 0 or more, not {self.lexical_weight}")
        if self.max_windows is not None and self.max_windows < 0:
            raise UsageError(f"--max-windows must be 0 (no limit) or more, not {self.max_windows}")
        if self.max_train_docs < 1:
            raise UsageError(f"max_train_docs must be 1 or more, not {self.max_train_docs}")
        self.engine = check_engine(self.engine, self.address, self.workers)
        self.precision = asked_precision(self.precision)

    @property
    def windows_cap(self) -> int:
        """The window cap in force: as resolved by ``index_paths``, else the default for a new index."""
        return DEFAULT_MAX_WINDOWS if self.max_windows is None else self.max_windows
