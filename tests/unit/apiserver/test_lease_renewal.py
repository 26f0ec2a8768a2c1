"""A node's Lease renewal (a merge patch of ``spec``, as ``agent/node.LeaseRenewer``
sends it) decodes the stored Lease once (``Registry.patch``'s ``copying`` for a
strategy with ``shallow_update_prepare`` and read-only admission) and skips the search
for nulls when the stored JSON has none: the stored bytes, resourceVersions,
managedFields, answers, errors and watch events must be those of the path without
either shortcut.

Each sequence runs on two real registries over SQLite with NodeRestriction registered,
as the server registers it: one as shipped, one forced to decode twice and to search
for nulls. Their uids are made equal so that their bytes compare.
"""

from __future__ import annotations

import types
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from corral.api.errors import StatusError
from corral.apiserver import store
from corral.apiserver.admission_chain import UPDATE, AdmissionRequest
from corral.apiserver.node_restriction import NodeRestriction
from corral.apiserver.registry.table import RESOURCES
from corral.apiserver.store import MERGE_PATCH, STRATEGIC_PATCH, Registry, WriteOptions
from corral.storage.cache import WatchCache, Watcher
from corral.storage.sqlite import SQLiteStorage
from corral.testing.clock import FakeClock

Obj = dict[str, Any]
NS = "kube-node-lease"
LEASES = ("coordination.k8s.io", "v1", "leases")


async def _registry(path: Path, shortcuts: bool) -> tuple[Registry, SQLiteStorage, FakeClock]:
    storage = SQLiteStorage(path)
    await storage.start()
    clock = FakeClock()
    reg = Registry(storage, WatchCache(), RESOURCES, clock)
    kvs, rev = await storage.list("/registry/")
    reg.cache.load(kvs, rev, [], rev)
    storage.listeners.append(reg.cache.apply)
    NodeRestriction.register(reg)
    if not shortcuts:
        shipped = Registry._guaranteed_update
        validate = Registry._validate_fields

        async def decode_twice(self: Registry, *args: Any, **kw: Any) -> Any:
            kw["copying"] = False
            return await shipped(self, *args, **kw)

        def search_nulls(self: Registry, *args: Any) -> list[str]:
            return validate(self, *args[:4])  # no ``stored_null_free``

        reg._guaranteed_update = types.MethodType(decode_twice, reg)  # type: ignore[method-assign]
        reg._validate_fields = types.MethodType(search_nulls, reg)  # type: ignore[method-assign]
    ns = reg.by_gvr[("", "v1", "namespaces")]
    await reg.create(ns, "", {"metadata": {"name": NS}}, WriteOptions())
    return reg, storage, clock


@pytest.fixture
async def registries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[tuple[Registry, FakeClock], tuple[Registry, FakeClock]]]:
    monkeypatch.setattr(store, "new_uid", lambda: "u-1")
    one, s1, c1 = await _registry(tmp_path / "one.db", True)
    try:
        two, s2, c2 = await _registry(tmp_path / "two.db", False)
        try:
            yield (one, c1), (two, c2)
        finally:
            await s2.close()
    finally:
        await s1.close()


def _lease(name: str, renew: str) -> Obj:
    """The Lease a node agent creates (``agent/node.lease_object``)."""
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": name,
            "namespace": NS,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": "n-1"}],
        },
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": renew},
    }


def _renewal(name: str, renew: str) -> Obj:
    return {"spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": renew}}


#: (content type, body, field manager, seconds the clock moves first)
Step = tuple[str, Any, str, float]

