"""The offer allocator: Mesos' resource offers under weighted DRF, over the node table.

Sans-I/O. The Mesos master's shell feeds it events (framework subscribed, updated,
disconnected, removed; DECLINE, ACCEPT, SUPPRESS, REVIVE; weights and quota) and runs
``allocate()`` every ``config.interval`` seconds, on events, and at ``next_wakeup()``;
what comes back are instructions (``SendOffers``, ``RescindOffer``) for the shell to
send. Time comes from the injected ``Clock``. Nothing here awaits or does I/O.

**One node table.** There is no second book of agents: the allocator reads the
Kubernetes scheduler's ``NodeTable`` (``scheduler/snapshot.py``). Agents are its rows
that are neither cordoned nor tainted NoSchedule/NoExecute; free is allocatable minus
requested. An outstanding offer holds its resources in the table as a pseudo-pod keyed
``offer/<id>``, so the Kubernetes scheduler never binds into offered resources and the
allocator never offers what a pod holds. Pod slots are not held: an offer advertises
the node's free ones (``Offer.pods``, the ``pods`` resource) for frameworks to size their
launches, and the master refuses a task past the node's pods limit. Usage by role and framework arrives through the
table's ``pod_listeners``: a pod labelled ``api.mesos.FRAMEWORK_ID`` is a task of that
framework in the role of its ``api.mesos.ROLE`` label (``"*"`` when absent; the value
may be the role itself or ``api.mesos.label_safe(role)``); any other pod counts toward
the Kubernetes role (``config.kubernetes_role``, or ``config.namespace_roles`` of its
namespace), which is ranked with the rest but never offered anything. So DRF sees the
whole pool.

This module holds the policy and the public API; the pieces it drives are split out:
``cycle.py`` (the decision of one cycle), ``drf.py`` (the DRF order), ``filters.py``
(refusal filters), ``book.py`` (outstanding offers and their table holds), ``usage.py``
(pods charged to roles and frameworks), ``agents.py`` (the table seen as agents),
``report.py`` (``why`` and the reports), ``model.py`` (instructions and config) and
``resources.py`` (Mesos units and port ranges).

Offer lifecycle::

                    allocate()
        (free ≥ min allocatable on an agent,
         first eligible framework in line)
                        │  hold offer/<id> added to the table
                        ▼
                  ┌─────────────┐  take() (ACCEPT)   accepted: hold removed; the caller
                  │ outstanding │ ─────────────────► accounts the launched pods and
                  └─────────────┘                    refuse()s the unused rest
                   │    │     │
       decline()   │    │     │  deactivate/remove framework, reclaim() for a pending
       (DECLINE)   │    │     │  Kubernetes pod, agent gone/cordoned/over-committed,
                   ▼    │     ▼  role dropped by update_framework
               declined │  rescinded ─► RescindOffer
               + filter │
                        ▼  allocate() after config.offer_timeout
                    timed out ─► RescindOffer

Every way out removes the hold, so the resources are free for the next cycle or the
Kubernetes scheduler. An offer id is never reused (``f"{id_prefix}{n}"``).

**No starvation** (beyond Mesos). A framework that refuses a whole offer (DECLINE, or
an ACCEPT that launched nothing) is filtered on that agent for at least the next cycle,
whatever ``refuse_seconds`` says, so the agent goes to the next framework in line (the
unused rest of an offer it did launch on is filtered for ``refuse_seconds`` only, so
that frameworks taking one task per offer still converge to their DRF shares); and a
framework with demand (active, an unsuppressed role), no outstanding offer
and no offer for half of ``config.starvation_bound`` goes ahead of the DRF order,
longest waiting first. Beside a framework that declines everything with
``refuse_seconds: 0`` another waits one cycle; when several contend for too little,
they take turns. The price: while resources are scarce, waiting time outranks DRF
shares, so frameworks that want nothing should SUPPRESS (as Mesos advises), and
``starvation_bound=None`` gives plain DRF.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from corral.api.mesos import role_error
from corral.offers import report
from corral.offers.agents import AgentView
from corral.offers.book import OfferBook
from corral.offers.cycle import AllocationPass, Draft, Vec3
from corral.offers.filters import BlockedRows, Filter, FilterStore
from corral.offers.model import (
    AllocatorConfig,
    Instruction,
    InvalidOffers,
    Offer,
    RescindOffer,
    SendOffers,
)
from corral.offers.resources import (
    MB,
    UNLIMITED,
    Ranges,
    normalize_ranges,
)
from corral.offers.usage import HOLD_PREFIX, UsageBook, add3
from corral.scheduler.framework import Mask
from corral.scheduler.snapshot import NodeTable
from corral.util.clock import Clock

__all__ = [
    "HOLD_PREFIX",
    "Allocator",
    "AllocatorConfig",
    "Instruction",
    "InvalidOffers",
    "Offer",
    "RescindOffer",
    "SendOffers",
]

Vector = npt.NDArray[np.int64]


@dataclass
class _Framework:
    id: str
    roles: tuple[str, ...]
    suppressed: set[str]
    active: bool = True
    #: since when it wants offers (added, activated, revived, unsuppressed)
    demand_since: float = 0.0
    last_offered: float | None = None

    def offerable(self, reserved: str) -> list[str]:
        return [r for r in self.roles if r not in self.suppressed and r != reserved]


def _vec3(v: Vector | Sequence[int] | None) -> Vec3:
    return [0, 0, 0] if v is None else [int(x) for x in v[:3]]


def _check_roles(roles: Sequence[str]) -> tuple[str, ...]:
    if isinstance(roles, str):
        raise ValueError("roles must be a list of role names, not a string")
    out = tuple(dict.fromkeys(roles)) or ("*",)
    for r in out:
        why = role_error(r) if isinstance(r, str) else "a role name is a string"
        if why:
            raise ValueError(f"invalid role name {r!r}: {why}")
    return out


class Allocator:
    """See the module docstring. Not thread-safe: one owner calls it."""

    def __init__(self, table: NodeTable, clock: Clock, config: AllocatorConfig | None = None):
        self.table = table
        self.clock = clock
        self.config = config or AllocatorConfig()
        c = self.config
        self._min_cpu = round(c.min_cpus * 1000)
        self._min_mem = round(c.min_mem_mb * MB)
        self.agents = AgentView(table, c.port_range)
        self._weights: dict[str, float] = {}
        self._quotas: dict[str, tuple[Vector | None, Vector | None]] = {}
        self._frameworks: dict[str, _Framework] = {}
        self._filters = FilterStore()
        #: (framework, agent) -> what its last ACCEPT there took, until it refuse()s
        self._taken: dict[tuple[str, str], Vec3] = {}
        self._blocked = BlockedRows()
        self.book = OfferBook(table, c.id_prefix)
        self.usage = UsageBook(
            c.kubernetes_role,
            c.namespace_roles,
            roles=self._known_roles,
            frameworks=lambda: self._frameworks,
        )
        self._cycle = 0
        table.pod_listeners.append(self.usage.on_pod)

    def _known_roles(self) -> set[str]:
        roles = {"*", self.config.kubernetes_role, *self.config.namespace_roles.values()}
        roles.update(self._weights, self._quotas)
        for fw in self._frameworks.values():
            roles.update(fw.roles)
        return roles

    # -- roles ---------------------------------------------------------------------------

    def set_weight(self, role: str, weight: float) -> None:
        """A role's DRF weight (default 1): its share counts as share / weight."""
        if not isinstance(weight, int | float) or not math.isfinite(weight) or weight <= 0:
            raise ValueError(f"weight of role {role!r} must be a positive number, not {weight!r}")
        _check_roles([role])
        self._weights[role] = float(weight)
        self.usage.changed()

    def weights(self) -> dict[str, float]:
        """The weights set (roles not listed weigh 1)."""
        return dict(self._weights)

    def set_quota(self, role: str, guarantee: Vector | None, limit: Vector | None) -> None:
        """Guarantee and limit of a role as table vectors (3 or 4 columns; the pods
        column is ignored). A limit column of ``resources.UNLIMITED`` does not limit.
        Both None clears the quota. Outstanding offers stay (Mesos does not rescind)."""
        _check_roles([role])
        g = self._quota_vec(role, "guarantee", guarantee, 0)
        lim = self._quota_vec(role, "limit", limit, UNLIMITED)
        if g is not None and lim is not None and bool((lim[:3] < g[:3]).any()):
            raise ValueError(f"quota of role {role!r}: limit must be >= guarantee")
        if g is None and lim is None:
            self._quotas.pop(role, None)
        else:
            self._quotas[role] = (g, lim)
        self.usage.changed()

    @staticmethod
    def _quota_vec(role: str, what: str, v: Vector | None, pad: int) -> Vector | None:
        if v is None:
            return None
        arr = np.asarray(v)
        if arr.ndim != 1 or arr.shape[0] not in (3, 4):
            raise ValueError(f"quota {what} of role {role!r} must have 3 or 4 columns")
        if not np.isfinite(arr.astype(np.float64)).all() or bool((arr < 0).any()):
            raise ValueError(f"quota {what} of role {role!r} must be finite and >= 0")
        out = np.full(4, pad, dtype=np.int64)
        out[: arr.shape[0]] = arr.astype(np.int64)
        out.flags.writeable = False
        return out

    def quotas(self) -> dict[str, tuple[Vector | None, Vector | None]]:
        return dict(self._quotas)

    # -- frameworks ----------------------------------------------------------------------

    def _demand_began(self, fw: _Framework, had: bool) -> None:
        if not had and self._has_demand(fw):
            fw.demand_since = self.clock.monotonic()

    def _has_demand(self, fw: _Framework) -> bool:
        return fw.active and bool(fw.offerable(self.config.kubernetes_role))

    def add_framework(
        self, fid: str, roles: Sequence[str], suppressed_roles: Sequence[str] = ()
    ) -> None:
        """A subscribed, active framework. ``ValueError`` for a known id or bad roles."""
        if fid in self._frameworks:
            raise ValueError(f"framework {fid} is already added")
        if not fid:
            raise ValueError("framework id must not be empty")
        rs = _check_roles(roles)
        sup = set(suppressed_roles)
        if not sup <= set(rs):
            raise ValueError(f"suppressed roles {sorted(sup - set(rs))} are not roles of {fid}")
        self._frameworks[fid] = _Framework(fid, rs, sup, demand_since=self.clock.monotonic())
        self.usage.changed()
        self._blocked.reset()

    def update_framework(
        self, fid: str, roles: Sequence[str], suppressed_roles: Sequence[str] = ()
    ) -> list[Instruction]:
        """New roles and suppressed roles (UPDATE_FRAMEWORK, re-SUBSCRIBE). Offers and
        filters of roles it left are dropped; those offers are rescinded."""
        fw = self._framework(fid)
        rs = _check_roles(roles)
        sup = set(suppressed_roles)
        if not sup <= set(rs):
            raise ValueError(f"suppressed roles {sorted(sup - set(rs))} are not roles of {fid}")
        had = self._has_demand(fw)
        gone = set(fw.roles) - set(rs)
        fw.roles, fw.suppressed = rs, sup
        self._filters.clear(fid, gone)
        out: list[Instruction] = [
            self._rescind(o.id)
            for o in list(self.book.by_fw.get(fid, {}).values())
            if o.role in gone
        ]
        self._demand_began(fw, had)
        self.usage.changed()
        self._blocked.reset()
        return out

    def deactivate_framework(self, fid: str) -> list[Instruction]:
        """Disconnected: its offers are rescinded and freed; no new ones. Filters stay."""
        fw = self._framework(fid)
        fw.active = False
        self._blocked.reset()
        return self._rescind_all(fid)

    def activate_framework(self, fid: str) -> None:
        fw = self._framework(fid)
        had = self._has_demand(fw)
        fw.active = True
        self._demand_began(fw, had)
        self._blocked.reset()

    def remove_framework(self, fid: str) -> list[Instruction]:
        """Torn down or failed over for good: offers rescinded, filters dropped. Its
        tasks' pods stay charged to it until they leave the table."""
        if fid not in self._frameworks:
            return []
        out = self._rescind_all(fid)
        del self._frameworks[fid]
        self._filters.clear(fid)
        self.book.forget_framework(fid)
        for key in [k for k in self._taken if k[0] == fid]:
            del self._taken[key]
        self.usage.changed()
        self._blocked.reset()
        return out

    def has_framework(self, fid: str) -> bool:
        return fid in self._frameworks

    def _framework(self, fid: str) -> _Framework:
        fw = self._frameworks.get(fid)
        if fw is None:
            raise KeyError(f"unknown framework {fid}")
        return fw

    # -- offers --------------------------------------------------------------------------

    def _release(self, oid: str) -> Offer:
        """Forget an outstanding offer and lift its table hold."""
        offer = self.book.release(oid)
        self._blocked.forget(self.table.row(offer.agent))
        return offer

    def _rescind(self, oid: str) -> RescindOffer:
        offer = self._release(oid)
        return RescindOffer(offer.framework_id, oid)

    def _rescind_all(self, fid: str) -> list[Instruction]:
        return [self._rescind(oid) for oid in list(self.book.by_fw.get(fid, {}))]

    def _refuse_for(self, refuse_seconds: float | None) -> float:
        c = self.config
        s = refuse_seconds
        if s is None or not isinstance(s, int | float) or math.isnan(s) or s < 0:
            s = c.default_refuse
        return float(min(s, c.max_refuse))

    def decline(self, fid: str, offer_ids: Sequence[str], refuse_seconds: float | None) -> None:
        """DECLINE: free the offers and filter them for ``refuse_seconds``. Ids that are
        unknown, gone or another framework's are ignored (as Mesos does)."""
        for oid in offer_ids:
            offer = self.book.offers.get(oid)
            if offer is None or offer.framework_id != fid:
                continue
            self._release(oid)
            self.refuse(fid, offer.agent, offer.role, offer.resources, offer.ports, refuse_seconds)

    def take(self, fid: str, offer_ids: Sequence[str]) -> list[Offer]:
        """ACCEPT: remove the offers and their holds and return them. All must be
        outstanding, this framework's, of one agent and one role, each named once;
        otherwise ``InvalidOffers`` and nothing changes. The caller then accounts the
        launched pods in the table and ``refuse()``s the unused rest."""
        if not offer_ids:
            raise InvalidOffers("no offers given")
        seen: set[str] = set()
        offers: list[Offer] = []
        for oid in offer_ids:
            if oid in seen:
                raise InvalidOffers(f"Offer {oid} appears more than once")
            seen.add(oid)
            offer = self.book.offers.get(oid)
            if offer is None:
                raise InvalidOffers(f"Offer {oid} is no longer valid")
            if offer.framework_id != fid:
                raise InvalidOffers(f"Offer {oid} belongs to another framework")
            offers.append(offer)
        agents = list(dict.fromkeys(o.agent for o in offers))
        if len(agents) > 1:
            raise InvalidOffers(f"offers span agents {agents[0]} and {agents[1]}")
        roles = list(dict.fromkeys(o.role for o in offers))
        if len(roles) > 1:
            raise InvalidOffers(
                f"offers are allocated to different roles {roles[0]} and {roles[1]}"
            )
        taken = [self._release(o.id) for o in offers]
        total: Vec3 = [0, 0, 0]
        for o in taken:
            total = add3(total, _vec3(o.resources))
        self._taken[(fid, agents[0])] = total
        return taken

    def refuse(
        self,
        fid: str,
        agent: str,
        role: str,
        resources: Vector,
        ports: Sequence[tuple[int, int]],
        refuse_seconds: float | None,
    ) -> None:
        """Filter: ``fid`` is not offered these resources (or a subset) for ``role`` on
        ``agent`` for ``refuse_seconds`` (None or negative: the default; capped). When it
        refuses everything it took there (or refuses without a ``take``), also for the
        whole next allocation cycle, however short ``refuse_seconds`` is; the unused rest
        of an offer it launched on is not held back so (DRF, not turns, decides)."""
        taken = self._taken.pop((fid, agent), None)
        if fid not in self._frameworks:
            return
        res = [max(0, x) for x in _vec3(resources)]
        if not any(res):
            return  # covers no offer (every offer carries cpus or mem)
        whole = taken is None or all(r >= t for r, t in zip(res, taken, strict=True))
        rng = normalize_ranges(ports)
        expires = self.clock.monotonic() + self._refuse_for(refuse_seconds)
        min_cycle = self._cycle + 1 if whole else self._cycle
        self._filters.add(fid, agent, Filter(role, res, rng, expires, min_cycle))

    def suppress(self, fid: str, roles: Sequence[str] | None = None) -> list[Instruction]:
        """SUPPRESS: no offers for these roles (None: all) until REVIVE. Outstanding
        offers stay, as in Mesos; returns []."""
        fw = self._frameworks.get(fid)
        if fw is not None:
            fw.suppressed |= set(fw.roles if roles is None else roles) & set(fw.roles)
            self._blocked.reset()
        return []

    def revive(self, fid: str, roles: Sequence[str] | None = None) -> None:
        """REVIVE: drop the framework's filters (of these roles) and unsuppress them."""
        fw = self._frameworks.get(fid)
        if fw is None:
            return
        had = self._has_demand(fw)
        chosen = set(fw.roles) if roles is None else set(roles)
        self._filters.clear(fid, None if roles is None else chosen)
        fw.suppressed -= chosen
        self._demand_began(fw, had)
        self._blocked.reset()

    def offer(self, offer_id: str) -> Offer | None:
        return self.book.offers.get(offer_id)

    def outstanding(self, fid: str | None = None) -> list[Offer]:
        """Outstanding offers (of one framework), oldest first."""
        if fid is None:
            return list(self.book.offers.values())
        return list(self.book.by_fw.get(fid, {}).values())

    # -- Kubernetes pods -----------------------------------------------------------------

    def reclaim(self, decide: Callable[[], str | None]) -> tuple[str | None, list[Instruction]]:
        """For a pending Kubernetes pod that fit nowhere: run ``decide`` (the scheduler's
        decision over the table) with every offer's hold lifted. If it picks a node, that
        node's offers are rescinded (and freed) so the pod can be placed there now.
        Costs O(outstanding offers); with none, ``decide`` is not called."""
        if not self.book:
            return None, []
        with self.book.lifted():
            node = decide()
        if node is None:
            return None, []
        return node, [self._rescind(oid) for oid in list(self.book.by_agent.get(node, {}))]

    # -- the cycle -----------------------------------------------------------------------

    def _ports_of(self, row: int, agent: str) -> Ranges:
        """What ports an offer on ``row`` can carry (none already offered there)."""
        offered = self.book.by_agent.get(agent)
        return self.agents.ports(row, [o.ports for o in offered.values()] if offered else ())

    def _expire(self, now: float, out: list[Instruction]) -> None:
        timeout = self.config.offer_timeout
        if timeout is not None:
            out.extend(self._rescind(oid) for oid in self.book.expired(now, timeout))
        if self._filters.expire(now, self._cycle):
            self._blocked.reset()

    def _rescind_invalid(self, agents: Mask, out: list[Instruction]) -> bool:
        """Rescind offers on agents gone, cordoned, tainted or over-committed."""
        if not self.book.by_agent:
            return False
        bad = ~agents | (self.agents.free() < 0).any(axis=1)
        row = self.table.row
        doomed = [a for a in self.book.by_agent if (r := row(a)) is None or bad[r]]
        for agent in doomed:
            out.extend(self._rescind(oid) for oid in list(self.book.by_agent[agent]))
        return bool(doomed)

    def _in_play(self) -> dict[str, list[_Framework]]:
        """Role -> frameworks that may be offered resources in it now."""
        play: dict[str, list[_Framework]] = {}
        k8s = self.config.kubernetes_role
        for fw in self._frameworks.values():
            if fw.active:
                for role in fw.offerable(k8s):
                    play.setdefault(role, []).append(fw)
        return play

    def _starving(self, now: float) -> list[_Framework]:
        bound = self.config.starvation_bound
        if bound is None:
            return []
        out = []
        for fw in self._frameworks.values():
            if fw.id in self.book.by_fw or not self._has_demand(fw):
                continue
            last = -math.inf if fw.last_offered is None else fw.last_offered
            since = max(fw.demand_since, last)
            if now - since >= bound / 2:
                out.append((since, last, fw.id, fw))
        # longest waiting first; on a tie, the one offered longest ago (or never)
        out.sort(key=lambda x: (x[0], x[1], x[2]))
        return [x[3] for x in out]

    def _consumed_role(self, role: str) -> Vec3:
        return add3(self.usage.totals()[0].get(role), self.book.offered_role.get(role))

    def allocate(self) -> list[Instruction]:
        """One cycle: rescind timed-out offers and offers on agents no longer usable,
        expire filters, then offer every agent's free resources (``offers/cycle.py``).
        Rescinds come first, then one ``SendOffers`` per framework."""
        self._cycle += 1
        now = self.clock.monotonic()
        out: list[Instruction] = []
        self._expire(now, out)
        if len(self.table) == 0:
            for agent in list(self.book.by_agent):
                out.extend(self._rescind(oid) for oid in list(self.book.by_agent[agent]))
            return out
        agents = self.agents.mask()
        self._rescind_invalid(agents, out)
        play = self._in_play()
        if not play:
            return out
        t = self.table
        free = self.agents.free()
        ok = agents & ((free[:, 0] >= self._min_cpu) | (free[:, 1] >= self._min_mem))
        rows = np.flatnonzero(ok)
        if rows.size == 0:
            return out
        np.maximum(free, 0, out=free)
        skip = self._blocked.skip(t.names, free)
        rows = rows[~skip[rows]]
        if rows.size == 0:
            return out
        total: Vec3 = t.allocatable[agents, :3].sum(axis=0).tolist()
        cluster_free: Vec3 = free[agents].sum(axis=0).tolist()
        drafts = self._plan(now, play, total, rows.tolist(), free[rows].tolist(), cluster_free)
        drafted = {d.row for d in drafts}
        self._blocked.learn(
            [r for r in rows.tolist() if r not in drafted],
            free,
            t.names,
            [(role, self._filters.of(fw.id)) for role, fws in play.items() for fw in fws],
            self._ports_of,
            now,
            self._cycle,
        )
        out.extend(self._materialise(now, drafts))
        return out

    def _plan(
        self,
        now: float,
        play: dict[str, list[_Framework]],
        total: Vec3,
        rows: list[int],
        free: list[Vec3],
        cluster_free: Vec3,
    ) -> list[Draft]:
        by_role, by_fw = self.usage.totals()
        # DRF charges what frameworks use and the offers they sit on; an offer made in the
        # last cycle is not charged yet, so a framework that answers quickly is not ranked
        # by whole-agent offers it is about to turn into tasks (or decline)
        held_role, held_fw = self.book.offered_before(now - self.config.interval)
        p = AllocationPass(total, self._min_cpu, self._min_mem, now, self._cycle, self._ports_of)
        for role in sorted(play):
            g, lim = self._quotas.get(role, (None, None))
            consumed = add3(by_role.get(role), held_role.get(role))
            weight = self._weights.get(role, 1.0)
            p.add_role(
                role,
                consumed,
                weight,
                None if g is None else _vec3(g),
                None if lim is None else _vec3(lim),
            )
            for fw in play[role]:
                k = (fw.id, role)
                p.add_framework(
                    role,
                    fw.id,
                    add3(by_fw.get(k), held_fw.get(k)),
                    self._filters.of(fw.id),
                )
        for role, (g, _) in self._quotas.items():
            if g is not None and role not in play:
                p.reserve(role, _vec3(g), self._consumed_role(role))
        k8s = self.config.kubernetes_role
        for fw in self._starving(now):
            p.add_starving(fw.id, fw.offerable(k8s))
        return p.run(rows, self.table.names, free, cluster_free)

    def _materialise(self, now: float, drafts: list[Draft]) -> list[Instruction]:
        """Make the drafted offers and group them per framework."""
        grouped: dict[str, list[Offer]] = {}
        for offer in self.book.create(drafts, self.agents.attributes, now, self.agents.pod_room):
            grouped.setdefault(offer.framework_id, []).append(offer)
        for fid in grouped:
            self._frameworks[fid].last_offered = now
        return [SendOffers(fid, tuple(offers)) for fid, offers in grouped.items()]

    def next_wakeup(self) -> float | None:
        """Monotonic time of the next offer timeout or filter expiry (None: nothing)."""
        times = []
        first = self.book.oldest()
        if self.config.offer_timeout is not None and first is not None:
            times.append(first.created + self.config.offer_timeout)
        f = self._filters.next_expiry()
        if f is not None:
            times.append(f)
        return min(times) if times else None

    # -- introspection -------------------------------------------------------------------

    def total(self) -> Vector:
        """Sum of allocatable over the agents (the DRF denominator), 4 columns."""
        if len(self.table) == 0:
            return np.zeros(4, dtype=np.int64)
        total: Vector = self.table.allocatable[self.agents.mask()].sum(axis=0)
        return total

    def role_report(self) -> dict[str, dict[str, Any]]:
        """Per role: allocated (pod usage) and offered vectors, dominant and weighted
        share, weight, quota guarantee and limit, frameworks subscribed to it."""
        return report.role_report(self)

    def framework_report(self, fid: str) -> dict[str, Any]:
        """Allocated, offered, dominant share, roles, suppressed roles, active, filters
        in force, last offered (monotonic or None), pending demand. ``KeyError`` if unknown."""
        return report.framework_report(self, fid)

    def why(self, fid: str) -> list[str]:
        """Why the framework gets no offers now, in words (``corral why``)."""
        return report.why(self, fid)
