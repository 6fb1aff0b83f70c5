"""``semhash index``: one run, scan -> plan -> embed stage -> hashing stage -> faiss (:func:`index_paths`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from semhash.caches.sync import build_index, load_index, warm_query_caches
from semhash.codes import check_bits
from semhash.config import DEFAULT_MAX_WINDOWS, STATIC_MODEL
from semhash.corpus import CorpusScan, check_roots
from semhash.device import resolve_device
from semhash.embed import Encoder, SentenceTransformerEncoder, resolve_model
from semhash.engine import import_ray
from semhash.errors import CorruptIndexError, ModelMismatchError, RuntimeUnavailableError, UsageError
from semhash.ingest.embed_stage import embed_on_ray, embed_pending, windows_embedded
from semhash.ingest.hashing import train_and_encode
from semhash.ingest.options import IndexOptions, PlanCallback, Progress
from semhash.ingest.plan import in_scope, plan_index, raise_no_documents, same_content_elsewhere
from semhash.ingest.remove import prune_index, prune_missing
from semhash.runtime.precision import check_precision, new_index_precision, record_precision
from semhash.store import Store
from semhash.types import IndexReport


def index_paths(
    db_path: str | Path,
    paths: Sequence[str | Path],
    options: IndexOptions | None = None,
    encoder: Encoder | None = None,
    progress: Progress | None = None,
    on_plan: PlanCallback | None = None,
) -> IndexReport:
    """Index (or re-index) ``paths`` into the database at ``db_path``; see :mod:`semhash.ingest`.

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
            check_before_work(store, model_name, options)
        options = replace(options, max_windows=window_cap(store, options.max_windows))
        if model_name == STATIC_MODEL:
            # The static tier runs no transformer: there is nothing to quantise, its table is its one precision.
            if options.precision not in (None, "fp32"):
                raise UsageError(
                    f"--model static has no {options.precision} form: leave out --precision (or pass fp32)"
                )
            options = replace(options, precision="fp32")
        precision = embedding_precision(store, encoder, options)
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
        gone = [state[0] for key, state in states.items() if key not in seen and in_scope(key[0], roots)]
        if not seen and not states:
            raise_no_documents(roots, scan)
        if not options.prune:
            report.same_content_elsewhere = same_content_elsewhere(states, new_hashes, roots)
        if pending and on_plan is not None:
            on_plan(plan_index(pending, options.windows_cap))
        if pending and encoder is None and options.engine == "local":  # Ray loads it in its workers
            # Loaded before a new database is created, so a model that fails to load leaves no file behind.
            from semhash.encoders import index_encoder

            try:
                chosen = index_encoder(
                    Path(db_path), store, options.model, options.device, options.windows_cap, precision
                )
            except RuntimeUnavailableError as exc:
                if precision == "fp32" or options.precision is not None or store_has_embeddings(store):
                    raise
                # A new index at the default precision without onnxruntime: torch embeds it, at fp32.
                report.warnings.append(f"{exc}: indexing at fp32 with torch")
                precision = "fp32"
                chosen = index_encoder(Path(db_path), store, options.model, options.device, options.windows_cap)
            encoder = chosen.encoder
            if chosen.warning:
                report.warnings.append(chosen.warning)
                export_failed = True
        if store is None:
            store = Store.open(db_path, create=True)

        if pending:
            # Recorded before the model (an index's first embeddings): what every later embedding must match.
            record_precision(store, precision)
            if encoder is not None:
                store.check_embedding_model(encoder.name, encoder.dim)
            if store.max_windows != options.windows_cap:
                with store.transaction("recording the window cap"):
                    store.set_meta("max_windows", options.windows_cap)
            keys = [(path, record) for path, records in pending.items() for record in records]
            report.added = sum(1 for key in keys if key not in states)
            report.updated = len(keys) - report.added
            del keys
            embed_started = time.perf_counter()
            if options.engine == "ray":  # -- engine: ray (semhash/engine/ray_engine.py) --
                report.windows = embed_on_ray(store, encoder, model_name, pending, options, progress)
            else:
                assert encoder is not None
                windows_before = windows_embedded(encoder)
                embed_pending(store, encoder, pending, options, progress)
                report.windows = windows_embedded(encoder) - windows_before
            report.embed_seconds = time.perf_counter() - embed_started
        report.removed = store.delete_documents(gone)
        if options.prune:
            report.removed += prune_missing(store)
        # Documents coded by a model trained without them: checked for drift once they are encoded.
        unseen = store.ids_without_code() if not options.retrain and store.active_model() is not None else []
        # A real model (a test's fake one cannot be exported), unless exporting it just failed (one warning).
        if isinstance(encoder, SentenceTransformerEncoder) and not export_failed:
            options = replace(options, export_encoder=True)
        train_and_encode(store, options, report, progress)
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


