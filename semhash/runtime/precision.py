"""An index's encoder precision (``fp32``, ``int8``, ``bf16``): chosen once, recorded in the index, honoured after.

``semhash index --precision`` (or ``SEMHASH_PRECISION``) says at which precision a new index's embeddings are
made: ``fp32`` (the sentence-transformers model, on torch or its exact ONNX export), ``int8`` (onnxruntime's
dynamic quantisation of that export: faster on a CPU, embeddings within cosine ~0.98 of fp32) or ``bf16`` (the
same export run by OpenVINO in bfloat16: on a CPU with AMX faster than int8, within cosine 0.9999 of fp32;
BENCHMARKS.md "Indexing speed (issue 20)"). A new index on a CPU takes bf16 where the CPU has AMX and OpenVINO
is installed (:func:`default_cpu_precision`), int8 elsewhere. The precision of the encoder that made an
index's first embeddings is recorded in its ``meta`` (:data:`semhash.config.PRECISION_KEY`); an index without
the key (every older index) is fp32.

Every later embedding for that index (queries, ``similar``, the server, new files, ``dedup --against``) is made
at the recorded precision: int8 only by its ONNX encoder, bf16 only by OpenVINO, fp32 by torch or the fp32
export. Embeddings of two precisions are never compared: asking for another precision than the index's is
refused, and an int8 or bf16 index whose encoder cannot be had (no onnxruntime, no OpenVINO) refuses to embed
rather than fall back to torch. A bf16 index queried on a CPU without AMX still embeds with OpenVINO, which
then computes in fp32 (a little slower, the same embeddings to cosine 0.9999).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from semhash.config import AMX_PRECISION, DEFAULT_PRECISION, ENV_PRECISION, PRECISION_KEY, PRECISIONS, env_text
from semhash.errors import CorruptDatabaseError, ModelMismatchError, UsageError
from semhash.store import Store

__all__ = [
    "asked_precision",
    "check_precision",
    "cpu_has_amx",
    "default_cpu_precision",
    "index_precision",
    "new_index_precision",
    "record_precision",
]

#: Where Linux lists the CPU's features.
CPUINFO = Path("/proc/cpuinfo")


def cpu_has_amx(cpuinfo: Path = CPUINFO) -> bool:
    """Whether the CPU has AMX bfloat16 tile units (the ``amx_bf16`` flag; ``False`` when it cannot be read)."""
    try:
        with cpuinfo.open("r", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return "amx_bf16" in line.split(":", 1)[-1].split()
    except OSError:  # not Linux, or no /proc
        return False
    return False


def default_cpu_precision(cpuinfo: Path = CPUINFO) -> str:
    """A new CPU index's precision: bf16 on a CPU with AMX when OpenVINO is installed, else int8.

    Measured on the project's 2-core Xeon (AMX): bf16 ran 1.4x int8's windows/s with embeddings within cosine
    0.9999 of fp32 (int8: 0.978). Without AMX, OpenVINO's bf16 is emulated or falls back to fp32, slower than
    int8, so int8 stays the default there (not measured on such a CPU: a choice, written here).
    """
    if cpu_has_amx(cpuinfo) and importlib.util.find_spec("openvino") is not None:
        return AMX_PRECISION
    return DEFAULT_PRECISION


def asked_precision(value: str | None = None) -> str | None:
    """The precision the ``--precision`` flag asks for (``None``: not asked), checked.

    Raises:
        UsageError: a value other than ``fp32``, ``int8`` or ``bf16``.
    """
    chosen = (value or "").strip().lower()
    if not chosen:
        return None
    if chosen not in PRECISIONS:
        raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}, not {chosen!r}")
    return chosen


def new_index_precision(device: str, engine: str) -> str:
    """A new index's precision when the flag asks none: ``SEMHASH_PRECISION``, else the default.

    The default (:func:`default_cpu_precision`) applies on a CPU with the local engine; a GPU or
    ``--engine ray`` embeds with torch, at fp32. The variable is a preference for new indexes, never an
    assertion about an existing one (which keeps its recorded precision).

    Raises:
        UsageError: ``SEMHASH_PRECISION`` is not a known precision.
    """
    value = env_text(ENV_PRECISION).strip().lower()
    if value and value not in PRECISIONS:
        raise UsageError(f"{ENV_PRECISION} must be one of {', '.join(PRECISIONS)}, not {value!r}")
    if value:
        return value
    return default_cpu_precision() if device == "cpu" and engine == "local" else "fp32"


def index_precision(store: Store) -> str:
    """The precision the index's embeddings were made at (``fp32`` when it records none).

    Raises:
        CorruptDatabaseError: the recorded value is not a known precision.
    """
    value = store.get_meta(PRECISION_KEY)
    if value is None or value == "":
        return "fp32"
    if value not in PRECISIONS:
        raise CorruptDatabaseError(
            f"{store.path} is damaged: meta {PRECISION_KEY!r} is {value[:20]!r}, not one of {', '.join(PRECISIONS)}; "
            "rebuild the index into a new --db"
        )
    return value


def has_embeddings(store: Store) -> bool:
    """Whether the index has recorded an embedding model (its first embeddings were made)."""
    return store.embedding_model is not None


def check_precision(store: Store | None, asked: str | None, default: str = DEFAULT_PRECISION) -> str:
    """The precision an index run embeds at: the index's own, or for a new index the one asked (or ``default``).

    Raises:
        ModelMismatchError: the index was made at another precision than the one asked for.
    """
    if store is None or not has_embeddings(store):
        return asked or default
    recorded = index_precision(store)
    if asked is not None and asked != recorded:
        raise ModelMismatchError(
            f"{store.path} embeds at {recorded} precision, not {asked}: pass --precision {recorded} "
            "(or drop it) or use another --db"
        )
    return recorded


def record_precision(store: Store, precision: str) -> None:
    """Record ``precision`` as the index's, when it records none yet (its first embeddings are being made).

    Raises:
        ModelMismatchError: the index already records another precision (its embeddings would mix).
    """
    recorded = store.get_meta(PRECISION_KEY)
    if recorded is None:
        if has_embeddings(store) and precision != "fp32":
            # An older index (no key) holds fp32 embeddings: int8 or bf16 ones must not join them.
            raise ModelMismatchError(
                f"{store.path} holds fp32 embeddings: it cannot add {precision} ones; "
                f"use another --db for --precision {precision}"
            )
        with store.transaction("recording the encoder precision"):
            store.set_meta(PRECISION_KEY, precision)
        return
    if recorded != precision:
        raise ModelMismatchError(
            f"{store.path} embeds at {recorded} precision, not {precision}: its embeddings must not mix"
        )
