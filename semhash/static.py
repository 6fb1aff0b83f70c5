"""The static tier: a document is the weighted mean of fixed token vectors distilled from the packaged MiniLM.

``--model static`` trades quality for speed on bulk work (10^6-10^7 documents, dedup): no transformer runs
when text is embedded, only the model's own WordPiece tokenizer and a lookup table, so the cost is the
tokenizer's and a sum (BENCHMARKS.md, "Indexing speed (issue 20)", the static tier, for docs/s and quality).

**How the table is made (once, locally, into the user's cache).** Every vocabulary token of the packaged
all-MiniLM-L6-v2 is run through the model alone, as the one-word text ``[CLS] token [SEP]``, and the model's
own mean pooling gives that token's vector: what the model says the token means out of context. Nothing is
downloaded. The vectors are then weighted by how informative a token is likely to be (:func:`zipf_weights`:
the WordPiece vocabulary is stored roughly by corpus frequency, so a token's position stands in for its
frequency, and smooth inverse frequency turns that into a weight), so that "the", punctuation and other
frequent tokens count for little; then the direction all token vectors share is removed. The idea is
model2vec's (distil a sentence encoder into a static token table); this is our own implementation.

**What a text becomes.** Its WordPiece tokens (no windows, no truncation: the whole text is read), the sum of
their weighted vectors, L2-normalised. Tokens the vocabulary lacks are ``[UNK]``, which weighs nothing.

The table lives in ``<cache>/static/<key>/`` (``vectors.npy``, ``tokenizer.json``, ``static.json`` with the
vectors' sha256), built on first use; ``semhash`` refuses a folder whose file does not match its record, and
loads the array without pickle, with its shape checked.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from semhash.config import STATIC_MODEL, cache_root
from semhash.embed import EncodeStats, default_model_path
from semhash.errors import ModelLoadError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

#: Bumped when the way the table is made changes (a new key, so a new table is built).
STATIC_FORMAT = 2
#: Smooth-inverse-frequency constant: a token's weight is ``a / (a + p)`` for its estimated frequency ``p``.
SIF_A = 1e-3
#: Vocabulary tokens distilled per model call.
DISTIL_BATCH = 512
#: Characters tokenised at a time (a huge text is read in pieces; WordPiece does not cross whitespace).
CHUNK_CHARS = 200_000
#: Tokens of a model window, to count "windows" for progress the way the transformer path does.
WINDOW_TOKENS = 254
#: The largest table accepted from disk (vocabulary x dimension), against a damaged or crafted file.
MAX_TABLE_CELLS = 50_000_000


def static_key() -> str:
    """The cache key: the table's format and the packaged model's weights file (its size and mtime)."""
    weights = default_model_path() / "model.safetensors"
    stat = weights.stat() if weights.exists() else None
    parts = [STATIC_FORMAT, STATIC_MODEL, stat.st_size if stat else 0]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def static_folder() -> Path:
    """Where the static table is (or will be) kept."""
    return cache_root() / "static" / static_key()


def zipf_weights(vocab_size: int, first_word: int) -> np.ndarray:
    """Smooth inverse frequency weights from vocabulary positions (Zipf: frequency ~ 1 / rank).

    Ids below ``first_word`` (padding, unused slots, special tokens, single characters and punctuation,
    which WordPiece vocabularies list first) take rank 1, the most frequent.
    """
    rank = np.maximum(np.arange(vocab_size, dtype=np.float64) - first_word + 1, 1.0)
    frequency = 1.0 / (rank * np.log(vocab_size))
    return SIF_A / (SIF_A + frequency)


def build_static_table(folder: Path, progress: Callable[[str], None] | None = None) -> Path:
    """Distil the packaged MiniLM's vocabulary into ``folder`` (see the module docstring); returns it.

    Needs torch and sentence-transformers (the core install has both); takes about a minute on 2 CPU cores.
    """
    import torch
    from sentence_transformers import SentenceTransformer

    source = default_model_path()
    model = SentenceTransformer(str(source), device="cpu")
    tokenizer = model.tokenizer
    vocab_size = int(tokenizer.vocab_size)
    cls_id, sep_id = int(tokenizer.cls_token_id), int(tokenizer.sep_token_id)
    vectors = np.zeros((vocab_size, _dimension(model)), np.float32)
    with torch.inference_mode():
        for start in range(0, vocab_size, DISTIL_BATCH):
            ids = torch.arange(start, min(start + DISTIL_BATCH, vocab_size))
            batch = torch.stack([torch.full_like(ids, cls_id), ids, torch.full_like(ids, sep_id)], dim=1)
            features = {"input_ids": batch, "attention_mask": torch.ones_like(batch)}
            if "token_type_ids" in tokenizer.model_input_names:
                features["token_type_ids"] = torch.zeros_like(batch)
            # The model's own modules (transformer, mean pooling, normalisation), as encode() runs them.
            vectors[start : start + len(ids)] = model(features)["sentence_embedding"].float().numpy()
            if progress is not None and (start // DISTIL_BATCH) % 10 == 0:
                progress(f"static tier: {min(start + DISTIL_BATCH, vocab_size):,}/{vocab_size:,} tokens distilled")
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    vocab = tokenizer.get_vocab()
    first_word = vocab.get("the", 0)  # WordPiece lists specials, unused slots and characters before words
    weights = zipf_weights(vocab_size, first_word)
    for special in tokenizer.all_special_ids:
        weights[special] = 0.0  # [CLS]/[SEP] are never looked up; [UNK] and [PAD] say nothing
    table = vectors * weights[:, None].astype(np.float32)
    # Remove the table's common direction (its first principal axis, uncentred): every token vector shares
    # it, so sums of many tokens all lean the same way and unrelated texts look alike (cosine ~0.45).
    # Validation (20NG train split, 1,000 held-out queries, float cosine P@100): 0.302 -> 0.322.
    # The top eigenvector of the dim x dim Gram matrix is that axis (an SVD of the whole table took 10 s).
    axis = np.linalg.eigh(table.T.astype(np.float64) @ table)[1][:, -1]
    table = (table - np.outer(table @ axis, axis)).astype(np.float32)
    _write_folder(folder, table, source / "tokenizer.json")
    return folder


def _dimension(model: SentenceTransformer) -> int:
    """The model's embedding width (sentence-transformers renamed the method; either spelling works)."""
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(getter() or 0)


