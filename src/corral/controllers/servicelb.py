"""The service load-balancer controller: LoadBalancer Services get an address on one machine.

What a cloud's load balancer does for a Service of ``type: LoadBalancer``, done as k3s'
ServiceLB (klipper-lb) and MetalLB do on bare metal. Run by the controller manager
(``corral server`` / ``corral up`` / ``corral controller-manager``) under
kube-controller-manager's name ``service-lb-controller``; its Events come from
``service-controller``, as the cloud-provider service controller's (which k3s runs too).

Which Services: ``type: LoadBalancer`` with no ``spec.loadBalancerClass`` or with
Corral's own, ``corral.dev/service-lb`` (``LB_CLASS``); a Service of another class
belongs to another implementation and is left alone, as upstream.

Where the address comes from (``ServiceLBController(pool=...)``, the controller manager's
``--service-lb-pool``):

- no pool (k3s' ServiceLB): the addresses of the Ready nodes, their ExternalIPs if any
  node has one, else their InternalIPs, filtered by the Service's ``ipFamilies`` and
  sorted (k3s' ``podIPs`` + ``filterByIPFamily``); nodes labelled
  ``node.kubernetes.io/exclude-from-external-load-balancers`` are left out (upstream's
  node predicate); with ``externalTrafficPolicy: Local`` only the nodes with a ready pod
  endpoint of the Service (k3s' ``readyNodes``, from the EndpointSlices). Every Service
  shares them: the proxy tells them apart by port, so an (address, port, protocol) has
  one holder, as k3s' svclb pod binds a hostPort: the first LoadBalancer Service by
  creationTimestamp (then the one already holding an address, then namespace/name)
  that claims it keeps it, and the API server's
  own port (from the controller's kubeconfig URL) is never given; a Service that would
  capture a held one stays ``<pending>`` (its address withdrawn if it had one) with a
  Warning naming the holder, and is retried when the holder lets go.
- a pool (``CIDR`` or ``FIRST-LAST``, comma-separated; MetalLB's address syntax): one
  address per Service. A Service keeps the address its status already holds (stable
  across restarts: the Services' status *is* the allocation table, read from the
  informer); ``spec.loadBalancerIP`` is honoured when it is in the pool and free; else the
  lowest free address. Deleting the Service or changing its type frees its address (it
  is no longer in any Service's status); Services left pending are retried then.

The ingress entries carry ``ipMode: VIP``: the proxy (``corral.proxy``) delivers traffic
for the address itself, as kube-proxy does for a VIP-style load balancer.

A request nobody can satisfy (pool exhausted, ``loadBalancerIP`` outside the pool or
held by another Service, no Ready node) leaves the Service ``<pending>`` with a Warning
``SyncLoadBalancerFailed`` Event naming the reason; a status written is announced by
``EnsuringLoadBalancer`` / ``EnsuredLoadBalancer``; clearing it (type changed away) by
``DeletingLoadBalancer`` / ``DeletedLoadBalancer``, with upstream's messages. Unlike the
cloud-provider controller, no ``service.kubernetes.io/load-balancer-cleanup`` finalizer
is added: there is no external resource to clean up, and a pool address is freed by the
Service's disappearance itself.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

from corral.api.conditions import condition_true
from corral.api.errors import StatusError
from corral.client.informer import Informer, key_of
from corral.client.rest import ENDPOINTSLICES, NODES, SERVICES, Client
from corral.controllers.base import Controller, InformerFactory, clone
from corral.util.clock import Clock

log = logging.getLogger("corral.controllers.servicelb")

Obj = dict[str, Any]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: the ``spec.loadBalancerClass`` this controller answers for (besides none at all)
LB_CLASS = "corral.dev/service-lb"
#: upstream's label that keeps a node out of every load balancer
EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

ENSURING = "EnsuringLoadBalancer"
ENSURED = "EnsuredLoadBalancer"
DELETING = "DeletingLoadBalancer"
DELETED = "DeletedLoadBalancer"
SYNC_FAILED = "SyncLoadBalancerFailed"


class AllocationError(Exception):
    """No address can be given (the message is the reason in the Warning event)."""


# --- pure decisions -----------------------------------------------------------------------


def wants_load_balancer(svc: Obj) -> bool:
    """A LoadBalancer Service of no class or of Corral's."""
    spec = svc.get("spec") or {}
    return spec.get("type") == "LoadBalancer" and spec.get("loadBalancerClass") in (None, LB_CLASS)


