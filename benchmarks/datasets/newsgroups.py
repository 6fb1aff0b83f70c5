r"""20 Newsgroups (bydate) for the hashing benchmark: load, strip, write, embed.

The semantic-hashing literature (VDSH, NASH, AMMI, SNUH) uses scikit-learn's
``fetch_20newsgroups(remove=("headers", "footers", "quotes"))``. This module re-implements those three
heuristics (our own code, same semantics as scikit-learn 1.x), applied in the same order:

1. **headers**: drop everything up to and including the first blank line (``"\n\n"``); a message with
   no blank line becomes empty.
2. **footers**: strip the text, then find the *last* line that is blank or made only of hyphens; if it
   is not the first line, drop it and everything after it (scikit-learn puts no bound on the length of
   that tail). Otherwise the text is kept as it was.
3. **quotes**: drop every line that starts with ``>`` or ``|``, starts with ``In article`` or
   ``Quoted from``, or contains ``writes:``, ``writes in``, ``wrote:``, ``says:`` or ``said:``.

Documents whose stripped text is empty (only whitespace) are dropped, as the papers do.

``--protocol 18828`` writes the second protocol of issue 12 instead, in the style of Jason Rennie's
"20news-18828" release, which the older hashing papers describe (18,828 posts): of the header only the
``From:`` and ``Subject:`` lines are kept, the body is kept whole (quoted replies and signatures
included), and exact duplicates are dropped (same text after that reduction; the first one in file order
is kept, so a test post equal to a training post goes, never the database copy). The split stays the
bydate one (train = database, test = queries), so the two protocols differ only in what text a post keeps.

Usage::

    python -m benchmarks.datasets.newsgroups                # write .cache/20ng/{20ng-stripped.jsonl, embeddings.npz}
    python -m benchmarks.datasets.newsgroups --no-embed     # only the stripped JSONL
    python -m benchmarks.datasets.newsgroups --protocol 18828 # .cache/20ng-18828/{20ng-18828.jsonl, embeddings.npz}
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

from benchmarks.harness import CACHE, DATA

DEFAULT_SOURCE = DATA / "20newsgroups" / "20ng.jsonl.gz"
DEFAULT_OUT = CACHE / "20ng"

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


_KEPT_HEADERS = ("from:", "subject:")


def reduce_to_18828(text: str) -> str:
    """The 18,828 style: only the ``From:`` and ``Subject:`` header lines, then the whole body.

    The header is everything before the first blank line (as in :func:`strip_header`); a message with no
    blank line is all header. Header lines continued on the next line (starting with white space) are
    folded into the line they continue before the choice.
    """
    head, blank, body = text.partition("\n\n")
    if not blank:
        head, body = text, ""
    fields: list[str] = []
    for line in head.split("\n"):
        if line[:1] in (" ", "\t") and fields:
            fields[-1] += " " + line.strip()
        else:
            fields.append(line)
    kept = [field for field in fields if field.lower().startswith(_KEPT_HEADERS)]
    return "\n".join(kept) + "\n\n" + body if kept else body


@dataclass(frozen=True)
class Post:
    """One stripped message."""

    id: str
    text: str
    label: str
    split: str


def read_posts(source: Path = DEFAULT_SOURCE, protocol: str = "stripped") -> Iterator[Post]:
    """The posts of the bydate corpus under a protocol, in file order (train first).

    ``stripped``: :func:`strip_message`, empty posts dropped. ``18828``: :func:`reduce_to_18828`, empty
    posts and exact duplicates (the later copies) dropped.
    """
    seen: set[str] = set()
    with gzip.open(source, "rt", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if protocol == "18828":
                text = reduce_to_18828(record["text"])
                digest = hashlib.sha256(text.strip().encode("utf-8")).hexdigest()
                if digest in seen:
                    continue
                seen.add(digest)
            else:
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


def embed_posts(posts: list[Post], path: Path, chunk: int = 256, device: str = "cpu", model: str | None = None) -> None:
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
    encoder = load_encoder(model, device=device)
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
    parser.add_argument("--out", type=Path, default=None, help="[default: .cache/20ng or .cache/20ng-18828]")
    parser.add_argument("--protocol", choices=("stripped", "18828"), default="stripped")
    parser.add_argument("--no-embed", action="store_true", help="write the JSONL only")
    parser.add_argument("--device", default="cpu", help="where to embed (cpu, cuda, ...)")
    parser.add_argument("--model", default=None, help="sentence-transformers name or folder [default: packaged]")
    args = parser.parse_args(argv)
    stripped = args.protocol == "stripped"
    out = args.out or (DEFAULT_OUT if stripped else DEFAULT_OUT.with_name("20ng-18828"))
    posts = list(read_posts(args.source, args.protocol))
    n_train = sum(p.split == "train" for p in posts)
    print(f"{len(posts)} non-empty posts ({n_train} train, {len(posts) - n_train} test)", flush=True)
    write_jsonl(posts, out / ("20ng-stripped.jsonl" if stripped else "20ng-18828.jsonl"))
    if not args.no_embed:
        embed_posts(posts, out / "embeddings.npz", device=args.device, model=args.model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
