"""Service IP / NodePort claims in the store (``apiserver/allocation.py``) over a real
registry and SQLite store, with a fake clock: one claim per value, released with the
Service, dropped when the write fails or is a dry run, respected while another
request may still be writing, taken over once it is a leak, remade by the repair."""

from __future__ import annotations

from typing import Any

import pytest

from corral.api.errors import StatusError
from corral.apiserver.allocation import GRACE, IP_PREFIX, PORT_PREFIX, ServiceAllocator
from corral.apiserver.store import DeleteOptions, Registry, WriteOptions
from corral.storage.base import Event, StorageUnavailable
from corral.testing.clock import FakeClock

Obj = dict[str, Any]


@pytest.fixture
def registry_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def allocator(registry: Registry) -> ServiceAllocator:
    info = registry.by_gvr[("", "v1", "services")]
    alloc = ServiceAllocator(registry.rcache(info), registry.storage, clock=registry.clock)
    registry.async_write_hooks[("", "services")] = [alloc.allocate]
    registry.cache.listeners.append(alloc.on_change)
    return alloc


def _svc(name: str, **spec: Any) -> Obj:
    return {
        "metadata": {"name": name},
        "spec": {"type": "NodePort", "ports": [{"port": 80}], **spec},
    }


async def _create(registry: Registry, body: Obj, dry_run: bool = False) -> Obj:
    info = registry.by_gvr[("", "v1", "services")]
    return (await registry.create(info, "default", body, WriteOptions(dry_run=dry_run))).obj


async def _claims(registry: Registry) -> dict[str, Obj]:
    out = {}
    for prefix in (IP_PREFIX, PORT_PREFIX):
        kvs, _ = await registry.storage.list(prefix)
        out.update({kv.key.rsplit("/", 1)[-1]: kv.obj for kv in kvs})
    return out


async def test_each_value_is_a_claim_freed_with_its_service(
    registry: Registry, allocator: ServiceAllocator
) -> None:
    made = await _create(registry, _svc("a"))
    ip, port = made["spec"]["clusterIP"], made["spec"]["ports"][0]["nodePort"]
    claims = await _claims(registry)
    assert set(claims) == {ip, str(port)}
    assert {c["service"] for c in claims.values()} == {"default/a"}
    assert {c["uid"] for c in claims.values()} == {made["metadata"]["uid"]}
    info = registry.by_gvr[("", "v1", "services")]
    await registry.delete(info, "default", "a", DeleteOptions())
    # asked for again at once: the release the cache saw frees it before ``run`` does
    again = await _create(registry, _svc("b", clusterIP=ip))
    assert again["spec"]["clusterIP"] == ip
    await allocator.drain()
    assert set(await _claims(registry)) == {ip, str(again["spec"]["ports"][0]["nodePort"])}


async def test_failed_and_dry_run_writes_leave_no_claim(
    registry: Registry, allocator: ServiceAllocator
) -> None:
    await _create(registry, _svc("a"))
    before = await _claims(registry)
    with pytest.raises(StatusError) as e:
        await _create(registry, _svc("a"))  # AlreadyExists after the values were claimed
    assert e.value.code == 409
    await _create(registry, _svc("dry"), dry_run=True)
    assert await _claims(registry) == before


async def test_a_claim_in_flight_elsewhere_is_respected_and_a_leak_taken_over(
    registry: Registry, allocator: ServiceAllocator, registry_clock: FakeClock
) -> None:
    record = {"service": "default/ghost", "uid": "u-ghost", "time": registry_clock.now()}
    await registry.storage.create(IP_PREFIX + "10.96.0.50", dict(record))
    with pytest.raises(StatusError) as e:
        await _create(registry, _svc("x", clusterIP="10.96.0.50"))
    assert e.value.code == 422 and "provided IP is already allocated" in e.value.message
    registry_clock.advance(GRACE + 1)  # the other server never wrote its Service
    made = await _create(registry, _svc("x", clusterIP="10.96.0.50"))
    assert (await _claims(registry))["10.96.0.50"]["uid"] == made["metadata"]["uid"]


