"""The node IPAM controller: every Node gets a pod CIDR from the cluster CIDR.

Upstream's range allocator (kube-controller-manager ``--allocate-node-cidrs
--cluster-cidr --node-cidr-mask-size``): a Node without ``spec.podCIDR`` gets the lowest
free block of ``--node-cidr-mask-size`` bits (24) from ``--cluster-cidr``, written as
``spec.podCIDR`` and ``spec.podCIDRs``; blocks of deleted nodes are free again; when the
range is exhausted the node gets none and an Event ``CIDRNotAvailable`` says so. A node
that already has a pod CIDR (its agent chose one, or a restart) keeps it and its block
counts as taken. The agent (``corral agent --pod-cidr auto``) configures its CNI bridge
from it. Off unless asked for (``corral up`` asks), as upstream.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any, ClassVar

from corral.api.errors import StatusError
from corral.client.informer import Informer
from corral.client.rest import NODES, Client
from corral.controllers.base import Controller, InformerFactory
from corral.util.clock import Clock

log = logging.getLogger("corral.controllers.nodeipam")

Obj = dict[str, Any]

CIDR_NOT_AVAILABLE = "CIDRNotAvailable"


def _pod_cidr(node: Obj) -> str:
    return str((node.get("spec") or {}).get("podCIDR") or "")


class CidrSet:
    """The blocks of one cluster CIDR: which are taken, and the lowest free one."""

    def __init__(self, cluster_cidr: str, mask_size: int) -> None:
        self.network = ipaddress.ip_network(cluster_cidr, strict=False)
        if mask_size < self.network.prefixlen:
            raise ValueError(f"--node-cidr-mask-size {mask_size} is larger than {cluster_cidr}")
        self.mask_size = mask_size

    def blocks(self) -> Any:
        return self.network.subnets(new_prefix=self.mask_size)

    def lowest_free(self, taken: set[str]) -> str | None:
        for block in self.blocks():
            if str(block) not in taken:
                return str(block)
        return None


class NodeIpamController(Controller):
    """Gives each Node a ``spec.podCIDR`` (see the module docstring)."""

    name: ClassVar[str] = "nodeipam"

    def __init__(
        self,
        client: Client,
        factory: InformerFactory,
        *,
        workers: int = 1,  # one worker: two nodes never get the same block
        clock: Clock | None = None,
        cluster_cidr: str = "10.88.0.0/16",
        node_cidr_mask_size: int = 24,
    ) -> None:
        super().__init__(client, factory, workers=1, clock=clock)
        self.cidrs = CidrSet(cluster_cidr, node_cidr_mask_size)
        self.nodes: Informer = factory.informer(NODES)
        self.nodes.add_handler(self._on_node)
        self._assigned: dict[str, str] = {}  # node -> block written, until the cache has it

    @property
    def component(self) -> str:
        return "cidrAllocator"

    def _on_node(self, type_: str, node: Obj, _old: Obj | None) -> None:
        name = str(node["metadata"]["name"])
        if type_ == "DELETED":
            self._assigned.pop(name, None)
        elif not _pod_cidr(node):
            self.queue.add(name)

    def _taken(self) -> set[str]:
        taken = {_pod_cidr(n) for n in self.nodes.store.values()}
        taken.update(self._assigned.values())
        return {c for c in taken if c}

    async def sync(self, key: str) -> None:
        node = self.nodes.get(key)
        if node is None or _pod_cidr(node) or node["metadata"].get("deletionTimestamp"):
            if node is not None and _pod_cidr(node):
                self._assigned.pop(key, None)
            return
        block = self._assigned.get(key) or self.cidrs.lowest_free(self._taken())
        if block is None:
            await self.recorder.event(
                {"apiVersion": "v1", "kind": "Node", "metadata": node["metadata"]},
                "Normal",
                CIDR_NOT_AVAILABLE,
                f"Node {key} status is now: {CIDR_NOT_AVAILABLE}",
            )
            return
        self._assigned[key] = block
        patch = {"spec": {"podCIDR": block, "podCIDRs": [block]}}
        try:
            await self.client.patch(NODES, key, patch)
        except StatusError as e:
            if e.code == 404:
                self._assigned.pop(key, None)
                return
            raise
        log.info("node %s: pod CIDR %s", key, block)
