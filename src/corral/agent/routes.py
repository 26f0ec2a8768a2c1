"""Routes to the other nodes' pods: host-gw routing, as flannel's host-gw backend does.

Every ``oci`` agent watches the Nodes and keeps, for each other node with a
``spec.podCIDR`` and an ``InternalIP`` of its own (not loopback, not this node's), the
route ``<podCIDR> via <InternalIP>`` (``ip route replace``, so it is idempotent and
follows a node whose address changes); a deleted node's route is removed. The nodes
must share one L2 segment (no overlay: say so in docs/architecture.md). Agents on one
host (``corral up --agents N``, all ``127.0.0.1``) need none: their bridges are local.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from typing import Any

from corral.client.informer import Informer
from corral.client.rest import NODES, Client

log = logging.getLogger("corral.agent.routes")

Obj = dict[str, Any]


def node_route(node: Obj, own_name: str, own_ip: str, own_cidr: str = "") -> tuple[str, str] | None:
    """(pod CIDR, gateway) for ``node``, or None when no route is needed (or it would
    overlap this node's own pod CIDR)."""
    if node["metadata"]["name"] == own_name:
        return None
    cidr = str((node.get("spec") or {}).get("podCIDR") or "")
    addrs = (node.get("status") or {}).get("addresses") or []
    ip = next((str(a.get("address")) for a in addrs if a.get("type") == "InternalIP"), "")
    if not cidr or not ip or ip == own_ip:
        return None
    try:
        if ipaddress.ip_address(ip).is_loopback:
            return None
        net = ipaddress.ip_network(cidr)
        if own_cidr and net.overlaps(ipaddress.ip_network(own_cidr, strict=False)):
            return None
    except ValueError:
        return None
    return cidr, ip


class PodRoutes:
    """Keeps this host's routes to the other nodes' pod CIDRs (see the module docstring)."""

    def __init__(self, client: Client, node_name: str, node_ip: str, own_cidr: str = "") -> None:
        self.node_name = node_name
        self.node_ip = node_ip
        self.own_cidr = own_cidr
        self.nodes = Informer(client, NODES)
        self.nodes.add_handler(self._on_node)
        self.routes: dict[str, tuple[str, str]] = {}  # node -> (cidr, via)
        self._pending: set[str] = set()
        self._wake = asyncio.Event()

    def _on_node(self, _type: str, node: Obj, _old: Obj | None) -> None:
        self._pending.add(str(node["metadata"]["name"]))
        self._wake.set()

    async def _ip(self, *argv: str) -> None:
        proc = await asyncio.create_subprocess_exec(
            "ip", *argv, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await proc.communicate()
        if proc.returncode != 0:
            log.warning("ip %s: %s", " ".join(argv), err.decode(errors="replace").strip())

    async def sync(self, name: str) -> None:
        node = self.nodes.get(name)
        want = (
            node_route(node, self.node_name, self.node_ip, self.own_cidr)
            if node is not None
            else None
        )
        have = self.routes.get(name)
        if want == have:
            return
        if have is not None:
            await self._ip("route", "del", have[0], "via", have[1])
            del self.routes[name]
        if want is not None:
            await self._ip("route", "replace", want[0], "via", want[1])
            self.routes[name] = want
            log.info("route %s via %s (node %s)", want[0], want[1], name)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.nodes.run())
            while True:
                await self._wake.wait()
                self._wake.clear()
                pending, self._pending = self._pending, set()
                for name in sorted(pending):
                    await self.sync(name)
