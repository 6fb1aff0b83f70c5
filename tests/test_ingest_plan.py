"""Which stored documents a run's folders cover (semhash.ingest.plan.in_scope): files gone from them are removed."""

from __future__ import annotations

from pathlib import Path

import pytest

from semhash.ingest.plan import in_scope


@pytest.mark.parametrize(
    ("path", "roots", "inside"),
    [
        ("/data/docs", ["/data/docs"], True),  # the root itself (a file given on the command line)
        ("/data/docs/a/b.txt", ["/data/docs"], True),
        ("/data/docs2/b.txt", ["/data/docs"], False),  # a sibling sharing the prefix is not under it
        ("/data/doc", ["/data/docs"], False),
        ("/data/b.txt", ["/data/docs", "/data"], True),  # any of the roots
        ("/anything/at/all", ["/"], True),
        ("/data/docs/x", [], False),
    ],
)
def test_in_scope_is_the_root_or_under_it(path: str, roots: list[str], inside: bool) -> None:
    assert in_scope(path, [Path(r) for r in roots]) is inside
