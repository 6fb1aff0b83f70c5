"""``semhash info`` and ``semhash outliers``: what an index holds, and the documents unlike the rest."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import typer

from semhash.cli.exits import exit_on_error
from semhash.cli.options import DbOption, JsonOption, finite
from semhash.cli.render import display_path, human_bytes, new_table, out, print_json
from semhash.config import STATIC_MODEL
from semhash.types import IndexInfo


@exit_on_error
def info_command(db: Path = DbOption, as_json: bool = JsonOption) -> None:
    """Show what an index holds: documents, models, bits, bit usage, sizes."""
    from semhash.info import index_info

    info = index_info(db)
    if as_json:
        print_json(info.to_dict())
        return
    usage = info.bit_usage
    balance = f"{min(usage):.2f}-{max(usage):.2f} (ideal 0.50)" if usage else "-"
    rows = [
        ("database", f"{info.db_path} ({human_bytes(info.db_bytes)}, schema v{info.schema_version})"),
        ("documents", f"{info.documents} ({info.encoded} encoded)"),
        ("passage windows", f"{info.windows:,} stored, for {info.documents_with_windows} of the documents"),
        ("embedding model", f"{info.model_name} ({info.embedding_dim}-d, {info.embedding_precision})"),
        ("windows per document", _windows(info.max_windows, info.model_name)),
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
            f"{info.index_path} ({human_bytes(info.index_bytes)}, "
            + ("fresh)" if info.index_fresh else "stale: rebuilt on next query)"),
        ),
    ]
    table = new_table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(key, value)
    out().print(table)


def _windows(cap: int | None, model_name: str | None = None) -> str:
    """The recorded window cap, as ``index --max-windows`` means it (the static tier has no windows)."""
    if model_name == STATIC_MODEL:
        return "none: the static tier reads the whole text"
    if cap is None:
        return "not recorded (an index from before the cap was recorded)"
    return "every window" if cap == 0 else f"at most {cap}, evenly spread"


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


@exit_on_error
def outliers_command(
    db: Path = DbOption,
    k: int = typer.Option(10, "-k", "--top", min=1, help="Number of documents."),
    min_z: float | None = typer.Option(
        None, "--min-z", callback=finite, help="Instead of -k: every document whose robust z-score is at least this."
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
            print_json(asdict(item))
        return
    table = new_table()
    for column in ("#", "z", "error", "knn", "path", "snippet"):
        table.add_column(column, justify="right" if column in ("#", "z", "error", "knn") else "left")
    for item in found:
        table.add_row(
            str(item.rank),
            f"{item.z_score:.1f}",
            f"{item.recon_error:.3f}",
            "" if item.knn_distance is None else f"{item.knn_distance:.3f}",
            display_path(item.location),
            item.snippet[:60],
        )
    out().print(table)
