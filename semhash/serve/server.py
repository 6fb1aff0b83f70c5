"""Running ``semhash serve``: who may connect, the process's thread settings, and uvicorn.

The server listens on 127.0.0.1 by default; any other address needs ``--allow-remote`` (there is no
authentication: anyone who can reach the port can read every stored text): :func:`check_host`.

Latency (issue 9): :func:`serve` gives numpy's BLAS one thread (:func:`limit_blas_threads`) and the ONNX
encoder does not spin (:data:`semhash.runtime.onnx_encoder.SPINNING`): on a shared 2-core machine, idle
worker threads busy-waiting for the next operation took the cores that the query itself, the event loop
and the neighbours needed.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from semhash.encoders import resolve_runtime
from semhash.errors import UsageError
from semhash.serve.app import create_app

DEFAULT_PORT = 8765


def check_host(host: str, allow_remote: bool) -> None:
    """Refuse a non-loopback address unless ``allow_remote`` (the API has no authentication).

    Raises:
        UsageError: ``host`` is not a loopback address and ``allow_remote`` is false.
    """
    if host == "localhost" or allow_remote:
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise UsageError(
            f"--host {host} would serve the index beyond this machine with no authentication: "
            "add --allow-remote if that is what you want"
        )


def limit_blas_threads() -> None:
    """Give numpy's BLAS (OpenBLAS) one thread in this process, for good: the server's own choice.

    A query's matrix products are small (one row through the hashing model, one rerank pool's dot
    products), too small to gain from a second thread, but OpenBLAS's pthread workers keep polling for
    the next job for a while after each call: on two cores that busy thread stole the CPU the query's
    embedding needed next (benchmarks/bench_serve.py: one query cost ~4x the CPU time, and the served p50
    was ~5x higher, under load). Called by :func:`serve` only; a library user's process keeps its own
    settings.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def serve(
    db_path: str | Path,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    allow_remote: bool = False,
    device: str = "auto",
    runtime: str | None = None,
) -> None:
    """Run the server until interrupted (uvicorn, one process; requests on its thread pool).

    The address is checked and the runtime choice read (``runtime``, else ``SEMHASH_RUNTIME``) before
    anything is loaded, so a bad value fails at once.

    Raises:
        UsageError: a non-loopback ``host`` without ``allow_remote``, or an unknown runtime.
    """
    import uvicorn

    check_host(host, allow_remote)
    runtime = resolve_runtime(runtime)
    limit_blas_threads()
    app = create_app(db_path, device=device, runtime=runtime)
    app.state.searcher.warm()  # the models and a large index's IVF stage now, not on the first request
    uvicorn.run(app, host=host, port=port, log_level="info")
