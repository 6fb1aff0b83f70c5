"""``semhash index``: read a corpus, embed what changed, train or apply the hashing model, sync faiss.

Incremental by content hash: unchanged documents are skipped, changed ones re-embedded, new ones added,
and documents whose files are gone from the indexed folders are removed. Every batch of embedded
documents is committed in its own transaction before the next one starts, and codes are written only
after embeddings; an interrupted run keeps all it committed and the next run resumes where it stopped
(documents with an embedding but no code are encoded then).

Memory is bounded by a batch, not by the corpus (issue 8). The scan keeps only each document's path,
record, content hash and length; the texts of new or changed documents are read again a batch at a time.
A batch is at most ``batch_docs`` documents and ``batch_chars`` characters; a longer document is embedded
after all the others, alone, a window chunk at a time (:meth:`~semhash.embed.SentenceTransformerEncoder.encode_long`),
and committed on its own, so an interruption during it keeps everything else. Peak memory is about the
model, plus one batch's texts and windows (or one huge document's text, once when read and once when
stored, and ``window_chunk`` of its windows), plus the largest single file while it is read.

The first run trains the hashing model on the corpus's embeddings; later runs encode new documents with
that model, unless ``retrain`` is set (embeddings are stored, so retraining never re-embeds).

Documents leave the index three ways: their files vanish from the folders being indexed (automatic),
``prune`` (every document whose file no longer exists, anywhere in the index: after a folder moved) and
:func:`remove_paths` (everything under given files or folders, whether or not they still exist). Each
bumps the generation and brings the faiss file up to date.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from semhash.codes import check_bits, packed_to_ints, to_sql_int
from semhash.config import CHARS_PER_WINDOW_ESTIMATE, DEFAULT_BATCH_DOCS, DEFAULT_BITS
from semhash.corpus import SUPPORTED_SUFFIXES, CorpusScan, ReadOptions, check_roots, read_documents
from semhash.device import resolve_device
from semhash.embed import Encoder, LongDocumentEncoder, SentenceTransformerEncoder, resolve_model
from semhash.engine import check_engine, import_ray
from semhash.errors import CorpusError, CorruptIndexError, DocumentNotFoundError, NoDocumentsError, UsageError
from semhash.store import Store
from semhash.sync import build_index, load_index, warm_query_caches
from semhash.types import IndexPlan, IndexReport, PlannedFile, SourceDocument, skip_summary

if TYPE_CHECKING:
    from semhash.adapt import AdaptConfig
    from semhash.model import HashingAutoencoder

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
#: on CPU) while P@100 on 20 Newsgroups barely moves past 5,000 (scripts/bench_train_sample.py).
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
    max_windows: int = 0
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
    #: (its kNN graph costs O(n^2); quality saturates long before: see scripts/bench_train_sample.py).
    max_train_docs: int = DEFAULT_MAX_TRAIN_DOCS
    #: (re)write ``<db>.runtime/`` (the torch-free query path) after training.
    runtime_export: bool = True
    #: the encoder may be exported now when no export of it exists (``semhash index``: a real model was loaded).
    export_encoder: bool = False

    def __post_init__(self) -> None:
        # Checked here, so that `index` and `train` both refuse it before any work.
        if self.epochs is not None and self.epochs < 1:
            raise UsageError(f"--epochs must be 1 or more, not {self.epochs}")
        if self.lexical_weight is not None and not self.lexical_weight >= 0:  # also rejects NaN
            raise UsageError(f"--lexical-weight must be 0 or more, not {self.lexical_weight}")
        if self.max_train_docs < 1:
            raise UsageError(f"max_train_docs must be 1 or more, not {self.max_train_docs}")
        self.engine = check_engine(self.engine, self.address, self.workers)


def _in_scope(path: str, roots: Sequence[Path]) -> bool:
    p = Path(path)
    return any(p == root or root in p.parents for root in roots)


def index_paths(
    db_path: str | Path,
    paths: Sequence[str | Path],
    options: IndexOptions | None = None,
    encoder: Encoder | None = None,
    progress: Progress | None = None,
    on_plan: PlanCallback | None = None,
) -> IndexReport:
    """Index (or re-index) ``paths`` into the database at ``db_path``; see the module docstring.

    ``progress`` hears each phase's progress (see :data:`Progress`); ``on_plan`` hears, once the folders
    are scanned and before the model loads, what is to be embedded (only when something is).
    """
    options = options or IndexOptions()
    if not paths and options.prune:
        return prune_index(db_path)
    started = time.perf_counter()
    report = IndexReport()
    roots = check_roots(paths)
    if options.engine == "ray":  # fail fast, before any work, when Ray is not installed
        import_ray()
    if options.bits is not None:
        check_bits(options.bits)
    options = replace(options, device=resolve_device(options.device))  # once, before any work
    db_exists = Path(db_path).exists()
    export_failed = False
    # create=True on an existing file runs its migrations; a new file is created only once there is work.
    store = Store.open(db_path, create=True) if db_exists else None
    try:
        if store is not None and options.model is None and store.embedding_model is not None:
            # No --model on an existing index: keep using the model it was built with.
            options = replace(options, model=store.embedding_model)
        model_name = encoder.name if encoder is not None else resolve_model(options.model)[0]
        if store is not None:
            _check_before_work(store, model_name, options)
        states = store.document_states() if store is not None else {}

        scan = CorpusScan(roots, options.read)
        # New or changed documents without their texts (read again per batch): {path: {record: characters}}.
        pending: dict[str, dict[int, int]] = {}
        new_hashes: list[str] = []  # content hashes of documents new to the index (the moved-folder hint)
        seen: set[tuple[str, int]] = set()
        for entry in scan.entries():
            key = (entry.path, entry.record)
            seen.add(key)
            state = states.get(key)
            if state is not None and state[1] == entry.content_hash and state[2]:
                report.unchanged += 1
            else:
                pending.setdefault(entry.path, {})[entry.record] = entry.n_chars
                if state is None:
                    new_hashes.append(entry.content_hash)
        report.skipped_files = scan.skipped
        report.empty_documents = scan.empty
        report.passed_over = scan.passed_over
        report.file_notes = scan.notes
        report.files_read = scan.files
        gone = [state[0] for key, state in states.items() if key not in seen and _in_scope(key[0], roots)]
        if not seen and not states:
            _raise_no_documents(roots, scan)
        if not options.prune:
            report.same_content_elsewhere = _same_content_elsewhere(states, new_hashes, roots)
        if pending and on_plan is not None:
            on_plan(plan_index(pending, options.max_windows))
        if pending and encoder is None and options.engine == "local":  # Ray loads it in its workers
            # Loaded before a new database is created, so a model that fails to load leaves no file behind.
            from semhash.encoders import index_encoder

            chosen = index_encoder(Path(db_path), store, options.model, options.device, options.max_windows)
            encoder = chosen.encoder
            if chosen.warning:
                report.warnings.append(chosen.warning)
                export_failed = True
        if store is None:
            store = Store.open(db_path, create=True)

        if pending:
            if encoder is not None:
                store.check_embedding_model(encoder.name, encoder.dim)
            keys = [(path, record) for path, records in pending.items() for record in records]
            report.added = sum(1 for key in keys if key not in states)
            report.updated = len(keys) - report.added
            del keys
            embed_started = time.perf_counter()
            if options.engine == "ray":  # -- engine: ray (semhash/engine/ray_engine.py) --
                report.windows = _embed_on_ray(store, encoder, model_name, pending, options, progress)
            else:
                assert encoder is not None
                windows_before = _windows(encoder)
                _embed_pending(store, encoder, pending, options, progress)
                report.windows = _windows(encoder) - windows_before
            report.embed_seconds = time.perf_counter() - embed_started
        report.removed = store.delete_documents(gone)
        if options.prune:
            report.removed += prune_missing(store)
        # Documents coded by a model trained without them: checked for drift once they are encoded.
        unseen = store.ids_without_code() if not options.retrain and store.active_model() is not None else []
        # A real model (a test's fake one cannot be exported), unless exporting it just failed (one warning).
        if isinstance(encoder, SentenceTransformerEncoder) and not export_failed:
            options = replace(options, export_encoder=True)
        _train_and_encode(store, options, report, progress)
        if unseen:
            from semhash.neighbourhood import drift_warning

            report.drift_warning = drift_warning(store, unseen)
        try:
            load_index(store, strict=True)  # rebuilt and saved only if the codes changed since it was written
        except CorruptIndexError:
            build_index(store)  # indexing rewrites a corrupt cache rather than refusing
        warm_query_caches(store)
        report.total_documents = store.count()
    finally:
        if store is not None:
            store.close()
    report.seconds = time.perf_counter() - started
    return report


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


def _raise_no_documents(roots: Sequence[Path], scan: CorpusScan) -> None:
    where = ", ".join(str(r) for r in roots)
    hint = "; --verbose lists them" if scan.skipped or scan.passed_over else ""
    raise NoDocumentsError(
        f"no documents found under {where} (read: {' '.join(SUPPORTED_SUFFIXES)}; "
        f"{skip_summary(scan.skipped, scan.empty, scan.passed_over)}{hint})",
        skipped=scan.skipped,
        passed_over=scan.passed_over,
    )


def _same_content_elsewhere(
    states: dict[tuple[str, int], tuple[int, str, bool]], new_hashes: Sequence[str], roots: Sequence[Path]
) -> int:
    """New documents whose content is stored under another path, outside ``roots``, whose file is gone.

    That is what a moved or renamed folder looks like: its old entries stay (only the folders given are
    scanned for vanished files), so the index would hold everything twice until ``prune``.
    """
    wanted = set(new_hashes)
    elsewhere: dict[str, list[str]] = {}
    for (path, _), (_, digest, _) in states.items():
        if digest in wanted and not _in_scope(path, roots):
            elsewhere.setdefault(digest, []).append(path)
    gone = functools.cache(lambda p: not os.path.exists(p))
    return sum(1 for digest in new_hashes if any(gone(p) for p in elsewhere.get(digest, ())))


def _embed_pending(
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
    windows_planned = sum(estimated_windows(n, options.max_windows) for r in pending.values() for n in r.values())
    windows_before = _windows(encoder)
    done = 0
    documents_done = 0

    def report_progress(chars: int) -> None:
        if progress:  # the detail first: a reporter prints on "embed"
            progress("documents", documents_done, documents)
            progress("windows", _windows(encoder) - windows_before, windows_planned)
            progress("embed", min(chars, total), total)

    def commit(batch: list[SourceDocument]) -> None:
        nonlocal done, documents_done
        # Similar lengths pad less in the transformer's forward passes.
        batch.sort(key=lambda d: (len(d.text), d.path, d.record))
        store.upsert_documents(batch, encoder.encode([d.text for d in batch]))
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
            vector = encoder.encode_long(doc.text, progress=functools.partial(_offset_progress, report_progress, done))
            store.upsert_documents([doc], vector[None, :])
        else:  # an encoder without chunking: the document alone is still its own batch
            store.upsert_documents([doc], encoder.encode([doc.text]))
        done += len(doc.text)
        documents_done += 1
        report_progress(done)
        del doc  # let this text go before the next long one is read


def _embed_on_ray(
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
        max_windows=options.max_windows,
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
            encoder = torch_encoder(options.model, options.device, options.max_windows, store)
            store.check_embedding_model(encoder.name, encoder.dim)
        before = _windows(encoder)

        def offset(phase: str, done: int, _total: int) -> None:
            if progress:
                progress(phase, small_total + done, total)

        _embed_pending(store, encoder, large, options, offset)
        windows += _windows(encoder) - before
    return windows


def _offset_progress(report: Callable[[int], None], before: int, chars: int) -> None:
    report(before + chars)


def _windows(encoder: Encoder) -> int:
    stats = getattr(encoder, "stats", None)
    return int(getattr(stats, "windows", 0))


def _check_before_work(store: Store, model_name: str, options: IndexOptions) -> None:
    """Fail fast, before any embedding, on a model or bits mismatch."""
    store.check_embedding_model(model_name)
    if options.bits is not None and store.bits not in (None, options.bits) and not options.retrain:
        raise UsageError(f"{store.path} uses {store.bits}-bit codes: pass --retrain to switch to {options.bits} bits")


def _train_and_encode(store: Store, options: IndexOptions, report: IndexReport, progress: Progress | None) -> None:
    """Train when there is no model (or ``retrain``), then encode every document without a code.

    A new model is made active and every document re-coded with it in one transaction: an interruption
    (even ``kill -9``) leaves the old model with the old codes, never the new model beside codes of the old
    one. ``options.device`` is already resolved (by the entry point that called this).
    """
    from semhash.runtime.folder import refresh_runtime

    device = options.device
    active = store.active_model()
    trained: HashingAutoencoder | None = None
    if active is None or options.retrain:
        bits = options.bits if options.bits is not None else (active.bits if active else None) or DEFAULT_BITS
        trained, record = retrain(store, bits, device, options, report, progress)
        with store.transaction("switching to the new hashing model and storing its codes"):
            store.save_model(**record)
            store.clear_codes()
            _encode_uncoded(store, trained, options, report, progress)
    else:
        _encode_uncoded(store, None, options, report, progress)
    if trained is not None and options.runtime_export:
        # The fast query path follows every new model; an export failure is a warning, never a failed index.
        exported = refresh_runtime(store, hasher=trained, export_encoder=options.export_encoder)
        if exported.warning:
            report.warnings.append(exported.warning)


def _encode_uncoded(
    store: Store,
    trained: HashingAutoencoder | None,
    options: IndexOptions,
    report: IndexReport,
    progress: Progress | None,
) -> None:
    """Code every document without a code with the active model (``trained``: that model, already loaded)."""
    from semhash.codec import Codec, TorchHasher

    device = options.device
    # Indexing hashes with the torch model (only it gives reconstruction errors), through the one codec.
    codec = Codec.from_store(store, "torch", device=device)
    if trained is not None:
        codec = Codec(codec.model, codec.embedding_model, hasher=TorchHasher(trained, device), device=device)
    todo = store.ids_without_code()
    for start in range(0, len(todo), 4096):
        ids, embeddings = store.embeddings(todo[start : start + 4096])
        texts = store.texts(ids.tolist()) if codec.reads_texts else None
        packed, errors = codec.code_with_errors(embeddings, texts)
        codes = [to_sql_int(v, codec.bits) for v in packed_to_ints(packed)]
        store.set_codes(ids.tolist(), codes, errors.tolist())
        report.encoded += len(ids)
        if progress:
            progress("encode", min(start + 4096, len(todo)), len(todo))


def retrain(
    store: Store,
    bits: int,
    device: str,
    options: IndexOptions,
    report: IndexReport,
    progress: Progress | None = None,
) -> tuple[HashingAutoencoder, dict]:
    """Train a new hashing model on every stored embedding.

    Returns:
        the model and the keyword arguments of :meth:`~semhash.store.Store.save_model` that store it; the
        caller stores it in the same transaction as the codes it gives (:func:`_train_and_encode`).
    """
    from dataclasses import asdict

    from semhash.model import model_to_bytes
    from semhash.train import TrainConfig, train_hasher

    check_bits(bits)
    ids, embeddings = _training_set(store, options)
    if len(embeddings) == 0:
        raise CorpusError(f"{store.path} holds no embedded document to train on: run `semhash index DIR` first")
    config = TrainConfig(seed=options.seed)
    if options.epochs is not None:
        config.epochs = options.epochs
    if options.lexical_weight is not None:
        config.lexical_weight = options.lexical_weight
    started = time.perf_counter()

    def on_epoch(done: int, total: int) -> None:
        if progress:
            progress("train", done, total)

    texts = store.texts(ids.tolist())
    model, stats = train_hasher(np.asarray(embeddings), bits, config, device=device, progress=on_epoch, texts=texts)
    report.train_seconds = time.perf_counter() - started
    report.trained = True
    report.train_stats = stats
    record = {
        "weights": model_to_bytes(model),
        "bits": bits,
        "input_dim": embeddings.shape[1],
        "config": asdict(config),
        "stats": stats,
        "trained_on": len(embeddings),
    }
    return model, record


def _training_set(store: Store, options: IndexOptions) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, embeddings)`` to train on, in (path, record) order, a seeded sample beyond ``max_train_docs``.

    The order is the corpus's, not the rows' insertion order, so an index embedded in another order (by
    Ray workers finishing out of turn, or resumed after an interruption) trains the same model.
    """
    ids = [state[0] for _, state in sorted(store.document_states().items())]
    if len(ids) > options.max_train_docs:
        keep = np.sort(np.random.default_rng(options.seed).choice(len(ids), options.max_train_docs, replace=False))
        ids = [ids[i] for i in keep]
    found, embeddings = store.embeddings(ids)  # in id order
    position = {int(i): row for row, i in enumerate(found)}
    order = [position[i] for i in ids if i in position]
    return found[order], embeddings[order]


