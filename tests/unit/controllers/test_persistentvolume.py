"""The PV binder: its matching as tables, and its syncs against the fake API (with the
local-path provisioner beside it), including a lagging cache and conflicting writes."""

from __future__ import annotations

import copy
from typing import Any, cast

import pytest
from test_job import FakeClient, FakeClock

from corral.api.errors import StatusError
from corral.api.volume_matching import find_best_match, is_bound_to, mismatch
from corral.api.volumes import LOCAL_PATH_ROOT, SELECTED_NODE
from corral.client.rest import (
    NODES,
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    PODS,
    STORAGE_CLASSES,
    Client,
    Resource,
)
from corral.controllers.base import InformerFactory
from corral.controllers.localpath import LocalPathProvisioner
from corral.controllers.persistentvolume import PersistentVolumeBinderController

Obj = dict[str, Any]


def pv(
    name: str,
    size: str = "1Gi",
    modes: tuple[str, ...] = ("ReadWriteOnce",),
    cls: str = "",
    phase: str = "Available",
    labels: dict[str, str] | None = None,
    claim_ref: Obj | None = None,
    mode: str = "Filesystem",
) -> Obj:
    spec: Obj = {
        "capacity": {"storage": size},
        "accessModes": list(modes),
        "storageClassName": cls,
        "volumeMode": mode,
    }
    if claim_ref is not None:
        spec["claimRef"] = claim_ref
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": spec,
        "status": {"phase": phase},
    }


def pvc(
    size: str = "1Gi",
    modes: tuple[str, ...] = ("ReadWriteOnce",),
    cls: str = "",
    selector: Obj | None = None,
) -> Obj:
    spec: Obj = {
        "accessModes": list(modes),
        "resources": {"requests": {"storage": size}},
        "storageClassName": cls,
    }
    if selector is not None:
        spec["selector"] = selector
    return {"metadata": {"name": "c", "namespace": "ns", "uid": "u1"}, "spec": spec}


REF = {"namespace": "ns", "name": "c", "uid": "u1"}


def _beta(obj: Obj, cls: str) -> Obj:
    """``obj`` with the beta class annotation, which wins over storageClassName."""
    obj["metadata"]["annotations"] = {"volume.beta.kubernetes.io/storage-class": cls}
    return obj


@pytest.mark.parametrize(
    ("claim", "volumes", "delay", "want"),
    [
        (pvc(), [], False, None),
        (pvc("500Mi"), [pv("a", "100Mi"), pv("b", "5Gi"), pv("c", "1Gi")], False, "c"),
        (pvc("2Gi"), [pv("a", "1Gi")], False, None),
        (pvc(cls="fast"), [pv("a"), pv("b", cls="fast")], False, "b"),
        (pvc(), [pv("a", phase="Released"), pv("b", phase="Pending")], False, None),
        (pvc(), [pv("a", claim_ref={"namespace": "ns", "name": "other"})], False, None),
        (pvc(), [pv("a", "5Gi", claim_ref={"namespace": "ns", "name": "c"}), pv("b")], False, "a"),
        (pvc(), [pv("a", claim_ref={**REF, "uid": "u2"})], False, None),
        (
            pvc(modes=("ReadWriteOnce",)),
            [pv("small-rwx", "1Gi", ("ReadWriteOnce", "ReadWriteMany")), pv("big-rwo", "9Gi")],
            False,
            "big-rwo",
        ),
        (pvc(modes=("ReadWriteMany",)), [pv("a")], False, None),
        (
            pvc(selector={"matchLabels": {"tier": "db"}}),
            [pv("a"), pv("b", labels={"tier": "db"})],
            False,
            "b",
        ),
        (pvc(), [pv("a")], True, None),
        (pvc(), [pv("a", claim_ref=REF, phase="Pending")], True, "a"),
        (pvc(), [pv("a", mode="Block")], False, None),
        (_beta(pvc(cls="fast"), "slow"), [pv("a", cls="fast"), pv("b", cls="slow")], False, "b"),
        (pvc(cls="fast"), [_beta(pv("a"), "fast")], False, "a"),
    ],
    ids=[
        "nothing",
        "smallest-fit",
        "too-small",
        "class",
        "not-available",
        "pre-bound-to-another",
        "pre-bound-to-this-first",
        "bound-to-an-older-claim",
        "fewest-access-modes-first",
        "modes-not-offered",
        "selector",
        "wait-for-first-consumer",
        "provisioned-for-this-claim",
        "volume-mode",
        "claim-beta-annotation-wins",
        "volume-beta-annotation",
    ],
)
def test_find_best_match(claim: Obj, volumes: list[Obj], delay: bool, want: str | None) -> None:
    got = find_best_match(claim, volumes, delay)
    assert (got["metadata"]["name"] if got else None) == want


