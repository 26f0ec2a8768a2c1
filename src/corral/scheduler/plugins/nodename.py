"""NodeName filter: a pod that names its node (``spec.nodeName``) fits only that node.

Registered in the plugin registry; run by ``scheduler.decide`` over the node table.
"""

from __future__ import annotations

from typing import ClassVar

from corral.scheduler.framework import Failure, Index, NodeTableView, PodInfo, register

REASON = "node(s) didn't match the requested node name"


@register
class NodeName:
    name: ClassVar[str] = "NodeName"
    resolvable: ClassVar[frozenset[str]] = frozenset()

    def filter(self, pod: PodInfo, table: NodeTableView, candidates: Index) -> list[Failure]:
        if not pod.node_name:
            return []
        row = table.row(pod.node_name)
        mask = candidates != (-1 if row is None else row)
        return [Failure(REASON, mask)] if mask.any() else []
