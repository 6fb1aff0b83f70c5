"""The hashing stage: train the hashing model on the stored embeddings (or keep the active one), write codes.

:func:`train_and_encode` trains when there is no model (or ``retrain``) and codes every document without a
code through the one :class:`~semhash.codec.Codec`; the new model and its codes are stored in one
transaction. :func:`retrain_index` is ``semhash train`` (``--adapt`` first adapts the encoder and
re-embeds). After training, the runtime folder is refreshed (:mod:`semhash.runtime.folder`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from semhash.caches.sync import build_index, warm_query_caches
from semhash.codes import check_bits, packed_to_ints, to_sql_int
from semhash.config import DEFAULT_BITS
from semhash.device import resolve_device
from semhash.errors import CorpusError
from semhash.ingest.options import IndexOptions, Progress
from semhash.store import Store
from semhash.types import IndexReport

if TYPE_CHECKING:
    from semhash.adapt import AdaptConfig
    from semhash.model import HashingAutoencoder
    from semhash.runtime import NumpyHasher


def train_and_encode(store: Store, options: IndexOptions, report: IndexReport, progress: Progress | None) -> None:
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

    todo = store.ids_without_code()
    if not todo:
        return
    device = options.device
    # The model just trained codes with torch; otherwise the sealed runtime's numpy copy of the active model
    # (encoder and decoder: codes and reconstruction errors), which spares an incremental run torch's import;
    # without one (an older folder, a stale or missing runtime), the stored torch model, through the one codec.
    numpy_hasher = _sealed_hasher(store) if trained is None else None
    code_with_errors: Callable[[np.ndarray, Sequence[str] | None], tuple[np.ndarray, np.ndarray]]
    if numpy_hasher is not None:
        code_with_errors, reads_texts = numpy_hasher.encode_with_errors, numpy_hasher.lexical is not None
        bits = numpy_hasher.bits
    else:
        codec = Codec.from_store(store, "torch", device=device)
        if trained is not None:
            codec = Codec(codec.model, codec.embedding_model, hasher=TorchHasher(trained, device), device=device)
        code_with_errors, reads_texts, bits = codec.code_with_errors, codec.reads_texts, codec.bits
    for start in range(0, len(todo), 4096):
        ids, embeddings = store.embeddings(todo[start : start + 4096])
        texts = store.texts(ids.tolist()) if reads_texts else None
        packed, errors = code_with_errors(embeddings, texts)
        codes = [to_sql_int(v, bits) for v in packed_to_ints(packed)]
        store.set_codes(ids.tolist(), codes, errors.tolist())
        report.encoded += len(ids)
        if progress:
            progress("encode", min(start + 4096, len(todo)), len(todo))


def _sealed_hasher(store: Store) -> NumpyHasher | None:
    """The index's sealed runtime hasher (the active model's, checked) with its decoder, or ``None``."""
    from semhash.encoders import choose_runtime
    from semhash.runtime import NumpyHasher

    try:
        choice = choose_runtime(store)
        if choice.runtime != "onnx" or choice.manifest is None:
            return None
        hasher = NumpyHasher.load(choice.manifest, decoder=True)
    except Exception:  # anything wrong with the folder: the stored torch model codes, as before
        return None
    return hasher if hasher.decoder is not None else None


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
        caller stores it in the same transaction as the codes it gives (:func:`train_and_encode`).
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
        train_and_encode(store, options, report, progress)
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
