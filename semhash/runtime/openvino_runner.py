"""The exported encoder run by OpenVINO in bfloat16: the ``bf16`` precision's forward pass.

A CPU with AMX (Intel Xeon from Sapphire Rapids on) multiplies bfloat16 matrices in its tile units. OpenVINO
compiles the portable ``encoder.onnx`` of a runtime folder (the fp32 export, unchanged) with bfloat16
inference there. On the project's 2-core Xeon that ran 1.4x int8's windows/s (onnxruntime's dynamic
quantisation) with embeddings within cosine 0.9999 of fp32, where int8's are within 0.978
(``benchmarks/bench_parallel_windows.py``; BENCHMARKS.md "Indexing speed (issue 20)"). On a CPU without
bfloat16 units OpenVINO computes in fp32: slower, the same embeddings to that cosine.

:class:`OpenVinoRunner` is only the forward pass: :class:`semhash.runtime.onnx_encoder.OnnxEncoder` keeps the
tokenising, windows, pooling and worker threads for every precision. Each thread that runs windows gets its
own infer request (a request is not shared between threads; the compiled model is), and ``infer`` releases
the GIL, so ``workers`` threads keep as many of OpenVINO's streams busy.

OpenVINO compiles its kernels for each input shape it meets and keeps them: one window per run meets every
length from 3 to 256 tokens, and 3,097 windows of 20 Newsgroups posts left the process at 1.45 GB. Each
window is padded (masked, so pooled as before) to a multiple of :data:`LENGTH_STEP` tokens: at most 16 shapes,
509 MB for the same windows, as fast, embeddings within cosine 0.99998 of the unpadded ones. The padded length
is a function of the window's own length, so a text's embedding still depends on nothing else.

Compiled graphs are cached in ``<cache root>/openvino/`` (the user's own cache, never an index's folder),
which cuts a query's start from ~0.3 s to ~0.07 s; a cache that cannot be made is skipped.

**No telemetry.** ``import openvino`` imports its model-conversion tool (``openvino.tools.ovc``, for
``convert_model``), whose import sends a usage event to Google Analytics unless ``~/intel/openvino_telemetry``
says no (opt-out: a fresh machine sends it). The privacy test's ``strace`` caught the DNS lookup in a forked
child. semhash never converts a model, so :func:`import_openvino` imports OpenVINO with that tool blocked
(its ``__init__`` skips it on ``ImportError``): no event, no ``~/intel`` folder.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from semhash.config import cache_root
from semhash.errors import RuntimeUnavailableError

__all__ = ["OpenVinoRunner", "import_openvino", "padded"]

#: OpenVINO's model-conversion tool, whose import sends a telemetry event: never imported by semhash.
_CONVERSION_TOOL = "openvino.tools.ovc"

#: Windows are padded to a multiple of this many tokens (see above).
LENGTH_STEP = 16


class _NoConversionTool(importlib.abc.MetaPathFinder):
    """An import finder that refuses OpenVINO's conversion tool (installed only while OpenVINO is imported)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == _CONVERSION_TOOL or fullname.startswith(_CONVERSION_TOOL + "."):
            raise ImportError(f"semhash does not import {fullname} (its import sends telemetry)", name=fullname)
        return None


def import_openvino() -> ModuleType:
    """``openvino``, imported without its model-conversion tool (whose import sends telemetry; see above).

    Raises:
        ImportError: OpenVINO is not installed.
    """
    loaded = sys.modules.get("openvino")
    if loaded is not None:
        return loaded
    finder = _NoConversionTool()
    sys.meta_path.insert(0, finder)
    try:
        return importlib.import_module("openvino")
    finally:
        sys.meta_path.remove(finder)


def padded(rows: np.ndarray, step: int) -> np.ndarray:
    """``rows`` (``(n, length)`` token ids, masks or types) with zero columns up to a multiple of ``step``."""
    extra = -rows.shape[1] % step
    return np.pad(rows, ((0, 0), (0, extra))) if extra else rows


class OpenVinoRunner:
    """The graph at ``graph`` compiled for the CPU with bfloat16 inference.

    Args:
        graph: the portable ONNX graph (already checked against its manifest by the caller).
        streams: windows run at once (each caller thread's request goes to a stream of its own); 1 tunes the
            compiled model for one window's latency (a query).
        threads: CPU threads OpenVINO may use in all.

    Raises:
        RuntimeUnavailableError: OpenVINO is missing or cannot compile the graph.
    """

    def __init__(self, graph: Path, streams: int, threads: int) -> None:
        try:
            ov = import_openvino()
        except ImportError as exc:
            raise RuntimeUnavailableError(
                "a bf16 index embeds with OpenVINO, which is not installed: pip install openvino"
            ) from exc
        core = ov.Core()
        cache = cache_root() / "openvino"
        try:
            cache.mkdir(parents=True, exist_ok=True)
            core.set_property({"CACHE_DIR": str(cache)})
        except OSError:  # a read-only home: compile every time (~0.2 s more)
            pass
        config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": "bf16",
            "PERFORMANCE_HINT": "THROUGHPUT" if streams > 1 else "LATENCY",
            "INFERENCE_NUM_THREADS": max(1, threads),
        }
        if streams > 1:
            config["NUM_STREAMS"] = streams
        try:
            try:
                self._compiled = core.compile_model(str(graph), "CPU", config)
            except Exception:
                # A CPU whose bfloat16 kernels OpenVINO cannot build (it was seen with oneDNN limited to AVX2):
                # fp32, which is what OpenVINO itself computes where the CPU has no bfloat16 at all.
                self._compiled = core.compile_model(str(graph), "CPU", {**config, "INFERENCE_PRECISION_HINT": "f32"})
        except Exception as exc:  # any failure of a checked graph is one clear line
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RuntimeUnavailableError(f"OpenVINO cannot load the encoder at {graph} ({first[:200]})") from exc
        #: the graph's input names, as onnxruntime's session lists them (the encoder checks them).
        self.inputs = [port.get_any_name() for port in self._compiled.inputs]
        self._local = threading.local()
        # OpenVINO's Python bindings initialise C++ statics the first time a request's tensors are filled and
        # read, holding the GIL while another thread can take it: two threads doing that first at once can wait
        # on each other forever (`semhash index` hung in its first two windows in 2 of 20 fresh processes,
        # benchmarks in tests/test_precision.py). One run here, before any worker thread exists, does it alone.
        self.run({name: np.ones((1, LENGTH_STEP), dtype=np.int64) for name in self.inputs})

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """The graph's first output (the pooled vectors) for ``feed``, on this thread's infer request.

        ``feed``'s rows are padded with masked zeros to a multiple of :data:`LENGTH_STEP` tokens.
        """
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self._compiled.create_infer_request()
        request.infer({name: padded(feed[name], LENGTH_STEP) for name in self.inputs})
        vectors: np.ndarray = np.array(request.get_output_tensor(0).data, dtype=np.float32, copy=True)
        return vectors
