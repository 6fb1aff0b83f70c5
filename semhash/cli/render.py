"""What the ``semhash`` command prints: the consoles, tables, JSON lines and CSV, and hits.

Only the CLI prints (services return dataclasses whose ``to_dict()`` the CLI, the server and the API
share). rich is imported on first use (~30 ms that ``--json`` output never needs): a console is made
by :func:`out` or :func:`err` when something is first printed through it, a table by :func:`new_table`.
What one command alone prints stays beside that command; this module holds what several share.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from semhash.types import Hit

if TYPE_CHECKING:
    from rich.box import Box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text


@functools.cache
def _console(stderr: bool) -> Console:
    """The rich ``Console`` for stdout or stderr, made on first use.

    rich is imported here (~30 ms that ``--json`` output never needs). A console writes to whatever
    ``sys.stdout``/``sys.stderr`` is at print time, so one per stream serves the whole process.
    """
    from rich.console import Console

    return Console(stderr=stderr, soft_wrap=True)


def out() -> Console:
    """The console on stdout (tables, summaries)."""
    return _console(False)


def err() -> Console:
    """The console on stderr (progress, warnings, errors)."""
    return _console(True)


class TableOptions(TypedDict, total=False):
    """The options of ``rich.table.Table`` the commands set (rich's defaults for the rest)."""

    title: str
    show_header: bool
    show_lines: bool
    box: Box | None


def new_table(**options: Unpack[TableOptions]) -> Table:
    """A rich table (rich imported on first use)."""
    from rich.table import Table

    return Table(**options)


def print_json(row: object) -> None:
    """One JSON line on stdout (``--json``)."""
    print(json.dumps(row))


def emit_records(rows: list[dict[str, Any]], as_json: bool, as_csv: bool, fields: list[str]) -> bool:
    """Print ``rows`` as JSON lines or CSV (with ``fields`` as header) if asked; True when printed."""
    if as_json:
        for row in rows:
            print_json(row)
        return True
    if as_csv:
        import csv

        writer = csv.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return True
    return False


def display_path(path: str) -> str:
    """A path as the user likely typed it: relative to the working folder when under it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def human_bytes(n: int) -> str:
    """``512 B``, ``1.5 KB``, ``3.2 MB``, ``1.1 GB`` (powers of 1024)."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _folded_note(hit: Hit) -> str:
    """What folded into a hit, for the table: `` (+2 copies)``, `` (+1 near-identical)``, both, or nothing."""
    near = sum(1 for entry in hit.folded if entry.overlap is not None)
    same = len(hit.copies) - near
    parts = ([f"+{same} copies"] if same else []) + ([f"+{near} near-identical"] if near else [])
    return f" ({', '.join(parts)})" if parts else ""


def snippet_cell(hit: Hit, room: int) -> Text:
    """A hit's snippet cut to ``room`` characters: its passage around the query's first word, those words in bold.

    A hit without a passage (a document indexed without window vectors) shows the opening of its text. The
    page (or slide) the passage starts on comes first, as ``p.N``. A ``Text``, so the document's own square
    brackets are never read as rich markup.
    """
    from rich.text import Text

    from semhash.search.snippets import fit

    passage = hit.passage or {}
    text = passage.get("text")
    if not isinstance(text, str):
        plain = hit.snippet if len(hit.snippet) <= room else hit.snippet[: room - 1] + "…"
        return Text(plain)
    page = passage.get("page")
    lead = f"p.{page} " if page is not None else ""
    marks = [(int(a), int(b)) for a, b in passage.get("highlights") or []]
    piece, inside = fit(text, marks, room - len(lead))
    cell = Text(lead, style="dim")
    cell.append(piece)
    for a, b in inside:
        cell.stylize("bold", len(lead) + a, len(lead) + b)
    return cell


def print_hits(hits: Sequence[Hit], as_json: bool) -> None:
    """A table of hits, or one JSON line per hit (with ``weak``, the query's flag, on each).

    In the table, copies folded into a hit are counted beside its path, and a weak best hit is said
    after the rows.

    Args:
        hits: a query's hits (:class:`~semhash.types.Hits` carries ``weak``, ``floor`` and ``best``).
        as_json: JSON lines instead of the table.
    """
    weak = getattr(hits, "weak", None)
    if as_json:
        for hit in hits:
            row = hit.to_dict()
            if weak is not None:
                row["weak"] = weak
            print_json(row)
        return
    if not hits:
        out().print("no match")
        return
    shown = new_table(show_lines=False)
    shown.add_column("#", justify="right")
    shown.add_column("bits", justify="right")
    shown.add_column("cosine", justify="right")
    paths = [display_path(hit.location) + _folded_note(hit) for hit in hits]
    shown.add_column("path", overflow="fold", min_width=min(max(len(p) for p in paths), 60))
    shown.add_column("snippet", no_wrap=True)
    room = max(20, out().width - max(len(p) for p in paths) - 30)
    for hit, path in zip(hits, paths, strict=True):
        cosine = "" if hit.cosine is None else f"{hit.cosine:.3f}"
        shown.add_row(str(hit.rank), str(hit.distance), cosine, path, snippet_cell(hit, room))
    out().print(shown)
    if weak:
        floor = getattr(hits, "floor", None)
        best = getattr(hits, "best", None)
        below = f" (best cosine {best:.2f} < {floor:.2f})" if floor is not None and best is not None else ""
        out().print(f"no good match: the index probably holds no answer to this query{below}")