def retrain_index(
    db_path: str | Path,
    bits: int | None = None,
    epochs: int | None = None,
    seed: int = 0,
    device: str = "auto",
    progress: Progress | None = None,
    lexical_weight: float | None = None,
    adapt: AdaptConfig | None = None,
) -> IndexReport:
    """``semhash train``: retrain on the stored embeddings, re-encode every document, rebuild faiss.

    With ``adapt`` (``semhash train --adapt``), the index's encoder is first adapted to its documents and
    every document re-embedded with it (:func:`semhash.adapt.adapt_store`); the hashing model is then
    trained on the new embeddings as usual.
    """
    started = time.perf_counter()
    report = IndexReport()
    # Every argument is checked before the database is opened: `semhash train --bits 0` does no work.
    if bits is not None:
        check_bits(bits)
    options = IndexOptions(
        device=resolve_device(device), bits=bits, retrain=True, epochs=epochs, seed=seed, lexical_weight=lexical_weight,
        export_encoder=adapt is not None,  # the adapted encoder is exported for the torch-free query path
    )  # fmt: skip
    with Store.open(db_path, write=True) as store:
        if store.count() == 0:
            raise CorpusError(f"{store.path} holds no document: run `semhash index DIR` first")
        if adapt is not None:
            _adapt_encoder(store, options, adapt, report, progress)
        _train_and_encode(store, options, report, progress)
        build_index(store)
        warm_query_caches(store)
        report.total_documents = store.count()
    report.seconds = time.perf_counter() - started
    return report


