r"""``semhash serve``'s application: the JSON API over one index, its error answers, and the pages' routes.

Endpoints (all JSON; the OpenAPI schema is at ``/openapi.json``, interactive docs at ``/docs``):

* ``GET/POST /api/query``: ``q`` (1 to :data:`MAX_QUERY_CHARS` characters), ``k`` (1 to :data:`MAX_K`),
  ``radius`` (0 to the code length; every document within it, ``k`` ignored), ``rerank`` (default true),
  ``pool`` and ``exact`` (as ``semhash query --pool/--exact``), ``mode`` (``semantic``, ``keyword`` or
  ``hybrid``, as ``--mode``) and ``collapse`` (default true: copies and near-identical twins fold into one
  hit, listed in its ``copies`` and, with why, ``folded``). Each hit carries ``passage``, the window of its
  text nearest the query, from the stored window vectors (offsets, page, cleaned ``text`` and the query
  words' ``highlights``; ``null`` for a document indexed without them), and ``passages=true`` embeds those
  documents' windows now (slower).
  The response carries ``weak``: true when no hit reaches the no-good-match floor.
* ``GET /api/similar/{id}``: the neighbours of a stored document, from its stored embedding (``k``, ``rerank``).
* ``POST /api/exists``: is this text already in the index? It is embedded and hashed like a query; stored
  documents within the dedup radius whose cosine reaches the threshold, and exact matches of the normalised
  text, are returned (:func:`semhash.dedup.match_against`, the path of ``semhash dedup --against``). The exact
  check reads every stored text, so it costs a scan of the database (fine to 10^5 documents).
* ``GET /api/documents/{id}``: a stored document: path, record, location, text, code.
* ``GET /api/health`` and ``GET /api/info`` (what ``semhash info`` shows).

A query's response carries a ``Server-Timing`` header: ``code`` (embedding and hashing the text, including
the wait for the embedding lock), ``search`` (candidates, rerank, rows) and ``json`` (the body), in ms.

Bad input (empty or oversized query, out-of-range ``k``/``radius``, unknown ids, ids beyond SQLite's 64-bit
rowids, text holding a lone surrogate such as ``"\ud800"`` in a JSON body) is answered with HTTP 4xx and
``{"error": "..."}``; the server keeps serving. Bytes in a query string that are not UTF-8 (``%FF``, or an
encoded surrogate ``%ED%A0%80``) are decoded as U+FFFD replacement characters, as Starlette parses every
query string and as browsers show such bytes: such a query is searched, not refused. A JSON body that is not
UTF-8 is refused (400). Anything unexpected (a bug) is answered by one guard (:class:`ErrorGuard`): HTTP 500
with ``{"error": "...", "id": "<8 hex digits>"}``, never a plain-text page, and the traceback is logged
(logger ``semhash.serve``) under the same id, so a user's report can be matched to it.

Concurrency: endpoints are plain functions, so FastAPI runs them on its worker thread pool. They share one
:class:`~semhash.search.Searcher`, whose policy applies: one SQLite connection per thread, the faiss index
swapped under a lock when the store's generation changes (so ``semhash index`` may run on the same database
while the server answers, and no query sees a removed document after the reload), query embedding
serialised. The server only reads the database.

Query results are serialised once, by ``json.dumps`` of their ``to_dict()``, into the response
(:func:`json_response`), not walked again by FastAPI's encoder. The pages and the paths' display root
come from :mod:`semhash.serve.pages`.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from semhash.config import DEFAULT_K, DEFAULT_MODE
from semhash.dedup import DEFAULT_RADIUS, DEFAULT_THRESHOLD, DedupOptions, match_against
from semhash.embed import Encoder
from semhash.errors import (
    DatabaseLockedError,
    DocumentNotFoundError,
    IndexMissingError,
    SemhashError,
    UsageError,
)
from semhash.info import index_info
from semhash.search import QueryOptions, Searcher
from semhash.serve.pages import PAGE_CSP, STATIC, STATIC_FILES, display_root, document_page, page_boundaries
from semhash.store import StoredDocument
from semhash.types import SourceDocument

#: Longest query text accepted (characters); the model reads at most a few hundred tokens per window anyway.
MAX_QUERY_CHARS = 20_000
#: Most results one request may ask for.
MAX_K = 1000
#: Largest document id: SQLite rowids are signed 64-bit integers.
MAX_ID = 2**63 - 1

log = logging.getLogger("semhash.serve")

DocId = Annotated[int, PathParam(ge=0, le=MAX_ID, description="A document id (a SQLite rowid).")]


class QueryRequest(BaseModel):
    """Body of ``POST /api/query``."""

    q: str = Field(description=f"Query text, 1 to {MAX_QUERY_CHARS} characters.")
    k: int = Field(DEFAULT_K, description=f"Number of results, 1 to {MAX_K}.")
    radius: int | None = Field(None, description="Every document within this many bits (k is then ignored).")
    rerank: bool = Field(True, description="Re-order a pool of Hamming candidates by cosine.")
    pool: int | None = Field(None, description="Hamming candidates to re-rank (default: grows with the index).")
    exact: bool = Field(False, description="Rank every stored embedding by cosine (small indexes).")
    mode: str = Field(DEFAULT_MODE, description="semantic, keyword (FTS5, BM25) or hybrid (both, rank-fused).")
    collapse: bool = Field(True, description="Fold copies and near-identical twins into one (copies, folded).")
    passages: bool = Field(
        False, description="Find the passage of hits without stored window vectors by embedding them now (slower)."
    )


class ExistsRequest(BaseModel):
    """Body of ``POST /api/exists``."""

    text: str = Field(description=f"The text to look for, 1 to {MAX_QUERY_CHARS} characters.")
    threshold: float = Field(DEFAULT_THRESHOLD, description="Cosine at or above which a stored document matches.")
    radius: int = Field(DEFAULT_RADIUS, description="Hamming radius of the candidate search, in bits.")


def json_response(payload: dict[str, Any], status_code: int = 200) -> JSONResponse:
    """``payload`` (already JSON-ready: results' ``to_dict()``) encoded once, as the response.

    Returning a :class:`JSONResponse` skips FastAPI's ``jsonable_encoder`` walk over the hits, which cost
    more than the ``json.dumps`` itself (~0.35 against ~0.05 ms for ten hits); the body is the same JSON.
    """
    return JSONResponse(payload, status_code=status_code)


def server_timing(**seconds: float) -> str:
    """A ``Server-Timing`` header value (milliseconds), e.g. ``code;dur=4.10, search;dur=3.25``.

    The standard header browsers' developer tools show; ``benchmarks/bench_serve.py`` reads it to split a
    request's latency into the server's stages and what lies outside them (HTTP, framework, client).
    """
    return ", ".join(f"{name};dur={value * 1000:.2f}" for name, value in seconds.items())


class ErrorGuard:
    """ASGI middleware: an exception no handler answered becomes a JSON 500 with an id, logged with its traceback.

    It sits inside Starlette's own last-resort middleware (which would answer a plain-text "Internal Server
    Error"), around the routes and the error handlers. The body names no internals (the exception's text
    may hold paths or stored text); the log does, under the same short random id. An exception after the
    response has started cannot be answered any more: it is logged and raised, and the connection drops.
    """

    def __init__(self, app: ASGIApp) -> None:
        """Guard ``app`` (the application inside this middleware)."""
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass an HTTP request through; answer (or log, once answering began) what escapes it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_watched)
        except Exception as exc:
            error_id = secrets.token_hex(4)
            log.error("internal error %s on %s %s", error_id, scope.get("method"), scope.get("path"), exc_info=exc)
            if started:
                raise
            body = {"error": f"internal server error (id {error_id}): the server's log has the details", "id": error_id}
            await JSONResponse(body, status_code=500)(scope, receive, send)


def _check_text(text: str, what: str) -> str:
    if len(text) > MAX_QUERY_CHARS:
        raise UsageError(f"the {what} has {len(text)} characters, more than the limit of {MAX_QUERY_CHARS}: shorten it")
    if not text.strip():
        raise UsageError(f"the {what} is empty: give some text")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate ("\ud800" in a JSON string): no encoder can read it
        raise UsageError(
            f"the {what} holds a lone surrogate (U+{ord(text[exc.start]):04X} at character {exc.start}), "
            "which is not text: send valid Unicode"
        ) from None
    return text


def _check_k(k: int) -> int:
    if not 1 <= k <= MAX_K:
        raise UsageError(f"k must be between 1 and {MAX_K}, not {k}")
    return k


def _status(exc: SemhashError) -> int:
    if isinstance(exc, UsageError):
        return 400
    if isinstance(exc, DocumentNotFoundError):
        return 404
    if isinstance(exc, IndexMissingError | DatabaseLockedError):
        return 503
    return 500


def create_app(
    db_path: str | Path, encoder: Encoder | None = None, device: str = "auto", runtime: str | None = None
) -> FastAPI:
    """The application serving the index at ``db_path`` (opened now, so a missing index fails early).

    Args:
        db_path: the SQLite index.
        encoder: an already loaded encoder (tests; later the exported runtime); default: the index's model.
        device: ``auto``, ``cpu`` or ``cuda`` for the default encoder.
        runtime: ``auto``, ``onnx`` or ``torch`` (see :mod:`semhash.encoders`; ``None``: ``SEMHASH_RUNTIME``).
    """
    searcher = Searcher(db_path, encoder=encoder, device=device, runtime=runtime)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        searcher.close()  # every worker thread's connection

    app = FastAPI(
        title="semhash",
        summary="Semantic hashing search over one index: 32-bit codes, Hamming search, cosine rerank.",
        version="1",
        lifespan=lifespan,
    )
    app.state.searcher = searcher
    app.add_middleware(ErrorGuard)

    @app.exception_handler(SemhashError)
    def semhash_error(request: Request, exc: SemhashError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=_status(exc))

    @app.exception_handler(RequestValidationError)
    def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p not in ('query', 'body', 'path'))}: {e.get('msg')}"
            for e in exc.errors()
        )
        return JSONResponse({"error": f"bad request: {problems}"}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    def run_query(
        q: str,
        k: int,
        radius: int | None,
        rerank: bool,
        pool: int | None = None,
        exact: bool = False,
        mode: str = DEFAULT_MODE,
        collapse: bool = True,
        passages: bool = False,
    ) -> JSONResponse:
        text = _check_text(q, "query")
        options = QueryOptions(
            k=_check_k(k), radius=radius, rerank=rerank, pool=pool, exact=exact, mode=mode, collapse=collapse
        )
        t0 = time.perf_counter()
        embedding, code = searcher.embed_and_code(text)  # as Searcher.query, with the stages timed apart
        t1 = time.perf_counter()
        hits = searcher.search_embedding(embedding, code, options, text=text)
        hits = searcher.passages(hits, text, embedding, reembed=passages)
        t2 = time.perf_counter()
        response = json_response(
            {
                "query": text,
                "mode": options.mode,
                "hits": [h.to_dict() for h in hits],
                "weak": hits.weak,
                "root": display_root(searcher.store),
            }
        )
        response.headers["Server-Timing"] = server_timing(code=t1 - t0, search=t2 - t1, json=time.perf_counter() - t2)
        return response

    # response_model keeps the schema in /openapi.json; the JSONResponse returned is sent as it is.
    @app.get("/api/query", summary="Documents most similar to a text", response_model=dict[str, Any])
    def query_get(
        q: str,
        k: int = DEFAULT_K,
        radius: int | None = None,
        rerank: bool = True,
        pool: int | None = None,
        exact: bool = False,
        mode: str = DEFAULT_MODE,
        collapse: bool = True,
        passages: bool = False,
    ) -> JSONResponse:
        return run_query(q, k, radius, rerank, pool, exact, mode, collapse, passages)

    @app.post("/api/query", summary="Documents most similar to a text (JSON body)", response_model=dict[str, Any])
    def query_post(body: QueryRequest) -> JSONResponse:
        return run_query(
            body.q, body.k, body.radius, body.rerank, body.pool, body.exact, body.mode, body.collapse, body.passages
        )

    @app.get("/api/similar/{doc_id}", summary="Neighbours of a stored document", response_model=dict[str, Any])
    def similar(doc_id: DocId, k: int = DEFAULT_K, rerank: bool = True) -> JSONResponse:
        hits = searcher.similar_id(doc_id, QueryOptions(k=_check_k(k), rerank=rerank))
        doc = searcher.store.documents([doc_id]).get(doc_id)
        location = doc.location if doc is not None else str(doc_id)
        root = display_root(searcher.store)
        return json_response({"id": doc_id, "location": location, "hits": [h.to_dict() for h in hits], "root": root})

    @app.post("/api/exists", summary="Is this text already in the index?", response_model=dict[str, Any])
    def exists(body: ExistsRequest) -> JSONResponse:
        text = _check_text(body.text, "text")
        embedding, code = searcher.embed_and_code(text)
        document = SourceDocument(path="<request>", record=0, text=text, content_hash="", mtime=0.0)
        options = DedupOptions(radius=body.radius, threshold=body.threshold)
        result = match_against(searcher.store, [document], embedding[None, :], code[None, :], options)
        matches = [m.to_dict() for m in result.matches[0]]
        return json_response({"exists": bool(matches), "matches": matches})

    @app.get("/api/documents/{doc_id}", summary="A stored document")
    def document(doc_id: DocId) -> dict[str, Any]:
        doc = _stored(doc_id)
        bits = searcher.bits
        code = None if doc.code is None else f"{doc.code & ((1 << bits) - 1):0{bits // 4}x}"
        return {"id": doc.id, "path": doc.path, "record": doc.record, "location": doc.location, "text": doc.text,
                "code": code}  # fmt: skip

    @app.get("/api/health", summary="Liveness")
    def health() -> dict[str, Any]:
        store = searcher.store
        return {"status": "ok", "generation": store.generation, "documents": store.count(encoded_only=True)}

    @app.get("/api/info", summary="What the index holds (as `semhash info`)")
    def info() -> dict[str, Any]:
        return index_info(searcher.db_path).to_dict()

    def _stored(doc_id: int) -> StoredDocument:
        doc = searcher.store.documents([doc_id]).get(doc_id)
        if doc is None:
            raise DocumentNotFoundError(f"no document with id {doc_id}")
        return doc

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(
            str(STATIC / "index.html"), media_type="text/html", headers={"Content-Security-Policy": PAGE_CSP}
        )

    @app.get("/documents/{doc_id}", include_in_schema=False)
    def document_view(doc_id: DocId) -> HTMLResponse:
        doc = _stored(doc_id)
        store = searcher.store
        content = document_page(doc, display_root(store), page_boundaries(store, doc))
        return HTMLResponse(content, headers={"Content-Security-Policy": PAGE_CSP})

    @app.get("/favicon.ico", include_in_schema=False)
    @app.get("/favicon.svg", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(str(STATIC / "favicon.svg"), media_type="image/svg+xml")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> FileResponse:
        # Only the page's own files, by exact name: nothing else on disk is reachable.
        if name not in STATIC_FILES:
            raise StarletteHTTPException(404, f"no static file {name!r}")
        return FileResponse(str(STATIC / name), media_type=STATIC_FILES[name])

    return app
