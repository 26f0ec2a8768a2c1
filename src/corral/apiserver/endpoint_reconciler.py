"""The ``kubernetes`` Service's Endpoints and EndpointSlice: the API servers' addresses.

Upstream's lease endpoint reconciler (``pkg/controlplane/reconcilers/lease.go`` with its
``EndpointsAdapter``). Every API server keeps a lease under ``/registry/masterleases/<IP>``
in the datastore (upstream's key; no resource is registered there, so no watch cache or
API sees it): the record holds its expiry, ``ttl`` (15 s) after the last renewal, renewed
every ``interval`` (10 s; both ``corral server --endpoint-reconciler-*`` flags). Upstream
uses an etcd lease for the expiry; here it is the wall clock, so the servers' clocks
must agree to well within ``ttl`` (NTP does).
Each round, a server renews its own lease, lists the unexpired ones (deleting expired
ones: a server that died without saying so drops out) and makes
``default/kubernetes`` say exactly those addresses:

- Endpoints: one subset, the addresses sorted, port ``https`` (TCP, the servers'
  port), labelled ``endpointslice.kubernetes.io/skip-mirror: "true"``;
- EndpointSlice ``kubernetes`` (label ``kubernetes.io/service-name: kubernetes``,
  addressType IPv4), one ready endpoint per address, the same port.

An object already right is not written. Zero leases right after renewing one's own is
a broken store: nothing is erased then (upstream's rule). ``stop`` (server shutdown)
deletes the server's own lease and reconciles once more, so the others' addresses stay
and its own goes at once. Selector-less, the Service is left alone by the endpoints and
EndpointSlice controllers; the proxy follows the slice (``proxy/rules.py``).

The writes are the API server's own (``WriteOptions.user`` None: admission lets them
through) with field manager ``kube-apiserver``; a conflict with another server is
retried on the next round.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import logging
import socket
import struct
from pathlib import Path
from typing import Any

from corral.api import errors
from corral.apiserver.store import Registry, WriteOptions
from corral.storage.base import KeyExists, KeyNotFound, RevisionMismatch, Storage
from corral.util.clock import Clock

log = logging.getLogger("corral.apiserver.endpoints")

Obj = dict[str, Any]

PREFIX = "/registry/masterleases/"
NAMESPACE = "default"
SERVICE = "kubernetes"
PORT_NAME = "https"
#: upstream's ``--endpoint-reconciler`` defaults: renew every 10 s, expire after 15 s
INTERVAL = 10.0
TTL = 15.0
SKIP_MIRROR = "endpointslice.kubernetes.io/skip-mirror"
SERVICE_NAME = "kubernetes.io/service-name"
FIELD_MANAGER = "kube-apiserver"


def endpoint_ports(port: int) -> list[Obj]:
    return [{"name": PORT_NAME, "port": port, "protocol": "TCP"}]


def endpoints_for(current: Obj | None, ips: list[str], port: int) -> Obj:
    """``default/kubernetes`` Endpoints listing ``ips`` (``current``'s metadata kept),
    as the adapter's ``updateEndpoints`` with ``reconcilePorts``. Pure."""
    out: Obj = dict(current or {})
    meta = dict(out.get("metadata") or {"name": SERVICE, "namespace": NAMESPACE})
    meta["labels"] = {SKIP_MIRROR: "true"}
    out["metadata"] = meta
    out["subsets"] = [{"addresses": [{"ip": ip} for ip in ips], "ports": endpoint_ports(port)}]
    return out


def slice_for(current: Obj | None, ips: list[str], port: int) -> Obj:
    """EndpointSlice ``default/kubernetes`` listing ``ips``, as ``updateEndpointSlice``.
    Pure."""
    out: Obj = dict(current or {})
    meta = dict(out.get("metadata") or {"name": SERVICE, "namespace": NAMESPACE})
    meta["labels"] = {SERVICE_NAME: SERVICE}
    out["metadata"] = meta
    out["addressType"] = "IPv4"
    out["endpoints"] = [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips]
    out["ports"] = endpoint_ports(port)
    return out


def _same(a: Obj, b: Obj, fields: tuple[str, ...]) -> bool:
    labels = ((a.get("metadata") or {}).get("labels") or {}) == (
        (b.get("metadata") or {}).get("labels") or {}
    )
    return labels and all((a.get(f) or []) == (b.get(f) or []) for f in fields)


class EndpointReconciler:
    """Keeps this server's lease and the ``kubernetes`` Service's endpoints."""

    def __init__(
        self,
        registry: Registry,
        storage: Storage,
        clock: Clock,
        ip: str,
        port: int,
        *,
        interval: float = INTERVAL,
        ttl: float = TTL,
    ) -> None:
        ipaddress.IPv4Address(ip)  # the slice is IPv4 (ValueError otherwise)
        self.registry = registry
        self.storage = storage
        self.clock = clock
        self.ip = ip
        self.port = port
        self.interval = interval
        self.ttl = ttl
        self._stopped = False
        self._lock = asyncio.Lock()

    # --- leases ----------------------------------------------------------------------------
    async def update_lease(self) -> None:
        key = PREFIX + self.ip
        record = {"ip": self.ip, "port": self.port, "expires": self.clock.now() + self.ttl}
        kv = await self.storage.get(key)
        if kv is None:
            try:
                await self.storage.create(key, record)
                return
            except KeyExists:
                kv = await self.storage.get(key)
        if kv is not None:
            try:
                await self.storage.update(key, record, kv.mod_revision)
            except KeyNotFound:  # another server saw it expired and deleted it meanwhile
                with contextlib.suppress(KeyExists):
                    await self.storage.create(key, record)

    async def list_leases(self) -> list[str]:
        """The addresses of the unexpired leases, sorted; expired ones are deleted."""
        kvs, _ = await self.storage.list(PREFIX)
        now = self.clock.now()
        out = []
        for kv in kvs:
            if float(kv.obj.get("expires") or 0) >= now and kv.obj.get("ip"):
                out.append(str(kv.obj["ip"]))
                continue
            with contextlib.suppress(KeyNotFound, RevisionMismatch):
                await self.storage.delete(kv.key, kv.mod_revision)
        return sorted(out, key=ipaddress.IPv4Address)

    async def remove_lease(self) -> None:
        kv = await self.storage.get(PREFIX + self.ip)
        if kv is not None:
            with contextlib.suppress(KeyNotFound, RevisionMismatch):
                await self.storage.delete(kv.key, kv.mod_revision)

    # --- reconciling -----------------------------------------------------------------------
    async def reconcile(self) -> None:
        """One round: renew this server's lease, then sync the objects to the leases."""
        async with self._lock:
            if self._stopped:
                return
            await self.update_lease()
            await self._sync()

    async def _sync(self) -> None:
        ips = await self.list_leases()
        if not ips:
            raise RuntimeError(
                "no API server IPs were listed in storage, refusing to erase all endpoints "
                "for the kubernetes service"
            )
        await self._write(("", "v1", "endpoints"), endpoints_for, ips, ("subsets",))
        await self._write(
            ("discovery.k8s.io", "v1", "endpointslices"),
            slice_for,
            ips,
            ("endpoints", "ports", "addressType"),
        )

    async def _write(
        self, gvr: tuple[str, str, str], build: Any, ips: list[str], fields: tuple[str, ...]
    ) -> None:
        info = self.registry.by_gvr[gvr]
        entry = self.registry.entry(info, NAMESPACE, SERVICE)
        current = entry.obj() if entry is not None else None
        want: Obj = build(current, ips, self.port)
        if current is not None and _same(current, want, fields):
            return
        opts = WriteOptions(field_manager=FIELD_MANAGER)
        if current is None:
            with contextlib.suppress(errors.StatusError):  # another server created it
                await self.registry.create(info, NAMESPACE, want, opts)
            return
        log.info("resetting endpoints for the kubernetes service to %s", ips)
        await self.registry.update(info, NAMESPACE, SERVICE, want, opts)

    async def run(self) -> None:
        """Reconcile every ``interval`` until cancelled; a failed round (a conflict, a
        storage error, anything) is logged and the next one tried: the loop never ends
        by itself, or the server's lease would lapse while it still serves."""
        while True:
            try:
                await self.reconcile()
            except Exception as e:  # the next round retries
                log.warning("reconciling the kubernetes service's endpoints: %s", e)
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        """Shutdown: stop renewing, drop this server's lease and its address."""
        async with self._lock:
            self._stopped = True
            await self.remove_lease()
            ips = await self.list_leases()
            if ips:  # the others stay; the last server leaves its address for the next
                await self._sync()


__all__ = [
    "INTERVAL",
    "PREFIX",
    "TTL",
    "EndpointReconciler",
    "advertise_address_for",
    "default_advertise_address",
    "endpoints_for",
    "is_ipv4",
    "is_loopback",
    "slice_for",
]


def is_ipv4(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an IP address or ``localhost``) is a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def advertise_address_for(bind: str) -> str:
    """upstream's ``--advertise-address`` default: the bind address when it is one
    non-loopback IPv4 address, else :func:`default_advertise_address`."""
    try:
        ip = ipaddress.ip_address(bind)
    except ValueError:
        return default_advertise_address()
    if ip.version == 4 and not ip.is_loopback and not ip.is_unspecified:
        return bind
    return default_advertise_address()


def default_advertise_address() -> str:
    """``--advertise-address``'s default: this host's IPv4 address on its default route,
    else the first non-loopback IPv4 address of an interface, else ``127.0.0.1``."""
    for name in [*_default_route_interfaces(), *(n for _, n in socket.if_nameindex())]:
        ip = _interface_address(name)
        if ip and not ipaddress.IPv4Address(ip).is_loopback:
            return ip
    return "127.0.0.1"


def _default_route_interfaces() -> list[str]:
    """The interfaces of the IPv4 default routes (``/proc/net/route``), lowest metric
    first."""
    try:
        lines = Path("/proc/net/route").read_text().splitlines()[1:]
    except OSError:
        return []
    routes = []
    for line in lines:
        f = line.split()
        if len(f) > 6 and f[1] == "00000000" and f[7:8] == ["00000000"]:
            routes.append((int(f[6]), f[0]))
    return [name for _, name in sorted(routes)]


def _interface_address(name: str) -> str:
    """The IPv4 address of interface ``name`` (``SIOCGIFADDR``), or ``""``."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            packed = fcntl.ioctl(s.fileno(), _SIOCGIFADDR, struct.pack("256s", name[:15].encode()))
    except OSError:
        return ""
    return socket.inet_ntoa(packed[20:24])


_SIOCGIFADDR = 0x8915