@pytest.mark.parametrize(
    ("volume", "want"),
    [
        (pv("a"), ""),
        (pv("a", "1Mi"), "requested PV is too small"),
        (pv("a", cls="x"), "storageClassName does not match"),
        (pv("a", mode="Block"), "incompatible volumeMode"),
        (pv("a", modes=("ReadOnlyMany",)), "incompatible accessMode"),
    ],
    ids=["fits", "small", "class", "mode", "access"],
)
def test_mismatch(volume: Obj, want: str) -> None:
    assert mismatch(volume, pvc()) == want


@pytest.mark.parametrize(
    ("ref", "want"),
    [(None, False), (REF, True), ({**REF, "uid": ""}, True), ({**REF, "uid": "x"}, False)],
    ids=["none", "uid", "no-uid", "other-uid"],
)
def test_is_bound_to(ref: Obj | None, want: bool) -> None:
    assert is_bound_to(pv("a", claim_ref=ref), pvc()) is want


def node(name: str, root: str = "/r") -> Obj:
    return {
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name},
            "annotations": {LOCAL_PATH_ROOT: root},
        },
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }


# --- sync against the fake client -------------------------------------------------------------


class Binder:
    """The binder and the local-path provisioner on one fake API."""

    def __init__(self) -> None:
        self.client = FakeClient(FakeClock())
        factory = InformerFactory(cast(Client, self.client))
        c = cast(Client, self.client)
        self.binder = PersistentVolumeBinderController(c, factory, clock=self.client.clock)
        self.local = LocalPathProvisioner(c, factory, clock=self.client.clock)
        self.client.attach(
            factory, PERSISTENT_VOLUMES, PERSISTENT_VOLUME_CLAIMS, STORAGE_CLASSES, PODS, NODES
        )

    def claim(self, name: str = "c") -> Obj:
        return self.client.objects[("persistentvolumeclaims", "ns", name)]

    def volume(self, name: str) -> Obj:
        return self.client.objects[("persistentvolumes", "", name)]

    async def drain(self, rounds: int = 6) -> None:
        """Run both controllers' queued keys until nothing is left (bounded)."""
        for _ in range(rounds):
            for ctl in (self.binder, self.local):
                while len(ctl.queue):
                    key = await ctl.queue.get()
                    try:
                        await ctl.sync(key)
                    finally:
                        ctl.queue.done(key)


def seeded_claim(name: str = "c", **spec: Any) -> Obj:
    return {
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            **spec,
        },
        "status": {"phase": "Pending"},
    }


async def test_sync_binds_static_volume() -> None:
    h = Binder()
    h.client.seed(PERSISTENT_VOLUMES, pv("pv1", "2Gi"))
    h.client.seed(PERSISTENT_VOLUME_CLAIMS, seeded_claim(storageClassName=""))
    await h.drain()
    c, v = h.claim(), h.volume("pv1")
    assert c["spec"]["volumeName"] == "pv1"
    assert c["metadata"]["annotations"] == {
        "pv.kubernetes.io/bind-completed": "yes",
        "pv.kubernetes.io/bound-by-controller": "yes",
    }
    assert c["status"] == {
        "phase": "Bound",
        "accessModes": ["ReadWriteOnce"],
        "capacity": {"storage": "2Gi"},
    }
    assert v["spec"]["claimRef"]["uid"] == c["metadata"]["uid"]
    assert v["metadata"]["annotations"] == {"pv.kubernetes.io/bound-by-controller": "yes"}
    assert v["status"]["phase"] == "Bound" and v["status"]["lastPhaseTransitionTime"]


