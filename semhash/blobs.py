"""Reading an untrusted weights blob from the database: the one safe reader for every stored model.

The hashing model (:mod:`semhash.model`) and the adapted encoder (:mod:`semhash.adapted`) are stored in
SQLite as torch's zip format holding tensors and JSON strings only. A database may come from anywhere, so a
blob is untrusted: it is loaded with ``weights_only=True`` (no pickled code runs), must be a dict whose
``key`` entry is a JSON string, and whatever is wrong with it (not torch's format, truncated, pickled
objects, absurd fields) is one :class:`~semhash.errors.CorruptModelError` that says how to rebuild it,
never torch's own advice. Each model keeps its own field checks (``parse``); this module owns the rest.

torch is imported only when a blob is read (layer 1.5: beside the foundation, importable without torch).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import TypeVar

from semhash.errors import CorruptModelError

T = TypeVar("T")


def read_blob(blob: bytes | None, key: str, unreadable: str, what: str, parse: Callable[[dict, str], T]) -> T:
    """Load a stored blob safely and build its model with ``parse``; every failure is a ``CorruptModelError``.

    Args:
        blob: the stored bytes (``None`` or empty: nothing stored).
        key: the payload entry that must hold a JSON string (the model's configuration).
        unreadable: the user's message, with a ``{why}`` field for the reason.
        what: the reason given when the payload is not this kind of model (``"not a semhash model"``).
        parse: builds the model from the loaded payload (a dict) and its ``key`` string; it raises
            :class:`CorruptModelError` for what it refuses, and any other exception is reported as one.

    Raises:
        CorruptModelError: the blob is missing, not torch's tensor-only format, or refused by ``parse``.
    """
    try:
        if not blob:
            raise CorruptModelError(unreadable.format(why="no weights stored"))
        import torch

        payload = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or not isinstance(payload.get(key), str):
            raise CorruptModelError(unreadable.format(why=what))
        return parse(payload, payload[key])
    except CorruptModelError:
        raise
    except Exception as exc:  # any failure to read untrusted bytes means the same thing to the user
        raise CorruptModelError(unreadable.format(why=type(exc).__name__)) from exc
