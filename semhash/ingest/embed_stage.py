"""The embed stage of ``semhash index``: read the pending documents, embed them, commit each batch.

Local (:func:`embed_pending`: batches of small documents, then each long one alone, a window chunk at a
time) or on Ray (:func:`embed_on_ray`: batches on Ray workers, long documents here). Either way every
batch is its own transaction, and only embeddings are written: codes come after, in
:mod:`semhash.ingest.hashing` (the docstring of :mod:`semhash.ingest` says why).

Locally, an encoder that hands back its window vectors (:class:`semhash.embed.WindowEncoder`: the torch
and the exported encoders) has them stored with each document, in the same transaction (the ``windows``
table, for each hit's passage); the Ray workers do not send theirs back, so those documents have none.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from semhash.corpus import read_documents
from semhash.embed import Encoder, LongDocumentEncoder, WindowEncoder, Windows
from semhash.ingest.options import IndexOptions, Progress
from semhash.ingest.plan import estimated_windows
from semhash.store import Store
from semhash.types import SourceDocument


def embed_pending(
    store: Store,
    encoder: Encoder,
    pending: dict[str, dict[int, int]],
    options: IndexOptions,
    progress: Progress | None,
) -> None:
    """Read, embed and commit the pending documents: batches of small ones first, then each long one alone.

    Memory: one batch's texts (at most ``batch_docs`` documents and ``batch_chars`` characters) or one long
    document, plus the file being read. Each batch is its own transaction, so a rerun resumes after the
    last one committed, and an interruption during a long document keeps every small one.
    """
    limit = max(1, options.batch_chars)
    small = {path: {r for r, n in records.items() if n <= limit} for path, records in pending.items()}
    large = {path: {r for r, n in records.items() if n > limit} for path, records in pending.items()}
    total = sum(sum(records.values()) for records in pending.values())
    documents = sum(len(records) for records in pending.values())
    windows_planned = sum(estimated_windows(n, options.windows_cap) for r in pending.values() for n in r.values())
    windows_before = windows_embedded(encoder)
    done = 0
    documents_done = 0

    def report_progress(chars: int) -> None:
        if progress:  # the detail first: a reporter prints on "embed"
            progress("documents", documents_done, documents)
            progress("windows", windows_embedded(encoder) - windows_before, windows_planned)
            progress("embed", min(chars, total), total)

    def commit(batch: list[SourceDocument]) -> None:
        nonlocal done, documents_done
        # Similar lengths pad less in the transformer's forward passes.
        batch.sort(key=lambda d: (len(d.text), d.path, d.record))
        texts = [d.text for d in batch]
        if isinstance(encoder, WindowEncoder):
            vectors, windows = encoder.encode_windows(texts)
            store.upsert_documents(batch, vectors, [windows.of(i) for i in range(len(batch))])
        else:
            store.upsert_documents(batch, encoder.encode(texts))
        done += sum(len(d.text) for d in batch)
        documents_done += len(batch)
        report_progress(done)

    report_progress(0)
    batch: list[SourceDocument] = []
    chars = 0
    for doc in read_documents({p: r for p, r in small.items() if r}, options.read):
        if batch and (len(batch) >= options.batch_docs or chars + len(doc.text) > limit):
            commit(batch)
            batch, chars = [], 0
        batch.append(doc)
        chars += len(doc.text)
    if batch:
        commit(batch)
    del batch
    for doc in read_documents({p: r for p, r in large.items() if r}, options.read):
        if isinstance(encoder, LongDocumentEncoder):
            report = functools.partial(_offset_progress, report_progress, done)
            if isinstance(encoder, WindowEncoder):
                kept: list[tuple[int, int, np.ndarray]] = []
                vector = encoder.encode_long(doc.text, progress=report, keep=kept)
                windows = Windows.single(kept, len(vector))
                store.upsert_documents([doc], vector[None, :], [(windows.spans, windows.vectors)])
                del kept, windows
            else:
                vector = encoder.encode_long(doc.text, progress=report)
                store.upsert_documents([doc], vector[None, :])
        else:  # an encoder without chunking: the document alone is still its own batch
            store.upsert_documents([doc], encoder.encode([doc.text]))
        done += len(doc.text)
        documents_done += 1
        report_progress(done)
        del doc  # let this text go before the next long one is read


def embed_on_ray(
    store: Store,
    encoder: Encoder | None,
    model_name: str,
    pending: dict[str, dict[int, int]],
    options: IndexOptions,
    progress: Progress | None,
) -> int:
    """``--engine ray``: batches of documents up to ``batch_chars`` on Ray, longer ones on the local path.

    Long documents stay here, a window chunk at a time, so a Ray actor holds at most one batch. Returns
    the windows embedded.
    """
    from semhash.encoders import shipped_weights, torch_encoder
    from semhash.engine.ray_engine import RayJob, embed_on_ray

    # An adapted index's workers build its adapted encoder from the stored weights, checked here against
    # the recorded name before they travel (and again by each worker before it loads them).
    adapted = shipped_weights(store, model_name)
    limit = max(1, options.batch_chars)
    small = {p: {r: n for r, n in records.items() if n <= limit} for p, records in pending.items()}
    large = {p: {r: n for r, n in records.items() if n > limit} for p, records in pending.items()}
    small_total = sum(sum(records.values()) for records in small.values())
    total = small_total + sum(sum(records.values()) for records in large.values())
    job = RayJob(
        model=options.model,
        max_windows=options.windows_cap,
        read=options.read,
        batch_docs=options.batch_docs,
        batch_chars=limit,
        address=options.address,
        workers=options.workers,
        adapted=adapted,
    )

    def on_ray(done: int) -> None:
        if progress:
            progress("embed", done, total)

    on_ray(0)
    result = embed_on_ray(store, {p: r for p, r in small.items() if r}, model_name, job, on_ray)
    windows = result.windows
    large = {p: r for p, r in large.items() if r}
    if large:
        if encoder is None:
            encoder = torch_encoder(options.model, options.device, options.windows_cap, store)
            store.check_embedding_model(encoder.name, encoder.dim)
        before = windows_embedded(encoder)

        def offset(phase: str, done: int, _total: int) -> None:
            if progress:
                progress(phase, small_total + done, total)

        embed_pending(store, encoder, large, options, offset)
        windows += windows_embedded(encoder) - before
    return windows


def _offset_progress(report: Callable[[int], None], before: int, chars: int) -> None:
    report(before + chars)


def windows_embedded(encoder: Encoder) -> int:
    """Windows ``encoder`` has embedded so far (0 for an encoder that does not count them)."""
    stats = getattr(encoder, "stats", None)
    return int(getattr(stats, "windows", 0))
