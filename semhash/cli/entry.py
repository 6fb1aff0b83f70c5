"""The ``semhash`` program: the typer app with every command, one-line usage errors, and the entry point.

The commands live one group to a module (:mod:`~semhash.cli.indexing`, :mod:`~semhash.cli.query`,
:mod:`~semhash.cli.duplicates`, :mod:`~semhash.cli.inspection`, :mod:`~semhash.cli.training`,
:mod:`~semhash.cli.query_runtime`, :mod:`~semhash.cli.serving`) and are registered here, in the order
``semhash --help`` lists them. Heavy modules (numpy, torch, faiss, sentence-transformers) are imported
inside commands, so ``semhash --help`` stays instant; rich too, on first use, as ``--json`` output never
needs it. A read-only command ends its process without the interpreter's teardown once its output is
out (:func:`main`).
"""

from __future__ import annotations

import errno
import os
import sys
import threading

import typer

from semhash.cli.duplicates import dedup_command
from semhash.cli.exits import read_only_done
from semhash.cli.indexing import index_command, remove_command
from semhash.cli.inspection import info_command, outliers_command
from semhash.cli.query import query_command, similar_command
from semhash.cli.query_runtime import runtime_app
from semhash.cli.render import err
from semhash.cli.serving import serve_command
from semhash.cli.training import eval_command, train_command

app = typer.Typer(
    name="semhash",
    help="Semantic hashing search: index a folder, then query it, find near-duplicates and more.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.command("index")(index_command)
app.command("remove")(remove_command)
app.command("query")(query_command)
app.command("similar")(similar_command)
app.command("serve")(serve_command)
app.command("info")(info_command)
app.command("outliers")(outliers_command)
app.command("train")(train_command)
app.add_typer(runtime_app, name="runtime")
app.command("dedup")(dedup_command)
app.command("eval")(eval_command)


def run_app(argv: list[str]) -> int:
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
    failure, exits the ordinary way. ``semhash query`` skips typer's parsing when it can
    (:func:`~semhash.cli.fastpath.run_quick`).
    """
    from semhash.cli.fastpath import run_quick  # here, as only `semhash query` needs it

    try:
        if not run_quick(sys.argv[1:]):
            code = run_app(sys.argv[1:])
            if code:
                raise SystemExit(code)
    except SystemExit as exc:
        if not read_only_done() or not (exc.code is None or isinstance(exc.code, int)):
            raise
        code = exc.code or 0
    else:
        if not read_only_done():
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
