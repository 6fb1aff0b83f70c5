r"""A second labelled corpus for the hashing benchmarks (issue 12): Debian package descriptions by section.

Where it comes from: the Debian archive (public data from the package registry this machine reaches,
deb.debian.org), release **bookworm**, component **main**:

- ``Packages`` (amd64): one stanza per binary package with ``Package``, ``Source`` (absent: the same as
  ``Package``; may carry a version in parentheses), ``Section`` and ``Description-md5``. Default: the copy
  apt keeps after ``apt-get update``, ``/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-
  amd64_Packages.lz4`` (``--packages``; ``.lz4``, ``.xz``, ``.bz2``, ``.gz`` or plain).
- ``i18n/Translation-en``: the English descriptions, keyed by ``Package`` and ``Description-md5``
  (``Description-en``: first line = the short description, then the long one, each line indented by one
  space, `` .`` = a blank line). Downloaded once from ``--url`` into ``.cache/debian/Translation-en.xz``
  unless ``--translations`` names a local copy; its sha256 is checked against apt's signed ``InRelease``
  where that lists it (a mismatch is reported, not fatal: the mirror may be newer than the local lists).

Protocol (decided here, nothing tuned on results):

1. **Topical sections only** (:data:`TOPICAL`): sections that say what a package is *for* (games,
   science, sound, mail, ...). Sections that say what language or packaging it is (libs, libdevel, doc,
   debug, python, perl, rust, ..., metapackages, tasks, localization, the desktops x11/gnome/kde/xfce/
   gnustep) and the catch-alls (misc, utils, devel, interpreters) are dropped. A ``contrib/`` or
   ``non-free/`` prefix is stripped first.
2. Text = short description + ``"\n"`` + long description (one leading space removed from each line,
   `` .`` turned into an empty line). A package whose ``Description-md5`` has no English text is skipped;
   so are transitional / dummy packages (short description says so): they describe another package.
3. **One binary package per source package**, among its topical binaries with a text: the binary named
   like the source, else the first in ``Packages`` order. A source's binaries share descriptions, which
   would make retrieval trivial.
4. Exact duplicate texts: the first one is kept.
5. Sections with fewer than ``--min-docs`` (60) documents are dropped.
6. Split: seeded (``--seed`` 0), stratified by section: ``--train-fraction`` (60%) of each section is the
   database (``"train"``), the rest are the queries (``"test"``); rows are written database first, each
   part in package-name order. ``id`` = the package name, ``labels`` = ``[section]``.

Outputs (``--out``, default ``.cache/debian``): ``debian.jsonl`` (the eval format of
``benchmarks/datasets/newsgroups.py``), ``embeddings.npz`` (written by :func:`newsgroups.embed_posts`: the default
encoder, window pooling), ``debian-stats.json`` (section sizes, the chance P@100, source checksums).
P@100 is bounded by the section sizes: the chance level printed is the P@100 of a random ranking, the mean
over queries of the share of the database that has the query's label.

What it gives (apt lists of 2026-07-11, Translation-en.xz sha256 a3d4a0bf..., as listed by that InRelease):
63,440 binaries -> 8,195 documents in 21 sections (science 1,254 ... comm 78), 4,919 database, 3,276
queries, chance P@100 0.0889 (20 Newsgroups: 0.0505). Texts: median 61 words. Left in on purpose: related
*source* packages with near-identical descriptions (``bowtie``/``bowtie2``, ``ansible``/``ansible-core``):
55 queries share a short description with a database document (54 in the same section).

Usage (from the repository root)::

    nice -n 5 .venv/bin/python -m benchmarks.datasets.debian_corpus                  # download, select, write, embed
    .venv/bin/python -m benchmarks.datasets.debian_corpus --no-embed --translations /path/Translation-en.xz
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import hashlib
import io
import json
import lzma
import re
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.datasets.newsgroups import Post, embed_posts, write_jsonl
from benchmarks.harness import CACHE

APT_LISTS = Path("/var/lib/apt/lists")
PACKAGES = APT_LISTS / "deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4"
RELEASE = APT_LISTS / "deb.debian.org_debian_dists_bookworm_InRelease"
URL = "https://deb.debian.org/debian/dists/bookworm/main/i18n/Translation-en.xz"
OUT = CACHE / "debian"
#: What the index lists the downloaded file as, in ``InRelease``'s SHA256 section.
RELEASE_NAME = "main/i18n/Translation-en.xz"
#: Debian sections that say what a package is for (the ones kept); every other section is dropped.
TOPICAL = frozenset(
    {
        "admin", "comm", "database", "editors", "education", "electronics", "embedded", "fonts", "games",
        "graphics", "hamradio", "httpd", "kernel", "mail", "math", "net", "news", "otherosfs", "science",
        "shells", "sound", "tex", "text", "vcs", "video", "web",
    }
)  # fmt: skip
#: A downloaded or local file larger than this is refused (the real ones are ~6 MB compressed, 33 MB plain).
MAX_BYTES = 512 * 1024 * 1024
_TRANSITIONAL = re.compile(r"\btransitional\b|\bdummy package\b", re.IGNORECASE)
_VERSION = re.compile(r"\s*\(.*\)\s*$")


@dataclass(frozen=True)
class Binary:
    """What the corpus needs of one binary package's ``Packages`` stanza."""

    name: str
    source: str
    section: str
    md5: str


