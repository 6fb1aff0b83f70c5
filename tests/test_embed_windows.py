"""Windowing and chunked embedding of long documents with the real model's tokenizer (issue 8)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from semhash.embed import SentenceTransformerEncoder, load_encoder

if TYPE_CHECKING:
    from transformers import BatchEncoding, PreTrainedTokenizerBase

pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"


@pytest.fixture(scope="module")
def encoder() -> Iterator[SentenceTransformerEncoder]:
    enc = load_encoder(device="cpu")
    assert isinstance(enc, SentenceTransformerEncoder)
    yield enc


@pytest.fixture
def fresh(encoder: SentenceTransformerEncoder) -> Iterator[SentenceTransformerEncoder]:
    """The shared encoder with its defaults restored after each test."""
    saved = (encoder.chunk_chars, encoder.window_chunk, encoder.max_windows)
    yield encoder
    encoder.chunk_chars, encoder.window_chunk, encoder.max_windows = saved


def _medium_text() -> str:
    """About 75,000 characters of real prose (the sample corpus), with some accents and a long 'word'."""
    parts = [p.read_text() for p in sorted(SAMPLE.rglob("*")) if p.suffix in (".txt", ".md")]
    return ("\n\n".join(parts) + " café naïve " + "x" * 300 + " end.").strip()


def _whole_text_windows(enc: SentenceTransformerEncoder, text: str) -> list[tuple[str, int]]:
    """The windows of tokenising the whole text at once (how semhash cut them before issue 8)."""
    offsets = enc._model.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)[
        "offset_mapping"
    ]
    n, size = len(offsets), enc.max_tokens
    return [
        (text[offsets[s][0] : offsets[s + size][0] if s + size < n else len(text)], min(s + size, n) - s)
        for s in range(0, n, size)
    ]


class _TokenizerSpy:
    """Wraps the model's tokenizer and records the length of every single string it tokenises."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self._tokenizer = tokenizer
        self.lengths: list[int] = []

    def __call__(self, text: object, *args: object, **kwargs: object) -> BatchEncoding:
        if isinstance(text, str):
            self.lengths.append(len(text))
        return self._tokenizer(text, *args, **kwargs)

    def __getattr__(self, name: str) -> object:
        return getattr(self._tokenizer, name)


def test_windows_are_cut_from_character_chunks_exactly_as_from_the_whole_text(
    fresh: SentenceTransformerEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _medium_text()
    expected = _whole_text_windows(fresh, text)
    spy = _TokenizerSpy(fresh._model.tokenizer)
    # The model's `tokenizer` is a class property (its setter refuses other objects): patch it there.
    monkeypatch.setattr(type(fresh._model), "tokenizer", property(lambda self: spy))
    fresh.chunk_chars = 3000
    windows = fresh.windows(text)
    assert max(spy.lengths) <= 2 * fresh.chunk_chars  # never the whole text at once
    assert len(spy.lengths) > 20
    assert windows == expected  # seams at word boundaries: identical windows
    assert "".join(w for w, _ in windows) == text[len(text) - len(text.lstrip()) :]


def test_max_windows_spreads_the_windows_kept_over_the_text_and_counts_the_document_as_capped(
    fresh: SentenceTransformerEncoder,
) -> None:
    text = _medium_text() * 4  # ~300,000 characters, ~280 windows
    every = _whole_text_windows(fresh, text)
    fresh.max_windows = 3
    before = fresh.stats.capped_documents
    # The first, the middle and the last window (issue 20: a prefix is not the document).
    assert fresh.windows(text) == [every[0], every[(len(every) - 1 + 1) // 2], every[-1]]
    fresh.max_windows = 1
    assert fresh.windows(text) == every[:1]  # one window: the first (an adapted encoder's rule)
    assert fresh.stats.capped_documents == before + 2
    assert fresh.windows("a short text") == [("a short text", 3)]
    assert fresh.stats.capped_documents == before + 2  # not cut: not counted


def test_encode_long_embeds_in_bounded_window_chunks_close_to_the_one_call_embedding(
    fresh: SentenceTransformerEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _medium_text()[:7_000]  # ~7 windows: small, the machine's CPU is slow
    reference = fresh.encode([text])[0]
    fresh.window_chunk = 2
    calls: list[int] = []
    model_encode = fresh._model.encode

    def spy(sentences: list[str], **kwargs: object) -> np.ndarray:
        calls.append(len(sentences))
        return model_encode(sentences, **kwargs)

    monkeypatch.setattr(fresh._model, "encode", spy)
    done: list[int] = []
    windows_before = fresh.stats.windows
    vector = fresh.encode_long(text, progress=done.append)
    assert max(calls) <= 2 and len(calls) >= 3
    assert sum(calls) == fresh.stats.windows - windows_before == len(fresh.windows(text))
    assert done == sorted(done) and len(done) == len(calls) and done[-1] >= len(text) - 5
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5
    assert float(vector @ reference) > 0.999
