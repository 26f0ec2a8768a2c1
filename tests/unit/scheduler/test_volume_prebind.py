"""VolumeBinding's PreBind (scheduler/volumes.py): the writes it makes and how it waits,
with the informers fed by hand and a client that records the patches. Nothing sleeps:
the "binder" below waits for PreBind's patch, and timeouts are 0."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from corral.api.volumes import BIND_COMPLETED, BOUND_BY_CONTROLLER, SELECTED_NODE
from corral.client.rest import Client, Resource
from corral.scheduler.plugins.volumebinding import PodVolumes, Unbound
from corral.scheduler.snapshot import pod_info
from corral.scheduler.volumes import VolumeCache

Obj = dict[str, Any]

PREFIX = 'running PreBind plugin "VolumeBinding": binding volumes: '


class RecordingClient:
    """Records patches; answers each with resourceVersion "8" and signals ``patched``."""

    def __init__(self) -> None:
        self.patches: list[tuple[str, str, Obj]] = []
        self.patched = asyncio.Event()

    async def patch(
        self, res: Resource, name: str, patch: Obj, namespace: str | None = None
    ) -> Obj:
        self.patches.append((res.plural, name, patch))
        self.patched.set()
        return {"metadata": {"name": name, "resourceVersion": "8"}}


def _claim(bound: bool = False, selected: str = "", rv: str = "7") -> Obj:
    meta: Obj = {"name": "d", "namespace": "ns", "uid": "c1", "resourceVersion": rv}
    annotations = {SELECTED_NODE: selected} if selected else {}
    if bound:
        annotations[BIND_COMPLETED] = "yes"
    meta["annotations"] = annotations
    return {
        "metadata": meta,
        "spec": {"volumeName": "pv1" if bound else ""},
        "status": {"phase": "Bound" if bound else "Pending"},
    }


def _static(name: str, host: str) -> Obj:
    term = {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In",
                                  "values": [host]}]}  # fmt: skip
    return {
        "metadata": {"name": name, "resourceVersion": "3"},
        "spec": {
            "nodeAffinity": {"required": {"nodeSelectorTerms": [term]}},
            "capacity": {"storage": "1Gi"},
        },
        "status": {"phase": "Available"},
    }


def _setup(candidates: tuple[Obj, ...] = ()) -> tuple[VolumeCache, RecordingClient, Any]:
    client = RecordingClient()
    cache = VolumeCache(cast(Client, client), lambda: None)
    cache.bind_timeout = 5.0  # never reached: every case ends on an informer event
    cache.claims.apply("ADDED", _claim())
    info = pod_info({"metadata": {"name": "p", "namespace": "ns"}, "spec": {}})
    cls = {
        "metadata": {"name": "c"},
        "provisioner": "x",
        "volumeBindingMode": "WaitForFirstConsumer",
    }
    info.volumes = PodVolumes(unbound=(Unbound("ns/d", _claim(), cls, candidates),))
    return cache, client, info


LABELS = {"kubernetes.io/hostname": "n1"}


async def _prebind_while(cache: VolumeCache, info: Any, *updates: tuple[str, Obj]) -> str:
    """PreBind on n1 while, once it patched, the informers get ``updates`` in order
    (("claim"|"volume", object)), each after PreBind had a chance to look."""
    client = cast(RecordingClient, cache.client)

    async def binder() -> None:
        await client.patched.wait()
        for kind, obj in updates:
            await asyncio.sleep(0)  # let PreBind look at the caches first
            inf = cache.claims if kind == "claim" else cache.volumes
            inf.apply("MODIFIED" if inf.get(obj["metadata"]["name"]) else "ADDED", obj)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(binder())
        done = tg.create_task(cache.prebind(info, "n1", LABELS))
    assert not cache._waiters  # nothing left behind
    return done.result()


def test_provisioned_claim_is_marked_then_awaited() -> None:
    async def run() -> tuple[str, RecordingClient]:
        cache, client, info = _setup()
        msg = await _prebind_while(
            cache,
            info,
            ("claim", _claim(selected="n1", rv="8")),
            ("volume", _static("pv1", "n1")),
            ("claim", _claim(True, "n1", rv="9")),
        )
        return msg, client

    msg, client = asyncio.run(run())
    assert msg == ""
    assert client.patches == [
        ("persistentvolumeclaims", "d", {"metadata": {"annotations": {SELECTED_NODE: "n1"}}})
    ]


def test_static_volume_gets_the_claim_ref() -> None:
    async def run() -> tuple[str, RecordingClient]:
        cache, client, info = _setup((_static("on-n2", "n2"), _static("on-n1", "n1")))
        cache.bind_timeout = 0
        return await cache.prebind(info, "n1", LABELS), client

    msg, client = asyncio.run(run())
    assert msg == PREFIX + "context deadline exceeded"  # nobody completed the binding here
    [(plural, name, patch)] = client.patches
    assert (plural, name) == ("persistentvolumes", "on-n1")
    assert patch["metadata"] == {
        "resourceVersion": "3",
        "annotations": {BOUND_BY_CONTROLLER: "yes"},
    }
    assert patch["spec"]["claimRef"]["uid"] == "c1"


WRONG_NODE = _static("pv1", "n2")

FAILURES = [
    ("timeout", (), PREFIX + "context deadline exceeded"),
    ("claim-deleted", (("deleted", _claim(rv="9")),), PREFIX + 'persistentvolumeclaim "d" not found'),
    # the provisioner gave the claim back (external-provisioner's rescheduleProvisioning)
    ("selected-node-removed", (("claim", _claim(rv="9")),), PREFIX + 'provisioning failed for PVC "d"'),
    ("selected-elsewhere", (("claim", _claim(selected="n2", rv="9")),),
     PREFIX + 'provisioning failed for PVC "d"'),
    # bound, but to a volume the chosen node cannot reach (upstream's checkBindings)
    ("bound-to-another-node", (("volume", WRONG_NODE), ("claim", _claim(True, "n1", rv="9"))),
     PREFIX + "pv \"pv1\" node affinity doesn't match node \"n1\": no matching NodeSelectorTerms"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("updates", "want"), [c[1:] for c in FAILURES], ids=[c[0] for c in FAILURES]
)
def test_prebind_failures(updates: tuple[tuple[str, Obj], ...], want: str) -> None:
    async def run() -> str:
        cache, _client, info = _setup()
        if not updates:
            cache.bind_timeout = 0
            return await cache.prebind(info, "n1", LABELS)
        if updates[0][0] == "deleted":
            client = cast(RecordingClient, cache.client)
            task = asyncio.create_task(cache.prebind(info, "n1", LABELS))
            await client.patched.wait()
            await asyncio.sleep(0)
            cache.claims.apply("DELETED", updates[0][1])
            return await task
        return await _prebind_while(cache, info, *updates)

    assert asyncio.run(run()) == want
