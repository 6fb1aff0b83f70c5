"""DedupOptions are checked once, when made; the radius against the code length in one function."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from semhash.api import SemanticIndex
from semhash.codes import to_sql_int
from semhash.dedup import MAX_RADIUS, DedupOptions, check_radius, dedup_index
from semhash.errors import UsageError
from semhash.store import Store
from semhash.types import SourceDocument


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"radius": MAX_RADIUS + 1}, "--radius must be between 0 and 8 bits"),
        ({"radius": -1}, "--radius must be between 0 and 8 bits"),
        ({"threshold": 1.5}, "--threshold must be a cosine between -1 and 1"),
        ({"threshold": float("nan")}, "--threshold must be a cosine"),
        ({"cluster": "stars"}, "--cluster must be one of centre, components"),
        ({"keep": "oldest"}, "--keep must be one of first, longest, shortest, newest"),
    ],
)
def test_bad_options_fail_when_made(fields: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        DedupOptions(**fields)
    with pytest.raises(UsageError, match=message):  # and when changed (rethreshold uses replace)
        dataclasses.replace(DedupOptions(), **fields)


def test_radius_is_checked_against_the_code_length() -> None:
    check_radius(MAX_RADIUS)
    check_radius(4, bits=4)
    with pytest.raises(UsageError, match="between 0 and 4 bits, not 5"):
        check_radius(5, bits=4)


def test_dedup_of_a_short_code_index_refuses_a_wider_radius(tmp_path: Path) -> None:
    path = tmp_path / "short.db"
    docs = [SourceDocument(f"/d/{k}.txt", 0, f"text {k}", hashlib.sha256(b"%d" % k).hexdigest(), 0.0) for k in range(2)]
    with Store.open(path, create=True) as store:
        store.check_embedding_model("fake", 2)
        ids = store.upsert_documents(docs, np.eye(2, dtype=np.float32))
        store.save_model(b"", bits=4, input_dim=2, config={}, stats={}, trained_on=2)
        store.set_codes(ids, [to_sql_int(1, 4), to_sql_int(2, 4)], [0.0, 0.0])
    with pytest.raises(UsageError, match="between 0 and 4 bits, not 6"):
        dedup_index(path, DedupOptions(radius=6))
    assert dedup_index(path, DedupOptions(radius=4)).stats.candidates == 1
    with pytest.raises(UsageError, match="--radius"):
        SemanticIndex(path).dedup(radius=9)
    misspelt: dict[str, Any] = {"radious": 2}  # typed keywords: mypy catches this in a caller's code
    with pytest.raises(TypeError, match="radious"):
        SemanticIndex(path).dedup(**misspelt)
