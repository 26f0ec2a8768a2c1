"""EndpointSlice controller: ``sync`` against the fake client (test_job.py), and the tracker.

Each test seeds a Service, pods and a node, awaits ``sync`` and asserts the slices stored
and the writes made (``client.actions``), as upstream's reconciler tests do.
"""

from __future__ import annotations

from typing import Any, cast

import pytest
from test_job import FakeClient, FakeClock

from corral.client.informer import WorkQueue
from corral.client.rest import NODES, PODS, Client
from corral.controllers.base import InformerFactory
from corral.controllers.endpoints import SERVICES
from corral.controllers.endpointslice import (
    CONTROLLER_NAME,
    ENDPOINTSLICES,
    MANAGED_BY_LABEL,
    SERVICE_NAME_LABEL,
    ZONE_LABEL,
    EndpointSliceController,
    NodeNotFoundError,
    SliceTracker,
)

Obj = dict[str, Any]
HTTP = {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}


def service(
    name: str = "web",
    selector: dict[str, str] | None = None,
    ports: list[Obj] | None = None,
    **spec: Any,
) -> Obj:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"svc-{name}",
            "labels": {"tier": "x"},
        },
        "spec": {
            "selector": {"app": name} if selector is None else selector,
            "ports": [HTTP] if ports is None else ports,
            "clusterIP": "10.96.0.10",
            **spec,
        },
    }


