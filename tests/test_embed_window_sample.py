"""``--max-windows``: which windows of a long document stand for it (issue 20)."""

from __future__ import annotations

import numpy as np
import pytest

from semhash.embed import spread_windows


@pytest.mark.parametrize(
    ("n", "k", "expected"),
    [(10, 0, list(range(10))), (3, 5, [0, 1, 2]), (3, 3, [0, 1, 2]), (10, 1, [0]), (10, 2, [0, 9]),
     (10, 4, [0, 3, 6, 9]), (5, 4, [0, 1, 3, 4]), (1000, 3, [0, 500, 999])],
)  # fmt: skip
def test_spread_windows_keeps_the_first_and_last_and_spreads_the_rest(n: int, k: int, expected: list[int]) -> None:
    assert spread_windows(n, k) == expected


def test_spread_windows_are_distinct_sorted_and_evenly_spaced() -> None:
    for n in range(2, 120):
        for k in range(2, n):
            rows = spread_windows(n, k)
            assert len(rows) == k and rows[0] == 0 and rows[-1] == n - 1 and rows == sorted(set(rows))
            gaps = np.diff(rows)
            assert gaps.max() - gaps.min() <= 1
