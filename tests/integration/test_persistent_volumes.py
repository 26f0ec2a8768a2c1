"""Persistent volumes on the control plane, with the real kubectl and Python client.

One ``corral server`` with its controllers (binder, protection, local-path provisioner,
StatefulSet) and no scheduler: no agent runs, so the tests play the scheduler's part
(``volume.kubernetes.io/selected-node``) and the agent's (a Node carrying the local-path
root; removing the cleanup finalizer) by hand. Pods are never bound, so deleting one
removes it at once. Each test has its own namespace; cluster-scoped names are unique.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from conftest import Kubectl, RunningServer, api_client_for, start_server
from corral.api.volumes import (
    BIND_COMPLETED,
    BOUND_BY_CONTROLLER,
    LOCAL_PATH_CLEANUP,
    LOCAL_PATH_NODE,
    LOCAL_PATH_PROVISIONER,
    LOCAL_PATH_ROOT,
    PROVISIONED_BY,
    PV_PROTECTION,
    PVC_PROTECTION,
    SELECTED_NODE,
    STORAGE_PROVISIONER,
    volume_dir,
)
from corral.testing.wait import eventually

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def pv_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_server(
        tmp_path_factory.mktemp("pv") / "data", extra=["--no-scheduler"], controllers=True
    )
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def kctl(pv_server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(pv_server.kubeconfig, tmp_path_factory.mktemp("kubecache"))


@pytest.fixture(scope="module")
def core(pv_server: RunningServer) -> Iterator[client.CoreV1Api]:
    with api_client_for(pv_server.kubeconfig) as api:
        yield client.CoreV1Api(api)


@pytest.fixture
def ns(core: client.CoreV1Api) -> str:
    name = "pv-" + uuid.uuid4().hex[:8]
    core.create_namespace({"metadata": {"name": name}})
    return name


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def get_json(kctl: Kubectl, *args: str) -> Obj:
    out: Obj = json.loads(kctl("get", *args, "-o", "json").stdout)
    return out


def claim(name: str, size: str = "1Gi", cls: str | None = None, **spec: Any) -> Obj:
    body: Obj = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {
            "accessModes": spec.pop("accessModes", ["ReadWriteOnce"]),
            "resources": {"requests": {"storage": size}},
            **spec,
        },
    }
    if cls is not None:
        body["spec"]["storageClassName"] = cls
    return body


def volume(name: str, size: str, cls: str, **spec: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": ["ReadWriteOnce"],
            "hostPath": {"path": f"/tmp/{name}"},
            "storageClassName": cls,
            **spec,
        },
    }


def apply(kctl: Kubectl, ns: str | None, *objs: Obj) -> None:
    doc = yaml.safe_dump_all(objs)
    kctl("apply", *(["-n", ns] if ns else []), "-f", "-", input=doc)


def events(core: client.CoreV1Api, ns: str, name: str) -> list[tuple[str, str, str]]:
    out = core.list_namespaced_event(ns, field_selector=f"involvedObject.name={name}")
    return [(e.type, e.reason, e.message) for e in out.items]


def has_event(core: client.CoreV1Api, ns: str, name: str, reason: str, text: str) -> bool:
    return any(r == reason and text in m for _, r, m in events(core, ns, name))


def pvc_phase(core: client.CoreV1Api, ns: str, name: str) -> str:
    return str(core.read_namespaced_persistent_volume_claim(name, ns).status.phase)


def pv_phase(core: client.CoreV1Api, name: str) -> str:
    return str(core.read_persistent_volume(name).status.phase)


def gone(fn: Any, *args: Any) -> bool:
    try:
        fn(*args)
    except ApiException as e:
        return e.status == 404
    return False


def test_static_volume_binds_smallest_fit_and_retain_keeps_it(
    kctl: Kubectl, core: client.CoreV1Api, ns: str
) -> None:
    cls = uniq("manual")
    small, fit, big = uniq("small"), uniq("fit"), uniq("big")
    apply(
        kctl,
        None,
        volume(small, "100Mi", cls),
        volume(big, "5Gi", cls),
        volume(fit, "1Gi", cls),
    )
    # the binder has seen all three (Available) before the claim comes: it picks among
    # the volumes it knows, as upstream's does
    for pv in (small, big, fit):
        eventually(lambda pv=pv: pv_phase(core, pv) == "Available", timeout=15)
    apply(kctl, ns, claim("data", "500Mi", cls))
    eventually(lambda: pvc_phase(core, ns, "data") == "Bound", timeout=15)
    pvc = get_json(kctl, "-n", ns, "pvc", "data")
    assert pvc["spec"]["volumeName"] == fit
    assert pvc["metadata"]["annotations"][BIND_COMPLETED] == "yes"
    assert pvc["metadata"]["annotations"][BOUND_BY_CONTROLLER] == "yes"
    assert pvc["metadata"]["finalizers"] == [PVC_PROTECTION]
    assert pvc["status"]["capacity"] == {"storage": "1Gi"}
    assert pvc["status"]["accessModes"] == ["ReadWriteOnce"]
    pv = get_json(kctl, "pv", fit)
    assert pv["spec"]["claimRef"]["name"] == "data"
    assert pv["spec"]["claimRef"]["uid"] == pvc["metadata"]["uid"]
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"  # a static PV's default
    assert pv["spec"]["volumeMode"] == "Filesystem"
    assert pv["metadata"]["finalizers"] == [PV_PROTECTION]
    eventually(lambda: get_json(kctl, "pv", fit)["status"]["phase"] == "Bound")
    assert get_json(kctl, "pv", small)["status"]["phase"] == "Available"

    out = kctl("get", "pv", fit).stdout.splitlines()
    assert out[0].split() == [
        "NAME",
        "CAPACITY",
        "ACCESS",
        "MODES",
        "RECLAIM",
        "POLICY",
        "STATUS",
        "CLAIM",
        "STORAGECLASS",
        "VOLUMEATTRIBUTESCLASS",
        "REASON",
        "AGE",
    ]
    assert out[1].split()[:8] == [
        fit,
        "1Gi",
        "RWO",
        "Retain",
        "Bound",
        f"{ns}/data",
        cls,
        "<unset>",
    ]
    out = kctl("get", "-n", ns, "pvc", "data").stdout.splitlines()
    assert out[0].split()[:7] == [
        "NAME",
        "STATUS",
        "VOLUME",
        "CAPACITY",
        "ACCESS",
        "MODES",
        "STORAGECLASS",
    ]
    assert out[1].split()[:6] == ["data", "Bound", fit, "1Gi", "RWO", cls]

    # a bound claim may grow only where its class allows expansion (403), never shrink (422)
    res = kctl(
        "patch", "-n", ns, "pvc", "data", "-p",
        '{"spec": {"resources": {"requests": {"storage": "2Gi"}}}}', check=False,
    )  # fmt: skip
    assert (
        'persistentvolumeclaims "data" is forbidden: only dynamically provisioned pvc can be '
        "resized and the storageclass that provisions the pvc must support resize"
    ) in res.stderr
    res = kctl(
        "patch", "-n", ns, "pvc", "data", "-p",
        '{"spec": {"resources": {"requests": {"storage": "100Mi"}}}}', check=False,
    )  # fmt: skip
    assert (
        "spec.resources.requests.storage: Forbidden: field can not be less than previous value"
    ) in res.stderr

    # Retain: the claim goes, the volume stays Released with its claimRef
    kctl("delete", "-n", ns, "pvc", "data", "--wait=false")
    eventually(lambda: get_json(kctl, "pv", fit)["status"]["phase"] == "Released", timeout=15)
    pv = get_json(kctl, "pv", fit)
    assert pv["spec"]["claimRef"]["name"] == "data"
    assert "deletionTimestamp" not in pv["metadata"]
    assert gone(core.read_namespaced_persistent_volume_claim, "data", ns)
    kctl("delete", "pv", small, big, fit)


def test_pre_bound_claims_and_volumes(kctl: Kubectl, core: client.CoreV1Api, ns: str) -> None:
    cls = uniq("pre")
    by_name, by_ref, tiny, spare = uniq("byname"), uniq("byref"), uniq("tiny"), uniq("spare")
    apply(
        kctl,
        None,
        volume(spare, "1Gi", cls),
        volume(by_name, "8Gi", cls),
        volume(by_ref, "8Gi", cls, claimRef={"namespace": ns, "name": "b"}),
        volume(tiny, "1Mi", cls),
    )
    apply(
        kctl,
        ns,
        claim("a", cls=cls, volumeName=by_name),  # the user's choice, not the smallest fit
        claim("b", cls=cls),  # the volume's choice
        claim("c", cls=cls, volumeName=tiny),
    )
    eventually(lambda: pvc_phase(core, ns, "a") == pvc_phase(core, ns, "b") == "Bound", timeout=15)
    a, b = get_json(kctl, "-n", ns, "pvc", "a"), get_json(kctl, "-n", ns, "pvc", "b")
    assert a["spec"]["volumeName"] == by_name
    assert BOUND_BY_CONTROLLER not in a["metadata"]["annotations"]  # the user named it
    assert b["spec"]["volumeName"] == by_ref
    assert get_json(kctl, "pv", by_ref)["spec"]["claimRef"]["uid"] == b["metadata"]["uid"]
    eventually(
        lambda: has_event(
            core,
            ns,
            "c",
            "VolumeMismatch",
            f'Cannot bind to requested volume "{tiny}": requested PV is too small',
        ),
        timeout=15,
    )
    assert pvc_phase(core, ns, "c") == "Pending"
    assert get_json(kctl, "pv", spare)["status"]["phase"] == "Available"
    kctl("delete", "-n", ns, "pvc", "a", "b", "c", "--wait=false")
    kctl("delete", "pv", spare, by_name, by_ref, tiny, "--wait=false")


def test_default_class_and_wait_for_first_consumer(
    kctl: Kubectl, core: client.CoreV1Api, ns: str
) -> None:
    sc = get_json(kctl, "storageclass", "local-path")
    assert sc["provisioner"] == LOCAL_PATH_PROVISIONER
    assert sc["volumeBindingMode"] == "WaitForFirstConsumer"
    assert sc["reclaimPolicy"] == "Delete"
    out = kctl("get", "sc", "local-path").stdout.splitlines()
    assert out[0].split() == [
        "NAME",
        "PROVISIONER",
        "RECLAIMPOLICY",
        "VOLUMEBINDINGMODE",
        "ALLOWVOLUMEEXPANSION",
        "AGE",
    ]
    assert out[1].split()[:6] == [
        "local-path",
        "(default)",
        LOCAL_PATH_PROVISIONER,
        "Delete",
        "WaitForFirstConsumer",
        "false",
    ]
    core.create_namespaced_persistent_volume_claim(ns, claim("wait"))
    pvc = core.read_namespaced_persistent_volume_claim("wait", ns)
    assert pvc.spec.storage_class_name == "local-path"
    eventually(
        lambda: has_event(
            core,
            ns,
            "wait",
            "WaitForFirstConsumer",
            "waiting for first consumer to be created before binding",
        ),
        timeout=15,
    )
    assert pvc_phase(core, ns, "wait") == "Pending"

    # an explicit "" is a choice: no class, no volume
    core.create_namespaced_persistent_volume_claim(ns, claim("none", cls=""))
    eventually(
        lambda: has_event(
            core,
            ns,
            "none",
            "FailedBinding",
            "no persistent volumes available for this claim and no storage class is set",
        ),
        timeout=15,
    )
    assert core.read_namespaced_persistent_volume_claim("none", ns).spec.storage_class_name == ""


def test_local_path_provisions_on_selected_node_and_deletes(
    kctl: Kubectl, core: client.CoreV1Api, ns: str
) -> None:
    node = uniq("node")
    root = f"/var/lib/corral-test/{node}"
    core.create_node(
        {
            "metadata": {
                "name": node,
                "labels": {"kubernetes.io/hostname": node},
                "annotations": {LOCAL_PATH_ROOT: root},
            }
        }
    )
    core.create_namespaced_persistent_volume_claim(ns, claim("data", "2Gi"))
    eventually(lambda: has_event(core, ns, "data", "WaitForFirstConsumer", "waiting"), timeout=15)
    core.patch_namespaced_persistent_volume_claim(
        "data", ns, {"metadata": {"annotations": {SELECTED_NODE: node}}}
    )
    eventually(lambda: pvc_phase(core, ns, "data") == "Bound", timeout=15)
    pvc = get_json(kctl, "-n", ns, "pvc", "data")
    uid = pvc["metadata"]["uid"]
    name = f"pvc-{uid}"
    assert pvc["spec"]["volumeName"] == name
    assert pvc["metadata"]["annotations"][STORAGE_PROVISIONER] == LOCAL_PATH_PROVISIONER
    pv = get_json(kctl, "pv", name)
    assert pv["spec"]["hostPath"] == {
        "path": volume_dir(root, name, ns, "data"),
        "type": "DirectoryOrCreate",
    }
    assert pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"] == [
        {
            "matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}
            ]
        }
    ]
    assert pv["spec"]["capacity"] == {"storage": "2Gi"}
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert pv["spec"]["storageClassName"] == "local-path"
    assert pv["spec"]["claimRef"]["uid"] == uid
    assert pv["metadata"]["annotations"][PROVISIONED_BY] == LOCAL_PATH_PROVISIONER
    assert pv["metadata"]["annotations"][LOCAL_PATH_NODE] == node
    assert pv["metadata"]["labels"][LOCAL_PATH_NODE] == node  # what its agent watches by
    assert pv["metadata"]["finalizers"] == [LOCAL_PATH_CLEANUP, PV_PROTECTION]
    assert has_event(core, ns, "data", "ProvisioningSucceeded", name)

    # Delete: the claim goes, the PV object is deleted and waits for its node's agent
    core.delete_namespaced_persistent_volume_claim("data", ns)

    def held() -> bool:
        m = get_json(kctl, "pv", name)["metadata"]
        return bool(m.get("deletionTimestamp")) and m.get("finalizers") == [LOCAL_PATH_CLEANUP]

    eventually(held, timeout=15)
    kctl(
        "patch",
        "pv",
        name,
        "--type=json",
        "-p",
        '[{"op": "remove", "path": "/metadata/finalizers"}]',
    )
    eventually(lambda: gone(core.read_persistent_volume, name), timeout=10)
    core.delete_node(node)


def test_unsatisfiable_claims_stay_pending_with_a_reason(
    kctl: Kubectl, core: client.CoreV1Api, ns: str
) -> None:
    cls = uniq("elsewhere")
    apply(
        kctl,
        None,
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": cls},
            "provisioner": "example.com/nobody",
        },
    )
    assert get_json(kctl, "sc", cls)["volumeBindingMode"] == "Immediate"
    core.create_namespaced_persistent_volume_claim(ns, claim("unknown", cls=cls))
    eventually(
        lambda: has_event(
            core, ns, "unknown", "ExternalProvisioning", "external provisioner 'example.com/nobody'"
        ),
        timeout=15,
    )
    # ReadWriteMany on one node's directory: refused by the provisioner
    core.create_namespaced_persistent_volume_claim(
        ns, claim("shared", accessModes=["ReadWriteMany"])
    )
    core.patch_namespaced_persistent_volume_claim(
        "shared", ns, {"metadata": {"annotations": {SELECTED_NODE: "no-such-node"}}}
    )
    eventually(
        lambda: has_event(core, ns, "shared", "ProvisioningFailed", "ReadWriteMany"), timeout=15
    )

    # given back to the scheduler (external-provisioner's rescheduleProvisioning), whose
    # Filter then names the reason instead of the claim waiting for ever
    def given_back() -> bool:
        pvc = core.read_namespaced_persistent_volume_claim("shared", ns)
        return SELECTED_NODE not in (pvc.metadata.annotations or {})

    eventually(given_back, timeout=15)
    for name in ("unknown", "shared"):
        assert pvc_phase(core, ns, name) == "Pending"
    kctl("delete", "sc", cls)


def test_claim_in_use_is_protected(kctl: Kubectl, core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_persistent_volume_claim(ns, claim("used", cls=""))
    core.create_namespaced_pod(
        ns,
        {
            "metadata": {"name": "user"},
            "spec": {
                "nodeName": "nowhere",  # bound (only a scheduled pod holds its claims)
                "containers": [
                    {
                        "name": "c",
                        "image": "busybox",
                        "volumeMounts": [{"name": "d", "mountPath": "/d"}],
                    }
                ],
                "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "used"}}],
            },
        },
    )
    core.delete_namespaced_persistent_volume_claim("used", ns)
    out = get_json(kctl, "-n", ns, "pvc", "used")
    assert out["metadata"]["deletionTimestamp"]
    assert "Terminating" in kctl("get", "-n", ns, "pvc", "used").stdout
    core.delete_namespaced_pod("user", ns)
    eventually(lambda: gone(core.read_namespaced_persistent_volume_claim, "used", ns), timeout=15)


def test_statefulset_claims_survive_their_pods(
    kctl: Kubectl, core: client.CoreV1Api, ns: str
) -> None:
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "podManagementPolicy": "Parallel",
            "serviceName": "web",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": "busybox",
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        }
                    ]
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data", "labels": {"tier": "db"}},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
        },
    }
    apply(kctl, ns, sts)  # a mount of the claim template by name is accepted

    def claims() -> dict[str, Obj]:
        items = get_json(kctl, "-n", ns, "pvc")["items"]
        return {c["metadata"]["name"]: c for c in items}

    eventually(lambda: set(claims()) == {"data-web-0", "data-web-1"}, timeout=15)
    first = claims()
    c0 = first["data-web-0"]
    assert c0["metadata"]["labels"] == {"tier": "db", "app": "web"}
    assert "ownerReferences" not in c0["metadata"]  # Retain/Retain
    assert c0["spec"]["storageClassName"] == "local-path"
    eventually(lambda: len(get_json(kctl, "-n", ns, "pods")["items"]) == 2, timeout=15)
    pod = core.read_namespaced_pod("web-0", ns)
    vol = next(v for v in pod.spec.volumes if v.name == "data")
    assert vol.persistent_volume_claim.claim_name == "data-web-0"
    old_uid = pod.metadata.uid
    core.delete_namespaced_pod("web-0", ns)

    def recreated() -> bool:
        try:
            return bool(core.read_namespaced_pod("web-0", ns).metadata.uid != old_uid)
        except ApiException:
            return False

    eventually(recreated, timeout=15)
    again = claims()
    assert again["data-web-0"]["metadata"]["uid"] == c0["metadata"]["uid"]
    assert again["data-web-1"]["metadata"]["uid"] == first["data-web-1"]["metadata"]["uid"]
    events = kctl("get", "events", "-n", ns, "--field-selector", "involvedObject.name=web").stdout
    assert "create Claim data-web-0 Pod web-0 in StatefulSet web success" in events


def test_statefulset_retention_policy_delete(kctl: Kubectl, ns: str) -> None:
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {
            "replicas": 2,
            "podManagementPolicy": "Parallel",
            "serviceName": "db",
            "persistentVolumeClaimRetentionPolicy": {
                "whenDeleted": "Delete",
                "whenScaled": "Delete",
            },
            "selector": {"matchLabels": {"app": "db"}},
            "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
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
    apply(kctl, ns, sts)

    def claims() -> dict[str, Obj]:
        items = get_json(kctl, "-n", ns, "pvc")["items"]
        return {c["metadata"]["name"]: c for c in items}

    eventually(lambda: set(claims()) == {"data-db-0", "data-db-1"}, timeout=15)
    uid = get_json(kctl, "-n", ns, "sts", "db")["metadata"]["uid"]
    for c in claims().values():
        assert [r["uid"] for r in c["metadata"]["ownerReferences"]] == [uid]
    kctl("scale", "-n", ns, "sts", "db", "--replicas=1")  # the condemned pod takes its claim
    eventually(lambda: set(claims()) == {"data-db-0"}, timeout=15)
    kctl("delete", "-n", ns, "sts", "db")  # the set takes the rest
    eventually(lambda: claims() == {}, timeout=15)


def test_invalid_objects_answer_422(kctl: Kubectl, ns: str) -> None:
    res = kctl(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": uniq("bad")},
                "spec": {"capacity": {"storage": "1Gi"}},
            }
        ),
        check=False,
    )
    assert res.returncode != 0
    assert "spec.accessModes: Required value" in res.stderr
    assert "spec: Required value: must specify a volume type" in res.stderr
    res = kctl(
        "apply",
        "-n",
        ns,
        "-f",
        "-",
        input=json.dumps(claim("bad", accessModes=[])),
        check=False,
    )
    assert "spec.accessModes: Required value: at least 1 access mode is required" in res.stderr