SEQUENCES: dict[str, list[Step]] = {
    "renewals": [
        (MERGE_PATCH, _renewal("n1", f"2024-01-01T00:00:0{i}.000001Z"), "agent", 1.0)
        for i in range(1, 5)
    ],
    "renewal-in-the-same-second": [
        (MERGE_PATCH, _renewal("n1", "2024-01-01T00:00:01.5Z"), "agent", 0.0),
        (MERGE_PATCH, _renewal("n1", "2024-01-01T00:00:01.6Z"), "agent", 0.2),
    ],
    "no-op": [(MERGE_PATCH, _renewal("n1", "2024-01-01T00:00:00.000001Z"), "agent", 1.0)],
    "other-manager-takes-renewTime": [
        (MERGE_PATCH, {"spec": {"renewTime": "2024-01-01T00:00:09Z"}}, "other", 1.0),
        (MERGE_PATCH, _renewal("n1", "2024-01-01T00:00:10Z"), "agent", 1.0),
    ],
    "new-field-and-label": [
        (MERGE_PATCH, {"metadata": {"labels": {"a": "b"}}, "spec": {"leaseTransitions": 1}},
         "agent", 1.0),
        (MERGE_PATCH, {"spec": {"acquireTime": "2024-01-01T00:00:02.000000Z"}}, "agent", 1.0),
    ],
    "drop-a-field": [(MERGE_PATCH, {"spec": {"holderIdentity": None}}, "agent", 1.0)],
    "drop-the-owner": [(MERGE_PATCH, {"metadata": {"ownerReferences": None}}, "agent", 1.0)],
    "stale-resource-version": [
        (MERGE_PATCH, {"metadata": {"resourceVersion": "1"}, **_renewal("n1", "x")}, "agent", 1.0)
    ],
    "invalid-duration": [(MERGE_PATCH, {"spec": {"leaseDurationSeconds": -1}}, "agent", 1.0)],
    "wrong-type": [(MERGE_PATCH, {"spec": {"leaseDurationSeconds": "40"}}, "agent", 1.0)],
    "bad-time": [(MERGE_PATCH, {"spec": {"renewTime": "yesterday"}}, "agent", 1.0)],
    "unknown-field": [(MERGE_PATCH, {"spec": {"bogus": 1, "leaseTransitions": 2}}, "agent", 1.0)],
    "rename": [(MERGE_PATCH, {"metadata": {"name": "n2"}}, "agent", 1.0)],
    "other-uid": [(MERGE_PATCH, {"metadata": {"uid": "u-2"}}, "agent", 1.0)],
    "immutable-metadata": [
        (MERGE_PATCH, {"metadata": {"creationTimestamp": "2020-01-01T00:00:00Z",
                                    "generation": 7}}, "agent", 1.0)
    ],
    "managed-fields-sent": [
        (MERGE_PATCH, {"metadata": {"managedFields": [{}]}, "spec": {"leaseTransitions": 3}},
         "agent", 1.0),
    ],
    "strategic": [
        (STRATEGIC_PATCH, _renewal("n1", "2024-01-01T00:00:05Z"), "agent", 1.0),
        (STRATEGIC_PATCH, {"metadata": {"ownerReferences": [
            {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "n-2"}]}}, "agent", 1.0),
    ],
}  # fmt: skip


async def _run(reg: Registry, clock: FakeClock, steps: list[Step], seed: Obj | None) -> Any:
    info = reg.by_gvr[LEASES]
    rc = reg.rcache(info)
    key = reg.key(info, NS, "n1")
    if seed is None:
        await reg.create(
            info,
            NS,
            _lease("n1", "2024-01-01T00:00:00.000001Z"),
            WriteOptions(field_manager="agent"),
        )
    else:  # as stored, without the registry's decoding (a null it would drop)
        await reg.storage.create(key, orjson.loads(orjson.dumps(seed)))
    watcher = Watcher(None, None, None)
    rc.add_watcher(watcher, reg.cache.revision, reg.cache.revision)
    out: list[Any] = []
    for ct, body, manager, advance in steps:
        clock.advance(advance)
        try:
            res = await reg.patch(
                info,
                NS,
                "n1",
                ct,
                orjson.loads(orjson.dumps(body)),
                WriteOptions(field_manager=manager),
            )
            answer: Any = (res.raw, res.warnings)
        except StatusError as e:
            answer = ("error", e.code, str(e))
        entry = reg.get(info, NS, "n1")
        out.append((answer, entry.raw, entry.revision))
    events = []
    while not watcher.queue.empty():
        ev = watcher.queue.get_nowait()
        assert ev is not None
        events.append(ev.line())
    out.append(events)
    return out


