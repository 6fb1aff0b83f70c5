"""A document is named ``path`` or ``path#record`` by one function, wherever it is shown."""

from __future__ import annotations

import numpy as np

from semhash.dedup import DocTable
from semhash.store import StoredDocument
from semhash.types import Hit, Outlier, format_location


def test_format_location() -> None:
    assert format_location("/d/a.txt", 0) == "/d/a.txt"
    assert format_location("/d/b.jsonl", 3) == "/d/b.jsonl#3"


def test_every_document_type_names_itself_the_same_way() -> None:
    for path, record in (("/d/a.txt", 0), ("/d/b.csv", 12)):
        want = format_location(path, record)
        assert Hit(1, 1, path, record, 0, 0, None, "").location == want
        assert StoredDocument(1, path, record, "t", None, None, 0.0).location == want
        assert Outlier(1, 1, path, record, 0.0, 0.0, "").location == want
        table = DocTable(np.array([1]), np.array([1]), np.array([0.0]), np.array([0]), [path], [record])
        assert table.location(0) == want
