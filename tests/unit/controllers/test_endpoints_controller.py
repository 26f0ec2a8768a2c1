"""Endpoints controller: ``sync`` against the fake client (test_job.py), and port lookup."""

from __future__ import annotations

from typing import Any, cast

import pytest
from test_endpointslice import HTTP, pod, service
from test_job import FakeClient, FakeClock

from corral.client.rest import PODS, Client
from corral.controllers.base import InformerFactory
from corral.controllers.endpoints import (
    ENDPOINTS,
    HEADLESS_LABEL,
    SERVICES,
    EndpointsController,
    find_port,
)

Obj = dict[str, Any]


def addr(name: str, ip: str) -> Obj:
    ref = {"kind": "Pod", "namespace": "ns", "name": name, "uid": f"uid-{name}"}
    return {"ip": ip, "nodeName": "n1", "targetRef": ref}


class Harness:
    def __init__(self) -> None:
        self.client = FakeClient(FakeClock())
        factory = InformerFactory(cast(Client, self.client))
        self.ctrl = EndpointsController(cast(Client, self.client), factory, clock=self.client.clock)
        self.client.attach(factory, SERVICES, PODS, ENDPOINTS)

    def seed(self, *objs: Obj) -> None:
        for o in objs:
            self.client.seed(SERVICES if "selector" in (o.get("spec") or {}) else PODS, o)

    def endpoints(self, name: str = "web") -> Obj:
        return self.client.objects[("endpoints", "ns", name)]

    async def sync(self, key: str = "ns/web") -> list[tuple[str, str, str]]:
        self.client.actions.clear()
        await self.ctrl.sync(key)
        return [a for a in self.client.actions if a[1] == "endpoints"]


async def test_ready_not_ready_and_terminating_pods() -> None:
    h = Harness()
    h.seed(
        service(),
        pod("a", "10.1.0.1"),
        pod("b", "10.1.0.2", ready=False),
        pod("c", "10.1.0.3", deleting=True),  # terminating: left out
        pod("d", None),
        pod("e", "10.1.0.5", phase="Failed"),
    )
    assert [a[0] for a in await h.sync()] == ["create"]
    ep = h.endpoints()
    assert ep["metadata"]["labels"] == {"tier": "x"}
    assert ep["subsets"] == [
        {
            "addresses": [addr("a", "10.1.0.1")],
            "notReadyAddresses": [addr("b", "10.1.0.2")],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        }
    ]
    assert await h.sync() == []  # unchanged: no write
    await h.client.patch(PODS, "b", {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}, "ns")  # fmt: skip
    assert [a[0] for a in await h.sync()] == ["update"]
    assert h.endpoints()["subsets"][0]["addresses"] == [
        addr("a", "10.1.0.1"),
        addr("b", "10.1.0.2"),
    ]
    assert "notReadyAddresses" not in h.endpoints()["subsets"][0]


async def test_publish_not_ready_addresses_includes_not_ready_and_terminating() -> None:
    h = Harness()
    h.seed(
        service(publishNotReadyAddresses=True),
        pod("a", "10.1.0.1", ready=False),
        pod("c", "10.1.0.3", deleting=True),
    )
    await h.sync()
    (subset,) = h.endpoints()["subsets"]
    assert subset["addresses"] == [addr("a", "10.1.0.1"), addr("c", "10.1.0.3")]
    assert "notReadyAddresses" not in subset


async def test_named_target_port_and_multiple_ports_are_repacked() -> None:
    h = Harness()
    named = {"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"}
    raw = {"name": "raw", "port": 9000, "targetPort": 9000, "protocol": "TCP"}
    h.seed(
        service(ports=[named, raw]),
        pod("a", "10.1.0.1", ports=[{"name": "web", "containerPort": 8080}]),
        pod("b", "10.1.0.2"),  # no port named "web": only in the raw port's subset
    )
    await h.sync()
    assert h.endpoints()["subsets"] == [
        {
            "addresses": [addr("a", "10.1.0.1")],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        },
        {
            "addresses": [addr("a", "10.1.0.1"), addr("b", "10.1.0.2")],
            "ports": [{"name": "raw", "port": 9000, "protocol": "TCP"}],
        },
    ]


async def test_same_addresses_share_one_subset_with_every_port() -> None:
    h = Harness()
    metrics = {"name": "metrics", "port": 9100, "targetPort": 9100, "protocol": "TCP"}
    h.seed(service(ports=[metrics, HTTP]), pod("a"))
    await h.sync()
    (subset,) = h.endpoints()["subsets"]
    assert [p["name"] for p in subset["ports"]] == ["http", "metrics"]


async def test_selector_change_and_headless_label() -> None:
    h = Harness()
    h.seed(service(clusterIP="None"), pod("a"), pod("x", "10.1.0.9", labels={"app": "api"}))
    await h.sync()
    assert h.endpoints()["metadata"]["labels"] == {"tier": "x", HEADLESS_LABEL: ""}
    svc = h.client.objects[("services", "ns", "web")]
    await h.client.update(SERVICES, {**svc, "spec": {**svc["spec"], "selector": {"app": "api"}}}, "ns")  # fmt: skip
    assert [a[0] for a in await h.sync()] == ["update"]
    assert h.endpoints()["subsets"][0]["addresses"] == [addr("x", "10.1.0.9")]


async def test_no_matching_pods_gives_empty_endpoints() -> None:
    h = Harness()
    h.seed(service())
    await h.sync()
    assert h.endpoints()["subsets"] == []


async def test_service_deleted_deletes_its_endpoints() -> None:
    h = Harness()
    h.seed(service(), pod("a"))
    await h.sync()
    await h.client.delete(SERVICES, "web", "ns")
    assert await h.sync() == [("delete", "endpoints", "web")]
    assert ("endpoints", "ns", "web") not in h.client.objects


async def test_service_without_selector_keeps_its_hand_made_endpoints() -> None:
    h = Harness()
    hand = {"metadata": {"name": "web", "namespace": "ns"}, "subsets": [{"addresses": [{"ip": "1.2.3.4"}]}]}  # fmt: skip
    h.client.seed(ENDPOINTS, hand)
    h.seed(service(selector={}), pod("a"))
    assert await h.sync() == []
    assert h.endpoints()["subsets"] == [{"addresses": [{"ip": "1.2.3.4"}]}]


@pytest.mark.parametrize(
    ("svc_port", "want"),
    [
        ({"port": 80, "targetPort": 8080}, 8080),
        ({"port": 80}, 80),
        ({"port": 80, "targetPort": "http"}, 8080),
        ({"port": 80, "targetPort": "http", "protocol": "UDP"}, None),
        ({"port": 80, "targetPort": "sidecar"}, 7070),
        ({"port": 80, "targetPort": "missing"}, None),
    ],
    ids=["number", "defaults-to-port", "named", "named-wrong-protocol", "sidecar", "missing"],
)
def test_find_port(svc_port: Obj, want: int | None) -> None:
    p = pod("a", ports=[{"name": "http", "containerPort": 8080}])
    p["spec"]["initContainers"] = [
        {
            "name": "s",
            "restartPolicy": "Always",
            "ports": [{"name": "sidecar", "containerPort": 7070}],
        }
    ]
    assert find_port(p, svc_port) == want
