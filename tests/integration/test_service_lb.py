"""The service-lb controller with an address pool, through ``corral server
--service-lb-pool`` (its controller manager gets the flag), with the real kubectl and the
``kubernetes`` client: one address per Service, ``loadBalancerIP`` honoured, exhaustion
and a foreign request left ``<pending>`` with a Warning, addresses freed on delete and on a
type change, another ``loadBalancerClass`` left alone. No agent: the pool needs no node
(the data path is tests/e2e/test_loadbalancer.py's)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from conftest import Kubectl, RunningServer, start_server
from corral.testing.wait import eventually

Obj = dict[str, Any]
POOL = "10.251.0.8-10.251.0.9"  # two addresses; never put on the host (no data path here)


@pytest.fixture(scope="module")
def lb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_server(
        tmp_path_factory.mktemp("lb") / "data",
        extra=["--no-scheduler", "--service-lb-pool", POOL],
        controllers=True,
    )
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def kc(lb_server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(lb_server.kubeconfig, tmp_path_factory.mktemp("kubecache"))


@pytest.fixture(scope="module")
def api(lb_server: RunningServer) -> Iterator[k8s.CoreV1Api]:
    c = k8s_config.new_client_from_config(str(lb_server.kubeconfig))
    try:
        yield k8s.CoreV1Api(c)
    finally:
        c.close()


@pytest.fixture
def ns(kc: Kubectl) -> str:
    name = "lb-" + uuid.uuid4().hex[:8]
    kc("create", "namespace", name)
    return name


def service(name: str, **spec: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "targetPort": 8080}], **spec},
    }


def apply(kc: Kubectl, ns: str, obj: Obj) -> None:
    kc("apply", "-n", ns, "-f", "-", input=json.dumps(obj))


def ingress(api: k8s.CoreV1Api, ns: str, name: str) -> list[tuple[Any, Any]]:
    svc = api.read_namespaced_service_status(name, ns)
    lb = svc.status.load_balancer if svc.status else None
    return [(i.ip, i.ip_mode) for i in (lb.ingress if lb else None) or []]


def events(kc: Kubectl, ns: str, name: str) -> list[tuple[str, str, str]]:
    items = json.loads(kc("get", "events", "-n", ns, "-o", "json").stdout)["items"]
    return [
        (e["type"], e["reason"], e["message"])
        for e in items
        if e["involvedObject"].get("name") == name and e["involvedObject"].get("kind") == "Service"
    ]


def row(kc: Kubectl, ns: str, name: str) -> list[str]:
    return list(kc("get", "svc", name, "-n", ns, "--no-headers").stdout.split())


def test_pool_addresses_one_each_and_freed(kc: Kubectl, api: k8s.CoreV1Api, ns: str) -> None:
    apply(kc, ns, service("a"))
    eventually(lambda: ingress(api, ns, "a") == [("10.251.0.8", "VIP")], timeout=10)
    assert row(kc, ns, "a")[3] == "10.251.0.8"
    assert [r for _, r, _ in events(kc, ns, "a")] == ["EnsuringLoadBalancer", "EnsuredLoadBalancer"]

    apply(kc, ns, service("b", allocateLoadBalancerNodePorts=False))
    eventually(lambda: ingress(api, ns, "b") == [("10.251.0.9", "VIP")], timeout=10)
    assert row(kc, ns, "b")[3:5] == ["10.251.0.9", "80/TCP"]  # no nodePort allocated

    apply(kc, ns, service("c"))
    want = (
        "Warning",
        "SyncLoadBalancerFailed",
        "Error syncing load balancer: failed to ensure load balancer: no available IPs in "
        f"the service-lb pool {POOL} for {ns}/c",
    )
    eventually(lambda: want in events(kc, ns, "c"), timeout=10)
    assert row(kc, ns, "c")[3] == "<pending>"

    kc("delete", "svc", "a", "-n", ns)  # its address goes to the one waiting
    eventually(lambda: ingress(api, ns, "c") == [("10.251.0.8", "VIP")], timeout=10)

    api.patch_namespaced_service("b", ns, {"spec": {"type": "ClusterIP"}})
    eventually(lambda: ingress(api, ns, "b") == [], timeout=10)
    assert ("Normal", "DeletedLoadBalancer", "Deleted load balancer") in events(kc, ns, "b")
    kc("delete", "svc", "c", "-n", ns)


def test_requested_ip_and_foreign_requests(kc: Kubectl, api: k8s.CoreV1Api, ns: str) -> None:
    apply(kc, ns, service("want9", loadBalancerIP="10.251.0.9"))
    eventually(lambda: ingress(api, ns, "want9") == [("10.251.0.9", "VIP")], timeout=10)

    apply(kc, ns, service("outside", loadBalancerIP="192.0.2.77"))
    msg = (
        "Error syncing load balancer: failed to ensure load balancer: requested IP 192.0.2.77 "
        f"(spec.loadBalancerIP) is not in the service-lb pool {POOL}"
    )
    eventually(lambda: ("Warning", "SyncLoadBalancerFailed", msg) in events(kc, ns, "outside"), timeout=10)  # fmt: skip

    apply(kc, ns, service("taken", loadBalancerIP="10.251.0.9"))
    eventually(
        lambda: any(f"already in use by service {ns}/want9" in m for _, _, m in events(kc, ns, "taken")),
        timeout=10,
    )  # fmt: skip

    apply(kc, ns, service("other", loadBalancerClass="example.com/other"))
    apply(kc, ns, service("last"))  # synced after "other": the controller has seen both
    eventually(lambda: ingress(api, ns, "last") == [("10.251.0.8", "VIP")], timeout=10)
    assert ingress(api, ns, "other") == [] and events(kc, ns, "other") == []
    for name in ("outside", "taken", "other"):
        assert row(kc, ns, name)[3] == "<pending>"
    kc("delete", "namespace", ns, "--wait=false")
