"""semhash: semantic hashing search for document collections.

Imports are lazy (``semhash --help`` must not pay for torch): ``from semhash import SemanticIndex``
loads only what it needs.

Importing the package first turns off the telemetry and network use of the libraries semhash loads later
(:func:`semhash.privacy.keep_local`), so every way in (the command, the server, the Python API) runs it
before onnxruntime, torch, transformers or Ray are imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from semhash.privacy import keep_local

keep_local()

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


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'semhash' has no attribute {name!r}")
