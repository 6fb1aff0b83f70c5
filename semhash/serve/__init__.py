"""``semhash serve``: a JSON API and a search page over one index, with the models and faiss kept warm.

Three rooms: :mod:`~semhash.serve.app` (the FastAPI application: endpoints, validation, error answers),
:mod:`~semhash.serve.pages` (the HTML pages, static files, and paths shown relative to the indexed
folder) and :mod:`~semhash.serve.server` (the address check, thread settings, uvicorn). The reload
policy (a store generation change swaps the faiss index) is the :class:`~semhash.search.Searcher`'s.
The logger of every room is ``semhash.serve``.
"""

from semhash.serve.app import MAX_ID, MAX_K, MAX_QUERY_CHARS, create_app, json_response, server_timing
from semhash.serve.pages import display_root, document_page, page_boundaries, relative
from semhash.serve.server import DEFAULT_PORT, check_host, limit_blas_threads, serve

__all__ = [
    "DEFAULT_PORT",
    "MAX_ID",
    "MAX_K",
    "MAX_QUERY_CHARS",
    "check_host",
    "create_app",
    "display_root",
    "document_page",
    "json_response",
    "limit_blas_threads",
    "page_boundaries",
    "relative",
    "serve",
    "server_timing",
]
