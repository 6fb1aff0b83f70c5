"""What a browser gets from ``semhash serve`` besides JSON: the search page, a document's page, and paths.

Pages (HTML): ``/`` (the search page, :mod:`semhash.static`), ``/documents/{id}`` (one stored document: its
text, HTML-escaped, its record number, and its pages when the row has page boundaries), ``/favicon.ico``;
only the page's own static files are served (:data:`STATIC_FILES`), under a content security policy
(:data:`PAGE_CSP`) that allows nothing inline or from elsewhere.

Paths are shown relative to the indexed folder, taken as the deepest folder holding every stored path
(:func:`display_root`): the longest common prefix of all paths is the common prefix of the smallest and the
largest (SQLite answers both from the ``(path, record)`` index), cut back to a folder. No record of the
``semhash index`` roots is needed, so it works on every existing index and follows documents as they are
added and removed; indexing two folders shows paths relative to their common parent. Query and neighbour
responses carry it as ``root`` beside the hits, whose ``path`` and ``location`` stay full, as in ``--json``.
"""

from __future__ import annotations

import html
import json
from importlib import resources

from semhash.store import Store, StoredDocument

STATIC = resources.files("semhash") / "static"
#: The pages' own policy: their scripts, styles and icon come from this server, nothing inline or elsewhere.
PAGE_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
PAGE_CSP += "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
#: The page's own static files, by exact name, and their media types: nothing else on disk is reachable.
STATIC_FILES = {"app.js": "text/javascript", "style.css": "text/css", "favicon.svg": "image/svg+xml"}


def display_root(store: Store) -> str:
    """The deepest folder holding every stored path, with its trailing separator (``""`` when there is none).

    The longest common prefix of a set of strings is the common prefix of its smallest and largest
    member, so two index lookups answer it; the prefix is then cut back to its last separator. (Two
    statements: SQLite answers a lone ``min()`` or ``max()`` from the ``(path, record)`` index, but scans
    the table for both in one.)
    """
    low, high = (store.db.execute(f"SELECT {f}(path) FROM documents").fetchone()[0] for f in ("min", "max"))
    if not low or not high:
        return ""
    size = 0
    for a, b in zip(low, high, strict=False):
        if a != b:
            break
        size += 1
    prefix = low[:size]
    cut = max(prefix.rfind("/"), prefix.rfind("\\"))
    return prefix[: cut + 1] if cut > 0 else ""


def relative(path: str, root: str) -> str:
    """``path`` without the ``root`` folder (as :func:`display_root` gives it), or whole when outside it."""
    return path[len(root) :] if root and path.startswith(root) and len(path) > len(root) else path


def page_boundaries(store: Store, doc: StoredDocument) -> list[tuple[int, int]]:
    """``(char_offset, page)`` boundaries of a document, sorted, when its row has them, else ``[]``.

    Read from the document's ``locations`` (a nullable JSON column of boundaries that a PDF reader
    fills) when the store has one; anything unreadable there means no pages, never an error.
    """
    value = getattr(doc, "locations", None)
    if value is None:
        columns = {row[1] for row in store.db.execute("PRAGMA table_info(documents)").fetchall()}
        if "locations" not in columns:
            return []
        row = store.db.execute("SELECT locations FROM documents WHERE id = ?", [doc.id]).fetchone()
        value = row[0] if row else None
    try:
        items = json.loads(value) if isinstance(value, str | bytes) else value
        pairs = []
        for item in items or []:
            if isinstance(item, dict):
                offset, page = item.get("char_offset", item.get("offset")), item.get("page")
            else:
                offset, page = item
            if type(offset) is not int or type(page) is not int:
                return []
            pairs.append((offset, page))
    except (TypeError, ValueError):
        return []
    return sorted(p for p in pairs if 0 <= p[0] <= len(doc.text))


def document_page(doc: StoredDocument, root: str, pages: list[tuple[int, int]]) -> str:
    """The HTML page of one stored document: every piece of it HTML-escaped, no script."""
    e = html.escape
    shown = relative(doc.location, root)
    facts = [f"record {doc.record} of the file"] if doc.record else []
    sections: list[tuple[int | None, str]] = []
    if pages:
        if pages[0][0] > 0:
            sections.append((None, doc.text[: pages[0][0]]))
        ends = [offset for offset, _ in pages[1:]] + [len(doc.text)]
        sections += [(page, doc.text[offset:end]) for (offset, page), end in zip(pages, ends, strict=True)]
        first, last = pages[0][1], pages[-1][1]
        facts.append(f"page {first}" if first == last else f"pages {first}–{last}")
    else:
        sections.append((None, doc.text))
    facts += [f"{len(doc.text):,} characters", f"id {doc.id}"]
    body = "".join(
        (f'<section id="page-{page}"><h3>page {page}</h3>' if page is not None else "<section>")
        + f'<pre class="doc-text">{e(text)}</pre></section>'
        for page, text in sections
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(shown)} · semhash</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/style.css">
</head>
<body>
<header><h1><a href="/">semhash</a></h1></header>
<main class="document">
<h2 class="doc-path" title="{e(doc.location)}">{e(shown)}</h2>
<p class="doc-meta">{e(" · ".join(facts))} · <a href="/#similar/{doc.id}">more like this</a> · <a href="/api/documents/{doc.id}">JSON</a></p>
{body}
</main>
</body>
</html>
"""  # noqa: E501
