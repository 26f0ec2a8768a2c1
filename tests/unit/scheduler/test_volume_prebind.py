"""VolumeBinding's PreBind (scheduler/volumes.py): the writes it makes and how it waits,
with the claim informer fed by hand and a client that records the patches."""

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


class RecordingClient:
    def __init__(self) -> None:
        self.patches: list[tuple[str, str, Obj]] = []

    async def patch(
        self, res: Resource, name: str, patch: Obj, namespace: str | None = None
    ) -> Obj:
        self.patches.append((res.plural, name, patch))
        return {}


def _claim(bound: bool = False, selected: str = "") -> Obj:
    meta: Obj = {"name": "d", "namespace": "ns", "uid": "c1", "resourceVersion": "7"}
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
        "spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [term]}}},
    }


def _setup(candidates: tuple[Obj, ...] = ()) -> tuple[VolumeCache, RecordingClient, Any]:
    client = RecordingClient()
    cache = VolumeCache(cast(Client, client), lambda: None)
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


def test_provisioned_claim_is_marked_then_awaited() -> None:
    async def run() -> str:
        cache, client, info = _setup()

        async def binder() -> None:
            await asyncio.sleep(0.05)
            assert client.patches == [
                (
                    "persistentvolumeclaims",
                    "d",
                    {"metadata": {"annotations": {SELECTED_NODE: "n1"}}},
                )
            ]
            cache.claims.apply("MODIFIED", _claim(selected="n1"))
            await asyncio.sleep(0.05)
            cache.claims.apply("MODIFIED", _claim(True, "n1"))

        async with asyncio.TaskGroup() as tg:
            tg.create_task(binder())
            done = tg.create_task(cache.prebind(info, "n1", LABELS))
        assert not cache._waiters  # nothing left behind
        return done.result()

    assert asyncio.run(run()) == ""


def test_static_volume_gets_the_claim_ref() -> None:
    async def run() -> tuple[str, RecordingClient]:
        cache, client, info = _setup((_static("on-n2", "n2"), _static("on-n1", "n1")))
        cache.bind_timeout = 0.05
        return await cache.prebind(info, "n1", LABELS), client

    msg, client = asyncio.run(run())
    assert msg.endswith("context deadline exceeded")  # nobody completed the binding here
    [(plural, name, patch)] = client.patches
    assert (plural, name) == ("persistentvolumes", "on-n1")
    assert patch["metadata"] == {
        "resourceVersion": "3",
        "annotations": {BOUND_BY_CONTROLLER: "yes"},
    }
    assert patch["spec"]["claimRef"]["uid"] == "c1"


@pytest.mark.parametrize(
    ("update", "want"),
    [
        (None, 'running PreBind plugin "VolumeBinding": binding volumes: context deadline exceeded'),
        ("deleted", 'running PreBind plugin "VolumeBinding": binding volumes: '
                    'persistentvolumeclaim "d" not found'),
        ("elsewhere", "running PreBind plugin \"VolumeBinding\": binding volumes: claim ns/d "
                      "was selected for node 'n2', not 'n1'"),
    ],
    ids=["timeout", "claim-deleted", "selected-elsewhere"],
)  # fmt: skip
def test_prebind_failures(update: str | None, want: str) -> None:
    async def run() -> str:
        cache, _client, info = _setup()
        cache.bind_timeout = 0.2
        if update == "deleted":
            cache.claims.apply("DELETED", _claim())
        elif update == "elsewhere":
            cache.claims.apply("MODIFIED", _claim(selected="n2"))
        return await cache.prebind(info, "n1", LABELS)

    assert asyncio.run(run()) == want
