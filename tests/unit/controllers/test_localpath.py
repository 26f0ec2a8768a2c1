"""The local-path provisioner (controllers/localpath.py): its choice of node, what it
refuses, the volume it builds, and giving a claim it cannot serve back to the scheduler."""

from __future__ import annotations

from typing import Any

import pytest
from test_persistentvolume import Binder, pvc, seeded_claim

from corral.api.volumes import LOCAL_PATH_ROOT, SELECTED_NODE
from corral.client.rest import NODES, PERSISTENT_VOLUME_CLAIMS
from corral.controllers.localpath import (
    ProvisionError,
    build_volume,
    check_claim,
    choose_node,
)

Obj = dict[str, Any]


def node_of(name: str, root: str | None = "/r", ready: bool = True) -> Obj:
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
        ([node_of("a"), node_of("b")], "b", "b"),
        ([node_of("a")], "x", 'node "x" not found'),
        ([node_of("a", root=None)], "a", 'node "a" has no local path root'),
        ([node_of("a", ready=False), node_of("b", root=None), node_of("c")], "", "c"),
        ([node_of("a", ready=False)], "", "no Ready node has a local path root"),
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
    out = build_volume(claim, {"reclaimPolicy": "Retain"}, node_of("n1", root="/var/vols/"))
    assert out["metadata"]["name"] == "pvc-u1"
    assert out["spec"]["hostPath"] == {"path": "/var/vols/pvc-u1_ns_c", "type": "DirectoryOrCreate"}
    assert out["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert out["spec"]["capacity"] == {"storage": "3Gi"}
    assert out["spec"]["claimRef"]["uid"] == "u1"
    # labelled with its node: each agent watches only its own volumes
    assert out["metadata"]["labels"] == {"storage.corral.dev/node": "n1"}


REFUSALS = [
    ("rwx", {"accessModes": ["ReadWriteMany"]}, "access mode ReadWriteMany is not supported"),
    ("block", {"volumeMode": "Block"}, "only the Filesystem volume mode is supported"),
    ("no-root-on-the-node", {}, 'node "n1" has no local path root'),
]


@pytest.mark.parametrize(("spec", "why"), [c[1:] for c in REFUSALS], ids=[c[0] for c in REFUSALS])
async def test_failed_provisioning_gives_the_claim_back(spec: Obj, why: str) -> None:
    """A claim the provisioner cannot serve on the selected node: ProvisioningFailed
    naming the reason, and selected-node removed so that the scheduler decides again
    (external-provisioner's rescheduleProvisioning) instead of waiting forever."""
    h = Binder()
    await h.drain()  # the default class
    h.client.seed(NODES, node_of("n1", root=None if not spec else "/srv"))
    claim = seeded_claim(storageClassName="local-path", **spec)
    claim["metadata"]["annotations"] = {SELECTED_NODE: "n1"}
    h.client.seed(PERSISTENT_VOLUME_CLAIMS, claim)
    await h.drain()
    failed = [m for r, m in h.client.events if r == "ProvisioningFailed"]
    assert failed and why in failed[0], h.client.events
    assert SELECTED_NODE not in (h.claim()["metadata"].get("annotations") or {})
    assert h.claim()["status"]["phase"] == "Pending"