def _write_folder(folder: Path, table: np.ndarray, tokenizer_file: Path) -> None:
    """Write the table atomically: a temporary folder renamed into place (a crash leaves no half table)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".static-", dir=folder.parent))
    np.save(staging / "vectors.npy", table, allow_pickle=False)
    (staging / "tokenizer.json").write_bytes(tokenizer_file.read_bytes())
    record = {
        "format": STATIC_FORMAT,
        "model": STATIC_MODEL,
        "source": str(tokenizer_file.parent),
        "shape": list(table.shape),
        "sha256": hashlib.sha256((staging / "vectors.npy").read_bytes()).hexdigest(),
    }
    (staging / "static.json").write_text(json.dumps(record, indent=1))
    try:
        os.replace(staging, folder)
    except OSError:  # another process built it first: keep theirs
        for leftover in staging.iterdir():
            leftover.unlink()
        staging.rmdir()


def load_static_table(folder: Path) -> tuple[np.ndarray, Tokenizer]:
    """The checked table and tokenizer of ``folder``.

    Raises:
        ModelLoadError: a file is missing, does not match its recorded sha256, or has the wrong shape.
    """
    from tokenizers import Tokenizer

    try:
        record = json.loads((folder / "static.json").read_text())
        data = (folder / "vectors.npy").read_bytes()
        if hashlib.sha256(data).hexdigest() != record["sha256"]:
            raise ValueError("vectors.npy does not match its recorded sha256")
        table = np.load(io.BytesIO(data), allow_pickle=False)
        shape = tuple(int(n) for n in record["shape"])
        if table.dtype != np.float32 or table.shape != shape or table.ndim != 2 or table.size > MAX_TABLE_CELLS:
            raise ValueError(f"vectors.npy holds {table.dtype} {table.shape}, not float32 {shape}")
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    except Exception as exc:  # any unreadable part (OSError, JSON, shape, the tokenizer's own errors)
        raise ModelLoadError(
            f"the static model at {folder} is damaged ({str(exc)[:200]}): delete that folder and it is rebuilt"
        ) from None
    if tokenizer.get_vocab_size() != table.shape[0]:
        raise ModelLoadError(f"the static model at {folder} is damaged: delete that folder and it is rebuilt")
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return table, tokenizer


@dataclass
class StaticEncoder:
    """The static tier as an :class:`~semhash.embed.Encoder`: the weighted mean of a text's token vectors."""

    table: np.ndarray
    tokenizer: Tokenizer
    name: str = STATIC_MODEL

    def __post_init__(self) -> None:
        self.dim = int(self.table.shape[1])
        self.stats = EncodeStats()

    @classmethod
    def load(cls, progress: Callable[[str], None] | None = None) -> StaticEncoder:
        """The cached table, distilled first if this machine has none yet."""
        folder = static_folder()
        if not (folder / "static.json").exists():
            build_static_table(folder, progress)
        table, tokenizer = load_static_table(folder)
        return cls(table, tokenizer)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32 unit vectors (a text without a known token is the zero vector)."""
        out = np.zeros((len(texts), self.dim), np.float32)
        short = [i for i, text in enumerate(texts) if len(text) <= CHUNK_CHARS]
        if short:
            # One batched call: the Rust tokenizer spreads it over the cores.
            encodings = self.tokenizer.encode_batch([texts[i] for i in short], add_special_tokens=False)
            for row, encoding in zip(short, encodings, strict=True):
                out[row] = self._sum(np.asarray(encoding.ids, np.int64))
        for row in (i for i, text in enumerate(texts) if len(text) > CHUNK_CHARS):
            out[row] = self.encode_long(texts[row])  # counts itself
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        self.stats.documents += len(short)
        self.stats.tokenized_chars += sum(len(texts[i]) for i in short)
        return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)

    def encode_long(self, text: str, progress: Callable[[int], None] | None = None) -> np.ndarray:
        """One huge text in pieces of :data:`CHUNK_CHARS` cut at whitespace (bounded memory)."""
        total = np.zeros(self.dim, np.float64)
        done = 0
        while done < len(text):
            end = min(done + CHUNK_CHARS, len(text))
            if end < len(text):
                # Cut after the last whitespace (a newline counts: text with no spaces is common), so that no
                # word is split and the pieces' tokens are the whole text's; one huge word is cut where it must.
                space = max(text.rfind(c, done, end) for c in " \n\t\r")
                end = space + 1 if space > done else end
            ids = np.asarray(self.tokenizer.encode(text[done:end], add_special_tokens=False).ids, np.int64)
            total += self._sum(ids)
            self.stats.tokenized_chars += end - done
            done = end
            if progress is not None:
                progress(done)
        self.stats.documents += 1
        norm = float(np.linalg.norm(total))
        return (total / norm if norm > 0 else total).astype(np.float32)

    def _sum(self, ids: np.ndarray) -> np.ndarray:
        self.stats.windows += max(1, -(-len(ids) // WINDOW_TOKENS))
        if len(ids) == 0:
            return np.zeros(self.dim, np.float32)
        ids = ids[(ids >= 0) & (ids < self.table.shape[0])]
        return self.table[ids].sum(axis=0)