@pytest.mark.parametrize(
    ("policy", "annotations", "phase", "event"),
    [
        ("Retain", {}, "Released", None),
        ("Delete", {}, "Failed", "VolumeFailedDelete"),
        ("Recycle", {}, "Failed", "VolumeFailedRecycle"),
        ("Delete", {"pv.kubernetes.io/provisioned-by": "rancher.io/local-path"}, None, None),
    ],
    ids=["retain", "delete-static", "recycle", "delete-provisioned"],
)
async def test_sync_released_volume(
    policy: str, annotations: dict[str, str], phase: str | None, event: str | None
) -> None:
    h = Binder()
    vol = pv("pv1", phase="Bound", claim_ref={**REF, "uid": "gone"})
    vol["spec"]["persistentVolumeReclaimPolicy"] = policy
    vol["metadata"]["annotations"] = annotations
    h.client.seed(PERSISTENT_VOLUMES, vol)
    h.client.objects[("persistentvolumes", "", "pv1")]["metadata"]["uid"] = "pv-uid"
    await h.drain()
    if phase is None:  # its provisioner deleted it (no finalizers here: gone)
        assert ("persistentvolumes", "", "pv1") not in h.client.objects
    else:
        assert h.volume("pv1")["status"]["phase"] == phase
    assert [r for r, _ in h.client.events if r.startswith("Volume")] == ([event] if event else [])


async def test_sync_names_the_external_provisioner() -> None:
    h = Binder()
    h.client.seed(
        STORAGE_CLASSES,
        {
            "metadata": {"name": "fast"},
            "provisioner": "example.com/disk",
            "volumeBindingMode": "Immediate",
        },
    )
    h.client.seed(PERSISTENT_VOLUME_CLAIMS, seeded_claim(storageClassName="fast"))
    await h.drain()
    annotations = h.claim()["metadata"]["annotations"]
    assert annotations["volume.kubernetes.io/storage-provisioner"] == "example.com/disk"
    assert annotations["volume.beta.kubernetes.io/storage-provisioner"] == "example.com/disk"
    assert ("ExternalProvisioning", (
        "Waiting for a volume to be created either by the external provisioner "
        "'example.com/disk' or manually by the system administrator. If volume creation is "
        "delayed, please verify that the provisioner is running and correctly registered."
    )) in h.client.events  # fmt: skip
    assert h.claim()["status"]["phase"] == "Pending"


async def test_sync_provisions_local_path_and_binds() -> None:
    h = Binder()
    await h.drain()  # the default class
    assert (
        h.client.objects[("storageclasses", "", "local-path")]["provisioner"]
        == "rancher.io/local-path"
    )
    h.client.seed(NODES, node("n1", root="/srv/vols"))
    h.client.seed(PERSISTENT_VOLUME_CLAIMS, seeded_claim(storageClassName="local-path"))
    await h.drain()
    assert (
        "WaitForFirstConsumer",
        "waiting for first consumer to be created before binding",
    ) in h.client.events
    await h.client.patch(
        PERSISTENT_VOLUME_CLAIMS, "c", {"metadata": {"annotations": {SELECTED_NODE: "n1"}}}, "ns"
    )
    await h.drain()
    c = h.claim()
    name = f"pvc-{c['metadata']['uid']}"
    assert c["spec"]["volumeName"] == name and c["status"]["phase"] == "Bound"
    v = h.volume(name)
    assert v["spec"]["hostPath"]["path"] == f"/srv/vols/{name}_ns_c"
    assert v["status"]["phase"] == "Bound"
    assert ("ProvisioningSucceeded", f"Successfully provisioned volume {name}") in h.client.events


# --- a lagging cache and concurrent workers ---------------------------------------------------