def _adapt_encoder(
    store: Store, options: IndexOptions, adapt: AdaptConfig, report: IndexReport, progress: Progress | None
) -> None:
    """The ``--adapt`` step of :func:`retrain_index`: adapt, re-embed, and drop the frozen encoder's runtime.

    The runtime folder goes before the new hashing model is trained, so that a failed export of the adapted
    one (a warning of :func:`semhash.runtime.folder.refresh_runtime`) leaves no folder of the frozen encoder behind.
    """
    from semhash.adapt import adapt_store
    from semhash.runtime.folder import clear_runtime
    from semhash.train import TrainConfig

    train_config = TrainConfig(seed=options.seed)
    if options.lexical_weight is not None:
        train_config.lexical_weight = options.lexical_weight
    active = store.active_model()
    bits = options.bits if options.bits is not None else (active.bits if active else None) or DEFAULT_BITS
    started = time.perf_counter()
    stats = adapt_store(store, bits, options.device, train_config, adapt, progress)
    report.adapt_seconds = time.perf_counter() - started
    report.adapt_stats = stats
    clear_runtime(store.path)


# -- removing documents ---------------------------------------------------------------------------------
@dataclass
class RemoveReport:
    """What ``semhash remove`` did: documents removed in all, and per path asked for."""

    removed: int = 0
    #: each path as given -> documents removed under it.
    paths: dict[str, int] = field(default_factory=dict)
    total_documents: int = 0


