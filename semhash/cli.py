"""The ``semhash`` command: parse options, call a service, format what it returns.

Every :class:`~semhash.errors.SemhashError` becomes ``error: <message>`` on stderr and its exit code
(1, or 2 for usage errors) in :func:`_errors`, the one place that does it. Heavy modules (numpy, torch,
faiss, sentence-transformers) are imported inside commands, so ``semhash --help`` stays instant; rich
too, on first use, as ``--json`` output never needs it. A read-only command ends its process without the
interpreter's teardown once its output is out (:func:`main`).
"""

from __future__ import annotations

import errno
import functools
import json
import math
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import typer

from semhash.config import (
    DEFAULT_DB,
    DEFAULT_K,
    DEFAULT_LEXICAL_WEIGHT,
    DEFAULT_MAX_FILE_MB,
    DEFAULT_MODE,
    ENV_DB,
    ENV_DEVICE,
    ENV_ENGINE,
    ENV_MAX_FILE_MB,
    ENV_MODE,
    ENV_MODEL,
    ENV_RUNTIME,
)
from semhash.errors import SemhashError
from semhash.progress import progress_view
from semhash.types import IndexInfo, format_location, plural, skip_summary

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

app = typer.Typer(
    name="semhash",
    help="Semantic hashing search: index a folder, then query it, find near-duplicates and more.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


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


def _table(**options: Any) -> Table:
    """A rich table (rich imported on first use)."""
    from rich.table import Table

    return Table(**options)


F = TypeVar("F", bound=Callable[..., Any])


def _errors(fn: F) -> F:
    """Turn expected failures into one line and an exit code; Ctrl-C into exit 130."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SemhashError as exc:
            err().print(f"error: {exc}", markup=False, highlight=False)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err().print("interrupted: everything committed so far is kept; rerun the same command to resume")
            raise typer.Exit(130) from None

    return cast(F, wrapper)


def _finite(value: float | None) -> float | None:
    """Every float option's check: NaN and the infinities pass every comparison test wrongly, so refuse them."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


DbOption = typer.Option(DEFAULT_DB, "--db", envvar=ENV_DB, help="SQLite index file.", show_default=True)
DeviceOption = typer.Option(
    "auto", "--device", envvar=ENV_DEVICE, help="auto (CUDA when present), cpu or cuda.", show_default=True
)
JsonOption = typer.Option(False, "--json", help="Print JSON lines instead of a table.")
LexicalWeightOption = typer.Option(
    None,
    "--lexical-weight",
    min=0.0,
    callback=_finite,
    help="Weight of the words beside the embedding in the hashing model's input (0 = embedding only) "
    f"[default: {DEFAULT_LEXICAL_WEIGHT}].",
)

EpochsOption = typer.Option(
    None,
    "--epochs",
    min=1,
    help="Train the hashing model for exactly this many epochs "
    "[default: auto, max(60, enough epochs for 400 optimiser steps)].",
)


QuietOption = typer.Option(
    False, "--quiet", "-q", help="No progress output (the plan, bars or log lines); the summary stays."
)


@app.command("index")
@_errors
def index_command(
    paths: list[Path] | None = typer.Argument(
        None, help="Folders and files to index (folders are walked recursively); optional with --prune."
    ),
    db: Path = DbOption,
    model: str | None = typer.Option(
        None,
        "--model",
        envvar=ENV_MODEL,
        help="sentence-transformers name or local path [default: packaged all-MiniLM-L6-v2].",
    ),
    device: str = DeviceOption,
    bits: int | None = typer.Option(None, "--bits", help="Code length, a multiple of 8 (8-64) [default: 32]."),
    retrain: bool = typer.Option(False, "--retrain", help="Train the hashing model again on all stored embeddings."),
    epochs: int | None = EpochsOption,
    seed: int = typer.Option(0, "--seed", help="Seed of the hashing model's training."),
    lexical_weight: float | None = LexicalWeightOption,
    include: list[str] = typer.Option([], "--include", help="Only files matching this glob (repeatable)."),
    exclude: list[str] = typer.Option([], "--exclude", help="Skip files matching this glob (repeatable)."),
    text_field: str = typer.Option("text", "--text-field", help="Field holding the text in .json/.jsonl files."),
    text_column: str = typer.Option("text", "--text-column", help="Column holding the text in .csv files."),
    batch: int = typer.Option(64, "--batch", min=1, help="Documents embedded and committed together."),
    max_windows: int = typer.Option(
        0,
        "--max-windows",
        min=0,
        help="Most model windows embedded per long document, evenly spread over it (0 = no limit).",
    ),
    prune: bool = typer.Option(
        False, "--prune", help="Also remove documents whose files no longer exist, anywhere in the index."
    ),
    engine: str = typer.Option(
        "local",
        "--engine",
        envvar=ENV_ENGINE,
        help='Where embedding runs: local (this process) or ray (Ray workers; pip install -e ".[ray]").',
        show_default=True,
    ),
    address: str | None = typer.Option(
        None, "--address", help="With --engine ray: join this Ray cluster (e.g. ray://head:10001, or auto)."
    ),
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=1,
        help="With --engine ray: embedding actors [default: one per CPU, or per GPU, that Ray reports].",
    ),
    follow_symlinks: bool = typer.Option(
        False,
        "--follow-symlinks",
        help="Follow symlinks that lead outside the paths given (off: they are skipped and counted). "
        "Links inside them are always indexed once, under the real path.",
    ),
    max_file_mb: float = typer.Option(
        DEFAULT_MAX_FILE_MB,
        "--max-file-mb",
        envvar=ENV_MAX_FILE_MB,
        min=0,
        callback=_finite,
        help="Largest file read, in MiB; a larger one is skipped as too large.",
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="List skipped files, examples of those passed over, and non-UTF-8 encodings."
    ),
    quiet: bool = QuietOption,
    as_json: bool = JsonOption,
) -> None:
    """Index documents: embed what changed, train or apply the hashing model, update the faiss index.

    Every file under the paths given is indexed or counted in the summary with its reason.
    """
    from semhash.corpus import ReadOptions
    from semhash.errors import NoDocumentsError, UsageError
    from semhash.ingest import IndexOptions, index_paths

    if not paths and not prune:
        raise UsageError("give folders or files to index: semhash index PATH... (or --prune alone)")
    options = IndexOptions(
        model=model,
        device=device,
        bits=bits,
        retrain=retrain,
        batch_docs=batch,
        max_windows=max_windows,
        read=ReadOptions(
            include=include,
            exclude=exclude,
            text_field=text_field,
            text_column=text_column,
            follow_symlinks=follow_symlinks,
            max_file_bytes=int(max_file_mb * 2**20),
        ),
        epochs=epochs,
        seed=seed,
        lexical_weight=lexical_weight,
        prune=prune,
        engine=engine,
        address=address,
        workers=workers,
    )
    try:
        with progress_view(err(), quiet=quiet or as_json) as view:
            report = index_paths(
                db,
                [str(p) for p in paths or []],
                options,
                progress=view.update if view else None,
                on_plan=view.plan if view else None,
            )
    except NoDocumentsError as exc:
        if verbose:  # the reasons are what the user needs most when nothing could be read
            _print_skipped(exc.skipped, err(), exc.passed_over)
        raise
    if as_json:
        data = asdict(report)
        data["docs_per_second"] = report.docs_per_second
        print(json.dumps(data))
        return
    out().print(
        f"indexed {db}: {report.added} added, {report.updated} updated, {report.removed} removed, "
        f"{report.unchanged} unchanged; {report.total_documents} documents in the index",
        highlight=False,
    )
    if report.embedded:
        out().print(
            f"embedded {report.embedded} documents ({report.windows} model windows) in {report.embed_seconds:.1f} s",
            highlight=False,
        )
    if report.trained:
        stats = report.train_stats
        out().print(
            f"trained the hashing model in {report.train_seconds:.1f} s "
            f"(bit usage {stats.get('min_bit_usage', 0):.2f}-{stats.get('max_bit_usage', 0):.2f})",
            highlight=False,
        )
    if report.skipped_files or report.empty_documents or report.passed_over:
        listed = report.skipped_files or report.passed_over
        out().print(
            skip_summary(report.skipped_files, report.empty_documents, report.passed_over)
            + ("" if verbose or not listed else " (--verbose lists them)"),
            highlight=False,
            markup=False,
        )
        if verbose:
            _print_skipped(report.skipped_files, out(), report.passed_over)
    if report.file_notes:
        decoded = sum(1 for note in report.file_notes if note.kind == "encoding")
        cut = len(report.file_notes) - decoded
        parts = [f"{plural(decoded, 'file')} decoded from another encoding than UTF-8"] if decoded else []
        parts += [f"{plural(cut, 'file')} truncated (text over its cap)"] if cut else []
        out().print("; ".join(parts) + ("" if verbose else " (--verbose lists them)"), highlight=False)
        if verbose:
            for note in report.file_notes:
                what = f"decoded as {note.detail}" if note.kind == "encoding" else f"truncated at {note.detail} chars"
                out().print(f"  {note.path}: {what}", highlight=False, markup=False)
    if report.same_content_elsewhere:
        out().print(
            f"{report.same_content_elsewhere} new documents have the same content as documents under other "
            "paths whose files are gone: if you moved a folder, run `semhash index --prune`",
            highlight=False,
            markup=False,
        )
    if report.drift_warning:
        err().print(f"warning: {report.drift_warning}", highlight=False, markup=False)
    for warning in report.warnings:
        err().print(f"warning: {warning}", highlight=False, markup=False)
    out().print(f"done in {report.seconds:.1f} s ({report.docs_per_second:.1f} docs/s)", highlight=False)