def window_cap(store: Store | None, asked: int | None) -> int:
    """The window cap this run embeds with: the one the index records, so that all its vectors are alike.

    ``asked`` is ``--max-windows`` (``None``: not given). A new or empty index takes ``asked``, else
    :data:`~semhash.config.DEFAULT_MAX_WINDOWS`. An index that records a cap keeps it, and asking for
    another is a usage error: its documents would pool different shares of their windows. An index from
    before the cap was recorded embedded whole documents by default (0), unless told otherwise then.

    Raises:
        UsageError: ``asked`` differs from the cap an index with documents records.
    """
    recorded = store.max_windows if store is not None else None
    has_documents = store is not None and store.count() > 0
    if asked is None:
        if recorded is not None:
            return recorded
        return 0 if has_documents else DEFAULT_MAX_WINDOWS
    if recorded is not None and asked != recorded and has_documents:
        assert store is not None
        raise UsageError(
            f"{store.path} embeds {describe_cap(recorded)} of each document (recorded when it was built); "
            f"--max-windows {asked} would mix two kinds of document vectors: leave it out, or index into a new --db"
        )
    return asked


def describe_cap(cap: int) -> str:
    """``"every window"`` or ``"at most 64 windows"``."""
    return "every window" if cap == 0 else f"at most {cap} windows"


def embedding_precision(store: Store | None, encoder: Encoder | None, options: IndexOptions) -> str:
    """The precision this run embeds at (:mod:`semhash.runtime.precision`), checked before any work.

    The index's recorded one (asking for another is refused), for a new index the one asked (or the
    default); a caller's own encoder embeds at its own precision, which must then be the same.

    Raises:
        ModelMismatchError: another precision than the index's was asked for.
        UsageError: ``--engine ray`` at int8 or bf16 (its workers embed with torch), or a caller's encoder of
            another precision than the one asked.
    """
    from semhash.encoders import encoder_precision

    precision = check_precision(store, options.precision, new_index_precision(options.device, options.engine))
    if encoder is not None:
        own = encoder_precision(encoder)
        if options.precision is not None and own != options.precision:
            raise UsageError(f"the encoder given embeds at {own} precision, not the {options.precision} asked for")
        if store is not None and store.embedding_model is not None and own != precision:
            raise ModelMismatchError(f"{store.path} embeds at {precision} precision, the encoder given at {own}")
        return own
    if precision != "fp32" and options.engine == "ray":
        raise UsageError(f"--engine ray embeds with torch, at fp32 only: index at {precision} with --engine local")
    return precision


def store_has_embeddings(store: Store | None) -> bool:
    """Whether the index has recorded its embedding model (and so its precision)."""
    return store is not None and store.embedding_model is not None


def check_before_work(store: Store, model_name: str, options: IndexOptions) -> None:
    """Fail fast, before any embedding, on a model or bits mismatch."""
    store.check_embedding_model(model_name)
    if options.bits is not None and store.bits not in (None, options.bits) and not options.retrain:
        raise UsageError(f"{store.path} uses {store.bits}-bit codes: pass --retrain to switch to {options.bits} bits")
