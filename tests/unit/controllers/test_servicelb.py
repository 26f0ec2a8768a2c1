"""The service load-balancer controller: node addresses, the pool, and ``sync`` against the
fake client (test_job.py): what it writes into ``status.loadBalancer`` and which Events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import pytest
from test_job import FakeClient, FakeClock

from corral.client.rest import ENDPOINTSLICES, NODES, SERVICES, Client
from corral.controllers.base import InformerFactory
from corral.controllers.servicelb import (
    EXCLUDE_LABEL,
    LB_CLASS,
    AllocationError,
    Pool,
    ServiceLBController,
    apiserver_port,
    clash,
    node_addresses,
    nodes_with_ready_endpoints,
    pool_taken,
    wants_load_balancer,
)

Obj = dict[str, Any]


def node(
    name: str, *addrs: tuple[str, str], ready: bool = True, labels: dict[str, str] | None = None
) -> Obj:
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "status": {
            "addresses": [{"type": t, "address": a} for t, a in addrs],
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def svc(
    name: str = "web", type_: str = "LoadBalancer", ingress: Sequence[str] = (), **spec: Any
) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"type": type_, "ports": [{"port": 80}], "ipFamilies": ["IPv4"], **spec},
        "status": {
            "loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"} for ip in ingress]}
            if ingress
            else {}
        },
    }


@pytest.mark.parametrize(
    ("nodes", "want"),
    [
        ([node("a", ("InternalIP", "10.0.0.9")), node("b", ("InternalIP", "10.0.0.10"))],
         ["10.0.0.10", "10.0.0.9"]),
        ([node("a", ("InternalIP", "10.0.0.9"), ("Hostname", "a")),
          node("b", ("InternalIP", "10.0.0.8"), ("ExternalIP", "203.0.113.5"))],
         ["203.0.113.5"]),
        ([node("a", ("InternalIP", "10.0.0.9")), node("b", ("InternalIP", "10.0.0.8"), ready=False)],
         ["10.0.0.9"]),
        ([node("a", ("InternalIP", "10.0.0.9"), labels={EXCLUDE_LABEL: ""})], []),
        ([node("a", ("InternalIP", "10.0.0.9"), ("InternalIP", "fd00::9"))], ["10.0.0.9"]),
        ([], []),
    ],
    ids=["internal-sorted-as-strings", "external-wins", "not-ready-left-out", "excluded-label",
         "ipv4-family-only", "no-nodes"],
)  # fmt: skip
def test_node_addresses(nodes: list[Obj], want: list[str]) -> None:
    assert node_addresses(nodes) == want


@pytest.mark.parametrize(
    ("service", "want"),
    [
        (svc(), True),
        (svc(loadBalancerClass=LB_CLASS), True),
        (svc(loadBalancerClass="example.com/other"), False),
        (svc(type_="NodePort"), False),
        (svc(type_="ClusterIP"), False),
    ],
    ids=["no-class", "corral-class", "other-class", "nodeport", "clusterip"],
)
def test_wants_load_balancer(service: Obj, want: bool) -> None:
    assert wants_load_balancer(service) is want


@pytest.mark.parametrize(
    ("text", "addresses"),
    [
        ("10.250.3.4/30", ["10.250.3.4", "10.250.3.5", "10.250.3.6", "10.250.3.7"]),
        ("10.250.3.8-10.250.3.9", ["10.250.3.8", "10.250.3.9"]),
        ("10.250.3.8/32, 10.250.3.1-10.250.3.2", ["10.250.3.8", "10.250.3.1", "10.250.3.2"]),
    ],
    ids=["cidr", "range", "several"],
)
def test_pool_parse(text: str, addresses: list[str]) -> None:
    pool = Pool.parse(text)
    assert list(pool.addresses()) == addresses
    assert all(a in pool for a in addresses) and "10.250.4.1" not in pool


@pytest.mark.parametrize(
    "text", ["", "10.0.0.0/33", "10.0.0.9-10.0.0.1", "nope", "10.0.0.1-fd00::1"]
)
def test_pool_parse_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        Pool.parse(text)


POOL = Pool.parse("10.250.3.4/31")  # two addresses


@pytest.mark.parametrize(
    ("service", "taken", "want"),
    [
        (svc(), {}, "10.250.3.4"),
        (svc(), {"10.250.3.4": "ns/a"}, "10.250.3.5"),
        (svc(ingress=("10.250.3.5",)), {}, "10.250.3.5"),  # stable: keeps its address
        (svc(ingress=("192.0.2.1",)), {}, "10.250.3.4"),  # not from the pool: replaced
        (svc(loadBalancerIP="10.250.3.5"), {}, "10.250.3.5"),
        (svc(ingress=("10.250.3.4",), loadBalancerIP="10.250.3.5"), {}, "10.250.3.5"),
    ],
    ids=["lowest-free", "next-free", "keeps-its-own", "foreign-replaced", "requested",
         "requested-moves-it"],
)  # fmt: skip
def test_pool_allocate(service: Obj, taken: dict[str, str], want: str) -> None:
    assert POOL.allocate(service, taken) == want


@pytest.mark.parametrize(
    ("service", "taken", "reason"),
    [
        (svc(), {"10.250.3.4": "ns/a", "10.250.3.5": "ns/b"}, "no available IPs in the service-lb pool 10.250.3.4/31"),
        (svc(loadBalancerIP="10.9.9.9"), {}, "requested IP 10.9.9.9 (spec.loadBalancerIP) is not in the service-lb pool"),
        (svc(loadBalancerIP="10.250.3.4"), {"10.250.3.4": "ns/a"}, "is already in use by service ns/a"),
    ],
    ids=["exhausted", "outside-the-pool", "held-by-another"],
)  # fmt: skip
def test_pool_allocate_refuses(service: Obj, taken: dict[str, str], reason: str) -> None:
    with pytest.raises(
        AllocationError, match=reason.replace(".", r"\.").replace("(", r"\(").replace(")", r"\)")
    ):
        POOL.allocate(service, taken)


def test_pool_taken_counts_other_load_balancers_only() -> None:
    services = [
        svc("a", ingress=["10.250.3.4"]),
        svc("self", ingress=["10.250.3.5"]),
        svc("c", type_="ClusterIP", ingress=["10.250.3.5"]),  # stale: not a load balancer
        svc("d", ingress=["192.0.2.1"]),  # outside the pool
    ]
    assert pool_taken(services, POOL, "ns/self") == {"10.250.3.4": "ns/a"}


class Harness:
    def __init__(self, pool: str = "") -> None:
        self.client = FakeClient(FakeClock())
        factory = InformerFactory(cast(Client, self.client))
        self.ctrl = ServiceLBController(
            cast(Client, self.client), factory, clock=self.client.clock, pool=pool
        )
        self.client.attach(factory, SERVICES, NODES, ENDPOINTSLICES)

    async def queued(self) -> list[str]:
        """The keys queued since the last call (the handlers' doing)."""
        keys = []
        while len(self.ctrl.queue):
            key = await self.ctrl.queue.get()
            self.ctrl.queue.done(key)
            keys.append(key)
        return sorted(keys)

    async def sync(self, name: str = "web") -> None:
        self.client.events.clear()
        await self.ctrl.sync(f"ns/{name}")

    def status(self, name: str = "web") -> Obj:
        return cast(Obj, self.client.objects[("services", "ns", name)]["status"]["loadBalancer"])

    def reasons(self) -> list[str]:
        return [r for r, _ in self.client.events]


async def test_node_addresses_become_the_ingress_and_go_with_the_type() -> None:
    h = Harness()
    h.client.seed(NODES, node("n1", ("InternalIP", "192.168.5.7")))
    h.client.seed(SERVICES, svc())
    await h.sync()
    assert h.status() == {"ingress": [{"ip": "192.168.5.7", "ipMode": "VIP"}]}
    assert h.reasons() == ["EnsuringLoadBalancer", "EnsuredLoadBalancer"]
    await h.sync()  # nothing changed: no write, no event
    assert h.reasons() == []
    changed = dict(h.client.objects[("services", "ns", "web")])
    changed["spec"] = {**changed["spec"], "type": "ClusterIP"}
    h.client.seed(SERVICES, changed)
    await h.sync()
    assert h.status() == {}
    assert h.reasons() == ["DeletingLoadBalancer", "DeletedLoadBalancer"]


async def test_no_ready_node_leaves_it_pending_with_a_warning() -> None:
    h = Harness()
    h.client.seed(NODES, node("n1", ("InternalIP", "192.168.5.7"), ready=False))
    h.client.seed(SERVICES, svc())
    await h.sync()
    assert h.status() == {}
    assert h.client.events == [
        (
            "SyncLoadBalancerFailed",
            "Error syncing load balancer: failed to ensure load balancer: "
            "There are no available nodes for LoadBalancer",
        )
    ]
    await h.queued()
    h.client.seed(NODES, node("n1", ("InternalIP", "192.168.5.7")))  # turns Ready
    assert await h.queued() == ["ns/web"]
    await h.sync()
    assert h.status() == {"ingress": [{"ip": "192.168.5.7", "ipMode": "VIP"}]}


async def test_pool_gives_one_address_each_and_frees_it_on_delete() -> None:
    h = Harness(pool="10.250.3.4/31")
    for name in ("a", "b", "c"):
        h.client.seed(SERVICES, svc(name))
    for name in ("a", "b", "c"):
        await h.sync(name)
    assert h.status("a")["ingress"][0]["ip"] == "10.250.3.4"
    assert h.status("b")["ingress"][0]["ip"] == "10.250.3.5"
    assert h.status("c") == {}
    assert h.reasons() == ["SyncLoadBalancerFailed"]
    assert "no available IPs" in h.client.events[0][1]
    await h.sync("c")  # the same reason again: no second warning
    assert h.reasons() == []
    await h.queued()
    await h.client.delete(SERVICES, "a", "ns")
    assert await h.queued() == ["ns/c"]  # the pending one is retried
    await h.sync("c")
    assert h.status("c")["ingress"][0]["ip"] == "10.250.3.4"


async def test_other_class_is_left_alone() -> None:
    h = Harness(pool="10.250.3.4/31")
    h.client.seed(SERVICES, svc(loadBalancerClass="example.com/other"))
    await h.sync()
    assert h.status() == {} and h.client.actions == []


def slice_(*endpoints: tuple[str, bool], service: str = "web", ns: str = "ns") -> Obj:
    return {
        "metadata": {
            "name": f"{service}-x",
            "namespace": ns,
            "labels": {"kubernetes.io/service-name": service},
        },
        "endpoints": [
            {
                "addresses": ["10.88.0.2"],
                "conditions": {"ready": ready},
                "nodeName": node_name,
                "targetRef": {"kind": "Pod", "name": "p"},
            }
            for node_name, ready in endpoints
        ],
    }


@pytest.mark.parametrize(
    ("slices", "want"),
    [
        ([slice_(("n1", True), ("n2", False))], {"n1"}),
        ([slice_(("n1", True), service="other")], set()),
        ([slice_(("n1", True), ns="elsewhere")], set()),
        ([slice_(("n1", True)), slice_(("n2", True))], {"n1", "n2"}),
    ],
    ids=["ready-only", "other-service", "other-namespace", "several-slices"],
)
def test_nodes_with_ready_endpoints(slices: list[Obj], want: set[str]) -> None:
    assert nodes_with_ready_endpoints(slices, "ns", "web") == want


async def test_local_policy_takes_the_nodes_with_endpoints() -> None:
    h = Harness()
    h.client.seed(NODES, node("n1", ("InternalIP", "192.168.5.7")))
    h.client.seed(NODES, node("n2", ("InternalIP", "192.168.5.8")))
    h.client.seed(SERVICES, svc(externalTrafficPolicy="Local"))
    await h.sync()
    assert h.status() == {} and h.reasons() == ["SyncLoadBalancerFailed"]
    await h.queued()
    h.client.seed(ENDPOINTSLICES, slice_(("n2", True)))
    assert await h.queued() == ["ns/web"]
    await h.sync()
    assert h.status() == {"ingress": [{"ip": "192.168.5.8", "ipMode": "VIP"}]}


# --- node mode: one holder per (address, port, protocol) ------------------------------------


@pytest.mark.parametrize(
    ("url", "port"),
    [("https://127.0.0.1:6443", 6443), ("https://[::1]:8443/", 8443), ("https://api.example", 443),
     ("http://localhost", 80), ("", 0)],
    ids=["ip", "ipv6", "https-default", "http-default", "none"],
)  # fmt: skip
def test_apiserver_port(url: str, port: int) -> None:
    assert apiserver_port(url) == port


@pytest.mark.parametrize(
    ("want", "held", "reason"),
    [
        ({("127.0.0.1", 80, "TCP")}, {}, None),
        ({("127.0.0.1", 6443, "TCP")}, {},
         "port 6443/TCP of 127.0.0.1 is the API server's (https://127.0.0.1:6443)"),
        ({("127.0.0.1", 6443, "UDP")}, {}, None),
        ({("127.0.0.1", 80, "TCP")}, {("127.0.0.1", 80, "TCP"): "ns/old"},
         "port 80/TCP of 127.0.0.1 is already in use by service ns/old"),
        ({("127.0.0.1", 80, "UDP")}, {("127.0.0.1", 80, "TCP"): "ns/old"}, None),
        ({("10.0.0.2", 80, "TCP")}, {("127.0.0.1", 80, "TCP"): "ns/old"}, None),
    ],
    ids=["free", "apiserver-port", "apiserver-port-udp", "held", "other-protocol", "other-address"],
)  # fmt: skip
def test_clash(
    want: set[tuple[str, int, str]], held: dict[tuple[str, int, str], str], reason: str | None
) -> None:
    assert clash(want, held, 6443, "https://127.0.0.1:6443") == reason


def aged(service: Obj, created: str) -> Obj:
    service["metadata"]["creationTimestamp"] = created
    return service


async def test_node_mode_port_has_one_holder_first_come() -> None:
    h = Harness()
    h.client.seed(NODES, node("n1", ("InternalIP", "127.0.0.1")))
    h.client.seed(SERVICES, aged(svc("young"), "2026-01-02T00:00:00Z"))
    await h.sync("young")  # alone: it gets the node's address
    assert h.status("young")["ingress"][0]["ip"] == "127.0.0.1"
    h.client.seed(SERVICES, aged(svc("old"), "2026-01-01T00:00:00Z"))
    h.client.seed(SERVICES, aged(svc("other", ports=[{"port": 81}]), "2026-01-03T00:00:00Z"))
    await h.sync("old")  # the older one holds 127.0.0.1:80/TCP
    assert h.status("old")["ingress"][0]["ip"] == "127.0.0.1"
    await h.sync("young")  # loses it: pending, with the holder named
    assert h.status("young") == {}
    assert h.client.events[-1] == (
        "SyncLoadBalancerFailed",
        "Error syncing load balancer: failed to ensure load balancer: "
        "port 80/TCP of 127.0.0.1 is already in use by service ns/old",
    )
    await h.sync("other")  # another port of the same address is free
    assert h.status("other")["ingress"][0]["ip"] == "127.0.0.1"
    await h.queued()
    await h.client.delete(SERVICES, "old", "ns")
    assert "ns/young" in await h.queued()
    await h.sync("young")
    assert h.status("young")["ingress"][0]["ip"] == "127.0.0.1"


async def test_node_mode_never_gives_the_apiserver_port() -> None:
    h = Harness()
    h.ctrl.api_url, h.ctrl.api_port = "https://127.0.0.1:6443", 6443
    h.client.seed(NODES, node("n1", ("InternalIP", "127.0.0.1")))
    h.client.seed(SERVICES, svc(ports=[{"port": 6443}]))
    await h.sync()
    assert h.status() == {}
    assert h.client.events == [
        (
            "SyncLoadBalancerFailed",
            "Error syncing load balancer: failed to ensure load balancer: "
            "port 6443/TCP of 127.0.0.1 is the API server's (https://127.0.0.1:6443)",
        )
    ]


async def test_type_change_cleared_by_the_apiserver_still_reports_deletion() -> None:
    h = Harness()
    h.client.seed(NODES, node("n1", ("InternalIP", "192.168.5.7")))
    h.client.seed(SERVICES, svc())
    await h.sync()
    h.client.actions.clear()
    changed = svc(type_="ClusterIP")  # the API server cleared status.loadBalancer itself
    h.client.seed(SERVICES, changed)
    await h.sync()
    assert h.reasons() == ["DeletingLoadBalancer", "DeletedLoadBalancer"]
    assert h.client.actions == []  # nothing left to write


async def test_node_mode_same_second_keeps_the_incumbent() -> None:
    """creationTimestamp has a resolution of one second: two Services created within it
    do not take the port from the one that got it first, whatever their names."""
    h = Harness()
    h.client.seed(NODES, node("n1", ("InternalIP", "127.0.0.1")))
    h.client.seed(SERVICES, aged(svc("zeta"), "2026-01-01T00:00:00Z"))
    await h.sync("zeta")
    h.client.seed(SERVICES, aged(svc("alpha"), "2026-01-01T00:00:00Z"))
    await h.sync("alpha")
    await h.sync("zeta")
    assert h.status("zeta")["ingress"][0]["ip"] == "127.0.0.1"
    assert h.status("alpha") == {}