def _print_skipped(skipped_files: list, console: Console, passed_over: list | None = None) -> None:
    for skipped in skipped_files:
        console.print(f"  {skipped.path}: {skipped.reason}", highlight=False, markup=False)
    for row in passed_over or []:
        console.print(f"  {row.count} {row.reason} {row.extension}, e.g. {row.example}", highlight=False, markup=False)


@app.command("remove")
@_errors
def remove_command(
    paths: list[Path] = typer.Argument(..., help="Files or folders whose documents leave the index (gone or not)."),
    db: Path = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """Remove the documents of files, or under folders, from the index (the files themselves are untouched)."""
    from semhash.ingest import remove_paths

    report = remove_paths(db, [str(p) for p in paths])
    if as_json:
        print(json.dumps(asdict(report)))
        return
    for path, count in report.paths.items():
        out().print(f"{path}: {count} documents removed", highlight=False, markup=False)
    out().print(f"{report.total_documents} documents left in {db}", highlight=False, markup=False)


def _print_hits(hits: list, as_json: bool) -> None:
    """A table of hits (copies folded into a hit counted beside its path; a weak best hit said after the rows),
    or one JSON line per hit (with ``weak``, the query's flag, on each)."""
    weak = getattr(hits, "weak", None)
    if as_json:
        for hit in hits:
            row = hit.to_dict()
            if weak is not None:
                row["weak"] = weak
            print(json.dumps(row))
        return
    if not hits:
        out().print("no match")
        return
    table = _table(show_lines=False)
    table.add_column("#", justify="right")
    table.add_column("bits", justify="right")
    table.add_column("cosine", justify="right")
    paths = [
        _display_path(hit.location) + (f" (+{len(hit.copies)} copies)" if getattr(hit, "copies", None) else "")
        for hit in hits
    ]
    table.add_column("path", overflow="fold", min_width=min(max(len(p) for p in paths), 60))
    table.add_column("snippet", no_wrap=True)
    room = max(20, out().width - max(len(p) for p in paths) - 30)
    for hit, path in zip(hits, paths, strict=True):
        cosine = "" if hit.cosine is None else f"{hit.cosine:.3f}"
        text = hit.snippet if len(hit.snippet) <= room else hit.snippet[: room - 1] + "…"
        table.add_row(str(hit.rank), str(hit.distance), cosine, path, text)
    out().print(table)
    if weak:
        floor = getattr(hits, "floor", None)
        best = getattr(hits, "best", None)
        below = f" (best cosine {best:.2f} < {floor:.2f})" if floor is not None and best is not None else ""
        out().print(f"no good match: the index probably holds no answer to this query{below}")


def _display_path(path: str) -> str:
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


KOption = typer.Option(DEFAULT_K, "-k", "--top", min=1, help="Number of results.")
RerankOption = typer.Option(
    True, "--rerank/--no-rerank", help="Re-order a pool of Hamming candidates by cosine of stored embeddings."
)
RadiusOption = typer.Option(None, "--radius", min=0, help="Every document within this many bits (ignores -k).")
PoolOption = typer.Option(
    None, "--pool", min=1, help="Hamming candidates to re-rank by cosine [default: grows with the index size]."
)
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
    help="Show each hit's passage nearest the query (its windows embedded now: slower) with offsets in --json.",
)
CollapseOption = typer.Option(
    True, "--collapse/--no-collapse", help="Fold hits with the same content into one row (+N copies)."
)
ExactOption = typer.Option(
    False, "--exact", help="Rank every stored embedding by cosine (no Hamming stage; for small indexes)."
)
RuntimeOption = typer.Option(
    None,
    "--runtime",
    envvar=ENV_RUNTIME,
    help="auto (the exported torch-free runtime <db>.runtime/ when present and fresh, else torch), onnx "
    "(demand it) or torch [default: auto].",
)


