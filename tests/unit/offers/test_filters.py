"""Offer filters: the subset rule, the one-cycle minimum, subsumption and lazy expiry."""

from __future__ import annotations

import pytest

from corral.offers.filters import Filter, FilterStore, blocked

FULL = ((31000, 32000),)


@pytest.mark.parametrize(
    ("role", "offer", "ports", "covered"),
    [
        ("r", [100, 100, 0], FULL, True),
        ("r", [50, 100, 0], ((31000, 31005),), True),
        ("r", [101, 100, 0], FULL, False),
        ("r", [100, 100, 1], (), False),
        ("r", [100, 100, 0], ((30999, 31000),), False),
        ("s", [1, 1, 0], (), False),
    ],
    ids=["same", "subset", "more-cpu", "more-disk", "port-outside", "other-role"],
)
def test_covers(
    role: str, offer: list[int], ports: tuple[tuple[int, int], ...], covered: bool
) -> None:
    f = Filter("r", [100, 100, 0], FULL, expires=10.0, min_cycle=1)
    assert f.covers(role, offer, ports) is covered


def test_active_until_expiry_and_at_least_the_next_cycle() -> None:
    f = Filter("r", [1, 1, 0], (), expires=10.0, min_cycle=5)
    assert blocked([f], "r", [1, 1, 0], (), now=11.0, cycle=5)  # time is up, cycle is not
    assert not blocked([f], "r", [1, 1, 0], (), now=11.0, cycle=6)
    assert blocked([f], "r", [1, 1, 0], (), now=9.0, cycle=99)
    assert not blocked(None, "r", [1, 1, 0], (), now=0.0, cycle=0)


def test_store_expiry_subsumption_and_clear() -> None:
    store = FilterStore()
    big = Filter("r", [10, 10, 0], FULL, expires=20.0, min_cycle=1)
    small = Filter("r", [5, 5, 0], (), expires=10.0, min_cycle=1)
    store.add("F", "a1", small)
    store.add("F", "a1", big)  # subsumes small: small goes
    assert store.of("F")["a1"] == [big]
    store.add("F", "a1", Filter("r", [1, 1, 0], (), expires=5.0, min_cycle=1))  # redundant
    assert store.of("F")["a1"] == [big]
    zero = Filter("s", [1, 1, 0], (), expires=0.0, min_cycle=3)
    store.add("F", "a2", zero)
    assert store.next_expiry() == 0.0
    store.expire(now=1.0, cycle=3)  # time passed, but cycle 3 still applies
    assert store.of("F")["a2"] == [zero]
    assert store.next_expiry() == 20.0
    store.expire(now=1.0, cycle=4)
    assert "a2" not in store.of("F")
    assert [a for a, _ in store.active("F", now=1.0, cycle=4)] == ["a1"]
    store.clear("F", {"s"})
    assert store.of("F")["a1"] == [big]
    store.clear("F", {"r"})
    assert store.of("F") == {}
    assert store.next_expiry() is None  # the heap entry of a cleared filter is skipped
    store.add("G", "a1", big)
    store.clear("G")
    assert store.of("G") == {}