class PreconditionClient(FakeClient):
    """The fake API with the server's merge-patch precondition: a ``metadata.
    resourceVersion`` in the patch that is not the object's is a 409 Conflict."""

    async def patch(
        self, res: Resource, name: str, patch: Any, namespace: str | None = None, **kw: Any
    ) -> Obj:
        want = ((patch or {}).get("metadata") or {}).get("resourceVersion")
        old = self.objects.get((res.plural, namespace or "", name))
        if want and old is not None and old["metadata"]["resourceVersion"] != want:
            raise StatusError(409, "Conflict", "the object has been modified")
        return await super().patch(res, name, patch, namespace, **kw)


def _precondition_binder() -> Binder:
    h = Binder.__new__(Binder)
    h.client = PreconditionClient(FakeClock())
    factory = InformerFactory(cast(Client, h.client))
    c = cast(Client, h.client)
    h.binder = PersistentVolumeBinderController(c, factory, clock=h.client.clock)
    h.local = LocalPathProvisioner(c, factory, clock=h.client.clock)
    h.client.attach(
        factory, PERSISTENT_VOLUMES, PERSISTENT_VOLUME_CLAIMS, STORAGE_CLASSES, PODS, NODES
    )
    return h


@pytest.mark.parametrize("forgets", [False, True], ids=["own-write-remembered", "other-worker"])
async def test_stale_cache_never_binds_one_volume_twice(forgets: bool) -> None:
    """Claim a takes pv1; the informer still shows pv1 Available when claim b is synced
    (its own write not seen yet, or another worker's write it never made): b must not
    get pv1 (the write carries pv1's resourceVersion: 409, re-read, b stays Pending)."""
    h = _precondition_binder()
    h.client.seed(PERSISTENT_VOLUMES, pv("pv1", "2Gi"))
    h.client.seed(PERSISTENT_VOLUME_CLAIMS, seeded_claim("a", storageClassName=""))
    h.client.seed(PERSISTENT_VOLUME_CLAIMS, seeded_claim("b", storageClassName=""))
    stale = copy.deepcopy(h.binder.volumes.get("pv1"))
    await h.binder.sync("claim/ns/a")
    h.binder.volumes.store["pv1"] = stale  # the informer lags behind the writes
    if forgets:
        getattr(h.binder, "assumed", {}).clear()
    await h.binder.sync("claim/ns/b")
    h.binder.volumes.store["pv1"] = stale
    await h.drain()
    assert h.claim("a")["spec"]["volumeName"] == "pv1"
    assert h.claim("a")["status"]["phase"] == "Bound"
    assert not h.claim("b")["spec"].get("volumeName")
    assert h.claim("b")["status"]["phase"] == "Pending"
    assert h.volume("pv1")["spec"]["claimRef"]["name"] == "a"


async def test_prebound_volume_of_an_unseen_claim_is_not_released() -> None:
    """A volume provisioned (or pre-bound by the scheduler) for a claim the binder's
    cache has not seen yet: the claim is read from the API server before anything is
    released (upstream re-reads for every phase but Released and Failed)."""
    h = Binder()
    claim = seeded_claim("c", storageClassName="local-path")
    claim["metadata"].update(uid="u-c", resourceVersion="1", creationTimestamp="x")
    h.client.objects[("persistentvolumeclaims", "ns", "c")] = claim  # not in the informer
    vol = pv("pvc-u-c", phase="Pending", claim_ref={**REF, "uid": "u-c"})
    vol["spec"]["persistentVolumeReclaimPolicy"] = "Delete"
    vol["metadata"]["annotations"] = {"pv.kubernetes.io/provisioned-by": "rancher.io/local-path"}
    h.client.seed(PERSISTENT_VOLUMES, vol)
    await h.binder.sync("volume/pvc-u-c")
    await h.local.sync("volume/pvc-u-c")
    assert ("persistentvolumes", "", "pvc-u-c") in h.client.objects
    assert h.volume("pvc-u-c")["status"]["phase"] != "Released"
