"""NodeUnschedulable filter: cordoned nodes (``spec.unschedulable``) take no new pods,
unless the pod tolerates the ``node.kubernetes.io/unschedulable:NoSchedule`` taint.

Registered in the plugin registry; run by ``scheduler.decide`` over the node table.
"""

from __future__ import annotations

from typing import ClassVar

from corral.api.taints import tolerates
from corral.scheduler.framework import Failure, Index, NodeTableView, PodInfo, register

REASON = "node(s) were unschedulable"
TAINT = {"key": "node.kubernetes.io/unschedulable", "value": "", "effect": "NoSchedule"}


@register
class NodeUnschedulable:
    name: ClassVar[str] = "NodeUnschedulable"
    resolvable: ClassVar[frozenset[str]] = frozenset()

    def filter(self, pod: PodInfo, table: NodeTableView, candidates: Index) -> list[Failure]:
        mask = table.unschedulable.take(candidates)
        if not mask.any() or any(tolerates(t, TAINT) for t in pod.tolerations):
            return []
        return [Failure(REASON, mask)]