@dataclass(frozen=True)
class Document:
    """One selected package: its name, text and (topical) section."""

    name: str
    text: str
    section: str


def stanzas(lines: Iterable[str]) -> Iterator[dict[str, str]]:
    """Parse deb822 text (``Packages``, ``Translation-*``): one dict per blank-line-separated stanza.

    A continuation line (it starts with a space or a tab) is appended to the field's value after a
    newline, exactly as written (leading whitespace kept), so multi-line fields can be decoded later.
    """
    fields: dict[str, str] = {}
    last: str | None = None
    for raw in lines:
        line = raw.rstrip("\n")
        if not line.strip():
            if fields:
                yield fields
            fields, last = {}, None
        elif line[0] in " \t":
            if last is not None:
                fields[last] += "\n" + line
        else:
            key, colon, value = line.partition(":")
            if colon:
                last = key.strip()
                fields[last] = value.strip()
    if fields:
        yield fields


def section_name(raw: str) -> str:
    """A section without its archive-area prefix (``contrib/net`` -> ``net``)."""
    return raw.rsplit("/", 1)[-1].strip()


def read_binaries(records: Iterable[dict[str, str]]) -> list[Binary]:
    """The binaries of ``Packages`` stanzas that name a section and a description checksum, in file order."""
    out = []
    for record in records:
        name, section, md5 = record.get("Package"), record.get("Section"), record.get("Description-md5")
        if name and section and md5:
            source = _VERSION.sub("", record.get("Source") or name) or name
            out.append(Binary(name, source, section_name(section), md5))
    return out


def description_text(raw: str) -> str:
    """``Description-en`` as text: the short line, a newline, then the long lines (`` .`` = blank line)."""
    short, _, long = raw.partition("\n")
    body = []
    for line in long.split("\n"):
        line = line[1:] if line[:1] in (" ", "\t") else line
        body.append("" if line.strip() == "." else line.rstrip())
    long_text = "\n".join(body).strip("\n")
    return short.strip() + ("\n" + long_text if long_text else "")


def read_descriptions(records: Iterable[dict[str, str]]) -> dict[str, str]:
    """``Description-md5`` -> text, from ``Translation-en`` stanzas (the first text of a checksum wins)."""
    out: dict[str, str] = {}
    for record in records:
        md5, raw = record.get("Description-md5"), record.get("Description-en")
        if md5 and raw and md5 not in out:
            out[md5] = description_text(raw)
    return out


def select(binaries: Sequence[Binary], descriptions: dict[str, str], min_docs: int) -> list[Document]:
    """Steps 1-5 of the protocol (module docstring): topical, one per source, distinct texts, big sections."""
    by_source: dict[str, list[Binary]] = {}
    for b in binaries:
        text = descriptions.get(b.md5)
        if b.section in TOPICAL and text and not _TRANSITIONAL.search(text.split("\n", 1)[0]):
            by_source.setdefault(b.source, []).append(b)
    chosen = []
    for source, group in by_source.items():
        pick = next((b for b in group if b.name == source), group[0])
        chosen.append(Document(pick.name, descriptions[pick.md5], pick.section))
    seen: set[str] = set()
    distinct = []
    for doc in chosen:
        if doc.text not in seen:
            seen.add(doc.text)
            distinct.append(doc)
    sizes = Counter(d.section for d in distinct)
    return [d for d in distinct if sizes[d.section] >= min_docs]


def stratified_split(docs: Sequence[Document], train_fraction: float, seed: int) -> list[Post]:
    """Posts with a seeded split per section (``round(fraction * size)`` to ``train``); database first."""
    import numpy as np

    rng = np.random.default_rng(seed)
    split: dict[str, str] = {}
    for section in sorted({d.section for d in docs}):
        names = sorted(d.name for d in docs if d.section == section)
        picked = set(rng.choice(len(names), round(train_fraction * len(names)), replace=False).tolist())
        split.update({name: "train" if i in picked else "test" for i, name in enumerate(names)})
    posts = [Post(d.name, d.text, d.section, split[d.name]) for d in sorted(docs, key=lambda d: d.name)]
    return [p for p in posts if p.split == "train"] + [p for p in posts if p.split == "test"]


def chance_precision(database: Sequence[Sequence[str]], queries: Sequence[Sequence[str]]) -> float:
    """P@k of a random ranking: the mean over queries of the share of the database sharing a label."""
    if not database or not queries:
        return 0.0
    shares = [sum(bool(set(q) & set(d)) for d in database) / len(database) for q in queries]
    return sum(shares) / len(shares)