@app.command("query")
@_errors
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
        _print_hits(hits, as_json)
    _done_read_only()


@app.command("similar")
@_errors
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
        _print_hits(hits, as_json)
    _done_read_only()


@app.command("serve")
@_errors
def serve_command(
    db: Path = DbOption,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback unless --allow-remote)."),
    port: int = typer.Option(8765, "--port", min=1, max=65535, help="TCP port."),
    allow_remote: bool = typer.Option(
        False, "--allow-remote", help="Allow a non-loopback --host (the API has no authentication)."
    ),
    device: str = DeviceOption,
    runtime: str | None = RuntimeOption,
) -> None:
    """Serve a JSON API and a search page at http://HOST:PORT/ (models and faiss stay loaded)."""
    from semhash.encoders import resolve_runtime
    from semhash.serve import check_host, serve

    check_host(host, allow_remote)  # before loading anything
    serve(db, host=host, port=port, allow_remote=allow_remote, device=device, runtime=resolve_runtime(runtime))


@app.command("info")
@_errors
def info_command(db: Path = DbOption, as_json: bool = JsonOption) -> None:
    """Show what an index holds: documents, models, bits, bit usage, sizes."""
    from semhash.info import index_info

    info = index_info(db)
    if as_json:
        print(json.dumps(info.to_dict()))
        return
    usage = info.bit_usage
    balance = f"{min(usage):.2f}-{max(usage):.2f} (ideal 0.50)" if usage else "-"
    rows = [
        ("database", f"{info.db_path} ({_bytes(info.db_bytes)}, schema v{info.schema_version})"),
        ("documents", f"{info.documents} ({info.encoded} encoded)"),
        ("embedding model", f"{info.model_name} ({info.embedding_dim}-d)"),
        ("code", f"{info.bits} bits" if info.bits else "no model yet"),
        (
            "hashing input",
            f"embedding + {info.lexical_dim}-d lexical vector ({info.lexical_terms:,} terms)"
            if info.lexical_dim
            else "embedding only",
        ),
        ("trained", _trained(info)),
        ("bit usage (fraction on)", balance),
        (
            "faiss index",
            f"{info.index_path} ({_bytes(info.index_bytes)}, "
            + ("fresh)" if info.index_fresh else "stale: rebuilt on next query)"),
        ),
    ]
    table = _table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(key, value)
    out().print(table)


