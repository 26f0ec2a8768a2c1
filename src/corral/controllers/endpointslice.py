"""The EndpointSlice controller: discovery.k8s.io/v1 slices for every selecting Service.

Run by ``ControllerManager`` (``--controllers`` name ``endpointslice``), it follows
Kubernetes' pkg/controller/endpointslice and its reconciler (k8s.io/endpointslice). The
slices it manages carry ``kubernetes.io/service-name`` and ``endpointslice.kubernetes.io/
managed-by: endpointslice-controller.k8s.io``, a controller ownerReference to the Service
(the garbage collector deletes them with it) and ``generateName: <service>-``.

``sync(key)`` for one Service, level-triggered::

    Service gone, ExternalName, or no selector -> nothing (GC / the user own the slices)
    cache older than our own last writes -------> wait for the slice events (they requeue)
    desired: per matching pod with an IPv4 podIP, not terminal (terminating pods stay):
        one endpoint {addresses, conditions ready/serving/terminating, nodeName, zone,
        hostname, targetRef}, grouped by the pod's resolved port set (a pod without a
        named targetPort lacks that port: another group, so other slices)
    ``plan``, per port group, as upstream's reconcileByPortMapping:
        1. keep each existing slice's still-desired endpoints (update changed ones),
           drop the rest; an emptied slice is deleted
        2. fill the slices being updated anyway with new endpoints, fullest first
        3. the rest go into the unchanged slice that fits them most tightly, else new
           slices of at most ``max_endpoints_per_slice`` (100)
    slices of port sets no longer desired are deleted; a Service without endpoints keeps
    one empty placeholder slice; a create is turned into an update of a slice about to be
    deleted (fewer writes, stable names)
    write creates, updates, deletes; a pod whose Node is not known is left out and the
    sync raises to retry (unless publishNotReadyAddresses), as upstream.

Only IPv4 slices are produced. The tracker (upstream's EndpointSliceTracker) remembers
the generation of every slice written, so a sync on a cache that has not seen those
writes does nothing instead of creating duplicates.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from corral.api.errors import StatusError
from corral.client.informer import Informer
from corral.client.rest import ENDPOINTSLICES, NODES, Client
from corral.controllers.base import InformerFactory, clone, controller_ref
from corral.controllers.endpoints import (
    HEADLESS_LABEL,
    ServicePodController,
    find_port,
    is_service_ip_set,
    pod_ipv4,
    service_selector,
    should_pod_be_in_endpoints,
    should_set_hostname,
    target_ref,
)
from corral.controllers.replicaset import _namespace_terminating, is_pod_ready
from corral.util.clock import Clock

log = logging.getLogger("corral.controllers.endpointslice")

Obj = dict[str, Any]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
ZONE_LABEL = "topology.kubernetes.io/zone"
#: --max-endpoints-per-slice
MAX_ENDPOINTS_PER_SLICE = 100
ADDRESS_TYPE = "IPv4"
FAILED_TO_UPDATE_SLICES = "FailedToUpdateEndpointSlices"

PortKey = tuple[tuple[str, int, str, str], ...]
EndpointKey = tuple[tuple[str, ...], str, str, str]


class NodeNotFoundError(Exception):
    """A selected pod names a Node the cache does not hold; the sync is retried."""


def _meta(obj: Obj) -> Obj:
    m: Obj = obj.get("metadata") or {}
    return m


def port_key(ports: Iterable[Obj]) -> PortKey:
    """A slice's port set, order-free (upstream's portMapKey)."""
    return tuple(
        sorted(
            (
                str(p.get("name") or ""),
                int(p.get("port") or 0),
                str(p.get("protocol") or "TCP"),
                str(p.get("appProtocol") or ""),
            )
            for p in ports
        )
    )


def endpoint_key(ep: Obj) -> EndpointKey:
    """An endpoint's identity (upstream's hashEndpoint): addresses, hostname, target."""
    ref = ep.get("targetRef") or {}
    return (
        tuple(sorted(ep.get("addresses") or ())),
        str(ep.get("hostname") or ""),
        str(ref.get("namespace") or ""),
        str(ref.get("name") or ""),
    )


def endpoint_ports(svc: Obj, pod: Obj) -> list[Obj]:
    """The Service's ports as this pod serves them (a port the pod lacks is left out)."""
    out: list[Obj] = []
    for sp in (svc.get("spec") or {}).get("ports") or ():
        num = find_port(pod, sp)
        if num is None:
            continue
        port: Obj = {
            "name": sp.get("name") or "",
            "port": num,
            "protocol": sp.get("protocol") or "TCP",
        }
        if sp.get("appProtocol"):
            port["appProtocol"] = sp["appProtocol"]
        out.append(port)
    return out


