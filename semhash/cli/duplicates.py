"""``semhash dedup``: exact and near-duplicate documents in the index, or new files checked against it.

Options are checked here (usage errors before any work); :mod:`semhash.dedup` finds the pairs and
clusters, and this module prints them: a table, JSON lines, CSV, a histogram of candidate cosines,
or only the removable paths.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from semhash.cli.exits import exit_on_error
from semhash.cli.options import AddressOption, DbOption, DeviceOption, JsonOption, finite
from semhash.cli.render import display_path, emit_records, err, new_table, out, print_json
from semhash.types import format_location

if TYPE_CHECKING:
    from semhash.dedup import AgainstResult, DedupResult


@exit_on_error
def dedup_command(
    paths: list[Path] | None = typer.Argument(
        None, help="With --against: new files or folders to check against the index (never added to it)."
    ),
    against: bool = typer.Option(False, "--against", help="Report which documents under PATHS already exist."),
    db: Path = DbOption,
    radius: int = typer.Option(3, "--radius", help="Hamming radius of the candidate stage, in bits (0-8)."),
    threshold: float | None = typer.Option(
        None,
        "--threshold",
        callback=finite,
        # The library's DEFAULT_THRESHOLD, written out: importing semhash.dedup here would slow every command's
        # start (tests/test_dedup.py checks the two agree).
        help="Cosine of stored embeddings at or above which a candidate is a duplicate [default: 0.8].",
        show_default=False,
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
        callback=finite,
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
    # No SEMHASH_ENGINE fallback here: that variable sets where `index` embeds, and a dedup of a small index
    # would start a Ray session for it unasked.
    engine: str = typer.Option(
        "local",
        "--engine",
        help="Where the candidate cosines run: local (this process) or ray (Ray tasks, the same pairs; "
        'pip install -e ".[ray]"). Ray runs --neighbours auto and all.',
        show_default=True,
    ),
    address: str | None = AddressOption,
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=1,
        help="With --engine ray: CPUs of the local Ray start, or tasks at once on a cluster [default: its CPUs].",
    ),
    target: int | None = typer.Option(
        None,
        "--target",
        help="Choose the threshold that leaves this many documents (searched over the candidate pairs; "
        "replaces --threshold, which then only sets how low the search may go below 0.5).",
    ),
    keep_fraction: float | None = typer.Option(
        None, "--keep-fraction", callback=finite, help="Like --target, as a fraction of the indexed documents (0-1]."
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
        threshold=dedup.DEFAULT_THRESHOLD if threshold is None else threshold,
        cluster=cluster,
        keep=keep,
        number_veto=number_veto,
        neighbours=dedup.parse_neighbours(neighbours),
        min_overlap=min_overlap,
    )
    runs_on = dedup.DedupEngine(engine, address, workers)  # a bad engine: UsageError, before any work
    runs_on.check(options, against)  # Ray-only limits, and a missing Ray extra (one line, exit 1)
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
    result = dedup.dedup_index(db, options, runs_on)
    if result.stats.static_tier and threshold is None and not sizing:
        err().print(
            "note: this index uses the static tier (--model static), whose embeddings of unrelated long documents "
            f"reach the default --threshold {dedup.DEFAULT_THRESHOLD}; raise it for long documents (BENCHMARKS.md, "
            '"The static tier", measures it on 20 Newsgroups near-copies)',
            highlight=False,
            soft_wrap=True,
        )
    if result.stats.adapted_encoder:
        err().print(
            # No measured figures here (they go stale): the benchmark that measured the loss is named instead.
            "warning: this index embeds with an adapted encoder (`semhash train --adapt`), which reads only each "
            "document's first window: dedup finds fewer duplicates on it (BENCHMARKS.md measures it: dedup on an "
            "adapted index); for dedup, use an index built with the frozen encoder (not `semhash train --adapt`)",
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


def _print_clusters(result: DedupResult, as_json: bool, as_csv: bool) -> None:
    """The clusters: a table and a summary, or JSON lines / CSV with one row per duplicate."""
    from semhash.dedup import CandidateStage

    rows = [{"cluster": c.cluster, **asdict(d)} for c in result.clusters for d in c.duplicates]
    fields = ["cluster", "kept_id", "kept_location", "duplicate_id", "duplicate_location", "matched_id"]
    if emit_records(rows, as_json, as_csv, [*fields, "score", "reason", "overlap", "measure"]):
        return
    stats, options = result.stats, result.options
    if rows:
        table = new_table(show_lines=False)
        table.add_column("#", justify="right")
        table.add_column("kept", overflow="fold")
        table.add_column("duplicate", overflow="fold")
        table.add_column("score", justify="right")
        table.add_column("reason")
        for c in result.clusters:
            for k, d in enumerate(c.duplicates):
                kept = display_path(c.kept_location) if k == 0 else ""
                via = "" if d.matched_id == d.kept_id else f" (via id {d.matched_id})"
                if d.overlap is not None:
                    via = f" (shingle overlap {d.overlap:.2f})" + via
                table.add_row(
                    str(c.cluster) if k == 0 else "",
                    kept,
                    display_path(d.duplicate_location),
                    f"{d.score:.3f}",
                    d.reason + via,
                )
        out().print(table)
    exact = sum(d.reason == "exact" for d in result.duplicates)
    out().print(
        f"{stats.documents} documents: {len(result.clusters)} clusters, {len(rows)} duplicates "
        f"({exact} exact, {len(rows) - exact} near); {stats.candidates} candidate pairs from "
        f"{CandidateStage(stats.stage, stats.neighbours).describe(stats.radius, stats.largest_block)}, "
        f"threshold {options.threshold}, {options.cluster} clusters, keep {options.keep}; {stats.seconds:.1f} s"
        + ("" if stats.engine == "local" else f"; cosines on {stats.engine}"),
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


def _print_histogram(result: DedupResult, as_json: bool) -> None:
    """The cosines of the candidate pairs in bins: a table with bars, or one JSON line per bin."""
    bins = result.histogram()
    if as_json:
        for low, high, count in bins:
            print_json({"from": round(low, 3), "to": round(high, 3), "pairs": count})
        return
    from semhash.dedup import CandidateStage

    stats = result.stats
    stage = CandidateStage(stats.stage, stats.neighbours).describe(stats.radius, stats.largest_block)
    table = new_table(title=f"cosine of {result.stats.candidates} candidate pairs from {stage}")
    for column in ("cosine", "pairs", "pass at lower edge", ""):
        table.add_column(column, justify="left" if not column else "right")
    peak = max((c for _, _, c in bins), default=0) or 1
    for low, high, count in bins:
        bar = "#" * round(30 * count / peak)
        table.add_row(f"{low:.2f}-{high:.2f}", str(count), str(result.pairs_at(low)), bar)
    out().print(table)


def _print_against(result: AgainstResult, as_json: bool, as_csv: bool, list_only: bool) -> None:
    """New documents that already exist in the index: a table, JSON lines, CSV, or (``list_only``) their paths."""
    rows = [
        {"new_location": format_location(doc.path, doc.record), **asdict(m)}
        for doc, matches in zip(result.documents, result.matches, strict=True)
        for m in matches
    ]
    if list_only:
        for k in result.existing:
            print(format_location(result.documents[k].path, result.documents[k].record))
        return
    if emit_records(
        rows, as_json, as_csv, ["new_location", "id", "location", "score", "reason", "hamming", "overlap", "measure"]
    ):
        return
    if rows:
        table = new_table(show_lines=False)
        table.add_column("new document", overflow="fold")
        table.add_column("in the index", overflow="fold")
        table.add_column("score", justify="right")
        table.add_column("reason")
        for row in rows:
            table.add_row(
                display_path(row["new_location"]), display_path(row["location"]), f"{row['score']:.3f}", row["reason"]
            )
        out().print(table)
    out().print(
        f"{len(result.existing)} of {len(result.documents)} new documents already exist in the index "
        f"(radius {result.options.radius}, threshold {result.options.threshold}); nothing was added",
        highlight=False,
    )
