"""PodTopologySpread: ``topologySpreadConstraints`` with ``DoNotSchedule`` (filter) and
``ScheduleAnyway`` (score).

Registered in the plugin registry; run by ``scheduler.decide``. Matching pods are
counted once per node (one pass over the placed pods, paid only by pods that declare
constraints), then summed per domain with ``np.bincount`` over a per-row domain id.

Filter: a node without the topology key fails (``missing required label``); otherwise
``count(domain) + self-match - min over domains > maxSkew`` fails. Only nodes that pass
the pod's node affinity/selector (``nodeAffinityPolicy: Honor``, the default) and carry
every constraint's key count; fewer domains than ``minDomains`` makes the minimum 0.
Score: ``sum(count * log(domains + 2) + maxSkew - 1)`` per node, fewest best, as
Kubernetes normalises it; nodes lacking a key score 0. Kubernetes' system default
constraints (spreading by Service/ReplicaSet selectors) are not applied.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from corral.api.selectors import NOTHING, LabelSelector, SelectorError, try_selector_from_object
from corral.api.taints import tolerates
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
from corral.scheduler.plugins.nodeaffinity import required_mask

REASON = "node(s) didn't match pod topology spread constraints"
MISSING_LABEL_REASON = REASON + " (missing required label)"
HOSTNAME = "kubernetes.io/hostname"


def selector(pod: PodInfo, c: Obj) -> LabelSelector:
    raw = dict(c.get("labelSelector") or {})
    keys = [k for k in c.get("matchLabelKeys") or [] if k in pod.labels]
    if keys:
        raw["matchExpressions"] = list(raw.get("matchExpressions") or []) + [
            {"key": k, "operator": "In", "values": [pod.labels[k]]} for k in keys
        ]
    try:
        return try_selector_from_object(raw if c.get("labelSelector") is not None or keys else None)
    except SelectorError:
        return NOTHING


def _domain_ids(table: NodeTableView, key: str) -> tuple[npt.NDArray[np.intp], int]:
    ids = np.full(len(table), -1, dtype=np.intp)
    groups = table.rows_with_label(key)
    for i, rows in enumerate(groups.values()):
        ids[rows] = i
    return ids, len(groups)


def _untainted(pod: PodInfo, table: NodeTableView) -> Mask:
    ok = np.ones(len(table), dtype=np.bool_)
    for sig, rows in table.taint_groups().items():
        for key, value, effect in sig:
            taint = {"key": key, "value": value, "effect": effect}
            if effect in ("NoSchedule", "NoExecute") and not any(
                tolerates(t, taint) for t in pod.tolerations
            ):
                ok[rows] = False
                break
    return ok


class _Counts:
    """Per-row counts of the placed pods each constraint selects, and which rows count."""

    def __init__(self, pod: PodInfo, table: NodeTableView, constraints: list[Obj]) -> None:
        self.selectors = [selector(pod, c) for c in constraints]
        self.per_row = np.zeros((len(constraints), len(table)), dtype=np.int64)
        for row, other in table.all_pods():
            if other.namespace == pod.namespace:
                for i, sel in enumerate(self.selectors):
                    if sel.matches(other.labels):
                        self.per_row[i, row] += 1
        eligible = np.ones(len(table), dtype=np.bool_)
        allowed = required_mask(pod, table)
        self.has_keys = np.ones(len(table), dtype=np.bool_)
        for c in constraints:
            ids, _ = _domain_ids(table, c.get("topologyKey", ""))
            self.has_keys &= ids >= 0
        for c in constraints:
            if allowed is not None and c.get("nodeAffinityPolicy", "Honor") == "Honor":
                eligible &= allowed
            if c.get("nodeTaintsPolicy", "Ignore") == "Honor":
                eligible &= _untainted(pod, table)
        self.eligible = eligible & self.has_keys


@register
class PodTopologySpread:
    name: ClassVar[str] = "PodTopologySpread"
    resolvable: ClassVar[frozenset[str]] = frozenset({REASON})

    def filter(self, pod: PodInfo, table: NodeTableView, candidates: Index) -> list[Failure]:
        hard = [
            c for c in pod.spread if c.get("whenUnsatisfiable", "DoNotSchedule") == "DoNotSchedule"
        ]
        if not hard:
            return []
        counts = _Counts(pod, table, hard)
        missing = np.zeros(len(candidates), dtype=np.bool_)
        skewed = np.zeros(len(candidates), dtype=np.bool_)
        for i, c in enumerate(hard):
            ids, ndomains = _domain_ids(table, c.get("topologyKey", ""))
            elig = counts.eligible
            per_domain = np.bincount(ids[elig], weights=counts.per_row[i][elig], minlength=ndomains)
            present = np.zeros(ndomains, dtype=np.bool_)
            present[ids[elig]] = True
            domains = per_domain[present]
            min_match = int(domains.min()) if len(domains) else 0
            if len(domains) < int(c.get("minDomains") or 1):
                min_match = 0
            self_match = 1 if counts.selectors[i].matches(pod.labels) else 0
            cand_ids = ids[candidates]
            undecided = ~(missing | skewed)
            missing |= undecided & (cand_ids < 0)
            match = np.where(cand_ids >= 0, per_domain[np.maximum(cand_ids, 0)], 0)
            skew = match + self_match - min_match
            skewed |= undecided & (cand_ids >= 0) & (skew > int(c.get("maxSkew") or 1))
        out = []
        if missing.any():
            out.append(Failure(MISSING_LABEL_REASON, missing))
        if skewed.any():
            out.append(Failure(REASON, skewed))
        return out

    def score(self, pod: PodInfo, table: NodeTableView, feasible: Index) -> Scores:
        soft = [c for c in pod.spread if c.get("whenUnsatisfiable") == "ScheduleAnyway"]
        if not soft or not len(feasible):
            return np.zeros(len(feasible), dtype=np.float64)
        counts = _Counts(pod, table, soft)
        scored = counts.has_keys[feasible]
        total = np.zeros(len(feasible), dtype=np.float64)
        for i, c in enumerate(soft):
            key = c.get("topologyKey", "")
            ids, ndomains = _domain_ids(table, key)
            fids = ids[feasible][scored]
            if key == HOSTNAME:
                size = len(fids)
                match = counts.per_row[i][feasible]
            else:
                size = len(np.unique(fids))
                elig = counts.eligible
                per_domain = np.bincount(
                    ids[elig], weights=counts.per_row[i][elig], minlength=ndomains
                )
                match = np.where(ids[feasible] >= 0, per_domain[np.maximum(ids[feasible], 0)], 0)
            weight = math.log(size + 2)
            total += match * weight + (int(c.get("maxSkew") or 1) - 1)
        raw = np.floor(total + 0.5).astype(np.int64)  # Go math.Round (half away)
        out = np.zeros(len(feasible), dtype=np.float64)
        if not scored.any():
            return out
        lo, hi = int(raw[scored].min()), int(raw[scored].max())
        if hi == 0:
            out[scored] = 100
        else:
            out[scored] = (100 * (hi + lo - raw[scored])) // hi
        return out
