"""Dominant resource fairness: shares, and an order kept up to date one charge at a time.

The allocator (``offers/allocator.py``) ranks roles by weighted DRF and the frameworks
of a role by plain DRF (Ghodsi et al., NSDI 2011; Mesos' ``DRFSorter``). A dominant
share is the largest fraction of the pool's total a client consumes over cpu, memory
and disk; dividing it by the role's weight gives the weighted share. Lower goes first,
ties by name, so the order is deterministic.

Shares change while one allocation cycle hands out offers, so ``DrfSorter.charge``
updates one entry and moves it in a sorted list instead of re-sorting everything for
each of thousands of offers. The lists hold tens of entries (roles, or frameworks of a
role), so the O(n) moves cost microseconds. Vectors here are plain lists of three ints
(cpu millicores, memory bytes, disk bytes): cheaper than numpy at this size.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence


def dominant_share(consumed: Sequence[int], total: Sequence[int]) -> float:
    """max over the columns with a non-zero total of consumed / total (0 for no total)."""
    best = 0.0
    for c, t in zip(consumed, total, strict=False):
        if t > 0:
            s = c / t
            if s > best:
                best = s
    return best


class DrfSorter:
    """Names in ascending (weighted dominant share, name) order over a fixed total."""

    def __init__(self, total: Sequence[int]) -> None:
        self._total = list(total)
        self._consumed: dict[str, list[int]] = {}
        self._weight: dict[str, float] = {}
        self._share: dict[str, float] = {}
        self._order: list[tuple[float, str]] = []

    def add(self, name: str, consumed: Iterable[int], weight: float = 1.0) -> None:
        """Enter ``name`` (not yet present) with what it consumes now."""
        self._consumed[name] = list(consumed)
        self._weight[name] = weight
        share = dominant_share(self._consumed[name], self._total) / weight
        self._share[name] = share
        bisect.insort(self._order, (share, name))

    def charge(self, name: str, vec: Sequence[int]) -> None:
        """Add ``vec`` to what ``name`` consumes and move it to its new place."""
        consumed = self._consumed[name]
        consumed[0] += vec[0]
        consumed[1] += vec[1]
        consumed[2] += vec[2]
        old = self._share[name]
        new = dominant_share(consumed, self._total) / self._weight[name]
        if new != old:
            del self._order[bisect.bisect_left(self._order, (old, name))]
            bisect.insort(self._order, (new, name))
            self._share[name] = new

    def consumed(self, name: str) -> list[int]:
        """What ``name`` consumes (the list itself: do not mutate)."""
        return self._consumed[name]

    def share(self, name: str) -> float:
        """The weighted dominant share of ``name``."""
        return self._share[name]

    def names(self) -> list[str]:
        """All names, first in line first (a copy: safe to iterate while charging)."""
        return [n for _, n in self._order]

    def __contains__(self, name: object) -> bool:
        return name in self._share

    def __len__(self) -> int:
        return len(self._order)
