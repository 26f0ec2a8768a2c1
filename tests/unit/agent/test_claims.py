"""persistentVolumeClaim volumes on the agent (corral.agent.claims and VolumeManager):
resolving a claim to its host path with the kubelet's words, read-only mounts, and the
local-path cleanup's refusal to delete anything outside the agent's storage root."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from corral.agent.claims import (
    ClaimError,
    claim_path,
    cleanup_due,
    dir_to_remove,
    removable_dir,
)
from corral.agent.drivers.base import Mount
from corral.agent.objects import ConfigError
from corral.agent.volumes import VolumeManager
from corral.api.volumes import LOCAL_PATH_CLEANUP, LOCAL_PATH_NODE, PROVISIONED_BY

Obj = dict[str, Any]


class Lookup:
    def __init__(self, claims: dict[str, Obj], volumes: dict[str, Obj]) -> None:
        self.claims, self.volumes = claims, volumes

    async def claim(self, namespace: str, name: str) -> Obj | None:
        return self.claims.get(f"{namespace}/{name}")

    async def volume(self, name: str) -> Obj | None:
        return self.volumes.get(name)

    async def configmap(self, namespace: str, name: str) -> Obj | None:
        return None

    async def secret(self, namespace: str, name: str) -> Obj | None:
        return None


def _claim(phase: str = "Bound", pv: str = "pv1", **meta: Any) -> Obj:
    return {
        "metadata": {"name": "data", "namespace": "ns", "uid": "c-uid", **meta},
        "spec": {"volumeName": pv},
        "status": {"phase": phase},
    }


def _pv(source: Obj | None = None, ref_uid: str | None = "c-uid") -> Obj:
    spec: Obj = dict(source or {"hostPath": {"path": "/srv/x", "type": "DirectoryOrCreate"}})
    if ref_uid is not None:
        spec["claimRef"] = {"namespace": "ns", "name": "data", "uid": ref_uid}
    return {"metadata": {"name": "pv1"}, "spec": spec}


WHERE = "error processing PVC ns/data"
RESOLVE_CASES: list[tuple[str, dict[str, Obj], dict[str, Obj], tuple[str, str, bool] | str]] = [
    ("host-path", {"ns/data": _claim()}, {"pv1": _pv()}, ("/srv/x", "DirectoryOrCreate", False)),
    (
        "local",
        {"ns/data": _claim()},
        {"pv1": _pv({"local": {"path": "/mnt/disk"}})},
        ("/mnt/disk", "", True),
    ),
    (
        "missing-claim",
        {},
        {},
        f'{WHERE}: failed to fetch PVC from API server: persistentvolumeclaims "data" not found',
    ),
    (
        "pending",
        {"ns/data": _claim("Pending", "")},
        {},
        f'{WHERE}: PVC ns/data has non-bound phase ("Pending") or empty pvc.Spec.VolumeName ("")',
    ),
    (
        "being-deleted",
        {"ns/data": _claim(deletionTimestamp="2026-01-01T00:00:00Z")},
        {"pv1": _pv()},
        f"{WHERE}: can't start pod because PVC ns/data is being deleted",
    ),
    (
        "pv-missing",
        {"ns/data": _claim()},
        {},
        f'{WHERE}: failed to fetch PV "pv1" from API server: persistentvolumes "pv1" not found',
    ),
    (
        "pv-unbound",
        {"ns/data": _claim()},
        {"pv1": _pv(ref_uid=None)},
        f'{WHERE}: found PV object "pv1" but it has a nil pv.Spec.ClaimRef indicating it is '
        "not yet bound to the claim",
    ),
    (
        "local-path-of-another-node",
        {"ns/data": _claim()},
        {"pv1": {**_pv(), "metadata": {"name": "pv1", "annotations": {LOCAL_PATH_NODE: "n2"}}}},
        f'{WHERE}: PV "pv1" is a local-path volume of node "n2", not of this node "n1"',
    ),
    (
        "pv-bound-elsewhere",
        {"ns/data": _claim()},
        {"pv1": _pv(ref_uid="other")},
        f'{WHERE}: found PV object "pv1" but its pv.Spec.ClaimRef.UID ("other") does not '
        'point to claim.UID ("c-uid")',
    ),
]


@pytest.mark.parametrize(
    ("claims", "volumes", "want"),
    [c[1:] for c in RESOLVE_CASES],
    ids=[c[0] for c in RESOLVE_CASES],
)
def test_claim_path(
    claims: dict[str, Obj], volumes: dict[str, Obj], want: tuple[str, str, bool] | str
) -> None:
    lookup = Lookup(claims, volumes)
    run = claim_path(lookup, "ns", "vol", {"claimName": "data"}, "n1")
    if isinstance(want, tuple):
        assert asyncio.run(run) == want
        return
    with pytest.raises(ClaimError) as e:
        asyncio.run(run)
    assert e.value.message == want
    assert e.value.event_message == (
        "Unable to attach or mount volumes: unmounted volumes=[vol], unattached volumes=[], "
        f"failed to process volumes=[vol]: {want}"
    )


def test_unsupported_source() -> None:
    lookup = Lookup({"ns/data": _claim()}, {"pv1": _pv({"nfs": {"server": "x", "path": "/"}})})
    with pytest.raises(ConfigError, match="volume type nfs of PersistentVolume is not supported"):
        asyncio.run(claim_path(lookup, "ns", "vol", {"claimName": "data"}))


def test_volume_manager_mounts_claims(tmp_path: Path) -> None:
    target = tmp_path / "storage" / "pv1_ns_data"
    lookup = Lookup(
        {"ns/data": _claim()},
        {"pv1": _pv({"hostPath": {"path": str(target), "type": "DirectoryOrCreate"}})},
    )
    vm = VolumeManager(tmp_path / "pod", lookup, is_root=False, claims=lookup)
    pod: Obj = {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
        "spec": {
            "volumes": [
                {"name": "rw", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "ro", "persistentVolumeClaim": {"claimName": "data", "readOnly": True}},
            ]
        },
    }
    paths = asyncio.run(vm.setup(pod))
    assert paths == {"rw": target, "ro": target} and target.is_dir()  # created
    container = {
        "name": "c",
        "volumeMounts": [{"name": "rw", "mountPath": "/a"}, {"name": "ro", "mountPath": "/b"}],
    }
    assert vm.mounts(pod, container, paths) == (
        Mount(str(target), "/a", False),
        Mount(str(target), "/b", True),
    )


def test_without_a_claim_lookup_claims_are_refused(tmp_path: Path) -> None:
    vm = VolumeManager(tmp_path, Lookup({}, {}), is_root=False)
    pod = {"metadata": {}, "spec": {"volumes": [{"name": "v", "persistentVolumeClaim": {}}]}}
    with pytest.raises(ConfigError, match="persistentVolumeClaim is not supported"):
        asyncio.run(vm.setup(pod))


def test_local_volume_must_exist(tmp_path: Path) -> None:
    lookup = Lookup({"ns/data": _claim()}, {"pv1": _pv({"local": {"path": str(tmp_path / "x")}})})
    vm = VolumeManager(tmp_path / "pod", lookup, is_root=False, claims=lookup)
    pod = {
        "metadata": {"namespace": "ns"},
        "spec": {"volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "data"}}]},
    }
    with pytest.raises(ConfigError, match="does not exist"):
        asyncio.run(vm.setup(pod))


# --- cleanup safety ----------------------------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "storage"
    (r / "pv1_ns_data").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", r / "link")
    os.symlink(tmp_path / "outside", r / "pv2_ns_link")
    return r


REMOVABLE_CASES = [
    ("volume-dir", "{root}/pv1_ns_data", "{root}/pv1_ns_data"),
    ("already-gone", "{root}/pv9_ns_gone", "{root}/pv9_ns_gone"),
    ("trailing-slash", "{root}/pv1_ns_data/", "{root}/pv1_ns_data"),
    ("root-itself", "{root}", None),
    ("root-slash", "{root}/", None),
    ("outside", "{tmp}/outside", None),
    ("dot-dot", "{root}/../outside", None),
    ("dot-dot-inside", "{root}/pv1_ns_data/../pv1_ns_data", None),
    ("through-symlinked-parent", "{root}/link/x", None),
    ("symlink-itself", "{root}/pv2_ns_link", None),
    ("relative", "storage/pv1_ns_data", None),
    ("sibling-prefix", "{root}-evil/pv1", None),
    ("etc", "/etc", None),
]


@pytest.mark.parametrize(
    ("path", "want"), [c[1:] for c in REMOVABLE_CASES], ids=[c[0] for c in REMOVABLE_CASES]
)
def test_removable_dir(root: Path, path: str, want: str | None) -> None:
    fmt = {"root": str(root), "tmp": str(root.parent)}
    got = removable_dir(str(root), path.format(**fmt))
    assert got == (Path(want.format(**fmt)) if want else None)


def test_removable_dir_needs_a_root() -> None:
    assert removable_dir("", "/srv/x") is None


def _deleted_pv(node: str = "n1", phase: str = "Released", finalizer: bool = True) -> Obj:
    return {
        "metadata": {
            "name": "pv1",
            "deletionTimestamp": "2026-01-01T00:00:00Z",
            "annotations": {LOCAL_PATH_NODE: node},
            "finalizers": [LOCAL_PATH_CLEANUP] if finalizer else ["kubernetes.io/pv-protection"],
        },
        "spec": {"hostPath": {"path": "/x"}},
        "status": {"phase": phase},
    }


DUE_CASES = [
    ("released", _deleted_pv(), True),
    ("available", _deleted_pv(phase="Available"), True),
    ("other-node", _deleted_pv(node="n2"), False),
    ("still-bound", _deleted_pv(phase="Bound"), False),
    ("finalizer-gone", _deleted_pv(finalizer=False), False),
    ("not-deleted", {**_deleted_pv(), "metadata": {"annotations": {LOCAL_PATH_NODE: "n1"}}}, False),
]


@pytest.mark.parametrize(("pv", "due"), [c[1:] for c in DUE_CASES], ids=[c[0] for c in DUE_CASES])
def test_cleanup_due(pv: Obj, due: bool) -> None:
    assert cleanup_due(pv, "n1") is due


def _provisioned(policy: str = "Delete", by: str = "rancher.io/local-path", **spec: Any) -> Obj:
    """A due local-path volume as the provisioner makes it (path filled in by the test)."""
    return {
        "metadata": {"name": "pv1", "annotations": {PROVISIONED_BY: by, LOCAL_PATH_NODE: "n1"}},
        "spec": {
            "persistentVolumeReclaimPolicy": policy,
            "claimRef": {"namespace": "ns", "name": "data", "uid": "c-uid"},
            "hostPath": {"path": spec.pop("path", "{root}/pv1_ns_data")},
            **spec,
        },
    }


# a due volume -> the directory the agent deletes (None: only the finalizer goes)
REMOVE_CASES: list[tuple[str, Obj, str | None]] = [
    ("delete", _provisioned(), "{root}/pv1_ns_data"),
    ("retain-keeps-the-data", _provisioned("Retain"), None),
    ("recycle-keeps-the-data", _provisioned("Recycle"), None),
    ("no-policy-keeps-the-data", _provisioned(""), None),
    ("not-provisioned-by-local-path", _provisioned(by="example.com/other"), None),
    ("not-its-own-directory", _provisioned(path="{root}/pv2_ns_data"), None),
    ("another-claims-directory", _provisioned(path="{root}/pv1_ns_other"), None),
    ("below-its-directory", _provisioned(path="{root}/x/pv1_ns_data"), None),
    ("outside-the-root", _provisioned(path="{tmp}/outside"), None),
    ("no-claim-ref", _provisioned(claimRef=None), None),
]


@pytest.mark.parametrize(
    ("pv", "want"), [c[1:] for c in REMOVE_CASES], ids=[c[0] for c in REMOVE_CASES]
)
def test_dir_to_remove(root: Path, pv: Obj, want: str | None) -> None:
    """Only a Delete volume of the local-path provisioner, at exactly its own directory
    directly under the root, loses its data; a Retain volume keeps it."""
    fmt = {"root": str(root), "tmp": str(root.parent)}
    spec = pv["spec"]
    spec["hostPath"] = {"path": spec["hostPath"]["path"].format(**fmt)}
    got = dir_to_remove(pv, str(root))
    assert got == (Path(want.format(**fmt)) if want else None)


# (annotated as a local-path volume, hostPath type, directory made before) -> its mode
DIR_MODE_CASES: list[tuple[str, bool, str, bool, int]] = [
    ("local-path-created-world-writable", True, "DirectoryOrCreate", False, 0o777),
    ("local-path-existing-kept", True, "DirectoryOrCreate", True, 0o700),
    ("plain-host-path-left-to-the-hostpath-rule", False, "DirectoryOrCreate", False, -1),
    ("local-path-of-type-directory-not-created", True, "Directory", False, -1),
]


@pytest.mark.parametrize(
    ("annotated", "kind", "exists", "mode"),
    [c[1:] for c in DIR_MODE_CASES],
    ids=[c[0] for c in DIR_MODE_CASES],
)
def test_local_path_directory_mode(
    tmp_path: Path, annotated: bool, kind: str, exists: bool, mode: int
) -> None:
    """A local-path volume's directory is made 0777 whatever the umask (k3s' provisioner:
    ``mkdir -m 0777``), so that non-root pods can write; nothing else is touched
    (-1: claim_path creates nothing)."""
    target = tmp_path / "storage" / "pv1_ns_data"
    if exists:
        target.mkdir(parents=True, mode=0o700)
        target.chmod(0o700)
    pv = _pv({"hostPath": {"path": str(target), "type": kind}})
    if annotated:
        pv["metadata"]["annotations"] = {LOCAL_PATH_NODE: "n1"}
    lookup = Lookup({"ns/data": _claim()}, {"pv1": pv})
    old = os.umask(0o022)
    try:
        asyncio.run(claim_path(lookup, "ns", "v", {"claimName": "data"}))
    finally:
        os.umask(old)
    if mode < 0:
        assert not target.exists()
    else:
        assert target.stat().st_mode & 0o7777 == mode
