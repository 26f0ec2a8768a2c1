"""The Endpoints controller: one core/v1 ``Endpoints`` per selecting Service, as upstream.

Run by ``ControllerManager`` (``--controllers`` name ``endpoints``). It also holds what the
EndpointSlice controller (``endpointslice.py``) shares with it, as Kubernetes keeps it in
pkg/controller/util/endpoint: which pods belong in endpoints, how a Service port's
``targetPort`` resolves in a pod (``find_port``), and ``ServicePodController``, the
base whose handlers map a pod change to the keys of the Services selecting the pod.

``sync(key)`` for one Service, level-triggered::

    Service gone ------------------------------> delete the Endpoints of that name
    ExternalName, or no selector --------------> leave the Endpoints alone (user-managed)
    pods of the namespace matching the selector, with an IPv4 podIP, not terminal,
        not terminating (unless publishNotReadyAddresses)
    per Service port: targetPort resolved in the pod (a pod without the named port is
        left out of that port); Ready pods (all with publishNotReadyAddresses) go to
        ``addresses``, the others to ``notReadyAddresses``
    repack (upstream's RepackSubsets): one subset per distinct set of addresses, with
        every port those addresses offer; sorted
    create the Endpoints, or update it when subsets or labels differ; nothing otherwise

At start every existing Endpoints is queued once (upstream's checkLeftoverEndpoints), so
one whose Service was deleted while the controller was down goes too. Not done: the
``endpoints.kubernetes.io/over-capacity`` truncation past 1,000 addresses and the
optional ``last-change-trigger-time`` annotation.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any, ClassVar

from corral.api.errors import StatusError
from corral.api.selectors import LabelSelector, selector_from_map
from corral.client.informer import Informer
from corral.client.rest import ENDPOINTS, PODS, SERVICES, Client
from corral.controllers.base import (
    NAMESPACE_INDEX,
    Controller,
    InformerFactory,
    clone,
    namespace_index,
)
from corral.controllers.replicaset import _namespace_terminating, is_pod_ready
from corral.util.clock import Clock

log = logging.getLogger("corral.controllers.endpoints")

Obj = dict[str, Any]

#: set (empty) on the endpoints of a Service without a cluster IP
HEADLESS_LABEL = "service.kubernetes.io/headless"
#: Endpoints used as leader-election locks carry this; they are never cleaned up
LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"

# Event reasons, spelled as Kubernetes does.
FAILED_TO_CREATE_ENDPOINT = "FailedToCreateEndpoint"
FAILED_TO_UPDATE_ENDPOINT = "FailedToUpdateEndpoint"


# --- shared pod and port helpers (pkg/controller/util/endpoint) --------------------------------


def _meta(obj: Obj) -> Obj:
    m: Obj = obj.get("metadata") or {}
    return m


def service_selector(svc: Obj) -> LabelSelector | None:
    """The Service's pod selector, or None when this controller must leave it alone
    (no selector: endpoints are managed by hand; ExternalName: no endpoints at all)."""
    spec = svc.get("spec") or {}
    if spec.get("type") == "ExternalName" or not spec.get("selector"):
        return None
    return selector_from_map(spec["selector"])


def is_service_ip_set(svc: Obj) -> bool:
    ip = (svc.get("spec") or {}).get("clusterIP") or ""
    return ip not in ("", "None")


def pod_ipv4(pod: Obj) -> str | None:
    """The pod's IPv4 address (``status.podIPs`` first, then ``status.podIP``)."""
    status = pod.get("status") or {}
    candidates = [str(p.get("ip") or "") for p in status.get("podIPs") or ()]
    candidates.append(str(status.get("podIP") or ""))
    for ip in candidates:
        try:
            if ip and ipaddress.ip_address(ip).version == 4:
                return ip
        except ValueError:
            continue
    return None


def should_pod_be_in_endpoints(pod: Obj, include_terminating: bool) -> bool:
    """Upstream's ShouldPodBeInEndpoints: not terminal, has an IP, and (unless
    ``include_terminating``) not being deleted."""
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return False
    if not status.get("podIP") and not status.get("podIPs"):
        return False
    return include_terminating or not _meta(pod).get("deletionTimestamp")


def find_port(pod: Obj, svc_port: Obj) -> int | None:
    """The pod port a Service port targets (podutil.FindPort): a number as is; a name is
    looked up among the containers' (and restartable init containers') ports of the same
    protocol. None: the pod has no such port."""
    target = svc_port.get("targetPort")
    if target is None or target == "" or target == 0:
        target = svc_port.get("port")
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    proto = svc_port.get("protocol") or "TCP"
    spec = pod.get("spec") or {}
    containers = list(spec.get("containers") or ())
    containers += [
        c for c in spec.get("initContainers") or () if c.get("restartPolicy") == "Always"
    ]
    for c in containers:
        for p in c.get("ports") or ():
            if p.get("name") == target and (p.get("protocol") or "TCP") == proto:
                return int(p["containerPort"])
    return None


