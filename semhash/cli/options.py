"""The options several commands share, declared once: flag names, help, defaults and env-var fallbacks.

Precedence is the flag, then its ``SEMHASH_*`` variable (typer's ``envvar``), then the default. A
declaration here is a plain ``typer.Option`` value: :mod:`semhash.cli.fastpath` reads ``query``'s
declarations from its signature, so a new callback or type on a ``query`` option sends that command
line back to typer's own parsing (slower, same result). Options one command alone takes stay beside it.
"""

from __future__ import annotations

import math

import typer

from semhash.config import DEFAULT_DB, DEFAULT_K, DEFAULT_LEXICAL_WEIGHT, ENV_DB, ENV_DEVICE, ENV_RUNTIME


def finite(value: float | None) -> float | None:
    """Every float option's check: NaN and the infinities pass every comparison test wrongly, so refuse them.

    Raises:
        typer.BadParameter: ``value`` is NaN or infinite (a usage error, exit 2).
    """
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


DbOption = typer.Option(DEFAULT_DB, "--db", envvar=ENV_DB, help="SQLite index file.", show_default=True)
DeviceOption = typer.Option(
    "auto", "--device", envvar=ENV_DEVICE, help="auto (CUDA when present), cpu or cuda.", show_default=True
)
#: ``--address`` of the commands with ``--engine ray`` (``index``, ``dedup``).
AddressOption = typer.Option(
    None, "--address", help="With --engine ray: join this Ray cluster (e.g. ray://head:10001, or auto)."
)
JsonOption = typer.Option(False, "--json", help="Print JSON lines instead of a table.")
QuietOption = typer.Option(
    False, "--quiet", "-q", help="No progress output (the plan, bars or log lines); the summary stays."
)

# -- the hashing model's training (index, train) ----------------------------------------------------------
LexicalWeightOption = typer.Option(
    None,
    "--lexical-weight",
    min=0.0,
    callback=finite,
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

# -- searching (query, similar; --runtime also serve) -------------------------------------------------------
KOption = typer.Option(DEFAULT_K, "-k", "--top", min=1, help="Number of results.")
RerankOption = typer.Option(
    True, "--rerank/--no-rerank", help="Re-order a pool of Hamming candidates by cosine of stored embeddings."
)
RadiusOption = typer.Option(None, "--radius", min=0, help="Every document within this many bits (ignores -k).")
PoolOption = typer.Option(
    None, "--pool", min=1, help="Hamming candidates to re-rank by cosine [default: grows with the index size]."
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
