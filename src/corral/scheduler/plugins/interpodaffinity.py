"""InterPodAffinity: required pod affinity and anti-affinity, both the incoming pod's and
the anti-affinity of pods already placed (filter); preferred terms (score).

Registered in the plugin registry; run by ``scheduler.decide``. Work is per topology
domain, not per node: matching pods are counted per (topologyKey, value) pair, then each
pair's node rows come from the table's label index. The cost is one pass over the placed
pods, paid only by pods that have affinity terms (plus a pass over the few placed pods
with required anti-affinity, which every pod must respect).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from corral.api.selectors import NOTHING, LabelSelector, SelectorError, try_selector_from_object
from corral.scheduler.framework import (
    Failure,
    Index,
    Mask,
    NodeTableView,
    Obj,
    PodInfo,
    Scores,
    register,
)

AFFINITY_REASON = "node(s) didn't match pod affinity rules"
ANTI_AFFINITY_REASON = "node(s) didn't match pod anti-affinity rules"
EXISTING_ANTI_AFFINITY_REASON = "node(s) didn't satisfy existing pods anti-affinity rules"
REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"

Pair = tuple[str, str]


@dataclass(frozen=True)
class Term:
    """A PodAffinityTerm resolved against the pod that owns it."""

    selector: LabelSelector
    namespaces: frozenset[str] | None  # None = every namespace
    topology_key: str

    def matches(self, pod: PodInfo) -> bool:
        if self.namespaces is not None and pod.namespace not in self.namespaces:
            return False
        return self.selector.matches(pod.labels)


def make_term(owner: PodInfo, raw: Obj) -> Term:
    try:
        selector = try_selector_from_object(raw.get("labelSelector"))
    except SelectorError:
        selector = NOTHING
    extra = []
    for key in raw.get("matchLabelKeys") or []:
        if key in owner.labels:
            extra.append({"key": key, "operator": "In", "values": [owner.labels[key]]})
    for key in raw.get("mismatchLabelKeys") or []:
        if key in owner.labels:
            extra.append({"key": key, "operator": "NotIn", "values": [owner.labels[key]]})
    if extra and not selector.nothing:
        sel = dict(raw.get("labelSelector") or {})
        sel["matchExpressions"] = list(sel.get("matchExpressions") or []) + extra
        selector = try_selector_from_object(sel)
    names = raw.get("namespaces") or []
    ns_selector = raw.get("namespaceSelector")
    namespaces: frozenset[str] | None
    if (
        ns_selector is not None
        and not ns_selector.get("matchLabels")
        and not ns_selector.get("matchExpressions")
    ):
        namespaces = None  # an empty namespaceSelector selects every namespace
    elif names or ns_selector is not None:
        namespaces = frozenset(names)
    else:
        namespaces = frozenset({owner.namespace})
    return Term(selector, namespaces, raw.get("topologyKey", ""))


def terms(pod: PodInfo, kind: str, mode: str) -> list[Term]:
    raw = (pod.affinity.get(kind) or {}).get(mode) or []
    if mode == PREFERRED:
        return [make_term(pod, w.get("podAffinityTerm") or {}) for w in raw]
    return [make_term(pod, t) for t in raw]


def _pair_mask(table: NodeTableView, counts: Counter[Pair]) -> Mask:
    mask = np.zeros(len(table), dtype=np.bool_)
    for (key, value), n in counts.items():
        if n > 0:
            rows = table.rows_with_label(key).get(value)
            if rows is not None:
                mask[rows] = True
    return mask


def _has_keys(table: NodeTableView, keys: set[str]) -> Mask:
    mask = np.ones(len(table), dtype=np.bool_)
    for key in keys:
        has = np.zeros(len(table), dtype=np.bool_)
        for rows in table.rows_with_label(key).values():
            has[rows] = True
        mask &= has
    return mask


@register
class InterPodAffinity:
    name: ClassVar[str] = "InterPodAffinity"
    resolvable: ClassVar[frozenset[str]] = frozenset(
        {ANTI_AFFINITY_REASON, EXISTING_ANTI_AFFINITY_REASON}
    )

    def filter(self, pod: PodInfo, table: NodeTableView, candidates: Index) -> list[Failure]:
        out: list[Failure] = []
        taken = np.zeros(len(candidates), dtype=np.bool_)
        affinity = terms(pod, "podAffinity", REQUIRED)
        anti = terms(pod, "podAntiAffinity", REQUIRED)
        placed = table.all_pods() if affinity or anti else []
        if affinity:
            counts: Counter[Pair] = Counter()
            for row, other in placed:
                if all(t.matches(other) for t in affinity):
                    for t in affinity:
                        value = table.labels[row].get(t.topology_key)
                        if value is not None:
                            counts[(t.topology_key, value)] += 1
            ok = _has_keys(table, {t.topology_key for t in affinity})
            if counts:
                for t in affinity:
                    ok &= _pair_mask(
                        table, Counter({p: n for p, n in counts.items() if p[0] == t.topology_key})
                    )
            elif not all(t.matches(pod) for t in affinity):
                ok[:] = False  # no pod to be near, and the pod is not the first of its group
            bad = ~ok[candidates]
            if bad.any():
                out.append(Failure(AFFINITY_REASON, bad))
                taken |= bad
        if anti:
            counts = Counter()
            for row, other in placed:
                for t in anti:
                    value = table.labels[row].get(t.topology_key)
                    if value is not None and t.matches(other):
                        counts[(t.topology_key, value)] += 1
            bad = _pair_mask(table, counts)[candidates] & ~taken
            if bad.any():
                out.append(Failure(ANTI_AFFINITY_REASON, bad))
                taken |= bad
        counts = Counter()
        for row, other in table.pods_with_anti_affinity():
            for t in terms(other, "podAntiAffinity", REQUIRED):
                value = table.labels[row].get(t.topology_key)
                if value is not None and t.matches(pod):
                    counts[(t.topology_key, value)] += 1
        if counts:
            bad = _pair_mask(table, counts)[candidates] & ~taken
            if bad.any():
                out.append(Failure(EXISTING_ANTI_AFFINITY_REASON, bad))
        return out

    def score(self, pod: PodInfo, table: NodeTableView, feasible: Index) -> Scores:
        weighted: list[tuple[Term, int]] = []
        for kind, sign in (("podAffinity", 1), ("podAntiAffinity", -1)):
            raw = (pod.affinity.get(kind) or {}).get(PREFERRED) or []
            for w in raw:
                term = make_term(pod, w.get("podAffinityTerm") or {})
                weighted.append((term, sign * int(w.get("weight") or 0)))
        if not weighted:
            return np.zeros(len(feasible), dtype=np.float64)
        by_pair: Counter[Pair] = Counter()
        for row, other in table.all_pods():
            for t, weight in weighted:
                value = table.labels[row].get(t.topology_key)
                if value is not None and t.matches(other):
                    by_pair[(t.topology_key, value)] += weight
        total = np.zeros(len(table), dtype=np.int64)
        for (key, value), w in by_pair.items():
            rows = table.rows_with_label(key).get(value)
            if rows is not None:
                total[rows] += w
        s = total[feasible]
        if not len(s) or s.max() == s.min():
            return np.zeros(len(feasible), dtype=np.float64)
        lo, hi = int(s.min()), int(s.max())
        return np.floor(100 * ((s - lo) / (hi - lo)))
