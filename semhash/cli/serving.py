"""``semhash serve``: check the address, then hand over to :func:`semhash.serve.serve` (HTTP API and pages).

The runtime choice (``--runtime``, else ``SEMHASH_RUNTIME``) is read by :func:`~semhash.serve.serve` itself.
"""

from __future__ import annotations

from pathlib import Path

import typer

from semhash.cli.exits import exit_on_error
from semhash.cli.options import DbOption, DeviceOption, RuntimeOption


@exit_on_error
def serve_command(
    db: Path = DbOption,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback unless --allow-remote)."),
    port: int = typer.Option(8765, "--port", min=1, max=65535, help="TCP port."),
    allow_remote: bool = typer.Option(
        False, "--allow-remote", help="Allow a non-loopback --host (the API has no authentication)."
    ),
    device: str = DeviceOption,
    runtime: str | None = RuntimeOption,
) -> None:
    """Serve a JSON API and a search page at http://HOST:PORT/ (models and faiss stay loaded)."""
    from semhash.serve import check_host, serve

    check_host(host, allow_remote)  # before loading anything
    serve(db, host=host, port=port, allow_remote=allow_remote, device=device, runtime=runtime)