def remove_paths(db_path: str | Path, paths: Sequence[str | Path]) -> RemoveReport:
    """Remove every document of the given files, and under the given folders, whether or not they still exist.

    Raises:
        UsageError: no path given.
        DocumentNotFoundError: no document lies under any of the paths.
    """
    if not paths:
        raise UsageError("give the files or folders to remove: semhash remove PATH...")
    report = RemoveReport()
    with Store.open(db_path, write=True) as store:
        ids: set[int] = set()
        for given in paths:
            path = Path(given).expanduser()
            # Stored paths are absolute and resolved; a vanished folder resolves only partly, so try both forms.
            found = set(store.ids_under(str(path.resolve()))) | set(store.ids_under(str(path.absolute())))
            report.paths[str(given)] = len(found - ids)
            ids |= found
        if not ids:
            raise DocumentNotFoundError(
                f"no indexed document lies under {', '.join(str(p) for p in paths)}: check the paths "
                f"(`semhash info --db {store.path}` counts what is there)"
            )
        report.removed = store.delete_documents(sorted(ids))
        _sync_after_removal(store)
        report.total_documents = store.count()
    return report


def prune_missing(store: Store) -> int:
    """Remove every document whose file no longer exists, anywhere in the index; returns how many went."""
    ids = [i for path in store.paths() if not os.path.exists(path) for i in store.ids_under(path, folders=False)]
    return store.delete_documents(ids)


def prune_index(db_path: str | Path) -> IndexReport:
    """``semhash index --prune`` without paths: :func:`prune_missing`, then bring faiss up to date."""
    started = time.perf_counter()
    report = IndexReport()
    with Store.open(db_path, write=True) as store:
        report.removed = prune_missing(store)
        _sync_after_removal(store)
        report.total_documents = store.count()
    report.seconds = time.perf_counter() - started
    return report


def _sync_after_removal(store: Store) -> None:
    if store.bits is not None:  # no model yet: there is no faiss file to keep in step
        try:
            load_index(store, strict=True)
        except CorruptIndexError:
            build_index(store)
