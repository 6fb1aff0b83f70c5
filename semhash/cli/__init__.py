"""The ``semhash`` command line: parse the options, call a service, print what it returns.

Its face is :data:`app` (the typer app) and :func:`main` (the console script ``semhash``, and
``python -m semhash.cli``). Inside: :mod:`~semhash.cli.entry` (the app, usage errors, the entry point),
:mod:`~semhash.cli.fastpath` (``semhash query`` read without typer), :mod:`~semhash.cli.options` (shared
options), :mod:`~semhash.cli.render` (consoles, tables, JSON lines, hits), :mod:`~semhash.cli.exits`
(errors as exit codes), :mod:`~semhash.cli.progress` (what a long job shows), and one module per command
group. Importing it imports typer and the command declarations only: ``semhash --help`` stays instant.
"""

from semhash.cli.entry import app, main

__all__ = ["app", "main"]
