"""20 Newsgroups (bydate) for the hashing benchmark: load, strip, write, embed.

The semantic-hashing literature (VDSH, NASH, AMMI, SNUH) uses scikit-learn's
``fetch_20newsgroups(remove=("headers", "footers", "quotes"))``. This module re-implements those three
heuristics (our own code, same semantics as scikit-learn 1.x), applied in the same order:

1. **headers**: drop everything up to and including the first blank line (``"\\n\\n"``); a message with
   no blank line becomes empty.
2. **footers**: strip the text, then find the *last* line that is blank or made only of hyphens; if it
   is not the first line, drop it and everything after it (scikit-learn puts no bound on the length of
   that tail). Otherwise the text is kept as it was.
3. **quotes**: drop every line that starts with ``>`` or ``|``, starts with ``In article`` or
   ``Quoted from``, or contains ``writes:``, ``writes in``, ``wrote:``, ``says:`` or ``said:``.

Documents whose stripped text is empty (only whitespace) are dropped, as the papers do.

Usage::

    python scripts/newsgroups.py                      # write .cache/20ng/{20ng-stripped.jsonl, embeddings.npz}
    python scripts/newsgroups.py --no-embed           # only the stripped JSONL
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "20newsgroups" / "20ng.jsonl.gz"
DEFAULT_OUT = ROOT / ".cache" / "20ng"

_QUOTE_LINE = re.compile(r"writes in|writes:|wrote:|says:|said:|^In article|^Quoted from|^\||^>")


def strip_header(text: str) -> str:
    """Everything after the first blank line (empty when there is none)."""
    _head, blank, body = text.partition("\n\n")
    return body if blank else ""


def strip_footer(text: str) -> str:
    """Drop the signature: from the last blank or hyphens-only line on (see the module docstring)."""
    lines = text.strip().split("\n")
    cut = 0
    for number in range(len(lines) - 1, -1, -1):
        if lines[number].strip().strip("-") == "":
            cut = number
            break
    return "\n".join(lines[:cut]) if cut > 0 else text


def strip_quotes(text: str) -> str:
    """Drop quoted lines and the lines that introduce a quote."""
    return "\n".join(line for line in text.split("\n") if not _QUOTE_LINE.search(line))


def strip_message(text: str) -> str:
    """Headers, then footers, then quotes: scikit-learn's ``remove=("headers", "footers", "quotes")``."""
    return strip_quotes(strip_footer(strip_header(text)))


@dataclass(frozen=True)
class Post:
    """One stripped message."""

    id: str
    text: str
    label: str
    split: str


def read_posts(source: Path = DEFAULT_SOURCE) -> Iterator[Post]:
    """Stripped, non-empty posts of the bydate corpus, in file order (train first)."""
    with gzip.open(source, "rt", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            text = strip_message(record["text"])
            if text.strip():
                yield Post(record["id"], text, record["labels"][0], record["split"])


def write_jsonl(posts: list[Post], path: Path) -> None:
    """Write the posts as labelled JSONL (``id``, ``text``, ``labels``, ``split``), the eval format."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for post in posts:
            row = {"id": post.id, "text": post.text, "labels": [post.label], "split": post.split}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def embed_posts(posts: list[Post], path: Path, chunk: int = 256) -> None:
    """Embed with the default encoder (window pooling) and save ``ids, labels, split, sha256, embeddings``.

    Resumable: finished chunks are kept in ``<path>.partial.npz`` and skipped on a rerun.
    """
    import numpy as np

    from semhash.embed import load_encoder

    partial = path.with_suffix(".partial.npz")
    done: list[np.ndarray] = []
    if partial.exists():
        done = [np.load(partial)["embeddings"]]
    n_done = sum(len(d) for d in done)
    encoder = load_encoder(device="cpu")
    started = time.perf_counter()
    for start in range(n_done, len(posts), chunk):
        batch = posts[start : start + chunk]
        done.append(encoder.encode([p.text for p in batch]))
        np.savez(partial, embeddings=np.concatenate(done))
        elapsed = time.perf_counter() - started
        stop = start + len(batch)
        print(f"{stop}/{len(posts)} embedded, {elapsed:.0f} s", flush=True)
    embeddings = np.concatenate(done).astype(np.float32)
    np.savez(
        path,
        ids=np.array([p.id for p in posts]),
        labels=np.array([p.label for p in posts]),
        split=np.array([p.split for p in posts]),
        sha256=np.array([hashlib.sha256(p.text.encode("utf-8")).hexdigest() for p in posts]),
        model=np.array(encoder.name),
        embeddings=embeddings,
    )
    partial.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--no-embed", action="store_true", help="write the stripped JSONL only")
    args = parser.parse_args(argv)
    posts = list(read_posts(args.source))
    n_train = sum(p.split == "train" for p in posts)
    print(f"{len(posts)} non-empty posts ({n_train} train, {len(posts) - n_train} test)", flush=True)
    write_jsonl(posts, args.out / "20ng-stripped.jsonl")
    if not args.no_embed:
        embed_posts(posts, args.out / "embeddings.npz")
    return 0


if __name__ == "__main__":
    sys.exit(main())
