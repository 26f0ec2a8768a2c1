"""Service ClusterIP and NodePort allocation, as the real apiserver's service REST does.

On create (and on an update that needs new ports, e.g. ClusterIP → NodePort), a
Service without a ``clusterIP`` gets the next free address of the service CIDR (the
first one is the ``kubernetes`` Service's), and every port of a NodePort or
LoadBalancer Service without a ``nodePort`` gets a free one of the node-port range;
addresses and ports the client asks for are checked against the range and against
what other Services hold. What is taken is read from the watch cache, plus what
in-flight requests reserved, so two concurrent creates never get the same address; a
reservation ends when its request does. Deleting a Service frees what it held.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from corral.api import errors
from corral.storage.cache import ResourceCache

Obj = dict[str, Any]

_NODE_PORT_TYPES = ("NodePort", "LoadBalancer")


class ServiceAllocator:
    """Allocates from one service CIDR and one node-port range."""

    def __init__(
        self,
        services: ResourceCache,
        cidr: str = "10.96.0.0/12",
        node_ports: tuple[int, int] = (30000, 32767),
    ) -> None:
        self.services = services
        self.network = ipaddress.ip_network(cidr)
        self.node_ports = node_ports
        self._reserved_ips: set[str] = set()
        self._reserved_ports: set[int] = set()
        self._next_ip = 1
        self._next_port = 0

    @property
    def first_ip(self) -> str:
        """The address the ``kubernetes`` Service holds."""
        return str(self.network.network_address + 1)

    # --- what is taken -----------------------------------------------------------------
    def _others(self, key: str) -> Iterator[Obj]:
        for k, e in self.services.entries.items():
            if k != key:
                yield orjson.loads(e.raw)

    def _taken(self, key: str) -> tuple[set[str], set[int]]:
        ips: set[str] = set(self._reserved_ips)
        ports: set[int] = set(self._reserved_ports)
        for svc in self._others(key):
            spec = svc.get("spec") or {}
            ips.update(
                ip
                for ip in spec.get("clusterIPs") or [spec.get("clusterIP")]
                if ip and ip != "None"
            )
            ports.update(p["nodePort"] for p in spec.get("ports") or [] if p.get("nodePort"))
        return ips, ports

    # --- allocation ------------------------------------------------------------------------
    def allocate(self, svc: Obj, key: str) -> Callable[[], None]:
        """Fill ``svc``'s clusterIP and nodePorts; returns the release of the reservation."""
        spec = svc.setdefault("spec", {})
        ips, ports = self._taken(key)
        new_ips: list[str] = []
        new_ports: list[int] = []
        if spec.get("type", "ClusterIP") != "ExternalName" and spec.get("clusterIP") != "None":
            requested = spec.get("clusterIP") or ""
            if requested:
                self._check_ip(requested, ips, key)
            else:
                ip = self._free_ip(ips)
                spec["clusterIP"] = ip
                spec["clusterIPs"] = [ip]
                new_ips.append(ip)
        if spec.get("type") in _NODE_PORT_TYPES:
            # a LoadBalancer with allocateLoadBalancerNodePorts false gets none (those
            # asked for are still checked and kept), as upstream
            no_new = spec.get("type") == "LoadBalancer" and (
                spec.get("allocateLoadBalancerNodePorts") is False
            )
            for i, port in enumerate(spec.get("ports") or []):
                want = port.get("nodePort")
                if want:
                    self._check_port(i, want, ports, key.rsplit("/", 1)[-1])
                elif not no_new:
                    np = self._free_port(ports)
                    port["nodePort"] = np
                    ports.add(np)
                    new_ports.append(np)
        self._reserved_ips.update(new_ips)
        self._reserved_ports.update(new_ports)

        def release() -> None:
            self._reserved_ips.difference_update(new_ips)
            self._reserved_ports.difference_update(new_ports)

        return release

    def _check_ip(self, ip: str, taken: set[str], key: str) -> None:
        field = "spec.clusterIPs"
        shown = orjson.Fragment(b'[]string{"' + ip.encode() + b'"}')
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return  # the strategy's validation words this one
        if addr not in self.network:
            raise errors.invalid_object(
                "Service",
                "",
                key.rsplit("/", 1)[-1],
                [
                    errors.invalid(
                        field,
                        shown,
                        f"failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. "
                        f"The range of valid IPs is {self.network}",
                    )
                ],
            )
        if ip in taken:
            raise errors.invalid_object(
                "Service",
                "",
                key.rsplit("/", 1)[-1],
                [
                    errors.invalid(
                        field,
                        shown,
                        f"failed to allocate IP {ip}: provided IP is already allocated",
                    )
                ],
            )

    def _check_port(self, i: int, port: int, taken: set[int], name: str) -> None:
        lo, hi = self.node_ports
        if not lo <= port <= hi:
            why = f"provided port is not in the valid range. The range of valid ports is {lo}-{hi}"
        elif port in taken:
            why = "provided port is already allocated"
        else:
            taken.add(port)
            return
        field = f"spec.ports[{i}].nodePort"
        raise errors.invalid_object("Service", "", name, [errors.invalid(field, port, why)])

    def _free_ip(self, taken: set[str]) -> str:
        size = self.network.num_addresses
        base = int(self.network.network_address)
        # skip the network address, the first address (kubernetes) and the broadcast
        for step in range(size):
            offset = 2 + (self._next_ip + step) % max(1, size - 3)
            ip = str(ipaddress.ip_address(base + offset))
            if ip not in taken:
                self._next_ip = offset - 1
                return ip
        raise errors.internal("failed to allocate a serviceIP: range is full")

    def _free_port(self, taken: set[int]) -> int:
        lo, hi = self.node_ports
        span = hi - lo + 1
        for step in range(span):
            port = lo + (self._next_port + step) % span
            if port not in taken:
                self._next_port = port - lo + 1
                return port
        raise errors.internal("failed to allocate a nodePort: range is full")
