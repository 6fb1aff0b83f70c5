"""Near-identical twins and hard look-alikes, from real files: the calibration set of search's twin folding (issue 21).

Positives (``twin``): the pages of the Node.js API documentation that the Debian package ships twice, as
Markdown and as the HTML generated from it (``/usr/share/doc/nodejs/api/NAME.md`` and ``NAME.html``): one page,
two formats, the HTML with the site's navigation and a table of contents added.

Negatives, documents that are *not* one another's copy but share much of their words or their embedding:

- ``sibling``: two different Node.js API pages (same generator, same navigation, same style);
- ``relnotes``: git's release notes of two different versions (``/usr/share/doc/git/RelNotes``), whose pooled
  embeddings reach cosine 0.999 (BENCHMARKS.md, "Search modes");
- ``man``: two different git man pages, rendered to text with ``man`` (same generator, same sections).

Documents are split, not pairs: each one belongs to the validation or the test half by a hash of its group (a
Node.js page's two formats share a group, so a twin is never split), and a pair belongs to a half when both
its documents do (pairs across the halves are left out). Validation chooses, test reports.

Usage (renders the man pages under the cache; the bench indexes the folders it lists)::

    PYTHONPATH=$PWD python -m benchmarks.datasets.twins
"""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import CACHE

NODE_API = Path("/usr/share/doc/nodejs/api")
RELNOTES = Path("/usr/share/doc/git/RelNotes")
MAN_PAGES = Path("/usr/share/man/man1")
#: Where the rendered man pages go (plain text, one ``.txt`` a page).
MAN_TEXT = CACHE / "twins" / "man"


@dataclass(frozen=True)
class Document:
    """One file of the set: its path, its group (a Node.js page's two formats share one) and its half."""

    path: Path
    group: str
    kind: str  # node | relnotes | man

    @property
    def split(self) -> str:
        """``validation`` or ``test``, by a hash of the group (stable across runs and machines)."""
        digest = hashlib.sha256(self.group.encode()).digest()
        return "validation" if digest[0] % 2 == 0 else "test"


@dataclass(frozen=True)
class Pair:
    """Two documents and whether they are twins; ``kind`` is ``twin``, ``sibling``, ``relnotes`` or ``man``."""

    a: Document
    b: Document
    kind: str

    @property
    def twin(self) -> bool:
        """The label: one page in two formats."""
        return self.kind == "twin"


def render_man_pages(dest: Path = MAN_TEXT) -> list[Path]:
    """Render git's man pages (section 1) to plain text files under ``dest`` (once; kept in the cache)."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    env = {**os.environ, "MANWIDTH": "80", "LC_ALL": "C.UTF-8"}
    for page in sorted(MAN_PAGES.glob("git-*.1.gz")):
        target = dest / (page.name.removesuffix(".1.gz") + ".txt")
        if not target.exists():
            shown = subprocess.run(["man", "-l", str(page)], capture_output=True, env=env, check=True).stdout
            plain = subprocess.run(["col", "-bx"], input=shown, capture_output=True, check=True).stdout
            target.write_bytes(plain)
        out.append(target)
    return out


def documents() -> list[Document]:
    """Every document of the set (the man pages rendered first, when they are not in the cache yet)."""
    docs = []
    for md in sorted(NODE_API.glob("*.md")):
        docs.append(Document(md, "node:" + md.stem, "node"))
        if md.with_suffix(".html").exists():
            docs.append(Document(md.with_suffix(".html"), "node:" + md.stem, "node"))
    docs += [Document(p, "relnotes:" + p.stem, "relnotes") for p in sorted(RELNOTES.glob("*.txt"))]
    docs += [Document(p, "man:" + p.stem, "man") for p in render_man_pages()]
    return docs


def folders() -> list[Path]:
    """The folders to index for the set (with :data:`INCLUDE`)."""
    return [NODE_API, RELNOTES, MAN_TEXT]


#: The globs that pick the set's files out of :func:`folders`.
INCLUDE = ("*.md", "*.html", "*.txt")


def pairs(docs: list[Document]) -> list[Pair]:
    """Every pair of the set inside one half: twins, and the negatives of each kind (all pairs of that kind)."""
    out = []
    for a, b in itertools.combinations(docs, 2):
        if a.split != b.split or a.kind != b.kind:
            continue
        if a.kind == "node":
            out.append(Pair(a, b, "twin" if a.group == b.group else "sibling"))
        else:
            out.append(Pair(a, b, a.kind))
    return out


if __name__ == "__main__":
    every = documents()
    found = pairs(every)
    for split in ("validation", "test"):
        kinds = [p.kind for p in found if p.a.split == split]
        print(split, {k: kinds.count(k) for k in sorted(set(kinds))})
