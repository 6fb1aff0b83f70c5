"""How a command ends: an expected failure as one line and an exit code, and a read-only command's mark.

Every :class:`~semhash.errors.SemhashError` becomes ``error: <message>`` on stderr and its exit code
(1, or 2 for usage errors) in :func:`exit_on_error`, the one place that does it; Ctrl-C becomes exit 130.
A read-only command that finished and closed what it opened says so with :func:`mark_read_only_done`,
and :func:`semhash.cli.entry.main` may then end the process without the interpreter's teardown.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer

from semhash.cli.render import err
from semhash.errors import SemhashError

P = ParamSpec("P")
R = TypeVar("R")

#: Set by a read-only command that finished and closed what it opened: ``main`` may skip the teardown.
_read_only_done = False


def exit_on_error(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap a command: expected failures into one line and an exit code; Ctrl-C into exit 130."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except SemhashError as exc:
            err().print(f"error: {exc}", markup=False, highlight=False)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err().print("interrupted: everything committed so far is kept; rerun the same command to resume")
            raise typer.Exit(130) from None

    return wrapper


def mark_read_only_done() -> None:
    """Mark that the command wrote nothing and closed its database (see :func:`semhash.cli.entry.main`)."""
    global _read_only_done
    _read_only_done = True


def read_only_done() -> bool:
    """Whether a read-only command marked itself done in this process."""
    return _read_only_done
