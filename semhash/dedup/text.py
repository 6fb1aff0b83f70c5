"""What "the same text" means for dedup: normalisation, its hash, and the number veto."""

from __future__ import annotations

import hashlib
import re

_WS = re.compile(r"\s+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def normalize_text(text: str) -> str:
    """Casefold and collapse whitespace: the form compared for exact duplicates."""
    return _WS.sub(" ", text.casefold()).strip()


def normalized_text_hash(text: str) -> int:
    """64-bit blake2b hash of :func:`normalize_text` (signed int64 range): equal for exact duplicates."""
    digest = hashlib.blake2b(normalize_text(text).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def numbers_conflict(a: str, b: str) -> bool:
    """True when each text holds a number the other lacks (commas in numbers ignored)."""
    na = {m.replace(",", "") for m in _NUMBER.findall(a)}
    nb = {m.replace(",", "") for m in _NUMBER.findall(b)}
    return bool(na - nb) and bool(nb - na)
