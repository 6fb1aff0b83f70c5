"""A bounded fuzz pass over the server's inputs (issue 18).

Arbitrary text (lone surrogates, control characters, oversized strings), integers far beyond 64 bits, wrong types.
Through FastAPI's TestClient only: no socket.

Whatever comes in, the answer is never a 5xx, always JSON on ``/api`` routes, and comes back in time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, Protocol
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import FakeEncoder, write_corpus

from semhash.ingest import IndexOptions, index_paths
from semhash.serve import MAX_QUERY_CHARS, create_app

FUZZ = settings(
    max_examples=100,
    deadline=5000,  # ms per example: a hang fails the test instead of stalling the suite
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,  # the same examples on every run: a failure here is reproducible, not a flake
)

#: Text as an attacker sends it: any code point, lone surrogates included, and sizes around the limit.
TEXT = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=40),
    st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3),
    st.sampled_from(["", " ", "\x00", "oven flour", "x" * MAX_QUERY_CHARS, "x" * (MAX_QUERY_CHARS + 1), "\ufffd"]),
)
#: Integers around every bound that matters (k, radius, 32 bits, 2**63 rowids) and far beyond.
INTEGER = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80),
    st.integers(min_value=-2, max_value=40),
    st.sampled_from([2**31, 2**32, 2**63 - 1, 2**63, 2**64, 10**30]),
)
VALUE = st.one_of(INTEGER, TEXT, st.booleans(), st.none(), st.floats(allow_nan=True, allow_infinity=True))
#: Each field absent, plausible or anything: bad values get past the framework's checks only beside good ones.
QUERY_PARAMS = st.fixed_dictionaries(
    {},
    optional={
        "q": TEXT,
        "k": st.one_of(st.integers(min_value=1, max_value=20), VALUE),
        "radius": st.one_of(st.integers(min_value=0, max_value=32), VALUE),
        "rerank": st.one_of(st.booleans(), VALUE),
        "pool": st.one_of(st.integers(min_value=1, max_value=100), VALUE),
        "exact": st.one_of(st.booleans(), VALUE),
    },
)
EXISTS_BODY = st.fixed_dictionaries(
    {},
    optional={
        "text": TEXT,
        "threshold": st.one_of(st.floats(min_value=-1, max_value=1), VALUE),
        "radius": st.one_of(st.integers(min_value=0, max_value=32), VALUE),
    },
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("fuzz")
    write_corpus(root / "corpus", per_topic=4)
    encoder = FakeEncoder()
    index_paths(root / "fuzz.db", [root / "corpus"], IndexOptions(epochs=5, device="cpu"), encoder=encoder)
    with TestClient(create_app(root / "fuzz.db", encoder=encoder), raise_server_exceptions=False) as test_client:
        yield test_client


def _encode(value: object) -> str:
    """A query-string value as a client could send it: UTF-8 bytes, a lone surrogate's bytes included."""
    text = json.dumps(value) if not isinstance(value, str) else value
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


class _Response(Protocol):
    """What the checks read of a TestClient response."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def text(self) -> str: ...

    def json(self) -> Any: ...  # noqa: ANN401  (decoded JSON: any JSON value)


def _check(response: _Response, api: bool = True) -> None:
    assert response.status_code < 500, response.text[:300]
    if api or response.status_code >= 400:
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert isinstance(body, dict)
        if response.status_code >= 400:
            assert isinstance(body["error"], str) and body["error"]


@FUZZ
@given(QUERY_PARAMS, st.booleans())
def test_query_never_fails_with_a_5xx(client: TestClient, params: dict[str, object], as_json: bool) -> None:
    if as_json:  # json.dumps escapes lone surrogates (\ud800), as a JavaScript client's JSON.stringify does
        body = json.dumps(params)  # NaN and Infinity too: Python's JSON reader accepts them, so must the server
        _check(client.post("/api/query", content=body, headers={"content-type": "application/json"}))
    else:
        query = "&".join(f"{name}={_encode(value)}" for name, value in params.items())
        _check(client.get(f"/api/query?{query}"))


@FUZZ
@given(st.one_of(INTEGER, TEXT), st.one_of(st.none(), INTEGER, TEXT))
def test_ids_never_fail_with_a_5xx(client: TestClient, doc_id: object, k: object) -> None:
    segment = _encode(doc_id) if doc_id != "" else "%20"
    suffix = "" if k is None else f"?k={_encode(k)}"
    _check(client.get(f"/api/documents/{segment}"))
    _check(client.get(f"/api/similar/{segment}{suffix}"))
    _check(client.get(f"/documents/{segment}"), api=False)


@FUZZ
@given(EXISTS_BODY)
def test_exists_never_fails_with_a_5xx(client: TestClient, body: dict[str, object]) -> None:
    _check(client.post("/api/exists", content=json.dumps(body), headers={"content-type": "application/json"}))


def test_the_fuzz_index_is_there(client: TestClient) -> None:
    assert client.get("/api/health").json()["documents"] == 12
