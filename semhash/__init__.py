"""semhash: semantic hashing search for document collections.

Imports are lazy (``semhash --help`` must not pay for torch): ``from semhash import SemanticIndex``
loads only what it needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Hit", "IndexReport", "SemanticIndex", "SemhashError"]

if TYPE_CHECKING:
    from semhash.api import SemanticIndex
    from semhash.errors import SemhashError
    from semhash.types import Hit, IndexReport

_LAZY = {
    "SemanticIndex": "semhash.api",
    "SemhashError": "semhash.errors",
    "Hit": "semhash.types",
    "IndexReport": "semhash.types",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'semhash' has no attribute {name!r}")
