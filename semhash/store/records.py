"""The rows a store reads back: a document without its embedding, and the active hashing model.

Also the rule that tells a stored code from damage: an integer in the active model's range.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from semhash.types import format_location


@dataclass(frozen=True)
class StoredDocument:
    """A document row, without its embedding."""

    id: int
    path: str
    record: int
    text: str
    code: int | None
    recon_error: float | None
    mtime: float

    @property
    def location(self) -> str:
        """``path`` or ``path#record``."""
        return format_location(self.path, self.record)


@dataclass(frozen=True)
class StoredModel:
    """The active hashing model as stored in the ``models`` table (see the schema above).

    Attributes:
        id: its row id (``meta.model_id`` names the active one).
        created_at: ISO 8601 UTC time of its training.
        bits: code length.
        input_dim: embedding length it reads.
        config: the training config (JSON object; empty when unreadable).
        stats: the training statistics (JSON object; empty when unreadable).
        trained_on: documents it was trained on.
        weights: the serialised model (:func:`semhash.model.model_to_bytes`); ``None`` when lost.
    """

    id: int
    created_at: str
    bits: int
    input_dim: int
    config: dict
    stats: dict
    trained_on: int
    weights: bytes | None = field(default=None, repr=False)

    @property
    def checksum(self) -> str:
        """sha256 of the weights blob: ties an exported runtime's hasher to this very model."""
        return hashlib.sha256(self.weights or b"").hexdigest()


def code_range(bits: int | None) -> tuple[int, int]:
    """The integers a stored code may be: ``[0, 2**bits)``, or SQLite's whole int64 range for 64-bit codes."""
    if bits is None or bits >= 64:
        return -(1 << 63), (1 << 63) - 1
    return 0, (1 << bits) - 1


def is_code(value: object, bits: int | None) -> bool:
    """Whether a stored ``code`` value is one (an integer in range), not damage (text, blob, real, too large)."""
    low, high = code_range(bits)
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def json_object(value: object) -> dict:
    """``value`` parsed as a JSON object; ``{}`` when it is not one (damaged training history reads as empty)."""
    try:
        parsed = json.loads(value) if isinstance(value, str | bytes) else None
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
