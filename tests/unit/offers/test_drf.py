"""DrfSorter: weighted dominant shares and the order kept across charges."""

from __future__ import annotations

import pytest

from corral.offers.drf import DrfSorter, dominant_share


@pytest.mark.parametrize(
    ("consumed", "total", "share"),
    [
        ([1, 4, 0], [9, 18, 0], 4 / 18),
        ([3, 1, 0], [9, 18, 0], 3 / 9),
        ([5, 5, 5], [0, 0, 0], 0.0),
        ([0, 0, 7], [10, 10, 0], 0.0),
    ],
    ids=["mem-dominant", "cpu-dominant", "no-total", "column-without-total-ignored"],
)
def test_dominant_share(consumed: list[int], total: list[int], share: float) -> None:
    assert dominant_share(consumed, total) == pytest.approx(share)


def test_order_ties_by_name_and_weights_divide() -> None:
    s = DrfSorter([100, 100, 0])
    s.add("b", [10, 0, 0])
    s.add("a", [10, 0, 0])
    s.add("c", [20, 0, 0], weight=2.0)
    assert s.names() == ["a", "b", "c"]
    assert s.share("c") == pytest.approx(0.1)
    s.charge("a", [5, 0, 0])
    assert s.names() == ["b", "c", "a"]
    s.charge("b", [0, 50, 0])
    assert s.names() == ["c", "a", "b"]
    assert s.consumed("b") == [10, 50, 0]
    assert "a" in s and "z" not in s and len(s) == 3
