"""``semhash train`` and ``semhash eval``: the hashing model retrained on an index, and codes scored on labels.

``train`` retrains (optionally after adapting the encoder) through :func:`semhash.ingest.retrain_index`;
``eval`` trains codes on a labelled file and scores them against baselines (:mod:`semhash.evaluate`).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import typer

from semhash.cli.exits import exit_on_error
from semhash.cli.options import DbOption, DeviceOption, EpochsOption, JsonOption, LexicalWeightOption, QuietOption
from semhash.cli.progress import progress_view
from semhash.cli.render import err, new_table, out, print_json
from semhash.config import ENV_MODEL


@exit_on_error
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
        print_json(asdict(report))
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


@exit_on_error
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
            print_json(asdict(score))
        return
    metrics = list(report.scores[0].metrics) if report.scores else []
    title = f"{report.n_queries} queries against {report.n_database} documents, {report.n_labels} labels"
    table = new_table(title=title)
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
