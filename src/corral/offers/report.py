"""What the allocator can say about itself: per-role and per-framework reports, and why a
framework gets no offers.

``Allocator.role_report``, ``framework_report`` and ``why`` delegate here; the master
serves them in ``/state``, ``/roles`` and ``/metrics``, and the CLI in ``corral top`` and
``corral why``. These functions only read the allocator (they are part of it, split out
to keep allocator.py about the offer lifecycle), compute from the same state the next
cycle will use, and may be called at any time. Vectors come back as 4-column table
vectors (cpu millicores, memory bytes, disk bytes, pods 0); times are monotonic.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from corral.offers.drf import dominant_share
from corral.offers.filters import blocked
from corral.offers.resources import MB, scalars
from corral.offers.usage import Vec3, add3

if TYPE_CHECKING:
    from corral.offers.allocator import Allocator, _Framework

#: how many frameworks ``why`` names as being ahead in the DRF order
_AHEAD_SHOWN = 5


def _np4(v: Vec3 | None) -> npt.NDArray[np.int64]:
    v = v or [0, 0, 0]
    return np.array([v[0], v[1], v[2], 0], dtype=np.int64)


def _fmt(v: Vec3) -> str:
    s = scalars(v)
    return f"cpus {s['cpus']:g}, mem {s['mem']:.0f} MB, disk {s['disk']:.0f} MB"


def _total(a: Allocator) -> Vec3:
    t = a.total()
    return [int(t[0]), int(t[1]), int(t[2])]


def role_report(a: Allocator) -> dict[str, dict[str, Any]]:
    by_role, _ = a.usage.totals()
    total = _total(a)
    members: dict[str, list[str]] = {}
    for fw in a._frameworks.values():
        for r in fw.roles:
            members.setdefault(r, []).append(fw.id)
    offered_roles = {r for r, v in a.book.offered_role.items() if any(v)}
    names = (set(members) | set(by_role) | offered_roles | set(a._weights) | set(a._quotas)) | {
        a.config.kubernetes_role
    }
    out: dict[str, dict[str, Any]] = {}
    for role in sorted(names):
        alloc = by_role.get(role)
        offered = a.book.offered_role.get(role)
        share = dominant_share(add3(alloc, offered), total)
        weight = a._weights.get(role, 1.0)
        g, lim = a._quotas.get(role, (None, None))
        out[role] = {
            "allocated": _np4(alloc),
            "offered": _np4(offered),
            "dominant_share": share,
            "weighted_share": share / weight,
            "weight": weight,
            "guarantee": g,
            "limit": lim,
            "frameworks": sorted(members.get(role, [])),
        }
    return out


def framework_report(a: Allocator, fid: str) -> dict[str, Any]:
    fw = a._framework(fid)
    _, by_fw = a.usage.totals()
    alloc: Vec3 = [0, 0, 0]
    for (f, _role), v in by_fw.items():
        if f == fid:
            alloc = add3(alloc, v)
    offered: Vec3 = [0, 0, 0]
    for (f, _role), v in a.book.offered_fw.items():
        if f == fid:
            offered = add3(offered, v)
    now = a.clock.monotonic()
    return {
        "allocated": _np4(alloc),
        "offered": _np4(offered),
        "dominant_share": dominant_share(add3(alloc, offered), _total(a)),
        "roles": list(fw.roles),
        "suppressed_roles": sorted(fw.suppressed),
        "active": fw.active,
        "filters": len(a._filters.active(fid, now, a._cycle + 1)),
        "outstanding_offers": len(a.book.by_fw.get(fid, {})),
        "last_offered": fw.last_offered,
        "pending_demand": a._has_demand(fw),
    }


def _order_key(
    a: Allocator, fw: _Framework, role: str, total: Vec3
) -> tuple[float, str, float, str]:
    by_role, by_fw = a.usage.totals()
    rshare = dominant_share(add3(by_role.get(role), a.book.offered_role.get(role)), total)
    k = (fw.id, role)
    fshare = dominant_share(add3(by_fw.get(k), a.book.offered_fw.get(k)), total)
    return (rshare / a._weights.get(role, 1.0), role, fshare, fw.id)


def _open_rows(
    a: Allocator,
    fid: str,
    roles: list[str],
    rows: list[int],
    free: npt.NDArray[np.int64],
    now: float,
) -> list[int]:
    """The rows of ``rows`` whose free resources some role of ``fid`` is not filtered on."""
    mine = a._filters.of(fid)
    names = a.table.names
    out = []
    for r in rows:
        filters = mine.get(names[r])
        if not filters:
            out.append(r)
            continue
        vec, ports = free[r].tolist(), a._ports_of(r, names[r])
        if not all(blocked(filters, role, vec, ports, now, a._cycle + 1) for role in roles):
            out.append(r)
    return out


def why(a: Allocator, fid: str) -> list[str]:
    fw = a._frameworks.get(fid)
    if fw is None:
        return [f"unknown framework {fid}"]
    cfg = a.config
    k8s = cfg.kubernetes_role
    now = a.clock.monotonic()
    reasons: list[str] = []
    blocking = False
    if not fw.active:
        reasons.append("it is inactive (disconnected): no offers until it subscribes again")
        blocking = True
    if k8s in fw.roles:
        reasons.append(f"role {k8s} belongs to Kubernetes pods and is never offered")
    if fw.suppressed:
        reasons.append(f"suppressed roles: {', '.join(sorted(fw.suppressed))} (REVIVE lifts)")
    roles = fw.offerable(k8s)
    if not roles:
        reasons.append("it has no role that may be offered resources")
        return reasons
    held = a.book.by_fw.get(fid, {})
    if held:
        where = sorted({o.agent for o in held.values()})
        reasons.append(
            f"it holds {len(held)} outstanding offer(s) on {', '.join(where[:5])}"
            + (" ..." if len(where) > 5 else "")
            + " (those agents stay with it until it accepts or declines)"
        )
    filters = a._filters.active(fid, now, a._cycle + 1)
    if filters:
        left = max(f.expires for _, f in filters) - now
        until = f"for up to {left:.1f}s more" if left > 0 else "until the next cycle"
        n = len({agent for agent, _ in filters})
        reasons.append(f"filtered on {n} agent(s) after refusals, {until} (REVIVE clears)")
    total = _total(a)
    by_role, _ = a.usage.totals()
    min_cpu, min_mem = a._min_cpu, a._min_mem
    limited = []
    for role in roles:
        lim = a._quotas.get(role, (None, None))[1]
        if lim is None:
            continue
        consumed = add3(by_role.get(role), a.book.offered_role.get(role))
        left3 = [int(lim[k]) - consumed[k] for k in range(3)]
        spent = [n for n, left in zip(("cpus", "mem", "disk"), left3, strict=True) if left <= 0]
        if spent:
            reasons.append(
                f"role {role} has reached its quota limit for {', '.join(spent)} "
                f"(it consumes {_fmt(consumed)})"
            )
        if left3[0] < min_cpu and left3[1] < min_mem:
            limited.append(role)
    if len(limited) == len(roles):
        blocking = True
    headroom = [0, 0, 0]
    needy = []
    for role, (g, _lim) in a._quotas.items():
        if g is None or role in roles:
            continue
        consumed = add3(by_role.get(role), a.book.offered_role.get(role))
        d = [max(0, int(g[k]) - consumed[k]) for k in range(3)]
        if any(d):
            needy.append(role)
            headroom = add3(headroom, d)
    if needy:
        reasons.append(
            f"{_fmt(headroom)} stays unallocated for the unmet quota guarantees of "
            f"{', '.join(sorted(needy))}"
        )
    if len(a.table) == 0:
        reasons.append("there are no nodes")
        return reasons
    agents = a.agents.mask()
    if not agents.any():
        reasons.append(
            "there are no agents: every node is cordoned or tainted NoSchedule/NoExecute"
        )
        return reasons
    free = a.agents.free()
    ok = agents & ((free[:, 0] >= min_cpu) | (free[:, 1] >= min_mem))
    rows = np.flatnonzero(ok)
    if rows.size == 0:
        cand = np.flatnonzero(agents)
        scores = free[cand, 0] / max(min_cpu, 1) + free[cand, 1] / max(min_mem, 1)
        best = int(cand[int(np.argmax(scores))])
        reasons.append(
            f"no agent has free resources >= the minimum allocatable (cpus "
            f"{cfg.min_cpus:g} or mem {cfg.min_mem_mb:g} MB); the most free is "
            f"{a.table.names[best]}: {_fmt(free[best].tolist())}"
        )
        return reasons
    open_rows = _open_rows(a, fw.id, roles, rows.tolist(), free, now)
    if not open_rows:
        reasons.append(f"all {rows.size} agent(s) with free resources filter it out")
        blocking = True
    if a._has_demand(fw) and cfg.starvation_bound is not None and not held and open_rows:
        last = -math.inf if fw.last_offered is None else fw.last_offered
        waited = now - max(fw.demand_since, last)
        if waited >= cfg.starvation_bound / 2:
            reasons.append(f"it has waited {waited:.1f}s for an offer: it goes ahead of DRF order")
    mine_key = min(_order_key(a, fw, r, total) for r in roles)
    ahead: list[str] = []
    for other in a._frameworks.values():
        if other.id == fid or not other.active:
            continue
        others = other.offerable(k8s)
        if (
            others
            and min(_order_key(a, other, r, total) for r in others) < mine_key
            and _open_rows(a, other.id, others, open_rows, free, now)
        ):
            ahead.append(other.id)
    if ahead:
        shown = ", ".join(sorted(ahead)[:_AHEAD_SHOWN]) + (
            " ..." if len(ahead) > _AHEAD_SHOWN else ""
        )
        reasons.append(
            f"it is behind {shown} in DRF order (role {mine_key[1]}: weighted share "
            f"{mine_key[0]:.3f}); {len(open_rows)} agent(s) with free resources are open to it"
        )
    if not blocking and not ahead and not held:
        reasons.append(
            f"nothing blocks it: {len(open_rows)} agent(s) with at least "
            f"{min_cpu / 1000:g} cpus or {min_mem / MB:g} MB free are open to it this cycle"
        )
    return reasons
