"""``semhash serve``: the JSON API (TestClient, fake encoder), a live index under a real server, the page."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from support import FakeEncoder, write_corpus, write_twins
from typer.testing import CliRunner

from semhash.cli import app as cli_app
from semhash.config import DEFAULT_MODEL
from semhash.errors import UsageError
from semhash.ingest import IndexOptions, index_paths
from semhash.runtime import OnnxEncoder
from semhash.runtime.cache import cached_encoder
from semhash.search import QueryOptions
from semhash.serve import MAX_QUERY_CHARS, check_host, create_app, serve, server_timing


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, FastAPI]:
    root = tmp_path_factory.mktemp("serve")
    corpus = root / "corpus"
    write_corpus(corpus)
    db = root / "serve.db"
    encoder = FakeEncoder()
    index_paths(db, [corpus], IndexOptions(epochs=30, device="cpu"), encoder=encoder)
    return corpus, db, create_app(db, encoder=encoder)


@pytest.fixture(scope="module")
def client(served: tuple[Path, Path, FastAPI]) -> Iterator[TestClient]:
    with TestClient(served[2]) as test_client:
        yield test_client


def test_query_get_and_post(client: TestClient) -> None:
    got = client.get("/api/query", params={"q": "telescope galaxy nebula", "k": 4})
    assert got.status_code == 200
    hits = got.json()["hits"]
    assert len(hits) == 4 and all("/space/" in h["path"] for h in hits)
    assert {"rank", "id", "path", "record", "location", "distance", "cosine", "snippet", "code"} <= set(hits[0])
    assert len(hits[0]["code"]) == 8
    posted = client.post("/api/query", json={"q": "telescope galaxy nebula", "k": 4})
    assert posted.status_code == 200 and posted.json()["hits"] == hits
    radius = client.post("/api/query", json={"q": "oven", "radius": 32, "rerank": False}).json()["hits"]
    assert len(radius) == 24
    exact = client.get("/api/query", params={"q": "telescope galaxy nebula", "k": 4, "exact": True}).json()["hits"]
    assert [h["id"] for h in exact] == [h["id"] for h in hits]  # the pool covers this small index
    pooled = client.post("/api/query", json={"q": "telescope galaxy nebula", "k": 4, "pool": 24}).json()["hits"]
    assert [h["id"] for h in pooled] == [h["id"] for h in hits]
    assert client.get("/api/query", params={"q": "oven", "pool": 0}).status_code == 400


@pytest.mark.parametrize(
    ("method", "url", "payload", "status", "message"),
    [
        ("get", "/api/query", {"q": "   "}, 400, "empty"),
        ("get", "/api/query", {"q": "x" * (MAX_QUERY_CHARS + 1)}, 400, "limit"),
        ("post", "/api/query", {"q": "oven", "k": 0}, 400, "k must be"),
        ("get", "/api/query", {"q": "oven", "k": 10**6}, 400, "k must be"),
        ("get", "/api/query", {"q": "oven", "k": "many"}, 422, "k"),
        ("get", "/api/query", {"q": "oven", "radius": 40}, 400, "radius"),
        ("get", "/api/query", {}, 422, "q"),
        ("post", "/api/query", {"k": 3}, 422, "q"),
        ("get", "/api/similar/999999", {}, 404, "999999"),
        ("get", "/api/similar/abc", {}, 422, "doc_id"),
        ("get", "/api/documents/999999", {}, 404, "999999"),
        ("post", "/api/exists", {"text": ""}, 400, "empty"),
        ("post", "/api/exists", {"text": "oven", "radius": 99}, 400, "radius"),
        ("get", "/nope", {}, 404, "Not Found"),
        # issue 18: ids beyond SQLite's 64-bit rowids and lone surrogates were HTTP 500s
        ("get", "/api/documents/1000000000000000000000000000000", {}, 422, "doc_id"),
        ("get", f"/api/documents/{2**63}", {}, 422, "less than or equal to 9223372036854775807"),
        ("get", f"/api/similar/{2**63}", {}, 422, "doc_id"),
        ("get", "/api/documents/-1", {}, 422, "doc_id"),
        ("get", f"/documents/{2**63}", {}, 422, "doc_id"),
        ("post", "/api/query", {"q": "\ud800"}, 400, "lone surrogate"),
        ("post", "/api/query", {"q": "oven \udfff flour", "k": 3}, 400, "U+DFFF at character 5"),
        ("post", "/api/exists", {"text": "\ud83d"}, 400, "lone surrogate"),
    ],
)
def test_bad_input_is_a_4xx_with_a_json_error(
    client: TestClient, method: str, url: str, payload: dict, status: int, message: str
) -> None:
    if method == "get":
        response = client.get(url, params=payload)
    else:  # json.dumps escapes a lone surrogate as \ud800 (valid JSON); httpx's json= cannot encode one
        response = client.post(url, content=json.dumps(payload), headers={"content-type": "application/json"})
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert message in response.json()["error"]
    assert client.get("/api/health").json()["status"] == "ok"  # still serving


def test_bytes_that_are_not_utf8_in_a_query_string_are_replacement_characters(client: TestClient) -> None:
    # The documented choice: a query string's bytes that are not UTF-8 (or an encoded surrogate) are decoded
    # as U+FFFD, as Starlette and browsers do, and searched; a JSON body that is not UTF-8 is refused.
    for raw, expected in (("%FF%FEoven", "\ufffd\ufffdoven"), ("%ED%A0%80", "\ufffd" * 3)):
        response = client.get(f"/api/query?q={raw}&k=2")
        assert response.status_code == 200 and response.json()["query"] == expected
    body = client.post("/api/query", content=b'{"q": "\xff\xfe"}', headers={"content-type": "application/json"})
    assert body.status_code == 400 and "error" in body.json()


def test_an_unexpected_error_is_a_json_500_whose_id_is_in_the_log(
    served: tuple[Path, Path, FastAPI], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    searcher = served[2].state.searcher

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug with a secret /home/someone/path in its message")

    monkeypatch.setattr(searcher, "search_embedding", broken)
    monkeypatch.setattr(searcher, "similar_id", broken)
    caplog.set_level(logging.ERROR, logger="semhash.serve")
    with TestClient(served[2], raise_server_exceptions=False) as test_client:
        ids = []
        for response in (
            test_client.get("/api/query", params={"q": "oven"}),
            test_client.post("/api/query", json={"q": "oven"}),
            test_client.get("/api/similar/1"),
        ):
            assert response.status_code == 500
            assert response.headers["content-type"] == "application/json"
            body = response.json()
            assert set(body) == {"error", "id"} and len(body["id"]) == 8 and body["id"] in body["error"]
            assert "secret" not in response.text  # the details go to the log, not to whoever asked
            ids.append(body["id"])
        assert len(set(ids)) == 3
        logged = {r.getMessage(): r for r in caplog.records if r.name == "semhash.serve"}
        for error_id in ids:
            (record,) = [r for message, r in logged.items() if error_id in message]
            assert record.exc_info is not None and "secret" in str(record.exc_info[1])
        assert test_client.get("/api/health").json()["status"] == "ok"


def test_radius_with_no_document_within_it_is_an_empty_200(client: TestClient) -> None:
    # Radius 0 around a code no document has: passes once search._rows handles an empty ranking (the lead's fix).
    response = client.get("/api/query", params={"q": "zzz qqq unrelated words", "radius": 0})
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.json()["hits"] == []


def test_query_body_is_the_hits_to_dict_and_stages_are_in_server_timing(
    client: TestClient, served: tuple[Path, Path, FastAPI]
) -> None:
    searcher = served[2].state.searcher
    found = searcher.query("oven flour", QueryOptions(k=5))
    hits = [h.to_dict() for h in found]
    root = str(served[0].resolve()) + os.sep
    expected = {"query": "oven flour", "mode": "semantic", "hits": hits, "weak": found.weak, "root": root}
    for response in (
        client.get("/api/query", params={"q": "oven flour", "k": 5}),
        client.post("/api/query", json={"q": "oven flour", "k": 5}),
    ):
        assert response.status_code == 200 and response.headers["content-type"] == "application/json"
        assert response.json() == expected  # encoded once by the endpoint: the same fields and values
        stages = dict(part.strip().split(";dur=") for part in response.headers["server-timing"].split(","))
        assert set(stages) == {"code", "search", "json"} and all(float(ms) >= 0 for ms in stages.values())
    assert server_timing(code=0.0041, search=0.5) == "code;dur=4.10, search;dur=500.00"
    schema = client.get("/openapi.json").json()["paths"]["/api/query"]
    assert "application/json" in schema["get"]["responses"]["200"]["content"]
    assert "server-timing" not in client.get("/api/query", params={"q": "  "}).headers  # errors as before


def test_serve_gives_blas_one_thread(served: tuple[Path, Path, FastAPI], monkeypatch: pytest.MonkeyPatch) -> None:
    # OpenBLAS's workers busy-wait after each call and took the cores a served query needed (issue 9).
    from threadpoolctl import threadpool_info, threadpool_limits

    seen: list[list[int]] = []
    monkeypatch.setattr("semhash.serve.server.create_app", lambda *args, **kwargs: served[2])
    monkeypatch.setattr(
        "uvicorn.run", lambda *args, **kwargs: seen.append([m["num_threads"] for m in threadpool_info()
                                                            if m["user_api"] == "blas"])
    )  # fmt: skip
    with threadpool_limits(limits=None, user_api="blas"):  # puts this process's settings back afterwards
        serve(served[1], port=1)
    assert seen and seen[0] and set(seen[0]) == {1}


@pytest.mark.slow
def test_onnx_encoder_does_not_spin() -> None:
    # Idle onnxruntime workers sleep instead of busy-waiting for the next operator (issue 9's serving latency).
    encoder = OnnxEncoder(cached_encoder(DEFAULT_MODEL))
    options = encoder._session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_similar_documents_and_exists(client: TestClient, served: tuple[Path, Path, FastAPI]) -> None:
    corpus = served[0]
    first = client.get("/api/query", params={"q": "flour butter sugar", "k": 1}).json()["hits"][0]
    doc = client.get(f"/api/documents/{first['id']}").json()
    assert doc["text"] == Path(doc["path"]).read_text() and doc["code"] == first["code"]
    neighbours = client.get(f"/api/similar/{first['id']}", params={"k": 5}).json()
    assert neighbours["location"] == first["location"] and len(neighbours["hits"]) == 5
    assert first["id"] not in {h["id"] for h in neighbours["hits"]}
    assert sum("/food/" in h["path"] for h in neighbours["hits"]) >= 3
    # an indexed text, re-cased and re-spaced, is found as an exact match; an unrelated one is not there
    text = (corpus / "bikes" / "bikes-2.txt").read_text()
    found = client.post("/api/exists", json={"text": "  " + text.upper().replace(" ", "\n")}).json()
    assert found["exists"] and found["matches"][0]["reason"] == "exact"
    assert found["matches"][0]["location"].endswith("bikes-2.txt")
    near = client.post("/api/exists", json={"text": text + " extra", "threshold": 0.5}).json()
    assert any(m["reason"] == "near" and m["location"].endswith("bikes-2.txt") for m in near["matches"])
    missing = client.post("/api/exists", json={"text": "quantum entanglement of violins"}).json()
    assert missing == {"exists": False, "matches": []}


def test_health_info_schema_and_page(client: TestClient) -> None:
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["documents"] == 24
    info = client.get("/api/info").json()
    assert info["documents"] == 24 and info["bits"] == 32
    schema = client.get("/openapi.json").json()
    assert {"/api/query", "/api/similar/{doc_id}", "/api/exists", "/api/documents/{doc_id}"} <= set(schema["paths"])
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and 'id="q"' in page.text and "http" not in page.text.replace("http-equiv", "")
    script = client.get("/static/app.js").text
    assert "textContent" in script and ".innerHTML" not in script and ".outerHTML" not in script
    assert client.get("/static/..%2Fserve.py").status_code == 404


MARKUP = "Oven <b>bold</b> & <script>alert('x')</script> flour\n\nsecond paragraph"


@pytest.fixture(scope="module")
def pages_app(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, FastAPI]:
    """A small index with markup in a text, JSONL records and a nested folder."""
    corpus = tmp_path_factory.mktemp("pages") / "my docs"
    (corpus / "notes" / "deep").mkdir(parents=True)
    (corpus / "notes" / "markup.txt").write_text(MARKUP)
    (corpus / "notes" / "deep" / "bread.txt").write_text("bake the bread dough in a hot oven with salt")
    records = [{"text": "bicycle chain and gear"}, {"text": "the telescope saw a comet near the moon"}]
    (corpus / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    db = corpus.parent / "pages.db"
    encoder = FakeEncoder()
    index_paths(db, [corpus], IndexOptions(epochs=5, device="cpu"), encoder=encoder)
    return corpus.resolve(), db, create_app(db, encoder=encoder)


def _id_of(client: TestClient, location_end: str) -> tuple[int, dict]:
    hits = client.get("/api/query", params={"q": "oven bread comet gear", "radius": 32}).json()
    (hit,) = [h for h in hits["hits"] if h["location"].endswith(location_end)]
    return hit["id"], hits


def test_document_view_page_is_escaped_with_relative_path_and_record(pages_app: tuple[Path, Path, FastAPI]) -> None:
    corpus = pages_app[0]
    with TestClient(pages_app[2]) as test_client:
        doc_id, body = _id_of(test_client, "markup.txt")
        assert body["root"] == str(corpus) + os.sep  # the folder that was indexed, beside the hits
        assert {h["path"] for h in body["hits"]} >= {str(corpus / "notes" / "markup.txt")}  # full paths, as before
        page = test_client.get(f"/documents/{doc_id}")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        text = page.text
        assert "<script>alert" not in text and "<b>bold" not in text
        assert "Oven &lt;b&gt;bold&lt;/b&gt; &amp; &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; flour" in text
        assert f'title="{corpus / "notes" / "markup.txt"}"' in text  # the full path on hover
        assert '<h2 class="doc-path"' in text and ">notes/markup.txt</h2>" in text  # shown relative
        assert f'href="/#similar/{doc_id}"' in text and f'href="/api/documents/{doc_id}"' in text
        record_id, _ = _id_of(test_client, "records.jsonl#2")
        record_page = test_client.get(f"/documents/{record_id}").text
        assert ">records.jsonl#2</h2>" in record_page and "record 2 of the file" in record_page
        assert "telescope saw a comet" in record_page
        missing = test_client.get("/documents/999999")
        assert missing.status_code == 404 and "999999" in missing.json()["error"]
        assert test_client.get("/documents/abc").status_code == 422
        similar = test_client.get(f"/api/similar/{doc_id}").json()
        assert similar["root"] == body["root"] and similar["location"] == str(corpus / "notes" / "markup.txt")


def test_document_view_shows_pages_when_the_row_has_page_boundaries(pages_app: tuple[Path, Path, FastAPI]) -> None:
    # A nullable `locations` JSON column of (char_offset, page) boundaries (another branch adds it): read when
    # there, ignored when absent or unreadable. Here it is added to a copy of the index by hand.
    db = pages_app[1].parent / "pages-with-locations.db"
    shutil.copy(pages_app[1], db)
    with sqlite3.connect(db) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(documents)")}
        if "locations" not in columns:
            conn.execute("ALTER TABLE documents ADD COLUMN locations TEXT")
        conn.execute(
            "UPDATE documents SET locations = ? WHERE path LIKE '%markup.txt'", [json.dumps([[0, 3], [40, 4]])]
        )
        conn.execute("UPDATE documents SET locations = 'not json' WHERE path LIKE '%bread.txt'")
    with TestClient(create_app(db, encoder=FakeEncoder())) as test_client:
        doc_id, _ = _id_of(test_client, "markup.txt")
        text = test_client.get(f"/documents/{doc_id}").text
        assert "pages 3–4" in text and '<section id="page-3"><h3>page 3</h3>' in text and 'id="page-4"' in text
        first, second = text.split('id="page-4"')
        assert "alert" in first and "second paragraph" in second  # split at character 40
        bread_id, _ = _id_of(test_client, "bread.txt")
        bread = test_client.get(f"/documents/{bread_id}")
        assert bread.status_code == 200 and "page" not in bread.text.split("</h2>")[1]


def test_display_root_is_the_deepest_folder_holding_every_path(tmp_path: Path) -> None:
    from semhash.serve import display_root, relative
    from semhash.store import Store

    def root_of(paths: list[str]) -> str:
        db = tmp_path / f"root{len(list(tmp_path.iterdir()))}.db"
        store = Store.open(db, create=True)
        try:
            with store.db.conn:
                for i, path in enumerate(paths):
                    store.db.execute(
                        "INSERT INTO documents (id, path, record, text) VALUES (?, ?, 0, 'x')", [i + 1, path]
                    )
            return display_root(store)
        finally:
            store.close()

    assert root_of([]) == ""
    assert root_of(["/data/corpus/a.txt"]) == "/data/corpus/"
    assert root_of(["/data/corpus/a/x.txt", "/data/corpus/b/y.txt", "/data/corpus/a/z.txt"]) == "/data/corpus/"
    assert root_of(["/data/bc/x.txt", "/data/bd/y.txt"]) == "/data/"  # a shared name start is not a folder
    assert root_of(["/a.txt", "/b.txt"]) == ""  # nothing to strip: full paths
    store = Store.open(tmp_path / "plan.db", create=True)
    try:  # answered from the (path, record) index: no scan of the table on each query
        for query in ("SELECT min(path) FROM documents", "SELECT max(path) FROM documents"):
            plan = " ".join(str(row) for row in store.db.execute(f"EXPLAIN QUERY PLAN {query}").fetchall())
            assert "USING COVERING INDEX" in plan and "SCAN" not in plan
    finally:
        store.close()
    assert relative("/data/corpus/a.txt", "/data/corpus/") == "a.txt"
    assert relative("/elsewhere/a.txt", "/data/corpus/") == "/elsewhere/a.txt"


def test_favicon_is_served(client: TestClient) -> None:
    for url in ("/favicon.ico", "/favicon.svg"):
        icon = client.get(url)
        assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")
        assert icon.text.startswith("<svg")
    assert 'rel="icon" href="/favicon.svg"' in client.get("/").text


def test_remote_host_needs_allow_remote() -> None:
    for host in ("127.0.0.1", "localhost", "::1"):
        check_host(host, allow_remote=False)
    check_host("0.0.0.0", allow_remote=True)
    with pytest.raises(UsageError, match="--allow-remote"):
        check_host("0.0.0.0", allow_remote=False)
    result = CliRunner().invoke(cli_app, ["serve", "--host", "0.0.0.0", "--db", "none.db"])
    assert result.exit_code == 2 and "--allow-remote" in result.output


def test_serve_on_a_missing_index_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli_app, ["serve", "--db", str(tmp_path / "none.db")])
    assert result.exit_code == 1 and "semhash index" in result.output


# -- a real server --------------------------------------------------------------------------------------------
@contextmanager
def running(app: FastAPI) -> Iterator[str]:
    """Uvicorn in a thread on 127.0.0.1, on a free port picked by the OS; yields the base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


