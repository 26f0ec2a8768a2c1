"""kubectl get -w, delete with each cascade mode, and the legacy Orphan default."""

from __future__ import annotations

import json
import os
import subprocess
import time

from kubernetes import client


def test_get_watch_stays_open_and_prints_changes(kubectl, ns) -> None:
    cmd = [
        "kubectl",
        "--kubeconfig",
        str(kubectl.kubeconfig),
        "--cache-dir",
        str(kubectl.cache_dir),
        "get",
        "configmaps",
        "-n",
        ns,
        "-w",
        "--output-watch-events",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    try:
        time.sleep(1.0)
        kubectl("create", "configmap", "watched", "-n", ns, "--from-literal=a=b")
        kubectl("label", "configmap", "watched", "-n", ns, "x=y")
        kubectl("delete", "configmap", "watched", "-n", ns)
        lines: list[str] = []
        deadline = time.monotonic() + 15
        assert proc.stdout is not None
        while time.monotonic() < deadline and len([ln for ln in lines if "watched" in ln]) < 3:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
        events = [ln.split()[0] for ln in lines if "watched" in ln]
        assert events == ["ADDED", "MODIFIED", "DELETED"], lines
        assert proc.poll() is None  # the watch is still open
    finally:
        proc.kill()
        proc.communicate()


def _rs_with_pods(api_client, ns: str, name: str) -> str:  # type: ignore[no-untyped-def]
    apps = client.AppsV1Api(api_client)
    core = client.CoreV1Api(api_client)
    rs = apps.create_namespaced_replica_set(
        ns,
        {
            "metadata": {"name": name},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"rs": name}},
                "template": {
                    "metadata": {"labels": {"rs": name}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                },
            },
        },
    )
    ref = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "name": name,
        "uid": rs.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    for i in range(2):
        core.create_namespaced_pod(
            ns,
            {
                "metadata": {
                    "name": f"{name}-{i}",
                    "labels": {"rs": name},
                    "ownerReferences": [ref],
                },
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        )
    return str(rs.metadata.uid)


def _pods(api_client, ns: str, name: str) -> list:  # type: ignore[no-untyped-def]
    return client.CoreV1Api(api_client).list_namespaced_pod(ns, label_selector=f"rs={name}").items


def _until(pred, timeout: float = 15) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_delete_cascade_background(kubectl, api_client, ns) -> None:
    _rs_with_pods(api_client, ns, "bg")
    kubectl("delete", "rs", "bg", "-n", ns)
    _until(lambda: not _pods(api_client, ns, "bg"))


def test_delete_cascade_foreground(kubectl, api_client, ns) -> None:
    _rs_with_pods(api_client, ns, "fg")
    out = kubectl("delete", "rs", "fg", "-n", ns, "--cascade=foreground").stdout
    assert 'replicaset.apps "fg" deleted' in out
    assert not _pods(api_client, ns, "fg")
    assert kubectl("get", "rs", "fg", "-n", ns, check=False).returncode == 1


def test_delete_cascade_orphan(kubectl, api_client, ns) -> None:
    _rs_with_pods(api_client, ns, "or")
    kubectl("delete", "rs", "or", "-n", ns, "--cascade=orphan")
    pods = _pods(api_client, ns, "or")
    assert len(pods) == 2 and all(not p.metadata.owner_references for p in pods)


def test_python_client_delete_of_rc_orphans_by_default(api_client, ns) -> None:
    core = client.CoreV1Api(api_client)
    rc = core.create_namespaced_replication_controller(
        ns,
        {
            "metadata": {"name": "legacy"},
            "spec": {
                "replicas": 1,
                "selector": {"app": "legacy"},
                "template": {
                    "metadata": {"labels": {"app": "legacy"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                },
            },
        },
    )
    ref = {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "name": "legacy",
        "uid": rc.metadata.uid,
        "controller": True,
    }
    core.create_namespaced_pod(
        ns,
        {
            "metadata": {"name": "legacy-0", "ownerReferences": [ref]},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        },
    )
    core.delete_namespaced_replication_controller("legacy", ns)  # no propagationPolicy sent
    _until(lambda: not core.list_namespaced_replication_controller(ns).items)
    pod = core.read_namespaced_pod("legacy-0", ns)
    assert not pod.metadata.owner_references


def test_scale_and_get_rc_json(kubectl, ns) -> None:
    rc = {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": "r"},
        "spec": {
            "replicas": 1,
            "selector": {"app": "r"},
            "template": {
                "metadata": {"labels": {"app": "r"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(rc))
    kubectl("scale", "rc", "r", "-n", ns, "--replicas=4")
    assert (
        json.loads(kubectl("get", "rc", "r", "-n", ns, "-o", "json").stdout)["spec"]["replicas"]
        == 4
    )
