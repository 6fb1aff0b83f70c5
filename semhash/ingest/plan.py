"""Before embedding: what the scan found and what the run is about to embed (:func:`plan_index`).

Also the scan's verdicts that need no model: which stored paths lie under the folders given
(:func:`in_scope`), no document at all (:func:`raise_no_documents`), and new documents whose content is
stored under a vanished path elsewhere (:func:`same_content_elsewhere`: a moved folder).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

from semhash.config import CHARS_PER_WINDOW_ESTIMATE
from semhash.corpus import SUPPORTED_SUFFIXES, CorpusScan
from semhash.errors import NoDocumentsError
from semhash.ingest.options import PLAN_LARGEST_FILES
from semhash.types import IndexPlan, PlannedFile, skip_summary


def in_scope(path: str, roots: Sequence[Path]) -> bool:
    """Whether the stored ``path`` is one of ``roots`` or lies under one of them.

    Compared as strings (stored paths and roots are both absolute and normalised), since every stored
    document is checked on every run: at 18,431 stored documents ``Path.parents`` took 0.19 s a run, strings 0.005 s.
    """
    for root in roots:
        text = str(root)
        if path == text or path.startswith(text if text.endswith(os.sep) else text + os.sep):
            return True
    return False


def estimated_windows(characters: int, max_windows: int = 0) -> int:
    """Windows one document of ``characters`` is expected to need (see :class:`~semhash.types.IndexPlan`)."""
    windows = max(1, -(-characters // CHARS_PER_WINDOW_ESTIMATE))
    return min(windows, max_windows) if max_windows > 0 else windows


def plan_index(pending: dict[str, dict[int, int]], max_windows: int = 0) -> IndexPlan:
    """What embedding ``pending`` (characters by record by path) amounts to: files, documents, windows."""
    per_file = [
        PlannedFile(path, sum(records.values()), sum(estimated_windows(n, max_windows) for n in records.values()))
        for path, records in pending.items()
    ]
    largest = sorted(per_file, key=lambda f: (-f.windows, -f.characters, f.path))[:PLAN_LARGEST_FILES]
    return IndexPlan(
        files=len(per_file),
        documents=sum(len(records) for records in pending.values()),
        characters=sum(f.characters for f in per_file),
        windows=sum(f.windows for f in per_file),
        max_windows=max_windows,
        largest=tuple(largest),
    )


def raise_no_documents(roots: Sequence[Path], scan: CorpusScan) -> None:
    """Raise the one error of a scan that found nothing to index, saying what it passed over.

    Raises:
        NoDocumentsError: always.
    """
    where = ", ".join(str(r) for r in roots)
    hint = "; --verbose lists them" if scan.skipped or scan.passed_over else ""
    raise NoDocumentsError(
        f"no documents found under {where} (read: {' '.join(SUPPORTED_SUFFIXES)}; "
        f"{skip_summary(scan.skipped, scan.empty, scan.passed_over)}{hint})",
        skipped=scan.skipped,
        passed_over=scan.passed_over,
    )


def same_content_elsewhere(
    states: dict[tuple[str, int], tuple[int, str, bool]], new_hashes: Sequence[str], roots: Sequence[Path]
) -> int:
    """New documents whose content is stored under another path, outside ``roots``, whose file is gone.

    That is what a moved or renamed folder looks like: its old entries stay (only the folders given are
    scanned for vanished files), so the index would hold everything twice until ``prune``.
    """
    wanted = set(new_hashes)
    elsewhere: dict[str, list[str]] = {}
    for (path, _), (_, digest, _) in states.items():
        if digest in wanted and not in_scope(path, roots):
            elsewhere.setdefault(digest, []).append(path)
    gone = functools.cache(lambda p: not os.path.exists(p))
    return sum(1 for digest in new_hashes if any(gone(p) for p in elsewhere.get(digest, ())))
