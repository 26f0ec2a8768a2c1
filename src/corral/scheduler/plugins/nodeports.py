"""NodePorts filter: a pod's host ports must be free on the node.

Registered in the plugin registry; run by ``scheduler.decide``. Only pods that ask for a
``hostPort`` pay for the per-node check. Two ports conflict when protocol and port are
equal and the host IPs overlap (equal, or either is ``0.0.0.0``).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from corral.scheduler.framework import Failure, Index, NodeTableView, PodInfo, register

REASON = "node(s) didn't have free ports for the requested pod ports"
ANY_IP = "0.0.0.0"


def conflicts(wanted: list[tuple[str, str, int]], used: set[tuple[str, str, int]]) -> bool:
    if not used:
        return False
    for ip, proto, port in wanted:
        if ip == ANY_IP:
            if any(p == proto and n == port for _, p, n in used):
                return True
        elif (ip, proto, port) in used or (ANY_IP, proto, port) in used:
            return True
    return False


@register
class NodePorts:
    name: ClassVar[str] = "NodePorts"
    resolvable: ClassVar[frozenset[str]] = frozenset({REASON})

    def filter(self, pod: PodInfo, table: NodeTableView, candidates: Index) -> list[Failure]:
        if not pod.host_ports:
            return []
        used = table.used_ports
        mask = np.fromiter(
            (conflicts(pod.host_ports, used[r]) for r in candidates),
            dtype=np.bool_,
            count=len(candidates),
        )
        return [Failure(REASON, mask)] if mask.any() else []
