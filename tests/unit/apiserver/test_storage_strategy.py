"""PersistentVolume, PersistentVolumeClaim and StorageClass strategies, storage admission
and their table rows: tables of objects and the errors upstream gives for them."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from corral.apiserver.registry.apps import StatefulSetStrategy
from corral.apiserver.registry.storage import (
    PersistentVolumeClaimStrategy,
    PersistentVolumeStrategy,
    StorageClassStrategy,
)
from corral.apiserver.tables import row
from corral.apiserver.volume_admission import pick_default_class

Obj = dict[str, Any]


def pv(**spec: Any) -> Obj:
    base: Obj = {
        "metadata": {"name": "pv1"},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "hostPath": {"path": "/data/pv1"},
        },
    }
    base["spec"].update(spec)
    base["spec"] = {k: v for k, v in base["spec"].items() if v is not None}
    return base


def pvc(**spec: Any) -> Obj:
    base: Obj = {
        "metadata": {"name": "c", "namespace": "ns"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    base["spec"].update(spec)
    base["spec"] = {k: v for k, v in base["spec"].items() if v is not None}
    return base


def errors_of(errs: list[Any]) -> list[str]:
    return [str(e) for e in errs]


@pytest.mark.parametrize(
    ("obj", "want"),
    [
        (pv(), []),
        (pv(accessModes=None), ["spec.accessModes: Required value"]),
        (
            pv(accessModes=["ReadWriteSometimes"]),
            [
                'spec.accessModes: Unsupported value: "ReadWriteSometimes": supported values: '
                '"ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"'
            ],
        ),
        (
            pv(accessModes=["ReadWriteOncePod", "ReadOnlyMany"]),
            ["spec.accessModes: Forbidden: may not use ReadWriteOncePod with other access modes"],
        ),
        (
            pv(capacity=None),
            [
                "spec.capacity: Required value",
                'spec.capacity: Unsupported value: {}: supported values: "storage"',
            ],
        ),
        (
            pv(capacity={"storage": "0"}),
            ['spec.capacity[storage]: Invalid value: "0": must be greater than zero'],
        ),
        (pv(hostPath=None), ["spec: Required value: must specify a volume type"]),
        (
            pv(nfs={"server": "s", "path": "/"}),
            ["spec.nfs: Forbidden: may not specify more than 1 volume type"],
        ),
        (
            pv(hostPath={"path": "/a/../b"}),
            ["spec.hostPath.path: Invalid value: \"/a/../b\": must not contain '..'"],
        ),
        (
            pv(persistentVolumeReclaimPolicy="Keep"),
            [
                'spec.persistentVolumeReclaimPolicy: Unsupported value: "Keep": supported values: '
                '"Delete", "Recycle", "Retain"'
            ],
        ),
        (
            pv(nodeAffinity={}),
            ["spec.nodeAffinity.required: Required value: must specify required node constraints"],
        ),
        (
            pv(nodeAffinity={"required": {"nodeSelectorTerms": []}}),
            [
                "spec.nodeAffinity.required.nodeSelectorTerms: Required value: must have at least "
                "one node selector term"
            ],
        ),
        (
            pv(hostPath=None, local={"path": "/mnt/disk"}),
            ["spec.nodeAffinity: Required value: Local volume requires node affinity"],
        ),
        (
            pv(storageClassName="Fast_Disk"),
            ['spec.storageClassName: Invalid value: "Fast_Disk": a lowercase RFC 1123 subdomain'],
        ),
    ],
    ids=[
        "valid",
        "no-access-modes",
        "bad-access-mode",
        "rwop-with-others",
        "no-capacity",
        "zero-capacity",
        "no-source",
        "two-sources",
        "backsteps",
        "bad-reclaim",
        "affinity-without-required",
        "no-terms",
        "local-needs-affinity",
        "bad-class-name",
    ],
)
def test_persistent_volume_validation(obj: Obj, want: list[str]) -> None:
    got = errors_of(PersistentVolumeStrategy().validate(obj))
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.startswith(w)


def test_persistent_volume_defaults_and_immutable_source() -> None:
    s = PersistentVolumeStrategy()
    obj = pv()
    s.default(obj)
    s.prepare_for_create(obj)
    assert obj["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert obj["spec"]["volumeMode"] == "Filesystem"
    assert obj["spec"]["hostPath"]["type"] == ""
    assert obj["status"] == {"phase": "Pending"}
    new = copy.deepcopy(obj)
    new["spec"]["hostPath"]["path"] = "/elsewhere"
    new["spec"]["volumeMode"] = "Block"
    got = errors_of(s.validate_update(new, obj))
    assert got[0] == (
        "spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is immutable "
        "after creation"
    )
    assert got[1] == 'volumeMode: Invalid value: "Block": field is immutable'


@pytest.mark.parametrize(
    ("obj", "want"),
    [
        (pvc(), []),
        (
            pvc(accessModes=[]),
            ["spec.accessModes: Required value: at least 1 access mode is required"],
        ),
        (pvc(resources={}), ["spec.resources[storage]: Required value"]),
        (
            pvc(resources={"requests": {"storage": "-1Gi"}}),
            ['spec.resources[storage]: Invalid value: "-1Gi": must be greater than zero'],
        ),
        (
            pvc(volumeMode="Raw"),
            ['spec.volumeMode: Unsupported value: "Raw": supported values: "Block", "Filesystem"'],
        ),
        (
            pvc(dataSource={"kind": "Snapshot", "name": "s"}),
            [
                "spec.dataSource: Invalid value: \"Snapshot\": must be 'PersistentVolumeClaim' when "
                "referencing the default apiGroup"
            ],
        ),
    ],
    ids=["valid", "no-modes", "no-storage", "negative", "bad-mode", "data-source-kind"],
)
def test_claim_validation(obj: Obj, want: list[str]) -> None:
    assert errors_of(PersistentVolumeClaimStrategy().validate(obj)) == want


IMMUTABLE = (
    "spec: Forbidden: spec is immutable after creation except resources.requests and "
    "volumeAttributesClassName for bound claims"
)


@pytest.mark.parametrize(
    ("change", "phase", "want"),
    [
        ({"volumeName": "pv1"}, "Pending", []),
        ({"storageClassName": "fast"}, "Pending", []),
        ({"accessModes": ["ReadOnlyMany"]}, "Pending", [IMMUTABLE]),
        ({"resources": {"requests": {"storage": "2Gi"}}}, "Pending", [IMMUTABLE]),
        ({"resources": {"requests": {"storage": "2Gi"}}}, "Bound", []),
        (
            {"resources": {"requests": {"storage": "500Mi"}}},
            "Bound",
            [
                "spec.resources.requests.storage: Forbidden: field can not be less than "
                "previous value"
            ],
        ),
    ],
    ids=[
        "volume-name-once",
        "class-where-none",
        "modes",
        "grow-unbound",
        "grow-bound",
        "shrink-bound",
    ],
)
def test_claim_update(change: Obj, phase: str, want: list[str]) -> None:
    s = PersistentVolumeClaimStrategy()
    old = pvc()
    s.default(old)
    old["status"] = {"phase": phase}
    new = copy.deepcopy(old)
    new["spec"].update(change)
    assert errors_of(s.validate_update(new, old)) == want


def test_claim_volume_name_is_set_once() -> None:
    s = PersistentVolumeClaimStrategy()
    old = pvc(volumeName="pv1")
    new = pvc(volumeName="pv2")
    assert errors_of(s.validate_update(new, old)) == [IMMUTABLE]


def sc(**fields: Any) -> Obj:
    base: Obj = {"metadata": {"name": "fast"}, "provisioner": "example.com/disk"}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


@pytest.mark.parametrize(
    ("obj", "want"),
    [
        (sc(), []),
        (sc(provisioner=None), ["provisioner: Required value"]),
        (
            sc(reclaimPolicy="Recycle"),
            ['reclaimPolicy: Unsupported value: "Recycle": supported values: "Delete", "Retain"'],
        ),
        (
            sc(volumeBindingMode="Later"),
            [
                'volumeBindingMode: Unsupported value: "Later": supported values: "Immediate", '
                '"WaitForFirstConsumer"'
            ],
        ),
        (sc(parameters={"": "x"}), ['parameters: Invalid value: "": field can not be empty.']),
    ],
    ids=["valid", "no-provisioner", "recycle", "bad-binding-mode", "empty-parameter"],
)
def test_storage_class_validation(obj: Obj, want: list[str]) -> None:
    s = StorageClassStrategy()
    s.default(obj)
    assert errors_of(s.validate(obj)) == want


def test_storage_class_defaults_and_immutable_fields() -> None:
    s = StorageClassStrategy()
    old = sc()
    s.default(old)
    assert (old["reclaimPolicy"], old["volumeBindingMode"]) == ("Delete", "Immediate")
    new = sc(
        provisioner="example.com/other",
        parameters={"a": "b"},
        reclaimPolicy="Retain",
        volumeBindingMode="WaitForFirstConsumer",
    )
    assert errors_of(s.validate_update(new, old)) == [
        "parameters: Forbidden: updates to parameters are forbidden.",
        "provisioner: Forbidden: updates to provisioner are forbidden.",
        "reclaimPolicy: Forbidden: updates to reclaimPolicy are forbidden.",
        'volumeBindingMode: Invalid value: "WaitForFirstConsumer": field is immutable',
    ]


def statefulset(mount: str) -> Obj:
    return {
        "metadata": {"name": "web", "namespace": "ns"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "serviceName": "web",
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": "busybox",
                            "volumeMounts": [{"name": mount, "mountPath": "/data"}],
                        }
                    ]
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
        },
    }


@pytest.mark.parametrize(
    ("mount", "want"),
    [
        ("data", []),
        ("other", ['spec.template.spec.containers[0].volumeMounts[0].name: Not found: "other"']),
    ],
    ids=["claim-template-counts", "unknown-still-refused"],
)
def test_statefulset_mounts_of_claim_templates(mount: str, want: list[str]) -> None:
    s = StatefulSetStrategy()
    obj = statefulset(mount)
    s.default(obj)
    assert errors_of(s.validate(obj)) == want
    template = obj["spec"]["volumeClaimTemplates"][0]
    assert (template["apiVersion"], template["kind"]) == ("v1", "PersistentVolumeClaim")
    assert template["spec"]["volumeMode"] == "Filesystem"
    assert template["status"] == {"phase": "Pending"}


def meta(name: str, created: str, default: str | None = None) -> Obj:
    m: Obj = {"name": name, "creationTimestamp": created}
    if default is not None:
        m["annotations"] = {"storageclass.kubernetes.io/is-default-class": default}
    return {"metadata": m}


@pytest.mark.parametrize(
    ("classes", "want"),
    [
        ([], None),
        ([meta("a", "2026-01-01T00:00:00Z")], None),
        ([meta("a", "2026-01-01T00:00:00Z", "false")], None),
        ([meta("a", "2026-01-01T00:00:00Z", "true")], "a"),
        (
            [
                meta("old", "2026-01-01T00:00:00Z", "true"),
                meta("new", "2026-02-01T00:00:00Z", "true"),
            ],
            "new",
        ),
        (
            [meta("b", "2026-01-01T00:00:00Z", "true"), meta("a", "2026-01-01T00:00:00Z", "true")],
            "a",
        ),
    ],
    ids=["none", "not-annotated", "false", "one", "newest-wins", "tie-by-name"],
)
def test_default_class_choice(classes: list[Obj], want: str | None) -> None:
    assert pick_default_class(classes) == want


NOW = datetime(2026, 1, 1, 0, 10, tzinfo=UTC)
CREATED = "2026-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("resource", "group", "obj", "want"),
    [
        (
            "persistentvolumes",
            "",
            {
                "metadata": {"name": "pv1", "creationTimestamp": CREATED},
                "spec": {
                    "capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "claimRef": {"namespace": "ns", "name": "c"},
                    "storageClassName": "manual",
                    "volumeMode": "Filesystem",
                },
                "status": {"phase": "Bound"},
            },
            [
                "pv1",
                "1Gi",
                "RWO,RWX",
                "Retain",
                "Bound",
                "ns/c",
                "manual",
                "<unset>",
                "",
                "10m",
                "Filesystem",
            ],
        ),
        (
            "persistentvolumes",
            "",
            {
                "metadata": {
                    "name": "pv2",
                    "creationTimestamp": CREATED,
                    "deletionTimestamp": CREATED,
                },
                "spec": {"capacity": {"storage": "5Gi"}, "accessModes": ["ReadWriteOncePod"]},
                "status": {"phase": "Released"},
            },
            ["pv2", "5Gi", "RWOP", "", "Terminating", "", "", "<unset>", "", "10m", "<unset>"],
        ),
        (
            "persistentvolumeclaims",
            "",
            {
                "metadata": {"name": "c", "creationTimestamp": CREATED},
                "spec": {
                    "volumeName": "pv1",
                    "storageClassName": "manual",
                    "volumeMode": "Filesystem",
                },
                "status": {
                    "phase": "Bound",
                    "accessModes": ["ReadWriteOnce"],
                    "capacity": {"storage": "1Gi"},
                },
            },
            ["c", "Bound", "pv1", "1Gi", "RWO", "manual", "<unset>", "10m", "Filesystem"],
        ),
        (
            "persistentvolumeclaims",
            "",
            {
                "metadata": {"name": "p", "creationTimestamp": CREATED},
                "spec": {"storageClassName": "local-path"},
                "status": {"phase": "Pending"},
            },
            ["p", "Pending", "", "", "", "local-path", "<unset>", "10m", "<unset>"],
        ),
        (
            "persistentvolumeclaims",
            "",
            {
                "metadata": {
                    "name": "b",
                    "creationTimestamp": CREATED,
                    "annotations": {"volume.beta.kubernetes.io/storage-class": "slow"},
                },
                "spec": {"storageClassName": "fast"},
                "status": {"phase": "Pending"},
            },
            ["b", "Pending", "", "", "", "slow", "<unset>", "10m", "<unset>"],
        ),
        (
            "storageclasses",
            "storage.k8s.io",
            {
                "metadata": {
                    "name": "local-path",
                    "creationTimestamp": CREATED,
                    "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                },
                "provisioner": "rancher.io/local-path",
                "reclaimPolicy": "Delete",
                "volumeBindingMode": "WaitForFirstConsumer",
            },
            [
                "local-path (default)",
                "rancher.io/local-path",
                "Delete",
                "WaitForFirstConsumer",
                False,
                "10m",
            ],
        ),
    ],
    ids=[
        "pv-bound",
        "pv-terminating",
        "pvc-bound",
        "pvc-pending",
        "pvc-beta-class-wins",
        "sc-default",
    ],
)
def test_rows(resource: str, group: str, obj: Obj, want: list[Any]) -> None:
    assert row(resource, group, obj, NOW) == want
