"""Preemption: which lower-priority pods to evict so that a pod that fits nowhere fits.

Called by ``decide(..., preemption=True)`` (and directly by the scheduler loop through
``find_preemption``) after the filters rejected every node. Pure towards the caller: it
evicts victims only in a dry run on the table and puts them back before returning.

As Kubernetes' DefaultPreemption: only nodes rejected for reasons eviction can fix
(resources, pod count, host ports, anti-affinity, spread skew) are tried, at most
``max(10% of nodes, 100)`` of them; on each, every pod of lower priority is removed, the
pod must then pass all filters, and victims are reprieved most important first
(higher priority, then earlier start) while the pod still fits. The node is chosen by:
lowest highest-victim priority, smallest sum of priorities, fewest victims, latest start
among the highest-priority victims, then table order. PodDisruptionBudgets are ignored.
A pod with ``preemptionPolicy: Never`` never preempts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from corral.scheduler.decide import Filtered, build_plugins, fit_error, run_filters
from corral.scheduler.framework import PODS, RESOURCES, PodInfo, Profile
from corral.scheduler.plugins.noderesources import INSUFFICIENT, TOO_MANY_PODS
from corral.scheduler.snapshot import NodeTable

NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"
NEVER = "not eligible due to preemptionPolicy=Never."
MIN_CANDIDATES_PERCENTAGE = 10
MIN_CANDIDATES_ABSOLUTE = 100


@dataclass
class Preemption:
    """Evict ``victims`` (all on ``node``) and nominate ``node`` for the pod."""

    node: str
    victims: list[PodInfo]


def _fits(
    pod: PodInfo, table: NodeTable, profile: Profile, plugins: dict[str, Any], row: int
) -> Filtered:
    return run_filters(pod, table, profile, plugins, np.array([row], dtype=np.intp))


def select_victims(
    pod: PodInfo, table: NodeTable, profile: Profile, plugins: dict[str, Any], row: int
) -> list[PodInfo] | dict[str, int]:
    """The fewest victims on ``row`` that let ``pod`` fit, or the reasons it cannot."""
    node = table.names[row]
    potential = [p for p in table.pods_on(row) if p.priority < pod.priority]
    if not potential:
        return {NO_VICTIMS: 1}
    # cheap bound first: evicting every lower-priority pod must free enough resources
    freed = table.free(row) + sum(
        (p.requests for p in potential), np.zeros(len(RESOURCES), np.int64)
    )
    short = [
        TOO_MANY_PODS if c == PODS else INSUFFICIENT[RESOURCES[c]]
        for c in range(len(RESOURCES))
        if pod.requests[c] > 0 and pod.requests[c] > freed[c]
    ]
    if short:
        return dict.fromkeys(short, 1)
    for p in potential:
        table.remove_pod(p.key)
    try:
        result = _fits(pod, table, profile, plugins, row)
        if not len(result.feasible):
            return result.reasons
        victims: list[PodInfo] = []
        # most important first: higher priority, then the one that started earlier
        potential.sort(key=lambda p: (-p.priority, p.start_time or "~"))
        for p in potential:
            table.add_pod(p, node)
            if not len(_fits(pod, table, profile, plugins, row).feasible):
                table.remove_pod(p.key)
                victims.append(p)
        return victims
    finally:
        for p in potential:
            if table.node_of(p.key) is None:
                table.add_pod(p, node)


def _rank(victims: list[PodInfo]) -> tuple[int, int, int, str]:
    top = max(v.priority for v in victims)
    total = sum(v.priority + 2**31 for v in victims)
    earliest = min((v.start_time for v in victims if v.priority == top), default="")
    # smaller is better: latest start wins, so invert the string order
    inverted = "".join(chr(0x10FFFF - ord(c)) for c in earliest)
    return top, total, len(victims), inverted


def preempt(
    pod: PodInfo,
    table: NodeTable,
    profile: Profile,
    plugins: dict[str, Any] | None = None,
    filtered: Filtered | None = None,
) -> tuple[Preemption | None, str]:
    """(the preemption, or None; Kubernetes' ``preemption: ...`` post-filter message,
    empty when a preemption was found)."""
    if pod.preemption_policy == "Never":
        return None, f"preemption: {NEVER}"
    plugins = build_plugins(profile) if plugins is None else plugins
    if filtered is None:
        filtered = run_filters(pod, table, profile, plugins)
    n = len(table)
    rejected = np.ones(n, dtype=np.bool_)
    rejected[filtered.feasible] = False
    potential = np.flatnonzero(rejected & ~filtered.unresolvable)
    reasons: dict[str, int] = {}
    unhelpful = int((rejected & filtered.unresolvable).sum())
    if unhelpful:
        reasons[NOT_HELPFUL] = unhelpful
    limit = max(n * MIN_CANDIDATES_PERCENTAGE // 100, MIN_CANDIDATES_ABSOLUTE)
    found: list[tuple[tuple[int, int, int, str], int, list[PodInfo]]] = []
    for r in potential.tolist():
        outcome = select_victims(pod, table, profile, plugins, r)
        if isinstance(outcome, dict):
            for reason, count in outcome.items():
                reasons[reason] = reasons.get(reason, 0) + count
            continue
        if outcome:
            found.append((_rank(outcome), r, outcome))
            if len(found) >= limit:
                break
    if not found:
        return None, f"preemption: {fit_error(n, reasons)}"
    _, row, victims = min(found, key=lambda f: (f[0], f[1]))
    return Preemption(table.names[row], victims), ""


def find_preemption(pod: PodInfo, table: NodeTable, profile: Profile) -> Preemption | None:
    """The node and victims that make room for ``pod``, or None (see module docstring)."""
    return preempt(pod, table, profile)[0]
