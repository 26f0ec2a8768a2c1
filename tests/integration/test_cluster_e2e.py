"""A whole local cluster as `corral up` runs it: API server, scheduler, controller
manager and hollow nodes, each its own process, driven only by the real kubectl."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Kubectl, RunningServer, start_server
from corral.testing.wait import eventually


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, Kubectl]]:
    root = tmp_path_factory.mktemp("e2e")
    srv = start_server(root / "data", extra=["--hollow-nodes", "5"], controllers=True)
    kc = Kubectl(srv.kubeconfig, root / "cache")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        nodes = kc("get", "nodes", "-o", "name", check=False).stdout.split()
        if len(nodes) == 5:
            break
        time.sleep(0.2)
    yield srv, kc
    srv.stop()


def test_nodes_are_ready(cluster: tuple[RunningServer, Kubectl]) -> None:
    _, kubectl = cluster
    out = kubectl("get", "nodes").stdout.splitlines()
    assert len(out) == 6 and all(" Ready " in line for line in out[1:])


def test_deployment_rolls_out_and_back(cluster: tuple[RunningServer, Kubectl]) -> None:
    _, kubectl = cluster
    kubectl("create", "deployment", "web", "--image=nginx:1.26", "--replicas=6")
    kubectl("rollout", "status", "deploy/web", "--timeout=60s")
    pods = json.loads(kubectl("get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]
    assert len(pods) == 6 and all(p["status"]["phase"] == "Running" for p in pods)
    assert len({p["spec"]["nodeName"] for p in pods}) > 1  # spread over the nodes
    kubectl("set", "image", "deploy/web", "nginx=nginx:1.27")
    kubectl("rollout", "status", "deploy/web", "--timeout=60s")
    images = {
        p["spec"]["containers"][0]["image"]
        for p in json.loads(kubectl("get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]
        if not p["metadata"].get("deletionTimestamp")
    }
    assert images == {"nginx:1.27"}
    assert "2" in kubectl("rollout", "history", "deploy/web").stdout
    kubectl("rollout", "undo", "deploy/web")
    kubectl("rollout", "status", "deploy/web", "--timeout=60s")
    dep = json.loads(kubectl("get", "deploy", "web", "-o", "json").stdout)
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"
    assert dep["status"]["availableReplicas"] == 6
    kubectl("scale", "deploy/web", "--replicas=2")
    eventually(
        lambda: len(kubectl("get", "pods", "-l", "app=web", "-o", "name").stdout.split()) == 2,
        60,
        what="two app=web pods",
    )


def test_job_runs_to_completion(cluster: tuple[RunningServer, Kubectl], tmp_path: Path) -> None:
    _, kubectl = cluster
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "once"},
        "spec": {
            "completions": 3,
            "parallelism": 2,
            "template": {
                "metadata": {
                    "annotations": {
                        "hollow.corral.dev/exit-after": "1s",
                        "hollow.corral.dev/exit-code": "0",
                    }
                },
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox"}],
                },
            },
        },
    }
    kubectl("apply", "-f", "-", input=json.dumps(job))
    kubectl("wait", "--for=condition=Complete", "job/once", "--timeout=60s")
    assert (
        json.loads(kubectl("get", "job", "once", "-o", "json").stdout)["status"]["succeeded"] == 3
    )


def test_foreground_delete_of_a_deployment(cluster: tuple[RunningServer, Kubectl]) -> None:
    _, kubectl = cluster
    kubectl("create", "deployment", "fg", "--image=busybox", "--replicas=20")
    kubectl("rollout", "status", "deploy/fg", "--timeout=60s")
    kubectl("delete", "deploy", "fg", "--cascade=foreground", "--timeout=60s")
    assert kubectl("get", "deploy", "fg", check=False).returncode == 1
    assert not kubectl("get", "pods", "-l", "app=fg", "-o", "name").stdout.split()
    assert not kubectl("get", "rs", "-l", "app=fg", "-o", "name").stdout.split()