def pod_endpoint(svc: Obj, pod: Obj, node: Obj | None) -> Obj | None:
    """The endpoint of ``pod`` (upstream's podToEndpoint); None without an IPv4 address."""
    ip = pod_ipv4(pod)
    if ip is None:
        return None
    serving = is_pod_ready(pod)
    terminating = bool(_meta(pod).get("deletionTimestamp"))
    publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
    ep: Obj = {
        "addresses": [ip],
        "conditions": {
            "ready": publish or (serving and not terminating),
            "serving": serving,
            "terminating": terminating,
        },
        "targetRef": target_ref(pod),
    }
    zone = ((_meta(node).get("labels") or {}) if node else {}).get(ZONE_LABEL)
    if zone:
        ep["zone"] = zone
    if (pod.get("spec") or {}).get("nodeName"):
        ep["nodeName"] = pod["spec"]["nodeName"]
    if should_set_hostname(pod, svc):
        ep["hostname"] = pod["spec"]["hostname"]
    return ep


def slice_labels(svc: Obj) -> dict[str, str]:
    """The Service's labels, then the reserved ones (upstream's setEndpointSliceLabels)."""
    labels = {
        k: v
        for k, v in (_meta(svc).get("labels") or {}).items()
        if k not in (SERVICE_NAME_LABEL, MANAGED_BY_LABEL, HEADLESS_LABEL)
    }
    labels[SERVICE_NAME_LABEL] = str(_meta(svc)["name"])
    labels[MANAGED_BY_LABEL] = CONTROLLER_NAME
    if not is_service_ip_set(svc):
        labels[HEADLESS_LABEL] = ""
    return labels


def new_slice(svc: Obj, ports: list[Obj]) -> Obj:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "generateName": f"{_meta(svc)['name']}-",
            "namespace": _meta(svc).get("namespace"),
            "labels": slice_labels(svc),
            "ownerReferences": [controller_ref(svc, "v1", "Service")],
        },
        "addressType": ADDRESS_TYPE,
        "endpoints": [],
        "ports": [dict(p) for p in ports],
    }


def owned_by(slc: Obj, svc: Obj) -> bool:
    uid = _meta(svc).get("uid")
    return any(r.get("uid") == uid for r in _meta(slc).get("ownerReferences") or ())


# --- the plan (sans-I/O) -----------------------------------------------------------------------


@dataclass
class Plan:
    """Slices to create (no name yet), to update (full objects) and to delete."""

    create: list[Obj] = field(default_factory=list)
    update: list[Obj] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)


def _plan_group(
    svc: Obj, ports: list[Obj], existing: list[Obj], desired: list[Obj], max_per: int, plan: Plan
) -> None:
    want: dict[EndpointKey, Obj] = {endpoint_key(e): e for e in desired}
    labels = slice_labels(svc)
    updating: list[Obj] = []
    unchanged: list[Obj] = []
    for slc in existing:
        kept: list[Obj] = []
        changed = False
        for ep in slc.get("endpoints") or ():
            got = want.pop(endpoint_key(ep), None)
            if got is not None:
                kept.append(got)
                changed = changed or got != ep
        labels_changed = (_meta(slc).get("labels") or {}) != labels
        if changed or len(kept) != len(slc.get("endpoints") or ()):
            if not kept:
                plan.delete.append(slc)
                continue
        elif not labels_changed:
            unchanged.append(slc)
            continue
        new = clone(slc)
        new["endpoints"], new["metadata"]["labels"] = kept, labels
        updating.append(new)
    rest = list(want.values())
    for slc in sorted(updating, key=lambda s: -len(s["endpoints"])):  # fullest first
        room = max_per - len(slc["endpoints"])
        if room > 0 and rest:
            slc["endpoints"].extend(rest[:room])
            rest = rest[room:]
    while rest:
        target: Obj | None = None
        if len(rest) < max_per:  # the unchanged slice that fits them most tightly
            fits = [s for s in unchanged if max_per - len(s.get("endpoints") or ()) >= len(rest)]
            if fits:
                best = min(fits, key=lambda s: max_per - len(s.get("endpoints") or ()))
                unchanged.remove(best)
                target = clone(best)
                target["metadata"]["labels"] = labels
                updating.append(target)
        if target is None:
            target = new_slice(svc, ports)
            plan.create.append(target)
        room = max_per - len(target["endpoints"])
        target["endpoints"].extend(rest[:room])
        rest = rest[room:]
    plan.update.extend(updating)


