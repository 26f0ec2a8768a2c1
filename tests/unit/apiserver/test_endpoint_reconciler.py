"""The ``kubernetes`` Service's endpoint reconciler over a real registry and SQLite store:
one lease per server, stale leases expire, a stopping server removes only itself, the
objects are upstream's shape and are not rewritten when right."""

from __future__ import annotations

from typing import Any

import pytest

from corral.apiserver.endpoint_reconciler import (
    PREFIX,
    EndpointReconciler,
    advertise_address_for,
    default_advertise_address,
    is_loopback,
)
from corral.apiserver.store import Registry, WriteOptions
from corral.testing.clock import FakeClock

Obj = dict[str, Any]


@pytest.fixture
def registry_clock() -> FakeClock:
    return FakeClock()


def _server(reg: Registry, ip: str, port: int = 6443) -> EndpointReconciler:
    return EndpointReconciler(reg, reg.storage, reg.clock, ip, port)


def _get(reg: Registry, gvr: tuple[str, str, str]) -> Obj | None:
    entry = reg.entry(reg.by_gvr[gvr], "default", "kubernetes")
    return entry.obj() if entry is not None else None


def endpoints(reg: Registry) -> Obj | None:
    return _get(reg, ("", "v1", "endpoints"))


def endpoint_slice(reg: Registry) -> Obj | None:
    return _get(reg, ("discovery.k8s.io", "v1", "endpointslices"))


def ips(reg: Registry) -> tuple[list[str], list[str]]:
    ep, sl = endpoints(reg), endpoint_slice(reg)
    assert ep is not None and sl is not None
    from_ep = [a["ip"] for s in ep["subsets"] for a in s["addresses"]]
    from_slice = [a for e in sl["endpoints"] for a in e["addresses"]]
    return from_ep, from_slice


def clock(reg: Registry) -> FakeClock:
    assert isinstance(reg.clock, FakeClock)
    return reg.clock


async def test_one_server_writes_upstreams_objects(registry: Registry) -> None:
    await _server(registry, "192.0.2.10", 6443).reconcile()
    ep, sl = endpoints(registry), endpoint_slice(registry)
    assert ep is not None and sl is not None
    assert ep["metadata"]["labels"] == {"endpointslice.kubernetes.io/skip-mirror": "true"}
    assert ep["subsets"] == [
        {
            "addresses": [{"ip": "192.0.2.10"}],
            "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}],
        }
    ]
    assert sl["metadata"]["labels"] == {"kubernetes.io/service-name": "kubernetes"}
    assert sl["addressType"] == "IPv4"
    assert [e["addresses"] for e in sl["endpoints"]] == [["192.0.2.10"]]
    assert all(e["conditions"]["ready"] for e in sl["endpoints"])
    assert sl["ports"] == [{"name": "https", "port": 6443, "protocol": "TCP"}]


async def test_an_unchanged_round_writes_nothing(registry: Registry) -> None:
    server = _server(registry, "192.0.2.10")
    await server.reconcile()
    before = (endpoints(registry), endpoint_slice(registry))
    await server.reconcile()
    assert (endpoints(registry), endpoint_slice(registry)) == before


async def test_two_servers_listed_sorted_and_a_stopping_one_removes_itself(
    registry: Registry,
) -> None:
    a, b = _server(registry, "192.0.2.20"), _server(registry, "192.0.2.3")
    await a.reconcile()
    await b.reconcile()
    assert ips(registry) == (["192.0.2.3", "192.0.2.20"], ["192.0.2.3", "192.0.2.20"])
    await b.stop()
    assert ips(registry) == (["192.0.2.20"], ["192.0.2.20"])
    await b.reconcile()  # a stopped reconciler does nothing any more
    assert ips(registry) == (["192.0.2.20"], ["192.0.2.20"])


async def test_a_stale_lease_expires(registry: Registry) -> None:
    a, b = _server(registry, "192.0.2.1"), _server(registry, "192.0.2.2")
    await a.reconcile()
    await b.reconcile()
    clock(registry).advance(11)
    await a.reconcile()  # b renewed 11 s ago: still there (ttl 15 s)
    assert ips(registry)[0] == ["192.0.2.1", "192.0.2.2"]
    clock(registry).advance(10)
    await a.reconcile()  # b is dead: its lease is gone from the store too
    assert ips(registry) == (["192.0.2.1"], ["192.0.2.1"])
    kvs, _ = await registry.storage.list(PREFIX)
    assert [kv.key for kv in kvs] == [PREFIX + "192.0.2.1"]


async def test_the_last_server_leaves_its_address(registry: Registry) -> None:
    a = _server(registry, "192.0.2.1")
    await a.reconcile()
    await a.stop()  # upstream refuses to erase every endpoint
    assert ips(registry) == (["192.0.2.1"], ["192.0.2.1"])


async def test_a_wrong_object_is_put_right(registry: Registry) -> None:
    server = _server(registry, "192.0.2.1", 7443)
    await server.reconcile()
    info = registry.by_gvr[("", "v1", "endpoints")]
    ep = endpoints(registry)
    assert ep is not None
    ep["subsets"] = [{"addresses": [{"ip": "10.9.9.9"}], "ports": [{"port": 1}]}]
    await registry.update(info, "default", "kubernetes", ep, WriteOptions())
    await server.reconcile()
    ep = endpoints(registry)
    assert ep is not None
    assert ep["subsets"][0]["addresses"] == [{"ip": "192.0.2.1"}]
    assert ep["subsets"][0]["ports"] == [{"name": "https", "port": 7443, "protocol": "TCP"}]


@pytest.mark.parametrize(
    ("bind", "own"),
    [("192.0.2.7", True), ("127.0.0.1", False), ("0.0.0.0", False), ("localhost", False)],
    ids=["specific", "loopback", "wildcard", "name"],
)
def test_advertise_address_default(bind: str, own: bool) -> None:
    got = advertise_address_for(bind)
    assert got == (bind if own else default_advertise_address())


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("192.0.2.1") and not is_loopback("0.0.0.0")


async def test_a_lease_deleted_under_a_renewal_is_recreated(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server stalled past its ttl has its lease deleted by another one between its
    read and its update: the renewal creates it again instead of failing (which
    killed ``run``'s loop for good)."""
    a = _server(registry, "192.0.2.1")
    await a.reconcile()
    storage = registry.storage
    real_get = storage.get

    async def get_then_lose(key: str) -> Any:
        kv = await real_get(key)
        if kv is not None:  # the other server's list_leases deletes it now
            await storage.delete(kv.key, kv.mod_revision)
        return kv

    monkeypatch.setattr(storage, "get", get_then_lose)
    await a.reconcile()
    monkeypatch.undo()
    kvs, _ = await storage.list(PREFIX)
    assert [kv.key for kv in kvs] == [PREFIX + "192.0.2.1"]
    assert ips(registry) == (["192.0.2.1"], ["192.0.2.1"])
