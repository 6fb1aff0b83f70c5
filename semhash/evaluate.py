"""``semhash eval``: retrieval quality of the learned codes against baselines, on any labelled JSONL.

The protocol is the one of the semantic-hashing literature (VDSH, NASH, AMMI, SNUH on 20 Newsgroups):

- Records with ``split == "train"`` are the database, ``split == "test"`` the queries. Without a
  ``split`` field, a seeded 80/20 split is drawn (seed ``split_seed``, independent of the model seeds),
  and the report says so.
- A query and a database item are relevant to each other when they share a label (``labels``: a list,
  or ``label``: one value). Labels are used for scoring only, never for training.
- The hashing model is trained on the database documents only (their embeddings and, for its lexical
  features, their texts); every query is encoded from its own embedding and text alone.
- Precision@k over the Hamming ranking, ties broken by database order (not in the method's favour),
  and mAP over the full ranking (:mod:`semhash.metrics`).
- In the same run: float cosine on the embeddings (the ceiling the codes compress), random-hyperplane
  LSH, PCA-sign and ITQ (:mod:`semhash.baselines`), so every claim is a side-by-side table.

Embeddings are cached on disk (``.npz``: ``model``, ``sha256`` of each text, ``embeddings``), so a rerun
never re-embeds a text it has seen with the same model.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from semhash.baselines import BASELINES, fit_baseline
from semhash.codes import check_bits, hamming_matrix
from semhash.config import cache_root
from semhash.device import resolve_device
from semhash.embed import Encoder
from semhash.errors import CorpusError, UsageError
from semhash.metrics import label_matrix, ranking_metrics

if TYPE_CHECKING:
    from semhash.train import TrainConfig

#: Name of the learned method in reports.
OURS = "semhash"
FLOAT = "float-cosine"


@dataclass
class LabelledCorpus:
    """Texts with labels and their database/query role."""

    ids: list[str]
    texts: list[str]
    labels: list[list[str]]
    is_query: np.ndarray
    split_note: str
    dropped_empty: int = 0


@dataclass
class MethodScore:
    """One method at one code length and seed (``bits``/``seed`` are ``None`` where meaningless)."""

    method: str
    bits: int | None
    seed: int | None
    metrics: dict[str, float]
    seconds: float
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class SummaryRow:
    """Mean and standard deviation of a metric over seeds, for one method and code length."""

    method: str
    bits: int | None
    metric: str
    mean: float
    std: float
    runs: int


@dataclass
class EvalReport:
    """Everything one ``semhash eval`` run measured."""

    data: str
    model: str
    n_database: int
    n_queries: int
    n_labels: int
    split_note: str
    dropped_empty: int
    embedded: int
    cached: int
    embed_seconds: float
    scores: list[MethodScore]

    def summary(self, metric: str = "p@100") -> list[SummaryRow]:
        """Rows of ``mean ± std`` over seeds for ``metric``, in run order (float first)."""
        groups: dict[tuple[str, int | None], list[float]] = {}
        for score in self.scores:
            if metric in score.metrics:
                groups.setdefault((score.method, score.bits), []).append(score.metrics[metric])
        return [
            SummaryRow(method, bits, metric, float(np.mean(v)), float(np.std(v)), len(v))
            for (method, bits), v in groups.items()
        ]


def read_labelled_jsonl(path: str | Path, split_seed: int = 0, test_fraction: float = 0.2) -> LabelledCorpus:
    """Read ``{"text", "labels"|"label", "split"?, "id"?}`` records; drop empty texts.

    Raises:
        CorpusError: the file is missing or unreadable, a record has no text or no label, or one side
            of the split is empty.
    """
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"no labelled data at {path}: give a JSONL file with text and labels")
    ids: list[str] = []
    texts: list[str] = []
    labels: list[list[str]] = []
    splits: list[str | None] = []
    dropped = 0
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CorpusError(f"{path}:{number} is not JSON ({exc.msg}): fix the line or remove it") from exc
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise CorpusError(f'{path}:{number} has no "text" string: every record needs one')
            if "labels" in record:
                raw = record["labels"]
                item_labels = [str(v) for v in (raw if isinstance(raw, list) else [raw])]
            elif "label" in record:
                item_labels = [str(record["label"])]
            else:
                raise CorpusError(f'{path}:{number} has no "labels" or "label": eval needs labelled records')
            if not record["text"].strip():
                dropped += 1
                continue
            ids.append(str(record.get("id", number)))
            texts.append(record["text"])
            labels.append(item_labels)
            split = record.get("split")
            splits.append(None if split is None else str(split))
    if not texts:
        raise CorpusError(f"{path} holds no non-empty labelled text")
    if all(s is None for s in splits):
        rng = np.random.default_rng(split_seed)
        is_query: np.ndarray = np.zeros(len(texts), dtype=bool)
        n_test = max(1, round(test_fraction * len(texts)))
        is_query[rng.permutation(len(texts))[:n_test]] = True
        note = f"no split field: seeded random split (seed {split_seed}), {test_fraction:.0%} queries"
    else:
        known = {"train", "test"}
        bad = sorted({s for s in splits if s not in known}, key=str)
        if bad:
            raise CorpusError(f'{path}: split must be "train" or "test" in every record, found {bad[:3]}')
        is_query = np.array([s == "test" for s in splits])
        note = 'split field: "train" = database, "test" = queries'
    if is_query.all() or not is_query.any():
        raise CorpusError(f"{path}: need both database (train) and query (test) records")
    return LabelledCorpus(ids, texts, labels, is_query, note, dropped)


def default_cache_path(model_name: str) -> Path:
    """``embeddings-<model>.npz`` in semhash's cache, beside the encoder exports.

    The cache is :func:`semhash.config.cache_root`: ``$SEMHASH_CACHE``, else ``$XDG_CACHE_HOME/semhash``, else
    ``~/.cache/semhash``.
    """
    base = cache_root()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model_name).strip("_") or "model"
    return base / f"embeddings-{slug}.npz"


def text_key(text: str) -> str:
    """Cache key of a text: the hex sha256 of its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def embed_with_cache(
    texts: Sequence[str], encoder: Encoder, cache: Path | None, batch: int = 256
) -> tuple[np.ndarray, int, int]:
    """Embed ``texts``, reusing and extending the ``.npz`` cache at ``cache``.

    A cache written for another model is ignored (and replaced). Returns the embeddings, how many
    distinct texts had to be embedded, and how many of ``texts`` came from the cache.
    """
    keys = [text_key(t) for t in texts]
    known: dict[str, int] = {}
    cached_keys = np.zeros(0, dtype="<U64")
    cached_vectors = np.zeros((0, encoder.dim), dtype=np.float32)
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as stored:
            if str(stored["model"]) == encoder.name and stored["embeddings"].shape[1:] == (encoder.dim,):
                cached_keys = stored["sha256"]
                cached_vectors = stored["embeddings"].astype(np.float32)
                known = {str(k): i for i, k in enumerate(cached_keys)}
    missing = sorted({k for k in keys if k not in known})
    from_cache = sum(k in known for k in keys)
    if missing:
        first_text: dict[str, str] = {}
        for key, text in zip(keys, texts, strict=True):
            first_text.setdefault(key, text)
        parts = [encoder.encode([first_text[k] for k in missing[s : s + batch]]) for s in range(0, len(missing), batch)]
        new_vectors = np.concatenate(parts).astype(np.float32)
        cached_vectors = np.concatenate([cached_vectors, new_vectors])
        cached_keys = np.concatenate([cached_keys, np.array(missing, dtype="<U64")])
        known.update({k: len(cached_keys) - len(missing) + i for i, k in enumerate(missing)})
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(cache.name + ".tmp.npz")
            np.savez(tmp, model=np.array(encoder.name), sha256=cached_keys, embeddings=cached_vectors)
            tmp.replace(cache)
    rows = np.array([known[k] for k in keys], dtype=np.int64)
    return cached_vectors[rows], len(missing), from_cache


