"""TaintToleration: the filter (a node's NoSchedule/NoExecute taints must all be
tolerated) and the score (fewer untolerated PreferNoSchedule taints is better).

Registered in the plugin registry; run by ``scheduler.decide``. Nodes are handled per
distinct taint set (``table.taint_groups()``), not per node: most nodes have no taints
and a cluster has few distinct taint sets, so a pod is checked once per set.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from corral.api.taints import tolerates
from corral.scheduler.framework import (
    Failure,
    Index,
    NodeTableView,
    Obj,
    PodInfo,
    Scores,
    register,
)

HARD_EFFECTS = ("NoSchedule", "NoExecute")


def untolerated_reason(key: str, value: str) -> str:
    return f"node(s) had untolerated taint {{{key}: {value}}}"


def _tolerated(tolerations: list[Obj], key: str, value: str, effect: str) -> bool:
    taint = {"key": key, "value": value, "effect": effect}
    return any(tolerates(t, taint) for t in tolerations)


@register
class TaintToleration:
    name: ClassVar[str] = "TaintToleration"
    resolvable: ClassVar[frozenset[str]] = frozenset()

    def filter(self, pod: PodInfo, table: NodeTableView, candidates: Index) -> list[Failure]:
        groups = table.taint_groups()
        if not groups:
            return []
        reasons: list[str] = []
        which = np.full(len(table), -1, dtype=np.intp)
        for sig, rows in groups.items():
            for key, value, effect in sig:
                if effect in HARD_EFFECTS and not _tolerated(pod.tolerations, key, value, effect):
                    reason = untolerated_reason(key, value)
                    if reason not in reasons:
                        reasons.append(reason)
                    which[rows] = reasons.index(reason)
                    break
        if not reasons:
            return []
        picked = which[candidates]
        out = [Failure(r, picked == i) for i, r in enumerate(reasons)]
        return [f for f in out if f.mask.any()]

    def score(self, pod: PodInfo, table: NodeTableView, feasible: Index) -> Scores:
        groups = table.taint_groups()
        if not groups:  # no node is tainted: every node is as good
            return np.full(len(feasible), 100.0)
        soft = [t for t in pod.tolerations if (t.get("effect") or "") in ("", "PreferNoSchedule")]
        counts = np.zeros(len(table), dtype=np.int64)
        for sig, rows in groups.items():
            n = sum(
                1
                for key, value, effect in sig
                if effect == "PreferNoSchedule" and not _tolerated(soft, key, value, effect)
            )
            counts[rows] = n
        c = counts[feasible]
        top = int(c.max()) if len(c) else 0
        if top == 0:
            return np.full(len(feasible), 100.0)
        return (100 - (100 * c) // top).astype(np.float64)