def _open_binary(path: Path) -> io.BufferedIOBase:
    """``path`` opened for reading bytes, decompressed by its suffix (``.xz``, ``.bz2``, ``.gz``)."""
    openers = {".xz": lzma.LZMAFile, ".bz2": bz2.BZ2File, ".gz": gzip.GzipFile}
    opener = openers.get(path.suffix)
    return opener(path, "rb") if opener is not None else path.open("rb")


def read_text(path: Path) -> str:
    """A (possibly compressed) text file, decoded as UTF-8; refused above :data:`MAX_BYTES`."""
    if path.suffix == ".lz4":
        # No lz4 module in the project's environment: apt's own files are read with the lz4 tool.
        data = subprocess.run(["lz4", "-dc", str(path)], check=True, capture_output=True).stdout
    else:
        # Read through the decompressor with a bound, so a hostile file cannot fill the memory.
        with _open_binary(path) as handle:
            data = handle.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise SystemExit(f"{path}: more than {MAX_BYTES} bytes once decompressed; not a Debian index?")
    return data.decode("utf-8", errors="replace")


def fetch(url: str, path: Path) -> None:
    """Download ``url`` to ``path`` (through a temporary name, so a broken download leaves nothing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with urllib.request.urlopen(url, timeout=120) as response:
        data = response.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise SystemExit(f"{url}: more than {MAX_BYTES} bytes")
    tmp.write_bytes(data)
    tmp.replace(path)


def release_sha256(release: Path, name: str) -> str | None:
    """The sha256 that apt's ``InRelease`` lists for ``name`` (``None`` when absent)."""
    if not release.is_file():
        return None
    in_sha256 = False
    for line in release.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.startswith(" "):
            in_sha256 = line.startswith("SHA256:")
        elif in_sha256:
            parts = line.split()
            if len(parts) == 3 and parts[2] == name:
                return parts[0]
    return None


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packages", type=Path, default=PACKAGES, help="Packages file (.lz4/.xz/.bz2/.gz)")
    parser.add_argument("--translations", type=Path, default=None, help="local Translation-en (else download)")
    parser.add_argument("--url", default=URL, help="where Translation-en is downloaded from")
    parser.add_argument("--release", type=Path, default=RELEASE, help="apt's InRelease, to check the download")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--min-docs", type=int, default=60)
    parser.add_argument("--train-fraction", type=float, default=0.6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for the embedding")
    parser.add_argument("--no-embed", action="store_true", help="write the JSONL only")
    args = parser.parse_args(argv)
    if not args.packages.is_file():
        print(f"no {args.packages}: run `apt-get update` or pass --packages FILE", file=sys.stderr)
        return 1
    translations = args.translations
    if translations is None:
        translations = args.out / Path(args.url).name
        if not translations.is_file():
            print(f"downloading {args.url}", flush=True)
            fetch(args.url, translations)
    elif not translations.is_file():
        print(f"no {translations}: pass a Translation-en file, or omit --translations to download", file=sys.stderr)
        return 1
    digest = sha256_of(translations)
    listed = release_sha256(args.release, RELEASE_NAME) if translations.name.endswith(".xz") else None
    check = "not listed" if listed is None else "matches InRelease" if listed == digest else "DIFFERS from InRelease"
    print(f"{translations}: sha256 {digest} ({check})")

    binaries = read_binaries(stanzas(io.StringIO(read_text(args.packages))))
    descriptions = read_descriptions(stanzas(io.StringIO(read_text(translations))))
    docs = select(binaries, descriptions, args.min_docs)
    posts = stratified_split(docs, args.train_fraction, args.seed)
    database = [[p.label] for p in posts if p.split == "train"]
    queries = [[p.label] for p in posts if p.split == "test"]
    sizes = Counter(p.label for p in posts)
    db_sizes = Counter(label for (label,) in database)
    chance = chance_precision(database, queries)
    print(f"{len(binaries)} binaries, {len(descriptions)} English descriptions -> {len(posts)} documents")
    print(f"{len(database)} database, {len(queries)} queries, {len(sizes)} sections; chance P@100 {chance:.4f}")
    for section, n in sizes.most_common():
        print(f"  {section:12s} {n:5d}  ({db_sizes[section]} in the database)")
    write_jsonl(posts, args.out / "debian.jsonl")
    stats = {
        "packages": str(args.packages),
        "packages_sha256": sha256_of(args.packages),
        "translations": str(translations),
        "translations_sha256": digest,
        "translations_check": check,
        "documents": len(posts),
        "database": len(database),
        "queries": len(queries),
        "sections": dict(sizes.most_common()),
        "database_sections": dict(db_sizes.most_common()),
        "chance_p@100": chance,
        "protocol": {"min_docs": args.min_docs, "train_fraction": args.train_fraction, "seed": args.seed},
    }
    (args.out / "debian-stats.json").write_text(json.dumps(stats, indent=1))
    if not args.no_embed:
        import torch

        # One thread by default: the machine is shared and two spinning threads slow each other down.
        torch.set_num_threads(args.threads)
        embed_posts(posts, args.out / "embeddings.npz")
    return 0


if __name__ == "__main__":
    sys.exit(main())
