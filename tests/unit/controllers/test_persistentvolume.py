"""The binder's matching, the local-path provisioner's choices and the StatefulSet's claim
owners: pure functions, as tables."""

from __future__ import annotations

from typing import Any, cast

import pytest
from test_job import FakeClient, FakeClock

from corral.api.volumes import LOCAL_PATH_ROOT, SELECTED_NODE
from corral.client.rest import (
    NODES,
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    PODS,
    STORAGE_CLASSES,
    Client,
)
from corral.controllers.base import InformerFactory
from corral.controllers.localpath import (
    LocalPathProvisioner,
    ProvisionError,
    build_volume,
    check_claim,
    choose_node,
)
from corral.controllers.persistentvolume import (
    PersistentVolumeBinderController,
    find_best_match,
    is_bound_to,
    mismatch,
)
from corral.controllers.statefulset import claim_owners, new_claim
from corral.controllers.volumeprotection import uses_claim

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


def node(name: str, root: str | None = "/r", ready: bool = True) -> Obj:
    return {
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name},
            "annotations": {LOCAL_PATH_ROOT: root} if root else {},
        },
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


@pytest.mark.parametrize(
    ("nodes", "selected", "want"),
    [
        ([node("a"), node("b")], "b", "b"),
        ([node("a")], "x", 'node "x" not found'),
        ([node("a", root=None)], "a", 'node "a" has no local path root'),
        ([node("a", ready=False), node("b", root=None), node("c")], "", "c"),
        ([node("a", ready=False)], "", "no Ready node has a local path root"),
    ],
    ids=["selected", "selected-missing", "selected-without-root", "any-ready", "none-ready"],
)
def test_choose_node(nodes: list[Obj], selected: str, want: str) -> None:
    try:
        got = choose_node(pvc(), nodes, selected)["metadata"]["name"]
    except ProvisionError as e:
        got = str(e)
    assert got.startswith(want)


@pytest.mark.parametrize(
    ("modes", "ok"),
    [
        (("ReadWriteOnce",), True),
        (("ReadWriteOncePod",), True),
        (("ReadWriteMany",), False),
        (("ReadOnlyMany",), False),
    ],
    ids=["rwo", "rwop", "rwx", "rox"],
)
def test_local_path_access_modes(modes: tuple[str, ...], ok: bool) -> None:
    claim = pvc(modes=modes)
    if ok:
        check_claim(claim)
    else:
        with pytest.raises(ProvisionError, match=modes[0]):
            check_claim(claim)


def test_build_volume() -> None:
    claim = pvc("3Gi", cls="local-path")
    claim["metadata"]["annotations"] = {SELECTED_NODE: "n1"}
    out = build_volume(claim, {"reclaimPolicy": "Retain"}, node("n1", root="/var/vols/"))
    assert out["metadata"]["name"] == "pvc-u1"
    assert out["spec"]["hostPath"] == {"path": "/var/vols/pvc-u1_ns_c", "type": "DirectoryOrCreate"}
    assert out["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert out["spec"]["capacity"] == {"storage": "3Gi"}
    assert out["spec"]["claimRef"]["uid"] == "u1"


STS = {
    "metadata": {"name": "web", "uid": "s"},
    "spec": {"selector": {"matchLabels": {"app": "web"}}},
}
POD = {"metadata": {"name": "web-1", "uid": "p"}}
OTHER = {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "o"}


def sts(when_deleted: str, when_scaled: str) -> Obj:
    spec = {
        **STS["spec"],
        "persistentVolumeClaimRetentionPolicy": {
            "whenDeleted": when_deleted,
            "whenScaled": when_scaled,
        },
    }
    return {**STS, "spec": spec}


@pytest.mark.parametrize(
    ("deleted", "scaled", "down", "want"),
    [
        ("Retain", "Retain", False, []),
        ("Retain", "Retain", True, []),
        ("Delete", "Retain", False, ["s"]),
        ("Delete", "Retain", True, ["s"]),
        ("Retain", "Delete", False, []),
        ("Retain", "Delete", True, ["p"]),
        ("Delete", "Delete", False, ["s"]),
        ("Delete", "Delete", True, ["p"]),
    ],
    ids=[
        "retain-retain",
        "retain-retain-down",
        "deleted-delete",
        "deleted-delete-down",
        "scaled-delete",
        "scaled-delete-down",
        "both-delete",
        "both-delete-down",
    ],
)
def test_claim_owners(deleted: str, scaled: str, down: bool, want: list[str]) -> None:
    set_ = sts(deleted, scaled)
    claim = {"metadata": {"ownerReferences": [OTHER, {"uid": "s"}, {"uid": "p"}]}}
    got = claim_owners(claim, set_, POD, down)
    assert got[0] == OTHER
    assert [r["uid"] for r in got[1:]] == want


def test_new_claim_labels_and_name() -> None:
    template = {"metadata": {"name": "data", "labels": {"tier": "db"}}, "spec": {"a": 1}}
    out = new_claim(STS, template, 3)
    assert out["metadata"] == {"name": "data-web-3", "labels": {"tier": "db", "app": "web"}}
    assert out["spec"] == {"a": 1}


@pytest.mark.parametrize(
    ("node", "meta", "volumes", "want"),
    [
        ("n", {}, [{"name": "d", "persistentVolumeClaim": {"claimName": "c"}}], True),
        ("", {}, [{"name": "d", "persistentVolumeClaim": {"claimName": "c"}}], False),
        ("n", {}, [{"name": "d", "persistentVolumeClaim": {"claimName": "x"}}], False),
        ("n", {}, [{"name": "c", "ephemeral": {}}], True),
        ("n", {}, [{"name": "d", "ephemeral": {}}], False),
        (
            "n",
            {"deletionTimestamp": "2026-01-01T00:00:00Z", "deletionGracePeriodSeconds": 0},
            [{"name": "c", "ephemeral": {}}],
            False,
        ),
        (
            "n",
            {"deletionTimestamp": "2026-01-01T00:00:00Z", "deletionGracePeriodSeconds": 0},
            [{"name": "d", "persistentVolumeClaim": {"claimName": "c"}}],
            True,
        ),
    ],
    ids=[
        "scheduled",
        "unscheduled",
        "other-claim",
        "ephemeral-own",
        "ephemeral-other",
        "ephemeral-shut-down",
        "claim-shut-down",
    ],
)
def test_uses_claim(node: str, meta: Obj, volumes: list[Obj], want: bool) -> None:
    name = "pod-c" if "ephemeral" in volumes[0] else "c"
    pod = {
        "metadata": {"name": "pod", **meta},
        "spec": {"nodeName": node, "volumes": volumes},
        "status": {"phase": "Running"},
    }
    assert uses_claim(pod, name) is want


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
