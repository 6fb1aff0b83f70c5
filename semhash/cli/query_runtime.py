"""``semhash runtime build|info|clear``: the exported torch-free query runtime (``<db>.runtime/``).

The group is its own typer app (:data:`runtime_app`), added to the ``semhash`` app as ``runtime``.
``build`` and ``info`` still open the :class:`~semhash.store.Store` themselves and call the codec's
runtime-folder functions: that lifecycle is being moved out of ``codec`` (issue 19), and a function of
the database path there (as ``clear_runtime`` is) would let these commands stay parse-call-print.
"""

from __future__ import annotations

from pathlib import Path

import typer

from semhash.cli.exits import exit_on_error
from semhash.cli.options import DbOption, JsonOption
from semhash.cli.render import human_bytes, out, print_json

runtime_app = typer.Typer(
    help="The exported torch-free query runtime (<db>.runtime/): build, inspect or clear it.",
    no_args_is_help=True,
)


@runtime_app.command("build")
@exit_on_error
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
@exit_on_error
def runtime_info_command(db: Path = DbOption, as_json: bool = JsonOption) -> None:
    """Say where the runtime is, what it holds and whether queries use it."""
    from semhash.runtime.folder import runtime_info
    from semhash.store import Store

    with Store.open(db) as store:
        info = runtime_info(store)
    if as_json:
        print_json(info)
        return
    state = "fresh: queries use it" if info["fresh"] else f"not used ({info['reason']})"
    out().print(f"{info['folder']}: {state}", highlight=False, markup=False)
    if info.get("embedding_model"):
        hasher = info.get("hasher") or {}
        out().print(
            f"encoder {info['embedding_model']}, hashing model {hasher.get('id')}, {human_bytes(int(info['bytes']))}",
            highlight=False,
            markup=False,
        )


@runtime_app.command("clear")
@exit_on_error
def runtime_clear_command(db: Path = DbOption) -> None:
    """Delete the runtime folder (queries then use torch; `semhash runtime build` makes it again)."""
    from semhash.runtime.folder import clear_runtime

    removed = clear_runtime(db)
    out().print(f"{'removed' if removed else 'there was no'} {db}.runtime/", highlight=False, markup=False)