def pod(
    name: str,
    ip: str | None = "10.1.0.1",
    *,
    ready: bool = True,
    labels: dict[str, str] | None = None,
    node: str = "n1",
    deleting: bool = False,
    phase: str = "Running",
    ports: list[Obj] | None = None,
) -> Obj:
    meta: Obj = {"name": name, "namespace": "ns", "uid": f"uid-{name}"}
    meta["labels"] = {"app": "web"} if labels is None else labels
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status: Obj = {
        "phase": phase,
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    if ip:
        status["podIP"], status["podIPs"] = ip, [{"ip": ip}]
    container: Obj = {"name": "c", "image": "busybox", "ports": ports or []}
    return {
        "metadata": meta,
        "spec": {"nodeName": node, "containers": [container]},
        "status": status,
    }


class Harness:
    def __init__(self, max_per: int = 100) -> None:
        self.client = FakeClient(FakeClock())
        factory = InformerFactory(cast(Client, self.client))
        self.ctrl = EndpointSliceController(
            cast(Client, self.client),
            factory,
            clock=self.client.clock,
            max_endpoints_per_slice=max_per,
        )
        self.client.attach(factory, SERVICES, PODS, NODES, ENDPOINTSLICES)
        self.client.seed(NODES, {"metadata": {"name": "n1", "labels": {ZONE_LABEL: "z1"}}})

    def seed(self, *objs: Obj) -> None:
        for o in objs:
            res = SERVICES if "selector" in (o.get("spec") or {}) else PODS
            self.client.seed(res, o)

    def slices(self) -> list[Obj]:
        return self.client.of("endpointslices")

    def endpoints(self) -> dict[str, Obj]:
        """Pod name -> endpoint, over every slice."""
        return {e["targetRef"]["name"]: e for s in self.slices() for e in s["endpoints"]}

    async def sync(self, key: str = "ns/web") -> list[tuple[str, str, str]]:
        """Run one sync; the writes it made."""
        self.client.actions.clear()
        await self.ctrl.sync(key)
        return [a for a in self.client.actions if a[1] == "endpointslices"]


async def test_ready_not_ready_and_terminating_pods() -> None:
    h = Harness()
    h.seed(
        service(),
        pod("a", "10.1.0.1"),
        pod("b", "10.1.0.2", ready=False),
        pod("c", "10.1.0.3", deleting=True),
        pod("d", None),  # no IP yet
        pod("e", "10.1.0.5", phase="Succeeded"),
        pod("f", "10.1.0.6", labels={"app": "other"}),
    )
    assert [a[0] for a in await h.sync()] == ["create"]
    (slc,) = h.slices()
    meta = slc["metadata"]
    assert meta["generateName"] == "web-" and meta["name"].startswith("web-")
    assert meta["labels"] == {
        "tier": "x",
        SERVICE_NAME_LABEL: "web",
        MANAGED_BY_LABEL: CONTROLLER_NAME,
    }
    (ref,) = meta["ownerReferences"]
    assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
        "Service", "web", "svc-web", True,
    )  # fmt: skip
    assert slc["addressType"] == "IPv4"
    assert slc["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    eps = h.endpoints()
    assert sorted(eps) == ["a", "b", "c"]
    assert eps["a"] == {
        "addresses": ["10.1.0.1"],
        "conditions": {"ready": True, "serving": True, "terminating": False},
        "nodeName": "n1",
        "zone": "z1",
        "targetRef": {"kind": "Pod", "namespace": "ns", "name": "a", "uid": "uid-a"},
    }
    assert eps["b"]["conditions"] == {"ready": False, "serving": False, "terminating": False}
    assert eps["c"]["conditions"] == {"ready": False, "serving": True, "terminating": True}
    assert await h.sync() == []  # level-triggered: nothing changed, nothing written


async def test_publish_not_ready_addresses_makes_every_endpoint_ready() -> None:
    h = Harness()
    h.seed(
        service(publishNotReadyAddresses=True),
        pod("a", "10.1.0.1", ready=False),
        pod("b", "10.1.0.2", deleting=True),
    )
    await h.sync()
    eps = h.endpoints()
    assert eps["a"]["conditions"] == {"ready": True, "serving": False, "terminating": False}
    assert eps["b"]["conditions"] == {"ready": True, "serving": True, "terminating": True}


async def test_named_target_port_groups_pods_by_resolved_ports() -> None:
    h = Harness()
    named = {"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"}
    h.seed(
        service(ports=[named]),
        pod("a", "10.1.0.1", ports=[{"name": "web", "containerPort": 8080}]),
        pod("b", "10.1.0.2", ports=[{"name": "web", "containerPort": 9090}]),
        pod("c", "10.1.0.3", ports=[{"name": "web", "containerPort": 53, "protocol": "UDP"}]),
        pod("d", "10.1.0.4", ports=[{"name": "web", "containerPort": 8080}]),
    )
    await h.sync()
    got = {
        tuple(p["port"] for p in s["ports"]): sorted(e["targetRef"]["name"] for e in s["endpoints"])
        for s in h.slices()
    }
    # c has no TCP port named "web": it is in a slice without that port
    assert got == {(8080,): ["a", "d"], (9090,): ["b"], (): ["c"]}


async def test_multiple_ports() -> None:
    h = Harness()
    metrics = {"name": "metrics", "port": 9100, "targetPort": 9100, "protocol": "TCP"}
    dns = {"name": "dns", "port": 53, "targetPort": 5353, "protocol": "UDP"}
    h.seed(service(ports=[HTTP, metrics, dns]), pod("a"), pod("b", "10.1.0.2"))
    await h.sync()
    (slc,) = h.slices()
    assert slc["ports"] == [
        {"name": "http", "port": 8080, "protocol": "TCP"},
        {"name": "metrics", "port": 9100, "protocol": "TCP"},
        {"name": "dns", "port": 5353, "protocol": "UDP"},
    ]
    assert len(slc["endpoints"]) == 2


async def test_more_than_100_endpoints_split_and_change_few_slices() -> None:
    h = Harness()
    h.seed(service(), *(pod(f"p{i:03}", f"10.1.{i // 200}.{i % 200 + 1}") for i in range(250)))
    assert [a[0] for a in await h.sync()] == ["create"] * 3
    assert sorted(len(s["endpoints"]) for s in h.slices()) == [50, 100, 100]
    assert len(h.endpoints()) == 250
    assert await h.sync() == []
    # one more pod goes into the slice with room: one update, no new slice
    h.seed(pod("p999", "10.1.9.9"))
    assert [a[0] for a in await h.sync()] == ["update"]
    assert sorted(len(s["endpoints"]) for s in h.slices()) == [51, 100, 100]
    # a pod gone: only its slice is written
    await h.client.delete(PODS, "p000", "ns")
    assert [a[0] for a in await h.sync()] == ["update"]
    assert len(h.endpoints()) == 250 and "p000" not in h.endpoints()


async def test_selector_change_moves_endpoints_to_the_new_pods() -> None:
    h = Harness()
    h.seed(service(), pod("a"), pod("x", "10.1.0.9", labels={"app": "api"}))
    await h.sync()
    assert sorted(h.endpoints()) == ["a"]
    svc = h.client.objects[("services", "ns", "web")]
    svc = {**svc, "spec": {**svc["spec"], "selector": {"app": "api"}}}
    await h.client.update(SERVICES, svc, "ns")
    writes = await h.sync()
    assert [a[0] for a in writes] == ["update"]  # the same slice, new content
    assert sorted(h.endpoints()) == ["x"]
    assert len(h.slices()) == 1


async def test_service_without_endpoints_keeps_a_placeholder_slice() -> None:
    h = Harness()
    h.seed(service(), pod("a", "10.1.0.1", labels={"app": "nope"}))
    assert [a[0] for a in await h.sync()] == ["create"]
    (slc,) = h.slices()
    assert (slc["endpoints"], slc["ports"]) == ([], [])
    assert await h.sync() == []
    name = slc["metadata"]["name"]
    h.seed(pod("b", "10.1.0.2"))
    assert await h.sync() == [("update", "endpointslices", name)]  # reused, not recreated
    assert sorted(h.endpoints()) == ["b"]
    await h.client.delete(PODS, "b", "ns")
    assert await h.sync() == [("update", "endpointslices", name)]
    assert h.slices()[0]["endpoints"] == []


@pytest.mark.parametrize(
    "svc",
    [
        service(selector={}),
        service(type="ExternalName", externalName="example.com"),
    ],
    ids=["no-selector", "external-name"],
)
async def test_services_left_alone(svc: Obj) -> None:
    h = Harness()
    h.seed(svc, pod("a"))
    assert await h.sync() == []
    assert h.slices() == []


async def test_service_deleted_leaves_slices_to_the_garbage_collector() -> None:
    h = Harness()
    h.seed(service(), pod("a"))
    await h.sync()
    await h.client.delete(SERVICES, "web", "ns")
    assert await h.sync() == []
    assert len(h.slices()) == 1


async def test_service_labels_are_copied_onto_slices() -> None:
    h = Harness()
    h.seed(service(), pod("a"))
    await h.sync()
    svc = h.client.objects[("services", "ns", "web")]
    meta = {**svc["metadata"], "labels": {"tier": "y"}}
    await h.client.update(SERVICES, {**svc, "metadata": meta}, "ns")
    assert [a[0] for a in await h.sync()] == ["update"]
    assert h.slices()[0]["metadata"]["labels"]["tier"] == "y"


async def test_pod_on_unknown_node_is_left_out_and_retried() -> None:
    h = Harness()
    h.seed(service(), pod("a"), pod("b", "10.1.0.2", node="ghost"))
    with pytest.raises(NodeNotFoundError):
        await h.sync()
    assert sorted(h.endpoints()) == ["a"]


async def _drain(q: WorkQueue) -> set[str]:
    keys = set()
    while len(q):
        k = await q.get()
        q.done(k)
        keys.add(k)
    return keys


async def test_pod_changes_enqueue_the_services_selecting_it() -> None:
    h = Harness()
    h.seed(service(), service("api", selector={"app": "api"}), service("all", selector={"x": "1"}))
    p = pod("a", labels={"app": "web", "x": "1"})
    h.seed(p)
    assert await _drain(h.ctrl.queue) == {"ns/web", "ns/api", "ns/all"}
    h.ctrl.queue.forget("ns/web")
    await h.client.patch(PODS, "a", {"metadata": {"labels": {"app": "api", "x": None}}}, "ns")
    assert await _drain(h.ctrl.queue) == {"ns/web", "ns/api", "ns/all"}  # old and new
    await h.client.patch(PODS, "a", {"metadata": {"annotations": {"k": "v"}}}, "ns")
    assert await _drain(h.ctrl.queue) == set()  # nothing endpoints depend on changed
    await h.client.patch(PODS, "a", {"status": {"conditions": [{"type": "Ready"}]}}, "ns")
    assert await _drain(h.ctrl.queue) == {"ns/api"}


def _slice(uid: str, gen: int) -> Obj:
    return {"metadata": {"name": uid, "uid": uid, "generation": gen}}


@pytest.mark.parametrize(
    ("writes", "cached", "stale"),
    [
        ([], [_slice("a", 1)], False),
        ([("wrote", _slice("a", 2))], [_slice("a", 2)], False),
        ([("wrote", _slice("a", 2))], [_slice("a", 1)], True),
        ([("wrote", _slice("b", 1))], [_slice("a", 1)], True),
        ([("deleted", _slice("a", 1))], [_slice("a", 1)], True),
        ([("deleted", _slice("a", 1))], [], False),
        ([("wrote", _slice("b", 1)), ("gone", _slice("b", 1))], [], False),
    ],
    ids=["untracked", "caught-up", "older-generation", "creation-unseen", "deletion-unseen",
         "deletion-seen", "deleted-by-someone-else"],
)  # fmt: skip
def test_tracker_detects_a_cache_behind_our_writes(
    writes: list[tuple[str, Obj]], cached: list[Obj], stale: bool
) -> None:
    t = SliceTracker()
    for op, slc in writes:
        getattr(t, op)("ns/web", slc)
    assert t.stale("ns/web", cached) is stale
