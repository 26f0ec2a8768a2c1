"""One allocation pass: which framework gets which agent's free resources this cycle.

``Allocator.allocate`` (``offers/allocator.py``) fills an ``AllocationPass`` with a
snapshot (the roles and frameworks that may receive offers, what each consumes, quotas,
filters, the free resources of the agents that can be offered) and calls ``run``, which
returns ``Draft`` offers. It mutates nothing outside itself; the allocator then turns
the drafts into offers and table holds. Split out so the decision reads as one piece and
can be timed apart from the bookkeeping.

The pass follows Mesos' HierarchicalDRF allocator:

1. **Guarantees.** For roles below their quota guarantee, in weighted-DRF order, each
   candidate agent gives the guarantee's worth (the guaranteed columns cut to the
   deficit; other columns come along whole), never beyond the role's limit.
2. **Fair share.** For every candidate agent: a starving framework first (one that
   has wanted offers and had none for half the starvation bound, longest waiting
   first), then roles in weighted-DRF order and their frameworks in DRF order. The
   first eligible framework gets all that is left, cut to its role's limit and to what
   must stay unallocated for other roles' unsatisfied guarantees (quota headroom).

Shares move as drafts are made (``DrfSorter.charge``), so one cycle spreads the pool the
way repeated single offers would. An offer must reach the minimum allocatable amount
(cpus ≥ min OR mem ≥ min). An agent's ports go to its first draft of the cycle.
Vectors are lists of three ints: cpu millicores, memory bytes, disk bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from corral.offers.drf import DrfSorter
from corral.offers.filters import Filter, blocked
from corral.offers.resources import Ranges

Vec3 = list[int]


@dataclass(slots=True)
class Draft:
    """An offer the pass decided on (resources grow if a later stage adds to it)."""

    row: int
    agent: str
    framework_id: str
    role: str
    resources: Vec3
    ports: Ranges


def _deficit(guarantee: Vec3, consumed: Vec3) -> Vec3:
    return [max(0, g - c) for g, c in zip(guarantee, consumed, strict=True)]


class AllocationPass:
    """See the module docstring. Fill with ``add_role``/``add_framework``/``reserve``/
    ``add_starving``, then ``run`` once."""

    def __init__(
        self,
        total: Vec3,
        min_cpu: int,
        min_mem: int,
        now: float,
        cycle: int,
        ports_of: Callable[[int, str], Ranges],
    ) -> None:
        self.roles = DrfSorter(total)
        self._total = total
        self._fws: dict[str, DrfSorter] = {}
        self._min_cpu = min_cpu
        self._min_mem = min_mem
        self._now = now
        self._cycle = cycle
        self._ports_of = ports_of
        self._limit: dict[str, Vec3] = {}
        self._guarantee: dict[str, Vec3] = {}
        #: unsatisfied guarantee per quota role (in play or not); their sum is the headroom
        self._deficits: dict[str, Vec3] = {}
        self._headroom = [0, 0, 0]
        self._filters: dict[str, dict[str, list[Filter]]] = {}
        self._starving: list[tuple[str, list[str]]] = []
        self._drafts: dict[tuple[int, str, str], Draft] = {}
        self._ports_given: set[int] = set()

    # -- filling -----------------------------------------------------------------------

    def add_role(
        self,
        role: str,
        consumed: Vec3,
        weight: float,
        guarantee: Vec3 | None,
        limit: Vec3 | None,
    ) -> None:
        """A role with at least one framework that may be offered resources."""
        self.roles.add(role, consumed, weight)
        self._fws[role] = DrfSorter(self._total)
        if limit is not None:
            self._limit[role] = limit
        if guarantee is not None:
            self._guarantee[role] = guarantee
            self.reserve(role, guarantee, consumed)

    def reserve(self, role: str, guarantee: Vec3, consumed: Vec3) -> None:
        """Count a role's unsatisfied guarantee in the headroom (for roles not in play
        ``add_role`` does not see: their guarantee must still be kept free)."""
        d = _deficit(guarantee, consumed)
        old = self._deficits.get(role, [0, 0, 0])
        self._deficits[role] = d
        for k in range(3):
            self._headroom[k] += d[k] - old[k]

    def add_framework(
        self, role: str, fid: str, consumed: Vec3, filters: dict[str, list[Filter]]
    ) -> None:
        self._fws[role].add(fid, consumed)
        self._filters[fid] = filters

    def add_starving(self, fid: str, roles: list[str]) -> None:
        """A framework that goes ahead of the DRF order (call in waiting order)."""
        self._starving.append((fid, roles))

    # -- running -----------------------------------------------------------------------

    def _enough(self, v: Vec3) -> bool:
        return v[0] >= self._min_cpu or v[1] >= self._min_mem

    def _cap(self, role: str, cut: Vec3) -> Vec3:
        """A new list: ``cut`` within the role's limit."""
        limit = self._limit.get(role)
        if limit is None:
            return [cut[0], cut[1], cut[2]]
        consumed = self.roles.consumed(role)
        return [max(0, min(c, lim - u)) for c, lim, u in zip(cut, limit, consumed, strict=True)]

    def _fair_cut(self, role: str, rem: Vec3, cluster_free: Vec3) -> Vec3:
        """``rem`` cut to the role's limit and to what the headroom leaves over."""
        cut = self._cap(role, rem)
        hr = self._headroom
        if hr[0] > 0 or hr[1] > 0 or hr[2] > 0:
            own = self._deficits.get(role, (0, 0, 0))
            for k in range(3):
                keep = hr[k] - own[k]
                if keep > 0:
                    cut[k] = max(0, min(cut[k], cluster_free[k] - keep))
        return cut

    def _try(
        self, row: int, agent: str, fid: str, role: str, cut: Vec3, rem: Vec3, cf: Vec3
    ) -> bool:
        """Draft ``cut`` for ``fid`` unless one of its filters covers it."""
        prior = self._drafts.get((row, fid, role))
        ports: Ranges = ()
        if prior is not None:
            ports = prior.ports
        elif row not in self._ports_given:
            ports = self._ports_of(row, agent)
        flist = self._filters[fid].get(agent)
        if flist:
            offered = (
                cut if prior is None else [a + b for a, b in zip(prior.resources, cut, strict=True)]
            )
            if blocked(flist, role, offered, ports, self._now, self._cycle):
                return False
        c0, c1, c2 = cut
        if prior is None:
            self._drafts[(row, fid, role)] = Draft(row, agent, fid, role, [c0, c1, c2], ports)
            self._ports_given.add(row)
        else:
            res = prior.resources
            res[0] += c0
            res[1] += c1
            res[2] += c2
        rem[0] -= c0
        rem[1] -= c1
        rem[2] -= c2
        cf[0] -= c0
        cf[1] -= c1
        cf[2] -= c2
        self.roles.charge(role, cut)
        self._fws[role].charge(fid, cut)
        if self._starving:
            self._starving = [s for s in self._starving if s[0] != fid]
        if role in self._guarantee:
            self.reserve(role, self._guarantee[role], self.roles.consumed(role))
        return True

    def _give(self, row: int, agent: str, role: str, cut: Vec3, rem: Vec3, cf: Vec3) -> bool:
        """Draft ``cut`` for the first framework of ``role`` that takes it."""
        for fid in self._fws[role].names():
            if self._try(row, agent, fid, role, cut, rem, cf):
                return True
        return False

    def _guarantees(self, rows: list[int], names: list[str], free: list[Vec3], cf: Vec3) -> None:
        for i, row in enumerate(rows):
            needy = [
                r for r in self.roles.names() if r in self._guarantee and any(self._deficits[r])
            ]
            if not needy:
                return
            rem = free[i]
            for role in needy:
                if not self._enough(rem):
                    break
                g, d = self._guarantee[role], self._deficits[role]
                cut = self._cap(role, [min(rem[k], d[k]) if g[k] > 0 else rem[k] for k in range(3)])
                if self._enough(cut):
                    self._give(row, names[row], role, cut, rem, cf)

    def _starving_first(self, row: int, agent: str, rem: Vec3, cf: Vec3) -> None:
        for fid, roles in list(self._starving):
            for role in sorted(roles, key=self.roles.share):
                cut = self._fair_cut(role, rem, cf)
                if self._enough(cut) and self._try(row, agent, fid, role, cut, rem, cf):
                    return

    def run(
        self, rows: list[int], names: list[str], free: list[Vec3], cluster_free: Vec3
    ) -> list[Draft]:
        """Draft offers over the candidate ``rows`` (table rows), whose free resources
        are ``free`` (mutated) and the sum of all agents' free is ``cluster_free``."""
        cf = list(cluster_free)
        if any(any(d) for r, d in self._deficits.items() if r in self._guarantee):
            self._guarantees(rows, names, free, cf)
        min_cpu, min_mem = self._min_cpu, self._min_mem
        for i, row in enumerate(rows):
            rem = free[i]
            if rem[0] < min_cpu and rem[1] < min_mem:
                continue
            agent = names[row]
            if self._starving:
                self._starving_first(row, agent, rem, cf)
            for role in self.roles.names():
                if rem[0] < min_cpu and rem[1] < min_mem:
                    break
                cut = self._fair_cut(role, rem, cf)
                if cut[0] >= min_cpu or cut[1] >= min_mem:
                    self._give(row, agent, role, cut, rem, cf)
        return list(self._drafts.values())
