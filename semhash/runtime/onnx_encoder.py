"""Text to embeddings without torch: the exported transformer run by onnxruntime, tokenised by ``tokenizers``.

:class:`OnnxEncoder` implements :class:`semhash.embed.Encoder` with the same window pooling as
:class:`semhash.embed.SentenceTransformerEncoder` (see that module's docstring): windows of
``max_seq_length - 2`` tokens cut at token offsets, each embedded (mean pooling and normalisation are in
the ONNX graph, as the sentence-transformers modules that were exported), pooled by token count and
normalised again. Windows run one at a time by default (no padding; a larger ``batch_size`` sorts them by
length, so a batch pads little). A folder whose manifest
caps the windows (an adapted encoder's ``windows``: 1 = each document's first window only, as
:func:`semhash.adapted.load_adapted_encoder` embeds) embeds at most that many, whatever the caller asks.

Start-up is most of a cold query's cost, so the session is made from the folder's offline-optimised graph
when this onnxruntime wrote it (no optimisation pass, weights read as external data: see
:mod:`semhash.runtime.manifest`), from the portable ``encoder.onnx`` otherwise; files are loaded by path
(no copy through Python) once their checksums (or stamps) pass. ``quick_start=True`` is for a process
that embeds a query and exits (``semhash query``): it skips onnxruntime's weight pre-packing (~0.1 s less
to start, ~25% more per forward pass, embeddings within 1e-7 of the pre-packed ones, not bit-identical);
a server or indexing keeps pre-packing. No session lets idle worker threads spin (:data:`SPINNING`): on a
2-core machine they took the CPU from everything else the process (or a neighbour) did.

``workers`` (indexing: :func:`default_threads`) runs that many windows at once, each on its own Python
thread with one onnxruntime intra-op thread (``session.run`` releases the GIL and is safe to call from
several threads). One window is too small for intra-op threads to split well: on the idle 2-core CPU, int8,
one window at a time ran 78 windows/s on one intra-op thread and 83 on two, two windows at once on one thread
each 153 (1.86x; full 254-token windows 1.73x, fp32 1.37-1.39x; ``benchmarks/bench_parallel_windows.py``).
Queries keep ``workers=1`` and every core for their one window.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from semhash.embed import (
    EncodeStats,
    Windows,
    chunked_spans,
    embed_pooled,
    embed_spans,
    embed_streamed,
    kept_spans,
    spread_windows,
)
from semhash.errors import RuntimeUnavailableError
from semhash.runtime.manifest import (
    ENCODER_FILE,
    OPTIMIZED_FILE,
    OPTIMIZED_WEIGHTS,
    TOKENIZER_FILE,
    Manifest,
    check_file,
    read_checked,
    read_manifest,
)

if TYPE_CHECKING:
    import onnxruntime

#: How the optimised graph names its weights file (see :func:`external_locations_ok`).
_LOCATION_ENTRY = b"\x0a\x08location\x12" + bytes([len(OPTIMIZED_WEIGHTS)]) + OPTIMIZED_WEIGHTS.encode("ascii")


def window_spans(offsets: Sequence[tuple[int, int]], text_length: int, max_tokens: int) -> list[tuple[int, int, int]]:
    """``(begin, end, tokens)`` character spans of a text's windows, today's rule of ``embed.py``.

    A text of at most ``max_tokens`` tokens is one window (counted as at least one token); a longer one is
    cut every ``max_tokens`` tokens, at the start offset of the first token of the next window, the last
    window running to the end of the text.
    """
    n_tokens = len(offsets)
    if n_tokens <= max_tokens:
        return [(0, text_length, max(n_tokens, 1))]
    spans = []
    for start in range(0, n_tokens, max_tokens):
        stop = min(start + max_tokens, n_tokens)
        end = offsets[stop][0] if stop < n_tokens else text_length
        spans.append((offsets[start][0], end, stop - start))
    return spans


#: onnxruntime's ``session.intra_op.allow_spinning`` (``"0"``: idle workers sleep instead of spinning).
SPINNING = "0"


def external_locations_ok(graph: bytes) -> bool:
    """Whether every external-data ``location`` in a serialised ONNX graph is exactly ``encoder.opt.weights``.

    onnxruntime resolves a tensor's external ``location`` against the graph's folder, and only recent
    versions refuse ``../`` or absolute paths; so before an optimised graph is loaded, every occurrence of
    the bytes ``location`` must be the one entry the exporter writes (key ``location``, value the fixed
    weights file name). Anything else (another file, a path, another encoding) refuses the graph, and the
    portable ``encoder.onnx`` (weights inline) is loaded instead. A false refusal only costs start-up time.
    """
    count = graph.count(b"location")
    return count > 0 and graph.count(_LOCATION_ENTRY) == count


def capped_windows(asked: int, cap: int) -> int:
    """Windows per document given the caller's limit and the encoder's own (each 0 = no limit)."""
    if not cap:
        return asked
    return min(asked, cap) if asked else cap


def default_threads() -> int:
    """Intra-op threads: the CPUs this process may use (a 2-core machine gets 2), at most 8."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        available = os.cpu_count() or 1
    return max(1, min(available, 8))


