"""``semhash query``'s fast path: its command line read the way typer would read it, without typer.

Since typer 0.2x, every parameter is coerced through a pydantic ``TypeAdapter``: importing pydantic and
building the adapters of ``query``'s eleven options was ~0.06-0.08 s of CPU, a sixth of a cold query.
:func:`parse` reads a command line from the command's own typer declarations (its signature: option
names, defaults, environment variables, ``min``/``max``), for the plain cases only: ``str``, ``int``,
``bool`` flags and ``Path`` values, each option at most once. Anything else (``--help``, an unknown or
repeated option, a bad or out-of-range number, a missing value, ``--``, a declaration with a callback or
a path check...) returns ``None`` and typer parses the line as always, with its own messages. So the
options stay declared once, in :mod:`semhash.cli.query`, and a new option is parsed by typer until it is
a plain one; the tests compare :func:`parse` with typer's own parse of many command lines.
:func:`run_quick` runs ``semhash query`` on what :func:`parse` read, with typer's exit codes.
"""

from __future__ import annotations

import errno
import inspect
import os
import re
import sys
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typer.models import ParameterInfo

#: What each declaration attribute must be for :func:`parse` to read it (else typer reads the line).
_PLAIN = {
    "callback": None,
    "parser": None,
    "default_factory": None,
    "click_type": None,
    "is_eager": False,
    "expose_value": True,
    "clamp": False,
    "exists": False,
    "resolve_path": False,
    "writable": False,
    "path_type": None,
    "allow_dash": False,
    "prompt": False,
    "count": False,
    "is_flag": None,
    "flag_value": None,
}
_INT = re.compile(r"[+-]?\d+")


def _kind(annotation: object) -> type | None:
    """``str``, ``int``, ``bool`` or ``Path`` for a plain annotation (optional or not), else ``None``."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    base = args[0] if len(args) == 1 and type(None) in typing.get_args(annotation) else annotation
    return base if base in (str, int, bool, Path) else None


def _convert(kind: type, raw: str, info: ParameterInfo) -> tuple[bool, Any]:
    """``(True, value)`` as typer would coerce ``raw``, or ``(False, None)`` to leave it to typer."""
    if kind is int:
        if not _INT.fullmatch(raw):
            return False, None
        value = int(raw)
        if (info.min is not None and value < info.min) or (info.max is not None and value > info.max):
            return False, None
        return True, value
    if kind is Path:
        return (True, Path(raw)) if raw else (False, None)
    return True, raw


def parse(
    command: Callable[..., Any], args: Sequence[str], environ: Mapping[str, str] | None = None
) -> dict[str, Any] | None:
    """The keyword arguments typer would call ``command`` with for ``args``, or ``None`` to let typer parse.

    Args:
        command: a typer command function (its parameters' defaults are ``typer.Option``/``Argument``).
        args: the command line after the command's name.
        environ: the environment (default ``os.environ``), for options with an ``envvar``.
    """
    import typer.models

    env: Mapping[str, str] = os.environ if environ is None else environ
    hints = typing.get_type_hints(command)
    options: dict[str, tuple[str, type, Any, bool | None]] = {}  # flag -> (name, kind, info, flag value)
    positional: list[tuple[str, type, Any]] = []
    values: dict[str, Any] = {}
    for name, parameter in inspect.signature(command).parameters.items():
        info, kind = parameter.default, _kind(hints.get(name))
        if kind is None or not isinstance(info, typer.models.ParameterInfo):
            return None
        if any(getattr(info, key, plain) != plain for key, plain in _PLAIN.items()):
            return None
        if isinstance(info, typer.models.ArgumentInfo):
            positional.append((name, kind, info))
            continue
        decls = info.param_decls or ()
        if kind is bool:
            if len(decls) != 1 or not decls[0].startswith("--"):
                return None
            on, _, off = decls[0].partition("/")
            options[on] = (name, kind, info, True)
            if off:
                options[off] = (name, kind, info, False)
        else:
            options.update({decl: (name, kind, info, None) for decl in decls})
        if not decls or not all(d.startswith("-") for d in decls):
            return None
    given: dict[str, Any] = {}
    taken = 0
    tokens = list(args)
    while tokens:
        token = tokens.pop(0)
        if token == "--" or token == "-":
            return None
        if not token.startswith("-"):
            if taken >= len(positional):
                return None
            name, kind, info = positional[taken]
            ok, value = _convert(kind, token, info)
            if not ok:
                return None
            given[name] = value
            taken += 1
            continue
        flag, eq, attached = token.partition("=") if token.startswith("--") else (token, "", "")
        if flag not in options:
            if token.startswith("--") or flag[:2] not in options or len(flag) < 3:
                return None
            flag, attached, eq = flag[:2], flag[2:], "="  # -k5
        name, kind, info, flag_value = options[flag]
        if name in given:
            return None  # repeated: typer decides
        if kind is bool:
            if eq:
                return None
            given[name] = flag_value
            continue
        if not eq:
            if not tokens:
                return None
            attached = tokens.pop(0)
        ok, value = _convert(kind, attached, info)
        if not ok:
            return None
        given[name] = value
    for name, parameter in inspect.signature(command).parameters.items():
        info = parameter.default
        if name in given:
            values[name] = given[name]
            continue
        envvar = getattr(info, "envvar", None)
        if envvar is not None:
            if not isinstance(envvar, str):
                return None
            if envvar in env:
                raw = env[envvar]
                kind = _kind(hints.get(name))
                ok, value = _convert(kind, raw, info) if raw and kind is not None else (False, None)
                if not ok or kind is bool:
                    return None
                values[name] = value
                continue
        if info.default is ... or info.default is Ellipsis:
            return None
        default = info.default
        if default is not None and _kind(hints.get(name)) is Path and not isinstance(default, Path):
            default = Path(default)
        values[name] = default
    return values


def run_quick(argv: list[str]) -> bool:
    """Run ``semhash query`` without typer's parsing when :func:`parse` can read its line.

    Typer's pydantic-based parsing was ~0.07 s of CPU of a cold query; the command itself runs the same,
    with the same arguments (the tests compare both parses) and the same exit codes as under typer.

    Args:
        argv: the command line after the program's name.

    Returns:
        whether the command ran (``False``: let typer parse the line).

    Raises:
        SystemExit: the command failed, with typer's exit code.
    """
    if not argv or argv[0] != "query":
        return False
    import typer

    from semhash.cli.query import query_command
    from semhash.cli.render import err

    kwargs = parse(query_command, argv[1:])
    if kwargs is None:
        return False
    try:
        query_command(**kwargs)
    except typer.Exit as exc:  # what exit_on_error raises, with the exit code
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
