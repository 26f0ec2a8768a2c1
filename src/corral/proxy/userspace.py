"""The userspace proxy: the Service data path without the kernel's help (no root needed).

A ``Backend`` for ``proxier.Proxier``: for each Service port with ready endpoints it
listens (asyncio TCP) and relays every accepted connection to an endpoint chosen at
random, or, with sessionAffinity ClientIP, to the endpoint that client used last (for
``affinity_seconds``). A port without endpoints has no listener, so a client is refused
at once, as with the iptables REJECT.

Where it listens:

- ``<nodeIP or 0.0.0.0>:<nodePort>`` for NodePort Services (``bind_node_ports``: the
  address, default ``0.0.0.0``, so ``127.0.0.1:<nodePort>`` works too);
- ``<load-balancer ingress IP>:<port>`` for each ingress address (``ipMode: VIP``) that
  is an address of this host (a node's InternalIP, as k3s' ServiceLB hands out); a pool
  address configured nowhere is the kernel path's job (iptables mode DNATs it);
- ``<clusterIP>:<port>`` only where the ClusterIP is an address of this host. Without
  root it cannot be (the limitation of this mode: non-root users reach Services through
  their nodePorts); with ``own_cluster_ips`` (root) the backend adds each ClusterIP as a
  /32 to ``lo`` and removes it again when the Service goes or on cleanup.

TCP only: UDP and SCTP ports are skipped (logged once). Endpoint changes apply to new
connections; established relays keep their endpoint, as conntrack does.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import socket
import time
from dataclasses import dataclass, field

from corral.proxy.proxier import Runner
from corral.proxy.rules import Endpoint, ServicePort

log = logging.getLogger("corral.proxy.userspace")

Addr = tuple[str, int]


@dataclass
class _Target:
    """What a listener relays to; replaced in place on every sync."""

    name: str
    endpoints: tuple[Endpoint, ...]
    affinity_seconds: int
    affinity: dict[str, tuple[Endpoint, float]] = field(default_factory=dict)

    def pick(self, client_ip: str) -> Endpoint | None:
        if not self.endpoints:
            return None
        now = time.monotonic()
        if self.affinity_seconds:
            seen = self.affinity.get(client_ip)
            if seen and seen[0] in self.endpoints and now - seen[1] < self.affinity_seconds:
                self.affinity[client_ip] = (seen[0], now)
                return seen[0]
        ep = random.choice(self.endpoints)
        if self.affinity_seconds:
            self.affinity[client_ip] = (ep, now)
        return ep


def is_local_address(ip: str) -> bool:
    """Whether ``ip`` is an address of this host (a socket can bind it)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((ip, 0))
        return True
    except OSError:
        return False


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


class UserspaceBackend:
    """Listeners per (address, port), reconciled to the ``ServicePort`` table."""

    def __init__(
        self,
        *,
        node_port_address: str = "0.0.0.0",
        own_cluster_ips: bool = False,
        run: Runner | None = None,
        connect_timeout: float = 5.0,
    ) -> None:
        self.node_port_address = node_port_address
        self.own_cluster_ips = own_cluster_ips
        self.run = run or Runner()
        self.connect_timeout = connect_timeout
        self._servers: dict[Addr, asyncio.Server] = {}
        self._targets: dict[Addr, _Target] = {}
        self._owned_ips: set[str] = set()
        self._relays: set[asyncio.Task[None]] = set()
        self._warned: set[str] = set()

    @property
    def addresses(self) -> list[Addr]:
        return sorted(self._servers)

    def _wanted(self, ports: list[ServicePort]) -> dict[Addr, _Target]:
        want: dict[Addr, _Target] = {}
        for sp in ports:
            if sp.protocol != "TCP":
                if sp.port_key not in self._warned:
                    self._warned.add(sp.port_key)
                    log.warning("%s: %s is not relayed in userspace mode", sp.port_key, sp.protocol)
                continue
            if not sp.endpoints:
                continue  # no listener: connection refused
            target = _Target(sp.port_key, sp.endpoints, sp.affinity_seconds)
            if self.own_cluster_ips:
                want[(sp.cluster_ip, sp.port)] = target
            if sp.node_port:
                want[(self.node_port_address, sp.node_port)] = target
            for ip in sp.lb_ips:
                if (ip, sp.port) not in want and is_local_address(ip):
                    want[(ip, sp.port)] = target
        return want

    async def sync(self, ports: list[ServicePort]) -> None:
        want = self._wanted(ports)
        for addr in [a for a in self._servers if a not in want]:
            server = self._servers.pop(addr)
            self._targets.pop(addr, None)
            server.close()
        if self.own_cluster_ips:
            ips = {sp.cluster_ip for sp in ports if (sp.cluster_ip, sp.port) in want}
            for ip in sorted(ips - self._owned_ips):
                await self.run.check("ip", "addr", "replace", f"{ip}/32", "dev", "lo")
                self._owned_ips.add(ip)
            for ip in sorted(self._owned_ips - ips):
                await self.run("ip", "addr", "del", f"{ip}/32", "dev", "lo")
                self._owned_ips.discard(ip)
        for addr, target in want.items():
            old = self._targets.get(addr)
            if old is not None and old.affinity_seconds == target.affinity_seconds:
                target.affinity = old.affinity
            self._targets[addr] = target
            if addr not in self._servers:
                try:
                    self._servers[addr] = await asyncio.start_server(
                        functools.partial(self._accept, addr), addr[0], addr[1],
                        reuse_address=True,
                    )  # fmt: skip
                except OSError as e:
                    log.error("%s: cannot listen on %s:%d: %s", target.name, *addr, e)
                    self._targets.pop(addr, None)

    async def _accept(
        self, addr: Addr, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._relays.add(task)
        try:
            target = self._targets.get(addr)
            peer = writer.get_extra_info("peername") or ("", 0)
            ep = target.pick(peer[0]) if target else None
            if ep is None:
                return
            try:
                async with asyncio.timeout(self.connect_timeout):
                    up_r, up_w = await asyncio.open_connection(ep.ip, ep.port)
            except (OSError, TimeoutError) as e:
                log.info("%s: endpoint %s: %s", target.name if target else "?", ep, e)
                return
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(_pipe(reader, up_w))
                    tg.create_task(_pipe(up_r, writer))
            finally:
                up_w.close()
        finally:
            writer.close()
            if task is not None:
                self._relays.discard(task)

    async def cleanup(self) -> None:
        for server in self._servers.values():
            server.close()
        for task in list(self._relays):
            task.cancel()
        for server in self._servers.values():
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()
        self._targets.clear()
        for ip in sorted(self._owned_ips):
            await self.run("ip", "addr", "del", f"{ip}/32", "dev", "lo")
        self._owned_ips.clear()
