"""Where embedding runs: ``local`` (this process, :func:`semhash.ingest.embed_stage.embed_pending`) or ``ray``.

The Ray engine (:mod:`semhash.engine.ray_engine`) embeds on a Ray cluster, or on local Ray workers, and
streams the embeddings back into the same SQLite store; everything else about indexing (scan, content
hashes, removals, training, codes, faiss) stays in the driver. Ray is an optional dependency
(``pip install -e ".[ray]"``): this module imports it only when asked, and says how to install it when
it is missing. The engine sits just above :mod:`semhash.encoders` (layer 2.75): its workers load the
encoder that module chooses; it knows the store and the corpus reader, never the services above it.
"""

from __future__ import annotations

from types import ModuleType

from semhash.errors import EngineUnavailableError, UsageError

ENGINES = ("local", "ray")

#: How to get Ray, in every message that needs it.
RAY_INSTALL_HINT = 'pip install -e ".[ray]"'


def check_engine(engine: str, address: str | None = None, workers: int | None = None) -> str:
    """Validate the engine options before any work; returns the engine's name, lower-cased.

    Raises:
        UsageError: an unknown engine, ``--workers`` below 1, or a Ray-only option with ``--engine local``.
    """
    name = (engine or "local").strip().lower()
    if name not in ENGINES:
        raise UsageError(f"unknown --engine {engine!r}: choose one of {', '.join(ENGINES)}")
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be 1 or more, not {workers}")
    if name == "local" and (address is not None or workers is not None):
        raise UsageError("--address and --workers go with --engine ray: add --engine ray, or drop them")
    return name


def import_ray() -> ModuleType:
    """Import Ray (and Ray Data), or raise a one-line error that says how to install it.

    Raises:
        EngineUnavailableError: Ray or Ray Data is not installed.
    """
    try:
        import ray
        import ray.data  # Ray core without the [data] extra is not enough
    except ImportError as exc:
        raise EngineUnavailableError(
            f"--engine ray needs Ray, which is not installed ({exc.name or 'ray'} missing): {RAY_INSTALL_HINT}"
        ) from None
    return ray
