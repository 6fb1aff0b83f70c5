"""Shared fixtures: a deterministic fake encoder and small corpora on disk."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from semhash.embed import EncodeStats

TOPICS = {
    "space": "planet orbit telescope star galaxy rocket moon astronaut comet nebula",
    "food": "recipe oven flour butter sugar bake dough salt pepper garlic",
    "bikes": "bicycle wheel chain gear saddle pedal tyre brake frame ride",
}


class FakeEncoder:
    """Deterministic bag-of-words embedder: each word maps to a fixed random vector; texts sum them.

    Texts sharing words get similar vectors, which is all the unit tests need; no model download.
    """

    name = "fake-bow"

    def __init__(self, dim: int = 32, fail_after: int | None = None) -> None:
        self.dim = dim
        self.calls = 0
        self.fail_after = fail_after
        self.stats = EncodeStats()
        self.encoded: list[str] = []

    def _word(self, word: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
        return np.random.default_rng(seed).standard_normal(self.dim)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt
        self.calls += 1
        out = np.zeros((len(texts), self.dim))
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[row] += self._word(word)
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        self.stats.documents += len(texts)
        self.stats.windows += len(texts)
        self.encoded.extend(texts)
        return out.astype(np.float32)


def write_corpus(root: Path, per_topic: int = 8) -> dict[str, list[Path]]:
    """Write ``per_topic`` short documents per topic; returns the paths by topic."""
    paths: dict[str, list[Path]] = {}
    for topic, words in TOPICS.items():
        vocab = words.split()
        folder = root / topic
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_topic):
            rng = np.random.default_rng(int(hashlib.sha256(f"{topic}{i}".encode()).hexdigest()[:8], 16))
            text = " ".join(rng.choice(vocab, size=12)) + f" note {i}"
            path = folder / f"{topic}-{i}.txt"
            path.write_text(text)
            paths.setdefault(topic, []).append(path)
    return paths


LEXICAL_TOPICS = {
    "space": "planet orbit telescope galaxy rocket moon astronaut comet nebula star",
    "food": "recipe oven flour butter sugar dough salt pepper garlic onion",
    "bikes": "bicycle wheel chain gear saddle pedal tyre brake frame spoke",
}


def topic_texts(per_topic: int = 20, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Short texts drawn from each topic's words, with a few words every topic shares."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for label, words in enumerate(LEXICAL_TOPICS.values()):
        vocab = words.split()
        for _ in range(per_topic):
            texts.append("the weekend report about " + " ".join(rng.choice(vocab, size=8)))
            labels.append(label)
    return texts, np.array(labels)


@pytest.fixture(scope="session", autouse=True)
def runtime_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One encoder-export cache for the whole session (``SEMHASH_CACHE``).

    The real model is exported once, and never into the user's ``~/.cache``.

    ``SEMHASH_INDEX_EXPORT=0`` (the default, made explicit against a developer's environment): a first index
    embeds with the encoder it loads (the tests' fake one, patched into ``semhash.embed.load_encoder``), not
    with the real model's cached export; the tests of that path (tests/test_codec.py) turn it on.
    """
    folder = tmp_path_factory.mktemp("semhash-cache")
    saved = {name: os.environ.get(name) for name in ("SEMHASH_CACHE", "SEMHASH_INDEX_EXPORT")}
    os.environ["SEMHASH_CACHE"] = str(folder)
    os.environ["SEMHASH_INDEX_EXPORT"] = "0"
    yield folder
    for name, before in saved.items():
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


@pytest.fixture
def fake_encoder() -> FakeEncoder:
    return FakeEncoder()


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    write_corpus(root)
    return root


@pytest.fixture
def patch_encoder(monkeypatch: pytest.MonkeyPatch) -> FakeEncoder:
    """Make every ``load_encoder`` call (CLI included) return one shared fake encoder."""
    encoder = FakeEncoder()
    monkeypatch.setattr("semhash.embed.load_encoder", lambda *args, **kwargs: encoder)
    return encoder


FAST_EPOCHS = 5


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail (instead of hanging the suite) when the block takes longer than ``seconds`` (SIGALRM)."""

    def expire(*_: object) -> None:
        raise TimeoutError(f"took over {seconds} s: hung?")

    before = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, before)


#: Nine short documents on three topics, for end-to-end tests with the real model.
SMALL_DOCS = {
    "space/jupiter.txt": "Jupiter is the largest planet in the solar system, a gas giant with dozens of moons.",
    "space/telescope.txt": "The new space telescope captured infrared images of distant galaxies and nebulae.",
    "space/launch.md": "The rocket launch was delayed because of high winds over the launch pad.",
    "food/bread.txt": "Knead the dough for ten minutes, let it rise, then bake the bread in a hot oven.",
    "food/soup.txt": "Simmer onions, carrots and lentils in stock for a warming winter soup.",
    "food/pasta.md": "Cook the spaghetti in salted boiling water and toss it with garlic and olive oil.",
    "bikes/tyre.txt": "To fix a flat bicycle tyre, remove the wheel, find the puncture and patch the tube.",
    "bikes/chain.txt": "A clean, lubricated chain makes gear changes on your bike smooth and quiet.",
    "bikes/brakes.md": "Adjust the brake pads so they hit the rim squarely when you pull the lever.",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` need CUDA; without a GPU they are skipped, never failed."""
    if not any(item.get_closest_marker("gpu") for item in items):
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch sees none)")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)