def _is_placeholder(slc: Obj, svc: Obj) -> bool:
    return (
        not slc.get("endpoints")
        and not slc.get("ports")
        and slc.get("addressType") == ADDRESS_TYPE
        and (_meta(slc).get("labels") or {}) == slice_labels(svc)
        and owned_by(slc, svc)
    )


def plan(
    svc: Obj,
    existing: list[Obj],
    desired: dict[PortKey, tuple[list[Obj], list[Obj]]],
    max_per: int = MAX_ENDPOINTS_PER_SLICE,
) -> Plan:
    """What to write so that ``existing`` slices of ``svc`` hold the ``desired`` endpoints
    (port key -> (ports, endpoints)), changing as few slices as upstream does."""
    out = Plan()
    by_key: dict[PortKey, list[Obj]] = {}
    for slc in existing:
        if slc.get("addressType") == ADDRESS_TYPE and owned_by(slc, svc):
            by_key.setdefault(port_key(slc.get("ports") or ()), []).append(slc)
        else:
            out.delete.append(slc)
    for key, (ports, endpoints) in desired.items():
        _plan_group(svc, ports, by_key.get(key, []), endpoints, max_per, out)
    for key, slices in by_key.items():
        if key not in desired:
            out.delete.extend(slices)
    if len(existing) == len(out.delete) and not out.create:
        if len(out.delete) == 1 and _is_placeholder(out.delete[0], svc):
            out.delete.clear()
        else:
            out.create.append(new_slice(svc, []))
    # a create becomes the update of a slice that would be deleted (same type, same owner)
    i = 0
    while i < len(out.delete) and out.create:
        victim = out.delete[i]
        if victim.get("addressType") == ADDRESS_TYPE and owned_by(victim, svc):
            made = out.create.pop()
            reuse = clone(victim)
            for k in ("labels", "ownerReferences"):
                reuse["metadata"][k] = made["metadata"][k]
            for k in ("addressType", "endpoints", "ports"):
                reuse[k] = made[k]
            out.update.append(reuse)
            del out.delete[i]
        else:
            i += 1
    return out


# --- tracking our own writes --------------------------------------------------------------------


@dataclass
class SliceTracker:
    """The generation of every slice this controller wrote (-1: deletion), per Service."""

    _gens: dict[str, dict[str, int]] = field(default_factory=dict)

    def stale(self, key: str, slices: Iterable[Obj]) -> bool:
        """Is the cache behind our writes (older generations, missing creations,
        deleted slices still there)?"""
        tracked = dict(self._gens.get(key) or {})
        for slc in slices:
            want = tracked.pop(str(_meta(slc).get("uid")), None)
            if want is not None and (want < 0 or int(_meta(slc).get("generation") or 0) < want):
                return True
        return any(g >= 0 for g in tracked.values())

    def wrote(self, key: str, slc: Obj) -> None:
        gen = int(_meta(slc).get("generation") or 0)
        self._gens.setdefault(key, {})[str(_meta(slc).get("uid"))] = gen

    def deleted(self, key: str, slc: Obj) -> None:
        self._gens.setdefault(key, {})[str(_meta(slc).get("uid"))] = -1

    def gone(self, key: str, slc: Obj) -> None:
        self._gens.get(key, {}).pop(str(_meta(slc).get("uid")), None)

    def forget(self, key: str) -> None:
        self._gens.pop(key, None)


# --- the controller ----------------------------------------------------------------------------


def _service_key(slc: Obj) -> str | None:
    labels = _meta(slc).get("labels") or {}
    name = labels.get(SERVICE_NAME_LABEL)
    if not name or labels.get(MANAGED_BY_LABEL) != CONTROLLER_NAME:
        return None
    return f"{_meta(slc).get('namespace', '')}/{name}"