LIVE_DOCS = {
    "space/jupiter.txt": "Jupiter is the largest planet in the solar system, a gas giant with dozens of moons.",
    "space/telescope.txt": "The new space telescope captured infrared images of distant galaxies and nebulae.",
    "food/bread.txt": "Knead the dough for ten minutes, let it rise, then bake the bread in a hot oven.",
    "food/soup.txt": "Simmer onions, carrots and lentils in stock for a warming winter soup.",
    "bikes/tyre.txt": "To fix a flat bicycle tyre, remove the wheel, find the puncture and patch the tube.",
    "bikes/chain.txt": "A clean, lubricated chain makes gear changes on your bike smooth and quiet.",
    "garden/roses.txt": "Prune the climbing roses in late winter, cutting above an outward-facing bud.",
}
ADDED = ("health/vaccine.txt", "The vaccine trial enrolled thousands of volunteers to test the new flu shot.")


@pytest.mark.slow
def test_live_index_changes_while_serving(tmp_path: Path) -> None:
    """A real `semhash index` process removes and adds documents while the server answers queries."""
    import httpx

    corpus = tmp_path / "corpus"
    for name, text in LIVE_DOCS.items():
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        (corpus / name).write_text(text)
    db = tmp_path / "live.db"
    first = CliRunner().invoke(
        cli_app, ["index", str(corpus), "--db", str(db), "--device", "cpu", "--epochs", "20", "--json"]
    )
    assert first.exit_code == 0, first.output
    errors: list[str] = []
    answered = 0
    stop = threading.Event()

    def hammer(base: str) -> None:
        nonlocal answered
        deadline = time.monotonic() + 120
        with httpx.Client(base_url=base, timeout=30) as http:
            while not stop.is_set() and answered < 2000 and time.monotonic() < deadline:
                for q in ("pruning roses in winter", "flu vaccine trial", "fix a flat bike tyre"):
                    response = http.get("/api/query", params={"q": q, "k": 3})
                    if response.status_code != 200:
                        errors.append(f"{response.status_code}: {response.text}")
                    answered += 1
                    time.sleep(0.01)  # leave the indexer some of the 2 cores: the point is overlap, not load

    with running(create_app(db, device="cpu")) as base, httpx.Client(base_url=base, timeout=30) as http:

        def paths(q: str) -> set[str]:
            return {h["location"] for h in http.get("/api/query", params={"q": q, "radius": 32}).json()["hits"]}

        roses = str((corpus / "garden" / "roses.txt").resolve())
        vaccine = str((corpus / ADDED[0]).resolve())
        assert roses in paths("roses") and vaccine not in paths("vaccine")
        loader = threading.Thread(target=hammer, args=(base,))
        loader.start()
        (corpus / "garden" / "roses.txt").unlink()
        (corpus / ADDED[0]).parent.mkdir()
        (corpus / ADDED[0]).write_text(ADDED[1])
        before = answered
        env = {**os.environ, "SEMHASH_DEVICE": "cpu"}
        indexer = subprocess.run(
            [sys.executable, "-m", "semhash.cli", "index", str(corpus), "--db", str(db)],
            capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip
        during = answered - before
        time.sleep(0.5)
        stop.set()
        loader.join(60)
        assert indexer.returncode == 0, indexer.stderr
        assert not errors, errors[:3]
        assert during > 0 and answered > during
        assert roses not in paths("roses") and vaccine in paths("vaccine")
        top = http.get("/api/query", params={"q": "a trial of a new flu vaccine", "k": 1}).json()["hits"][0]
        assert top["location"] == vaccine
        assert http.get("/api/health").json()["documents"] == len(LIVE_DOCS)


# -- the page in a real browser ------------------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _browser_skip_reason() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if not Path(CHROMIUM).exists():
        return "no chromium binary (Debian: apt-get install -y chromium; make setup does it as root)"
    return None


@pytest.mark.slow
def test_search_page_in_headless_chromium(served: tuple[Path, Path, FastAPI], tmp_path: Path) -> None:
    reason = _browser_skip_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import ConsoleMessage, Response, expect, sync_playwright

    corpus = served[0].resolve()
    failed: list[str] = []
    console_errors: list[str] = []

    def on_response(response: Response) -> None:
        if response.status >= 400:
            failed.append(f"{response.status} {response.url}")

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":  # a script error, or a Content-Security-Policy violation
            console_errors.append(message.text)

    with running(served[2]) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("response", on_response)
            page.on("console", on_console)
            page.goto(base + "/")
            expect(page.locator("#info")).to_contain_text("24 of 24 documents")
            assert "/" not in page.locator("#info").inner_text().split(":")[0]  # the database's name, not its path
            page.fill("#q", "telescope galaxy <b>nebula</b>")
            page.press("#q", "Enter")
            hits = page.locator("li.hit")
            expect(hits.first).to_be_visible()
            assert hits.count() == 10
            expect(page.locator("#heading")).to_contain_text("<b>nebula</b>")  # shown as text, not markup
            # labels for people; the numbers behind them in the tooltip
            meta = hits.first.locator(".meta")
            assert meta.inner_text().startswith("match 0.") and "Hamming" not in hits.first.inner_text()
            details = meta.get_attribute("title") or ""
            assert "Hamming distance" in details and "of 32 bits" in details and "id " in details
            assert "cosine similarity" in details
            # the path: relative to the indexed folder, the full path on hover, a link to the document view
            path = hits.first.locator("a.path")
            shown, full = path.inner_text(), path.get_attribute("title") or ""
            assert shown.startswith("space/") and full == str(corpus / shown)
            assert str(corpus) not in page.locator("#results").inner_text()
            doc_id = hits.first.get_attribute("data-id")
            path.click()
            page.wait_for_url(f"{base}/documents/{doc_id}")
            expect(page.locator("h2.doc-path")).to_have_text(shown)
            assert page.locator("h2.doc-path").get_attribute("title") == full
            assert page.locator(".doc-text").inner_text() == (corpus / shown).read_text()
            page.go_back()
            expect(hits.first).to_be_visible()
            # neighbours
            first_location = hits.first.locator(".path").inner_text()
            hits.first.locator("a.neighbours").click()
            expect(page.locator("#heading")).to_contain_text(f"Documents like {first_location}")
            expect(page.locator("li.hit").first).to_be_visible()
            assert first_location not in page.locator("#results").inner_text()
            # an empty query: the hint, and no results left under it
            page.fill("#q", "   ")
            page.press("#q", "Enter")
            expect(page.locator("#status")).to_have_text("type something to search for")
            assert page.locator("#status").get_attribute("class") == "error"
            assert page.locator("#status").evaluate("e => getComputedStyle(e).color") == "rgb(176, 0, 32)"
            expect(page.locator("li.hit")).to_have_count(0)
            expect(page.locator("#heading")).to_be_hidden()
            # a 20,000-character query: a short heading, a small address, results
            long_query = ("telescope galaxy nebula " * 900)[:MAX_QUERY_CHARS]
            page.fill("#q", long_query)
            page.press("#q", "Enter")
            expect(page.locator("li.hit").first).to_be_visible()
            heading = page.locator("#heading").inner_text()
            assert heading.startswith("Results for “telescope galaxy nebula") and heading.endswith("…”")
            assert len(heading) < 100
            assert len(page.url) < 100 and "telescope" not in page.url
            # a short query stays in the address; back returns to the long one, from the history state
            page.fill("#q", "oven flour")
            page.press("#q", "Enter")
            expect(page.locator("#heading")).to_have_text("Results for “oven flour”")
            assert page.url.endswith("#q=oven%20flour")
            page.go_back()
            expect(page.locator("#heading")).to_contain_text("Results for “telescope galaxy nebula")
            assert page.locator("#q").input_value() == long_query
            # the mode selector (issue 21): kept in the address; a query without a good match shows the banner
            page.select_option("#mode", "keyword")
            page.fill("#q", "oven flour")
            page.press("#q", "Enter")
            # wait for this query's answer: until it lands, the long query's hits are still on the page
            expect(page.locator("#heading")).to_have_text("Results for “oven flour”")
            expect(page.locator("li.hit").first).to_be_visible()
            assert page.url.endswith("#q=oven%20flour&mode=keyword")
            expect(page.locator("#weak")).to_be_hidden()
            marks = page.locator("li.hit .snippet mark")  # the query's words emphasised, as text nodes
            assert marks.count() > 0 and {m.lower() for m in marks.all_inner_texts()} <= {"oven", "flour"}
            page.check("#passages")
            page.fill("#q", "flour oven")
            page.press("#q", "Enter")
            expect(page.locator("#heading")).to_have_text("Results for “flour oven”")
            expect(page.locator("li.hit").first).to_be_visible()
            page.uncheck("#passages")
            page.fill("#q", "xylophone")
            page.press("#q", "Enter")
            expect(page.locator("#weak")).to_be_visible()
            expect(page.locator("li.hit")).to_have_count(0)
            page.go_back()
            expect(page.locator("li.hit").first).to_be_visible()
            assert page.locator("#mode").input_value() == "keyword" and page.locator("#weak").is_hidden()
            # folded twins (issue 21): the "+N copies" element says why each one folded
            write_twins(tmp_path / "fleet")
            index_paths(
                tmp_path / "t.db", [tmp_path / "fleet"], IndexOptions(epochs=30, device="cpu"), encoder=FakeEncoder()
            )
            with running(create_app(tmp_path / "t.db", encoder=FakeEncoder())) as twins_base:
                page.goto(f"{twins_base}/#q=zeppelin%20harbour%20ballast")
                copies = page.locator("li.hit details.copies")
                expect(copies).to_have_count(1)
                copies.locator("summary").click()
                expect(copies).to_contain_text("(near-identical text, overlap 0.")
                page.goto(base + "/")
            # the favicon the page names is there
            icon = page.evaluate("fetch(document.querySelector('link[rel=icon]').href).then(r => r.status)")
            assert icon == 200 and page.request.get(base + "/favicon.ico").status == 200
            assert not failed, failed
            assert not console_errors, console_errors
        finally:
            browser.close()