def _trained(info: IndexInfo) -> str:
    """``<date> on N documents, E epochs (rule); held-out teacher-bit agreement A`` (what is known of it)."""
    if not info.trained_at:
        return "-"
    text = f"{info.trained_at} on {info.trained_on} documents"
    if info.epochs is not None:
        text += f", {info.epochs} epochs" + (f" ({info.epochs_rule})" if info.epochs_rule else "")
    if info.val_agreement is not None:
        text += f"; held-out teacher-bit agreement {info.val_agreement:.3f}"
    return text


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


@app.command("outliers")
@_errors
def outliers_command(
    db: Path = DbOption,
    k: int = typer.Option(10, "-k", "--top", min=1, help="Number of documents."),
    min_z: float | None = typer.Option(
        None, "--min-z", callback=_finite, help="Instead of -k: every document whose robust z-score is at least this."
    ),
    score: str = typer.Option(
        "recon",
        "--score",
        help="recon: the hashing model's reconstruction error; knn: distance to the k-th nearest document; "
        "combined: mean robust z of both.",
    ),
    neighbours: int = typer.Option(10, "--neighbours", min=1, help="k of the kNN distance (its k-th neighbour)."),
    as_json: bool = JsonOption,
) -> None:
    """Documents unlike the rest: the ones the hashing autoencoder reconstructs worst (or --score knn/combined)."""
    from semhash.outliers import find_outliers

    found = find_outliers(db, k=k, min_z=min_z, score=score, neighbours=neighbours)
    if as_json:
        for item in found:
            print(json.dumps(asdict(item)))
        return
    table = _table()
    for column in ("#", "z", "error", "knn", "path", "snippet"):
        table.add_column(column, justify="right" if column in ("#", "z", "error", "knn") else "left")
    for item in found:
        table.add_row(
            str(item.rank),
            f"{item.z_score:.1f}",
            f"{item.recon_error:.3f}",
            "" if item.knn_distance is None else f"{item.knn_distance:.3f}",
            _display_path(item.location),
            item.snippet[:60],
        )
    out().print(table)


@app.command("train")
@_errors
def train_command(
    db: Path = DbOption,
    bits: int | None = typer.Option(None, "--bits", help="Code length, a multiple of 8 (8-64) [default: the index's]."),
    epochs: int | None = EpochsOption,
    seed: int = typer.Option(0, "--seed", help="Training seed."),
    lexical_weight: float | None = LexicalWeightOption,
    device: str = DeviceOption,
    adapt: bool = typer.Option(
        False,
        "--adapt",
        help="First adapt the encoder to the corpus (fine-tune its top layers with the hashing objective, no "
        "labels), re-embed every document with it and store it in the index; queries then embed with it. "
        "Slow on a CPU (see README); the frozen encoder stays the default.",
    ),
    adapt_docs: int | None = typer.Option(
        None, "--adapt-docs", min=2, help="Documents the adaptation trains on (a seeded sample) [default: 3000]."
    ),
    adapt_epochs: int | None = typer.Option(
        None, "--adapt-epochs", min=0, help="Epochs of the adaptation over its sample [default: 1]."
    ),
    quiet: bool = QuietOption,
    as_json: bool = JsonOption,
) -> None:
    """Retrain the hashing model on the stored embeddings (no re-embedding) and re-encode every document.

    With --adapt, the encoder is first adapted to the corpus and every document re-embedded with it.
    """
    from semhash.ingest import retrain_index

    adapt_config = None
    if adapt or adapt_docs is not None or adapt_epochs is not None:
        if not adapt:
            from semhash.errors import UsageError

            raise UsageError("--adapt-docs and --adapt-epochs tune --adapt: add --adapt")
        from semhash.adapt import AdaptConfig

        adapt_config = AdaptConfig(seed=seed)
        adapt_config.max_docs = adapt_docs if adapt_docs is not None else adapt_config.max_docs
        adapt_config.epochs = adapt_epochs if adapt_epochs is not None else adapt_config.epochs
    with progress_view(err(), quiet=quiet or as_json) as view:
        report = retrain_index(
            db, bits=bits, epochs=epochs, seed=seed, device=device, progress=view.update if view else None,
            lexical_weight=lexical_weight, adapt=adapt_config,
        )  # fmt: skip
    if as_json:
        print(json.dumps(asdict(report)))
        return
    if adapt_config is not None:
        adapted = report.adapt_stats
        out().print(
            f"adapted the encoder's top {adapt_config.layers} layers on {adapted.get('adapt_docs', 0):.0f} "
            f"documents ({adapted.get('adapt_steps', 0):.0f} steps) and re-embedded every document in "
            f"{report.adapt_seconds:.1f} s",
            highlight=False,
        )
    stats = report.train_stats
    rule = "auto" if stats.get("epochs_auto") else "--epochs"
    agreement = stats.get("val_agreement")
    out().print(
        f"trained on {report.total_documents} documents in {report.train_seconds:.1f} s "
        f"({stats.get('epochs', 0):.0f} epochs, {rule}"
        + (f"; held-out teacher-bit agreement {agreement:.3f}" if isinstance(agreement, float) else "")
        + f"), encoded {report.encoded} "
        f"(bit usage {stats.get('min_bit_usage', 0):.2f}-{stats.get('max_bit_usage', 0):.2f})",
        highlight=False,
    )
    for warning in report.warnings:
        err().print(f"warning: {warning}", highlight=False, markup=False)