def ingress_ips(svc: Obj) -> list[str]:
    lb = (svc.get("status") or {}).get("loadBalancer") or {}
    return [str(i["ip"]) for i in lb.get("ingress") or [] if isinstance(i, dict) and i.get("ip")]


def node_addresses(nodes: Iterable[Obj], ip_families: Iterable[str] = ("IPv4",)) -> list[str]:
    """k3s' choice: the ExternalIPs of the Ready nodes if any, else their InternalIPs;
    per family in ``ip_families`` order, each family's sorted as strings."""
    external: set[str] = set()
    internal: set[str] = set()
    for node in nodes:
        labels = (node.get("metadata") or {}).get("labels") or {}
        if EXCLUDE_LABEL in labels or not condition_true(node, "Ready"):
            continue
        for a in (node.get("status") or {}).get("addresses") or []:
            if a.get("type") == "ExternalIP":
                external.add(str(a.get("address")))
            elif a.get("type") == "InternalIP":
                internal.add(str(a.get("address")))
    chosen = external or internal
    out: list[str] = []
    for family in ip_families:
        version = 6 if family == "IPv6" else 4
        out += sorted(ip for ip in chosen if _version(ip) == version)
    return out


def _version(ip: str) -> int:
    try:
        return ipaddress.ip_address(ip).version
    except ValueError:
        return 0


def nodes_with_ready_endpoints(slices: Iterable[Obj], namespace: str, name: str) -> set[str]:
    """The nodes of the ready pod endpoints of Service ``namespace/name`` (k3s' choice of
    nodes for ``externalTrafficPolicy: Local``)."""
    out: set[str] = set()
    for sl in slices:
        meta = sl.get("metadata") or {}
        if meta.get("namespace") != namespace:
            continue
        if (meta.get("labels") or {}).get(SERVICE_NAME_LABEL) != name:
            continue
        for ep in sl.get("endpoints") or []:
            ready = (ep.get("conditions") or {}).get("ready") is True
            is_pod = (ep.get("targetRef") or {}).get("kind") == "Pod"
            if ready and is_pod and ep.get("nodeName"):
                out.add(str(ep["nodeName"]))
    return out


def load_balancer_status(ips: Iterable[str]) -> Obj:
    return {"ingress": [{"ip": ip, "ipMode": "VIP"} for ip in ips]}