def _parse_ints(values: Sequence[int] | str) -> list[int]:
    if isinstance(values, str):
        try:
            return [int(v) for v in values.split(",") if v.strip()]
        except ValueError as exc:
            raise UsageError(f"expected comma-separated integers, not {values!r}") from exc
    return [int(v) for v in values]


def evaluate(
    data: str | Path,
    *,
    bits: Sequence[int] | str = (32,),
    seeds: Sequence[int] | str = (0,),
    ks: Sequence[int] | str = (100,),
    with_map: bool = True,
    baselines: Sequence[str] = BASELINES,
    model: str | None = None,
    device: str = "cpu",
    cache: str | Path | None = None,
    train_config: TrainConfig | None = None,
    encoder: Encoder | None = None,
    split_seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> EvalReport:
    """Train semhash codes on the database side of ``data`` and score them with the baselines.

    Args:
        data: labelled JSONL (see :func:`read_labelled_jsonl`).
        bits: code lengths (multiples of 8, 8 to 64), e.g. ``(16, 32, 64)`` or ``"16,32,64"``.
        seeds: training seeds; each seed trains a model (and draws LSH/ITQ's random starts).
        ks: precision cut-offs.
        with_map: also compute mAP over the full ranking.
        baselines: any of ``"lsh"``, ``"pca-sign"``, ``"itq"``; the float cosine ranking is always scored.
        model: sentence-transformers model (``None`` = the packaged default).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``, for embedding and training.
        cache: embedding cache file; ``None`` = :func:`default_cache_path`.
        train_config: a :class:`semhash.train.TrainConfig` (``None`` = the default recipe).
        encoder: an already loaded :class:`Encoder` (overrides ``model``; tests pass a fake).
        split_seed: seed of the random split used when the data has no ``split`` field.
        progress: called with a short line before each step.

    Returns:
        An :class:`EvalReport`; nothing is printed.
    """
    bit_list = [check_bits(b) for b in _parse_ints(bits)]
    seed_list = _parse_ints(seeds)
    k_list = _parse_ints(ks)
    if not bit_list or not seed_list or not k_list or min(k_list) < 1:
        raise UsageError("--bits, --seeds and --k need at least one value each (k >= 1)")
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise UsageError(f"unknown baseline {unknown[0]!r}: choose from {', '.join(BASELINES)}")
    say = progress or (lambda _line: None)
    device = resolve_device(device)  # once, for embedding and training
    corpus = read_labelled_jsonl(data, split_seed=split_seed)
    if encoder is None:
        from semhash.encoders import torch_encoder

        encoder = torch_encoder(model, device)
    cache_path = Path(cache).expanduser() if cache is not None else default_cache_path(encoder.name)
    say(f"embedding {len(corpus.texts)} texts (cache {cache_path})")
    started = time.perf_counter()
    vectors, embedded, from_cache = embed_with_cache(corpus.texts, encoder, cache_path)
    embed_seconds = time.perf_counter() - started

    vocabulary = sorted({name for item in corpus.labels for name in item})
    multi_hot = label_matrix(corpus.labels, vocabulary)
    db, queries = vectors[~corpus.is_query], vectors[corpus.is_query]
    db_texts = [t for t, q in zip(corpus.texts, corpus.is_query, strict=True) if not q]
    query_texts = [t for t, q in zip(corpus.texts, corpus.is_query, strict=True) if q]
    db_labels, query_labels = multi_hot[~corpus.is_query], multi_hot[corpus.is_query]

    def score_codes(query_codes: np.ndarray, db_codes: np.ndarray) -> dict[str, float]:
        return ranking_metrics(
            lambda a, b: hamming_matrix(query_codes[a:b], db_codes), query_labels, db_labels, k_list, with_map
        )

    scores: list[MethodScore] = []
    say("scoring float cosine")
    t0 = time.perf_counter()
    metrics = ranking_metrics(lambda a, b: -(queries[a:b] @ db.T), query_labels, db_labels, k_list, with_map)
    scores.append(MethodScore(FLOAT, None, None, metrics, time.perf_counter() - t0))

    from semhash.model import encode_codes
    from semhash.train import train_hasher

    for n_bits in bit_list:
        for seed in seed_list:
            for name in baselines:
                if name == "pca-sign" and seed != seed_list[0]:
                    continue  # deterministic: one run is enough
                t0 = time.perf_counter()
                hasher = fit_baseline(name, db, n_bits, seed)
                metrics = score_codes(hasher.encode(queries), hasher.encode(db))
                scores.append(MethodScore(name, n_bits, seed, metrics, time.perf_counter() - t0))
            say(f"training {n_bits}-bit codes, seed {seed}")
            config = _with_seed(train_config, seed)
            t0 = time.perf_counter()
            hash_model, info = train_hasher(db, n_bits, config, device=device, texts=db_texts)
            train_seconds = time.perf_counter() - t0
            metrics = score_codes(
                encode_codes(hash_model, queries, device=device, texts=query_texts),
                encode_codes(hash_model, db, device=device, texts=db_texts),
            )
            extra = {"train_seconds": train_seconds}
            extra.update({k: float(v) for k, v in info.items() if isinstance(v, int | float)})
            scores.append(MethodScore(OURS, n_bits, seed, metrics, train_seconds, extra))
    return EvalReport(
        data=str(data),
        model=encoder.name,
        n_database=len(db),
        n_queries=len(queries),
        n_labels=len(vocabulary),
        split_note=corpus.split_note,
        dropped_empty=corpus.dropped_empty,
        embedded=embedded,
        cached=from_cache,
        embed_seconds=embed_seconds,
        scores=scores,
    )


def _with_seed(config: TrainConfig | None, seed: int) -> TrainConfig:
    """A copy of the training config with ``seed`` set (the default config when ``None``)."""
    import dataclasses

    from semhash.train import TrainConfig

    base = config if config is not None else TrainConfig()
    return dataclasses.replace(base, seed=seed)
