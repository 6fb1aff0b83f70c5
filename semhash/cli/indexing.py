"""``semhash index`` and ``semhash remove``: what enters and leaves the index, and the report of a run.

Both call :mod:`semhash.ingest` and print its :class:`~semhash.types.IndexReport` (or the removal's
report): a summary on stdout, warnings on stderr, progress (:mod:`semhash.cli.progress`) on stderr.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from semhash.cli.exits import exit_on_error
from semhash.cli.options import (
    AddressOption,
    DbOption,
    DeviceOption,
    EpochsOption,
    JsonOption,
    LexicalWeightOption,
    QuietOption,
    finite,
)
from semhash.cli.progress import progress_view
from semhash.cli.render import err, out, print_json
from semhash.config import (
    AMX_PRECISION,
    DEFAULT_MAX_FILE_MB,
    DEFAULT_MAX_WINDOWS,
    DEFAULT_PRECISION,
    ENV_ENGINE,
    ENV_MAX_FILE_MB,
    ENV_MODEL,
    ENV_PRECISION,
)
from semhash.types import plural, skip_summary

if TYPE_CHECKING:
    from rich.console import Console

    from semhash.types import PassedOver, SkippedFile


@exit_on_error
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
    max_windows: int | None = typer.Option(
        None,
        "--max-windows",
        min=0,
        help="Most model windows embedded per long document, evenly spread over it (0 = no limit); "
        f"recorded in the index, which keeps it [default: {DEFAULT_MAX_WINDOWS} for a new index].",
        show_default=False,
    ),
    precision: str | None = typer.Option(
        None,
        "--precision",
        help="Encoder precision of a new index: fp32; int8 (quantised ONNX encoder: faster on a CPU, "
        "embeddings within cosine ~0.98); or bf16 (OpenVINO on a CPU's AMX units: fastest there, within "
        "cosine 0.9999). Recorded in the index; every later embedding uses it [default: the index's own; "
        f"for a new index ${ENV_PRECISION}, else {AMX_PRECISION} on a CPU with AMX and OpenVINO, "
        f"else {DEFAULT_PRECISION} on a CPU].",
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
    address: str | None = AddressOption,
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
        callback=finite,
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
        precision=precision,
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
        print_json(data)
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


def _print_skipped(
    skipped_files: Sequence[SkippedFile], console: Console, passed_over: Sequence[PassedOver] | None = None
) -> None:
    """One line per skipped file (its reason) and per kind of file passed over (count, reason, an example)."""
    for skipped in skipped_files:
        console.print(f"  {skipped.path}: {skipped.reason}", highlight=False, markup=False)
    for row in passed_over or []:
        console.print(f"  {row.count} {row.reason} {row.extension}, e.g. {row.example}", highlight=False, markup=False)


@exit_on_error
def remove_command(
    paths: list[Path] = typer.Argument(..., help="Files or folders whose documents leave the index (gone or not)."),
    db: Path = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """Remove the documents of files, or under folders, from the index (the files themselves are untouched)."""
    from semhash.ingest import remove_paths

    report = remove_paths(db, [str(p) for p in paths])
    if as_json:
        print_json(asdict(report))
        return
    for path, count in report.paths.items():
        out().print(f"{path}: {count} documents removed", highlight=False, markup=False)
    out().print(f"{report.total_documents} documents left in {db}", highlight=False, markup=False)