class OnnxEncoder:
    """An exported sentence-transformers model with window pooling for long texts.

    Args:
        folder: the runtime folder (see :mod:`semhash.runtime.manifest`), or its checked manifest.
        batch_size: windows per forward pass (default 1: see below).
        max_windows: most windows embedded per document (0 = all of them; the manifest's ``windows``, when
            set, bounds it).
        threads: onnxruntime intra-op threads (default: :func:`default_threads`, or 1 when ``workers`` > 1).
        workers: windows (or batches) run at once, each on its own thread (default 1: one at a time).
        quick_start: tune the session for one query and exit (see the module docstring), not throughput.
        group_by_length: batch a call's windows sorted by token length (less padding); ``False`` batches
            them in document order (only for measuring what the sorting gains: bench_int8_speed).

    Raises:
        RuntimeUnavailableError: the folder is missing, damaged, or onnxruntime/tokenizers cannot load it.
    """

    def __init__(
        self,
        folder: Path | Manifest,
        batch_size: int | None = None,
        max_windows: int = 0,
        threads: int | None = None,
        quick_start: bool = False,
        group_by_length: bool = True,
        workers: int = 1,
    ) -> None:
        manifest = folder if isinstance(folder, Manifest) else read_manifest(Path(folder))
        self.manifest = manifest
        self.name = manifest.embedding_model
        #: ``fp32``, ``int8`` (the folder's quantised encoder) or ``bf16`` (OpenVINO): what an index records.
        self.precision = manifest.precision
        self.dim = manifest.dim
        self.max_seq_length = manifest.max_seq_length
        self.max_tokens = max(8, manifest.max_seq_length - 2)
        # One window per run, no padding: on the 2-core CPU 2.1x the docs/s of 32 windows sorted by length
        # at fp32 and 4.5x at int8 (benchmarks/bench_int8_speed.py; embeddings the same to 1e-7 at fp32).
        # And dynamic int8 quantisation scales a run's activations by their range over the whole padded
        # batch, so a batched window's int8 embedding depended on its batch-mates (cosine 0.977-1 to itself
        # alone): one window per run makes it a function of its text alone, as fp32's is.
        self.batch_size = batch_size or 1
        self.group_by_length = group_by_length
        self.workers = max(1, workers)
        # Its threads start with the first windows submitted; one worker runs them in the caller's thread.
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="semhash-onnx") if self.workers > 1 else None
        self.max_windows = capped_windows(max_windows, manifest.windows)
        self.stats = EncodeStats()
        tokenizer_json = read_checked(manifest, TOKENIZER_FILE)
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise RuntimeUnavailableError(
                f"the exported runtime needs {exc.name}: pip install onnxruntime tokenizers"
            ) from exc
        try:
            tokenizer = Tokenizer.from_str(tokenizer_json.decode("utf-8"))
            tokenizer.no_padding()
            tokenizer.no_truncation()
        except Exception as exc:  # any loader failure of a checked file is one clear line
            raise _unloadable(manifest, exc) from exc
        self._tokenizer = tokenizer
        # The portable graph is checked even when the optimised one is loaded: a folder that is not what
        # its manifest says is refused as a whole (a stamped file costs one stat).
        portable = check_file(manifest, ENCODER_FILE)
        self.graph = ENCODER_FILE
        #: onnxruntime's session (``None`` for a bf16 folder, which OpenVINO runs).
        self._session: onnxruntime.InferenceSession | None = None
        self._forward: Callable[[dict[str, np.ndarray]], np.ndarray]
        if manifest.precision == "bf16":  # OpenVINO runs the portable graph in bfloat16 (openvino_runner)
            from semhash.runtime.openvino_runner import OpenVinoRunner

            runner = OpenVinoRunner(portable, streams=self.workers, threads=threads or default_threads())
            self._inputs = runner.inputs
            self._forward = runner.run
        else:
            try:
                import onnxruntime as ort
            except ImportError as exc:
                raise RuntimeUnavailableError(
                    f"the exported runtime needs {exc.name}: pip install onnxruntime tokenizers"
                ) from exc
            session = _ort_session(manifest, ort, portable, self.workers, threads, quick_start)
            self.graph = session.graph_file
            self._inputs = [i.name for i in session.session.get_inputs()]
            ort_session = self._session = session.session
            self._forward = lambda feed: ort_session.run(None, feed)[0]
        unknown = set(self._inputs) - {"input_ids", "attention_mask", "token_type_ids"}
        if unknown:
            raise RuntimeUnavailableError(
                f"the exported runtime at {manifest.folder} expects inputs {sorted(unknown)}: re-export it"
            )

    def windows(self, text: str) -> list[tuple[str, int]]:
        """Split ``text`` into ``(window text, token count)`` pieces that each fit the model."""
        return self._windows_of([text])[0]

    def _windows_of(self, texts: Sequence[str]) -> list[list[tuple[str, int]]]:
        return [
            [(text[begin:end], n) for begin, end, n in spans]
            for text, spans in zip(texts, self._spans_of(texts), strict=True)
        ]

    def _spans_of(self, texts: Sequence[str]) -> list[list[tuple[int, int, int]]]:
        """Each text's ``(start, end, token count)`` windows (evenly spread ones with ``max_windows``)."""
        self._tokenizer.no_truncation()
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        out = []
        for text, encoding in zip(texts, encodings, strict=True):
            spans = window_spans(encoding.offsets, len(text), self.max_tokens)
            if self.max_windows and len(spans) > self.max_windows:
                self.stats.capped_documents += 1  # evenly spread, first and last kept, as the torch path
                spans = [spans[i] for i in spread_windows(len(spans), self.max_windows)]
            out.append(spans)
        return out

    def embed_windows(self, pieces: Sequence[str]) -> np.ndarray:
        """``(len(pieces), dim)`` unit vectors, each piece embedded alone (truncated to ``max_seq_length``)."""
        out = np.zeros((len(pieces), self.dim), dtype=np.float32)
        if not pieces:
            return out
        # Truncated as sentence-transformers does (a re-tokenised window can come out a token or two longer).
        self._tokenizer.enable_truncation(self.max_seq_length)
        ids = [e.ids for e in self._tokenizer.encode_batch(list(pieces), add_special_tokens=True)]
        lengths = [len(i) for i in ids]
        order = np.argsort(lengths, kind="stable") if self.group_by_length else np.arange(len(ids))
        batches = [order[start : start + self.batch_size] for start in range(0, len(order), self.batch_size)]
        feeds = ([ids[r] for r in rows] for rows in batches)
        pool = self._pool if len(batches) > 1 else None
        if pool is None:
            for rows, vectors in zip(batches, map(self._run, feeds), strict=True):
                out[rows] = vectors
        else:
            futures = [pool.submit(self._run, feed) for feed in feeds]
            try:
                for rows, future in zip(batches, futures, strict=True):
                    out[rows] = future.result()
            finally:  # Ctrl-C (or a failed run): the windows not started yet are dropped, not run before exit
                for future in futures:
                    future.cancel()
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def _run(self, rows: list[list[int]]) -> np.ndarray:
        """One forward pass over token id rows (padded to the longest): their pooled vectors."""
        width = max(len(r) for r in rows)
        input_ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for j, r in enumerate(rows):
            input_ids[j, : len(r)] = r
            mask[j, : len(r)] = 1
        feed = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}
        return self._forward({name: feed[name] for name in self._inputs})

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed documents (window-pooled), as ``(n, dim)`` float32 unit vectors."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return embed_pooled(self._windows_of(texts), self.embed_windows, self.stats)

    def encode_windows(self, texts: Sequence[str]) -> tuple[np.ndarray, Windows]:
        """:meth:`encode`, and every embedded window's span and float16 vector (:class:`~semhash.embed.Windows`)."""
        return embed_spans(texts, self._spans_of(texts), self.embed_windows, self.dim, self.stats)

    def encode_long(
        self,
        text: str,
        progress: Callable[[int], None] | None = None,
        keep: list[tuple[int, int, np.ndarray]] | None = None,
        *,
        chunk_chars: int = 200_000,
        window_chunk: int = 64,
    ) -> np.ndarray:
        """Embed one document of any size as a ``(dim,)`` unit vector in bounded memory.

        As :meth:`semhash.embed.SentenceTransformerEncoder.encode_long`: the text is tokenised
        ``chunk_chars`` characters at a time (the same windows as tokenising it whole), embedded
        ``window_chunk`` windows at a time, and the pooled embedding accumulated; ``progress`` gets the
        characters done so far after each window chunk; ``keep`` (when given) each window's span and vector.
        """
        spans = chunked_spans(text, self._tokenize_chunk, self.max_tokens, chunk_chars, self.stats)
        windows = (
            (text[begin:end], n_tokens, end) for begin, end, n_tokens in kept_spans(spans, self.max_windows, self.stats)
        )
        return embed_streamed(windows, self.embed_windows, self.dim, self.stats, window_chunk, progress, keep)

    def _tokenize_chunk(self, chunk: str) -> tuple[Sequence[tuple[int, int]], Sequence[int | None]]:
        self._tokenizer.no_truncation()
        encoding = self._tokenizer.encode(chunk, add_special_tokens=False)
        return encoding.offsets, encoding.word_ids


