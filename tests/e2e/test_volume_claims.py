"""Persistent volumes on a real node: a real server (scheduler and controller manager), one
real ``corral agent --runtime oci`` (runc), and the real kubectl.

- a claim bound to a hostPath volume under the node's ``LOCAL_PATH_ROOT`` is mounted into
  a pod, which writes a file; the pod is deleted and a new pod (mounting the claim
  read-only) reads the file and cannot write;
- a pod whose claim does not exist: unschedulable with upstream's PreFilter message, and
  (bound to the node directly) waiting in ContainerCreating with the kubelet's
  ``FailedMount`` event;
- a ``WaitForFirstConsumer`` claim: the scheduler marks it with the selected node, waits
  until it is bound (here by the test, standing in for a provisioner), then binds the pod;
- a deleted local-path volume of the node has its directory removed and the cleanup
  finalizer dropped by the agent; one whose path lies outside the agent's storage root
  loses the finalizer but keeps its directory;
- with the binder and the local-path provisioner of the controller manager: a claim of
  the ``local-path`` class is provisioned on the scheduler's node, and its directory
  goes with the claim; a ``kubernetes.io/no-provisioner`` class binds the claim to the
  static volume the scheduler picked;
- issue 17's StatefulSet: ``web`` of 2 with a ``local-path`` claim template; each pod's
  claim is provisioned on the node (``kubectl get pvc``, and the Python client's
  ``list_namespaced_persistent_volume_claim``), a deleted pod comes back with its file
  on the same claim and volume, scaling down keeps the claim (``whenScaled: Retain``)
  which the ordinal finds again on scaling up, and deleting the set and its claims
  deletes the volumes (reclaim ``Delete``) and their directories.

The first tests bind their claims by hand (volumeName, claimRef, the Bound phase), as
a provisioner would, so that they test the scheduler and the agent alone.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2ekit import Cluster, pod_manifest, require, running, running_cluster

from corral.api.volumes import (
    BIND_COMPLETED,
    LOCAL_PATH_CLEANUP,
    LOCAL_PATH_NODE,
    LOCAL_PATH_PROVISIONER,
    LOCAL_PATH_ROOT,
    PROVISIONED_BY,
    SELECTED_NODE,
    volume_dir,
)

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require("oci")
    base = tmp_path_factory.mktemp("volumes-oci")
    with running_cluster(base, "oci", "volumes", controllers=True, workloads="statefulsets") as c:
        yield c
        # (the pods' shells ignore SIGTERM: no grace period to wait out)
        c.kubectl("delete", "pods", "--all", "-A", "--grace-period=0", "--force", check=False)
        c.kubectl("delete", "pvc", "--all", "-A", "--wait=false", check=False)


@pytest.fixture(scope="module")
def node(cluster: Cluster) -> Obj:
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    assert len(nodes) == 1
    out: Obj = nodes[0]
    return out


def _apply(c: Cluster, obj: Obj, ns: str | None = None) -> None:
    args = ["apply", "-f", "-"] + (["-n", ns] if ns else [])
    c.kubectl(*args, input=json.dumps(obj))


def _get(c: Cluster, what: str, ns: str | None = None) -> Obj | None:
    args = ["get", what, "-o", "json"] + (["-n", ns] if ns else [])
    res = c.kubectl(*args, check=False)
    if res.returncode != 0:
        assert "NotFound" in res.stderr, res.stderr
        return None
    out: Obj = json.loads(res.stdout)
    return out


def _status(c: Cluster, what: str, status: Obj, ns: str | None = None) -> None:
    args = ["patch", what, "--subresource=status", "--type=merge", "-p"]
    c.kubectl(*args, json.dumps({"status": status}), *(["-n", ns] if ns else []))


def _claim(name: str, cls: str = "", volume: str = "") -> Obj:
    spec: Obj = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}},
        "storageClassName": cls,
    }
    if volume:
        spec["volumeName"] = volume
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": spec}  # fmt: skip


def _volume(name: str, path: str, node: str, claim: Obj | None = None, cls: str = "") -> Obj:
    spec: Obj = {
        "capacity": {"storage": "1Gi"},
        "accessModes": ["ReadWriteOnce"],
        "persistentVolumeReclaimPolicy": "Retain",
        "storageClassName": cls,
        "hostPath": {"path": path, "type": "DirectoryOrCreate"},
        "nodeAffinity": {
            "required": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}
                        ]
                    }
                ]
            }
        },
    }
    if claim is not None:
        meta = claim["metadata"]
        spec["claimRef"] = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "namespace": meta["namespace"],
            "name": meta["name"],
            "uid": meta["uid"],
        }
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": name,
            "labels": {LOCAL_PATH_NODE: node},  # what the node's agent watches by
            "annotations": {LOCAL_PATH_NODE: node},
            "finalizers": [LOCAL_PATH_CLEANUP],
        },
        "spec": spec,
    }


def _bind_by_hand(c: Cluster, ns: str, claim: str, pv: str, path: str, node: str) -> None:
    """What the PV controller and a provisioner do: the volume, pointing at the claim,
    the claim pointing at the volume, both Bound."""
    obj = _get(c, f"pvc/{claim}", ns)
    assert obj is not None
    _apply(c, _volume(pv, path, node, obj))
    c.kubectl(
        "patch", f"pvc/{claim}", "-n", ns, "--type=merge", "-p",
        json.dumps({"metadata": {"annotations": {BIND_COMPLETED: "yes"}},
                    "spec": {"volumeName": pv}}),
    )  # fmt: skip
    _status(c, f"pv/{pv}", {"phase": "Bound"})
    _status(c, f"pvc/{claim}", {"phase": "Bound", "accessModes": ["ReadWriteOnce"],
                                "capacity": {"storage": "1Gi"}}, ns)  # fmt: skip


def _pod(c: Cluster, name: str, claim: str, script: str, read_only: bool = False) -> Obj:
    return pod_manifest(
        name,
        c.image,
        ["sh", "-c", script],
        container={"volumeMounts": [{"name": "data", "mountPath": "/data"}]},
        volumes=[
            {"name": "data", "persistentVolumeClaim": {"claimName": claim, "readOnly": read_only}}
        ],
    )


def test_claim_outlives_its_pod(cluster: Cluster, node: Obj) -> None:
    c, name = cluster, node["metadata"]["name"]
    root = node["metadata"]["annotations"][LOCAL_PATH_ROOT]
    assert Path(root).is_absolute() and Path(root).is_dir()
    ns = c.ns()
    pv = f"pv-{uuid.uuid4().hex[:8]}"
    path = volume_dir(root, pv, ns, "data")
    _apply(c, _claim("data"), ns)
    _bind_by_hand(c, ns, "data", pv, path, name)

    _apply(c, _pod(c, "writer", "data", "echo hello > /data/f; sleep 3600"), ns)
    c.wait_pod(ns, "writer", running)
    c.wait("the file written through the claim", lambda: Path(path, "f").exists())
    assert Path(path, "f").read_text() == "hello\n"
    c.kubectl("delete", "pod", "writer", "-n", ns, "--grace-period=0", "--force")

    script = "cat /data/f; touch /data/g 2>/dev/null && echo writable || echo read-only; sleep 3600"
    _apply(c, _pod(c, "reader", "data", script, read_only=True), ns)
    c.wait_pod(ns, "reader", running)
    c.wait("the reader's output", lambda: "read-only" in c.logs(ns, "reader"))
    assert c.logs(ns, "reader") == "hello\nread-only\n"
    assert not Path(path, "g").exists()


def test_missing_claim(cluster: Cluster, node: Obj) -> None:
    c = cluster
    ns = c.ns()
    _apply(c, _pod(c, "sched", "nope", "sleep 3600"), ns)
    want = 'persistentvolumeclaim "nope" not found'

    def unschedulable() -> bool:
        pod = c.pod(ns, "sched")
        conds = pod["status"].get("conditions") or []
        return any(x["type"] == "PodScheduled" and want in x.get("message", "") for x in conds)

    c.wait("PodScheduled=False naming the claim", unschedulable, timeout=20)
    ev = c.wait_event(ns, "sched", "FailedScheduling", want, timeout=10)
    assert ev["message"].startswith(f"0/1 nodes are available: {want}.")


def test_claim_nobody_can_provision(cluster: Cluster, node: Obj) -> None:
    """Issue 17 item 5: a ReadWriteMany claim of the local-path class stays Pending and its
    pod gets FailedScheduling naming the reason, instead of looping for ever."""
    c = cluster
    ns = c.ns()
    claim = _claim("rwx", "local-path")
    claim["spec"]["accessModes"] = ["ReadWriteMany"]
    _apply(c, claim, ns)
    _apply(c, _pod(c, "rwx-user", "rwx", "sleep 3600"), ns)
    want = "access mode ReadWriteMany is not supported"
    ev = c.wait_event(ns, "rwx-user", "FailedScheduling", want, timeout=20)
    assert 'persistentvolumeclaim "rwx" cannot be provisioned' in ev["message"]
    assert (_get(c, "pvc/rwx", ns) or {})["status"]["phase"] == "Pending"


def test_unbound_claim_on_the_node(cluster: Cluster, node: Obj) -> None:
    c = cluster
    ns = c.ns()
    manifest = _pod(c, "direct", "later", "cat /data/f; sleep 3600")
    manifest["spec"]["nodeName"] = node["metadata"]["name"]
    _apply(c, manifest, ns)
    ev = c.wait_event(ns, "direct", "FailedMount", timeout=20)
    assert ev["type"] == "Warning"
    assert ev["message"] == (
        "Unable to attach or mount volumes: unmounted volumes=[data], unattached volumes=[], "
        f"failed to process volumes=[data]: error processing PVC {ns}/later: failed to fetch "
        'PVC from API server: persistentvolumeclaims "later" not found'
    )
    pod = c.pod(ns, "direct")
    assert pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == (
        "ContainerCreating"
    )
    # once the claim exists and is bound, the pod starts
    root = node["metadata"]["annotations"][LOCAL_PATH_ROOT]
    pv = f"pv-{uuid.uuid4().hex[:8]}"
    path = volume_dir(root, pv, ns, "later")
    Path(path).mkdir(parents=True)
    Path(path, "f").write_text("seeded\n")
    _apply(c, _claim("later"), ns)
    _bind_by_hand(c, ns, "later", pv, path, node["metadata"]["name"])
    c.wait_pod(ns, "direct", running, timeout=20)
    c.wait("the seeded file read", lambda: c.logs(ns, "direct") == "seeded\n")


def test_wait_for_first_consumer(cluster: Cluster, node: Obj) -> None:
    """The scheduler selects the node on the claim and binds the pod once it is Bound."""
    c, name = cluster, node["metadata"]["name"]
    ns = c.ns()
    cls = f"wffc-{uuid.uuid4().hex[:6]}"
    _apply(c, {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
               "metadata": {"name": cls}, "provisioner": "example.com/by-hand",
               "volumeBindingMode": "WaitForFirstConsumer"})  # fmt: skip
    try:
        _apply(c, _claim("late", cls), ns)
        _apply(c, _pod(c, "consumer", "late", "echo ok > /data/f; sleep 3600"), ns)

        def selected() -> bool:
            pvc = _get(c, "pvc/late", ns) or {}
            return (pvc["metadata"].get("annotations") or {}).get(SELECTED_NODE) == name

        c.wait("the claim marked with the selected node", selected, timeout=20)
        assert not c.pod(ns, "consumer")["spec"].get("nodeName")  # not before it is bound
        root = node["metadata"]["annotations"][LOCAL_PATH_ROOT]
        pv = f"pv-{uuid.uuid4().hex[:8]}"
        path = volume_dir(root, pv, ns, "late")
        _bind_by_hand(c, ns, "late", pv, path, name)
        c.wait_pod(ns, "consumer", running, timeout=20)
        c.wait("the file", lambda: Path(path, "f").exists())
    finally:
        c.kubectl("delete", "storageclass", cls, "--wait=false", check=False)


def test_deleted_local_volume_is_removed(cluster: Cluster, node: Obj, tmp_path: Path) -> None:
    """The agent removes a deleted local-path volume's directory only for reclaim Delete,
    at exactly its own directory under the root; a Retain volume keeps its data, a path
    outside the root is never touched; every finalizer is dropped."""
    c, name = cluster, node["metadata"]["name"]
    root = node["metadata"]["annotations"][LOCAL_PATH_ROOT]
    outside = tmp_path / "not-the-agents"
    outside.mkdir()
    Path(outside, "keep").write_text("x")
    cases: list[tuple[str, str, bool]] = []  # (pv, path, removed)
    for policy, under_root, removed in (
        ("Delete", True, True),
        ("Retain", True, False),
        ("Delete", False, False),
    ):
        pv = f"pv-{uuid.uuid4().hex[:8]}"
        path = volume_dir(root, pv, "ns", "gone") if under_root else str(outside)
        if under_root:
            Path(path, "sub").mkdir(parents=True)
            Path(path, "sub", "f").write_text("x")
        vol = _volume(pv, path, name)
        vol["spec"]["persistentVolumeReclaimPolicy"] = policy
        vol["spec"]["claimRef"] = {"namespace": "ns", "name": "gone", "uid": "gone"}
        vol["metadata"]["annotations"][PROVISIONED_BY] = LOCAL_PATH_PROVISIONER
        cases.append((pv, path, removed))
        _apply(c, vol)
        # (the provisioner may delete a Released Delete volume first)
        c.kubectl("delete", "pv", pv, "--wait=false", "--ignore-not-found")
    c.wait("the volumes gone", lambda: all(_get(c, f"pv/{n}") is None for n, _, _ in cases), 20)
    for _pv, path, removed in cases:
        assert Path(path).exists() is not removed, path
    assert Path(outside, "keep").exists()  # never deleted: not under the storage root


def test_local_path_round_trip(cluster: Cluster, node: Obj) -> None:
    """With the binder and the local-path provisioner: a claim of the default class is
    provisioned on the node the scheduler chose; deleting it removes the directory."""
    c = cluster
    ns = c.ns()
    _apply(c, _claim("lp", "local-path"), ns)
    _apply(c, _pod(c, "lp-writer", "lp", "echo lp > /data/f; sleep 3600"), ns)
    c.wait_pod(ns, "lp-writer", running, timeout=30)
    pvc = _get(c, "pvc/lp", ns)
    assert pvc is not None and pvc["status"]["phase"] == "Bound"
    pv = _get(c, f"pv/{pvc['spec']['volumeName']}")
    assert pv is not None
    path = pv["spec"]["hostPath"]["path"]
    assert path.startswith(node["metadata"]["annotations"][LOCAL_PATH_ROOT] + "/")
    c.wait("the file in the provisioned directory", lambda: Path(path, "f").exists())
    c.kubectl("delete", "pod", "lp-writer", "-n", ns, "--grace-period=0", "--force")
    c.kubectl("delete", "pvc", "lp", "-n", ns, "--wait=false")
    name = pv["metadata"]["name"]
    c.wait("the released volume deleted", lambda: _get(c, f"pv/{name}") is None, 30)
    assert not Path(path).exists()


def test_static_volume_for_first_consumer(cluster: Cluster, node: Obj, tmp_path: Path) -> None:
    """A ``kubernetes.io/no-provisioner`` class: the scheduler binds the claim to the
    available volume that fits the node, the binder completes it, the pod runs."""
    c, name = cluster, node["metadata"]["name"]
    ns = c.ns()
    cls = f"static-{uuid.uuid4().hex[:6]}"
    _apply(c, {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
               "metadata": {"name": cls}, "provisioner": "kubernetes.io/no-provisioner",
               "volumeBindingMode": "WaitForFirstConsumer"})  # fmt: skip
    pv = f"pv-{uuid.uuid4().hex[:8]}"
    try:
        volume = _volume(pv, str(tmp_path / "disk"), name, cls=cls)
        volume["metadata"]["finalizers"] = []
        _apply(c, volume)
        _apply(c, _claim("st", cls), ns)
        _apply(c, _pod(c, "st-user", "st", "echo st > /data/f; sleep 3600"), ns)
        c.wait_pod(ns, "st-user", running, timeout=30)
        assert (_get(c, "pvc/st", ns) or {})["spec"]["volumeName"] == pv
        c.wait("the file on the static volume", lambda: (tmp_path / "disk" / "f").exists())
    finally:
        c.kubectl("delete", "pod", "st-user", "-n", ns, "--grace-period=0", "--force", check=False)
        c.kubectl("delete", "pvc", "st", "-n", ns, "--wait=false", check=False)
        c.kubectl("delete", "pv", pv, "--wait=false", check=False)
        c.kubectl("delete", "storageclass", cls, "--wait=false", check=False)


def _must(c: Cluster, what: str, ns: str | None = None) -> Obj:
    obj = _get(c, what, ns)
    assert obj is not None, f"{what} not found"
    return obj


def _web(c: Cluster, replicas: int) -> Obj:
    """StatefulSet ``web``: each pod (user 1000) writes its hostname into its claim once
    (``who``), logs each start (``starts``), then sleeps (and stops at once on SIGTERM)."""
    script = (
        "trap 'exit 0' TERM; [ -f /data/who ] || hostname > /data/who; "
        "hostname >> /data/starts; sleep 3600 & wait"
    )
    pod = pod_manifest(
        "web",
        c.image,
        ["sh", "-c", script],
        container={"volumeMounts": [{"name": "data", "mountPath": "/data"}]},
    )
    # not root, as charts' pods run: a local-path directory is world-writable (k3s)
    pod["spec"]["securityContext"] = {"runAsUser": 1000, "runAsGroup": 1000}
    template = {"metadata": {"labels": {"app": "web"}}, "spec": pod["spec"]}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "web"},
        "spec": {
            "serviceName": "web",
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": template,
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "storageClassName": "local-path",
                        "resources": {"requests": {"storage": "1Mi"}},
                    },
                }
            ],
        },
    }


def test_statefulset_claims_outlive_pods(cluster: Cluster, node: Obj) -> None:
    """Issue 17's scenario: a StatefulSet of 2 with a claim template; each pod's claim is
    provisioned on the node, keeps its file across the pod's deletion and is mounted
    again by the same ordinal; scaling down keeps the claim (Retain); deleting the set and
    the claims deletes the volumes (reclaim Delete) and their directories."""
    from kubernetes import client
    from kubernetes import config as k8s_config

    c, name = cluster, node["metadata"]["name"]
    root = node["metadata"]["annotations"][LOCAL_PATH_ROOT]
    ns = c.ns()
    _apply(c, _web(c, 2), ns)
    for i in (0, 1):
        c.wait_pod(ns, f"web-{i}", running, timeout=40)

    claims = {i: _must(c, f"pvc/data-web-{i}", ns) for i in (0, 1)}
    volumes: dict[int, Obj] = {}
    for i, pvc in claims.items():
        assert pvc["status"]["phase"] == "Bound", pvc
        assert pvc["metadata"]["labels"] == {"app": "web"}
        assert pvc["spec"]["storageClassName"] == "local-path"
        assert pvc["metadata"]["annotations"][SELECTED_NODE] == name
        pv = _must(c, f"pv/{pvc['spec']['volumeName']}")
        volumes[i] = pv
        assert pv["metadata"]["name"] == f"pvc-{pvc['metadata']['uid']}"
        assert pv["status"]["phase"] == "Bound"
        assert pv["spec"]["claimRef"]["name"] == f"data-web-{i}"
        assert pv["spec"]["claimRef"]["uid"] == pvc["metadata"]["uid"]
        assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
        assert pv["spec"]["capacity"] == {"storage": "1Mi"}
        assert pv["spec"]["nodeAffinity"] == {
            "required": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "kubernetes.io/hostname", "operator": "In", "values": [name]}
                        ]
                    }
                ]
            }
        }
        path = pv["spec"]["hostPath"]["path"]
        assert path == volume_dir(root, pv["metadata"]["name"], ns, f"data-web-{i}")
        c.wait(f"web-{i}'s file", lambda p=path: Path(p, "who").is_file())  # type: ignore[misc]
        assert Path(path, "who").read_text() == f"web-{i}\n"
        assert Path(path).stat().st_mode & 0o777 == 0o777
        assert Path(path, "who").stat().st_uid == 1000

    table = c.kubectl("get", "pvc", "-n", ns).stdout.splitlines()
    assert len(table) == 3, table
    assert table[0].split() == [
        "NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS", "MODES", "STORAGECLASS",
        "VOLUMEATTRIBUTESCLASS", "AGE",
    ]  # fmt: skip
    for i, line in enumerate(table[1:]):
        assert line.split()[:7] == [
            f"data-web-{i}", "Bound", volumes[i]["metadata"]["name"], "1Mi", "RWO",
            "local-path", "<unset>",
        ]  # fmt: skip

    # the Python client sees the same claims
    with k8s_config.new_client_from_config(str(c.server.kubeconfig)) as api:
        listed = client.CoreV1Api(api).list_namespaced_persistent_volume_claim(ns)
    got = {
        p.metadata.name: (p.status.phase, p.spec.volume_name, p.status.capacity["storage"])
        for p in listed.items
    }
    assert got == {
        f"data-web-{i}": ("Bound", volumes[i]["metadata"]["name"], "1Mi") for i in (0, 1)
    }

    # the pod goes, the set makes it again, and it mounts the same claim and volume
    old = c.pod(ns, "web-0")["metadata"]["uid"]
    c.kubectl("delete", "pod", "web-0", "-n", ns)
    c.wait_pod(ns, "web-0", lambda p: p["metadata"]["uid"] != old and running(p), timeout=40)
    assert c.exec(ns, "web-0", "cat", "/data/who") == "web-0\n"
    assert c.exec(ns, "web-0", "cat", "/data/starts") == "web-0\nweb-0\n"  # the same volume
    again = _must(c, "pvc/data-web-0", ns)
    assert again["metadata"]["uid"] == claims[0]["metadata"]["uid"]
    assert again["spec"]["volumeName"] == volumes[0]["metadata"]["name"]
    assert again["status"]["phase"] == "Bound"

    # scaled down, the claim of the condemned ordinal stays (whenScaled: Retain)
    c.kubectl("scale", "statefulset", "web", "-n", ns, "--replicas=1")
    c.wait("web-1 gone", lambda: _get(c, "pod/web-1", ns) is None, 30)
    kept = _must(c, "pvc/data-web-1", ns)  # not deleted with web-1
    assert kept["metadata"]["uid"] == claims[1]["metadata"]["uid"]
    assert kept["status"]["phase"] == "Bound"
    assert not kept["metadata"].get("ownerReferences")
    assert Path(volumes[1]["spec"]["hostPath"]["path"], "who").read_text() == "web-1\n"
    # scaled up again, ordinal 1 finds its claim
    c.kubectl("scale", "statefulset", "web", "-n", ns, "--replicas=2")
    c.wait_pod(ns, "web-1", running, timeout=40)
    assert c.exec(ns, "web-1", "cat", "/data/starts") == "web-1\nweb-1\n"
    assert _must(c, "pvc/data-web-1", ns)["metadata"]["uid"] == kept["metadata"]["uid"]

    # the set and the claims deleted: the volumes and their directories go
    c.kubectl("delete", "statefulset", "web", "-n", ns)
    c.kubectl("delete", "pvc", "data-web-0", "data-web-1", "-n", ns, "--wait=false")
    pvs = [v["metadata"]["name"] for v in volumes.values()]
    c.wait("the volumes deleted", lambda: all(_get(c, f"pv/{v}") is None for v in pvs), 40)
    for v in volumes.values():
        assert not Path(v["spec"]["hostPath"]["path"]).exists()