@dataclass(frozen=True)
class Pool:
    """Addresses to give out: ranges of ``CIDR`` or ``FIRST-LAST``, comma-separated."""

    ranges: tuple[tuple[IPAddress, IPAddress], ...]
    text: str

    @classmethod
    def parse(cls, text: str) -> Pool:
        """Raises ``ValueError`` with the bad piece named."""
        ranges: list[tuple[IPAddress, IPAddress]] = []
        for piece in (p.strip() for p in text.split(",")):
            if not piece:
                continue
            try:
                if "-" in piece:
                    a, b = (ipaddress.ip_address(x.strip()) for x in piece.split("-", 1))
                    if a.version != b.version or int(a) > int(b):
                        raise ValueError
                    ranges.append((a, b))
                else:
                    net = ipaddress.ip_network(piece, strict=False)
                    ranges.append((net[0], net[-1]))
            except ValueError:
                raise ValueError(
                    f"invalid service-lb pool {piece!r}: want a CIDR (10.0.0.0/30) or a range "
                    "(10.0.0.1-10.0.0.5)"
                ) from None
        if not ranges:
            raise ValueError("the service-lb pool is empty")
        return cls(tuple(ranges), ",".join(p.strip() for p in text.split(",") if p.strip()))

    def __contains__(self, ip: object) -> bool:
        try:
            addr = ipaddress.ip_address(str(ip))
        except ValueError:
            return False
        return any(a.version == addr.version and a <= addr <= b for a, b in self.ranges)  # type: ignore[operator]

    def addresses(self) -> Iterator[str]:
        for a, b in self.ranges:
            for n in range(int(a), int(b) + 1):
                yield str(ipaddress.ip_address(n))

    def allocate(self, svc: Obj, taken: dict[str, str]) -> str:
        """The address of ``svc`` (see the module docstring); ``taken``: address -> the
        ``ns/name`` of the other Service holding it. Raises ``AllocationError``."""
        key = key_of(svc)
        requested = str((svc.get("spec") or {}).get("loadBalancerIP") or "")
        if requested:
            if requested not in self:
                raise AllocationError(
                    f"requested IP {requested} (spec.loadBalancerIP) is not in the "
                    f"service-lb pool {self.text}"
                )
            if requested in taken:
                raise AllocationError(
                    f"requested IP {requested} (spec.loadBalancerIP) is already in use by "
                    f"service {taken[requested]}"
                )
            return requested
        for ip in ingress_ips(svc):
            if ip in self and ip not in taken:
                return ip
        for ip in self.addresses():
            if ip not in taken:
                return ip
        raise AllocationError(f"no available IPs in the service-lb pool {self.text} for {key}")


def pool_taken(services: Iterable[Obj], pool: Pool, exclude: str) -> dict[str, str]:
    """Pool addresses in the status of the LoadBalancer Services other than ``exclude``."""
    out: dict[str, str] = {}
    for svc in services:
        k = key_of(svc)
        if k == exclude or not wants_load_balancer(svc):
            continue
        for ip in ingress_ips(svc):
            if ip in pool:
                out.setdefault(ip, k)
    return out


Claim = tuple[str, int, str]  # (address, port, protocol)


def claims(svc: Obj, ips: Iterable[str]) -> set[Claim]:
    """The (address, port, protocol) the proxy would capture for ``svc`` at ``ips``."""
    ports = {
        (int(p.get("port") or 0), str(p.get("protocol") or "TCP"))
        for p in (svc.get("spec") or {}).get("ports") or []
    }
    return {(ip, port, proto) for ip in ips for port, proto in ports}


def first_come(svc: Obj) -> tuple[str, bool, str]:
    """The order in which Services hold node-mode ports: oldest first; within one second
    (creationTimestamp's resolution) the one already holding an address, then by key."""
    return (str(svc["metadata"].get("creationTimestamp") or ""), not ingress_ips(svc), key_of(svc))


def apiserver_port(server_url: str) -> int:
    """The port of the API server's URL (kubeconfig ``server``), 0 when none is known."""
    try:
        u = urlsplit(server_url)
        return int(u.port or (443 if u.scheme == "https" else 80 if u.scheme == "http" else 0))
    except ValueError:
        return 0


def clash(want: set[Claim], held: dict[Claim, str], api_port: int, api_url: str) -> str | None:
    """Why ``want`` cannot be had (the reason of the Warning), None when it can."""
    for ip, port, proto in sorted(want):
        if port == api_port and proto == "TCP":
            return f"port {port}/TCP of {ip} is the API server's ({api_url})"
        holder = held.get((ip, port, proto))
        if holder is not None:
            return f"port {port}/{proto} of {ip} is already in use by service {holder}"
    return None


# --- the controller -----------------------------------------------------------------------