runtime_app = typer.Typer(
    help="The exported torch-free query runtime (<db>.runtime/): build, inspect or clear it.",
    no_args_is_help=True,
)
app.add_typer(runtime_app, name="runtime")


@runtime_app.command("build")
@_errors
def runtime_build_command(db: Path = DbOption) -> None:
    """Export (or refresh) the query runtime for the index's models; the encoder export is cached per model."""
    from semhash.errors import SemhashError as Failed
    from semhash.runtime.folder import refresh_runtime
    from semhash.store import Store

    with Store.open(db) as store:
        report = refresh_runtime(store, export_encoder=True)
    if report.skipped and not report.written:
        raise Failed(f"no runtime written for {db}: {report.skipped}")
    if report.warning:
        raise Failed(report.warning)
    out().print(f"wrote {report.folder}: `semhash query` now runs without torch", highlight=False, markup=False)


@runtime_app.command("info")
@_errors
def runtime_info_command(db: Path = DbOption, as_json: bool = JsonOption) -> None:
    """Say where the runtime is, what it holds and whether queries use it."""
    from semhash.runtime.folder import runtime_info
    from semhash.store import Store

    with Store.open(db) as store:
        info = runtime_info(store)
    if as_json:
        print(json.dumps(info))
        return
    state = "fresh: queries use it" if info["fresh"] else f"not used ({info['reason']})"
    out().print(f"{info['folder']}: {state}", highlight=False, markup=False)
    if info.get("embedding_model"):
        hasher = info.get("hasher") or {}
        out().print(
            f"encoder {info['embedding_model']}, hashing model {hasher.get('id')}, {_bytes(int(info['bytes']))}",
            highlight=False,
            markup=False,
        )


@runtime_app.command("clear")
@_errors
def runtime_clear_command(db: Path = DbOption) -> None:
    """Delete the runtime folder (queries then use torch; `semhash runtime build` makes it again)."""
    from semhash.runtime.folder import clear_runtime

    removed = clear_runtime(db)
    out().print(f"{'removed' if removed else 'there was no'} {db}.runtime/", highlight=False, markup=False)


