"""Offer filters: "do not offer me this (or less) on that agent for a while".

A framework that declines an offer, or leaves part of an accepted offer unused, refuses
those resources on that agent for ``refuse_seconds`` (Mesos ``Filters``, default 5 s).
The allocator (``offers/allocator.py``) records one ``Filter`` per refusal here and asks,
for each offer it is about to make, whether a filter of that framework covers it: same
role, every scalar ≤ the refused amount and the ports a subset of the refused ports.
So an agent that frees more than was refused is offered again at once, as in Mesos.

Beyond Mesos, the refusal of a whole offer also lasts at least until the end of the
allocation cycle after it (``min_cycle``), however short ``refuse_seconds`` is. A
framework that declines everything with ``refuse_seconds: 0`` therefore cannot take an
agent back in the very next cycle; the agent goes to the next framework in line. That is
half of the allocator's no-starvation rule (the allocator decides which refusals get it).

Expiry is a lazy heap: REVIVE and framework removal drop filters from the lists and
leave their heap entries, which are skipped when they surface. Sans-I/O; the caller
passes the time and the cycle number.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from corral.offers.resources import Ranges, ranges_contain


class Filter:
    """One refusal: ``resources`` (cpu, mem, disk) and ``ports`` of ``role``."""

    __slots__ = ("expires", "min_cycle", "ports", "resources", "role")

    def __init__(
        self, role: str, resources: Sequence[int], ports: Ranges, expires: float, min_cycle: int
    ) -> None:
        self.role = role
        self.resources = list(resources[:3])
        self.ports = ports
        self.expires = expires
        self.min_cycle = min_cycle

    def active(self, now: float, cycle: int) -> bool:
        return now < self.expires or cycle <= self.min_cycle

    def covers(self, role: str, resources: Sequence[int], ports: Ranges) -> bool:
        """Whether an offer of ``resources`` and ``ports`` for ``role`` is filtered."""
        r = self.resources
        return (
            role == self.role
            and resources[0] <= r[0]
            and resources[1] <= r[1]
            and resources[2] <= r[2]
            and (not ports or ports == self.ports or ranges_contain(self.ports, ports))
        )

    def subsumes(self, other: Filter) -> bool:
        return (
            self.expires >= other.expires
            and self.min_cycle >= other.min_cycle
            and self.covers(other.role, other.resources, other.ports)
        )


def blocked(
    filters: list[Filter] | None,
    role: str,
    resources: Sequence[int],
    ports: Ranges,
    now: float,
    cycle: int,
) -> bool:
    """Whether any of ``filters`` (one framework's, on one agent) covers the offer."""
    if not filters:
        return False
    return any(f.active(now, cycle) and f.covers(role, resources, ports) for f in filters)


class FilterStore:
    """Filters by framework, then agent name; see the module docstring."""

    def __init__(self) -> None:
        self._by_fw: dict[str, dict[str, list[Filter]]] = {}
        self._heap: list[tuple[float, int, str, str, Filter]] = []
        self._seq = itertools.count()
        #: time-expired filters kept until the cycle after their ``min_cycle``
        self._dying: list[tuple[str, str, Filter]] = []

    def add(self, fid: str, agent: str, f: Filter) -> None:
        """Record ``f``, unless a filter already there subsumes it; drop those it subsumes."""
        agents = self._by_fw.setdefault(fid, {})
        current = agents.get(agent, [])
        if any(old.subsumes(f) for old in current):
            return
        agents[agent] = [old for old in current if not f.subsumes(old)] + [f]
        heapq.heappush(self._heap, (f.expires, next(self._seq), fid, agent, f))

    def of(self, fid: str) -> dict[str, list[Filter]]:
        """A framework's filters by agent (the live mapping: read only)."""
        return self._by_fw.get(fid) or {}

    def clear(self, fid: str, roles: set[str] | None = None) -> None:
        """Drop a framework's filters, of ``roles`` only when given (REVIVE)."""
        if roles is None:
            self._by_fw.pop(fid, None)
            return
        agents = self._by_fw.get(fid)
        if not agents:
            return
        for agent in list(agents):
            kept = [f for f in agents[agent] if f.role not in roles]
            if kept:
                agents[agent] = kept
            else:
                del agents[agent]

    def _remove(self, fid: str, agent: str, f: Filter) -> bool:
        agents = self._by_fw.get(fid)
        current = agents.get(agent) if agents else None
        if not agents or not current or not any(x is f for x in current):
            return False
        kept = [x for x in current if x is not f]
        if kept:
            agents[agent] = kept
        else:
            del agents[agent]
            if not agents:
                del self._by_fw[fid]
        return True

    def expire(self, now: float, cycle: int) -> bool:
        """Drop the filters that no longer apply in ``cycle`` at ``now``; whether any went."""
        removed = False
        dying, self._dying = self._dying, []
        for fid, agent, f in dying:
            if f.min_cycle < cycle:
                removed |= self._remove(fid, agent, f)
            else:
                self._dying.append((fid, agent, f))
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, fid, agent, f = heapq.heappop(heap)
            if f.min_cycle >= cycle:
                self._dying.append((fid, agent, f))
            else:
                removed |= self._remove(fid, agent, f)
        return removed

    def _live(self, fid: str, agent: str, f: Filter) -> bool:
        return any(x is f for x in self.of(fid).get(agent, ()))

    def next_expiry(self) -> float | None:
        """When the earliest live filter runs out (time only), or None."""
        heap = self._heap
        while heap and not self._live(heap[0][2], heap[0][3], heap[0][4]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def active(self, fid: str, now: float, cycle: int) -> list[tuple[str, Filter]]:
        """(agent, filter) of a framework's filters in force in ``cycle`` at ``now``."""
        return [
            (agent, f) for agent, fs in self.of(fid).items() for f in fs if f.active(now, cycle)
        ]


class BlockedRows:
    """Agents on which every framework in play is filtered, remembered between cycles.

    When all frameworks have declined every agent for a while, each cycle would otherwise
    test every (agent, framework) pair again just to find nothing to offer. A row stays
    remembered while its free resources are unchanged and no ``reset()`` happened; the
    allocator resets on anything that can lift a filter or change who is in play (a filter
    expired or cleared, a framework added, updated, (de)activated, suppressed, revived or
    removed) and ``forget``s a row when an offer on it goes away (its ports change). New
    filters only block more, so they need no reset. If a framework is filtered for an
    agent's whole free resources it is for any cut of them (the subset rule), so quota
    cuts do not matter here.
    """

    def __init__(self) -> None:
        self._names: list[str] = []
        self._free = np.zeros((0, 3), dtype=np.int64)
        self._rows = np.zeros(0, dtype=np.bool_)
        self._stale = True

    def reset(self) -> None:
        self._stale = True

    def skip(self, names: list[str], free: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        """Mask of rows still blocked (``free``: the rows' free cpu, mem, disk now)."""
        n = free.shape[0]
        if self._stale or self._rows.shape[0] != n or self._names != names:
            self._names = list(names)
            self._free = np.zeros((n, 3), dtype=np.int64)
            self._rows = np.zeros(n, dtype=np.bool_)
            self._stale = False
            return self._rows.copy()
        mask: npt.NDArray[np.bool_] = self._rows & (free == self._free).all(axis=1)
        return mask

    def learn(
        self,
        rows: list[int],
        free: npt.NDArray[np.int64],
        names: list[str],
        pairs: list[tuple[str, dict[str, list[Filter]]]],
        ports_of: Callable[[int, str], Ranges],
        now: float,
        cycle: int,
    ) -> None:
        """Remember which of ``rows`` (offered to nobody this cycle) are blocked for every
        (role, filters of a framework) in ``pairs``; ``free`` covers all rows."""
        if self._stale:
            return
        for r in rows:
            agent = names[r]
            vec = free[r].tolist()
            ports = ports_of(r, agent)
            if all(blocked(fs.get(agent), role, vec, ports, now, cycle) for role, fs in pairs):
                self._rows[r] = True
                self._free[r] = free[r]

    def forget(self, row: int | None) -> None:
        if row is not None and row < self._rows.shape[0]:
            self._rows[row] = False