@pytest.mark.parametrize("steps", list(SEQUENCES.values()), ids=list(SEQUENCES))
async def test_a_renewal_stores_what_the_long_way_stores(
    registries: tuple[tuple[Registry, FakeClock], tuple[Registry, FakeClock]],
    steps: list[Step],
) -> None:
    (one, c1), (two, c2) = registries
    got = await _run(one, c1, steps, None)
    want = await _run(two, c2, steps, None)
    assert got == want


async def test_a_stored_null_is_still_dropped(
    registries: tuple[tuple[Registry, FakeClock], tuple[Registry, FakeClock]],
) -> None:
    """A Lease stored with a null (written past the typed decoding): the renewal's
    decoding must drop it, so the null search is not skipped."""
    seed = _lease("n1", "2024-01-01T00:00:00Z")
    seed["metadata"].update(uid="u-1", annotations={"a": None}, labels=None)
    seed["spec"]["acquireTime"] = None
    steps: list[Step] = [(MERGE_PATCH, _renewal("n1", "2024-01-01T00:00:01Z"), "agent", 1.0)]
    (one, c1), (two, c2) = registries
    got = await _run(one, c1, steps, seed)
    assert got == await _run(two, c2, steps, seed)
    stored = orjson.loads(got[0][1])
    assert "acquireTime" not in stored["spec"]
    assert "labels" not in stored["metadata"]
    assert stored["metadata"]["annotations"] == {"a": ""}


async def _decodes_per_renewal(reg: Registry, monkeypatch: pytest.MonkeyPatch) -> int:
    info = reg.by_gvr[LEASES]
    await reg.create(
        info, NS, _lease("n1", "2024-01-01T00:00:00Z"), WriteOptions(field_manager="agent")
    )
    calls: list[int] = []
    decode = Registry.decode

    def counting(info: Any, entry: Any) -> Any:
        calls.append(1)
        return decode(info, entry)

    monkeypatch.setattr(Registry, "decode", staticmethod(counting))
    body = _renewal("n1", "2024-01-01T00:00:01Z")
    await reg.patch(info, NS, "n1", MERGE_PATCH, body, WriteOptions(field_manager="agent"))
    monkeypatch.setattr(Registry, "decode", staticmethod(decode))
    return len(calls)


async def test_a_renewal_decodes_once(
    registries: tuple[tuple[Registry, FakeClock], tuple[Registry, FakeClock]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (one, _), _ = registries
    assert await _decodes_per_renewal(one, monkeypatch) == 1


async def test_a_mutating_admission_plugin_makes_it_decode_twice(
    registries: tuple[tuple[Registry, FakeClock], tuple[Registry, FakeClock]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A plugin that may change the object (a plain callable) could write into what the
    patched Lease shares with the stored one: the one-decode path is not taken, and what
    the plugin writes is stored and compared as on the long way."""

    def stamp_owner(req: AdmissionRequest) -> None:
        if req.operation != UPDATE:
            return
        assert req.obj is not None
        for ref in req.obj["metadata"].get("ownerReferences") or ():
            ref["blockOwnerDeletion"] = True

    (one, c1), (two, c2) = registries
    for reg in (one, two):
        reg.admission[("coordination.k8s.io", "leases")].append(stamp_owner)
    assert not one._admission_reads_only(one.by_gvr[LEASES])
    # another manager renews: the owner reference the plugin changed is now its
    steps: list[Step] = [(MERGE_PATCH, _renewal("n1", "2024-01-01T00:00:01Z"), "other", 1.0)]
    got = await _run(one, c1, steps, None)
    assert got == await _run(two, c2, steps, None)
    stored = orjson.loads(got[0][1])
    assert stored["metadata"]["ownerReferences"][0]["blockOwnerDeletion"] is True
    owners = {
        m["manager"]: m["fieldsV1"].get("f:metadata", {}).get("f:ownerReferences")
        for m in stored["metadata"]["managedFields"]
    }
    assert owners == {"agent": None, "other": {'k:{"uid":"n-1"}': {}}}


async def test_a_mutating_plugin_keeps_the_stored_lease_whole(
    registries: tuple[tuple[Registry, FakeClock], tuple[Registry, FakeClock]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (one, _), _ = registries
    one.admission[("coordination.k8s.io", "leases")].append(lambda req: None)
    assert await _decodes_per_renewal(one, monkeypatch) == 2