async def test_repair_remakes_missing_claims(
    registry: Registry, allocator: ServiceAllocator
) -> None:
    made = await _create(registry, _svc("a"))
    for prefix in (IP_PREFIX, PORT_PREFIX):
        kvs, _ = await registry.storage.list(prefix)
        for kv in kvs:
            await registry.storage.delete(kv.key, kv.mod_revision)
    assert await allocator.repair() == 2
    claims = await _claims(registry)
    assert claims[made["spec"]["clusterIP"]]["service"] == "default/a"
    assert await allocator.repair() == 0


async def test_a_failed_write_that_was_applied_keeps_its_claims(
    registry: Registry, allocator: ServiceAllocator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """etcd: the Service's create applied but its answer (or this server's watch) came
    too late, so the request failed; the release must not free what it now holds."""
    storage, apply = registry.storage, registry.cache.apply
    real_create, real_sync = storage.create, storage.sync
    late: list[Event] = []

    async def create(key: str, obj: Obj) -> Any:
        if not key.startswith(allocator.services.prefix):
            return await real_create(key, obj)
        storage.listeners[storage.listeners.index(apply)] = late.append  # the watch lags
        try:
            await real_create(key, obj)
        finally:
            storage.listeners[storage.listeners.index(late.append)] = apply
        raise StorageUnavailable(key, "not seen by this server's watch")

    async def sync() -> int:
        for ev in late:  # the watch catches up
            apply(ev)
        late.clear()
        return await real_sync()

    monkeypatch.setattr(storage, "create", create)
    monkeypatch.setattr(storage, "sync", sync)
    with pytest.raises(StorageUnavailable):
        await _create(registry, _svc("a"))
    svc = allocator.services.entries[allocator.services.prefix + "default/a"].obj()
    held = {svc["spec"]["clusterIP"], str(svc["spec"]["ports"][0]["nodePort"])}
    assert set(await _claims(registry)) == held


async def test_a_value_released_then_asked_for_again_keeps_a_claim(
    registry: Registry, allocator: ServiceAllocator
) -> None:
    """The Service drops its nodePort and takes it back before ``run`` deleted the old
    claim: the old claim goes, a new one holds the value."""
    info = registry.by_gvr[("", "v1", "services")]
    made = await _create(registry, _svc("a", ports=[{"port": 80, "nodePort": 30100}]))
    made["spec"] = {"type": "ClusterIP", "clusterIP": made["spec"]["clusterIP"],
                    "ports": [{"port": 80}]}  # fmt: skip
    made = (await registry.update(info, "default", "a", made, WriteOptions())).obj
    assert "30100" in await _claims(registry)  # released: ``run`` has not caught up yet
    made["spec"]["type"] = "NodePort"
    made["spec"]["ports"] = [{"port": 80, "nodePort": 30100}]
    await registry.update(info, "default", "a", made, WriteOptions())
    await allocator.drain()
    assert (await _claims(registry))["30100"]["uid"] == made["metadata"]["uid"]


async def test_repair_drops_the_claim_of_a_service_deleted_meanwhile(
    registry: Registry, allocator: ServiceAllocator, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = registry.by_gvr[("", "v1", "services")]
    made = await _create(registry, _svc("a", type="ClusterIP"))
    kv = await registry.storage.get(IP_PREFIX + made["spec"]["clusterIP"])
    assert kv is not None
    await registry.storage.delete(kv.key, kv.mod_revision)
    real_create = registry.storage.create

    async def create(key: str, obj: Obj) -> Any:
        if key.startswith(IP_PREFIX):  # deleted after repair's look at the cache
            await registry.delete(info, "default", "a", DeleteOptions())
        return await real_create(key, obj)

    monkeypatch.setattr(registry.storage, "create", create)
    assert await allocator.repair() == 0
    await allocator.drain()
    assert await _claims(registry) == {}