class EndpointSliceController(ServicePodController):
    """Keeps the EndpointSlices of each selecting Service."""

    name: ClassVar[str] = "endpointslice"

    def __init__(
        self,
        client: Client,
        factory: InformerFactory,
        *,
        workers: int = 4,
        clock: Clock | None = None,
        max_endpoints_per_slice: int = MAX_ENDPOINTS_PER_SLICE,
    ) -> None:
        super().__init__(client, factory, workers=workers, clock=clock)
        self.max_endpoints_per_slice = max_endpoints_per_slice
        self.tracker = SliceTracker()
        self.nodes: Informer = factory.informer(NODES)
        self.slices: Informer = factory.informer(ENDPOINTSLICES)
        self._svc_index = f"{self.name}/service"
        self.slices.add_index(self._svc_index, lambda s: [k] if (k := _service_key(s)) else [])
        self.slices.add_handler(self._on_slice)

    @property
    def component(self) -> str:
        return "endpoint-slice-controller"

    def _on_service(self, type_: str, svc: Obj, old: Obj | None) -> None:
        if type_ == "DELETED":
            self.tracker.forget(f"{_meta(svc).get('namespace', '')}/{_meta(svc)['name']}")
        super()._on_service(type_, svc, old)

    def _on_slice(self, type_: str, slc: Obj, _old: Obj | None) -> None:
        key = _service_key(slc)
        if key is None:
            return
        if type_ == "DELETED":
            self.tracker.gone(key, slc)
        self.queue.add(key)

    def desired(self, svc: Obj) -> tuple[dict[PortKey, tuple[list[Obj], list[Obj]]], list[str]]:
        """Port key -> (ports, endpoints) for ``svc``, and the Nodes found missing."""
        selector = service_selector(svc)
        assert selector is not None
        publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
        out: dict[PortKey, tuple[list[Obj], list[Obj]]] = {}
        missing: list[str] = []
        for pod in self.selected_pods(svc, selector):
            if not should_pod_be_in_endpoints(pod, include_terminating=True):
                continue
            node_name = (pod.get("spec") or {}).get("nodeName")
            node = self.nodes.get(node_name) if node_name else None
            if node_name and node is None:
                missing.append(str(node_name))
                if not publish:
                    continue
            ep = pod_endpoint(svc, pod, node)
            if ep is None:
                continue
            ports = endpoint_ports(svc, pod)
            out.setdefault(port_key(ports), (ports, []))[1].append(ep)
        return out, missing

    async def sync(self, key: str) -> None:
        svc = self.services.get(key)
        if svc is None or service_selector(svc) is None:
            return
        existing = [
            s
            for s in self.slices.by_index(self._svc_index, key)
            if not _meta(s).get("deletionTimestamp")
        ]
        if self.tracker.stale(key, existing):
            log.debug("endpointslice %s: cache behind our writes; waiting for it", key)
            return
        desired, missing = self.desired(svc)
        todo = plan(svc, existing, desired, self.max_endpoints_per_slice)
        ns = str(_meta(svc).get("namespace", ""))
        # no new slices for a Service being deleted (they would race the garbage collector)
        creates = [] if _meta(svc).get("deletionTimestamp") else todo.create
        try:
            for body in creates:
                try:
                    made = await self.client.create(ENDPOINTSLICES, body, ns)
                except StatusError as e:
                    if _namespace_terminating(e):  # creates keep failing: drop the work
                        return
                    raise
                self.tracker.wrote(key, made)
            for body in todo.update:
                self.tracker.wrote(key, await self.client.update(ENDPOINTSLICES, body, ns))
            for slc in todo.delete:
                self.tracker.deleted(key, slc)
                try:
                    await self.client.delete(ENDPOINTSLICES, _meta(slc)["name"], ns)
                except StatusError as e:
                    if e.code != 404:
                        self.tracker.gone(key, slc)
                        raise
        except StatusError as e:
            if e.code not in (404, 409):
                await self.recorder.event(
                    {**svc, "apiVersion": "v1", "kind": "Service"},
                    "Warning",
                    FAILED_TO_UPDATE_SLICES,
                    f"Error updating Endpoint Slices for Service {key}: {e.message}",
                )
            raise
        if missing:
            raise NodeNotFoundError(
                f"Service {key}: pods on unknown node(s) {', '.join(sorted(set(missing)))}"
            )