@app.command("dedup")
@_errors
def dedup_command(
    paths: list[Path] | None = typer.Argument(
        None, help="With --against: new files or folders to check against the index (never added to it)."
    ),
    against: bool = typer.Option(False, "--against", help="Report which documents under PATHS already exist."),
    db: Path = DbOption,
    radius: int = typer.Option(3, "--radius", help="Hamming radius of the candidate stage, in bits (0-8)."),
    threshold: float = typer.Option(
        0.8,
        "--threshold",
        callback=_finite,
        help="Cosine of stored embeddings at or above which a candidate is a duplicate.",
    ),
    cluster: str = typer.Option(
        "centre", "--cluster", help="centre: every member is similar to the kept one (no chaining); components."
    ),
    keep: str = typer.Option("first", "--keep", help="Kept per cluster: first, longest, shortest or newest."),
    number_veto: bool = typer.Option(
        False, "--number-veto", help="Reject near pairs whose texts each hold a number the other lacks."
    ),
    min_overlap: float = typer.Option(
        0.5,
        "--min-overlap",
        callback=_finite,
        help="A near pair with a text longer than one encoder window must also share this much of its word "
        "pairs (2-word shingles, Jaccard): copy, not topic. 0: the cosine alone (two short texts always are).",
    ),
    neighbours: str = typer.Option(
        "auto",
        "--neighbours",
        help="Candidate stage. auto: every pair's cosine up to 20,000 documents, above it the pairs above the "
        "threshold inside k-means cells of the embeddings; all: every pair; K: the codes plus K nearest "
        "embeddings (faiss); 0: the codes alone.",
    ),
    target: int | None = typer.Option(
        None,
        "--target",
        help="Choose the threshold that leaves this many documents (searched over the candidate pairs; "
        "replaces --threshold, which then only sets how low the search may go below 0.5).",
    ),
    keep_fraction: float | None = typer.Option(
        None, "--keep-fraction", callback=_finite, help="Like --target, as a fraction of the indexed documents (0-1]."
    ),
    histogram: bool = typer.Option(False, "--histogram", help="Show the cosines of candidate pairs instead."),
    list_duplicates: bool = typer.Option(
        False, "--list-duplicates", help="Print only the paths that could be removed, one per line."
    ),
    write_unique: Path | None = typer.Option(
        None, "--write-unique", help="Copy one document per cluster and every unique one into this new folder."
    ),
    device: str = DeviceOption,
    as_json: bool = JsonOption,
    as_csv: bool = typer.Option(False, "--csv", help="Print CSV (a header, then one row per duplicate)."),
) -> None:
    """Find exact and near-duplicate documents in the index (from stored codes; no model is loaded)."""
    from semhash import dedup
    from semhash.errors import UsageError

    if as_json and as_csv:
        raise UsageError("give --json or --csv, not both")
    if against != bool(paths):
        raise UsageError("check new files with: semhash dedup PATH... --against (PATHS need --against, and back)")
    options = dedup.DedupOptions(  # out-of-range values raise UsageError here
        radius=radius,
        threshold=threshold,
        cluster=cluster,
        keep=keep,
        number_veto=number_veto,
        neighbours=dedup.parse_neighbours(neighbours),
        min_overlap=min_overlap,
    )
    if write_unique is not None:
        if against:
            raise UsageError("--write-unique works on the index itself, not with --against")
        dedup.check_new_folder(write_unique)
    if against and options.neighbours not in ("auto", 0):  # new files are matched through their codes
        raise UsageError("--neighbours works on the index itself, not with --against")
    sizing = target is not None or keep_fraction is not None
    if sizing:
        _check_sizing(target, keep_fraction, against, histogram)
    if against:
        _print_against(dedup.find_existing(db, paths or [], options, device=device), as_json, as_csv, list_duplicates)
        return
    result = dedup.dedup_index(db, options)
    if result.stats.adapted_encoder:
        err().print(
            "warning: this index embeds with an adapted encoder (`semhash train --adapt`), which reads only each "
            "document's first window: dedup finds fewer duplicates on it (F1 0.75 against 0.85 on the 20 Newsgroups "
            "near-duplicate benchmark); for dedup, index with the frozen encoder",
            highlight=False,
            markup=False,
        )
    note = result.stats.unverified_note()
    if note:  # never a silent shortfall: on stderr in every mode; with --json as JSON, with the run's stats
        err().print(
            json.dumps({"warning": note, "stats": result.stats.to_dict()}) if as_json else f"warning: {note}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    if sizing:
        wanted = target if target is not None else max(1, round((keep_fraction or 0.0) * result.stats.documents))
        result = result.to_size(wanted)
        (err() if as_json or as_csv or list_duplicates else out()).print(
            f"threshold chosen: {result.options.threshold:.4f} ({result.kept_count} of "
            f"{result.stats.documents} documents kept, target {wanted})",
            highlight=False,
            markup=False,
        )
    if histogram:
        _print_histogram(result, as_json)
    elif list_duplicates:
        for pair in result.duplicates:
            print(pair.duplicate_location)
    else:
        _print_clusters(result, as_json, as_csv)
    if write_unique is not None:
        summary = dedup.write_unique(result, db, write_unique)
        (err() if as_json or as_csv or list_duplicates else out()).print(
            summary.describe(write_unique), highlight=False, markup=False
        )


def _check_sizing(target: int | None, keep_fraction: float | None, against: bool, histogram: bool) -> None:
    """``--target`` / ``--keep-fraction``: one of them, in range, and not with --against or --histogram."""
    from semhash.errors import UsageError

    if target is not None and keep_fraction is not None:
        raise UsageError("give --target or --keep-fraction, not both")
    if against or histogram:
        raise UsageError("--target and --keep-fraction size the index's own dedup: not with --against or --histogram")
    if target is not None and target < 1:
        raise UsageError(f"--target must be at least 1 document, not {target}")
    if keep_fraction is not None and not 0.0 < keep_fraction <= 1.0:
        raise UsageError(f"--keep-fraction must be in (0, 1], not {keep_fraction}")


def _emit_records(rows: list[dict[str, Any]], as_json: bool, as_csv: bool, fields: list[str]) -> bool:
    """Print ``rows`` as JSON lines or CSV (with ``fields`` as header) if asked; True when printed."""
    if as_json:
        for row in rows:
            print(json.dumps(row))
        return True
    if as_csv:
        import csv
        import sys

        writer = csv.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return True
    return False


def _print_clusters(result: Any, as_json: bool, as_csv: bool) -> None:
    from semhash.dedup import CandidateStage

    rows = [{"cluster": c.cluster, **asdict(d)} for c in result.clusters for d in c.duplicates]
    fields = ["cluster", "kept_id", "kept_location", "duplicate_id", "duplicate_location", "matched_id"]
    if _emit_records(rows, as_json, as_csv, [*fields, "score", "reason", "overlap", "measure"]):
        return
    stats, options = result.stats, result.options
    if rows:
        table = _table(show_lines=False)
        table.add_column("#", justify="right")
        table.add_column("kept", overflow="fold")
        table.add_column("duplicate", overflow="fold")
        table.add_column("score", justify="right")
        table.add_column("reason")
        for c in result.clusters:
            for k, d in enumerate(c.duplicates):
                kept = _display_path(c.kept_location) if k == 0 else ""
                via = "" if d.matched_id == d.kept_id else f" (via id {d.matched_id})"
                if d.overlap is not None:
                    via = f" (shingle overlap {d.overlap:.2f})" + via
                table.add_row(
                    str(c.cluster) if k == 0 else "",
                    kept,
                    _display_path(d.duplicate_location),
                    f"{d.score:.3f}",
                    d.reason + via,
                )
        out().print(table)
    exact = sum(d.reason == "exact" for d in result.duplicates)
    out().print(
        f"{stats.documents} documents: {len(result.clusters)} clusters, {len(rows)} duplicates "
        f"({exact} exact, {len(rows) - exact} near); {stats.candidates} candidate pairs from "
        f"{CandidateStage(stats.stage, stats.neighbours).describe(stats.radius, stats.largest_block)}, "
        f"threshold {options.threshold}, {options.cluster} clusters, keep {options.keep}; {stats.seconds:.1f} s",
        highlight=False,
    )
    if result.overlap_rejected:
        out().print(
            f"{result.overlap_rejected} pairs at or above the threshold were not taken: a long text, and word-shingle "
            f"overlap below {options.min_overlap} (the same topic, not a copy; --min-overlap 0 takes them)",
            highlight=False,
        )
    if rows:
        out().print("--histogram shows candidate similarities; rerun with --threshold T to change (it is cheap)")


def _print_histogram(result: Any, as_json: bool) -> None:
    bins = result.histogram()
    if as_json:
        for low, high, count in bins:
            print(json.dumps({"from": round(low, 3), "to": round(high, 3), "pairs": count}))
        return
    from semhash.dedup import CandidateStage

    stats = result.stats
    stage = CandidateStage(stats.stage, stats.neighbours).describe(stats.radius, stats.largest_block)
    table = _table(title=f"cosine of {result.stats.candidates} candidate pairs from {stage}")
    for column in ("cosine", "pairs", "pass at lower edge", ""):
        table.add_column(column, justify="left" if not column else "right")
    peak = max((c for _, _, c in bins), default=0) or 1
    for low, high, count in bins:
        bar = "#" * round(30 * count / peak)
        table.add_row(f"{low:.2f}-{high:.2f}", str(count), str(result.pairs_at(low)), bar)
    out().print(table)


def _print_against(result: Any, as_json: bool, as_csv: bool, list_only: bool) -> None:
    rows = [
        {"new_location": format_location(doc.path, doc.record), **asdict(m)}
        for doc, matches in zip(result.documents, result.matches, strict=True)
        for m in matches
    ]
    if list_only:
        for k in result.existing:
            print(format_location(result.documents[k].path, result.documents[k].record))
        return
    if _emit_records(
        rows, as_json, as_csv, ["new_location", "id", "location", "score", "reason", "hamming", "overlap", "measure"]
    ):
        return
    if rows:
        table = _table(show_lines=False)
        table.add_column("new document", overflow="fold")
        table.add_column("in the index", overflow="fold")
        table.add_column("score", justify="right")
        table.add_column("reason")
        for row in rows:
            table.add_row(
                _display_path(row["new_location"]), _display_path(row["location"]), f"{row['score']:.3f}", row["reason"]
            )
        out().print(table)
    out().print(
        f"{len(result.existing)} of {len(result.documents)} new documents already exist in the index "
        f"(radius {result.options.radius}, threshold {result.options.threshold}); nothing was added",
        highlight=False,
    )


@app.command("eval")
@_errors
def eval_command(
    data: Path = typer.Argument(..., help='Labelled JSONL: "text", "labels" (list) or "label", optional "split".'),
    bits: str = typer.Option("32", "--bits", help="Code lengths, comma-separated (e.g. 16,32,64)."),
    seeds: str = typer.Option("0", "--seeds", help="Training seeds, comma-separated (e.g. 0,1,2)."),
    k: str = typer.Option("100", "--k", help="Precision cut-offs, comma-separated."),
    no_map: bool = typer.Option(False, "--no-map", help="Skip mAP (a full sort per query)."),
    cache: Path | None = typer.Option(
        None, "--cache", help="Embedding cache (.npz) [default: ~/.cache/semhash/embeddings-<model>.npz]."
    ),
    model: str | None = typer.Option(None, "--model", envvar=ENV_MODEL, help="sentence-transformers model."),
    device: str = DeviceOption,
    as_json: bool = JsonOption,
) -> None:
    """Score semhash codes against float cosine, LSH, PCA-sign and ITQ (train = database, test = queries)."""
    from semhash.evaluate import evaluate

    report = evaluate(
        data,
        bits=bits,
        seeds=seeds,
        ks=k,
        with_map=not no_map,
        model=model,
        device=device,
        cache=cache,
        progress=None if as_json else (lambda line: err().print(line, highlight=False)),
    )
    if as_json:
        for score in report.scores:
            print(json.dumps(asdict(score)))
        return
    metrics = list(report.scores[0].metrics) if report.scores else []
    table = _table(title=f"{report.n_queries} queries against {report.n_database} documents, {report.n_labels} labels")
    table.add_column("method")
    table.add_column("bits", justify="right")
    for name in metrics:
        table.add_column(f"{name} (mean ± std)", justify="right")
    summaries = {name: report.summary(name) for name in metrics}
    for i, row in enumerate(summaries[metrics[0]] if metrics else []):
        cells = [f"{summaries[name][i].mean:.4f} ± {summaries[name][i].std:.4f}" for name in metrics]
        table.add_row(row.method, "-" if row.bits is None else str(row.bits), *cells)
    out().print(table)
    out().print(
        f"{report.split_note}; {report.cached} embeddings from cache, {report.embedded} embedded; "
        f"{report.dropped_empty} empty records dropped",
        highlight=False,
    )


#: Set by a read-only command that finished and closed what it opened: :func:`main` may skip the teardown.
_read_only_done = False


def _done_read_only() -> None:
    """Mark that the command wrote nothing and closed its database (see :func:`main`)."""
    global _read_only_done
    _read_only_done = True


def _run_quick(argv: list[str]) -> bool:
    """Run ``semhash query`` without typer's parsing when :func:`semhash.argv.parse` can read its line.

    Typer's pydantic-based parsing was ~0.07 s of CPU of a cold query; the command itself runs the same,
    with the same arguments (the tests compare both parses) and the same exit codes as under typer.

    Returns:
        whether the command ran (``False``: let typer parse the line).
    """
    if not argv or argv[0] != "query":
        return False
    from semhash.argv import parse

    kwargs = parse(query_command, argv[1:])
    if kwargs is None:
        return False
    try:
        query_command(**kwargs)
    except typer.Exit as exc:  # what _errors raises, with the exit code
        raise SystemExit(exc.exit_code) from None
    except EOFError:
        err().print("Aborted!", markup=False, highlight=False)
        raise SystemExit(1) from None
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        # As typer does: a reader that closed the pipe (`| head`) is no error; later flushes go nowhere.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise SystemExit(1) from None
    return True


def _run_app(argv: list[str]) -> int:
    """Run the typer app on ``argv``; returns the exit code.

    Usage errors (an unknown option, a bad value, a missing argument) are one line, like every other
    error: ``error: <what> (see `semhash CMD --help`)``, exit 2, instead of click's three-line box.
    """
    import importlib

    try:  # typer >= 0.22 carries its own copy of click; older typer uses click itself
        click = importlib.import_module("typer._click.exceptions")
    except ImportError:
        click = importlib.import_module("click.exceptions")
    try:
        result = app(args=argv, prog_name="semhash", standalone_mode=False)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "semhash"
        message = " ".join(exc.format_message().split())
        err().print(f"error: {message} (see `{where} --help`)", markup=False, highlight=False, soft_wrap=True)
        return exc.exit_code
    except click.ClickException as exc:
        err().print(f"error: {' '.join(exc.format_message().split())}", markup=False, highlight=False)
        return exc.exit_code
    except typer.Abort:
        err().print("Aborted!", markup=False, highlight=False)
        return 1
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        # As click does: a reader that closed the pipe (`| head`) is no error; later flushes go nowhere.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return result if isinstance(result, int) else 0


def main() -> None:
    """Entry point of the ``semhash`` command.

    After ``semhash query`` or ``semhash similar`` succeeded, the process ends with ``os._exit`` once
    stdout and stderr are flushed: the interpreter's teardown (freeing onnxruntime's session, faiss,
    numpy's and every module's objects) took ~0.1-0.2 s of a cold query and does nothing a finished
    read-only command needs. It is safe there because those commands changed no data (a cache they rebuilt,
    the faiss file or the rerank vectors, is renamed into place before they return) and closed their
    SQLite connections before returning (the ``with Searcher`` block), and no other thread runs; the only
    ``atexit`` handler of such a process, logging's, is called first. Every other command, and every
    failure, exits the ordinary way. ``semhash query`` skips typer's parsing when it can (:func:`_run_quick`).
    """
    try:
        if not _run_quick(sys.argv[1:]):
            code = _run_app(sys.argv[1:])
            if code:
                raise SystemExit(code)
    except SystemExit as exc:
        if not _read_only_done or not (exc.code is None or isinstance(exc.code, int)):
            raise
        code = exc.code or 0
    else:
        if not _read_only_done:
            return
        code = 0
    if threading.active_count() > 1:  # someone's thread may still be writing: let the interpreter join it
        raise SystemExit(code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # e.g. a closed pipe: let the ordinary exit report it as it always has
        raise SystemExit(code) from None
    if "logging" in sys.modules:
        sys.modules["logging"].shutdown()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
