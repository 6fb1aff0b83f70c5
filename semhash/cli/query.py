"""``semhash query`` and ``semhash similar``: the documents nearest a text, a file or an indexed document.

Both open a :class:`~semhash.search.Searcher`, print its hits (:func:`semhash.cli.render.print_hits`),
close it and mark the process read-only-done (:mod:`semhash.cli.exits`). ``query``'s options stay plain
``typer.Option`` declarations: :mod:`semhash.cli.fastpath` reads them to parse a command line without typer.
"""

from __future__ import annotations

from pathlib import Path

import typer

from semhash.cli.exits import exit_on_error, mark_read_only_done
from semhash.cli.options import (
    DbOption,
    DeviceOption,
    ExactOption,
    JsonOption,
    KOption,
    PoolOption,
    RadiusOption,
    RerankOption,
    RuntimeOption,
)
from semhash.cli.render import print_hits
from semhash.config import DEFAULT_MODE, ENV_MODE

ModeOption = typer.Option(
    DEFAULT_MODE,
    "--mode",
    envvar=ENV_MODE,
    help='semantic (embeddings), keyword (SQLite FTS5, BM25; "phrases" and prefix* work) or hybrid (both, '
    "fused by reciprocal rank).",
)
PassagesOption = typer.Option(
    False,
    "--passages",
    help="Also find the passage of documents indexed without window vectors (their windows embedded now: slower).",
)
CollapseOption = typer.Option(
    True, "--collapse/--no-collapse", help="Fold copies and near-identical twins into one row (+N copies)."
)


@exit_on_error
def query_command(
    text: str | None = typer.Argument(None, help="Query text."),
    file: Path | None = typer.Option(None, "--file", help="Query with the content of this file instead."),
    db: Path = DbOption,
    k: int = KOption,
    rerank: bool = RerankOption,
    radius: int | None = RadiusOption,
    pool: int | None = PoolOption,
    exact: bool = ExactOption,
    mode: str = ModeOption,
    collapse: bool = CollapseOption,
    passages: bool = PassagesOption,
    device: str = DeviceOption,
    runtime: str | None = RuntimeOption,
    as_json: bool = JsonOption,
) -> None:
    """Find the documents most similar to a text (or to a file's content with --file)."""
    from semhash.errors import UsageError
    from semhash.search import QueryOptions, Searcher

    if (text is None) == (file is None):
        raise UsageError('give a query text or --file PATH, not both: semhash query "some text"')
    options = QueryOptions(
        k=k,
        rerank=rerank,
        radius=radius,
        device=device,
        pool=pool,
        exact=exact,
        mode=mode,
        collapse=collapse,
        passages=passages,
    )
    with Searcher(db, device=device, runtime=runtime, quick_start=True) as searcher:
        if text is not None:
            hits = searcher.query(text, options)
        else:
            assert file is not None  # exactly one of the two, checked above
            hits = searcher.query_file(file, options)
        print_hits(hits, as_json)
    mark_read_only_done()


@exit_on_error
def similar_command(
    path: Path = typer.Argument(..., help="An indexed document (its file path)."),
    record: int | None = typer.Option(None, "--record", help="Record number, for JSON/JSONL/CSV files."),
    db: Path = DbOption,
    k: int = KOption,
    rerank: bool = RerankOption,
    radius: int | None = RadiusOption,
    pool: int | None = PoolOption,
    exact: bool = ExactOption,
    runtime: str | None = RuntimeOption,
    as_json: bool = JsonOption,
) -> None:
    """Find the documents most similar to an indexed document (no re-embedding)."""
    from semhash.search import QueryOptions, Searcher

    with Searcher(db, runtime=runtime) as searcher:
        hits = searcher.similar(path, record, QueryOptions(k=k, rerank=rerank, radius=radius, pool=pool, exact=exact))
        print_hits(hits, as_json)
    mark_read_only_done()
