"""``semhash info``: what an index holds, read from SQLite and the faiss file (no torch)."""

from __future__ import annotations

import os
from pathlib import Path

from semhash.caches.hamming import faiss_path_for
from semhash.caches.sync import index_is_fresh
from semhash.codes import bit_usage, ints_to_packed
from semhash.config import PRECISION_KEY
from semhash.store import SCHEMA_VERSION, Store
from semhash.types import IndexInfo


def _size(path: Path) -> int:
    return sum(os.path.getsize(p) for p in (path, Path(f"{path}-wal")) if p.exists())


def epochs_rule(config: dict, stats: dict) -> str | None:
    """How the stored model's epochs were chosen, from its stored training config and statistics.

    ``"auto: max(60 epochs, 400 steps)"`` for the automatic rule (:func:`semhash.train.planned_epochs`),
    ``"--epochs 5"`` for an explicit count; ``None`` for a model trained before the rule was recorded.
    """
    if "epochs_auto" not in stats:
        return None
    if stats["epochs_auto"]:
        return f"auto: max({config.get('auto_epochs')} epochs, {config.get('min_steps')} steps)"
    return f"--epochs {config.get('epochs')}"


def index_info(db_path: str | Path) -> IndexInfo:
    """Counts, models, code statistics and sizes of the index at ``db_path``."""
    with Store.open(db_path) as store:
        active = store.active_model()
        bits = store.bits
        usage: list[float] = []
        fresh = False
        if bits:
            _, codes = store.codes()
            usage = bit_usage(ints_to_packed(codes, bits)).round(3).tolist() if len(codes) else []
            fresh = index_is_fresh(store)
        dim = store.get_meta("embedding_dim")
        stats = active.stats if active else {}
        config = active.config if active else {}
        faiss_path = faiss_path_for(store.path)
        windows, with_windows = store.window_counts()
        return IndexInfo(
            db_path=str(store.path),
            documents=store.count(),
            encoded=store.count(encoded_only=True),
            model_name=store.embedding_model,
            embedding_dim=int(dim) if dim else None,
            bits=bits,
            schema_version=SCHEMA_VERSION,
            trained_at=active.created_at if active else None,
            trained_on=active.trained_on if active else None,
            bit_usage=usage,
            db_bytes=_size(store.path),
            index_path=str(faiss_path),
            index_bytes=faiss_path.stat().st_size if faiss_path.exists() else 0,
            index_fresh=fresh,
            lexical_dim=int(stats.get("lexical_dim", 0)),
            lexical_terms=int(stats.get("lexical_terms", 0)),
            epochs=int(stats["epochs"]) if "epochs" in stats else None,
            epochs_rule=epochs_rule(config, stats),
            val_agreement=float(stats["val_agreement"]) if "val_agreement" in stats else None,
            max_windows=store.max_windows,
            windows=windows,
            documents_with_windows=with_windows,
            embedding_precision=store.get_meta(PRECISION_KEY) or "fp32",
        )