def should_set_hostname(pod: Obj, svc: Obj) -> bool:
    spec = pod.get("spec") or {}
    return (
        bool(spec.get("hostname"))
        and spec.get("subdomain") == _meta(svc).get("name")
        and _meta(pod).get("namespace") == _meta(svc).get("namespace")
    )


def target_ref(pod: Obj) -> Obj:
    m = _meta(pod)
    return {
        "kind": "Pod",
        "namespace": m.get("namespace"),
        "name": m.get("name"),
        "uid": m.get("uid"),
    }


def _endpoint_fields(pod: Obj) -> tuple[Any, ...]:
    """What of a pod can change its endpoints (upstream's podEndpointsChanged, plus phase)."""
    status, spec = pod.get("status") or {}, pod.get("spec") or {}
    return (
        _meta(pod).get("deletionTimestamp"),
        is_pod_ready(pod),
        status.get("phase"),
        status.get("podIP"),
        [p.get("ip") for p in status.get("podIPs") or ()],
        spec.get("nodeName"),
        spec.get("hostname"),
        spec.get("subdomain"),
    )


class ServicePodController(Controller):
    """Services and pods on shared informers; handlers enqueue Service keys only."""

    def __init__(
        self,
        client: Client,
        factory: InformerFactory,
        *,
        workers: int = 4,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(client, factory, workers=workers, clock=clock)
        self.services: Informer = factory.informer(SERVICES)
        self.pods: Informer = factory.informer(PODS)
        self._ns_index = NAMESPACE_INDEX  # shared with other controllers (base.py)
        for inf in (self.services, self.pods):
            inf.add_index(self._ns_index, namespace_index)
        self.services.add_handler(self._on_service)
        self.pods.add_handler(self._on_pod)

    def _on_service(self, _type: str, svc: Obj, _old: Obj | None) -> None:
        self.enqueue(svc)

    def _services_selecting(self, pod: Obj) -> list[str]:
        ns = str(_meta(pod).get("namespace", ""))
        labels = _meta(pod).get("labels") or {}
        out = []
        for svc in self.services.by_index(self._ns_index, ns):
            sel = service_selector(svc)
            if sel is not None and sel.matches(labels):
                out.append(f"{ns}/{_meta(svc)['name']}")
        return out

    def _on_pod(self, type_: str, pod: Obj, old: Obj | None) -> None:
        keys = set(self._services_selecting(pod))
        if type_ == "MODIFIED" and old is not None:
            labels_changed = _meta(old).get("labels") != _meta(pod).get("labels")
            if labels_changed:
                keys.update(self._services_selecting(old))
            # a pod no Service selects (most, at scale) is not compared field by field
            if not keys or (not labels_changed and _endpoint_fields(old) == _endpoint_fields(pod)):
                return
        for key in keys:
            self.queue.add(key)

    def selected_pods(self, svc: Obj, selector: LabelSelector) -> list[Obj]:
        """The namespace's pods matching ``selector``, by name (deterministic output)."""
        ns = str(_meta(svc).get("namespace", ""))
        pods = [
            p
            for p in self.pods.by_index(self._ns_index, ns)
            if selector.matches(_meta(p).get("labels") or {})
        ]
        return sorted(pods, key=lambda p: str(_meta(p).get("name", "")))


# --- desired subsets ---------------------------------------------------------------------------


def _port_sort_key(port: Obj) -> tuple[str, int, str]:
    return (str(port.get("name") or ""), int(port.get("port") or 0), str(port.get("protocol")))


def _addr_key(addr: Obj) -> tuple[str, str]:
    return (str(addr["ip"]), str((addr.get("targetRef") or {}).get("uid") or ""))


def endpoint_subsets(svc: Obj, pods: list[Obj]) -> list[Obj]:
    """The Endpoints ``subsets`` for ``svc`` given its selected ``pods``, repacked."""
    spec = svc.get("spec") or {}
    publish = bool(spec.get("publishNotReadyAddresses"))
    svc_ports = list(spec.get("ports") or ())
    # port (as a hashable key, or None for a headless Service without ports) -> addresses
    by_port: dict[tuple[Any, ...] | None, dict[tuple[str, str], tuple[Obj, bool]]] = {}
    ports: dict[tuple[Any, ...], Obj] = {}
    for pod in pods:
        if not should_pod_be_in_endpoints(pod, publish):
            continue
        ip = pod_ipv4(pod)
        if ip is None:
            continue
        addr: Obj = {"ip": ip, "targetRef": target_ref(pod)}
        if (pod.get("spec") or {}).get("nodeName"):
            addr["nodeName"] = pod["spec"]["nodeName"]
        if should_set_hostname(pod, svc):
            addr["hostname"] = pod["spec"]["hostname"]
        ready = publish or is_pod_ready(pod)
        keys: list[tuple[Any, ...] | None] = []
        if not svc_ports and not is_service_ip_set(svc):
            keys.append(None)
        for sp in svc_ports:
            num = find_port(pod, sp)
            if num is None:
                continue
            epp: Obj = {"port": num, "protocol": sp.get("protocol") or "TCP"}
            if sp.get("name"):
                epp["name"] = sp["name"]
            if sp.get("appProtocol"):
                epp["appProtocol"] = sp["appProtocol"]
            port_id = tuple(sorted(epp.items()))
            ports[port_id] = epp
            keys.append(port_id)
        for k in keys:
            addrs = by_port.setdefault(k, {})
            ak = _addr_key(addr)
            if ready or ak not in addrs:  # ready wins over not ready
                addrs[ak] = (addr, ready)
    # group the ports by the exact set of addresses offering them
    groups: dict[frozenset[tuple[tuple[str, str], bool]], list[tuple[Any, ...] | None]] = {}
    members: dict[frozenset[tuple[tuple[str, str], bool]], list[tuple[Obj, bool]]] = {}
    for pk, addrs in by_port.items():
        gk = frozenset((ak, r) for ak, (_, r) in addrs.items())
        groups.setdefault(gk, []).append(pk)
        members[gk] = list(addrs.values())
    subsets: list[Obj] = []
    for gk, pks in groups.items():
        subset: Obj = {}
        ready_addrs = sorted((a for a, r in members[gk] if r), key=_addr_key)
        not_ready = sorted((a for a, r in members[gk] if not r), key=_addr_key)
        if ready_addrs:
            subset["addresses"] = ready_addrs
        if not_ready:
            subset["notReadyAddresses"] = not_ready
        sub_ports = sorted((ports[pk] for pk in pks if pk is not None), key=_port_sort_key)
        if sub_ports:
            subset["ports"] = sub_ports
        subsets.append(subset)

    def subset_key(s: Obj) -> tuple[Any, ...]:
        addrs = [_addr_key(a) for a in s.get("addresses", []) + s.get("notReadyAddresses", [])]
        return (addrs, [_port_sort_key(p) for p in s.get("ports", [])])

    return sorted(subsets, key=subset_key)


def endpoints_labels(svc: Obj) -> dict[str, str]:
    labels = {k: v for k, v in (_meta(svc).get("labels") or {}).items() if k != HEADLESS_LABEL}
    if not is_service_ip_set(svc):
        labels[HEADLESS_LABEL] = ""
    return labels


# --- the controller ----------------------------------------------------------------------------


class EndpointsController(ServicePodController):
    """Keeps the ``Endpoints`` named as each selecting Service."""

    name: ClassVar[str] = "endpoints"

    def __init__(
        self,
        client: Client,
        factory: InformerFactory,
        *,
        workers: int = 4,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(client, factory, workers=workers, clock=clock)
        self.endpoints: Informer = factory.informer(ENDPOINTS)
        self.endpoints.add_handler(self._on_endpoints)

    @property
    def component(self) -> str:
        return "endpoint-controller"

    def _on_endpoints(self, type_: str, ep: Obj, _old: Obj | None) -> None:
        if type_ == "DELETED":  # recreate it if its Service still wants it
            self.enqueue(ep)

    async def run(self) -> None:
        self.factory.start()
        await self.factory.wait_for_sync()
        for ep in list(self.endpoints.store.values()):  # checkLeftoverEndpoints
            if LEADER_ANNOTATION not in (_meta(ep).get("annotations") or {}):
                self.enqueue(ep)
        await super().run()

    async def sync(self, key: str) -> None:
        ns, _, name = key.partition("/")
        svc = self.services.get(key)
        if svc is None:
            cur = self.endpoints.get(key)
            if cur is not None and LEADER_ANNOTATION in (_meta(cur).get("annotations") or {}):
                return
            try:
                await self.client.delete(ENDPOINTS, name, ns)
            except StatusError as e:
                if e.code != 404:
                    raise
            return
        selector = service_selector(svc)
        if selector is None:
            return
        subsets = endpoint_subsets(svc, self.selected_pods(svc, selector))
        labels = endpoints_labels(svc)
        current = self.endpoints.get(key)
        involved = {**svc, "apiVersion": "v1", "kind": "Service"}
        if current is None:
            body: Obj = {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": name, "labels": labels},
                "subsets": subsets,
            }
            try:
                await self.client.create(ENDPOINTS, body, ns)
            except StatusError as e:
                if _namespace_terminating(e):  # creates keep failing: drop the work
                    return
                if e.code != 409:  # 409: the cache has not seen it yet; retry compares
                    await self.recorder.event(
                        involved,
                        "Warning",
                        FAILED_TO_CREATE_ENDPOINT,
                        f"Failed to create endpoint for service {key}: {e.message}",
                    )
                raise
            return
        if (current.get("subsets") or []) == subsets and (
            _meta(current).get("labels") or {}
        ) == labels:
            return
        new = clone(current)
        new["metadata"]["labels"] = labels
        new["subsets"] = subsets
        try:
            await self.client.update(ENDPOINTS, new, ns)
        except StatusError as e:
            if e.code not in (404, 409):
                await self.recorder.event(
                    involved,
                    "Warning",
                    FAILED_TO_UPDATE_ENDPOINT,
                    f"Failed to update endpoint {key}: {e.message}",
                )
            raise
