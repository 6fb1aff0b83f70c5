"""What tests import: a deterministic fake encoder, small corpora, topic texts and a deadline.

Fixtures live in ``conftest.py`` (pytest finds them); plain helpers live here, so a test imports them from a
module made for it rather than from ``conftest``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from semhash.codes import to_sql_int
from semhash.embed import EncodeStats
from semhash.store import Store
from semhash.types import SourceDocument

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


# -- labelled JSONL for `semhash eval` ----------------------------------------------------------------

LABELLED_TOPICS = {
    "space": "orbit rocket launch nasa moon shuttle satellite planet",
    "hockey": "goal puck team season playoff skate coach ice",
    "crypto": "key cipher encryption nsa clipper secure algorithm chip",
    "autos": "car engine brake tire dealer mileage clutch ford",
}

FILLER = ["the", "a", "of", "and", "to", "in", "is", "it", "that", "for", "on", "with", "as", "this", "was"]


def write_labelled_jsonl(path: Path, n: int = 240, with_split: bool = True, seed: int = 0) -> Path:
    """A labelled JSONL corpus (``semhash eval``'s input): ``n`` records over three topics, padded with filler words."""
    rng = np.random.default_rng(seed)
    names = sorted(LABELLED_TOPICS)
    with path.open("w") as handle:
        for i in range(n):
            topic = names[i % len(names)]
            words = list(rng.choice(LABELLED_TOPICS[topic].split(), size=6)) + list(rng.choice(FILLER, size=8))
            rng.shuffle(words)
            record = {"id": f"d{i}", "text": " ".join(words), "labels": [topic]}
            if with_split:
                record["split"] = "test" if i % 5 == 0 else "train"
            handle.write(json.dumps(record) + "\n")
        handle.write(json.dumps({"id": "empty", "text": "   ", "label": "space", "split": "train"}) + "\n")
    return path


# -- hand-made dedup stores: chosen embeddings and codes, no encoder ------------------------------------
DEDUP_DIM = 8


def unit(angle_deg: float, axis: int = 1) -> np.ndarray:
    """A unit vector at ``angle_deg`` from e0 (so its cosine with e0 is cos(angle)), in plane (e0, e_axis)."""
    v = np.zeros(DEDUP_DIM)
    v[0], v[axis] = np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))
    return v


def make_store(
    path: Path, docs: list[tuple[str, np.ndarray, int]], folder: Path, mtimes: list[float] | None = None
) -> list[int]:
    """A store of documents ``(text, embedding, code)``, each one also written to ``folder/docN.txt``."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = []
    for k, (text, _, _) in enumerate(docs):
        file = folder / f"doc{k}.txt"
        file.write_text(text)
        mtime = mtimes[k] if mtimes else float(k)
        sources.append(SourceDocument(str(file), 0, text, hashlib.sha256(text.encode()).hexdigest(), mtime))
    with Store.open(path, create=True) as store:
        store.check_embedding_model("fake", DEDUP_DIM)
        ids = store.upsert_documents(sources, np.array([d[1] for d in docs], dtype=np.float32))
        store.save_model(b"", bits=32, input_dim=DEDUP_DIM, config={}, stats={}, trained_on=len(docs))
        store.set_codes(ids, [to_sql_int(d[2], 32) for d in docs], [0.0] * len(docs))
    return ids


E0 = unit(0)


def invoke_dedup(*args: str | Path) -> tuple[int, str]:
    """``semhash dedup ARGS`` in-process: the exit code and the output."""
    from typer.testing import CliRunner

    from semhash.cli import app

    result = CliRunner().invoke(app, ["dedup", *[str(a) for a in args]])
    return result.exit_code, result.output


# -- near-identical twins (issue 21) ------------------------------------------------------------------

TWIN_SECTIONS = [
    (
        "Zeppelin mooring",
        "A zeppelin is moored to a mast at the harbour so the wind turns it without strain on the hull.",
    ),
    ("Ballast", "Release water ballast slowly before the ascent and keep a log of every litre that leaves the tanks."),
    ("Gas cells", "Inspect the gas cells each morning for leaks; a soft cell is patched before the crew boards."),
    ("Engines", "Warm the engines on the ground for ten minutes and listen for knocking at low revolutions."),
    ("Landing", "The ground crew catches the bow lines, walks the ship to the mast and locks the nose cone."),
]


def write_twins(root: Path) -> dict[str, Path]:
    """One page as Markdown and as the HTML made from it (twins), and two release notes whose words are the same.

    The HTML adds a navigation list and a title bar, the Markdown its markup and a link definition: the texts
    differ, their word pairs mostly do not. The notes hold the same bag of words in another order (so a
    bag-of-words embedding, :class:`FakeEncoder`, puts them at cosine 1) but share few word pairs: not twins.
    Returns the paths by name: ``md``, ``html``, ``notes-1``, ``notes-2``.
    """
    root.mkdir(parents=True, exist_ok=True)
    md = ["# Airship handbook", ""]
    html = [
        "<html><head><title>Airship handbook | Fleet docs</title></head><body>",
        "<nav><ul><li>Fleet docs</li><li>Airship handbook</li></ul></nav>",
        "<h1>Airship handbook</h1>",
    ]
    for title, body in TWIN_SECTIONS:
        md += [f"## {title}", "", body, "", "```", f"check --{title.split()[0].lower()}", "```", ""]
        html += [f"<h2>{title}</h2>", f"<p>{body}</p>", f"<pre><code>check --{title.split()[0].lower()}</code></pre>"]
    md.append("[handbook]: https://fleet.example/handbook")
    html.append("</body></html>")
    paths = {"md": root / "handbook.md", "html": root / "handbook.html"}
    paths["md"].write_text("\n".join(md) + "\n")
    paths["html"].write_text("\n".join(html) + "\n")
    words = " ".join(body for _, body in TWIN_SECTIONS).split()
    for n in (1, 2):
        order = np.random.default_rng(n).permutation(len(words))
        notes = root / f"notes-{n}.txt"
        notes.write_text("Release notes\n\n" + " ".join(words[i] for i in order) + "\n")
        paths[f"notes-{n}"] = notes
    return paths