class _OrtSession(NamedTuple):
    session: onnxruntime.InferenceSession
    graph_file: str


def _ort_session(
    manifest: Manifest, ort: ModuleType, portable: Path, workers: int, threads: int | None, quick_start: bool
) -> _OrtSession:
    """Onnxruntime's session on the folder's optimised graph when this onnxruntime wrote it, else the portable one."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or (1 if workers > 1 else default_threads())
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # No busy-waiting between operators: a spinning worker holds a core that the server's other
    # threads (or a neighbour process) need. On a shared 2-core machine one short query got several
    # times slower with it (benchmarks/bench_serve.py), and batches too (64 posts: 5.9 vs 7.4 docs/s).
    options.add_session_config_entry("session.intra_op.allow_spinning", SPINNING)
    if quick_start:
        options.add_session_config_entry("session.disable_prepacking", "1")
    if manifest.optimized_for(ort.__version__):
        session = _optimized_session(manifest, ort, options)
        if session is not None:
            return _OrtSession(session, OPTIMIZED_FILE)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return _OrtSession(
            ort.InferenceSession(str(portable), options, providers=["CPUExecutionProvider"]), ENCODER_FILE
        )
    except Exception as exc:
        raise _unloadable(manifest, exc) from exc


def _unloadable(manifest: Manifest, exc: Exception) -> RuntimeUnavailableError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return RuntimeUnavailableError(
        f"the exported runtime at {manifest.folder} cannot be loaded ({first[:200]}): re-export it"
    )


def _optimized_session(
    manifest: Manifest, ort: ModuleType, options: onnxruntime.SessionOptions
) -> onnxruntime.InferenceSession | None:
    """A session on the folder's offline-optimised graph, or ``None`` to load the portable one instead.

    A damaged optimised pair is as fatal as a damaged ``encoder.onnx`` (the folder is not what its
    manifest says); a graph that names other external files, or that this onnxruntime cannot load, is
    only skipped.
    """
    check_file(manifest, OPTIMIZED_WEIGHTS)
    graph = read_checked(manifest, OPTIMIZED_FILE)
    if not external_locations_ok(graph):
        return None
    # Optimised when it was written, by this onnxruntime: running the passes again would change nothing.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        return ort.InferenceSession(str(manifest.folder / OPTIMIZED_FILE), options, providers=["CPUExecutionProvider"])
    except Exception:  # e.g. a contrib operator this build lacks: the portable graph still works
        return None