class ServiceLBController(Controller):
    """Writes ``status.loadBalancer`` of LoadBalancer Services (module docstring)."""

    name: ClassVar[str] = "service-lb"

    def __init__(
        self,
        client: Client,
        factory: InformerFactory,
        *,
        workers: int = 1,  # one worker: two Services never get the same pool address
        clock: Clock | None = None,
        pool: str = "",
    ) -> None:
        super().__init__(client, factory, workers=1, clock=clock)
        self.pool = Pool.parse(pool) if pool else None
        #: the API server's URL and port, which no node-mode load balancer may capture
        self.api_url = str(getattr(getattr(client, "config", None), "server", "") or "")
        self.api_port = apiserver_port(self.api_url)
        self.services: Informer = factory.informer(SERVICES)
        self.nodes: Informer = factory.informer(NODES)
        self.slices: Informer = factory.informer(ENDPOINTSLICES)
        self.services.add_handler(self._on_service)
        self.nodes.add_handler(self._on_node)
        self.slices.add_handler(self._on_slice)
        #: key -> the pool address written, until the cache shows it
        self._assigned: dict[str, str] = {}
        #: key -> the last failure reported (one Warning per new reason)
        self._failed: dict[str, str] = {}
        #: Services whose type changed away from LoadBalancer since their last sync
        self._released: set[str] = set()

    @property
    def component(self) -> str:
        return "service-controller"

    def _on_service(self, type_: str, svc: Obj, old: Obj | None) -> None:
        key = key_of(svc)
        if type_ == "DELETED":
            self._assigned.pop(key, None)
            self._failed.pop(key, None)
            if wants_load_balancer(svc) and ingress_ips(svc):
                self._retry_pending()
            return
        if wants_load_balancer(svc) or ingress_ips(svc):
            self.queue.add(key)
        if old is not None and wants_load_balancer(old) and not wants_load_balancer(svc):
            if (svc.get("spec") or {}).get("type") != "LoadBalancer" and ingress_ips(old):
                self._released.add(key)
                self.queue.add(key)
            self._retry_pending()
        elif (
            self.pool is None
            and wants_load_balancer(svc)
            and (old is None or (old.get("spec") or {}).get("ports") != svc["spec"].get("ports"))
        ):
            self._requeue_all()  # a port claimed or let go: holders may change

    def _on_node(self, type_: str, node: Obj, old: Obj | None) -> None:
        if self.pool is not None:
            return
        if old is not None and node_addresses([node]) == node_addresses([old]):
            return
        for svc in self.services.store.values():
            if wants_load_balancer(svc):
                self.queue.add(key_of(svc))

    def _on_slice(self, type_: str, sl: Obj, old: Obj | None) -> None:
        """Endpoints move the addresses of an ``externalTrafficPolicy: Local`` Service."""
        if self.pool is not None:
            return
        meta = sl.get("metadata") or {}
        name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        svc = self.services.get(f"{meta.get('namespace')}/{name}") if name else None
        if svc is not None and wants_load_balancer(svc) and _local(svc):
            self.queue.add(key_of(svc))

    def _retry_pending(self) -> None:
        for svc in self.services.store.values():
            if wants_load_balancer(svc) and not ingress_ips(svc):
                self.queue.add(key_of(svc))
        if self.pool is None:
            self._requeue_all()

    def _requeue_all(self) -> None:
        for svc in self.services.store.values():
            if wants_load_balancer(svc):
                self.queue.add(key_of(svc))

    def _node_ips(self, svc: Obj) -> list[str]:
        """Node mode: the addresses ``svc`` would get (before any clash)."""
        families = (svc.get("spec") or {}).get("ipFamilies") or ["IPv4"]
        nodes: Iterable[Obj] = self.nodes.store.values()
        if _local(svc):
            meta = svc["metadata"]
            ready = nodes_with_ready_endpoints(
                self.slices.store.values(), meta.get("namespace") or "", meta["name"]
            )
            nodes = [n for n in nodes if n["metadata"]["name"] in ready]
        return node_addresses(nodes, families)

    def held_before(self, svc: Obj) -> dict[Claim, str]:
        """The claims held by the LoadBalancer Services that come before ``svc``: each, in
        ``first_come`` order, holds its claims unless one of them was held already."""
        held: dict[Claim, str] = {}
        me = first_come(svc)
        others = [
            o for o in self.services.store.values() if wants_load_balancer(o) and first_come(o) < me
        ]
        for other in sorted(others, key=first_come):
            if other["metadata"].get("deletionTimestamp"):
                continue
            want = claims(other, self._node_ips(other))
            if want and clash(want, held, self.api_port, self.api_url) is None:
                held.update(dict.fromkeys(want, key_of(other)))
        return held

    def desired_ips(self, svc: Obj) -> list[str]:
        """The ingress addresses ``svc`` should have; raises ``AllocationError``."""
        key = key_of(svc)
        if self.pool is None:
            ips = self._node_ips(svc)
            if not ips:
                raise AllocationError("There are no available nodes for LoadBalancer")
            why = clash(claims(svc, ips), self.held_before(svc), self.api_port, self.api_url)
            if why is not None:
                raise AllocationError(why)
            return ips
        taken = pool_taken(self.services.store.values(), self.pool, key)
        for other, ip in self._assigned.items():
            if other != key:
                taken.setdefault(ip, other)
        ip = self.pool.allocate(svc, taken)
        self._assigned[key] = ip
        return [ip]

    async def sync(self, key: str) -> None:
        svc = self.services.get(key)
        if svc is None:
            self._assigned.pop(key, None)
            return
        current = (svc.get("status") or {}).get("loadBalancer") or {}
        if not wants_load_balancer(svc) or svc["metadata"].get("deletionTimestamp"):
            self._assigned.pop(key, None)
            self._failed.pop(key, None)
            released = key in self._released
            self._released.discard(key)
            stype = (svc.get("spec") or {}).get("type")
            if stype != "LoadBalancer" and current.get("ingress"):
                await self._write(svc, {}, DELETING, DELETED)  # no longer a load balancer
            elif released:  # the API server cleared the status with the type change
                await self.recorder.event(_ref(svc), "Normal", DELETING, "Deleting load balancer")
                await self.recorder.event(_ref(svc), "Normal", DELETED, "Deleted load balancer")
            return
        try:
            ips = self.desired_ips(svc)
        except AllocationError as e:
            reason = str(e)
            if current.get("ingress") and self.pool is None:
                await self._write(svc, {}, DELETING, DELETED)  # lost its ports to a holder
            if self._failed.get(key) != reason:
                self._failed[key] = reason
                log.info("service %s: %s", key, reason)
                await self.recorder.event(
                    _ref(svc),
                    "Warning",
                    SYNC_FAILED,
                    f"Error syncing load balancer: failed to ensure load balancer: {reason}",
                )
            return
        self._failed.pop(key, None)
        want = load_balancer_status(ips)
        if current == want:
            return
        await self._write(svc, want, ENSURING, ENSURED)
        log.info("service %s: load balancer ingress %s", key, ",".join(ips))

    async def _write(self, svc: Obj, status: Obj, before: str, after: str) -> None:
        msg = {ENSURING: "Ensuring load balancer", DELETING: "Deleting load balancer"}
        done = {ENSURED: "Ensured load balancer", DELETED: "Deleted load balancer"}
        await self.recorder.event(_ref(svc), "Normal", before, msg[before])
        new = clone(svc)
        new.setdefault("status", {})["loadBalancer"] = status
        meta = svc["metadata"]
        try:
            await self.client.update(SERVICES, new, meta.get("namespace"), sub="status")
        except StatusError as e:
            if e.code == 404:
                return
            raise
        await self.recorder.event(_ref(svc), "Normal", after, done[after])


def _local(svc: Obj) -> bool:
    return (svc.get("spec") or {}).get("externalTrafficPolicy") == "Local"


def _ref(svc: Obj) -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "metadata": svc["metadata"]}
